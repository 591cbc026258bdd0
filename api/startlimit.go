package api

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Starting a login (a device login, an OpenID Connect redirect) needs no
// credential and leaves a row behind until it expires, so an anonymous
// client could fill the database by starting logins in a loop. Each
// client address gets a bucket of loginStartBurst starts, refilled at
// loginStartRate per second: a lab behind one NAT address can start
// dozens at once, a loop is slowed to the refill rate. The buckets live in
// this replica's memory, bounded like the login throttle's counts.

// tooManyStarts answers a login start beyond the address's allowance.
var tooManyStarts = problemKind{"too-many-login-starts", "Too many logins started", http.StatusTooManyRequests}

func init() { problemKinds = append(problemKinds, tooManyStarts) }

const (
	loginStartBurst = 30
	loginStartRate  = 1.0 // per second
)

type loginStarts struct {
	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

// take spends one start of addr's allowance at now, or says how long until
// one is available.
func (l *loginStarts) take(now time.Time, addr string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buckets == nil {
		l.buckets = map[string]*bucket{}
	}
	b := l.buckets[addr]
	if b == nil {
		if len(l.buckets) >= maxThrottled {
			l.forgetFull(now)
		}
		b = &bucket{tokens: loginStartBurst, at: now}
		l.buckets[addr] = b
	}
	b.tokens = min(loginStartBurst, b.tokens+now.Sub(b.at).Seconds()*loginStartRate)
	b.at = now
	if b.tokens < 1 {
		return time.Duration((1 - b.tokens) / loginStartRate * float64(time.Second))
	}
	b.tokens--
	return 0
}

// forgetFull drops the buckets that have refilled (they are as a new one
// would be), and if none has, all of them: the map never grows past
// maxThrottled.
func (l *loginStarts) forgetFull(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.at).Seconds()*loginStartRate >= loginStartBurst {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) >= maxThrottled {
		clear(l.buckets)
	}
}

// loginStartLimited answers 429 when r's address has started too many
// logins lately, and reports whether it did.
func (s *Server) loginStartLimited(w http.ResponseWriter, r *http.Request) bool {
	d := s.loginStarts.take(s.now(), clientAddr(r, s.loginThrottle.trusted))
	if d <= 0 {
		return false
	}
	secs := int(math.Ceil(d.Seconds()))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeProblem(w, r, tooManyStarts.with("this address started %d logins in a short time; try again in %d s", loginStartBurst, secs))
	return true
}
