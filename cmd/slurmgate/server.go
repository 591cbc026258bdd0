package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/urfave/cli/v3"

	"github.com/slurmgate/slurmgate/api"
	"github.com/slurmgate/slurmgate/bridge"
	"github.com/slurmgate/slurmgate/bridge/store"
	"github.com/slurmgate/slurmgate/slurmctl"
	"github.com/slurmgate/slurmgate/sso"
	"github.com/slurmgate/slurmgate/vfolder"
	"github.com/slurmgate/slurmgate/webportal"
)

var configFlag = &cli.StringFlag{
	Name:    "config",
	Aliases: []string{"c"},
	Usage:   "TOML configuration `FILE` (every key can also come from SLURMGATE_<SECTION>_<KEY>)",
	Sources: cli.EnvVars("SLURMGATE_CONFIG"),
}

func serverCommand() *cli.Command {
	return &cli.Command{
		Name:  "server",
		Usage: "run the gateway: REST API, session reconciler and Slurm account sync",
		Description: `The gateway keeps its state in PostgreSQL and speaks to Slurm through
slurmrestd with a short-lived JWT per user. Several replicas may run against
one database.

Examples:
   slurmgate server --config /etc/slurmgate/slurmgate.toml
   slurmgate server --config etc/slurmgate.toml --check-config`,
		Flags: []cli.Flag{
			configFlag,
			&cli.BoolFlag{Name: "check-config", Usage: "validate the configuration, print it with secrets masked, and exit"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			cfg, err := loadConfig(cmd.String("config"), os.Environ())
			if err != nil {
				return cli.Exit(err.Error(), 2)
			}
			if cmd.Bool("check-config") {
				fmt.Fprint(cmd.Root().Writer, cfg.masked())
				return nil
			}
			return runServer(ctx, cfg, cmd.Root().ErrWriter)
		},
	}
}

// gateway is what the server and the admin commands share.
type gateway struct {
	cfg    Config
	log    *slog.Logger
	db     *pgxpool.Pool
	slurm  *slurmctl.Client
	bridge *bridge.Bridge
	// registry holds every metric /metrics serves.
	registry *prometheus.Registry
}

func openGateway(ctx context.Context, cfg Config, logw io.Writer) (*gateway, error) {
	log := newLogger(cfg.Server, logw)
	jwtKey, err := readKeyFile(cfg.Slurm.JWTKeyFile, "slurm.jwt_key_file", 16)
	if err != nil {
		return nil, err
	}
	secret, err := readKeyFile(cfg.Security.SecretKeyFile, "security.secret_key_file", 32)
	if err != nil {
		return nil, err
	}
	registry := prometheus.NewRegistry()
	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	slurm, err := slurmctl.New(slurmctl.Config{
		URL: cfg.Slurm.RestURL, Cluster: cfg.Slurm.Cluster, JWTKey: jwtKey, APIVersion: cfg.Slurm.APIVersion,
		AdminUser: cfg.Slurm.AdminUser, SlurmConf: cfg.Slurm.SlurmConf, Observe: api.SlurmObserver(registry),
	})
	if err != nil {
		return nil, err
	}
	db, err := store.Open(ctx, cfg.Database.URL)
	if err != nil {
		return nil, err
	}
	var hosts []*vfolder.Host
	for _, hc := range cfg.VFolder.Hosts {
		h, err := vfolder.OpenHost(hc)
		if err != nil {
			db.Close()
			return nil, err
		}
		hosts = append(hosts, h)
	}
	b := bridge.New(db, slurm, bridge.Config{
		Cluster: cfg.Slurm.Cluster, ManagedOrganization: cfg.Sync.ManagedOrganization,
		JobOutputDir: cfg.Sessions.JobOutputDir, ReconcileInterval: cfg.Sessions.ReconcileInterval.Duration,
		SyncInterval: cfg.Sync.Interval.Duration, SecretKey: secret[:32],
		TunnelURL: tunnelURL(cfg), AgentBinary: agentBinary(cfg.Sessions.AgentBinary),
		IdleThreshold: float64(cfg.Sessions.IdleThresholdPct) / 100, CullInterval: cfg.Sessions.CullInterval.Duration,
		VFolderHosts: hosts, AdvertiseURL: strings.TrimSuffix(cfg.Server.AdvertiseURL, "/"),
	}, log)
	return &gateway{cfg: cfg, log: log, db: db, slurm: slurm, bridge: b, registry: registry}, nil
}

// tunnelURL is where session agents dial the gateway: sessions.tunnel_url,
// else derived from server.public_url, else from the listen address.
func tunnelURL(cfg Config) string {
	if cfg.Sessions.TunnelURL != "" {
		return cfg.Sessions.TunnelURL
	}
	base := "http://" + cfg.Server.Listen
	if cfg.Server.PublicURL != "" {
		base = strings.TrimSuffix(cfg.Server.PublicURL, "/")
	}
	return "ws" + strings.TrimPrefix(base, "http") + "/api/v1/agent/tunnel"
}

// agentBinary is the executable session jobs run as their agent: the
// configured one, else this very binary (one binary serves every role).
func agentBinary(configured string) string {
	if configured != "" {
		return configured
	}
	if exe, err := os.Executable(); err == nil {
		return exe
	}
	return "slurmgate"
}

func newLogger(c ServerConfig, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(c.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func runServer(ctx context.Context, cfg Config, logw io.Writer) error {
	g, err := openGateway(ctx, cfg, logw)
	if err != nil {
		return err
	}
	defer g.db.Close()
	if err := g.slurm.Ping(ctx); err != nil {
		// Not fatal: the reconciler and sync retry, and the API still serves.
		g.log.Warn("Slurm is not reachable yet", "err", err)
	}
	ln, err := net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		return err
	}
	// OIDC discovery runs here: a provider that cannot be reached at start
	// is a configuration error, reported now rather than at the first login.
	logins, err := sso.New(ctx, cfg.ssoConfig(), api.NewPasswordStore(g.bridge), nil)
	if err != nil {
		return err
	}
	proxies, err := cfg.Server.trustedProxies()
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler: withPortal(api.New(g.bridge, api.Options{Logger: g.log, Registry: g.registry, AppsDomain: cfg.Sessions.AppsDomain, SSO: logins, PublicURL: cfg.Server.PublicURL,
			LogAppRequests: cfg.Server.LogAppRequests, TrustedProxies: proxies}), cfg.Sessions.AppsDomain),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go g.bridge.RunReconciler(ctx)
	go g.bridge.RunCuller(ctx)
	go g.bridge.RunVFolderMaintenance(ctx, bridge.VFolderScanInterval)
	go g.bridge.NewAccountSync().Run(ctx)
	go func() {
		<-ctx.Done()
		shut, done := context.WithTimeout(context.Background(), 10*time.Second)
		defer done()
		srv.Shutdown(shut)
	}()
	g.log.Info("slurmgate gateway listening", "addr", ln.Addr().String(), "cluster", cfg.Slurm.Cluster, "version", version, "portal_built", webportal.Built())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// withPortal serves the web portal beside the API: the API owns /api/, /s/
// (session apps), /metrics and /healthz, and the portal gets every other
// path (its client-side routes fall back to its index.html). A request for
// a host under appsDomain ({app}--{session}.<appsDomain>) is an app's,
// whatever its path: apps in subdomain mode are served at "/", and their
// /lab or /index.html are not the portal's.
func withPortal(apiHandler http.Handler, appsDomain string) http.Handler {
	mux := http.NewServeMux()
	for _, prefix := range []string{"/api/", "/s/", "/metrics", "/healthz"} {
		mux.Handle(prefix, apiHandler)
	}
	mux.Handle("/", webportal.Handler())
	suffix := "." + strings.ToLower(strings.Trim(appsDomain, "."))
	if suffix == "." {
		return mux
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := strings.ToLower(r.Host)
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		// The shape the app proxy serves, and only it: an apps domain
		// that is a parent of the gateway's own host leaves the portal be.
		if label, ok := strings.CutSuffix(strings.TrimSuffix(host, "."), suffix); ok && strings.Contains(label, "--") && !strings.Contains(label, ".") {
			apiHandler.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}
