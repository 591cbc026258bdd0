package api

import (
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Password logins are throttled: after a few wrong passwords for a user
// name, or many from one address, the next attempt must wait, doubling
// with each further failure. A throttled attempt is refused before the
// password is checked: it costs the directory nothing and does not count
// against the directory's own lockout policy, if it has one. A success
// clears the user name's count. The counts live in this replica's
// memory: a guesser spread over replicas gets each one's allowance.

// tooManyAttempts answers a throttled login, with Retry-After.
var tooManyAttempts = problemKind{"too-many-attempts", "Too many failed logins", http.StatusTooManyRequests}

func init() { problemKinds = append(problemKinds, tooManyAttempts) }

const (
	// freeUserFailures and freeAddrFailures are the failures allowed
	// without a wait: a user who mistypes a few times is not slowed, an
	// address (a lab's NAT) shared by many users gets more.
	freeUserFailures = 5
	freeAddrFailures = 30
	// maxLoginWait caps the wait; failureMemory is how long a count lasts
	// after its last failure.
	maxLoginWait  = 15 * time.Minute
	failureMemory = time.Hour
	// maxThrottled bounds the counts kept, so that failures for a flood
	// of made-up names cannot grow the map without bound; the oldest go.
	maxThrottled = 50000
)

type loginThrottle struct {
	mu     sync.Mutex
	counts map[string]*failures // "u:" + user name, "a:" + address
}

type failures struct {
	n    int
	last time.Time
}

// wait returns how long a login for user from r must still wait.
func (t *loginThrottle) wait(now time.Time, user string, r *http.Request) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return max(t.waitFor(now, userKey(user), freeUserFailures), t.waitFor(now, addrKey(r), freeAddrFailures))
}

func (t *loginThrottle) waitFor(now time.Time, key string, free int) time.Duration {
	f := t.counts[key]
	if f == nil || f.n < free {
		return 0
	}
	// 1 s after the last free failure, then 2, 4, …
	d := time.Duration(math.Min(math.Pow(2, float64(f.n-free)), maxLoginWait.Seconds())) * time.Second
	return max(0, f.last.Add(d).Sub(now))
}

// failed counts a wrong password.
func (t *loginThrottle) failed(now time.Time, user string, r *http.Request) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.counts == nil {
		t.counts = map[string]*failures{}
	}
	if len(t.counts) >= maxThrottled {
		t.forget(now)
	}
	for _, key := range []string{userKey(user), addrKey(r)} {
		f := t.counts[key]
		if f == nil || now.Sub(f.last) > failureMemory {
			f = &failures{}
			t.counts[key] = f
		}
		f.n++
		f.last = now
	}
}

// succeeded clears the user name's count; the address keeps its own.
func (t *loginThrottle) succeeded(user string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.counts, userKey(user))
}

// forget drops the counts past failureMemory and, if that is not enough,
// the older half.
func (t *loginThrottle) forget(now time.Time) {
	var oldest []time.Time
	for k, f := range t.counts {
		if now.Sub(f.last) > failureMemory {
			delete(t.counts, k)
		} else {
			oldest = append(oldest, f.last)
		}
	}
	if len(t.counts) < maxThrottled/2 {
		return
	}
	slices.SortFunc(oldest, time.Time.Compare)
	median := oldest[len(oldest)/2]
	for k, f := range t.counts {
		if f.last.Before(median) {
			delete(t.counts, k)
		}
	}
}

func userKey(user string) string { return "u:" + strings.ToLower(user) }

// addrKey is the client's address: the connection's, since a header such
// as X-Forwarded-For is the client's to write.
func addrKey(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return "a:" + host
}

// throttled answers 429 when the login must wait, and reports whether it did.
func (s *Server) throttled(w http.ResponseWriter, r *http.Request, user string) bool {
	d := s.loginThrottle.wait(s.now(), user, r)
	if d <= 0 {
		return false
	}
	secs := int(math.Ceil(d.Seconds()))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeProblem(w, r, tooManyAttempts.with("too many failed logins for %s or from this address; try again in %d s", user, secs))
	return true
}
