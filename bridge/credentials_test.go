package bridge

// Credential tests against real PostgreSQL (a fresh database per test).

import (
	"bytes"
	"crypto/rand"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slurmgate/slurmgate/bridge/bridgetest"
)

// credWorld is a bridge with two domains: "lab" with users alice and bob, a
// domain admin dan, a second domain admin dora and a superadmin root; and
// "other" with user eve.
type credWorld struct {
	b                                *Bridge
	alice, bob, dan, dora, root, eve Actor
}

func newCredWorld(t *testing.T) *credWorld {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	b := New(bridgetest.Pool(t), nil, Config{SecretKey: key}, nil)
	w := &credWorld{b: b}
	for _, d := range []string{"lab", "other"} {
		if _, err := b.CreateDomain(t.Context(), System, d, ""); err != nil {
			t.Fatal(err)
		}
	}
	mk := func(name string, uid int, domain string, role Role) Actor {
		u, err := b.CreateUser(t.Context(), System, NewUser{Username: name, UID: uid, Domain: domain, Role: role})
		if err != nil {
			t.Fatal(err)
		}
		return u.Actor()
	}
	w.alice = mk("alice", 2001, "lab", RoleUser)
	w.bob = mk("bob", 2002, "lab", RoleUser)
	w.dan = mk("dan", 2004, "lab", RoleDomainAdmin)
	w.dora = mk("dora", 2005, "lab", RoleDomainAdmin)
	w.root = mk("root1", 2006, "lab", RoleSuperadmin)
	w.eve = mk("eve", 2007, "other", RoleUser)
	return w
}

func wantKind(t *testing.T, err error, want Kind) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want kind %d", want)
	}
	if got := KindOf(err); got != want {
		t.Fatalf("error %q has kind %d, want %d", err, got, want)
	}
}

var (
	accessKeyFormat = regexp.MustCompile(`^SGAK[A-Z2-7]{16}$`)
	secretFormat    = regexp.MustCompile(`^[A-Za-z0-9_-]{40}$`)
)

func TestKeypairCreateAndSecret(t *testing.T) {
	w := newCredWorld(t)
	ctx := t.Context()
	ak, sk, err := w.b.CreateKeypair(ctx, w.alice, w.alice.UserID, "laptop")
	if err != nil {
		t.Fatal(err)
	}
	if !accessKeyFormat.MatchString(ak) || !secretFormat.MatchString(sk) {
		t.Fatalf("access key %q / secret %q: wrong format", ak, sk)
	}
	secret, actor, err := w.b.KeypairSecret(ctx, ak)
	if err != nil {
		t.Fatal(err)
	}
	if string(secret) != sk || actor != w.alice {
		t.Fatalf("KeypairSecret = %q, %+v; want %q, %+v", secret, actor, sk, w.alice)
	}

	var stored []byte
	if err := w.b.db.QueryRow(ctx, `SELECT secret_enc FROM keypairs WHERE access_key = $1`, ak).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(stored, []byte(sk)) {
		t.Fatal("the secret is stored in clear")
	}

	// The access key is the ciphertext's additional data: a secret moved onto
	// another keypair's row does not decrypt.
	ak2, _, err := w.b.CreateKeypair(ctx, w.bob, w.bob.UserID, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.b.db.Exec(ctx, `UPDATE keypairs SET secret_enc = $1 WHERE access_key = $2`, stored, ak2); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.b.KeypairSecret(ctx, ak2); err == nil || KindOf(err) != KindInternal {
		t.Fatalf("a secret moved to another keypair: err = %v, want an internal decryption error", err)
	}

	bad := New(w.b.db, nil, Config{SecretKey: []byte("short")}, nil)
	if _, _, err := bad.CreateKeypair(ctx, w.alice, w.alice.UserID, ""); err == nil || !strings.Contains(err.Error(), "32 bytes") {
		t.Fatalf("with a 5-byte key: err = %v, want it to name the key length", err)
	}
	if _, _, err := w.b.CreateKeypair(ctx, w.alice, w.alice.UserID, strings.Repeat("x", 201)); KindOf(err) != KindInvalid {
		t.Fatalf("201-character description: err = %v, want invalid", err)
	}
}

func TestKeypairPermissions(t *testing.T) {
	w := newCredWorld(t)
	for _, tc := range []struct {
		name   string
		actor  Actor
		target int64
		want   Kind // KindInternal means allowed
	}{
		{"user for self", w.alice, w.alice.UserID, KindInternal},
		{"user for another user", w.alice, w.bob.UserID, KindNotFound},
		{"user for a user of another domain", w.alice, w.eve.UserID, KindNotFound},
		// A domain admin sees and revokes their users' credentials but does
		// not mint one: it would let them act as the user.
		{"domain admin for a user of their domain", w.dan, w.alice.UserID, KindForbidden},
		{"domain admin for self", w.dan, w.dan.UserID, KindInternal},
		{"domain admin for another domain admin", w.dan, w.dora.UserID, KindForbidden},
		{"domain admin for a superadmin of their domain", w.dan, w.root.UserID, KindForbidden},
		{"domain admin for a user of another domain", w.dan, w.eve.UserID, KindNotFound},
		{"superadmin for anyone", w.root, w.eve.UserID, KindInternal},
		{"system for anyone", System, w.dora.UserID, KindInternal},
		{"anyone for a user that does not exist", w.root, 999999, KindNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := w.b.CreateKeypair(t.Context(), tc.actor, tc.target, "")
			if tc.want == KindInternal {
				if err != nil {
					t.Fatalf("CreateKeypair: %v", err)
				}
				if _, err := w.b.ListKeypairs(t.Context(), tc.actor, tc.target, nil, 10); err != nil {
					t.Fatalf("ListKeypairs: %v", err)
				}
				return
			}
			wantKind(t, err, tc.want)
			_, _, err = w.b.CreateToken(t.Context(), tc.actor, tc.target, time.Hour)
			wantKind(t, err, tc.want)
			_, err = w.b.ListKeypairs(t.Context(), tc.actor, tc.target, nil, 10)
			if tc.actor.Role == RoleDomainAdmin && tc.target == w.alice.UserID {
				if err != nil {
					t.Fatalf("ListKeypairs by a domain admin for their user: %v", err)
				}
				return
			}
			wantKind(t, err, tc.want)
		})
	}
}

func TestKeypairRevoke(t *testing.T) {
	w := newCredWorld(t)
	ctx := t.Context()
	bobKey, _, err := w.b.CreateKeypair(ctx, w.bob, w.bob.UserID, "")
	if err != nil {
		t.Fatal(err)
	}
	// Alice may not even learn that bob's key exists.
	err = w.b.RevokeKeypair(ctx, w.alice, bobKey)
	wantKind(t, err, KindNotFound)
	if !strings.Contains(err.Error(), bobKey) || strings.Contains(err.Error(), "bob") {
		t.Fatalf("error %q should name the key as not found, and not its owner", err)
	}
	// An admin of another domain neither; one of bob's domain may.
	wantKind(t, w.b.RevokeKeypair(ctx, Actor{UserID: w.eve.UserID, Username: "x", Role: RoleDomainAdmin, DomainID: w.eve.DomainID}, bobKey), KindNotFound)
	if err := w.b.RevokeKeypair(ctx, w.dan, bobKey); err != nil {
		t.Fatal(err)
	}
	_, _, err = w.b.KeypairSecret(ctx, bobKey)
	wantKind(t, err, KindNotFound)
	if !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("KeypairSecret of a revoked key: %q should say it was revoked", err)
	}
	wantKind(t, w.b.RevokeKeypair(ctx, w.bob, bobKey), KindNotFound)
	if keys, err := w.b.ListKeypairs(ctx, w.bob, w.bob.UserID, nil, 10); err != nil || len(keys) != 0 {
		t.Fatalf("ListKeypairs after revocation = %v, %v; want none", keys, err)
	}
}

func TestKeypairRefusedForExpiredKeyOrInactiveUser(t *testing.T) {
	w := newCredWorld(t)
	ctx := t.Context()
	ak, _, err := w.b.CreateKeypair(ctx, w.alice, w.alice.UserID, "")
	if err != nil {
		t.Fatal(err)
	}
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := w.b.db.Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	check := func(want Kind, mention string) {
		t.Helper()
		_, _, err := w.b.KeypairSecret(ctx, ak)
		wantKind(t, err, want)
		if !strings.Contains(err.Error(), mention) {
			t.Fatalf("error %q should mention %q", err, mention)
		}
	}
	exec(`UPDATE users SET status = 'locked' WHERE id = $1`, w.alice.UserID)
	check(KindForbidden, "alice is locked")
	exec(`UPDATE users SET status = 'active' WHERE id = $1`, w.alice.UserID)
	exec(`UPDATE domains SET active = false WHERE id = $1`, w.alice.DomainID)
	check(KindForbidden, "domain lab")
	exec(`UPDATE domains SET active = true WHERE id = $1`, w.alice.DomainID)
	exec(`UPDATE keypairs SET expires_at = now() - interval '1 second' WHERE access_key = $1`, ak)
	check(KindNotFound, "expired")
	_, _, err = w.b.KeypairSecret(ctx, "SGAKNOSUCHKEY23456789")
	wantKind(t, err, KindNotFound)
}

func TestKeypairListPagination(t *testing.T) {
	w := newCredWorld(t)
	ctx := t.Context()
	created := map[string]bool{}
	for range 5 {
		ak, _, err := w.b.CreateKeypair(ctx, w.alice, w.alice.UserID, "")
		if err != nil {
			t.Fatal(err)
		}
		created[ak] = true
	}
	if _, _, err := w.b.CreateKeypair(ctx, w.bob, w.bob.UserID, ""); err != nil {
		t.Fatal(err)
	}
	var all []Keypair
	var after *KeypairCursor
	for page := 0; ; page++ {
		keys, err := w.b.ListKeypairs(ctx, w.alice, w.alice.UserID, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) > 2 || page > 3 {
			t.Fatalf("page %d has %d keys", page, len(keys))
		}
		all = append(all, keys...)
		if len(keys) < 2 {
			break
		}
		last := keys[len(keys)-1]
		after = &KeypairCursor{CreatedAt: last.CreatedAt, AccessKey: last.AccessKey}
	}
	if len(all) != 5 {
		t.Fatalf("listed %d keys, want alice's 5", len(all))
	}
	for i, k := range all {
		if !created[k.AccessKey] || k.Username != "alice" {
			t.Fatalf("listed %+v, not one of alice's keys", k)
		}
		delete(created, k.AccessKey)
		if i > 0 && all[i-1].CreatedAt.Before(k.CreatedAt) {
			t.Fatalf("not newest first: %v before %v", all[i-1].CreatedAt, k.CreatedAt)
		}
	}
	_, err := w.b.ListKeypairs(ctx, w.alice, w.alice.UserID, nil, 0)
	wantKind(t, err, KindInvalid)
}

func TestTokenLifecycle(t *testing.T) {
	w := newCredWorld(t)
	ctx := t.Context()
	token, expires, err := w.b.CreateToken(ctx, w.alice, w.alice.UserID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(token, "sgt_") || len(token) < 40 {
		t.Fatalf("token %q: want sgt_ and 43 random characters", token)
	}
	if d := time.Until(expires); d < 59*time.Minute || d > time.Hour {
		t.Fatalf("expires in %v, want an hour", d)
	}
	actor, gotExpires, err := w.b.ActorForToken(ctx, token)
	if err != nil || actor != w.alice || !gotExpires.Equal(expires) {
		t.Fatalf("ActorForToken = %+v, %v, %v; want alice, %v", actor, gotExpires, err, expires)
	}
	var n int
	if err := w.b.db.QueryRow(ctx, `SELECT count(*) FROM api_tokens WHERE position($1::bytea IN token_hash) > 0`, []byte(token)).Scan(&n); err != nil || n != 0 {
		t.Fatalf("the token itself is stored (%d rows, %v)", n, err)
	}

	for _, ttl := range []time.Duration{0, -time.Second, MaxTokenTTL + time.Second} {
		_, _, err := w.b.CreateToken(ctx, w.alice, w.alice.UserID, ttl)
		wantKind(t, err, KindInvalid)
	}
	for _, bad := range []string{"", "sgt_unknown", "not-a-token"} {
		_, _, err := w.b.ActorForToken(ctx, bad)
		wantKind(t, err, KindNotFound)
	}

	if _, err := w.b.db.Exec(ctx, `UPDATE users SET status = 'inactive' WHERE id = $1`, w.alice.UserID); err != nil {
		t.Fatal(err)
	}
	_, _, err = w.b.ActorForToken(ctx, token)
	wantKind(t, err, KindForbidden)
	if _, err := w.b.db.Exec(ctx, `UPDATE users SET status = 'active' WHERE id = $1`, w.alice.UserID); err != nil {
		t.Fatal(err)
	}

	w.b.now = func() time.Time { return time.Now().Add(time.Hour + time.Second) }
	_, _, err = w.b.ActorForToken(ctx, token)
	wantKind(t, err, KindNotFound)
	if !strings.Contains(err.Error(), "expired") {
		t.Fatalf("error %q should say the token expired", err)
	}
}

func TestCredentialRememberSignature(t *testing.T) {
	w := newCredWorld(t)
	ctx := t.Context()
	sig, other := []byte("signature-one-32-bytes-long....."), []byte("signature-two-32-bytes-long.....")
	remember := func(s []byte, want bool) {
		t.Helper()
		fresh, err := w.b.RememberSignature(ctx, s, 10*time.Minute)
		if err != nil || fresh != want {
			t.Fatalf("RememberSignature(%s) = %v, %v; want %v", s, fresh, err, want)
		}
	}
	remember(sig, true)
	remember(sig, false)
	remember(other, true)

	// Rows older than the window go at the next purge, and only they.
	if _, err := w.b.db.Exec(ctx, `UPDATE request_nonces SET seen_at = now() - interval '11 minutes' WHERE signature = $1`, sig); err != nil {
		t.Fatal(err)
	}
	if err := w.b.purgeSignatures(ctx, 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	remember(sig, true)
	remember(other, false)
}

func TestBootstrap(t *testing.T) {
	b := New(bridgetest.Pool(t), nil, Config{SecretKey: bytes.Repeat([]byte{7}, 32)}, nil)
	ctx := t.Context()
	_, _, _, err := b.Bootstrap(ctx, "Root!", 1000, "")
	wantKind(t, err, KindInvalid)
	_, _, _, err = b.Bootstrap(ctx, "admin", 1000, "not an address")
	wantKind(t, err, KindInvalid)

	// Racing bootstraps: exactly one wins.
	var wg sync.WaitGroup
	type result struct {
		actor  Actor
		ak, sk string
		err    error
	}
	results := make([]result, 4)
	for i := range results {
		wg.Go(func() {
			a, ak, sk, err := b.Bootstrap(ctx, "admin", 1000+i, "admin@example.org")
			results[i] = result{a, ak, sk, err}
		})
	}
	wg.Wait()
	var won *result
	for i, r := range results {
		switch {
		case r.err == nil && won == nil:
			won = &results[i]
		case r.err == nil:
			t.Fatal("two bootstraps succeeded")
		default:
			wantKind(t, r.err, KindConflict)
		}
	}
	if won == nil {
		t.Fatal("no bootstrap succeeded")
	}
	if won.actor.Role != RoleSuperadmin || won.actor.Username != "admin" {
		t.Fatalf("bootstrap actor = %+v", won.actor)
	}
	secret, actor, err := b.KeypairSecret(ctx, won.ak)
	if err != nil || string(secret) != won.sk || actor != won.actor {
		t.Fatalf("the bootstrap keypair: %q, %+v, %v", secret, actor, err)
	}
	d, err := b.DomainByName(ctx, actor, "default")
	if err != nil || d.ID != actor.DomainID {
		t.Fatalf("domain default = %+v, %v; want the superadmin's domain %d", d, err, actor.DomainID)
	}
	_, _, _, err = b.Bootstrap(ctx, "second", 3000, "")
	wantKind(t, err, KindConflict)
	if !strings.Contains(err.Error(), "admin") {
		t.Fatalf("refusal %q should name the existing superadmin", err)
	}
}

func TestBootstrapReusesDefaultDomain(t *testing.T) {
	b := New(bridgetest.Pool(t), nil, Config{SecretKey: bytes.Repeat([]byte{7}, 32)}, nil)
	d, err := b.CreateDomain(t.Context(), System, "default", "made earlier")
	if err != nil {
		t.Fatal(err)
	}
	actor, _, _, err := b.Bootstrap(t.Context(), "admin", 1000, "")
	if err != nil {
		t.Fatal(err)
	}
	if actor.DomainID != d.ID {
		t.Fatalf("superadmin in domain %d, want the existing default %d", actor.DomainID, d.ID)
	}
}
