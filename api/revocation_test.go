package api

import (
	"context"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slurmgate/slurmgate/bridge"
)

// The app proxy remembers resolved credentials, but a revoked portal login
// is refused on its next request: at once after a logout on this gateway,
// and as soon as the announcement arrives when another replica (here the
// bridge directly) revoked it. The TTL is an hour in these tests, so only
// the revocation can be what refuses.
func TestRuntimeCredentialCacheForgetsRevokedLogins(t *testing.T) {
	w := newRuntimeWorld(t)
	w.ready(t)
	w.srv.logins.ttl = time.Hour
	ctx := t.Context()
	base := "/s/" + w.sid + "/web/"
	login := func() (string, bridge.PortalSession) {
		token, ps, err := w.b.CreatePortalSession(ctx, bridge.NewPortalSession{UserID: w.alice.UserID, Source: "local", IdleTimeout: time.Hour, Lifetime: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return token, ps
	}
	app := func(token string) *http.Request {
		r := w.request("GET", base+"x", nil)
		r.AddCookie(&http.Cookie{Name: sessionCookie, Value: token})
		return r
	}

	t.Run("logout here", func(t *testing.T) {
		token, ps := login()
		w.wantStatus(app(token), 200)
		w.wantStatus(app(token), 200) // remembered
		r := w.request("POST", "/api/v1/auth/logout", nil)
		r.AddCookie(&http.Cookie{Name: sessionCookie, Value: token})
		r.Header.Set(csrfHeader, ps.CSRFToken)
		w.wantStatus(r, 200)
		w.wantProblem(app(token), 401)
	})

	t.Run("revoked elsewhere", func(t *testing.T) {
		token, _ := login()
		other, _ := login()
		w.wantStatus(app(token), 200)
		w.wantStatus(app(other), 200)
		if err := w.b.RevokePortalSession(ctx, token); err != nil {
			t.Fatal(err)
		}
		waitRefused(t, w, func() *http.Request { return app(token) })
		w.wantStatus(app(other), 200) // only the revoked login is forgotten
	})

	t.Run("concurrent requests during revocation", func(t *testing.T) {
		// Lookups in flight while the revocation is heard must not put
		// the login back: once one request is refused, every request
		// that starts later is refused too.
		token, _ := login()
		w.wantStatus(app(token), 200)
		var refusedAt atomic.Int64 // unix nanoseconds of the first refusal seen by the checker
		var stale atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					start := time.Now().UnixNano()
					code := statusOf(w, app(token))
					if code == 200 {
						if at := refusedAt.Load(); at != 0 && start > at {
							stale.Add(1)
						}
					}
				}
			})
		}
		time.Sleep(50 * time.Millisecond)
		if err := w.b.RevokePortalSession(ctx, token); err != nil {
			t.Fatal(err)
		}
		waitRefused(t, w, func() *http.Request { return app(token) })
		refusedAt.Store(time.Now().UnixNano())
		time.Sleep(200 * time.Millisecond)
		close(stop)
		wg.Wait()
		if n := stale.Load(); n > 0 {
			t.Errorf("%d requests were let in after the revocation had been heard", n)
		}
	})
}

// A bearer token is remembered no longer than it is valid.
func TestRuntimeCredentialCacheHonoursTokenExpiry(t *testing.T) {
	w := newRuntimeWorld(t)
	w.ready(t)
	w.srv.logins.ttl = time.Hour
	token, expires, err := w.b.CreateToken(t.Context(), w.alice.Actor, w.alice.UserID, 1500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	app := func() *http.Request {
		r := w.request("GET", "/s/"+w.sid+"/web/x", nil)
		r.Header.Set("Authorization", "Bearer "+token)
		return r
	}
	w.wantStatus(app(), 200)
	w.wantStatus(app(), 200)
	time.Sleep(time.Until(expires) + 50*time.Millisecond)
	w.wantProblem(app(), 401)
}

// waitRefused sends requests until one is refused with 401, failing after
// 10 s (the cache's TTL in these tests is an hour: only the revocation's
// announcement can end it).
func waitRefused(t *testing.T, w *runtimeWorld, req func() *http.Request) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code := statusOf(w, req())
		if code == 401 {
			return
		}
		if code != 200 {
			t.Fatalf("status %d while waiting for the revocation to be heard", code)
		}
		if time.Now().After(deadline) {
			t.Fatal("a revoked portal login was still let in 10 s after its revocation: the app proxy's credential cache did not hear it (LoginRevocations)")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func statusOf(w *runtimeWorld, r *http.Request) int {
	resp, err := w.ts.Client().Do(r)
	if err != nil {
		return -1
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// Starting to listen for revocations (a database connection and a LISTEN,
// up to seconds) holds no request: while it is under way, app requests are
// answered from the database, and once it is in place logins are
// remembered and revocations heard as ever.
func TestRevocationListeningHoldsNoRequest(t *testing.T) {
	w := newRuntimeWorld(t)
	w.ready(t)
	w.srv.logins.ttl = time.Hour
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock)
	w.srv.logins.subscribe = func(ctx context.Context) <-chan bridge.LoginRevocation {
		select {
		case entered <- struct{}{}:
		default:
		}
		select {
		case <-release:
		case <-ctx.Done():
		}
		return w.b.LoginRevocations(ctx)
	}
	token := w.portalLogin(t, w.alice)
	app := func() *http.Request {
		r := w.request("GET", "/s/"+w.sid+"/web/x", nil)
		r.AddCookie(&http.Cookie{Name: sessionCookie, Value: token})
		return r
	}
	// Each request must be answered while listening is still starting;
	// the 10 s are only how long a held request is waited for.
	answered := func(what string) {
		t.Helper()
		done := make(chan int, 1)
		go func() { done <- statusOf(w, app()) }()
		select {
		case code := <-done:
			if code != 200 {
				t.Fatalf("%s: status %d, want 200", what, code)
			}
		case <-time.After(10 * time.Second):
			unblock()
			t.Fatalf("%s was held while the gateway started listening for revocations", what)
		}
	}
	answered("the request that starts listening")
	<-entered // listening is now under way, and stays so until released
	answered("a request while listening starts")
	answered("another request while listening starts")

	unblock()
	if err := w.b.RevokePortalSession(t.Context(), token); err != nil {
		t.Fatal(err)
	}
	waitRefused(t, w, app)
}
