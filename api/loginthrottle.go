package api

import (
	"math"
	"net"
	"net/http"
	"net/netip"
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
// against the directory's own lockout policy, if it has one. Each attempt
// is counted when it is let through, before its password is checked, so
// parallel requests cannot all pass the check together; a success, or a
// refusal that is not a wrong password, takes its count back, and a
// success clears the user name's. The counts live in this replica's
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
	// trusted are the proxies (load balancers) whose X-Forwarded-For is
	// believed (Options.TrustedProxies); set before serving.
	trusted []netip.Prefix
}

type failures struct {
	n    int
	last time.Time
}

// attempt is a login for user from r about to check its password: it
// returns how long the login must still wait, or 0 after counting the
// attempt as a failure until done says otherwise.
func (t *loginThrottle) attempt(now time.Time, user string, r *http.Request) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	uk, ak := userKey(user), t.addrKey(r)
	if d := max(t.waitFor(now, uk, freeUserFailures), t.waitFor(now, ak, freeAddrFailures)); d > 0 {
		return d
	}
	t.count(now, uk, ak)
	return 0
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

// failed counts a wrong password (tests; logins count through attempt).
func (t *loginThrottle) failed(now time.Time, user string, r *http.Request) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.count(now, userKey(user), t.addrKey(r))
}

func (t *loginThrottle) count(now time.Time, keys ...string) {
	if t.counts == nil {
		t.counts = map[string]*failures{}
	}
	if len(t.counts) >= maxThrottled {
		t.forget(now)
	}
	for _, key := range keys {
		f := t.counts[key]
		if f == nil || now.Sub(f.last) > failureMemory {
			f = &failures{}
			t.counts[key] = f
		}
		f.n++
		f.last = now
	}
}

// done settles an attempt that was not a wrong password: the address's
// count takes it back, and a success clears the user name's count, while
// another refusal (directory down, account locked) takes back only its own.
func (t *loginThrottle) done(user string, r *http.Request, succeeded bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	uk := userKey(user)
	if succeeded {
		delete(t.counts, uk)
	}
	for _, key := range []string{uk, t.addrKey(r)} {
		if f := t.counts[key]; f != nil && f.n > 0 {
			f.n--
		}
	}
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
// as X-Forwarded-For is the client's to write, unless the connection comes
// from a trusted proxy. Then it is the nearest address in X-Forwarded-For
// that is not a trusted proxy itself: proxies append what they saw, so
// entries left of the last untrusted one may be the client's invention.
func (t *loginThrottle) addrKey(r *http.Request) string {
	return "a:" + clientAddr(r, t.trusted)
}

func clientAddr(r *http.Request, trusted []netip.Prefix) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	isTrusted := func(s string) bool {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		return err == nil && slices.ContainsFunc(trusted, func(p netip.Prefix) bool { return p.Contains(a.Unmap()) })
	}
	if len(trusted) == 0 || !isTrusted(host) {
		return host
	}
	var hops []string
	for _, h := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(h, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		hop := strings.TrimSpace(hops[i])
		if !isTrusted(hop) {
			if a, err := netip.ParseAddr(hop); err == nil {
				return a.Unmap().String()
			}
			return host // garbage from the client: the proxy's address it is
		}
		host = hop
	}
	return host
}

// throttled answers 429 when the login must wait, and reports whether it
// did; otherwise the attempt is counted, and the caller settles it with
// loginThrottle.done unless the password was wrong.
func (s *Server) throttled(w http.ResponseWriter, r *http.Request, user string) bool {
	d := s.loginThrottle.attempt(s.now(), user, r)
	if d <= 0 {
		return false
	}
	secs := int(math.Ceil(d.Seconds()))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeProblem(w, r, tooManyAttempts.with("too many failed logins for %s or from this address; try again in %d s", user, secs))
	return true
}
