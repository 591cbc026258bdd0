package bridge

import (
	"context"
	"errors"
	"fmt"
	"maps"

	"github.com/jackc/pgx/v5"
)

// ScopeUsage is one policy level that bounds the caller's sessions, with
// what is in use at that level now: the numbers admission control checks, so
// a person can see how far they are from a refusal before asking.
type ScopeUsage struct {
	Scope string `json:"scope"` // "user", "project" or "domain"
	Name  string `json:"name"`  // alice, acme/vision, acme
	ID    int64  `json:"id"`
	// Policy is nil when the level has none (no limit there).
	Policy *Policy    `json:"policy,omitempty"`
	InUse  UsageCount `json:"in_use"`
}

// UsageCount is what live (pending, preparing, running, terminating)
// sessions hold at one level, counted as admission control counts it.
type UsageCount struct {
	Sessions int64 `json:"sessions"`
	Pending  int64 `json:"pending"`
	CPUs     int64 `json:"cpus"`
	MemoryMB int64 `json:"memory_mb"`
	// GPUs by type, as admission counts them: "" is all types together,
	// and a type's figure includes the untyped GPUs, which may sit on any
	// type.
	GPUs map[string]int64 `json:"gpus,omitempty"`
}

// Usage returns the caller's quota use: their own level, each project they
// belong to and their domain. The project and domain figures include other
// members' sessions, since those share the quota.
func (b *Bridge) Usage(ctx context.Context, a Actor) ([]ScopeUsage, error) {
	if a.UserID == 0 {
		return nil, invalid("user", "usage is per user; the system actor has none")
	}
	var out []ScopeUsage
	err := pgx.BeginTxFunc(ctx, b.db, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		levels := []ScopeUsage{{Scope: "user", Name: a.Username, ID: a.UserID}}
		rows, err := tx.Query(ctx, `SELECT p.id, d.name || '/' || p.name FROM memberships m
			JOIN projects p ON p.id = m.project_id JOIN domains d ON d.id = p.domain_id
			WHERE m.user_id = $1 ORDER BY 2`, a.UserID)
		if err != nil {
			return err
		}
		for rows.Next() {
			l := ScopeUsage{Scope: "project"}
			if err := rows.Scan(&l.ID, &l.Name); err != nil {
				rows.Close()
				return err
			}
			levels = append(levels, l)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		d := ScopeUsage{Scope: "domain", ID: a.DomainID}
		if err := tx.QueryRow(ctx, `SELECT name FROM domains WHERE id = $1`, a.DomainID).Scan(&d.Name); err != nil {
			return fmt.Errorf("the caller's domain: %w", err)
		}
		levels = append(levels, d)

		for _, l := range levels {
			col := l.Scope + "_id"
			use, err := scopeUsage(ctx, tx, col, l.ID)
			if err != nil {
				return err
			}
			l.InUse = UsageCount{Sessions: use.live, Pending: use.pending, CPUs: use.cpus, MemoryMB: use.memMB}
			pol, err := scanPolicy(tx.QueryRow(ctx, `SELECT `+policyCols+` FROM policies WHERE scope = $1 AND `+col+` = $2`, l.Scope, l.ID))
			switch {
			case errors.Is(err, pgx.ErrNoRows):
			case err != nil:
				return err
			default:
				l.Policy = &pol
			}
			// A type's figure is what admission checks against its limit:
			// its own GPUs and the untyped ones, which may sit on any type.
			types := maps.Clone(use.gpus)
			if l.Policy != nil {
				for typ := range l.Policy.MaxGPUs {
					types[typ] += 0
				}
			}
			for typ, n := range types {
				if typ != "" {
					n += use.untypedGPUs
				}
				if n > 0 {
					if l.InUse.GPUs == nil {
						l.InUse.GPUs = map[string]int64{}
					}
					l.InUse.GPUs[typ] = n
				}
			}
			out = append(out, l)
		}
		return nil
	})
	return out, err
}
