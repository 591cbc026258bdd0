package bridge

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
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

// admit checks every policy level in one transaction and records the
// session. A per-domain advisory lock serialises admissions in a domain, so
// concurrent creates can never overshoot any quota of its users, projects or
// the domain itself.
func (b *Bridge) admit(ctx context.Context, p *sessionPlan) (string, error) {
	id := newSessionID()
	scopes := []scope{
		{"user", p.user.Username, "user_id", p.user.ID},
		{"project", p.project.Path(), "project_id", p.project.ID},
		{"domain", p.project.Domain, "domain_id", p.project.DomainID},
	}
	outDir := filepath.Join(b.cfg.JobOutputDir, p.user.Username)
	err := pgx.BeginFunc(ctx, b.db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(7, $1::int)`, p.project.DomainID); err != nil {
			return err
		}
		for _, s := range scopes {
			pol, err := scanPolicy(tx.QueryRow(ctx, `SELECT `+policyCols+` FROM policies WHERE `+s.col+` = $1`, s.id))
			if err == pgx.ErrNoRows {
				continue
			}
			if err != nil {
				return err
			}
			use, err := scopeUsage(ctx, tx, s.col, s.id)
			if err != nil {
				return err
			}
			if err := checkPolicy(s, pol, use, p.req, p.sg.Name); err != nil {
				return err
			}
		}
		var key *string
		if p.req.IdempotencyKey != "" {
			key = &p.req.IdempotencyKey
		}
		var maxWait *int64
		if p.req.MaxWaitS > 0 {
			maxWait = &p.req.MaxWaitS
		}
		env := p.req.Environment
		if env == nil {
			env = map[string]string{}
		}
		_, err := tx.Exec(ctx, `INSERT INTO sessions (id, name, user_id, project_id, domain_id, scaling_group, partition,
			type, image, cpus, memory_mb, gpus, gpu_type, time_limit_s, environment, command, mounts, idempotency_key,
			max_wait_s, state, sub_state, stdout_path, stderr_path)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, '[]', $17, $18, 'PENDING', $19, $20, $21)`,
			id, p.req.Name, p.user.ID, p.project.ID, p.project.DomainID, p.sg.Name, p.sg.Partitions[0], p.req.Type,
			p.image.Ref(), p.req.CPUs, p.req.MemoryMB, p.req.GPUs, p.req.GPUType, p.req.TimeLimitS, env, p.req.Command,
			key, maxWait, subSubmitting, filepath.Join(outDir, id+".out"), filepath.Join(outDir, id+".err"))
		if err != nil {
			return dbError(err, "session with idempotency key "+p.req.IdempotencyKey)
		}
		return recordEvent(ctx, tx, id, "created", "", StatePending,
			fmt.Sprintf("%s session: %s, %d CPUs, %d MiB, %s in %s", p.req.Type, p.image.Ref(), p.req.CPUs, p.req.MemoryMB, gpuWords(p.req.GPUs, p.req.GPUType), p.sg.Name))
	})
	if err != nil {
		if KindOf(err) == KindConflict && p.req.IdempotencyKey != "" {
			// A concurrent create with the same key won; theirs is ours.
			if s, err2 := b.sessionByKey(ctx, p.user.ID, p.req.IdempotencyKey); err2 == nil {
				return s.ID, nil
			}
		}
		return "", err
	}
	return id, nil
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

// checkPolicy refuses req if it does not fit pol given use, naming the limit.
func checkPolicy(s scope, pol Policy, use usage, req SessionRequest, sg string) error {
	refuse := func(limit string, max, inUse, asked int64, format string, args ...any) error {
		return &Error{Kind: KindQuota, Message: fmt.Sprintf(format, args...),
			Quota: &QuotaExceeded{Scope: s.name, ScopeName: s.label, Limit: limit, Max: max, InUse: inUse, Requested: asked}}
	}
	if pol.AllowedScalingGroups != nil && !slices.Contains(pol.AllowedScalingGroups, sg) {
		return refuse("allowed_scaling_groups", 0, 0, 0, "%s %s may not use scaling group %s (allowed: %v)", s.name, s.label, sg, pol.AllowedScalingGroups)
	}
	if v := pol.MaxSessionLifetimeS; v != nil && req.TimeLimitS > *v {
		return refuse("max_session_lifetime_s", *v, 0, req.TimeLimitS, "%s %s allows sessions of at most %s; %s was asked",
			s.name, s.label, time.Duration(*v)*time.Second, time.Duration(req.TimeLimitS)*time.Second)
	}
	if v := pol.MaxConcurrentSessions; v != nil && use.live+1 > int64(*v) {
		return refuse("max_concurrent_sessions", int64(*v), use.live, 1, "%s %s may have at most %d sessions at once (%d live)", s.name, s.label, *v, use.live)
	}
	if v := pol.MaxPendingSessions; v != nil && use.pending+1 > int64(*v) {
		return refuse("max_pending_sessions", int64(*v), use.pending, 1, "%s %s may have at most %d sessions waiting (%d pending)", s.name, s.label, *v, use.pending)
	}
	if v := pol.MaxCPUs; v != nil && use.cpus+int64(req.CPUs) > int64(*v) {
		return refuse("cpus", int64(*v), use.cpus, int64(req.CPUs), "%s %s has a limit of %d CPUs (%d in use, %d asked)", s.name, s.label, *v, use.cpus, req.CPUs)
	}
	if v := pol.MaxMemoryMB; v != nil && use.memMB+req.MemoryMB > *v {
		return refuse("memory_mb", *v, use.memMB, req.MemoryMB, "%s %s has a limit of %d MiB memory (%d in use, %d asked)", s.name, s.label, *v, use.memMB, req.MemoryMB)
	}
	if req.GPUs > 0 {
		// An untyped request may land on any type, so every typed limit
		// applies to it; a typed one meets its own type's limit and the total.
		for _, typ := range slices.Sorted(maps.Keys(pol.MaxGPUs)) {
			if typ != "" && req.GPUType != "" && typ != req.GPUType {
				continue
			}
			max, asked, inUse := int64(pol.MaxGPUs[typ]), int64(req.GPUs), use.gpus[typ]
			if typ != "" {
				inUse += use.untypedGPUs
			}
			if inUse+asked > max {
				what := "GPUs"
				if typ != "" {
					what = typ + " GPUs"
				}
				return refuse("gpus", max, inUse, asked, "%s %s has a limit of %d %s (%d in use, %d asked)",
					s.name, s.label, max, what, inUse, asked)
			}
		}
	}
	return nil
}

func recordEvent(ctx context.Context, q querier, id, kind string, from, to SessionState, msg string) error {
	_, err := q.Exec(ctx, `INSERT INTO session_events (session_id, kind, from_state, to_state, message) VALUES ($1, $2, $3, $4, $5)`,
		id, kind, string(from), string(to), msg)
	return err
}
