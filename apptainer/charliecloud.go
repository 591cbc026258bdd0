package apptainer

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// charliecloud runs each command with ch-run in a fresh, unprivileged
// container (user and mount namespaces) over the image. There is no
// long-lived container: Start prepares the image (see imagecache.go) and
// Stop ends the session's processes.
//
// ch-run 0.31 binds only onto paths that exist in the image, and only
// read-write. Slurmgate therefore:
//   - binds a per-session scratch directory at /home/work (which images
//     must provide) and creates in it the targets of mounts below
//     /home/work, so vfolders need no mount points in the image;
//   - makes read-only mounts read-only before ch-run sees them: ch-run then
//     runs inside `unshare -r -m`, whose private mount namespace remounts
//     each read-only source read-only, and `ch-run -u UID -g GID` maps the
//     user back to their own uid inside, so files keep the user's ownership.
type charliecloud struct{}

func init() { register(charliecloud{}) }

func (charliecloud) Name() string { return "charliecloud" }

func (charliecloud) Capabilities() Capabilities {
	// GPUs: ch-run shares the host's /dev, so allocated devices are
	// visible; the image must bring (or ch-fromhost inject) the driver
	// libraries.
	return Capabilities{Isolation: true, Mounts: true, GPUs: true}
}

// JobScript: container sessions run through the session agent.
func (charliecloud) JobScript(j Job) (string, error) {
	return "", fmt.Errorf("runtime charliecloud runs sessions through the session agent; render the job with AgentJobScript")
}

// workDir is where sessions work and vfolders appear.
const workDir = "/home/work"

func (charliecloud) Start(ctx context.Context, spec Spec) (Instance, error) {
	if spec.SessionID == "" || spec.StateDir == "" {
		return nil, fmt.Errorf("charliecloud: the spec needs a session id and a state directory")
	}
	chRun, err := exec.LookPath("ch-run")
	if err != nil {
		return nil, fmt.Errorf("charliecloud: ch-run not found on PATH (Debian: apt-get install charliecloud-runtime)")
	}
	image, err := cachedImage(ctx, spec.Image, spec.CacheDir, fuseUsable())
	if err != nil {
		return nil, fmt.Errorf("charliecloud: %w", err)
	}
	scratch := filepath.Join(spec.StateDir, "work")
	if err := os.MkdirAll(scratch, 0o700); err != nil {
		return nil, fmt.Errorf("charliecloud: %w", err)
	}
	c := &chInstance{spec: spec, chRun: chRun, image: image, marker: markerVar + "=" + spec.SessionID,
		uid: os.Getuid(), gid: os.Getgid()}
	c.binds = append(c.binds, "-b", scratch+":"+workDir)
	for _, m := range spec.Mounts {
		if err := checkMount(m); err != nil {
			return nil, fmt.Errorf("charliecloud: %w", err)
		}
		if rel, ok := strings.CutPrefix(m.Target, workDir+"/"); ok {
			if err := os.MkdirAll(filepath.Join(scratch, rel), 0o700); err != nil {
				return nil, fmt.Errorf("charliecloud: mount point %s: %w", m.Target, err)
			}
		}
		c.binds = append(c.binds, "-b", m.Source+":"+m.Target)
		if m.ReadOnly {
			c.readOnly = append(c.readOnly, m.Source)
		}
	}
	return c, nil
}

// checkMount refuses mounts ch-run or apptainer's bind syntax would misread.
func checkMount(m Mount) error {
	for _, p := range []string{m.Source, m.Target} {
		if !path.IsAbs(p) || path.Clean(p) != p || strings.ContainsAny(p, ":,\n") {
			return fmt.Errorf("mount %s:%s: want clean absolute paths without ':' or ','", m.Source, m.Target)
		}
	}
	return nil
}

type chInstance struct {
	spec     Spec
	chRun    string
	image    string
	marker   string
	binds    []string
	readOnly []string
	uid, gid int
}

// argv is the whole command line that runs argv in the container.
func (c *chInstance) argv(argv []string) []string {
	ch := []string{c.chRun}
	if len(c.readOnly) > 0 {
		ch = append(ch, "-u", strconv.Itoa(c.uid), "-g", strconv.Itoa(c.gid))
	}
	ch = append(ch, "-c", workDir)
	ch = append(ch, c.binds...)
	ch = append(ch, c.image, "--")
	ch = append(ch, argv...)
	if len(c.readOnly) == 0 {
		return ch
	}
	// unshare -r: root in a new user namespace, so the shell may bind and
	// remount; -m: in a private mount namespace, so nothing leaks out.
	var script strings.Builder
	for _, src := range c.readOnly {
		q := shellQuote(src)
		fmt.Fprintf(&script, "mount --bind %s %s && mount -o remount,bind,ro %s %s && ", q, q, q, q)
	}
	script.WriteString(`exec "$@"`)
	return append([]string{"unshare", "-r", "-m", "--propagation", "private", "/bin/sh", "-c", script.String(), "sh"}, ch...)
}

func (c *chInstance) Command(ctx context.Context, argv []string, env []string) (*exec.Cmd, error) {
	if len(argv) == 0 {
		return nil, fmt.Errorf("charliecloud: empty command")
	}
	full := c.argv(argv)
	cmd := exec.CommandContext(ctx, full[0], full[1:]...)
	// ch-run passes its environment into the container. CleanEnv keeps only
	// what a shell needs; HOME is the work directory either way, since the
	// user's host home is not in the image.
	var base []string
	if c.spec.CleanEnv {
		for _, k := range []string{"PATH", "LANG", "TERM", "TZ"} {
			if v, ok := os.LookupEnv(k); ok {
				base = append(base, k+"="+v)
			}
		}
	} else {
		base = os.Environ()
	}
	user := os.Getenv("USER")
	if user == "" {
		// ch-run refuses to start without $USER.
		user = strconv.Itoa(c.uid)
	}
	cmd.Env = slices.Concat(base, []string{"USER=" + user, "HOME=" + workDir}, c.spec.Env, env, []string{c.marker})
	cmd.Dir = "/"
	return cmd, nil
}

func (c *chInstance) Stop(ctx context.Context) error { return stopMarked(ctx, c.marker) }
