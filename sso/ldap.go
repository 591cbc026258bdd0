package sso

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// LDAPConfig is the [ldap] section.
type LDAPConfig struct {
	// URL is ldap://host:389 (plain, or with StartTLS) or ldaps://host:636.
	URL string `toml:"url"`
	// StartTLS upgrades an ldap:// connection before anything is sent.
	StartTLS bool `toml:"start_tls"`
	// CAFile is a PEM bundle the server's certificate must chain to; empty
	// means the system roots.
	CAFile string `toml:"ca_file"`
	// ServerName is the name the certificate must carry; empty means the
	// URL's host.
	ServerName string `toml:"server_name"`
	// BindDN and BindPassword are the service account that searches for users.
	BindDN       string `toml:"bind_dn"`
	BindPassword string `toml:"bind_password" secret:"true"`
	// BaseDN is where users are searched (subtree).
	BaseDN string `toml:"base_dn"`
	// UserFilter finds a user; {username} is replaced by the escaped login
	// name. Default "(&(objectClass=posixAccount)(uid={username}))".
	UserFilter string `toml:"user_filter"`
	// DisabledFilter, when set, is matched against the user's entry (by the
	// service account, which must be able to read the attributes it tests);
	// a match refuses the login as disabled once the password is right. E.g.
	// "(|(loginShell=/sbin/nologin)(shadowExpire=1))".
	DisabledFilter string `toml:"disabled_filter"`
	// Attribute names; the defaults are RFC 2307 and inetOrgPerson's.
	UsernameAttr string `toml:"username_attr"` // "uid"
	UIDAttr      string `toml:"uid_attr"`      // "uidNumber"
	GIDAttr      string `toml:"gid_attr"`      // "gidNumber"
	MailAttr     string `toml:"mail_attr"`     // "mail"
	NameAttr     string `toml:"name_attr"`     // "cn"
	GroupsAttr   string `toml:"groups_attr"`   // "memberOf" (the memberof overlay)
	// Groups maps group DNs or names to projects.
	Groups []GroupRule `toml:"groups"`
	// Timeout bounds each network operation; 0 means 10 s.
	Timeout time.Duration `toml:"timeout"`
}

func (c *LDAPConfig) defaults() {
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	def(&c.UserFilter, "(&(objectClass=posixAccount)(uid={username}))")
	def(&c.UsernameAttr, "uid")
	def(&c.UIDAttr, "uidNumber")
	def(&c.GIDAttr, "gidNumber")
	def(&c.MailAttr, "mail")
	def(&c.NameAttr, "cn")
	def(&c.GroupsAttr, "memberOf")
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
}

// LDAP authenticates against a directory: a service-account search for the
// user's entry, then a bind as that entry with the password. Each login
// uses its own connection, so nothing bound as one user serves another.
type LDAP struct {
	cfg    LDAPConfig
	tls    *tls.Config
	groups *GroupMapper
}

// NewLDAP checks cfg and loads its CA; it does not connect.
func NewLDAP(cfg LDAPConfig) (*LDAP, error) {
	cfg.defaults()
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "ldap" && u.Scheme != "ldaps") || u.Host == "" {
		return nil, fmt.Errorf("ldap url %q: want ldap://host:port or ldaps://host:port", cfg.URL)
	}
	if cfg.StartTLS && u.Scheme == "ldaps" {
		return nil, errors.New("ldap: start_tls is for ldap:// URLs; ldaps:// is TLS already")
	}
	if u.Scheme == "ldap" && !cfg.StartTLS {
		// Warned, not refused: a directory on the gateway's own host or a
		// private link may be fine in clear, and refusing would break
		// configurations that work. But every login sends a password.
		slog.Warn("ldap: plain ldap:// without start_tls sends the service account's and every user's password in clear; set start_tls = true or use ldaps://", "url", cfg.URL)
	}
	if cfg.BaseDN == "" {
		return nil, errors.New("ldap: base_dn is required: the subtree users are searched in")
	}
	if !strings.Contains(cfg.UserFilter, "{username}") {
		return nil, fmt.Errorf("ldap: user_filter %q lacks {username}", cfg.UserFilter)
	}
	for _, f := range []string{cfg.UserFilter, cfg.DisabledFilter} {
		if f == "" {
			continue
		}
		if _, err := ldap.CompileFilter(strings.ReplaceAll(f, "{username}", "x")); err != nil {
			return nil, fmt.Errorf("ldap: filter %q: %w", f, err)
		}
	}
	groups, err := NewGroupMapper(cfg.Groups)
	if err != nil {
		return nil, fmt.Errorf("ldap: %w", err)
	}
	tc := &tls.Config{ServerName: cfg.ServerName, MinVersion: tls.VersionTLS12}
	if tc.ServerName == "" {
		tc.ServerName = u.Hostname()
	}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ldap: ca_file: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ldap: ca_file %s holds no PEM certificate", cfg.CAFile)
		}
	}
	return &LDAP{cfg: cfg, tls: tc, groups: groups}, nil
}

// dial connects, upgrades with StartTLS when configured, and binds as the
// service account (anonymously when none is configured).
func (l *LDAP) dial(ctx context.Context) (*ldap.Conn, error) {
	dialer := &net.Dialer{Timeout: l.cfg.Timeout}
	if d, ok := ctx.Deadline(); ok {
		dialer.Deadline = d
	}
	conn, err := ldap.DialURL(l.cfg.URL, ldap.DialWithDialer(dialer), ldap.DialWithTLSConfig(l.tls))
	if err != nil {
		return nil, refuse(Unavailable, err, "the LDAP directory at %s cannot be reached", l.cfg.URL)
	}
	conn.SetTimeout(l.cfg.Timeout)
	if l.cfg.StartTLS {
		if err := conn.StartTLS(l.tls); err != nil {
			conn.Close()
			return nil, refuse(Unavailable, err, "StartTLS with the LDAP directory at %s failed (check ca_file and server_name)", l.cfg.URL)
		}
	}
	if l.cfg.BindDN != "" {
		err = conn.Bind(l.cfg.BindDN, l.cfg.BindPassword)
	} else {
		err = conn.UnauthenticatedBind("")
	}
	if err != nil {
		conn.Close()
		return nil, refuse(Unavailable, err, "the gateway's LDAP service account %q cannot bind: an administrator must fix bind_dn/bind_password", l.cfg.BindDN)
	}
	return conn, nil
}

// Authenticate checks username and password against the directory.
func (l *LDAP) Authenticate(ctx context.Context, username, password string) (Identity, error) {
	// An empty password would be an unauthenticated bind, which servers
	// accept as anonymous (RFC 4513 §5.1.2).
	if password == "" || username == "" {
		return Identity{}, badCredentials(errors.New("empty user name or password"))
	}
	conn, err := l.dial(ctx)
	if err != nil {
		return Identity{}, err
	}
	defer conn.Close()

	const lockedAttr = "pwdAccountLockedTime"
	c := l.cfg
	res, err := conn.Search(ldap.NewSearchRequest(c.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 2, int(c.Timeout.Seconds()), false,
		strings.ReplaceAll(c.UserFilter, "{username}", ldap.EscapeFilter(username)),
		[]string{c.UsernameAttr, c.UIDAttr, c.GIDAttr, c.MailAttr, c.NameAttr, c.GroupsAttr, lockedAttr}, nil))
	switch {
	case err != nil && ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded):
		return Identity{}, refuse(Unavailable, err, "user_filter matches several LDAP entries for %s: an administrator must make it match one", username)
	case err != nil:
		return Identity{}, refuse(Unavailable, err, "searching the LDAP directory for %s failed", username)
	case len(res.Entries) == 0:
		return Identity{}, badCredentials(fmt.Errorf("no LDAP entry matches %s under %s", username, c.BaseDN))
	case len(res.Entries) > 1:
		return Identity{}, refuse(Unavailable, nil, "user_filter matches %d LDAP entries for %s: an administrator must make it match one", len(res.Entries), username)
	}
	e := res.Entries[0]

	// The disabled check is the service account's search, made before the
	// bind as the user: the ACLs may hide the attributes it tests from the
	// user (then, asked as them, a disabled account would match nothing and
	// log in). Its answer is told only once the password is right, so a
	// guesser learns nothing from it.
	disabled := false
	if c.DisabledFilter != "" {
		r, err := conn.Search(ldap.NewSearchRequest(e.DN, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, int(c.Timeout.Seconds()), false,
			c.DisabledFilter, []string{"1.1"}, nil))
		if err != nil {
			return Identity{}, refuse(Unavailable, err, "checking whether %s is disabled failed", username)
		}
		disabled = len(r.Entries) > 0
	}
	if err := conn.Bind(e.DN, password); err != nil {
		if ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
			if e.GetAttributeValue(lockedAttr) != "" {
				return Identity{}, refuse(Locked, err, "account %s is locked in the directory (password policy); ask a directory administrator to unlock it", username)
			}
			return Identity{}, badCredentials(fmt.Errorf("bind as %s: %w", e.DN, err))
		}
		return Identity{}, refuse(Unavailable, err, "binding to the LDAP directory as %s failed", username)
	}
	if disabled {
		return Identity{}, refuse(Locked, nil, "account %s is disabled in the directory (it matches %s); ask a directory administrator to enable it", username, c.DisabledFilter)
	}

	id := Identity{
		Source:   "ldap",
		Subject:  e.DN,
		Username: e.GetAttributeValue(c.UsernameAttr),
		Email:    e.GetAttributeValue(c.MailAttr),
		FullName: e.GetAttributeValue(c.NameAttr),
		Groups:   e.GetAttributeValues(c.GroupsAttr),
	}
	if id.Username == "" {
		id.Username = username
	}
	for attr, dst := range map[string]*int{c.UIDAttr: &id.UID, c.GIDAttr: &id.GID} {
		if v := e.GetAttributeValue(attr); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return Identity{}, refuse(NoPOSIXUser, err, "LDAP entry %s has %s %q, not a POSIX id", e.DN, attr, v)
			}
			*dst = n
		}
	}
	id.Projects = l.groups.Projects(id.Groups)
	return id, nil
}
