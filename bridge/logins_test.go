package bridge

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestPortalSessionLifecycle(t *testing.T) {
	w := newCredWorld(t)
	b, ctx := w.b, t.Context()
	var now atomic.Pointer[time.Time]
	start := time.Now()
	now.Store(&start)
	b.now = func() time.Time { return *now.Load() }
	advance := func(d time.Duration) { n := now.Load().Add(d); now.Store(&n) }

	token, s, err := b.CreatePortalSession(ctx, NewPortalSession{UserID: w.alice.UserID, Source: "ldap", IdleTimeout: time.Hour, Lifetime: 3 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(token, portalTokenPrefix) || s.CSRFToken == "" || s.Username != "alice" || s.ID == "" {
		t.Fatalf("session %+v, token %q", s, token)
	}
	a, got, err := b.ActorForPortalSession(ctx, token)
	if err != nil || a.UserID != w.alice.UserID || got.CSRFToken != s.CSRFToken || got.ID != s.ID {
		t.Fatalf("ActorForPortalSession: %+v %+v %v", a, got, err)
	}
	// Use keeps it alive past the idle timeout, up to the absolute end.
	for range 5 {
		advance(50 * time.Minute)
		if _, _, err := b.ActorForPortalSession(ctx, token); err != nil && now.Load().Before(s.ExpiresAt) {
			t.Fatalf("after %v of regular use: %v", now.Load().Sub(start), err)
		} else if err != nil {
			if !strings.Contains(err.Error(), "ended at") {
				t.Fatalf("past the lifetime: %v", err)
			}
			break
		}
	}
	if !now.Load().After(s.ExpiresAt) {
		t.Fatalf("the loop ended before the session's end")
	}

	// Idle expiry.
	token2, _, err := b.CreatePortalSession(ctx, NewPortalSession{UserID: w.alice.UserID, Source: "ldap", IdleTimeout: time.Hour, Lifetime: 3 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	advance(61 * time.Minute)
	_, _, err = b.ActorForPortalSession(ctx, token2)
	wantKind(t, err, KindNotFound)
	if !strings.Contains(err.Error(), "unused") {
		t.Fatalf("idle: %v", err)
	}

	// A locked user's sessions stop working.
	token3, _, _ := b.CreatePortalSession(ctx, NewPortalSession{UserID: w.bob.UserID, Source: "local", IdleTimeout: time.Hour, Lifetime: time.Hour})
	locked := "locked"
	if _, err := b.UpdateUser(ctx, System, w.bob.UserID, UserUpdate{Status: &locked}); err != nil {
		t.Fatal(err)
	}
	_, _, err = b.ActorForPortalSession(ctx, token3)
	wantKind(t, err, KindForbidden)

	_, _, err = b.ActorForPortalSession(ctx, "sgt_not-a-portal-token")
	wantKind(t, err, KindNotFound)
	_, _, err = b.ActorForPortalSession(ctx, portalTokenPrefix+"unknown")
	wantKind(t, err, KindNotFound)
}

func TestPortalLogoutRevokesAndAnnounces(t *testing.T) {
	w := newCredWorld(t)
	b, ctx := w.b, t.Context()
	watchCtx, cancel := context.WithCancel(ctx)
	revocations := b.LoginRevocations(watchCtx)

	token, s, err := b.CreatePortalSession(ctx, NewPortalSession{UserID: w.alice.UserID, Source: "oidc", IDToken: "x.y.z", IdleTimeout: time.Hour, Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	revokedAt := time.Now()
	if err := b.RevokePortalSession(ctx, token); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-revocations:
		latency := time.Since(revokedAt)
		if r.SessionID != s.ID || r.UserID != w.alice.UserID || r.Resync {
			t.Fatalf("revocation %+v, want session %s", r, s.ID)
		}
		t.Logf("revocation announced %v after the logout", latency)
	case <-time.After(time.Second):
		t.Fatal("no revocation within a second of the logout")
	}
	_, _, err = b.ActorForPortalSession(ctx, token)
	wantKind(t, err, KindNotFound)
	if !strings.Contains(err.Error(), "logged out") {
		t.Fatalf("after logout: %v", err)
	}
	// Logging out twice is fine and announces nothing new.
	if err := b.RevokePortalSession(ctx, token); err != nil {
		t.Fatal(err)
	}

	// An admin revokes all of a user's sessions; a stranger may not.
	t1, _, _ := b.CreatePortalSession(ctx, NewPortalSession{UserID: w.bob.UserID, Source: "ldap", IdleTimeout: time.Hour, Lifetime: time.Hour})
	b.CreatePortalSession(ctx, NewPortalSession{UserID: w.bob.UserID, Source: "ldap", IdleTimeout: time.Hour, Lifetime: time.Hour})
	_, err = b.RevokeUserPortalSessions(ctx, w.eve, w.bob.UserID)
	wantKind(t, err, KindNotFound)
	n, err := b.RevokeUserPortalSessions(ctx, w.dan, w.bob.UserID)
	if err != nil || n != 2 {
		t.Fatalf("revoking bob's sessions: %d, %v", n, err)
	}
	for range 2 {
		select {
		case r := <-revocations:
			if r.UserID != w.bob.UserID {
				t.Fatalf("revocation %+v, want bob's", r)
			}
		case <-time.After(time.Second):
			t.Fatal("bob's revocations were not announced")
		}
	}
	if _, _, err := b.ActorForPortalSession(ctx, t1); KindOf(err) != KindNotFound {
		t.Fatalf("bob's session after revocation: %v", err)
	}
	cancel()
	for range revocations {
	}
}

func TestLoginProvisioning(t *testing.T) {
	w := newCredWorld(t)
	b, ctx := w.b, t.Context()
	vision, err := b.CreateProject(ctx, System, "lab", "vision", "")
	if err != nil {
		t.Fatal(err)
	}
	nlp, _ := b.CreateProject(ctx, System, "lab", "nlp", "")

	// carol is new: created in the provisioning domain, with her groups' projects.
	carol := LoginIdentity{Username: "carol", UID: 2003, Email: "carol@example.org", FullName: "Carol D", Source: "ldap", Subject: "uid=carol,ou=people,dc=example,dc=org",
		ProvisionDomain: "lab", Projects: []LoginGrant{{"lab/vision", "project-admin"}, {"lab/nlp", "member"}, {"lab/ghost", "member"}, {"other/x", "member"}}}
	u, notes, err := b.ProvisionLogin(ctx, carol)
	if err != nil {
		t.Fatal(err)
	}
	if u.Username != "carol" || u.UID != 2003 || u.Domain != "lab" || u.Role != RoleUser || u.Email != "carol@example.org" {
		t.Fatalf("provisioned %+v", u)
	}
	if len(notes) != 2 || !strings.Contains(notes[0], "no such project") || !strings.Contains(notes[1], "domain lab") {
		t.Fatalf("notes = %q", notes)
	}
	members, _ := b.Members(ctx, System, vision.ID)
	if len(members) != 1 || members[0].Username != "carol" || members[0].Role != "project-admin" {
		t.Fatalf("vision members = %+v", members)
	}
	// An admin lowers her; her next login's groups still say project-admin
	// for vision, but grants only add: the admin's nlp promotion stays.
	if _, err := b.SetMembership(ctx, System, nlp.ID, u.ID, "project-admin"); err != nil {
		t.Fatal(err)
	}
	carol.Projects = []LoginGrant{{"lab/nlp", "member"}}
	carol.Email = ""
	if u, _, err = b.ProvisionLogin(ctx, carol); err != nil || u.Email != "carol@example.org" {
		t.Fatalf("second login: %+v %v", u, err)
	}
	members, _ = b.Members(ctx, System, nlp.ID)
	if len(members) != 1 || members[0].Role != "project-admin" {
		t.Fatalf("nlp members after a login granting member = %+v", members)
	}

	// Existing users: uid must match, status must be active.
	_, _, err = b.ProvisionLogin(ctx, LoginIdentity{Username: "alice", UID: 9999})
	wantKind(t, err, KindForbidden)
	if !strings.Contains(err.Error(), "uid 2001") {
		t.Fatalf("uid mismatch: %v", err)
	}
	if u, _, err := b.ProvisionLogin(ctx, LoginIdentity{Username: "alice", UID: 2001}); err != nil || u.ID != w.alice.UserID {
		t.Fatalf("alice: %+v %v", u, err)
	}
	locked := "locked"
	b.UpdateUser(ctx, System, w.bob.UserID, UserUpdate{Status: &locked})
	_, _, err = b.ProvisionLogin(ctx, LoginIdentity{Username: "bob", UID: 2002})
	wantKind(t, err, KindForbidden)

	// New users without provisioning, or into a missing domain, or with a taken uid.
	for _, id := range []LoginIdentity{
		{Username: "zoe", UID: 3001},
		{Username: "zoe", UID: 3001, ProvisionDomain: "nowhere"},
		{Username: "zoe", UID: 2001, ProvisionDomain: "lab"},
	} {
		_, _, err := b.ProvisionLogin(ctx, id)
		wantKind(t, err, KindForbidden)
		if !strings.Contains(err.Error(), "administrator") {
			t.Errorf("%+v: %v should tell an administrator what to do", id, err)
		}
	}
}

func TestLoginLocalPasswordAndOIDCFlow(t *testing.T) {
	w := newCredWorld(t)
	b, ctx := w.b, t.Context()
	if _, _, err := b.LocalPasswordHash(ctx, "alice"); KindOf(err) != KindNotFound {
		t.Fatalf("no password yet: %v", err)
	}
	wantKind(t, b.SetLocalPassword(ctx, w.alice, w.bob.UserID, "$argon2id$x"), KindForbidden)
	if err := b.SetLocalPassword(ctx, w.root, w.alice.UserID, "$argon2id$x"); err != nil {
		t.Fatal(err)
	}
	if h, uid, err := b.LocalPasswordHash(ctx, "alice"); h != "$argon2id$x" || uid != 2001 || err != nil {
		t.Fatalf("hash %q uid %d %v", h, uid, err)
	}
	b.SetLocalPassword(ctx, w.alice, w.alice.UserID, "")
	if _, _, err := b.LocalPasswordHash(ctx, "alice"); KindOf(err) != KindNotFound {
		t.Fatalf("removed password: %v", err)
	}

	f := OIDCFlow{State: "s1", Nonce: "n1", Verifier: "v1", ReturnTo: "/sessions"}
	if err := b.SaveOIDCFlow(ctx, f, time.Minute); err != nil {
		t.Fatal(err)
	}
	if got, err := b.TakeOIDCFlow(ctx, "s1"); err != nil || got != f {
		t.Fatalf("TakeOIDCFlow = %+v, %v", got, err)
	}
	if _, err := b.TakeOIDCFlow(ctx, "s1"); KindOf(err) != KindNotFound {
		t.Fatalf("a flow taken twice: %v", err)
	}
	b.SaveOIDCFlow(ctx, OIDCFlow{State: "s2", Nonce: "n", Verifier: "v"}, -time.Second)
	if _, err := b.TakeOIDCFlow(ctx, "s2"); KindOf(err) != KindNotFound {
		t.Fatalf("an expired flow: %v", err)
	}
}

// A subscriber that never stops must not keep the pool from closing, and
// its channel closes once the pool is gone.
func TestLoginRevocationsLetThePoolClose(t *testing.T) {
	w := newCredWorld(t)
	revocations := w.b.LoginRevocations(context.Background())
	closed := make(chan struct{})
	go func() {
		w.b.db.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("closing the pool waits for the LISTEN connection")
	}
	// The database is dropped when the test ends, which ends the
	// connection; nothing more is asserted here than that Close returned.
	_ = revocations
}

// An LDAP or OIDC user is tied to the subject of their first login: a
// provider account that merely claims the same name (OIDC's
// preferred_username is not unique) is refused, as is one subject logging
// in as a second user. Local logins bind nothing.
func TestLoginBindsFirstSubject(t *testing.T) {
	w := newCredWorld(t)
	b, ctx := w.b, t.Context()
	alice := LoginIdentity{Username: "alice", UID: 2001, Source: "oidc", Subject: "sub-alice"}
	if u, _, err := b.ProvisionLogin(ctx, alice); err != nil || u.ID != w.alice.UserID {
		t.Fatalf("alice's first OIDC login: %+v %v", u, err)
	}
	if _, _, err := b.ProvisionLogin(ctx, alice); err != nil {
		t.Fatalf("alice's second OIDC login: %v", err)
	}
	impostor := alice
	impostor.Subject = "sub-mallory"
	_, _, err := b.ProvisionLogin(ctx, impostor)
	wantKind(t, err, KindForbidden)
	if !strings.Contains(err.Error(), "administrator") {
		t.Fatalf("impostor: %v should say to ask an administrator", err)
	}
	// The same subject cannot become another user either.
	_, _, err = b.ProvisionLogin(ctx, LoginIdentity{Username: "bob", UID: 2002, Source: "oidc", Subject: "sub-alice"})
	wantKind(t, err, KindForbidden)
	// Sources are tied separately: alice's directory entry is her LDAP tie.
	if _, _, err := b.ProvisionLogin(ctx, LoginIdentity{Username: "alice", UID: 2001, Source: "ldap", Subject: "uid=alice,ou=people,dc=example,dc=org"}); err != nil {
		t.Fatalf("alice's first LDAP login: %v", err)
	}
	_, _, err = b.ProvisionLogin(ctx, LoginIdentity{Username: "alice", UID: 2001, Source: "ldap", Subject: "uid=alice,ou=guests,dc=example,dc=org"})
	wantKind(t, err, KindForbidden)
	// An SSO login without a subject is refused; a local one needs none.
	_, _, err = b.ProvisionLogin(ctx, LoginIdentity{Username: "bob", UID: 2002, Source: "oidc"})
	wantKind(t, err, KindForbidden)
	if _, _, err := b.ProvisionLogin(ctx, LoginIdentity{Username: "bob", UID: 2002, Source: "local", Subject: "bob"}); err != nil {
		t.Fatalf("bob's local login: %v", err)
	}
	// A user provisioned on first login is tied at once.
	zoe := LoginIdentity{Username: "zoe", UID: 3001, Source: "oidc", Subject: "sub-zoe", ProvisionDomain: "lab"}
	if _, _, err := b.ProvisionLogin(ctx, zoe); err != nil {
		t.Fatal(err)
	}
	zoe.Subject = "sub-zoe-2"
	_, _, err = b.ProvisionLogin(ctx, zoe)
	wantKind(t, err, KindForbidden)
}
