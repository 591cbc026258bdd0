package api

import (
	"fmt"
	"net/http/httptest"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Failures for a flood of made-up names cannot grow the throttle's memory
// without bound, and the address they come from stays throttled through
// the pruning (its count is the newest).
func TestLoginThrottleMemoryIsBounded(t *testing.T) {
	var th loginThrottle
	r := httptest.NewRequest("POST", "/api/v1/auth/login", nil)
	now := time.Now()
	for i := range 2 * maxThrottled {
		now = now.Add(time.Millisecond)
		th.failed(now, fmt.Sprintf("made-up-%d", i), r)
	}
	if n := len(th.counts); n > maxThrottled {
		t.Fatalf("%d counts kept; want at most %d", n, maxThrottled)
	}
	if d := th.waitFor(now, th.addrKey(r), freeAddrFailures); d != maxLoginWait {
		t.Errorf("the flooding address waits %v; want %v", d, maxLoginWait)
	}
	if d := th.attempt(now, "someone-else", httptest.NewRequest("POST", "/", nil)); d == 0 {
		t.Errorf("another name from the flooding address waits %v; want the address's wait", d)
	}
}

// Parallel attempts cannot all pass the check before any is counted: only
// the allowance is let through to the password check.
func TestLoginThrottleCountsBeforeTheCheck(t *testing.T) {
	var th loginThrottle
	now := time.Now()
	var wg sync.WaitGroup
	var passed atomic.Int32
	for range 4 * freeUserFailures {
		wg.Go(func() {
			r := httptest.NewRequest("POST", "/api/v1/auth/login", nil)
			if th.attempt(now, "carol", r) == 0 {
				passed.Add(1)
			}
		})
	}
	wg.Wait()
	if n := passed.Load(); n != freeUserFailures {
		t.Fatalf("%d parallel attempts reached the password check; want %d", n, freeUserFailures)
	}
	// Successes and refusals that are not wrong passwords give the count back.
	var th2 loginThrottle
	r := httptest.NewRequest("POST", "/api/v1/auth/login", nil)
	for range 3 * freeAddrFailures {
		if d := th2.attempt(now, "bob", r); d != 0 {
			t.Fatalf("a successful login waits %v", d)
		}
		th2.done("bob", r, true)
	}
}

// X-Forwarded-For names the client only when a trusted proxy sent it.
func TestLoginThrottleClientAddress(t *testing.T) {
	lb := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	for _, tc := range []struct {
		peer, xff string
		trusted   []netip.Prefix
		want      string
	}{
		{"192.0.2.7:4000", "198.51.100.1", nil, "192.0.2.7"},
		{"192.0.2.7:4000", "198.51.100.1", lb, "192.0.2.7"}, // not from the LB: its header is the client's own
		{"10.1.1.1:4000", "198.51.100.1", lb, "198.51.100.1"},
		{"10.1.1.1:4000", "203.0.113.9, 198.51.100.1", lb, "198.51.100.1"}, // the left one is the client's invention
		{"10.1.1.1:4000", "198.51.100.1, 10.2.2.2", lb, "198.51.100.1"},    // through two LBs
		{"10.1.1.1:4000", "", lb, "10.1.1.1"},
		{"10.1.1.1:4000", "not-an-address", lb, "10.1.1.1"},
		{"[::ffff:10.1.1.1]:4000", "::ffff:198.51.100.1", lb, "198.51.100.1"},
	} {
		r := httptest.NewRequest("POST", "/api/v1/auth/login", nil)
		r.RemoteAddr = tc.peer
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got := clientAddr(r, tc.trusted); got != tc.want {
			t.Errorf("peer %s, X-Forwarded-For %q, trusted %v: client %s; want %s", tc.peer, tc.xff, tc.trusted, got, tc.want)
		}
	}
}
