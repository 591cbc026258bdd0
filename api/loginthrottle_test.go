package api

import (
	"fmt"
	"net/http/httptest"
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
	if d := th.waitFor(now, addrKey(r), freeAddrFailures); d != maxLoginWait {
		t.Errorf("the flooding address waits %v; want %v", d, maxLoginWait)
	}
	if d := th.wait(now, "someone-else", httptest.NewRequest("POST", "/", nil)); d == 0 {
		t.Errorf("another name from the flooding address waits %v; want the address's wait", d)
	}
}
