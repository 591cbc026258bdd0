package api

import (
	"bytes"
	"crypto/hmac"
	"crypto/subtle"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/slurmgate/slurmgate/api/sign"
	"github.com/slurmgate/slurmgate/bridge"
)

// credential says how a request authenticated.
type credential struct {
	method    string                // "keypair", "token", "cookie" or "app"
	accessKey string                // for "keypair"
	expires   time.Time             // for "token"
	portal    *bridge.PortalSession // for "cookie"
	app       *bridge.AppCredential // for "app": an app host's cookie (apphandoff.go)
}

// String is what the access log shows: never a secret, only the access key,
// the portal session's public id, or the word "token".
func (c credential) String() string {
	switch {
	case c.method == "keypair":
		return "keypair " + c.accessKey
	case c.method == "cookie" && c.portal != nil:
		return "cookie " + c.portal.ID
	case c.method == "app" && c.app != nil:
		return "app " + c.app.ID
	}
	return c.method
}

// authorize lets the request through if the route's access level allows it;
// otherwise it answers 401 or 403 and returns false.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, st *requestState, need access) bool {
	switch need {
	case public:
		return true
	case localOrSuperadmin:
		if isLoopback(r.RemoteAddr) {
			return true
		}
		need = superadmin
	}
	if !s.authenticate(w, r, st) {
		return false
	}
	role := st.actor.Role
	switch {
	// A portal session may mint credentials too: it comes from an
	// interactive login, and its state changes carry a CSRF token.
	case need == keypairSigned && st.cred.method != "keypair" && st.cred.method != "cookie":
		writeProblem(w, r, forbiddenProblem.with("%s %s needs a keypair-signed request or a portal login, not a %s: credentials are minted only with a keypair or in the portal", r.Method, r.URL.Path, st.cred.method))
		return false
	case need == superadmin && role != bridge.RoleSuperadmin,
		need == domainAdmin && role != bridge.RoleSuperadmin && role != bridge.RoleDomainAdmin:
		writeProblem(w, r, forbiddenProblem.with("%s %s needs the %s role; %s is a %s", r.Method, r.URL.Path, need, st.actor.Username, role))
		return false
	}
	return true
}

// isLoopback reports whether the peer is on this host. Behind a reverse
// proxy on the same host every client looks local, which is why only
// /metrics, which holds no secrets, uses it.
func isLoopback(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// authenticate resolves the request's credential into st.actor and
// st.cred; otherwise it answers 401 (or 503/500 when the database fails)
// and returns false.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request, st *requestState) bool {
	header := r.Header.Get("Authorization")
	scheme, rest, _ := strings.Cut(header, " ")
	switch {
	case header == "":
		// The portal's cookie is the third credential; an Authorization
		// header, meant by a program, always takes precedence over it.
		if c, err := r.Cookie(sessionCookie); err == nil && c.Value != "" {
			return s.authenticateCookie(w, r, st, c.Value)
		}
		s.unauthorized(w, r, "this operation needs credentials: sign the request with a keypair (%s), send Authorization: Bearer <token>, or log in to the portal (POST /api/v1/auth/login)", sign.Scheme)
		return false
	case strings.EqualFold(scheme, "Bearer"):
		return s.authenticateToken(w, r, st, strings.TrimSpace(rest))
	case scheme == sign.Scheme:
		return s.authenticateSignature(w, r, st, header)
	}
	s.unauthorized(w, r, "authorization scheme %q is not supported; use %s or Bearer", scheme, sign.Scheme)
	return false
}

// unauthorized answers 401 with a challenge for each scheme the API takes.
func (s *Server) unauthorized(w http.ResponseWriter, r *http.Request, format string, args ...any) {
	w.Header().Add("WWW-Authenticate", sign.Scheme+` realm="slurmgate"`)
	w.Header().Add("WWW-Authenticate", `Bearer realm="slurmgate"`)
	writeProblem(w, r, unauthenticated.with(format, args...))
}

// credentialRefused answers a bridge refusal of a credential: not found and
// forbidden (revoked, expired, user locked) are 401 with the bridge's
// reason; anything else is the server's failure, not the client's.
func (s *Server) credentialRefused(w http.ResponseWriter, r *http.Request, err error) {
	switch bridge.KindOf(err) {
	case bridge.KindNotFound, bridge.KindForbidden:
		s.unauthorized(w, r, "%v", err)
	default:
		writeError(w, r, err)
	}
}

func (s *Server) authenticateToken(w http.ResponseWriter, r *http.Request, st *requestState, token string) bool {
	actor, expires, err := s.b.ActorForToken(r.Context(), token)
	if err != nil {
		s.credentialRefused(w, r, err)
		return false
	}
	st.actor, st.cred = actor, credential{method: "token", expires: expires}
	return true
}

// authenticateCookie resolves a portal session cookie. A request that may
// change state (anything but GET, HEAD and OPTIONS) must also carry the
// session's CSRF token in X-CSRF-Token: a cross-site page can make the
// browser send the cookie, but cannot read the token to send with it.
func (s *Server) authenticateCookie(w http.ResponseWriter, r *http.Request, st *requestState, token string) bool {
	actor, ps, err := s.b.ActorForPortalSession(r.Context(), token)
	if err != nil {
		if k := bridge.KindOf(err); k == bridge.KindNotFound || k == bridge.KindForbidden {
			// A dead cookie is dropped, so the browser stops sending it.
			http.SetCookie(w, &http.Cookie{Name: sessionCookie, Path: "/", MaxAge: -1, HttpOnly: true, Secure: secureRequest(r), SameSite: http.SameSiteLaxMode})
		}
		s.credentialRefused(w, r, err)
		return false
	}
	st.actor, st.cred = actor, credential{method: "cookie", portal: &ps}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	sent := r.Header.Get(csrfHeader)
	if sent == "" || subtle.ConstantTimeCompare([]byte(sent), []byte(ps.CSRFToken)) != 1 {
		what := "without"
		if sent != "" {
			what = "with a wrong"
		}
		writeProblem(w, r, forbiddenProblem.with("%s %s came with the portal's session cookie but %s %s header: send the csrf_token that POST /api/v1/auth/login or GET /api/v1/auth/session returned",
			r.Method, r.URL.Path, what, csrfHeader))
		return false
	}
	return true
}

// authenticateSignature verifies an SG-HMAC-SHA256 request (see package
// sign): the date within the allowed skew, the body against its declared
// hash, the HMAC in constant time, and the signature never seen before
// (the nonce makes every honest request's signature new).
// The body is read here, within the size limit, and replaced for the
// handler.
func (s *Server) authenticateSignature(w http.ResponseWriter, r *http.Request, st *requestState, header string) bool {
	accessKey, sig, err := sign.ParseAuthorization(header)
	if err != nil {
		s.unauthorized(w, r, "%v", err)
		return false
	}
	// Known before it is verified, so that the log of a refusal says which
	// key was tried.
	st.cred = credential{method: "keypair", accessKey: accessKey}
	now := s.now()
	date := r.Header.Get(sign.DateHeader)
	if date == "" {
		s.unauthorized(w, r, "a signed request needs the %s header (RFC 3339, e.g. %s)", sign.DateHeader, now.UTC().Format(time.RFC3339))
		return false
	}
	at, err := time.Parse(time.RFC3339, date)
	if err != nil {
		s.unauthorized(w, r, "%s %q is not an RFC 3339 time such as %s", sign.DateHeader, date, now.UTC().Format(time.RFC3339))
		return false
	}
	if off := at.Sub(now); off > s.skew || off < -s.skew {
		s.unauthorized(w, r, "%s %s is %s the server's clock (server time %s); requests must be dated within ±%v: check that the client's clock is in sync",
			sign.DateHeader, date, describeOffset(off), now.UTC().Format(time.RFC3339), s.skew)
		return false
	}
	nonce := r.Header.Get(sign.NonceHeader)
	if nonce == "" || len(nonce) > sign.MaxNonceLen {
		s.unauthorized(w, r, "a signed request needs the %s header: 1 to %d characters, different for every request", sign.NonceHeader, sign.MaxNonceLen)
		return false
	}
	secret, actor, err := s.b.KeypairSecret(r.Context(), accessKey)
	if k := bridge.KindOf(err); k == bridge.KindNotFound || k == bridge.KindForbidden {
		// Nothing here proves the caller holds the secret, and an access key
		// alone is no secret (it is in logs and configuration): why the key
		// is refused (revoked when, its user locked) goes to the log only.
		st.logger().Warn("keypair refused", "access_key", accessKey, "err", err)
		s.unauthorized(w, r, "access key %s is unknown, revoked or expired, or its user is not active: create a new keypair (the gateway's log says which, under this request's id)", accessKey)
		return false
	} else if err != nil {
		writeError(w, r, err)
		return false
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeError(w, r, err)
		return false
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	declared := r.Header.Get(sign.ContentSHA256Header)
	if declared == "" {
		s.unauthorized(w, r, "a signed request needs the %s header: the hex SHA-256 of the body", sign.ContentSHA256Header)
		return false
	}
	hash := sign.BodyHash(body)
	if !strings.EqualFold(declared, hash) {
		s.unauthorized(w, r, "%s does not match the body the server received: the body was changed after signing", sign.ContentSHA256Header)
		return false
	}
	stringToSign, err := sign.StringToSign(r.Method, r.URL, date, nonce, hash)
	if err != nil {
		s.unauthorized(w, r, "%v", err)
		return false
	}
	if !hmac.Equal(sig, sign.Compute(secret, stringToSign)) {
		s.unauthorized(w, r, "signature does not match: check the secret key, and that the date and nonce signed are the %s and %s sent (server time %s); the server signed %s",
			sign.DateHeader, sign.NonceHeader, now.UTC().Format(time.RFC3339), strconv.Quote(stringToSign))
		return false
	}
	// A signature stays acceptable while its date is within ±skew of the
	// server's clock, which spans 2×skew of real time.
	fresh, err := s.b.RememberSignature(r.Context(), s.signatureToRemember(r, sig), 2*s.skew)
	if err != nil {
		writeError(w, r, err)
		return false
	}
	if !fresh {
		s.unauthorized(w, r, "this signed request was already received once; sign every request anew (replayed requests are refused)")
		return false
	}
	if err := s.b.KeypairUsed(r.Context(), accessKey); err != nil {
		st.logger().Warn("recording keypair use", "access_key", accessKey, "err", err)
	}
	st.actor = actor
	return true
}

// describeOffset says how far a date is from now, for people.
func describeOffset(off time.Duration) string {
	if off > 0 {
		return fmt.Sprintf("%v ahead of", off.Round(time.Second))
	}
	return fmt.Sprintf("%v behind", (-off).Round(time.Second))
}
