package api

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/slurmgate/slurmgate/api/client"
)

func TestKeypairRevokeOthers(t *testing.T) {
	a := newTestAPI(t, Options{})
	alice, bob := a.client(a.alice), a.client(a.bob)

	// Alice cannot revoke bob's keypair, nor learn that it exists.
	err := alice.RevokeKeypair(t.Context(), a.bob.accessKey)
	if p := wantClientProblem(t, err, http.StatusNotFound); strings.Contains(p.Detail, "bob") {
		t.Fatalf("detail %q names the owner", p.Detail)
	}
	if _, err := bob.Me(t.Context()); err != nil {
		t.Fatalf("bob's keypair stopped working: %v", err)
	}
	// Nor list or create his.
	_, err = alice.ListKeypairs(t.Context(), a.bob.UserID, client.ListOptions{})
	wantClientProblem(t, err, http.StatusNotFound)
	_, err = alice.CreateKeypair(t.Context(), a.bob.UserID, "")
	wantClientProblem(t, err, http.StatusNotFound)

	// A superadmin can do all three.
	root := a.client(a.root)
	kp, err := root.CreateKeypair(t.Context(), a.bob.UserID, "made by root")
	if err != nil || kp.UserID != a.bob.UserID || kp.SecretKey == "" {
		t.Fatalf("root creating bob's keypair: %+v, %v", kp, err)
	}
	page, err := root.ListKeypairs(t.Context(), a.bob.UserID, client.ListOptions{})
	if err != nil || len(page.Items) != 2 || page.Items[0].AccessKey != kp.AccessKey || page.Items[0].Description != "made by root" {
		t.Fatalf("root listing bob's keypairs: %+v, %v", page, err)
	}
	if err := root.RevokeKeypair(t.Context(), kp.AccessKey); err != nil {
		t.Fatal(err)
	}
	// And bob can use and revoke his own.
	if _, err := a.client(testUser{a.bob.Actor, kp.AccessKey, kp.SecretKey}).Me(t.Context()); err == nil {
		t.Fatal("a revoked keypair still works")
	}
	if err := bob.RevokeKeypair(t.Context(), a.bob.accessKey); err != nil {
		t.Fatal(err)
	}
}

func TestKeypairListPages(t *testing.T) {
	a := newTestAPI(t, Options{})
	c := a.client(a.alice)
	want := map[string]bool{a.alice.accessKey: true}
	for range 4 {
		kp, err := c.CreateKeypair(t.Context(), 0, "")
		if err != nil {
			t.Fatal(err)
		}
		want[kp.AccessKey] = true
	}
	opts := client.ListOptions{Limit: 2}
	var pages, seen int
	for {
		page, err := c.ListKeypairs(t.Context(), 0, opts)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, k := range page.Items {
			if !want[k.AccessKey] {
				t.Fatalf("unexpected or repeated key %s", k.AccessKey)
			}
			delete(want, k.AccessKey)
			seen++
		}
		if page.Next == "" {
			break
		}
		if pages > 3 {
			t.Fatal("the pages do not end")
		}
		opts.Cursor = page.Next
	}
	// 5 keys in pages of 2: 2, 2, 1 — the last one not full, so no next.
	if seen != 5 || pages != 3 {
		t.Fatalf("saw %d keys in %d pages, want 5 in 3", seen, pages)
	}

	// The body of an empty list is "items": [].
	raw := string(a.wantStatus(a.signed(a.bob, "GET", "/api/v1/keypairs?cursor="+encodeCursor(position{CreatedAt: time.Unix(1, 0), ID: "x"}), nil, time.Now()), http.StatusOK))
	if !strings.Contains(raw, `"items":[]`) || strings.Contains(raw, "next") {
		t.Fatalf("empty page: %s", raw)
	}
	for query, field := range map[string]string{
		"limit=0": "limit", "limit=501": "limit", "limit=ten": "limit",
		"cursor=bm9wZQ": "cursor", "cursor=%25%25": "cursor", "user_id=-1": "user_id",
	} {
		p, _ := a.wantProblem(a.signed(a.alice, "GET", "/api/v1/keypairs?"+query, nil, time.Now()), http.StatusBadRequest)
		if p.Field != field {
			t.Errorf("%s: field %q, want %q", query, p.Field, field)
		}
	}
}

func TestTokenCreate(t *testing.T) {
	a := newTestAPI(t, Options{})
	c := a.client(a.alice)
	tok, err := c.CreateToken(t.Context(), 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(tok.ExpiresAt); d < 119*time.Minute || d > 2*time.Hour {
		t.Fatalf("token expires in %v, want 2h", d)
	}
	_, err = c.CreateToken(t.Context(), 25*time.Hour)
	if p := wantClientProblem(t, err, http.StatusUnprocessableEntity); p.Field != "ttl_seconds" {
		t.Fatalf("field %q, want ttl_seconds", p.Field)
	}
	tc, err := client.New(a.ts.URL, client.WithToken(tok.Token))
	if err != nil {
		t.Fatal(err)
	}
	// A token mints no credentials: a leaked one dies at its expiry.
	_, err = tc.CreateToken(t.Context(), time.Hour)
	if p := wantClientProblem(t, err, http.StatusForbidden); !strings.Contains(p.Detail, "keypair-signed") {
		t.Fatalf("detail %q should say a keypair-signed request is needed", p.Detail)
	}
	_, err = tc.CreateKeypair(t.Context(), 0, "from a token")
	wantClientProblem(t, err, http.StatusForbidden)
}
