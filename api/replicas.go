package api

import (
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"

	"github.com/slurmgate/slurmgate/api/sign"
	"github.com/slurmgate/slurmgate/bridge"
)

// Requests for a session whose agent tunnel another gateway replica holds.
// An agent dials whichever replica the load balancer picks, and the
// browser's or the CLI's requests for the session may land on any other.
// The replica a request reaches authenticates the caller and checks that
// they may use the session, as always; when the bridge answers that the
// agent is connected elsewhere (bridge.AgentElsewhere, given only to those
// who may use the session), the request is forwarded whole (credentials,
// body, WebSocket upgrade) to the holding replica's server.advertise_url.
// That replica authenticates and authorizes it again like any request: the
// forwarder vouches only for a signed request's freshness, which it has
// used up (bridge.ForwardProof). A forwarded request is never forwarded
// again, so replicas that disagree about where a tunnel is cannot pass a
// request back and forth.

// forwardedHeader marks a request one replica forwarded to another. Its
// value is the forward proof of a signed request's signature (base64url),
// or "1".
const forwardedHeader = "Slurmgate-Forwarded"

// replicaForwarder is the reverse proxy to other replicas.
type replicaForwarder struct {
	proxy *httputil.ReverseProxy
}

type forwardTargetKey struct{}

func newReplicaForwarder(s *Server) *replicaForwarder {
	return &replicaForwarder{proxy: &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(pr.In.Context().Value(forwardTargetKey{}).(*url.URL))
			// The Host as the client sent it: the subdomain app mode
			// routes by it, and WebSocket handshakes compare Origin with it.
			pr.Out.Host = pr.In.Host
			setXForwarded(pr)
			pr.Out.Header.Set(forwardedHeader, s.forwardProof(pr.In))
		},
		Transport: &http.Transport{
			// Replicas reach each other directly, never through the
			// environment's HTTP proxy.
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout: 10 * time.Second,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     90 * time.Second,
		},
		// Exec's NDJSON and apps' event streams must not wait in a buffer.
		FlushInterval: -1,
		BufferPool:    copyBuffers,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			to := r.Context().Value(forwardTargetKey{}).(*url.URL)
			if errors.Is(err, context.Canceled) {
				w.WriteHeader(499) // the client went away; nobody reads this
				return
			}
			writeProblem(w, r, badGateway.with("the session's agent is connected to the gateway replica at %s, which does not answer (%v); the agent reconnects to a live replica within seconds", to.Redacted(), err))
		},
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}}
}

// forwardProof is forwardedHeader's value for r.
func (s *Server) forwardProof(r *http.Request) string {
	if _, sig, err := sign.ParseAuthorization(r.Header.Get("Authorization")); err == nil {
		return base64.RawURLEncoding.EncodeToString(s.b.ForwardProof(sig))
	}
	return "1"
}

// signatureToRemember is what a signed request's replay check records: its
// signature, or for a request forwarded by another replica with a valid
// proof, the proof (the forwarder has recorded the signature).
func (s *Server) signatureToRemember(r *http.Request, sig []byte) []byte {
	if v := r.Header.Get(forwardedHeader); v != "" {
		if proof, err := base64.RawURLEncoding.DecodeString(v); err == nil && s.b.CheckForwardProof(sig, proof) {
			return proof
		}
	}
	return sig
}

// forwardIfElsewhere forwards r to the replica holding the session's agent
// when err says it is elsewhere and r has not been forwarded already. It
// reports whether it did; the response is then written.
func (s *Server) forwardIfElsewhere(w http.ResponseWriter, r *http.Request, err error) bool {
	var at *bridge.AgentElsewhere
	if !errors.As(err, &at) || r.Header.Get(forwardedHeader) != "" {
		return false
	}
	to, perr := url.Parse(at.GatewayURL)
	if perr != nil || to.Host == "" {
		s.log.Warn("a replica recorded an agent tunnel under an unusable server.advertise_url", "session", at.SessionID, "url", at.GatewayURL)
		return false
	}
	stateFrom(r.Context()).logger().Debug("forwarding to the replica holding the agent", "session", at.SessionID, "replica", to.Redacted())
	s.forwarder.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), forwardTargetKey{}, to)))
	return true
}
