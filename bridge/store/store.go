// Package store owns Slurmgate's PostgreSQL schema: the embedded, forward-only
// migrations and opening a migrated connection pool. Queries live with the
// domain code in package bridge.
package store

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// MinConns is the smallest pool the gateway runs with: admissions wait on a
// per-domain lock while holding a connection, and a submission holds its
// session lock on one connection while querying on another.
const MinConns = 32

//go:embed migrations/*.sql
var migrations embed.FS

// Open connects to PostgreSQL and brings the schema up to date.
func Open(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("database URL: %w", err)
	}
	cfg.MaxConns = max(cfg.MaxConns, MinConns)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("database %s@%s:%d: %w", cfg.ConnConfig.User, cfg.ConnConfig.Host, cfg.ConnConfig.Port, err)
	}
	if err := Migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

// Migrate applies the embedded migrations that the database lacks, in order,
// each in its own transaction together with its bookkeeping row. An advisory
// lock makes concurrent gateway replicas take turns.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer conn.Release()
	const lockKey = 0x5175726d67617465 // "Slurmgate"
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(lockKey)); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(lockKey))

	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var applied []int
	rows, _ := conn.Query(ctx, `SELECT version FROM schema_migrations`)
	applied, err = pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	files, err := migrationFiles()
	if err != nil {
		return err
	}
	for _, m := range files {
		if slices.Contains(applied, m.version) {
			continue
		}
		sql, err := fs.ReadFile(migrations, m.path)
		if err != nil {
			return err
		}
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, string(sql)); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.version, m.name)
			return err
		})
		if err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
	}
	return nil
}

type migration struct {
	version int
	name    string
	path    string
}

// migrationFiles lists migrations/NNNN_name.sql in version order.
func migrationFiles() ([]migration, error) {
	entries, err := fs.ReadDir(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(e.Name(), ".sql") {
			return nil, fmt.Errorf("migration file %q: want NNNN_name.sql", e.Name())
		}
		out = append(out, migration{version: v, name: strings.TrimSuffix(e.Name(), ".sql"), path: path.Join("migrations", e.Name())})
	}
	slices.SortFunc(out, func(a, b migration) int { return a.version - b.version })
	return out, nil
}

// SchemaDigest identifies the embedded migrations by content, so tests can
// key a migrated template database by it and never reuse a stale one.
func SchemaDigest() string {
	h := sha256.New()
	files, err := migrationFiles()
	if err != nil {
		return "invalid"
	}
	for _, m := range files {
		b, _ := fs.ReadFile(migrations, m.path)
		h.Write([]byte(m.name))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}
