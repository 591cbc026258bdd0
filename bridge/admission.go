package bridge

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// usage is what a user, project or domain holds in live sessions. Pending
// sessions count too: a queued session never waits on its own quota, so
// Slurm's pending reasons are about the cluster, not about bookkeeping.
type usage struct {
	live, pending int64
	cpus, memMB   int64
	gpus          map[string]int64 // by type; "" is the total of all types
	// untypedGPUs may sit on any type, so they count against every typed limit.
	untypedGPUs int64
}

func scopeUsage(ctx context.Context, tx pgx.Tx, col string, id int64) (usage, error) {
	u := usage{gpus: map[string]int64{}}
	rows, err := tx.Query(ctx, fmt.Sprintf(`SELECT gpu_type, count(*), count(*) FILTER (WHERE state = 'PENDING'),
		sum(cpus), sum(memory_mb), sum(gpus) FROM sessions
		WHERE %s = $1 AND state = ANY($2) GROUP BY gpu_type`, col), id, liveStates)
	if err != nil {
		return u, err
	}
	defer rows.Close()
	for rows.Next() {
		var typ string
		var live, pending, cpus, mem, gpus int64
		if err := rows.Scan(&typ, &live, &pending, &cpus, &mem, &gpus); err != nil {
			return u, err
		}
		u.live += live
		u.pending += pending
		u.cpus += cpus
		u.memMB += mem
		u.gpus[""] += gpus
		if typ != "" {
			u.gpus[typ] += gpus
		} else {
			u.untypedGPUs += gpus
		}
	}
	return u, rows.Err()
}

// scope is one level whose policy a session must fit.
type scope struct {
	name, label, col string
	id               int64
}

// admit checks every policy level and records the session.
//
// Concurrent creates must never overshoot a quota, so summing the scopes' use
// and inserting the session are serialised per bounded scope (a domain limit
// serialises the domain's creates), and every create waiting for such a lock
// pays for the whole locked section: it must cost no network round trip. So
// the policies are read first, unlocked (resolve reads them with the rest; a
// policy edit is not ordered against admissions anyway), and turned into
// bounds in Go, which owns their meaning; then one pipeline with one Sync
// runs admission_check (migration 0007: the locks, the sums, the comparison),
// the insert and the session lock as one implicit transaction. The admission
// locks are held for the server's work and the commit's flush only; a create
// with no bounds takes none.
//
// The session lock (see withSessionLock) is taken in the same transaction,
// so it is held before the row is visible: no reconciler can see the
// session unlocked, and the creator submits it without reading it back. The
// caller owns the returned admission and must release it.
func (b *Bridge) admit(ctx context.Context, p *sessionPlan) (*admission, error) {
	scopes := []scope{
		{"user", p.user.Username, "user_id", p.user.ID},
		{"project", p.project.Path(), "project_id", p.project.ID},
		{"domain", p.project.Domain, "domain_id", p.project.DomainID},
	}
	pols := scopePolicies(p.policies, scopes)
	var bs []bound
	for i, s := range scopes {
		if pols[i] == nil {
			continue
		}
		more, err := bounds(s, *pols[i], p.req, p.sg.Name)
		if err != nil {
			return nil, err
		}
		bs = append(bs, more...)
	}

	ad := &admission{id: newSessionID()}
	ad.lockKey = sessionLockKey(ad.id)
	var key *string
	if p.req.IdempotencyKey != "" {
		key = &p.req.IdempotencyKey
	}
	var maxWait *int64
	if p.req.MaxWaitS > 0 {
		maxWait = &p.req.MaxWaitS
	}
	env := maps.Clone(p.req.Environment)
	if env == nil {
		env = map[string]string{}
	}
	outDir := filepath.Join(b.cfg.JobOutputDir, p.user.Username)
	// The agent's secret is issued with the row: one commit fewer on the
	// create path. A resubmission by the reconciler issues a new one.
	var secretHash []byte
	if b.cfg.AgentBinary != "" {
		raw := make([]byte, agentSecretBytes)
		rand.Read(raw)
		ad.secret, secretHash = base64.RawURLEncoding.EncodeToString(raw), hashSecret(raw)
	}

	batch := &pgx.Batch{}
	if len(bs) > 0 {
		var kinds, metrics, types []string
		var maxes, asked []int64
		for _, x := range bs {
			kinds, metrics, types = append(kinds, x.s.name), append(metrics, x.metric), append(types, x.gpuType)
			maxes, asked = append(maxes, x.max), append(asked, x.asked)
		}
		batch.Queue(`SELECT admission_check($1, $2, $3, $4, $5, $6, $7, $8)`,
			p.project.DomainID, p.project.ID, p.user.ID, kinds, metrics, types, maxes, asked)
	}
	// The session, its first event, its agent's secret and the session lock
	// in one statement. Should the transaction fail after the lock was
	// taken, release gives it up.
	batch.Queue(`WITH s AS (
			INSERT INTO sessions (id, name, user_id, project_id, domain_id, scaling_group, partition,
				type, image, cpus, memory_mb, gpus, gpu_type, time_limit_s, environment, command, mounts, idempotency_key,
				max_wait_s, state, sub_state, stdout_path, stderr_path)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $23, $17, $18, 'PENDING', $19, $20, $21)
			RETURNING id, created_at),
		e AS (INSERT INTO session_events (session_id, kind, from_state, to_state, message)
			SELECT id, 'created', '', 'PENDING', $22 FROM s),
		a AS (INSERT INTO session_agents (session_id, secret_hash) SELECT id, $24 FROM s WHERE $24::bytea IS NOT NULL)
		SELECT created_at, pg_try_advisory_lock(8, $25::int) FROM s`,
		ad.id, p.req.Name, p.user.ID, p.project.ID, p.project.DomainID, p.sg.Name, p.sg.Partitions[0], p.req.Type,
		p.image.Ref(), p.req.CPUs, p.req.MemoryMB, p.req.GPUs, p.req.GPUType, p.req.TimeLimitS, env, p.req.Command,
		key, maxWait, subSubmitting, filepath.Join(outDir, ad.id+".out"), filepath.Join(outDir, ad.id+".err"),
		fmt.Sprintf("%s session: %s, %d CPUs, %d MiB, %s in %s", p.req.Type, p.image.Ref(), p.req.CPUs, p.req.MemoryMB, gpuWords(p.req.GPUs, p.req.GPUType), p.sg.Name),
		p.mounts, secretHash, ad.lockKey).QueryRow(func(r pgx.Row) error { return r.Scan(&ad.createdAt, &ad.locked) })

	conn, err := b.db.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	ad.conn = conn
	err = conn.SendBatch(ctx, batch).Close()
	if err == nil {
		ad.session = p.session(ad.id, ad.createdAt, env, key, maxWait, outDir)
		return ad, nil
	}
	ad.locked = true // whether or not the commit failed after it: unlock
	ad.release(ctx)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == quotaSQLState && p.req.IdempotencyKey != "" {
		// The quota is checked before the key's uniqueness: a retry that
		// overlapped its first attempt can find the quota full of that very
		// session. Then the session is the answer, not the refusal.
		if s, err2 := b.sessionByKey(ctx, p.user.ID, p.req.IdempotencyKey); err2 == nil {
			return &admission{id: s.ID, session: s}, nil
		}
	}
	if errors.As(err, &pgErr) && pgErr.Code == quotaSQLState {
		var i int
		var inUse int64
		if _, serr := fmt.Sscan(pgErr.Detail, &i, &inUse); serr != nil || i < 0 || i >= len(bs) {
			return nil, fmt.Errorf("admission_check refused with detail %q: %w", pgErr.Detail, err)
		}
		return nil, bs[i].refusal(inUse)
	}
	err = dbError(err, "session with idempotency key "+p.req.IdempotencyKey)
	if KindOf(err) == KindConflict && p.req.IdempotencyKey != "" {
		// A concurrent create with the same key won; theirs is ours.
		if s, err2 := b.sessionByKey(ctx, p.user.ID, p.req.IdempotencyKey); err2 == nil {
			return &admission{id: s.ID, session: s}, nil
		}
	}
	return nil, err
}

// admission is a session admit has recorded. When locked, this gateway holds
// the session lock on conn, taken before the row became visible, and session
// is the row as written; otherwise someone else submits it (the reconciler,
// or the create that won a race on the idempotency key).
type admission struct {
	id        string
	session   Session
	createdAt time.Time
	secret    string // the agent's secret, issued with the row; "" without an agent
	conn      *pgxpool.Conn
	lockKey   int32
	locked    bool
}

// release gives up the session lock and the connection holding it. A lock
// that cannot be given up back is dropped with its connection, so a lock
// never outlives its use on a pooled connection.
func (ad *admission) release(ctx context.Context) {
	if ad.conn == nil {
		return
	}
	if ad.locked {
		if _, err := ad.conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(8, $1::int)`, ad.lockKey); err != nil {
			ad.conn.Conn().Close(context.WithoutCancel(ctx))
		}
		ad.locked = false
	}
	ad.conn.Release()
	ad.conn = nil
}

// quotaSQLState is what admission_check raises for a broken bound.
const quotaSQLState = "SGQ01"

// scopePolicies picks the policies of scopes out of pols; nil where a scope
// has none.
func scopePolicies(pols []Policy, scopes []scope) []*Policy {
	out := make([]*Policy, len(scopes))
	for i := range pols {
		for j, s := range scopes {
			if pols[i].Scope == s.name && pols[i].TargetID == s.id {
				out[j] = &pols[i]
			}
		}
	}
	return out
}

// bound is one quota a new session must fit: the scope's use of metric, over
// its live sessions, plus asked may not exceed max. admission_check
// (migration 0007) evaluates bounds under the lock; Go decides which apply.
type bound struct {
	s     scope
	limit string // the policy's name for it, as refusals report it
	// metric is what admission_check sums: sessions, pending, cpus,
	// memory_mb or gpus.
	metric string
	// gpuType narrows metric gpus: "" is every type together; a type counts
	// its own GPUs and untyped ones, which may sit on any type.
	gpuType    string
	max, asked int64
}

// bounds returns the bounds pol puts on req, or the refusal of a rule that
// does not depend on what is in use (scaling group, lifetime).
func bounds(s scope, pol Policy, req SessionRequest, sg string) ([]bound, error) {
	refuse := func(limit string, max, asked int64, format string, args ...any) error {
		return &Error{Kind: KindQuota, Message: fmt.Sprintf(format, args...),
			Quota: &QuotaExceeded{Scope: s.name, ScopeName: s.label, Limit: limit, Max: max, Requested: asked}}
	}
	if pol.AllowedScalingGroups != nil && !slices.Contains(pol.AllowedScalingGroups, sg) {
		return nil, refuse("allowed_scaling_groups", 0, 0, "%s %s may not use scaling group %s (allowed: %v)", s.name, s.label, sg, pol.AllowedScalingGroups)
	}
	if v := pol.MaxSessionLifetimeS; v != nil && req.TimeLimitS > *v {
		return nil, refuse("max_session_lifetime_s", *v, req.TimeLimitS, "%s %s allows sessions of at most %s; %s was asked",
			s.name, s.label, time.Duration(*v)*time.Second, time.Duration(req.TimeLimitS)*time.Second)
	}
	var out []bound
	add := func(limit, metric, gpuType string, max, asked int64) {
		out = append(out, bound{s: s, limit: limit, metric: metric, gpuType: gpuType, max: max, asked: asked})
	}
	if v := pol.MaxConcurrentSessions; v != nil {
		add("max_concurrent_sessions", "sessions", "", int64(*v), 1)
	}
	if v := pol.MaxPendingSessions; v != nil {
		add("max_pending_sessions", "pending", "", int64(*v), 1)
	}
	if v := pol.MaxCPUs; v != nil {
		add("cpus", "cpus", "", int64(*v), int64(req.CPUs))
	}
	if v := pol.MaxMemoryMB; v != nil {
		add("memory_mb", "memory_mb", "", *v, req.MemoryMB)
	}
	if req.GPUs > 0 {
		// An untyped request may land on any type, so every typed limit
		// applies to it; a typed one meets its own type's limit and the total.
		for _, typ := range slices.Sorted(maps.Keys(pol.MaxGPUs)) {
			if typ != "" && req.GPUType != "" && typ != req.GPUType {
				continue
			}
			add("gpus", "gpus", typ, int64(pol.MaxGPUs[typ]), int64(req.GPUs))
		}
	}
	return out, nil
}

// refusal words the quota error for a session that would break x with
// inUse already taken.
func (x bound) refusal(inUse int64) error {
	s := x.s
	var msg string
	switch x.limit {
	case "max_concurrent_sessions":
		msg = fmt.Sprintf("%s %s may have at most %d sessions at once (%d live)", s.name, s.label, x.max, inUse)
	case "max_pending_sessions":
		msg = fmt.Sprintf("%s %s may have at most %d sessions waiting (%d pending)", s.name, s.label, x.max, inUse)
	case "cpus":
		msg = fmt.Sprintf("%s %s has a limit of %d CPUs (%d in use, %d asked)", s.name, s.label, x.max, inUse, x.asked)
	case "memory_mb":
		msg = fmt.Sprintf("%s %s has a limit of %d MiB memory (%d in use, %d asked)", s.name, s.label, x.max, inUse, x.asked)
	default:
		what := "GPUs"
		if x.gpuType != "" {
			what = x.gpuType + " GPUs"
		}
		msg = fmt.Sprintf("%s %s has a limit of %d %s (%d in use, %d asked)", s.name, s.label, x.max, what, inUse, x.asked)
	}
	return &Error{Kind: KindQuota, Message: msg,
		Quota: &QuotaExceeded{Scope: s.name, ScopeName: s.label, Limit: x.limit, Max: x.max, InUse: inUse, Requested: x.asked}}
}

func gpuWords(n int, typ string) string {
	switch {
	case n == 0:
		return "no GPU"
	case typ == "":
		return fmt.Sprintf("%d GPU(s)", n)
	}
	return fmt.Sprintf("%d × %s GPU(s)", n, typ)
}

func recordEvent(ctx context.Context, q querier, id, kind string, from, to SessionState, msg string) error {
	_, err := q.Exec(ctx, `INSERT INTO session_events (session_id, kind, from_state, to_state, message) VALUES ($1, $2, $3, $4, $5)`,
		id, kind, string(from), string(to), msg)
	return err
}
