package store_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/slurmgate/slurmgate/bridge/bridgetest"
	"github.com/slurmgate/slurmgate/bridge/store"
)

func TestMigrateIsIdempotentAndSerialised(t *testing.T) {
	url := bridgetest.Database(t) // already migrated once, from the template
	ctx := context.Background()
	// Several replicas starting at once: each migrates, none fails, and
	// every migration is recorded exactly once.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pool, err := store.Open(ctx, url)
			if err == nil {
				pool.Close()
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	pool, err := store.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var n, distinct int
	if err := pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT version) FROM schema_migrations`).Scan(&n, &distinct); err != nil {
		t.Fatal(err)
	}
	if n == 0 || n != distinct {
		t.Fatalf("schema_migrations holds %d rows for %d versions; want each applied once", n, distinct)
	}
	if got := pool.Config().MaxConns; got < store.MinConns {
		t.Errorf("pool of %d connections, want at least %d", got, store.MinConns)
	}
}

func TestOpenNamesTheDatabaseItCannotReach(t *testing.T) {
	_, err := store.Open(context.Background(), "postgres://nobody:x@127.0.0.1:1/none?sslmode=disable&connect_timeout=2")
	if err == nil {
		t.Fatal("opened a database on a closed port")
	}
	if want := "nobody@127.0.0.1:1"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say which database (%s)", err, want)
	}
}
