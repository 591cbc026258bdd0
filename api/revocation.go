package api

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/slurmgate/slurmgate/bridge"
)

// Connections that outlive their request (app WebSockets, terminals, TCP)
// were authorized once, at the upgrade. They end when the credential that
// opened them ends: a token or portal login at its expiry, a portal login
// at its idle expiry (checked again then: using the portal elsewhere moves
// it) and at once when it is revoked (logout on any replica, an admin's
// revocation), which the bridge announces (bridge.LoginRevocations), and a
// keypair within credentialTTL of its deletion or its user being locked,
// which nothing announces.
//
// The same announcements let the app proxy remember for a moment which
// actor a bearer token or portal cookie is (cachedActor): a page load is
// dozens of requests, and each would otherwise cost a PostgreSQL round
// trip. A remembered portal login is forgotten as soon as its revocation is
// heard, not at the end of the moment, and nothing is remembered while the
// process is not listening. What the bridge does not announce (a user
// locked, a domain deactivated) takes effect within credentialTTL; bearer
// tokens are never revoked, only expire, and are not remembered past their
// expiry.

// credentialTTL bounds how long a resolved credential is trusted without
// asking the database again.
const credentialTTL = 2 * time.Second

// maxCachedCredentials bounds the cache: beyond it, credentials are
// resolved every time rather than remembered.
const maxCachedCredentials = 4096

// loginWatch fans the bridge's revocations out to the connections of each
// portal login and to the credential cache. It listens only while either
// needs it: one database connection per gateway process while any such
// connection is open or any credential is remembered, none otherwise.
type loginWatch struct {
	mu     sync.Mutex
	conns  map[string]map[*watchedConn]struct{} // by PortalSession.ID
	listen *listening                           // nil when not listening

	// ttl overrides credentialTTL; tests lengthen it to show that
	// revocation, not expiry, is what forgets a login.
	ttl   time.Duration
	creds map[[sha256.Size]byte]cachedCredential
	// gen changes with every revocation heard and every start and end of
	// listening: a lookup that began under another generation may have
	// missed a revocation, so its answer is not remembered.
	gen   uint64
	sweep *sweeper // forgets expired credentials; nil when not listening for the cache

	// subscribe overrides the bridge's LoginRevocations; tests slow it
	// down to show that nobody waits for it.
	subscribe func(context.Context) <-chan bridge.LoginRevocation
}

// sweeper is one armed expiry; a timer that fired after being replaced
// finds itself no longer lw.sweep and does nothing.
type sweeper struct{ t *time.Timer }

// listening is one subscription to the bridge's revocations.
type listening struct {
	cancel context.CancelFunc
	// ready is closed once the bridge listens: a revocation committed
	// after that is heard. Starting takes a database connection and a
	// round trip (seconds when the database is slow), so it happens
	// outside mu, and nobody waits for it who need not.
	ready chan struct{}
}

type watchedConn struct{ cancel context.CancelCauseFunc }

// Why a connection authorized by a credential ended, for its close message:
// the person sees "signed out" rather than a bare "closed".
var (
	errSignedOut         = errors.New("signed out")
	errCredentialExpired = errors.New("your login expired")
	errRecheck           = errors.New("the login is being checked again; reconnect")
	errCredentialRevoked = errors.New("your credential is no longer valid")
)

// cachedCredential is a resolved bearer token or portal cookie.
type cachedCredential struct {
	actor   bridge.Actor
	method  string               // "token" or "cookie"
	expires time.Time            // the token's expiry
	portal  bridge.PortalSession // the cookie's login
	until   time.Time            // resolved + ttl, or the credential's end if sooner
}

// start starts listening for revocations if nobody is, and returns the
// listening, which may not be ready yet. Call with mu held.
func (lw *loginWatch) start(s *Server) *listening {
	if lw.listen != nil {
		return lw.listen
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &listening{cancel: cancel, ready: make(chan struct{})}
	lw.listen = l
	lw.gen++
	subscribe := s.b.LoginRevocations
	if lw.subscribe != nil {
		subscribe = lw.subscribe
	}
	go func() {
		revs := subscribe(ctx) // returns once listening
		close(l.ready)
		for rev := range revs {
			lw.revoked(rev)
		}
		// The bridge stopped delivering (ctx ended, or its pool is
		// closed): nothing remembered may be trusted any more.
		lw.mu.Lock()
		defer lw.mu.Unlock()
		if lw.listen == l {
			lw.listen = nil
			lw.forgetAll()
		}
		cancel()
	}()
	return l
}

// isReady reports whether l listens.
func (l *listening) isReady() bool {
	select {
	case <-l.ready:
		return true
	default:
		return false
	}
}

// revoked ends what a revocation ends.
func (lw *loginWatch) revoked(rev bridge.LoginRevocation) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	// The cache first: a client that sees its WebSocket close and retries
	// must find its login forgotten.
	lw.gen++
	for k, c := range lw.creds {
		if rev.Resync || (c.method == "cookie" && c.portal.ID == rev.SessionID) {
			delete(lw.creds, k)
		}
	}
	for id, set := range lw.conns {
		// Resync: revocations may have been missed; ending every such
		// connection is the safe answer (clients reconnect, and are
		// authorized anew).
		if rev.Resync || id == rev.SessionID {
			cause := errSignedOut
			if rev.Resync && id != rev.SessionID {
				cause = errRecheck
			}
			for c := range set {
				c.cancel(cause)
			}
		}
	}
}

// stopIfUnused stops listening once no connection and no credential needs
// it. Call with mu held.
func (lw *loginWatch) stopIfUnused() {
	if len(lw.conns) == 0 && len(lw.creds) == 0 && lw.listen != nil {
		lw.listen.cancel()
		lw.listen = nil
		lw.gen++
	}
}

// forgetAll drops every remembered credential. Call with mu held.
func (lw *loginWatch) forgetAll() {
	clear(lw.creds)
	lw.gen++
	if lw.sweep != nil {
		lw.sweep.t.Stop()
		lw.sweep = nil
	}
}

// add registers c under a portal login, starting to listen if nobody was;
// the returned channel is closed once listening.
func (lw *loginWatch) add(s *Server, id string, c *watchedConn) <-chan struct{} {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	l := lw.start(s)
	if lw.conns == nil {
		lw.conns = map[string]map[*watchedConn]struct{}{}
	}
	if lw.conns[id] == nil {
		lw.conns[id] = map[*watchedConn]struct{}{}
	}
	lw.conns[id][c] = struct{}{}
	return l.ready
}

// remove unregisters c, and stops listening when nothing needs it.
func (lw *loginWatch) remove(id string, c *watchedConn) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	delete(lw.conns[id], c)
	if len(lw.conns[id]) == 0 {
		delete(lw.conns, id)
	}
	lw.stopIfUnused()
}

// cachedActor resolves a bearer token (method "token") or portal cookie
// (method "cookie") to its actor and credential, from memory when it was
// resolved within the TTL and not revoked since. Refusals are never
// remembered: the bridge is asked again, and says why.
func (s *Server) cachedActor(ctx context.Context, method, secret string) (bridge.Actor, credential, error) {
	lw := &s.logins
	key := sha256.Sum256([]byte(method + "\x00" + secret))
	now := s.now()
	lw.mu.Lock()
	if c, ok := lw.creds[key]; ok && now.Before(c.until) {
		lw.mu.Unlock()
		return c.actor, c.credential(), nil
	}
	// Listening before asking: a revocation committed after the answer
	// is then heard, and one committed before it is in the answer. While
	// listening starts, the answer is given but not remembered.
	l := lw.start(s)
	gen := lw.gen
	lw.mu.Unlock()
	heard := l.isReady()

	c := cachedCredential{method: method}
	var err error
	ttl := cmp.Or(lw.ttl, credentialTTL)
	c.until = now.Add(ttl)
	switch method {
	case "token":
		c.actor, c.expires, err = s.b.ActorForToken(ctx, secret)
		c.until = sooner(c.until, c.expires)
	case "cookie":
		c.actor, c.portal, err = s.b.ActorForPortalSession(ctx, secret)
		c.until = sooner(c.until, sooner(c.portal.ExpiresAt, c.portal.IdleExpiresAt))
	default:
		panic("api: cachedActor of method " + method)
	}

	lw.mu.Lock()
	defer lw.mu.Unlock()
	if err == nil && heard && lw.gen == gen && lw.listen != nil && len(lw.creds) < maxCachedCredentials {
		if lw.creds == nil {
			lw.creds = map[[sha256.Size]byte]cachedCredential{}
		}
		lw.creds[key] = c
	}
	if lw.sweep == nil && lw.listen != nil {
		// Listening ends a TTL after the last credential is forgotten,
		// not after each refusal: a new LISTEN connection costs more
		// than the query it guards.
		lw.armSweep(s)
	}
	if err != nil {
		return bridge.Actor{}, credential{}, err
	}
	return c.actor, c.credential(), nil
}

// armSweep schedules expire a TTL from now. Call with mu held.
func (lw *loginWatch) armSweep(s *Server) {
	sw := &sweeper{}
	sw.t = time.AfterFunc(cmp.Or(lw.ttl, credentialTTL), func() { lw.expire(s, sw) })
	lw.sweep = sw
}

// expire forgets credentials past their time, and stops listening once
// nothing needs it.
func (lw *loginWatch) expire(s *Server, sw *sweeper) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if lw.sweep != sw {
		return
	}
	now := s.now()
	for k, c := range lw.creds {
		if !now.Before(c.until) {
			delete(lw.creds, k)
		}
	}
	if len(lw.creds) > 0 {
		lw.armSweep(s)
		return
	}
	lw.sweep = nil
	lw.stopIfUnused()
}

// forget drops a credential this process has just revoked, so that its
// next use is refused without waiting for the announcement.
func (s *Server) forget(method, secret string) {
	lw := &s.logins
	key := sha256.Sum256([]byte(method + "\x00" + secret))
	lw.mu.Lock()
	defer lw.mu.Unlock()
	delete(lw.creds, key)
	lw.gen++
}

// credential returns the request's view; each request gets its own copy
// of the portal login.
func (c cachedCredential) credential() credential {
	switch c.method {
	case "cookie":
		ps := c.portal
		return credential{method: "cookie", portal: &ps}
	default:
		return credential{method: c.method, expires: c.expires}
	}
}

// sooner is the earlier of a and b, where a zero b is no bound.
func sooner(a, b time.Time) time.Time {
	if !b.IsZero() && b.Before(a) {
		return b
	}
	return a
}

// credentialContext derives from ctx a context that ends when the request's
// credential does: at a token's expiry; at a portal login's expiry, its
// idle expiry, or its revocation; when a keypair is deleted or its user
// locked. Run long-lived connections under it.
func (s *Server) credentialContext(ctx context.Context, r *http.Request) (context.Context, context.CancelFunc) {
	cred := stateFrom(r.Context()).cred
	switch {
	case cred.method == "cookie" && cred.portal != nil:
		return s.portalContext(ctx, r, cred.portal.ID)
	case cred.method == "keypair":
		// Nothing announces a keypair's deletion or its user being
		// locked: ask again every credentialTTL, as the app proxy's
		// cache does for what it remembers.
		ctx, cancel := context.WithCancelCause(ctx)
		go s.recheck(ctx, cancel, errCredentialRevoked, time.Now().Add(credentialTTL), func(ctx context.Context) (time.Time, error) {
			_, _, err := s.b.KeypairSecret(ctx, cred.accessKey)
			return time.Now().Add(credentialTTL), err
		})
		return ctx, func() { cancel(nil) }
	case !cred.expires.IsZero():
		return context.WithDeadlineCause(ctx, cred.expires, errCredentialExpired)
	default:
		return context.WithCancel(ctx)
	}
}

// portalContext is credentialContext for a portal login: its revocation
// is heard (loginWatch), its expiry is a deadline, and at its idle expiry
// it is checked again, since using the portal elsewhere moves that expiry.
func (s *Server) portalContext(ctx context.Context, r *http.Request, id string) (context.Context, context.CancelFunc) {
	token := ""
	if ck, err := r.Cookie(sessionCookie); err == nil {
		token = ck.Value
	}
	ctx, cancelCause := context.WithCancelCause(ctx)
	lw := &s.logins
	c := &watchedConn{cancel: cancelCause}
	ready := lw.add(s, id, c)
	cancel := func() {
		cancelCause(nil)
		lw.remove(id, c)
	}
	// A revocation committed between the check at authentication and the
	// listening above would be missed: once listening, check the login
	// once more.
	select {
	case <-ready:
	case <-ctx.Done():
	}
	_, ps, err := s.b.ActorForPortalSession(ctx, token)
	if err != nil {
		cancelCause(errSignedOut)
		return ctx, cancel
	}
	ctx, cancelDeadline := context.WithDeadlineCause(ctx, ps.ExpiresAt, errCredentialExpired)
	// At the idle expiry the login has ended unless it was used meanwhile
	// (another tab): ask then. Asking is not itself a use, since the bridge
	// refuses a login past its idle expiry before it records any use.
	go s.recheck(ctx, cancelCause, errCredentialExpired, ps.IdleExpiresAt, func(ctx context.Context) (time.Time, error) {
		_, ps, err := s.b.ActorForPortalSession(ctx, token)
		return ps.IdleExpiresAt, err
	})
	return ctx, func() {
		cancelDeadline()
		cancel()
	}
}

// recheck asks check at the time given, and again at the time check
// returns, until ctx ends; it ends ctx with cause once check refuses the
// credential. A check that fails otherwise (the database unreachable) is
// tried again a credentialTTL later: a blip does not hang up on everyone.
func (s *Server) recheck(ctx context.Context, cancel context.CancelCauseFunc, cause error, at time.Time, check func(context.Context) (time.Time, error)) {
	t := time.NewTimer(time.Until(at))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		next, err := check(ctx)
		switch k := bridge.KindOf(err); {
		case err == nil:
		case ctx.Err() != nil:
			return
		case k == bridge.KindNotFound || k == bridge.KindForbidden:
			cancel(cause)
			return
		default:
			s.log.Warn("checking the credential of an open connection; trying again", "err", err, "in", credentialTTL)
			next = time.Now().Add(credentialTTL)
		}
		t.Reset(time.Until(next))
	}
}
