package api

import (
	"context"
	"net/http"

	"github.com/slurmgate/slurmgate/tunnel"
)

// agentRoutes: the endpoint session agents dial. It is public at the HTTP
// level because the agent authenticates inside the WebSocket, with its
// session's secret in the tunnel's hello (never in a URL or header, which
// proxies log).
func (s *Server) agentRoutes() []route {
	return []route{
		{method: "GET", pattern: "/api/v1/agent/tunnel",
			summary: "WebSocket for session agents: the tunnel carrying app traffic, terminals, exec and reports (see package tunnel); the agent authenticates in its first message",
			access:  public, handler: s.agentTunnel},
	}
}

// agentTunnel accepts an agent and serves its tunnel until it closes; the
// request stays open (hijacked) for the tunnel's lifetime.
func (s *Server) agentTunnel(w http.ResponseWriter, r *http.Request) {
	log := stateFrom(r.Context()).logger()
	conn, err := tunnel.Accept(w, r, tunnel.AcceptConfig{
		Authenticate: s.b.AuthenticateAgent,
		Keepalive:    s.tunnelKeepalive,
		Logger:       log,
	})
	if err != nil {
		log.Info("agent refused", "err", err)
		return
	}
	// The tunnel outlives nothing of the request but its connection;
	// ServeAgent returns when the agent goes or the tunnel dies.
	if err := s.b.ServeAgent(context.WithoutCancel(r.Context()), conn); err != nil {
		log.Warn("agent tunnel", "session", conn.SessionID(), "err", err)
	}
}
