package api

import (
	"net/http"
	"sync"
	"testing"
	"time"
)

// Starting a device login needs no credential and stores a row: an
// address gets a burst of starts, then one per second.
func TestLoginStartsAreRateLimitedPerAddress(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	a := newTestAPI(t, Options{Now: clock})
	start := func() (int, http.Header) {
		status, h, _ := a.send(a.request("POST", "/api/v1/auth/device", []byte(`{"client":"test"}`)))
		return status, h
	}
	for i := range loginStartBurst {
		if status, _ := start(); status != http.StatusOK && status != http.StatusCreated {
			t.Fatalf("start %d of the burst: %d", i+1, status)
		}
	}
	p, h := a.wantProblem(a.request("POST", "/api/v1/auth/device", []byte(`{"client":"test"}`)), http.StatusTooManyRequests)
	if h.Get("Retry-After") != "1" || p.Type != "urn:slurmgate:problem:too-many-login-starts" {
		t.Fatalf("start beyond the burst: %+v, Retry-After %q", p, h.Get("Retry-After"))
	}
	mu.Lock()
	now = now.Add(1100 * time.Millisecond)
	mu.Unlock()
	if status, _ := start(); status != http.StatusOK && status != http.StatusCreated {
		t.Fatalf("a second later: %d", status)
	}
	var n int
	if err := a.db.QueryRow(t.Context(), `SELECT count(*) FROM device_logins`).Scan(&n); err != nil || n != loginStartBurst+1 {
		t.Fatalf("%d device logins stored (%v), want %d", n, err, loginStartBurst+1)
	}
}
