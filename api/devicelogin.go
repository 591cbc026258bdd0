package api

import (
	"errors"
	"net/http"
	"strings"

	"github.com/slurmgate/slurmgate/bridge"
)

// Device logins (bridge/devicelogin.go) over HTTP: RFC 8628's endpoints,
// with the gateway's portal as the verification page. The device code only
// ever travels in request and response bodies, never in a URL, so the
// access log cannot hold it.

// The poll's "no keypair (yet)" answers: RFC 8628 §3.5's error codes as
// problem types, all 400 as in the RFC, so a client switches on the type.
var (
	authorizationPending = problemKind{"authorization_pending", "Login not approved yet", http.StatusBadRequest}
	slowDown             = problemKind{"slow_down", "Polling too fast", http.StatusBadRequest}
	accessDenied         = problemKind{"access_denied", "Login denied", http.StatusBadRequest}
	expiredToken         = problemKind{"expired_token", "Login expired", http.StatusBadRequest}
)

func init() {
	problemKinds = append(problemKinds, authorizationPending, slowDown, accessDenied, expiredToken)
}

func (s *Server) deviceLoginRoutes() []route {
	return []route{
		{method: "POST", pattern: "/api/v1/auth/device", summary: "Start a device login (RFC 8628 shape): a user code to approve in the portal, a device code to poll with",
			access: public, handler: s.startDeviceLogin, request: deviceLoginRequest{}, response: deviceAuthorization{}},
		{method: "POST", pattern: "/api/v1/auth/device/token", summary: "Poll a device login: the approver's new keypair once approved, else authorization_pending, slow_down, access_denied or expired_token",
			access: public, handler: s.pollDeviceLogin, request: deviceTokenRequest{}, response: deviceKeypair{}},
		{method: "GET", pattern: "/api/v1/auth/device/{user_code}", summary: "The pending device login a user code names, for the approver to check",
			access: authenticated, handler: s.deviceLoginToApprove, response: bridge.PendingDeviceLogin{}},
		// Approving mints a keypair for the approver, so it takes what
		// minting a keypair takes: a keypair signature or a portal login
		// (with its CSRF token), never a bearer token alone.
		{method: "POST", pattern: "/api/v1/auth/device/approve", summary: "Allow or deny a device login; when allowed, the device gets a new keypair of the caller's",
			access: keypairSigned, handler: s.decideDeviceLogin, request: deviceDecision{}, response: bridge.PendingDeviceLogin{}},
	}
}

type deviceLoginRequest struct {
	// Client describes the device to the approver, e.g. "slurmgate CLI on
	// login1"; it becomes the keypair's description.
	Client string `json:"client"`
}

// deviceAuthorization is RFC 8628 §3.2's response.
type deviceAuthorization struct {
	DeviceCode              string `json:"device_code"`
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete"`
	ExpiresIn               int    `json:"expires_in"` // seconds
	Interval                int    `json:"interval"`   // seconds between polls, at least
}

type deviceTokenRequest struct {
	DeviceCode string `json:"device_code"`
}

type deviceDecision struct {
	UserCode string `json:"user_code"`
	Allow    bool   `json:"allow"`
}

// deviceKeypair is what a successful poll returns: the keypair and whose it is.
type deviceKeypair struct {
	createdKeypair
	Username string `json:"username"`
}

// publicBase is the gateway's configured public URL, else its URL as the
// client reached it: the portal page a person opens is on the same gateway
// the CLI talks to. Behind a proxy, X-Forwarded-Proto says whether it was
// TLS (as for the cookie's Secure).
func (s *Server) publicBase(r *http.Request) string {
	if s.publicURL != "" {
		return s.publicURL
	}
	scheme := "http"
	if secureRequest(r) {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func (s *Server) startDeviceLogin(w http.ResponseWriter, r *http.Request) {
	if s.loginStartLimited(w, r) {
		return
	}
	var in deviceLoginRequest
	if !decodeJSON(w, r, &in) {
		return
	}
	d, err := s.b.StartDeviceLogin(r.Context(), in.Client)
	if err != nil {
		writeError(w, r, err)
		return
	}
	page := s.publicBase(r) + "/device"
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, r, http.StatusOK, deviceAuthorization{
		DeviceCode:              d.DeviceCode,
		UserCode:                d.UserCode,
		VerificationURI:         page,
		VerificationURIComplete: page + "?code=" + d.UserCode,
		ExpiresIn:               int(bridge.DeviceLoginTTL.Seconds()),
		Interval:                int(d.Interval.Seconds()),
	})
}

func (s *Server) pollDeviceLogin(w http.ResponseWriter, r *http.Request) {
	var in deviceTokenRequest
	if !decodeJSON(w, r, &in) {
		return
	}
	if strings.TrimSpace(in.DeviceCode) == "" {
		writeProblem(w, r, invalidRequest.with("send the device_code that POST /api/v1/auth/device returned"))
		return
	}
	ak, sk, user, err := s.b.PollDeviceLogin(r.Context(), in.DeviceCode)
	// The details name no code: they end up in the access log.
	switch {
	case errors.Is(err, bridge.ErrAuthorizationPending):
		writeProblem(w, r, authorizationPending.with("nobody has approved this login yet; poll again after the interval"))
	case errors.Is(err, bridge.ErrSlowDown):
		writeProblem(w, r, slowDown.with("polled faster than every %v; add 5 seconds to the interval (RFC 8628 §3.5)", bridge.DeviceLoginInterval))
	case errors.Is(err, bridge.ErrAccessDenied):
		writeProblem(w, r, accessDenied.with("the login was denied in the portal"))
	case errors.Is(err, bridge.ErrExpiredToken):
		writeProblem(w, r, expiredToken.with("this login is unknown, expired (after %v) or already used; start a new one", bridge.DeviceLoginTTL))
	case err != nil:
		writeError(w, r, err)
	default:
		st := stateFrom(r.Context())
		st.logger().Info("device login completed", "user", user, "access_key", ak)
		w.Header().Set("Cache-Control", "no-store") // the secret must not linger in caches
		writeJSON(w, r, http.StatusOK, deviceKeypair{createdKeypair: createdKeypair{AccessKey: ak, SecretKey: sk}, Username: user})
	}
}

func (s *Server) deviceLoginToApprove(w http.ResponseWriter, r *http.Request) {
	p, err := s.b.DeviceLoginToApprove(r.Context(), r.PathValue("user_code"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, p)
}

func (s *Server) decideDeviceLogin(w http.ResponseWriter, r *http.Request) {
	var in deviceDecision
	if !decodeJSON(w, r, &in) {
		return
	}
	actor := ActorFrom(r.Context())
	p, err := s.b.DecideDeviceLogin(r.Context(), actor, in.UserCode, in.Allow)
	if err != nil {
		writeError(w, r, err)
		return
	}
	stateFrom(r.Context()).logger().Info("device login decided", "user", actor.Username, "allow", in.Allow, "client", p.Client)
	writeJSON(w, r, http.StatusOK, p)
}
