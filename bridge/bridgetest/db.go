// Package bridgetest gives tests a fresh, migrated PostgreSQL database on the
// test cluster's server, cloned from a template so each costs milliseconds.
package bridgetest

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/slurmgate/slurmgate/bridge/store"
	"github.com/slurmgate/slurmgate/testdata/cluster"
)

var (
	templateOnce sync.Once
	templateName string
	templateErr  error
)

// Database creates an empty, migrated database for t, dropped when t ends,
// and returns its URL.
func Database(t testing.TB) string {
	t.Helper()
	env := cluster.Require(t)
	if env.DatabaseURL == "" {
		t.Fatal("cluster.env has no SLURMGATE_DATABASE_URL; rerun testdata/cluster/up")
	}
	ctx := context.Background()
	templateOnce.Do(func() { templateName, templateErr = ensureTemplate(ctx, env.DatabaseURL) })
	if templateErr != nil {
		t.Fatalf("test database template: %v", templateErr)
	}
	admin, err := pgx.Connect(ctx, env.DatabaseURL)
	if err != nil {
		t.Fatalf("PostgreSQL: %v", err)
	}
	defer admin.Close(ctx)
	name := fmt.Sprintf("t_%d", time.Now().UnixNano())
	if _, err := admin.Exec(ctx, fmt.Sprintf(`CREATE DATABASE %s TEMPLATE %s`, name, templateName)); err != nil {
		t.Fatalf("cloning the template database: %v", err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), env.DatabaseURL)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		c.Exec(context.Background(), fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, name))
	})
	return withDatabase(env.DatabaseURL, name)
}

// Pool is [Database] opened as a pgx pool that closes when t ends.
func Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(Database(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = store.MinConns
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// ensureTemplate creates and migrates the template for the current schema
// once per schema digest; an advisory lock keeps parallel test binaries
// (one per package) from racing to build it.
func ensureTemplate(ctx context.Context, adminURL string) (string, error) {
	name := "tmpl_" + store.SchemaDigest()
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", err
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, `SELECT pg_advisory_lock(4242)`); err != nil {
		return "", err
	}
	defer admin.Exec(ctx, `SELECT pg_advisory_unlock(4242)`)
	var exists bool
	if err := admin.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return "", err
	}
	if exists {
		return name, nil
	}
	building := name + "_building"
	admin.Exec(ctx, fmt.Sprintf(`DROP DATABASE IF EXISTS %s`, building))
	if _, err := admin.Exec(ctx, fmt.Sprintf(`CREATE DATABASE %s`, building)); err != nil {
		return "", err
	}
	pool, err := store.Open(ctx, withDatabase(adminURL, building))
	if err != nil {
		return "", err
	}
	pool.Close()
	// Renaming last means a crash mid-build never leaves a half-made template.
	if _, err := admin.Exec(ctx, fmt.Sprintf(`ALTER DATABASE %s RENAME TO %s`, building, name)); err != nil {
		return "", err
	}
	return name, nil
}

func withDatabase(rawURL, db string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	u.Path = "/" + db
	return u.String()
}
