package bridge

// Session agents, seen from the gateway: their secrets, the registry of
// live tunnels (session → *tunnel.Conn), and what their report streams say
// (service readiness, metrics, activity, stopping). Idle culling, which
// acts on those reports, is in culler.go.
//
// One session, one agent: a second agent for a session whose agent is
// connected is refused at its hello; once the first tunnel is dead (Done),
// an agent reconnecting with the same secret is accepted, which is how
// sessions survive a gateway restart.
//
// The registry is per gateway process. With several replicas an agent is
// connected to one of them, which records its Config.AdvertiseURL with the
// agent (session_agents.gateway_url); UseSession on another replica answers
// AgentElsewhere with that URL, and the API forwards the request there.
// Metrics, readiness and activity go to PostgreSQL, so reads and idle
// culling work from any replica.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/slurmgate/slurmgate/tunnel"
)

// agentSecretBytes is the size of a session's agent secret.
const agentSecretBytes = 32

// metricsPersistEvery bounds how often one session's metrics are written to
// PostgreSQL; the latest value is always in memory on the replica that holds
// the tunnel.
const metricsPersistEvery = 10 * time.Second

// agentRegistry holds the live tunnels of this gateway process.
type agentRegistry struct {
	mu    sync.Mutex
	links map[string]*agentLink
}

// agentLink is one connected agent and what its reports said last.
type agentLink struct {
	conn    *tunnel.Conn
	session string
	userID  int64
	cpus    int

	mu           sync.Mutex
	services     []tunnel.ServiceState
	reported     bool // a first (full) report has arrived
	ready        bool
	metrics      *tunnel.Metrics
	metricsAt    time.Time
	persistedAt  time.Time // when metrics were last written to the database
	lastActivity time.Time
	flushedAct   time.Time // the activity time last written to the database
}

func (l *agentLink) live() bool {
	select {
	case <-l.conn.Done():
		return false
	default:
		return true
	}
}

// touch records activity now.
func (l *agentLink) touch(now time.Time) {
	l.mu.Lock()
	if now.After(l.lastActivity) {
		l.lastActivity = now
	}
	l.mu.Unlock()
}

func (r *agentRegistry) get(session string) *agentLink {
	r.mu.Lock()
	defer r.mu.Unlock()
	if l := r.links[session]; l != nil && l.live() {
		return l
	}
	return nil
}

// add registers l unless a live agent holds the session already.
func (r *agentRegistry) add(l *agentLink) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old := r.links[l.session]; old != nil && old.live() {
		return false
	}
	if r.links == nil {
		r.links = map[string]*agentLink{}
	}
	r.links[l.session] = l
	return true
}

// remove unregisters l, unless a newer agent has replaced it.
func (r *agentRegistry) remove(l *agentLink) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.links[l.session] == l {
		delete(r.links, l.session)
	}
}

func (r *agentRegistry) all() []*agentLink {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*agentLink, 0, len(r.links))
	for _, l := range r.links {
		out = append(out, l)
	}
	return out
}

func hashSecret(secret []byte) []byte {
	h := sha256.Sum256(secret)
	return h[:]
}

// IssueAgentSecret makes a new secret for a session's agent and stores only
// its hash; the caller writes the secret into the agent's 0600 config file
// and forgets it. Issuing again (a resubmission) replaces the old secret.
func (b *Bridge) IssueAgentSecret(ctx context.Context, sessionID string) (string, error) {
	raw := make([]byte, agentSecretBytes)
	rand.Read(raw)
	_, err := b.db.Exec(ctx, `INSERT INTO session_agents (session_id, secret_hash) VALUES ($1, $2)
		ON CONFLICT (session_id) DO UPDATE SET secret_hash = EXCLUDED.secret_hash`, sessionID, hashSecret(raw))
	if err != nil {
		return "", fmt.Errorf("storing the agent secret of session %s: %w", sessionID, err)
	}
	return base64.RawURLEncoding.EncodeToString(raw), nil
}

// errAgentRefused is the one answer to an unknown session or a wrong
// secret, so that neither can be told from the other.
var errAgentRefused = errors.New("unknown session or wrong secret")

// AuthenticateAgent checks an agent's hello: the session exists and is
// live, the secret matches its hash (in constant time), and no other agent
// of the session is connected. It is tunnel.AcceptConfig.Authenticate.
func (b *Bridge) AuthenticateAgent(ctx context.Context, sessionID, secret string) error {
	raw, err := base64.RawURLEncoding.DecodeString(secret)
	if err != nil || !validUUID(sessionID) {
		return errAgentRefused
	}
	var want []byte
	var state SessionState
	err = b.db.QueryRow(ctx, `SELECT a.secret_hash, s.state FROM session_agents a JOIN sessions s ON s.id = a.session_id
		WHERE a.session_id = $1`, sessionID).Scan(&want, &state)
	if errors.Is(err, pgx.ErrNoRows) {
		return errAgentRefused
	}
	if err != nil {
		return fmt.Errorf("the gateway cannot check the secret now (database: %v); retry", err)
	}
	if subtle.ConstantTimeCompare(hashSecret(raw), want) != 1 {
		return errAgentRefused
	}
	if !state.Live() {
		return fmt.Errorf("session %s has ended (%s); the agent should exit", sessionID, state)
	}
	if b.agents.get(sessionID) != nil {
		return fmt.Errorf("an agent of session %s is connected already; a second one is refused", sessionID)
	}
	return nil
}

// ServeAgent registers an authenticated agent's tunnel and handles the
// streams it opens (its reports) until the tunnel closes or ctx ends. A
// second live agent for the same session is refused and closed.
func (b *Bridge) ServeAgent(ctx context.Context, conn *tunnel.Conn) error {
	s, err := b.sessionByID(ctx, conn.SessionID())
	if err != nil {
		conn.Close()
		return err
	}
	l := &agentLink{conn: conn, session: s.ID, userID: s.userID, cpus: s.CPUs}
	if !b.agents.add(l) {
		conn.Close()
		return conflict("an agent of session %s is connected already", s.ID)
	}
	defer b.agents.remove(l)
	defer conn.Close()

	var first bool
	var connectedAt time.Time
	err = b.db.QueryRow(ctx, `UPDATE session_agents SET connected_at = now(), agent_version = $2, gateway_url = NULLIF($3, '')
		WHERE session_id = $1 RETURNING (SELECT connected_at IS NULL FROM session_agents WHERE session_id = $1), connected_at`,
		s.ID, conn.AgentVersion(), b.cfg.AdvertiseURL).Scan(&first, &connectedAt)
	if err != nil {
		return fmt.Errorf("recording the agent of session %s: %w", s.ID, err)
	}
	if b.cfg.AdvertiseURL != "" {
		// Forget the tunnel's replica when it closes, unless the agent has
		// already reconnected, here or to another replica: connected_at
		// tells this connection from a later one.
		defer b.db.Exec(context.WithoutCancel(ctx), `UPDATE session_agents SET gateway_url = NULL
			WHERE session_id = $1 AND connected_at = $2 AND gateway_url = $3`, s.ID, connectedAt, b.cfg.AdvertiseURL)
	}
	if first {
		b.event(ctx, s.ID, "agent", fmt.Sprintf("agent %s connected", cmpOr(conn.AgentVersion(), "(no version)")))
	}
	b.log.Info("agent connected", "session", s.ID, "version", conn.AgentVersion(), "reconnect", !first)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-conn.Done():
		case <-ctx.Done():
			conn.Close()
		}
	}()
	var wg sync.WaitGroup
	defer wg.Wait()
	// One report stream at a time: the agent runs as the researcher, who
	// can read its secret and dial in with a client of their own, and each
	// stream costs the gateway a goroutine and a buffer.
	var reporting atomic.Bool
	for {
		st, err := conn.AcceptStream(ctx)
		if err != nil {
			b.log.Info("agent disconnected", "session", s.ID)
			b.flushActivity(context.WithoutCancel(ctx), l)
			return nil
		}
		if st.Header.Kind != tunnel.KindReport {
			st.Reject(fmt.Sprintf("the gateway accepts only %s streams from agents, not %q", tunnel.KindReport, st.Header.Kind))
			continue
		}
		if !reporting.CompareAndSwap(false, true) {
			st.Reject("a report stream of this agent is open already; the gateway takes one at a time")
			continue
		}
		if err := st.Accept(); err != nil {
			reporting.Store(false)
			st.Close()
			continue
		}
		wg.Go(func() {
			defer reporting.Store(false)
			defer st.Close()
			for rep, err := range tunnel.Reports(st) {
				if err != nil {
					b.log.Warn("agent report stream", "session", s.ID, "err", err)
					return
				}
				if err := b.handleReport(ctx, l, rep); err != nil && ctx.Err() == nil {
					b.log.Warn("agent report", "session", s.ID, "err", err)
				}
			}
		})
	}
}

// event records a timeline entry that is not a state change.
func (b *Bridge) event(ctx context.Context, id, kind, msg string) {
	if err := recordEvent(ctx, b.db, id, kind, "", "", msg); err != nil {
		b.log.Warn("recording a session event", "session", id, "kind", kind, "err", err)
	}
}

// handleReport applies one report of a session's agent.
func (b *Bridge) handleReport(ctx context.Context, l *agentLink, rep tunnel.Report) error {
	now := b.now()
	var errs []error
	l.mu.Lock()
	firstReport := !l.reported
	l.reported = true
	var changed []tunnel.ServiceState
	if rep.Services != nil || firstReport {
		changed = serviceChanges(l.services, rep.Services)
		l.services = slices.Clone(rep.Services)
	}
	allReady := !l.ready && servicesReady(l.services)
	if allReady {
		l.ready = true
		l.lastActivity = now // idleness counts from readiness, not from the job's start
	}
	var persistMetrics *tunnel.Metrics
	if rep.Metrics != nil {
		l.metrics, l.metricsAt = rep.Metrics, now
		if now.Sub(l.persistedAt) >= metricsPersistEvery {
			l.persistedAt, persistMetrics = now, rep.Metrics
		}
		if b.busy(rep.Metrics, l.cpus) {
			l.lastActivity = now
		}
	}
	if a := rep.Activity; a != nil && (a.Requests > 0 || a.Bytes > 0 || a.Streams > 0) {
		l.lastActivity = now
	}
	services := l.services
	l.mu.Unlock()

	if rep.Services != nil || firstReport {
		if services == nil {
			services = []tunnel.ServiceState{}
		}
		js, _ := json.Marshal(withoutShapes(services))
		if _, err := b.db.Exec(ctx, `UPDATE session_agents SET services = $2 WHERE session_id = $1`, l.session, js); err != nil {
			errs = append(errs, err)
		}
		for _, sv := range changed {
			if sv.Error != "" {
				b.event(ctx, l.session, "service", fmt.Sprintf("service %s is not ready: %s", sv.Name, sv.Error))
			}
		}
	}
	if allReady {
		if err := b.agentReady(ctx, l.session, services); err != nil {
			errs = append(errs, err)
		}
	}
	if persistMetrics != nil {
		js, _ := json.Marshal(persistMetrics)
		if _, err := b.db.Exec(ctx, `UPDATE session_agents SET metrics = $2, metrics_at = $3 WHERE session_id = $1`,
			l.session, js, now); err != nil {
			errs = append(errs, err)
		}
	}
	if rep.Stopping != "" {
		if _, err := b.db.Exec(ctx, `UPDATE session_agents SET stopping = $2 WHERE session_id = $1`, l.session, rep.Stopping); err != nil {
			errs = append(errs, err)
		}
		b.event(ctx, l.session, "stopping", "the agent is stopping the session: "+rep.Stopping)
	}
	if rep.Exit != nil {
		msg := fmt.Sprintf("the command exited with code %d", rep.Exit.Code)
		if rep.Exit.Error != "" {
			msg += ": " + rep.Exit.Error
		}
		b.event(ctx, l.session, "exited", msg)
	}
	return errors.Join(errs...)
}

// busy reports whether the metrics show the session working: CPU cores or
// any GPU at or above the idle threshold.
func (b *Bridge) busy(m *tunnel.Metrics, cpus int) bool {
	if cpus > 0 && m.CPUCores/float64(cpus) >= b.cfg.IdleThreshold {
		return true
	}
	for _, g := range m.GPUs {
		if float64(g.UtilizationPct)/100 >= b.cfg.IdleThreshold {
			return true
		}
	}
	return false
}

// withoutShapes drops how each service's requests are shaped, which holds
// the app's credential: it is needed only while the agent is connected,
// and the agent reports it again on every connection.
func withoutShapes(ss []tunnel.ServiceState) []tunnel.ServiceState {
	out := slices.Clone(ss)
	for i := range out {
		out[i].Shape = nil
	}
	return out
}

// serviceChanges returns the services of now whose readiness or error
// differs from before.
func serviceChanges(before, now []tunnel.ServiceState) []tunnel.ServiceState {
	var out []tunnel.ServiceState
	for _, s := range now {
		i := slices.IndexFunc(before, func(o tunnel.ServiceState) bool { return o.Name == s.Name })
		if i < 0 || before[i] != s {
			out = append(out, s)
		}
	}
	return out
}

func servicesReady(ss []tunnel.ServiceState) bool {
	for _, s := range ss {
		if !s.Ready {
			return false
		}
	}
	return true
}

// agentReady records that the agent and all its services are ready and, if
// the session is PREPARING, makes it RUNNING. A session still PENDING (the
// reconciler has not yet seen its job start) is promoted by the reconciler
// when it does, by ready_at.
func (b *Bridge) agentReady(ctx context.Context, id string, services []tunnel.ServiceState) error {
	if _, err := b.db.Exec(ctx, `UPDATE session_agents SET ready_at = now(), last_activity_at = now() WHERE session_id = $1`, id); err != nil {
		return err
	}
	s, err := b.sessionByID(ctx, id)
	if err != nil || s.State != StatePreparing {
		return err
	}
	return b.transition(ctx, s, StateRunning, "ready", readyMessage(services), nil)
}

func readyMessage(services []tunnel.ServiceState) string {
	if len(services) == 0 {
		return "the agent is ready"
	}
	names := make([]string, len(services))
	for i, s := range services {
		names[i] = s.Name
	}
	return "the agent and its services are ready: " + strings.Join(names, ", ")
}

// promoteIfReady moves a PREPARING session whose agent has reported ready
// to RUNNING; the reconciler calls it after a job starts.
func (b *Bridge) promoteIfReady(ctx context.Context, s Session) error {
	if s.State != StatePreparing {
		return nil
	}
	var services []tunnel.ServiceState
	err := b.db.QueryRow(ctx, `SELECT services FROM session_agents WHERE session_id = $1 AND ready_at IS NOT NULL`, s.ID).Scan(&services)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	return b.transition(ctx, s, StateRunning, "ready", readyMessage(services), nil)
}

// runByAgent reports whether the session's job runs an agent (a secret was
// issued for it).
func (b *Bridge) runByAgent(ctx context.Context, id string) bool {
	var ok bool
	b.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM session_agents WHERE session_id = $1)`, id).Scan(&ok)
	return ok
}

// Agent is a session's connected agent, handed to the owner who uses it
// (app proxy, terminal, exec, TCP).
type Agent struct {
	// SessionID is the session the agent serves.
	SessionID string
	// Conn is the tunnel to the agent; it is closed when the agent
	// disconnects (Conn.Done).
	Conn *tunnel.Conn
	link *agentLink
	b    *Bridge
}

// Touch records activity on the session (a proxied request, terminal input)
// so idle culling leaves it alone.
func (a *Agent) Touch() { a.link.touch(a.b.now()) }

// Service reports whether the session has a service by that name and it is
// ready; the error says which it is not, for a person. For a ready HTTP
// service it also returns how the gateway must shape its requests, or nil
// when the agent does that itself.
func (a *Agent) Service(name string) (*tunnel.HTTPShape, error) {
	a.link.mu.Lock()
	defer a.link.mu.Unlock()
	for _, s := range a.link.services {
		if s.Name == name {
			switch {
			case s.Ready:
				return s.Shape, nil
			case s.Error != "":
				return nil, &Error{Kind: KindUnavailable, Message: fmt.Sprintf("service %s of session %s is not ready: %s", name, a.SessionID, s.Error)}
			}
			return nil, &Error{Kind: KindUnavailable, Message: fmt.Sprintf("service %s of session %s is not ready yet; retry in a moment", name, a.SessionID)}
		}
	}
	if !a.link.reported {
		return nil, &Error{Kind: KindUnavailable, Message: fmt.Sprintf("the agent of session %s has not reported its services yet; retry in a moment", a.SessionID)}
	}
	return nil, notFound("service", name+" of session "+a.SessionID)
}

// UseSession returns the connected agent of a session, for its owner only.
// Project and domain admins may see a session (and end it) but not act
// inside it: everything reached through the agent runs as the owner's uid,
// so using it would be acting as the owner. They get forbidden; whoever may
// not see the session gets not found.
//
// The owner's check needs no database query when the agent is connected
// here: the app proxy calls this on every request.
func (b *Bridge) UseSession(ctx context.Context, a Actor, id string) (*Agent, error) {
	if l := b.agents.get(id); l != nil && a.UserID != 0 && l.userID == a.UserID {
		return &Agent{SessionID: id, Conn: l.conn, link: l, b: b}, nil
	}
	s, err := b.Session(ctx, a, id)
	if err != nil {
		return nil, err
	}
	if s.userID != a.UserID {
		return nil, forbidden("only the owner (%s) uses session %s's apps, terminals and commands; admins may see and end it", s.Owner, id)
	}
	switch {
	case s.State == StatePending:
		return nil, &Error{Kind: KindUnavailable, Message: fmt.Sprintf("session %s has not started yet (%s)", id, cmpOr(s.StatusMessage, "pending"))}
	case !s.State.Live() || s.State == StateTerminating:
		return nil, conflict("session %s is %s", id, s.State)
	}
	var at *string
	if err := b.db.QueryRow(ctx, `SELECT gateway_url FROM session_agents WHERE session_id = $1`, id).Scan(&at); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, err
	}
	if at != nil && *at != b.cfg.AdvertiseURL {
		return nil, &AgentElsewhere{SessionID: id, GatewayURL: *at, err: &Error{Kind: KindUnavailable,
			Message: fmt.Sprintf("the agent of session %s is connected to the gateway replica at %s, not to this one", id, *at)}}
	}
	return nil, &Error{Kind: KindUnavailable, Message: fmt.Sprintf("the agent of session %s is not connected to this gateway (the session is %s); it reconnects within seconds after a gateway restart", id, s.State)}
}

// AgentElsewhere is UseSession's answer when the session's agent is
// connected to another gateway replica, which the request may be forwarded
// to. It is returned only to whoever may use the session, and it is also
// an *Error of KindUnavailable for callers that do not forward.
type AgentElsewhere struct {
	SessionID string
	// GatewayURL is the replica's server.advertise_url.
	GatewayURL string
	err        *Error
}

func (e *AgentElsewhere) Error() string { return e.err.Error() }
func (e *AgentElsewhere) Unwrap() error { return e.err }

// App is one of a session's services and its readiness.
type App struct {
	Name  string `json:"name"`
	Ready bool   `json:"ready"`
	// Error says why it is not ready.
	Error string `json:"error,omitempty"`
}

// SessionApps lists a session's services as its agent last reported them.
func (b *Bridge) SessionApps(ctx context.Context, a Actor, id string) ([]App, bool, error) {
	if _, err := b.Session(ctx, a, id); err != nil {
		return nil, false, err
	}
	var services []tunnel.ServiceState
	connected := false
	if l := b.agents.get(id); l != nil {
		connected = true
		l.mu.Lock()
		services = slices.Clone(l.services)
		l.mu.Unlock()
	} else {
		err := b.db.QueryRow(ctx, `SELECT services FROM session_agents WHERE session_id = $1`, id).Scan(&services)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return nil, false, err
		}
	}
	apps := make([]App, len(services))
	for i, s := range services {
		apps[i] = App{Name: s.Name, Ready: s.Ready && connected, Error: s.Error}
	}
	return apps, connected, nil
}

// SessionMetrics is a session's resource use as its agent last reported it.
type SessionMetrics struct {
	SessionID string `json:"session_id"`
	// At is when the agent measured; nil when it has not reported yet.
	At *time.Time `json:"at,omitempty"`
	// Allocated is what the session holds, to read the use against.
	Allocated Allocation `json:"allocated"`
	*tunnel.Metrics
}

// Allocation is what a session was given.
type Allocation struct {
	CPUs     int   `json:"cpus"`
	MemoryMB int64 `json:"memory_mb"`
	GPUs     int   `json:"gpus"`
}

// SessionMetrics returns the latest metrics of a session: from the agent's
// tunnel when it is connected here, else the copy in the database (written
// every few seconds by whichever replica holds the tunnel).
func (b *Bridge) SessionMetrics(ctx context.Context, a Actor, id string) (SessionMetrics, error) {
	s, err := b.Session(ctx, a, id)
	if err != nil {
		return SessionMetrics{}, err
	}
	out := SessionMetrics{SessionID: id, Allocated: Allocation{CPUs: s.CPUs, MemoryMB: s.MemoryMB, GPUs: s.GPUs}}
	if l := b.agents.get(id); l != nil {
		l.mu.Lock()
		m, at := l.metrics, l.metricsAt
		l.mu.Unlock()
		if m != nil {
			out.Metrics, out.At = m, &at
			return out, nil
		}
	}
	var m *tunnel.Metrics
	var at *time.Time
	err = b.db.QueryRow(ctx, `SELECT metrics, metrics_at FROM session_agents WHERE session_id = $1`, id).Scan(&m, &at)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return SessionMetrics{}, err
	}
	out.Metrics, out.At = m, at
	return out, nil
}

// flushActivity writes a link's latest activity time to the database.
func (b *Bridge) flushActivity(ctx context.Context, l *agentLink) {
	l.mu.Lock()
	at := l.lastActivity
	stale := at.After(l.flushedAct)
	l.mu.Unlock()
	if !stale {
		return
	}
	_, err := b.db.Exec(ctx, `UPDATE session_agents SET last_activity_at = GREATEST(last_activity_at, $2) WHERE session_id = $1`, l.session, at)
	if err != nil {
		b.log.Warn("recording session activity", "session", l.session, "err", err)
		return
	}
	l.mu.Lock()
	if at.After(l.flushedAct) {
		l.flushedAct = at
	}
	l.mu.Unlock()
}

// stopAgent asks a session's agent, if it is connected here, to stop the
// session (services, container) before Slurm's signal does; best effort.
func (b *Bridge) stopAgent(ctx context.Context, id, reason string) {
	l := b.agents.get(id)
	if l == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := l.conn.OpenStream(ctx, tunnel.Header{Kind: tunnel.KindStop, Reason: reason})
	if err != nil {
		b.log.Info("asking the agent to stop", "session", id, "err", err)
		return
	}
	st.Close()
}
