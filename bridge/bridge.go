package bridge

import (
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/slurmgate/slurmgate/slurmctl"
	"github.com/slurmgate/slurmgate/vfolder"
)

// Config holds the domain's settings; cmd/slurmgate fills it from the TOML file.
type Config struct {
	// Cluster is the Slurm ClusterName the gateway manages.
	Cluster string
	// ManagedOrganization marks Slurm accounts the sync owns (their
	// Organization field); accounts without it are never touched.
	ManagedOrganization string
	// JobOutputDir is where session jobs write stdout/stderr, on storage both
	// the nodes and the gateway see: <dir>/<username>/<session id>.{out,err}.
	JobOutputDir string
	// ReconcileInterval is the session reconciler's tick.
	ReconcileInterval time.Duration
	// SyncInterval is how often the account sync runs besides after changes.
	SyncInterval time.Duration
	// SecretKey (32 bytes) encrypts keypair secrets at rest.
	SecretKey []byte
	// VFolderHosts are the opened storage hosts folders live on.
	VFolderHosts []*vfolder.Host
	// TunnelURL is the agent tunnel endpoint session agents dial
	// (ws://host:port/api/v1/agent/tunnel); written into each agent's config.
	TunnelURL string
	// AgentBinary is the slurmgate executable a session job runs as its
	// agent; it must be readable and executable by users on the nodes.
	AgentBinary string
	// IdleThreshold is the utilisation below which a session counts as idle:
	// the fraction of its CPU cores kept busy, and of any GPU (default 0.05).
	IdleThreshold float64
	// CullInterval is how often idle and overdue sessions are looked for
	// (default 30 s).
	CullInterval time.Duration
	// AdvertiseURL is where the other gateway replicas reach this one
	// (server.advertise_url): recorded with every agent tunnel this
	// replica holds, so that a request for the session reaching another
	// replica is forwarded here (see AgentElsewhere). Empty for a single
	// gateway: requests for agents it does not hold are answered 502.
	AdvertiseURL string
}

// Bridge is the domain service. It is safe for concurrent use.
type Bridge struct {
	db    *pgxpool.Pool
	slurm *slurmctl.Client
	cfg   Config
	log   *slog.Logger
	now   func() time.Time
	// orgChanged wakes the account sync after a change Slurm must mirror;
	// buffered by one so bursts of changes coalesce into one sync.
	orgChanged chan struct{}
	hooks      testHooks
	// submits bounds submissions in flight: each holds two database
	// connections and a slurmrestd request.
	submits chan struct{}
	recon   reconcileState
	// watch fans session change notifications out to WatchSessions callers.
	watch *sessionWatchHub
	// agents is the registry of live agent tunnels (agents.go).
	agents agentRegistry
}

// New returns a Bridge over an opened (migrated) database and a Slurm client.
func New(db *pgxpool.Pool, slurm *slurmctl.Client, cfg Config, log *slog.Logger) *Bridge {
	if cfg.ManagedOrganization == "" {
		cfg.ManagedOrganization = "slurmgate"
	}
	if cfg.ReconcileInterval <= 0 {
		cfg.ReconcileInterval = 2 * time.Second
	}
	if cfg.SyncInterval <= 0 {
		cfg.SyncInterval = 5 * time.Minute
	}
	if cfg.IdleThreshold <= 0 {
		cfg.IdleThreshold = 0.05
	}
	if cfg.CullInterval <= 0 {
		cfg.CullInterval = 30 * time.Second
	}
	if log == nil {
		log = slog.Default()
	}
	b := &Bridge{db: db, slurm: slurm, cfg: cfg, log: log, now: time.Now, orgChanged: make(chan struct{}, 1),
		submits: make(chan struct{}, 8)}
	b.watch = &sessionWatchHub{b: b, watchers: map[*watcher]struct{}{}}
	return b
}

// OrgChanges delivers a value after any change to domains, projects,
// memberships, users or policies; the account sync waits on it.
func (b *Bridge) OrgChanges() <-chan struct{} { return b.orgChanged }

func (b *Bridge) notifyOrgChange() {
	select {
	case b.orgChanged <- struct{}{}:
	default:
	}
}

// Role is a user's global role.
type Role string

const (
	RoleUser        Role = "user"
	RoleDomainAdmin Role = "domain-admin"
	RoleSuperadmin  Role = "superadmin"
)

// Actor is the authenticated user on whose behalf an operation runs.
type Actor struct {
	UserID   int64
	Username string
	Role     Role
	DomainID int64
}

// System is the actor for the gateway's own work (reconciler, sync).
var System = Actor{Username: "slurmgate", Role: RoleSuperadmin}
