package main

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/slurmgate/slurmgate/sso"

	"github.com/slurmgate/slurmgate/vfolder"
)

// Config is the gateway's configuration: one TOML file (etc/slurmgate.toml
// documents every key), each key overridable by an environment variable
// SLURMGATE_<SECTION>_<KEY>, e.g. SLURMGATE_DATABASE_URL.
type Config struct {
	Server   ServerConfig   `toml:"server"`
	Database DatabaseConfig `toml:"database"`
	Slurm    SlurmConfig    `toml:"slurm"`
	Sessions SessionsConfig `toml:"sessions"`
	Sync     SyncConfig     `toml:"sync"`
	Security SecurityConfig `toml:"security"`
	VFolder  VFolderConfig  `toml:"vfolder"`
	// Portal login (package sso): [sso], and [ldap] when its url is set,
	// [oidc] when its issuer is set.
	SSO  SSOConfig      `toml:"sso"`
	LDAP sso.LDAPConfig `toml:"ldap"`
	OIDC sso.OIDCConfig `toml:"oidc"`
}

type ServerConfig struct {
	Listen    string `toml:"listen"`
	PublicURL string `toml:"public_url"`
	LogFormat string `toml:"log_format"`
	LogLevel  string `toml:"log_level"`
	// LogAppRequests logs every request to a session's apps at info, not
	// only failed ones and WebSocket opens.
	LogAppRequests bool `toml:"log_app_requests"`
	// AdvertiseURL is where the other replicas reach this one, when
	// several run behind a load balancer; empty for a single gateway.
	AdvertiseURL string `toml:"advertise_url"`
	// TrustedProxies are the load balancers' addresses or networks whose
	// X-Forwarded-For names the client (login throttling counts by it).
	TrustedProxies []string `toml:"trusted_proxies"`
}

// trustedProxies parses server.trusted_proxies: networks, or single
// addresses taken as one-address networks.
func (c ServerConfig) trustedProxies() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range c.TrustedProxies {
		if p, err := netip.ParsePrefix(v); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(v)
		if err != nil {
			return nil, fmt.Errorf("server.trusted_proxies: %q is neither an address nor a network such as 10.0.0.0/24", v)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

type DatabaseConfig struct {
	URL string `toml:"url" secret:"url"`
}

type SlurmConfig struct {
	Cluster    string `toml:"cluster"`
	RestURL    string `toml:"rest_url"`
	JWTKeyFile string `toml:"jwt_key_file"`
	APIVersion string `toml:"api_version"`
	AdminUser  string `toml:"admin_user"`
	SlurmConf  string `toml:"slurm_conf"`
}

type SessionsConfig struct {
	JobOutputDir      string   `toml:"job_output_dir"`
	ReconcileInterval Duration `toml:"reconcile_interval"`
	// The session runtime: the agent every session job runs, the tunnel
	// URL it dials, the app proxy's subdomain mode and idle culling.
	AgentBinary      string   `toml:"agent_binary"`
	TunnelURL        string   `toml:"tunnel_url"`
	AppsDomain       string   `toml:"apps_domain"`
	IdleThresholdPct int      `toml:"idle_threshold_pct"`
	CullInterval     Duration `toml:"cull_interval"`
}

type SyncConfig struct {
	Interval            Duration `toml:"interval"`
	ManagedOrganization string   `toml:"managed_organization"`
}

// VFolderConfig lists the storage hosts vfolders live on ([[vfolder.hosts]]).
type VFolderConfig struct {
	Hosts []vfolder.HostConfig `toml:"hosts"`
}

type SecurityConfig struct {
	SecretKeyFile string `toml:"secret_key_file"`
}

// SSOConfig is the [sso] section: what every way of logging in shares.
type SSOConfig struct {
	LocalAccounts      bool     `toml:"local_accounts"`
	ProvisionDomain    string   `toml:"provision_domain"`
	SessionIdleTimeout Duration `toml:"session_idle_timeout"`
	SessionLifetime    Duration `toml:"session_lifetime"`
	MinUID             int      `toml:"min_uid"`
}

// ssoConfig assembles package sso's configuration from the three sections.
func (c Config) ssoConfig() sso.Config {
	out := sso.Config{LocalAccounts: c.SSO.LocalAccounts, ProvisionDomain: c.SSO.ProvisionDomain,
		SessionIdleTimeout: c.SSO.SessionIdleTimeout.Duration, SessionLifetime: c.SSO.SessionLifetime.Duration,
		MinUID: c.SSO.MinUID}
	if c.LDAP.URL != "" {
		l := c.LDAP
		out.LDAP = &l
	}
	if c.OIDC.Issuer != "" {
		o := c.OIDC
		out.OIDC = &o
	}
	return out
}

// Duration is a time.Duration written as "2s" or "5m" in TOML and the environment.
type Duration struct{ time.Duration }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration such as 2s or 5m", b)
	}
	d.Duration = v
	return nil
}

func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

func defaultConfig() Config {
	return Config{
		Server:   ServerConfig{Listen: "127.0.0.1:8080", LogFormat: "text", LogLevel: "info"},
		Slurm:    SlurmConfig{APIVersion: "v0.0.38", AdminUser: "slurm"},
		Sessions: SessionsConfig{JobOutputDir: "/var/lib/slurmgate/jobs", ReconcileInterval: Duration{2 * time.Second}, IdleThresholdPct: 5, CullInterval: Duration{30 * time.Second}},
		Sync:     SyncConfig{Interval: Duration{5 * time.Minute}, ManagedOrganization: "slurmgate"},
		SSO:      SSOConfig{LocalAccounts: true, SessionIdleTimeout: Duration{time.Hour}, SessionLifetime: Duration{12 * time.Hour}},
	}
}

// loadConfig reads path (if not empty), then applies SLURMGATE_* variables
// from environ, then validates.
func loadConfig(path string, environ []string) (Config, error) {
	cfg := defaultConfig()
	if path != "" {
		md, err := toml.DecodeFile(path, &cfg)
		if err != nil {
			return cfg, fmt.Errorf("config %s: %w", path, err)
		}
		if und := md.Undecoded(); len(und) > 0 {
			return cfg, fmt.Errorf("config %s: unknown key %s (see etc/slurmgate.toml for the keys)", path, und[0])
		}
	}
	if err := applyEnv(&cfg, environ); err != nil {
		return cfg, err
	}
	return cfg, cfg.validate()
}

// applyEnv overrides leaves of cfg from SLURMGATE_<SECTION>_<KEY> variables.
func applyEnv(cfg *Config, environ []string) error {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "SLURMGATE_") {
			env[k] = v
		}
	}
	return walkConfig(cfg, func(section, key string, f reflect.Value, _ reflect.StructField) error {
		name := "SLURMGATE_" + strings.ToUpper(section+"_"+key)
		v, ok := env[name]
		if !ok {
			return nil
		}
		switch p := f.Addr().Interface().(type) {
		case *string:
			*p = v
		case *Duration:
			if err := p.UnmarshalText([]byte(v)); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		case *int:
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("%s: %q is not a number", name, v)
			}
			*p = n
		case *bool:
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("%s: %q is not true or false", name, v)
			}
			*p = b
		case *time.Duration:
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("%s: %q is not a duration such as 2s or 5m", name, v)
			}
			*p = d
		case *[]string:
			*p = strings.Fields(strings.ReplaceAll(v, ",", " "))
		default:
			return fmt.Errorf("%s: unsupported type %s", name, f.Type())
		}
		return nil
	})
}

// walkConfig calls fn for every leaf field, by TOML section and key.
func walkConfig(cfg *Config, fn func(section, key string, f reflect.Value, sf reflect.StructField) error) error {
	root := reflect.ValueOf(cfg).Elem()
	for i := range root.NumField() {
		sec := root.Field(i)
		secName := root.Type().Field(i).Tag.Get("toml")
		for j := range sec.NumField() {
			sf := sec.Type().Field(j)
			if err := fn(secName, sf.Tag.Get("toml"), sec.Field(j), sf); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c Config) validate() error {
	var errs []error
	need := func(v, key, hint string) {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s is required (%s)", key, hint))
		}
	}
	need(c.Database.URL, "database.url", "SLURMGATE_DATABASE_URL, e.g. postgres://user:pass@127.0.0.1:5432/slurmgate")
	need(c.Slurm.Cluster, "slurm.cluster", "Slurm's ClusterName")
	need(c.Slurm.RestURL, "slurm.rest_url", "slurmrestd's URL, e.g. http://127.0.0.1:6820")
	need(c.Slurm.JWTKeyFile, "slurm.jwt_key_file", "the jwt_key file named in slurm.conf's AuthAltParameters")
	need(c.Security.SecretKeyFile, "security.secret_key_file", "a file of 32 random bytes: head -c 32 /dev/urandom > secret.key")
	if c.Server.LogFormat != "text" && c.Server.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("server.log_format %q: want text or json", c.Server.LogFormat))
	}
	switch c.Server.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("server.log_level %q: want debug, info, warn or error", c.Server.LogLevel))
	}
	if p := c.Sessions.IdleThresholdPct; p < 1 || p > 100 {
		errs = append(errs, fmt.Errorf("sessions.idle_threshold_pct %d: want 1 to 100 (percent of a session's CPU cores or of a GPU)", p))
	}
	if c.Sessions.CullInterval.Duration < time.Second {
		errs = append(errs, fmt.Errorf("sessions.cull_interval %s is too short (at least 1s)", c.Sessions.CullInterval))
	}
	if u := c.Sessions.TunnelURL; u != "" && !strings.HasPrefix(u, "ws://") && !strings.HasPrefix(u, "wss://") {
		errs = append(errs, fmt.Errorf("sessions.tunnel_url %q: want ws:// or wss://, e.g. wss://gateway.example.org/api/v1/agent/tunnel", u))
	}
	if _, err := c.Server.trustedProxies(); err != nil {
		errs = append(errs, err)
	}
	if u := c.Server.AdvertiseURL; u != "" {
		if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" || p.User != nil || strings.Trim(p.Path, "/") != "" {
			errs = append(errs, fmt.Errorf("server.advertise_url %q: want this replica's own http:// or https:// address as the other replicas reach it, without a path, e.g. http://10.0.0.5:8080", u))
		}
	}
	if c.Sessions.ReconcileInterval.Duration < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("sessions.reconcile_interval %s is too short (at least 100ms)", c.Sessions.ReconcileInterval))
	}
	if c.LDAP.URL != "" {
		if _, err := sso.NewLDAP(c.LDAP); err != nil {
			errs = append(errs, fmt.Errorf("[ldap]: %w", err))
		}
	}
	if c.OIDC.Issuer != "" && (c.OIDC.ClientID == "" || c.OIDC.RedirectURL == "") {
		errs = append(errs, fmt.Errorf("[oidc] with issuer %s needs client_id and redirect_url (<server.public_url>/api/v1/auth/oidc/callback)", c.OIDC.Issuer))
	}
	if c.SSO.SessionIdleTimeout.Duration < time.Minute || c.SSO.SessionLifetime.Duration < c.SSO.SessionIdleTimeout.Duration {
		errs = append(errs, fmt.Errorf("sso.session_idle_timeout %s must be at least 1m and at most sso.session_lifetime %s", c.SSO.SessionIdleTimeout, c.SSO.SessionLifetime))
	}
	if c.Sync.Interval.Duration < time.Second {
		errs = append(errs, fmt.Errorf("sync.interval %s is too short (at least 1s)", c.Sync.Interval))
	}
	return errors.Join(errs...)
}

// masked renders the effective configuration as TOML with secrets hidden:
// a database URL keeps everything but its password.
func (c Config) masked() string {
	walkConfig(&c, func(_, _ string, f reflect.Value, sf reflect.StructField) error {
		if sf.Tag.Get("secret") == "true" && f.String() != "" {
			f.SetString("xxxxx")
		}
		if sf.Tag.Get("secret") == "url" && f.String() != "" {
			f.SetString(maskDSN(f.String()))
		}
		return nil
	})
	var buf bytes.Buffer
	toml.NewEncoder(&buf).Encode(c)
	return buf.String()
}

// maskDSN hides the passwords of a connection string in either form libpq
// and pgx accept: a URL (user-info and ?password=, ?sslpassword=) or
// keyword=value pairs (password=… or password='…'). What it cannot parse it
// hides whole.
func maskDSN(s string) string {
	if !strings.Contains(s, "://") {
		if m, ok := maskKeywordDSN(s); ok {
			return m
		}
		return "(unparseable connection string hidden)"
	}
	u, err := url.Parse(s)
	if err != nil {
		return "(unparseable URL hidden)"
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	if q := u.Query(); u.RawQuery != "" {
		masked := false
		for k := range q {
			if isPasswordKey(k) {
				q.Set(k, "xxxxx")
				masked = true
			}
		}
		if masked {
			u.RawQuery = q.Encode()
		}
	}
	return u.String()
}

func isPasswordKey(k string) bool { return strings.Contains(strings.ToLower(k), "password") }

// maskKeywordDSN rewrites "key=value key = 'quoted \' value'" with the
// values of password keys replaced; ok is false when s is not of that form.
func maskKeywordDSN(s string) (masked string, ok bool) {
	space := func(i int) bool { return i < len(s) && strings.ContainsRune(" \t\n\r\f\v", rune(s[i])) }
	var b strings.Builder
	for i := 0; i < len(s); {
		j := i
		for space(j) {
			j++
		}
		b.WriteString(s[i:j])
		if i = j; i == len(s) {
			break
		}
		k := i
		for k < len(s) && s[k] != '=' && !space(k) {
			k++
		}
		key := s[i:k]
		v := k
		for space(v) {
			v++
		}
		if key == "" || v == len(s) || s[v] != '=' {
			return "", false
		}
		for v++; space(v); v++ {
		}
		end := v
		if end < len(s) && s[end] == '\'' {
			for end++; end < len(s) && s[end] != '\''; end++ {
				if s[end] == '\\' {
					end++
				}
			}
			if end >= len(s) {
				return "", false // unterminated quote
			}
			end++
		} else {
			for ; end < len(s) && !space(end); end++ {
				if s[end] == '\\' {
					end++
				}
			}
			end = min(end, len(s))
		}
		b.WriteString(s[i:v])
		if isPasswordKey(key) {
			b.WriteString("xxxxx")
		} else {
			b.WriteString(s[v:end])
		}
		i = end
	}
	return b.String(), true
}

// readKeyFile reads a secret key file, refusing one readable by others.
func readKeyFile(path, what string, size int) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s %s is readable by others (mode %o); chmod 600 it", what, path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if size > 0 && len(b) < size {
		return nil, fmt.Errorf("%s %s holds %d bytes, want at least %d", what, path, len(b), size)
	}
	return b, nil
}
