package slurmctl

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestTokenIsReusedForHalfItsLife(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	m, err := NewMinter(key, 4*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	m.now = func() time.Time { return now }
	claims := func(tok string) jwt.MapClaims {
		t.Helper()
		c := jwt.MapClaims{}
		if _, err := jwt.ParseWithClaims(tok, c, func(*jwt.Token) (any, error) { return key, nil },
			jwt.WithTimeFunc(func() time.Time { return now })); err != nil {
			t.Fatalf("token does not verify: %v", err)
		}
		return c
	}

	a1, err := m.Token("alice")
	if err != nil {
		t.Fatal(err)
	}
	if c := claims(a1); c["sun"] != "alice" || c["exp"] != float64(now.Add(4*time.Minute).Unix()) {
		t.Fatalf("claims %v: want sun alice, exp now+4m", c)
	}
	now = now.Add(2*time.Minute - time.Second)
	if a2, _ := m.Token("alice"); a2 != a1 {
		t.Error("a token with more than half its life left was not reused")
	}
	if b, _ := m.Token("bob"); claims(b)["sun"] != "bob" {
		t.Error("bob got a token that is not his")
	}
	now = now.Add(2 * time.Second) // less than half of a1's life left
	a3, _ := m.Token("alice")
	if a3 == a1 {
		t.Fatal("a token with less than half its life left was reused")
	}
	if exp := claims(a3)["exp"]; exp != float64(now.Add(4*time.Minute).Unix()) {
		t.Errorf("fresh token expires at %v, want now+4m", exp)
	}
	if fresh, _ := m.Mint("alice"); claims(fresh)["sun"] != "alice" {
		t.Error("Mint's token is not alice's")
	}
}
