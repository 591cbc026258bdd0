package api

import (
	"context"
	"net/http"
	"sync"
)

// Connections that outlive their request (app WebSockets, terminals, TCP)
// were authorized once, at the upgrade. They end when the credential that
// opened them ends: a token or portal login at its expiry, and a portal
// login at once when it is revoked (logout on any replica, an admin's
// revocation), which the bridge announces (bridge.LoginRevocations).

// loginWatch fans the bridge's revocations out to the connections of each
// portal login. It listens only while such connections are open: one
// database connection per gateway process while any is, none otherwise.
type loginWatch struct {
	mu     sync.Mutex
	conns  map[string]map[*watchedConn]struct{} // by PortalSession.ID
	cancel context.CancelFunc                   // ends the listening; nil when not listening
}

type watchedConn struct{ cancel context.CancelFunc }

// add registers c under a portal login, listening first if nobody was.
func (lw *loginWatch) add(s *Server, id string, c *watchedConn) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if lw.cancel == nil {
		ctx, cancel := context.WithCancel(context.Background())
		lw.cancel = cancel
		revs := s.b.LoginRevocations(ctx) // returns once listening
		go func() {
			for rev := range revs {
				lw.mu.Lock()
				for id, set := range lw.conns {
					// Resync: revocations may have been missed; ending
					// every such connection is the safe answer (clients
					// reconnect, and are authorized anew).
					if rev.Resync || id == rev.SessionID {
						for c := range set {
							c.cancel()
						}
					}
				}
				lw.mu.Unlock()
			}
		}()
	}
	if lw.conns == nil {
		lw.conns = map[string]map[*watchedConn]struct{}{}
	}
	if lw.conns[id] == nil {
		lw.conns[id] = map[*watchedConn]struct{}{}
	}
	lw.conns[id][c] = struct{}{}
}

// remove unregisters c, and stops listening after the last connection.
func (lw *loginWatch) remove(id string, c *watchedConn) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	delete(lw.conns[id], c)
	if len(lw.conns[id]) == 0 {
		delete(lw.conns, id)
	}
	if len(lw.conns) == 0 && lw.cancel != nil {
		lw.cancel()
		lw.cancel = nil
	}
}

// credentialContext derives from ctx a context that ends when the request's
// credential does: at a token's or portal login's expiry, and when the
// portal login is revoked. Run long-lived connections under it.
func (s *Server) credentialContext(ctx context.Context, r *http.Request) (context.Context, context.CancelFunc) {
	cred := stateFrom(r.Context()).cred
	var cancel context.CancelFunc
	switch {
	case cred.method == "cookie" && cred.portal != nil:
		ctx, cancel = context.WithDeadline(ctx, cred.portal.ExpiresAt)
	case !cred.expires.IsZero():
		return context.WithDeadline(ctx, cred.expires)
	default:
		return context.WithCancel(ctx)
	}
	lw := &s.logins
	c := &watchedConn{cancel: cancel}
	id := cred.portal.ID
	lw.add(s, id, c)
	// A revocation committed between the check at authentication and the
	// listening above would be missed: check the login once more.
	if ck, err := r.Cookie(sessionCookie); err != nil || s.recheckLogin(ctx, ck.Value) != nil {
		cancel()
	}
	return ctx, func() {
		cancel()
		lw.remove(id, c)
	}
}

func (s *Server) recheckLogin(ctx context.Context, token string) error {
	_, _, err := s.b.ActorForPortalSession(ctx, token)
	return err
}
