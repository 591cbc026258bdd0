package bridge

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// appHandoffWorld is a credWorld with a RUNNING session of alice's.
func appHandoffWorld(t *testing.T) (*credWorld, string) {
	t.Helper()
	w := newCredWorld(t)
	b, ctx := w.b, t.Context()
	proj, err := b.CreateProject(ctx, System, "lab", "vision", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateScalingGroup(ctx, System, ScalingGroup{Name: "cpu", Cluster: "c", Partitions: []string{"cpu"}}); err != nil {
		t.Fatal(err)
	}
	sid := "7d1c2b7a-8e4d-4c5b-9a6f-0123456789ab"
	if _, err := b.db.Exec(ctx, `INSERT INTO sessions (id, user_id, project_id, domain_id, scaling_group, partition, type,
		image, cpus, memory_mb, time_limit_s, state, started_at)
		VALUES ($1, $2, $3, $4, 'cpu', 'cpu', 'interactive', 'host:latest', 2, 1024, 3600, 'RUNNING', now())`,
		sid, w.alice.UserID, proj.ID, proj.DomainID); err != nil {
		t.Fatal(err)
	}
	return w, sid
}

// A code is redeemed once, within AppHandoffTTL, on its host; the
// credential works on that host only, while its portal login lives; only
// the session's owner gets a code.
func TestAppHandoffLifecycle(t *testing.T) {
	w, sid := appHandoffWorld(t)
	b, ctx := w.b, t.Context()
	var now atomic.Pointer[time.Time]
	start := time.Now()
	now.Store(&start)
	b.now = func() time.Time { return *now.Load() }
	advance := func(d time.Duration) { n := now.Load().Add(d); now.Store(&n) }
	host := "web--" + sid + ".apps.example.org"

	token, ps, err := b.CreatePortalSession(ctx, NewPortalSession{UserID: w.alice.UserID, Source: "local", IdleTimeout: time.Hour, Lifetime: 3 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	h := AppHandoff{PortalSessionID: ps.ID, SessionID: sid, AppHost: host}

	// Only the owner: bob does not see the session, an admin who does is
	// forbidden.
	_, err = b.CreateAppHandoff(ctx, w.bob, h)
	wantKind(t, err, KindNotFound)
	_, err = b.CreateAppHandoff(ctx, w.root, h)
	wantKind(t, err, KindForbidden)

	code, err := b.CreateAppHandoff(ctx, w.alice, h)
	if err != nil {
		t.Fatal(err)
	}
	// Another host, then the right one: spent by the first try.
	_, _, err = b.RedeemAppHandoff(ctx, code, "jupyter--"+sid+".apps.example.org")
	wantKind(t, err, KindForbidden)
	_, _, err = b.RedeemAppHandoff(ctx, code, host)
	wantKind(t, err, KindForbidden)

	// Expired.
	code, _ = b.CreateAppHandoff(ctx, w.alice, h)
	advance(AppHandoffTTL)
	_, _, err = b.RedeemAppHandoff(ctx, code, host)
	wantKind(t, err, KindForbidden)

	code, _ = b.CreateAppHandoff(ctx, w.alice, h)
	app, c, err := b.RedeemAppHandoff(ctx, code, strings.ToUpper(host))
	if err != nil {
		t.Fatal(err)
	}
	if c.SessionID != sid || c.AppHost != host || c.PortalSessionID != ps.ID || !c.ExpiresAt.Equal(ps.ExpiresAt) {
		t.Fatalf("credential %+v; want session %s, host %s, login %s, expiring with it at %v", c, sid, host, ps.ID, ps.ExpiresAt)
	}
	_, _, err = b.RedeemAppHandoff(ctx, code, host)
	wantKind(t, err, KindForbidden)
	a, _, err := b.ActorForAppCredential(ctx, app, host)
	if err != nil || a.UserID != w.alice.UserID {
		t.Fatalf("ActorForAppCredential: %+v %v", a, err)
	}
	_, _, err = b.ActorForAppCredential(ctx, app, "web--0c0ffee0-0000-4000-8000-000000000000.apps.example.org")
	wantKind(t, err, KindNotFound)

	// Using the app keeps the portal login from idling out.
	for range 3 {
		advance(50 * time.Minute)
		if _, _, err := b.ActorForAppCredential(ctx, app, host); err != nil {
			t.Fatalf("after %v of app use: %v", now.Load().Sub(start), err)
		}
	}
	if _, _, err := b.ActorForPortalSession(ctx, token); err != nil {
		t.Fatalf("the portal login idled out while its app was used: %v", err)
	}
	// The portal login's end is the credential's.
	if err := b.RevokePortalSession(ctx, token); err != nil {
		t.Fatal(err)
	}
	_, _, err = b.ActorForAppCredential(ctx, app, host)
	wantKind(t, err, KindNotFound)
	if !strings.Contains(err.Error(), "logged out") {
		t.Errorf("after logout: %v", err)
	}
	// A code minted before the logout is refused after it.
	token, ps, _ = b.CreatePortalSession(ctx, NewPortalSession{UserID: w.alice.UserID, Source: "local", IdleTimeout: time.Hour, Lifetime: 3 * time.Hour})
	h.PortalSessionID = ps.ID
	code, _ = b.CreateAppHandoff(ctx, w.alice, h)
	b.RevokePortalSession(ctx, token)
	_, _, err = b.RedeemAppHandoff(ctx, code, host)
	wantKind(t, err, KindForbidden)

	// Without a portal login (a bearer token's caller), Until bounds it.
	until := now.Load().Add(time.Hour).Truncate(time.Microsecond)
	code, _ = b.CreateAppHandoff(ctx, w.alice, AppHandoff{SessionID: sid, AppHost: host, Until: until})
	app, c, err = b.RedeemAppHandoff(ctx, code, host)
	if err != nil || c.PortalSessionID != "" || !c.ExpiresAt.Equal(until) {
		t.Fatalf("token handoff: %+v %v; want it to expire at %v", c, err, until)
	}
	advance(time.Hour)
	_, _, err = b.ActorForAppCredential(ctx, app, host)
	wantKind(t, err, KindNotFound)
}
