package sso

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/slurmgate/slurmgate/testdata/cluster"
)

// ldapConfig is the test directory over plain LDAP, StartTLS or LDAPS.
func ldapConfig(t *testing.T, mode string) LDAPConfig {
	env := cluster.RequireLDAP(t)
	c := LDAPConfig{URL: env.URL, CAFile: env.CAFile, BaseDN: "ou=people," + env.BaseDN,
		BindDN: env.BindDN, BindPassword: env.BindPassword,
		DisabledFilter: "(|(loginShell=/sbin/nologin)(shadowExpire=1))",
		Groups: []GroupRule{
			{Group: "cn=vision,ou=groups," + env.BaseDN, Project: "lab/vision"},
			{Group: "vision-admins", Project: "lab/vision", Role: "project-admin"},
			{Pattern: `proj-(\w+)`, Project: "lab/$1"},
		}}
	switch mode {
	case "starttls":
		c.StartTLS = true
	case "ldaps":
		c.URL = env.LDAPSURL
	}
	return c
}

func newTestLDAP(t *testing.T, mode string) *LDAP {
	l, err := NewLDAP(ldapConfig(t, mode))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestLDAPLoginEveryTransport(t *testing.T) {
	for _, mode := range []string{"plain", "starttls", "ldaps"} {
		t.Run(mode, func(t *testing.T) {
			id, err := newTestLDAP(t, mode).Authenticate(t.Context(), "alice", "alice-pw")
			if err != nil {
				t.Fatal(err)
			}
			if id.Username != "alice" || id.UID != 2001 || id.GID != 2001 || id.Email != "alice@slurmgate.test" ||
				id.FullName != "Alice Liddell" || !strings.HasPrefix(id.Subject, "uid=alice,") || id.Source != "ldap" {
				t.Fatalf("identity = %+v", id)
			}
			want := []ProjectGrant{{"lab/vision", "project-admin"}}
			if !slices.Equal(id.Projects, want) {
				t.Fatalf("projects = %v, want %v (groups %v)", id.Projects, want, id.Groups)
			}
		})
	}
}

func TestLDAPGroupRules(t *testing.T) {
	l := newTestLDAP(t, "plain")
	bob, err := l.Authenticate(t.Context(), "bob", "bob-pw")
	if err != nil {
		t.Fatal(err)
	}
	if want := []ProjectGrant{{"lab/vision", "member"}}; !slices.Equal(bob.Projects, want) {
		t.Fatalf("bob's projects = %v, want %v", bob.Projects, want)
	}
	carol, err := l.Authenticate(t.Context(), "carol", "carol-pw")
	if err != nil {
		t.Fatal(err)
	}
	if want := []ProjectGrant{{"lab/nlp", "member"}}; !slices.Equal(carol.Projects, want) {
		t.Fatalf("carol's projects = %v, want %v (pattern rule)", carol.Projects, want)
	}
}

func TestLDAPRefusals(t *testing.T) {
	l := newTestLDAP(t, "starttls")
	for _, tc := range []struct {
		name, user, password string
		reason               Reason
		mention              string
	}{
		{"wrong password", "alice", "nope", BadCredentials, "wrong user name or password"},
		{"unknown user", "zed", "zed-pw", BadCredentials, "wrong user name or password"},
		{"empty password", "alice", "", BadCredentials, "wrong user name or password"},
		{"filter injection", "*", "x", BadCredentials, "wrong user name or password"},
		{"locked by ppolicy", "dave", "dave-pw", Locked, "locked"},
		{"disabled by filter", "erin", "erin-pw", Locked, "disabled"},
		// Only someone with the password learns the account is disabled.
		{"disabled, wrong password", "erin", "nope", BadCredentials, "wrong user name or password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := l.Authenticate(t.Context(), tc.user, tc.password)
			if ReasonOf(err) != tc.reason {
				t.Fatalf("err = %v (reason %q), want reason %q", err, ReasonOf(err), tc.reason)
			}
			if msg := err.(*Error).Message; !strings.Contains(msg, tc.mention) {
				t.Fatalf("message %q should say %q", msg, tc.mention)
			}
		})
	}
}

func TestLDAPServiceAccountAndTLSMisconfigured(t *testing.T) {
	c := ldapConfig(t, "plain")
	c.BindPassword = "wrong"
	l, err := NewLDAP(c)
	if err != nil {
		t.Fatal(err)
	}
	_, err = l.Authenticate(t.Context(), "alice", "alice-pw")
	if ReasonOf(err) != Unavailable || !strings.Contains(err.Error(), "service account") {
		t.Fatalf("wrong service password: %v", err)
	}
	// The system roots do not know the test CA: StartTLS must fail, not
	// fall back to plain text.
	c = ldapConfig(t, "starttls")
	c.CAFile = ""
	l, _ = NewLDAP(c)
	_, err = l.Authenticate(t.Context(), "alice", "alice-pw")
	if ReasonOf(err) != Unavailable || !strings.Contains(err.Error(), "StartTLS") {
		t.Fatalf("untrusted certificate: %v", err)
	}
	c = ldapConfig(t, "ldaps")
	c.ServerName = "ldap.example.org"
	l, _ = NewLDAP(c)
	if _, err = l.Authenticate(t.Context(), "alice", "alice-pw"); ReasonOf(err) != Unavailable {
		t.Fatalf("certificate for another name: %v", err)
	}
}

func TestServicePasswordResolvesPOSIX(t *testing.T) {
	c := ldapConfig(t, "ldaps")
	s, err := New(context.Background(), Config{LDAP: &c}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := s.Password(t.Context(), "bob", "bob-pw")
	if err != nil || id.UID != 2002 {
		t.Fatalf("bob: %+v, %v", id, err)
	}
	_, err = s.Password(t.Context(), "mallory", "mallory-pw")
	if ReasonOf(err) != NoPOSIXUser || !strings.Contains(err.Error(), "no POSIX account") || !strings.Contains(err.Error(), "uid 2999") {
		t.Fatalf("mallory (no POSIX account): %v", err)
	}
	if p := s.Providers(); !p.Password || !p.LDAP || p.OIDC {
		t.Fatalf("providers = %+v", p)
	}
}

func TestNewLDAPRejectsBadConfig(t *testing.T) {
	for _, c := range []LDAPConfig{
		{URL: "http://x", BaseDN: "dc=x"},
		{URL: "ldaps://x", StartTLS: true, BaseDN: "dc=x"},
		{URL: "ldap://x"},
		{URL: "ldap://x", BaseDN: "dc=x", UserFilter: "(uid=alice)"},
		{URL: "ldap://x", BaseDN: "dc=x", DisabledFilter: "(broken"},
		{URL: "ldap://x", BaseDN: "dc=x", Groups: []GroupRule{{Group: "g", Pattern: "p", Project: "a/b"}}},
		{URL: "ldap://x", BaseDN: "dc=x", Groups: []GroupRule{{Group: "g", Project: "nope"}}},
		{URL: "ldap://x", BaseDN: "dc=x", Groups: []GroupRule{{Group: "g", Project: "a/b", Role: "owner"}}},
	} {
		if _, err := NewLDAP(c); err == nil {
			t.Errorf("NewLDAP(%+v) accepted", c)
		}
	}
}

// A plain ldap:// URL without StartTLS is accepted but warned about: every
// login would send a password in clear.
func TestNewLDAPWarnsOfCleartext(t *testing.T) {
	var buf bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, nil)))
	defer slog.SetDefault(old)
	for _, tc := range []struct {
		cfg  LDAPConfig
		warn bool
	}{
		{LDAPConfig{URL: "ldap://dir.example:389", BaseDN: "dc=x"}, true},
		{LDAPConfig{URL: "ldap://dir.example:389", BaseDN: "dc=x", StartTLS: true}, false},
		{LDAPConfig{URL: "ldaps://dir.example:636", BaseDN: "dc=x"}, false},
	} {
		buf.Reset()
		if _, err := NewLDAP(tc.cfg); err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(buf.String(), "in clear"); got != tc.warn {
			t.Errorf("%s (start_tls %v): warned %v, want %v: %s", tc.cfg.URL, tc.cfg.StartTLS, got, tc.warn, buf.String())
		}
	}
}
