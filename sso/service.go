package sso

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Config is the [sso] section with its [sso.ldap] and [sso.oidc] tables.
type Config struct {
	// LocalAccounts lets users with a local password (set by
	// `slurmgate admin passwd`) log in with it; meant for bootstrap admins.
	LocalAccounts bool `toml:"local_accounts"`
	// ProvisionDomain is the domain a person's Slurmgate user is created
	// in on their first login; empty means only users an admin created may
	// log in.
	ProvisionDomain string `toml:"provision_domain"`
	// SessionIdleTimeout ends a portal session unused this long; 0 means 1 h.
	SessionIdleTimeout time.Duration `toml:"session_idle_timeout"`
	// SessionLifetime ends any portal session this long after login; 0
	// means 12 h.
	SessionLifetime time.Duration `toml:"session_lifetime"`
	// MinUID is the lowest POSIX uid an LDAP or OIDC login may resolve to;
	// 0 means 1000, where Debian and most distributions start people's
	// accounts. It keeps a directory or provider entry named like a system
	// account (slurm, postgres, daemon) from becoming that account. Local
	// accounts, which an administrator set up, are exempt; uid 0 and
	// 65534 (nobody) never log in.
	MinUID int         `toml:"min_uid"`
	LDAP   *LDAPConfig `toml:"ldap"`
	OIDC   *OIDCConfig `toml:"oidc"`
}

// Service is the configured ways in.
type Service struct {
	cfg   Config
	local *Local
	ldap  *LDAP
	oidc  *OIDC
}

// New builds the authenticators cfg enables; store holds local passwords
// (needed when cfg.LocalAccounts). OIDC discovery runs now, through client
// (nil means http.DefaultClient).
func New(ctx context.Context, cfg Config, store PasswordStore, client *http.Client) (*Service, error) {
	if cfg.SessionIdleTimeout <= 0 {
		cfg.SessionIdleTimeout = time.Hour
	}
	if cfg.SessionLifetime <= 0 {
		cfg.SessionLifetime = 12 * time.Hour
	}
	if cfg.MinUID <= 0 {
		cfg.MinUID = defaultMinUID
	}
	s := &Service{cfg: cfg}
	if cfg.LocalAccounts {
		if store == nil {
			return nil, errors.New("sso: local_accounts needs a password store")
		}
		s.local = NewLocal(store)
	}
	var err error
	if cfg.LDAP != nil {
		if s.ldap, err = NewLDAP(*cfg.LDAP); err != nil {
			return nil, err
		}
	}
	if cfg.OIDC != nil {
		if s.oidc, err = NewOIDC(ctx, *cfg.OIDC, client); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Config returns the effective configuration (defaults applied).
func (s *Service) Config() Config { return s.cfg }

// OIDC is the OpenID Connect relying party, nil when not configured.
func (s *Service) OIDC() *OIDC { return s.oidc }

// Providers says which ways in are configured, for the login page.
type Providers struct {
	Password bool   `json:"password"`            // the user name/password form (local accounts or LDAP)
	LDAP     bool   `json:"ldap"`                // the form checks the LDAP directory
	OIDC     bool   `json:"oidc"`                // a "log in with" button
	OIDCName string `json:"oidc_name,omitempty"` // its label
}

// Providers reports what is configured.
func (s *Service) Providers() Providers {
	p := Providers{Password: s.local != nil || s.ldap != nil, LDAP: s.ldap != nil, OIDC: s.oidc != nil}
	if s.oidc != nil {
		p.OIDCName = s.oidc.Name()
	}
	return p
}

// Password authenticates a user name and password: a local password first
// (when enabled and the user has one), otherwise the LDAP directory. The
// identity is POSIX-resolved.
func (s *Service) Password(ctx context.Context, username, password string) (Identity, error) {
	if s.local == nil && s.ldap == nil {
		return Identity{}, refuse(Unavailable, nil, "password login is not configured on this gateway; use the single sign-on button")
	}
	var id Identity
	var err error = badCredentials(ErrNoLocalPassword)
	if s.local != nil {
		id, err = s.local.authenticate(ctx, username, password, s.ldap == nil)
	}
	if errors.Is(err, ErrNoLocalPassword) && s.ldap != nil {
		id, err = s.ldap.Authenticate(ctx, username, password)
	}
	if err != nil {
		return Identity{}, err
	}
	return s.resolve(id)
}

// defaultMinUID is Config.MinUID's default.
const defaultMinUID = 1000

// nobodyUID is the overflow uid (nobody), never a person's.
const nobodyUID = 65534

// resolve POSIX-resolves id and refuses the accounts no login may become:
// nobody, and for LDAP and OIDC those below MinUID.
func (s *Service) resolve(id Identity) (Identity, error) {
	id, err := ResolvePOSIX(id)
	if err != nil {
		return Identity{}, err
	}
	switch {
	case id.UID == nobodyUID:
		return Identity{}, refuse(NoPOSIXUser, nil, "%s maps to uid %d (nobody): that account never logs in to Slurmgate", id.Username, id.UID)
	case id.Source != "local" && id.UID < s.cfg.MinUID:
		return Identity{}, refuse(NoPOSIXUser, nil,
			"%s user %s has POSIX uid %d, below sso.min_uid %d (system accounts): such accounts do not log in through %s; an administrator may lower min_uid if %s is a person's account", id.Source, id.Username, id.UID, s.cfg.MinUID, id.Source, id.Username)
	}
	return id, nil
}

// FinishOIDC completes an OIDC login (see [OIDC.Finish]) and
// POSIX-resolves the identity.
func (s *Service) FinishOIDC(ctx context.Context, f Flow, state, code string) (Identity, string, error) {
	if s.oidc == nil {
		return Identity{}, "", fmt.Errorf("sso: OIDC is not configured")
	}
	id, raw, err := s.oidc.Finish(ctx, f, state, code)
	if err != nil {
		return Identity{}, "", err
	}
	id, err = s.resolve(id)
	return id, raw, err
}
