package sso

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestResolvePOSIX(t *testing.T) {
	id, err := ResolvePOSIX(Identity{Source: "oidc", Username: "carol"})
	if err != nil || id.UID != 2003 || id.GID != 2003 {
		t.Fatalf("carol: %+v, %v", id, err)
	}
	for _, tc := range []struct {
		id      Identity
		mention string
	}{
		{Identity{Source: "ldap", Username: "alice", UID: 4242}, "uid 4242 in the directory but POSIX uid 2001"},
		{Identity{Source: "ldap", Username: "nosuchuser"}, "no POSIX account"},
		{Identity{Source: "oidc", Username: "Alice@Example.org"}, "not a POSIX user name"},
		{Identity{Source: "local", Username: "root"}, "root never logs in"},
	} {
		_, err := ResolvePOSIX(tc.id)
		if ReasonOf(err) != NoPOSIXUser || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("%+v: %v; want %q", tc.id, err, tc.mention)
		}
	}
}

func TestGroupMapperHighestRoleWins(t *testing.T) {
	m, err := NewGroupMapper([]GroupRule{
		{Group: "CN=Vision,OU=Groups,DC=x", Project: "lab/vision"},
		{Pattern: `(.+)-admins`, Project: "lab/$1", Role: "project-admin"},
		{Pattern: `team-(?P<name>[a-z]+)`, Project: "lab/${name}"},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := m.Projects([]string{"cn=vision,ou=groups,dc=x", "vision-admins", "team-nlp", "team-NLP!", "unrelated"})
	want := []ProjectGrant{{"lab/nlp", "member"}, {"lab/vision", "project-admin"}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("Projects = %v, want %v", got, want)
	}
}

type memStore map[string]string

func (m memStore) LocalPasswordHash(_ context.Context, username string) (string, int, error) {
	h, ok := m[username]
	if !ok {
		return "", 0, ErrNoLocalPassword
	}
	return h, 0, nil
}

func TestLocalPasswords(t *testing.T) {
	if _, err := HashPassword("short"); err == nil {
		t.Fatal("a 5-character password was accepted")
	}
	h, err := HashPassword("correct horse battery")
	if err != nil || !strings.HasPrefix(h, "$argon2id$v=19$m=65536,t=3,p=2$") {
		t.Fatalf("hash %q, %v", h, err)
	}
	if h2, _ := HashPassword("correct horse battery"); h2 == h {
		t.Fatal("two hashes of one password are equal: no salt")
	}
	l := NewLocal(memStore{"carol": h})
	id, err := l.Authenticate(t.Context(), "carol", "correct horse battery")
	if err != nil || id.Username != "carol" || id.Source != "local" {
		t.Fatalf("carol: %+v, %v", id, err)
	}
	if _, err := l.Authenticate(t.Context(), "carol", "wrong horse battery"); ReasonOf(err) != BadCredentials {
		t.Fatalf("wrong password: %v", err)
	}
	_, err = l.Authenticate(t.Context(), "bob", "whatever")
	if ReasonOf(err) != BadCredentials || !errors.Is(err, ErrNoLocalPassword) {
		t.Fatalf("no local password: %v", err)
	}
	// Local first, then nothing: with LDAP off, bob is refused.
	s, _ := New(t.Context(), Config{LocalAccounts: true}, memStore{"carol": h}, nil)
	if id, err := s.Password(t.Context(), "carol", "correct horse battery"); err != nil || id.UID != 2003 {
		t.Fatalf("service: %+v, %v", id, err)
	}
	if _, err := s.Password(t.Context(), "bob", "x"); ReasonOf(err) != BadCredentials {
		t.Fatalf("service, no local password and no LDAP: %v", err)
	}
	if _, err := CheckPassword("$2a$10$bcrypt", "x"); err == nil {
		t.Fatal("a bcrypt hash was taken for argon2id")
	}
}
