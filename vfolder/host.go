package vfolder

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
)

// HostConfig is one storage host, a [[vfolder.hosts]] table in the gateway's
// configuration.
type HostConfig struct {
	// Name identifies the host in folders and policies ("home", "scratch").
	Name string `toml:"name" json:"name"`
	// Root is an absolute directory on the shared file system, at the same
	// path on the gateway and on every compute node.
	Root string `toml:"root" json:"root"`
	// QuotaMethod measures usage and enforces limits: "scan" (the default:
	// the gateway walks folders and refuses writes through the API that
	// would exceed the quota). See [QuotaMethod].
	QuotaMethod string `toml:"quota_method" json:"quota_method"`
	// MaxFileSize bounds one uploaded file in bytes; 0 means no bound.
	MaxFileSize int64 `toml:"max_file_size" json:"max_file_size"`
}

var hostName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// Host is an opened storage host. It is safe for concurrent use.
type Host struct {
	cfg   HostConfig
	quota QuotaMethod
}

// Owner is who owns a folder on disk: a user (UID and primary GID, mode
// 0700) or a project (Project set, GID the project's group, mode 2770, or
// 2750 with ReadOnly: members' jobs read, the gateway alone writes).
type Owner struct {
	UID, GID int
	Project  bool
	// ReadOnly, for a project's folder, takes the group's write bit off
	// the folder and everything the gateway creates in it.
	ReadOnly bool
}

// groupWrite is the group's write bit, off in a read-only project folder.
func (o Owner) groupWrite() os.FileMode {
	if o.Project && o.ReadOnly {
		return 0
	}
	return 0o020
}

func (o Owner) dirMode() os.FileMode {
	if o.Project {
		return 0o750 | o.groupWrite() | os.ModeSetgid
	}
	return 0o700
}

// Mode of what the gateway creates inside a folder: group-writable in a
// project's folder so members' jobs can change it. In a user's folder the
// group bits are as wide as the owner's too: once the folder is shared they
// are the ACL mask, which caps every named user's entry (a 0640 file would
// leave an rw share read-only). Others get nothing: the folder's 0700 top
// keeps them out today, but not a former grantee's job still running
// inside the tree after a revoke, nor a hard link it made to elsewhere.
func (o Owner) fileMode() os.FileMode {
	return 0o640 | o.groupWrite()
}

func (o Owner) subdirMode() os.FileMode {
	if o.Project {
		return 0o750 | o.groupWrite() | os.ModeSetgid
	}
	return 0o770
}

// OpenHost checks a host's configuration and creates its layout directories.
func OpenHost(cfg HostConfig) (*Host, error) {
	if !hostName.MatchString(cfg.Name) {
		return nil, fmt.Errorf("vfolder host name %q: use 1-63 lower-case letters, digits, '_' or '-'", cfg.Name)
	}
	if !filepath.IsAbs(cfg.Root) || filepath.Clean(cfg.Root) != cfg.Root {
		return nil, fmt.Errorf("vfolder host %s: root %q must be a clean absolute path", cfg.Name, cfg.Root)
	}
	if cfg.MaxFileSize < 0 {
		return nil, fmt.Errorf("vfolder host %s: max_file_size must not be negative", cfg.Name)
	}
	st, err := os.Stat(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("vfolder host %s: %w (create the directory on the shared file system, mode 0755, owned by root)", cfg.Name, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("vfolder host %s: root %s is not a directory", cfg.Name, cfg.Root)
	}
	q, err := quotaMethod(cfg.QuotaMethod)
	if err != nil {
		return nil, fmt.Errorf("vfolder host %s: %w", cfg.Name, err)
	}
	// vf/ must be traversable by users (their folders lie beneath it);
	// staging/ holds other people's unfinished uploads and is root's alone.
	for dir, mode := range map[string]os.FileMode{"vf": 0o711, "staging": 0o700} {
		p := filepath.Join(cfg.Root, dir)
		if err := os.Mkdir(p, mode); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("vfolder host %s: %w", cfg.Name, err)
		}
		if err := os.Chmod(p, mode); err != nil {
			return nil, fmt.Errorf("vfolder host %s: %w", cfg.Name, err)
		}
	}
	return &Host{cfg: cfg, quota: q}, nil
}

// Config returns the host's configuration.
func (h *Host) Config() HostConfig { return h.cfg }

// Name returns the host's name.
func (h *Host) Name() string { return h.cfg.Name }

// Quota returns the host's quota method.
func (h *Host) Quota() QuotaMethod { return h.quota }

var folderID = regexp.MustCompile(`^[0-9a-f]{32}$`)

func checkID(id string) error {
	if !folderID.MatchString(id) {
		return fmt.Errorf("vfolder id %q: want 32 lower-case hex digits", id)
	}
	return nil
}

// Path returns the folder's directory on the host: what sessions bind-mount.
// id is 32 hex digits (a UUID without dashes).
func (h *Host) Path(id string) string {
	return filepath.Join(h.cfg.Root, "vf", id[:2], id)
}

// Create makes a folder's directory with its owner's ownership and mode. It
// is idempotent: an existing directory is given the ownership and mode
// again, so a retry after a crash completes the job.
func (h *Host) Create(id string, o Owner) error {
	if err := checkID(id); err != nil {
		return err
	}
	bucket := filepath.Join(h.cfg.Root, "vf", id[:2])
	if err := os.Mkdir(bucket, 0o711); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	p := h.Path(id)
	if err := os.Mkdir(p, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	// Through a descriptor opened without following links: the bucket is
	// root's, but be exact anyway.
	d, err := os.OpenFile(p, os.O_RDONLY|oNoFollow|oDirectory, 0)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Chown(o.UID, o.GID); err != nil {
		return fmt.Errorf("giving folder %s to uid %d gid %d: %w (the gateway needs CAP_CHOWN)", id, o.UID, o.GID, err)
	}
	// chown clears setgid; chmod after it.
	return d.Chmod(o.dirMode())
}

// Destroy removes a folder and its staged uploads. The folder is first
// renamed out of the way, so a half-finished removal never leaves a
// half-empty folder where sessions could still find it. It is idempotent:
// a retry after a failed or interrupted Destroy removes what that attempt
// left in the trash too.
func (h *Host) Destroy(id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	staging := filepath.Join(h.cfg.Root, "staging")
	// Earlier attempts' trash: deleting-<id>, or deleting-<id>-<ns> as
	// earlier versions named it.
	old, err := filepath.Glob(filepath.Join(staging, "deleting-"+id+"*"))
	if err != nil {
		return err
	}
	for _, p := range old {
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	trash := filepath.Join(staging, "deleting-"+id)
	if err := os.Rename(h.Path(id), trash); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.RemoveAll(trash); err != nil {
		return err
	}
	return os.RemoveAll(h.stagingDir(id))
}

// Open returns the folder's file operations, acting for the user with uid
// (files created get uid and the folder's group).
func (h *Host) Open(id string, uid int) (*FS, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	r, err := os.OpenRoot(h.Path(id))
	if err != nil {
		return nil, err
	}
	st, err := r.Stat(".")
	if err != nil {
		r.Close()
		return nil, err
	}
	owner := ownerOf(st)
	owner.UID = uid
	return &FS{root: r, as: owner, maxFile: h.cfg.MaxFileSize}, nil
}
