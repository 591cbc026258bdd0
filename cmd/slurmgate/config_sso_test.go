package main

import (
	"strings"
	"testing"
	"time"
)

func TestConfigSSOSectionsEnvAndMasking(t *testing.T) {
	cfg, err := loadConfig("../../etc/slurmgate.toml", []string{
		"SLURMGATE_DATABASE_URL=postgres://gw:s3cret@db/slurmgate",
		"SLURMGATE_SSO_LOCAL_ACCOUNTS=false",
		"SLURMGATE_SSO_PROVISION_DOMAIN=lab",
		"SLURMGATE_LDAP_URL=ldaps://ldap.example.org:636",
		"SLURMGATE_LDAP_START_TLS=false",
		"SLURMGATE_LDAP_BIND_PASSWORD=ldap-s3cret",
		"SLURMGATE_LDAP_TIMEOUT=3s",
		"SLURMGATE_OIDC_ISSUER=https://idp.example.org",
		"SLURMGATE_OIDC_CLIENT_ID=slurmgate",
		"SLURMGATE_OIDC_CLIENT_SECRET=oidc-s3cret",
		"SLURMGATE_OIDC_SCOPES=profile,email groups",
	})
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.ssoConfig()
	if s.LocalAccounts || s.ProvisionDomain != "lab" || s.SessionIdleTimeout != time.Hour || s.SessionLifetime != 12*time.Hour {
		t.Fatalf("[sso] = %+v", s)
	}
	if s.LDAP == nil || s.LDAP.URL != "ldaps://ldap.example.org:636" || s.LDAP.StartTLS || s.LDAP.Timeout != 3*time.Second || s.LDAP.BindPassword != "ldap-s3cret" {
		t.Fatalf("[ldap] = %+v", s.LDAP)
	}
	if s.OIDC == nil || s.OIDC.ClientSecret != "oidc-s3cret" || strings.Join(s.OIDC.Scopes, " ") != "profile email groups" {
		t.Fatalf("[oidc] = %+v", s.OIDC)
	}
	if out := cfg.masked(); strings.Contains(out, "s3cret") {
		t.Fatalf("masked configuration leaks a secret:\n%s", out)
	}

	// The sample leaves LDAP and OIDC off.
	cfg, err = loadConfig("../../etc/slurmgate.toml", []string{"SLURMGATE_DATABASE_URL=postgres://x@db/y"})
	if err != nil {
		t.Fatal(err)
	}
	if s := cfg.ssoConfig(); s.LDAP != nil || s.OIDC != nil || !s.LocalAccounts {
		t.Fatalf("sample: %+v", s)
	}

	for env, mention := range map[string]string{
		"SLURMGATE_LDAP_URL=http://ldap":        "[ldap]",
		"SLURMGATE_OIDC_ISSUER=https://idp":     "client_id",
		"SLURMGATE_SSO_SESSION_IDLE_TIMEOUT=1s": "session_idle_timeout",
		"SLURMGATE_SSO_LOCAL_ACCOUNTS=maybe":    "true or false",
	} {
		_, err := loadConfig("../../etc/slurmgate.toml", []string{"SLURMGATE_DATABASE_URL=postgres://x@db/y", env})
		if err == nil || !strings.Contains(err.Error(), mention) {
			t.Errorf("%s: %v; want an error naming %s", env, err, mention)
		}
	}
}
