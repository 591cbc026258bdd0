package main

// slurmgate vfolder …, run as the built binary against an in-process gateway
// with a real storage host and database (no Slurm: folders do not need it).

import (
	"archive/zip"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/slurmgate/slurmgate/api"
	"github.com/slurmgate/slurmgate/api/client"
	"github.com/slurmgate/slurmgate/bridge"
	"github.com/slurmgate/slurmgate/bridge/bridgetest"
	"github.com/slurmgate/slurmgate/vfolder"
	"github.com/slurmgate/slurmgate/vfolder/vfoldertest"
)

// vfWorld is a gateway with one storage host ("local"), a domain with
// alice and bob (users) and root1 (superadmin), and a count of the upload
// bytes the gateway has received.
type vfWorld struct {
	host             *vfolder.Host
	domain           string
	alice, bob, root []string
	uploaded         atomic.Int64 // bytes of tus PATCH bodies the gateway read
	aliceAPI         *client.Client
}

// countingBody counts what the gateway reads of a request body.
type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func newVFWorld(t *testing.T) *vfWorld {
	t.Helper()
	host, err := vfolder.OpenHost(vfoldertest.Host(t, "local"))
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	b := bridge.New(bridgetest.Pool(t), nil, bridge.Config{SecretKey: key, VFolderHosts: []*vfolder.Host{host}}, log)
	w := &vfWorld{host: host, domain: fmt.Sprintf("v%x", time.Now().UnixNano()&0xffffffff)}
	gw := api.New(b, api.Options{Logger: log})
	ts := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPatch && strings.HasPrefix(r.URL.Path, "/api/v1/uploads/") {
			r.Body = countingBody{r.Body, &w.uploaded}
		}
		gw.ServeHTTP(rw, r)
	}))
	t.Cleanup(ts.Close)
	ctx := t.Context()
	if _, err := b.CreateDomain(ctx, bridge.System, w.domain, ""); err != nil {
		t.Fatal(err)
	}
	mk := func(name string, uid int, role bridge.Role) []string {
		u, err := b.CreateUser(ctx, bridge.System, bridge.NewUser{Username: name, UID: uid, Domain: w.domain, Role: role})
		if err != nil {
			t.Fatal(err)
		}
		ak, sk, err := b.CreateKeypair(ctx, u.Actor(), u.ID, "cli test")
		if err != nil {
			t.Fatal(err)
		}
		if name == "alice" {
			if w.aliceAPI, err = client.New(ts.URL, client.WithKeypair(ak, sk)); err != nil {
				t.Fatal(err)
			}
		}
		return []string{"SLURMGATE_ENDPOINT=" + ts.URL, "SLURMGATE_ACCESS_KEY=" + ak, "SLURMGATE_SECRET_KEY=" + sk}
	}
	w.alice, w.bob, w.root = mk("alice", 2001, bridge.RoleUser), mk("bob", 2002, bridge.RoleUser), mk("root1", 2090, bridge.RoleSuperadmin)
	return w
}

// randomFile writes n random bytes to a file in dir and returns its path
// and SHA-256.
func randomFile(t *testing.T, dir, name string, n int) (string, [32]byte) {
	t.Helper()
	data := make([]byte, n)
	rand.Read(data)
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, sha256.Sum256(data)
}

func fileSHA(t *testing.T, p string) [32]byte {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(data)
}

// wantOK fails unless the run exited 0.
func wantOK(t *testing.T, r cliResult, what string) cliResult {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("%s: exit %d\nstdout %s\nstderr %s", what, r.code, r.stdout, r.stderr)
	}
	return r
}

func TestVFolderCLI(t *testing.T) {
	w := newVFWorld(t)
	home := t.TempDir()
	work := t.TempDir()
	bobHome := t.TempDir()
	const mib = 1 << 20

	r := wantOK(t, cliRun(t, home, w.alice, "", "vfolder", "create", "data", "--json"), "create")
	var v client.VFolder
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || v.Name != "data" || v.Access != "owner" || v.Host != "local" {
		t.Fatalf("created %s (%v)", r.stdout, err)
	}
	big, bigSum := randomFile(t, work, "big.bin", 3*mib+12345)

	t.Run("upload and download keep every byte", func(t *testing.T) {
		before := w.uploaded.Load()
		r := wantOK(t, cliRun(t, home, w.alice, "", "vfolder", "upload", big, "data:"), "upload")
		if !strings.Contains(r.stderr, "uploaded") || r.stdout != "" {
			t.Errorf("upload without a terminal: stdout %q, stderr %q; want one summary line on stderr", r.stdout, r.stderr)
		}
		if got := w.uploaded.Load() - before; got != 3*mib+12345 {
			t.Errorf("the gateway received %d bytes for a %d-byte file", got, 3*mib+12345)
		}
		r = wantOK(t, cliRun(t, home, w.alice, "", "vfolder", "ls", "data:", "--json"), "ls files")
		var files []client.FileEntry
		if err := json.Unmarshal([]byte(r.stdout), &files); err != nil || len(files) != 1 || files[0].Name != "big.bin" || files[0].Size != 3*mib+12345 || files[0].UID != 2001 {
			t.Fatalf("files %s (%v)", r.stdout, err)
		}
		out := filepath.Join(work, "out.bin")
		wantOK(t, cliRun(t, home, w.alice, "", "vfolder", "download", "data:big.bin", out), "download")
		if fileSHA(t, out) != bigSum {
			t.Fatal("downloaded file differs from the uploaded one")
		}
		// An existing file is not overwritten by accident.
		if r := cliRun(t, home, w.alice, "", "vfolder", "download", "data:big.bin", out); r.code != exitUsage || !strings.Contains(r.stderr, "--resume") {
			t.Errorf("download over an existing file: exit %d, %s; want 2 naming --resume and --force", r.code, r.stderr)
		}
		// A partial file is completed with a ranged request.
		if err := os.Truncate(out, mib+7); err != nil {
			t.Fatal(err)
		}
		r = wantOK(t, cliRun(t, home, w.alice, "", "vfolder", "download", "--resume", "data:big.bin", out), "download --resume")
		if fileSHA(t, out) != bigSum || !strings.Contains(r.stderr, "resumed at 1.0 MiB") {
			t.Errorf("resumed download: checksum ok %v, stderr %q", fileSHA(t, out) == bigSum, r.stderr)
		}
		// A partial file that is not the start of the remote one is refused.
		other, _ := randomFile(t, work, "other.bin", mib)
		if r := cliRun(t, home, w.alice, "", "vfolder", "download", "--resume", "data:big.bin", other); r.code != exitError || !strings.Contains(r.stderr, "--force") {
			t.Errorf("resuming onto another file: exit %d, %s; want 1 saying to use --force", r.code, r.stderr)
		}
		if st, _ := os.Stat(other); st.Size() != mib {
			t.Errorf("the refused resume changed the local file to %d bytes", st.Size())
		}
		for _, args := range [][]string{{"vfolder", "ls", "--json"}, {"vfolder", "info", "data", "--json"}, {"vfolder", "info", "data:big.bin", "--json"},
			{"vfolder", "hosts", "--json"}, {"vfolder", "invitations", "--json"}} {
			r := wantOK(t, cliRun(t, home, w.alice, "", args...), strings.Join(args, " "))
			var x any
			if err := json.Unmarshal([]byte(r.stdout), &x); err != nil {
				t.Errorf("slurmgate %v --json: %v\n%s", args, err, r.stdout)
			}
		}
		if r := wantOK(t, cliRun(t, home, w.alice, "", "vfolder", "ls"), "ls"); !strings.Contains(r.stdout, "data") || !strings.Contains(r.stdout, "owner") {
			t.Errorf("ls table:\n%s", r.stdout)
		}
	})

	t.Run("an interrupted upload resumes where it stopped", func(t *testing.T) {
		const size = 4*mib + 333
		src, sum := randomFile(t, work, "resume.bin", size)
		wantOK(t, cliRun(t, home, w.alice, "", "vfolder", "mkdir", "data:in"), "mkdir")
		before := w.uploaded.Load()
		cmd := cliCmd(t, home, w.alice, "", "vfolder", "upload", "--limit-rate", "1M", src, "data:in/")
		var errb bytes.Buffer
		cmd.Stderr = &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(time.Minute); w.uploaded.Load()-before < mib; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatalf("the throttled upload never sent 1 MiB; stderr %s", errb.String())
			}
		}
		cmd.Process.Kill() // no chance to clean up: as a dropped laptop lid
		cmd.Wait()
		first := w.uploaded.Load() - before
		if first >= size {
			t.Fatalf("the upload finished (%d bytes) before it was killed", first)
		}
		states, _ := filepath.Glob(filepath.Join(home, ".cache", "slurmgate", "uploads", "*.json"))
		if len(states) != 1 {
			t.Fatalf("upload state files %v; want one", states)
		}
		if st, err := os.Stat(states[0]); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("state file %v, %v; want mode 0600 (it holds the upload's token)", st, err)
		}
		r := wantOK(t, cliRun(t, home, w.alice, "", "vfolder", "upload", src, "data:in/"), "upload again")
		second := w.uploaded.Load() - before - first
		if first+second != size {
			t.Errorf("first run sent %d bytes, second %d: %d in all for a %d-byte file; want no byte sent twice", first, second, first+second, size)
		}
		if !strings.Contains(r.stderr, "resum") {
			t.Errorf("second run does not say it resumed: %s", r.stderr)
		}
		if states, _ := filepath.Glob(filepath.Join(home, ".cache", "slurmgate", "uploads", "*.json")); len(states) != 0 {
			t.Errorf("state files left after the upload completed: %v", states)
		}
		out := filepath.Join(work, "resume.out")
		wantOK(t, cliRun(t, home, w.alice, "", "vfolder", "download", "data:in/resume.bin", out), "download")
		if fileSHA(t, out) != sum {
			t.Error("the resumed upload's file differs from the original")
		}
		t.Logf("killed after %d bytes, resumed with %d", first, second)
	})

	t.Run("a terminal shows a progress bar; Ctrl-C stops the upload resumably", func(t *testing.T) {
		src, sum := randomFile(t, work, "tty.bin", 2*mib)
		ptmx, tty, err := pty.Open()
		if err != nil {
			t.Fatalf("opening a pseudo-terminal: %v", err)
		}
		defer ptmx.Close()
		cmd := cliCmd(t, home, w.alice, "", "vfolder", "upload", "--limit-rate", "512K", src, "data:")
		cmd.Stderr = tty
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		tty.Close()
		var mu sync.Mutex
		var screen strings.Builder
		go func() {
			buf := make([]byte, 4096)
			for {
				n, err := ptmx.Read(buf)
				mu.Lock()
				screen.Write(buf[:n])
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
		shown := func() string { mu.Lock(); defer mu.Unlock(); return screen.String() }
		for deadline := time.Now().Add(time.Minute); !strings.Contains(shown(), "% |"); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatalf("no progress bar on the terminal:\n%s", shown())
			}
		}
		time.Sleep(300 * time.Millisecond) // some bytes on their way
		cmd.Process.Signal(syscall.SIGINT)
		cmd.Wait()
		// The terminal may still hold the last lines after the exit.
		for deadline := time.Now().Add(5 * time.Second); !strings.Contains(shown(), "run the same command again") && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
		}
		if code := cmd.ProcessState.ExitCode(); code != exitSignal || !strings.Contains(shown(), "run the same command again") {
			t.Fatalf("Ctrl-C during an upload: exit %d, terminal:\n%s\nwant 130 and how to resume", code, shown())
		}
		r := wantOK(t, cliRun(t, home, w.alice, "", "vfolder", "upload", src, "data:"), "upload after Ctrl-C")
		if !strings.Contains(r.stderr, "resuming") {
			t.Errorf("upload after Ctrl-C did not resume: %s", r.stderr)
		}
		out := filepath.Join(work, "tty.out")
		wantOK(t, cliRun(t, home, w.alice, "", "vfolder", "download", "data:tty.bin", out), "download")
		if fileSHA(t, out) != sum {
			t.Error("the file uploaded in two runs differs from the original")
		}
		wantOK(t, cliRun(t, home, w.alice, "", "vfolder", "rm", "data:tty.bin"), "rm")
	})

	t.Run("share read-only: bob downloads but cannot upload", func(t *testing.T) {
		wantOK(t, cliRun(t, home, w.alice, "", "vfolder", "share", "data", "bob", "--permission", "ro"), "share")
		r := wantOK(t, cliRun(t, bobHome, w.bob, "", "vfolder", "invitations", "--json"), "invitations")
		var inv []client.VFolderShare
		if err := json.Unmarshal([]byte(r.stdout), &inv); err != nil || len(inv) != 1 || inv[0].Owner != "alice" || inv[0].Permission != "ro" {
			t.Fatalf("bob's invitations %s (%v)", r.stdout, err)
		}
		if r := cliRun(t, bobHome, w.bob, "", "vfolder", "download", "data:big.bin", filepath.Join(work, "early.bin")); r.code != exitNotFound {
			t.Errorf("bob before accepting: exit %d, %s; want 5", r.code, r.stderr)
		}
		wantOK(t, cliRun(t, bobHome, w.bob, "", "vfolder", "accept", "alice/data"), "accept")
		out := filepath.Join(work, "bob.bin")
		wantOK(t, cliRun(t, bobHome, w.bob, "", "vfolder", "download", "alice/data:big.bin", out), "bob downloads")
		if fileSHA(t, out) != bigSum {
			t.Error("bob's download differs")
		}
		small, _ := randomFile(t, work, "bob.txt", 100)
		r = cliRun(t, bobHome, w.bob, "", "vfolder", "upload", small, "data:")
		if r.code != exitRefused || !strings.Contains(r.stderr, "ro access") || !strings.Contains(r.stderr, "hint:") {
			t.Errorf("bob uploading to a ro share: exit %d, stderr %s; want 3 naming his access, with a hint", r.code, r.stderr)
		}
		r = wantOK(t, cliRun(t, home, w.alice, "", "vfolder", "info", "data"), "info")
		if !strings.Contains(r.stdout, "bob (ro, accepted)") {
			t.Errorf("info does not show the share:\n%s", r.stdout)
		}
	})

	t.Run("a bad path is a usage error with the gateway's reason", func(t *testing.T) {
		for _, p := range []string{"data:../etc", "data:/etc/passwd"} {
			r := cliRun(t, home, w.alice, "", "vfolder", "ls", p)
			if r.code != exitUsage || !strings.Contains(r.stderr, "path") || !strings.Contains(r.stderr, "field path") {
				t.Errorf("ls %s: exit %d, stderr %s; want 2 with the gateway's message", p, r.code, r.stderr)
			}
		}
		if r := cliRun(t, home, w.alice, "", "vfolder", "ls", "data:nowhere"); r.code != exitNotFound || !strings.Contains(r.stderr, "hint:") {
			t.Errorf("ls of a missing directory: exit %d, %s; want 5 with a hint", r.code, r.stderr)
		}
		if r := cliRun(t, home, w.alice, "", "vfolder", "ls", "nosuchfolder:"); r.code != exitNotFound {
			t.Errorf("ls of a missing folder: exit %d, %s; want 5", r.code, r.stderr)
		}
	})

	t.Run("mkdir, cp, mv and a directory as zip", func(t *testing.T) {
		wantOK(t, cliRun(t, home, w.alice, "", "vfolder", "mkdir", "-p", "data:a/b"), "mkdir -p")
		wantOK(t, cliRun(t, home, w.alice, "", "vfolder", "cp", "data:big.bin", "a/b/c.bin"), "cp")
		wantOK(t, cliRun(t, home, w.alice, "", "vfolder", "mv", "data:a/b/c.bin", "data:a/d.bin"), "mv")
		r := wantOK(t, cliRun(t, home, w.alice, "", "vfolder", "ls", "data:a", "--json"), "ls a")
		var files []client.FileEntry
		json.Unmarshal([]byte(r.stdout), &files)
		if len(files) != 2 || files[0].Name != "b" || files[0].Type != "dir" || files[1].Name != "d.bin" {
			t.Fatalf("data:a holds %s; want b/ and d.bin", r.stdout)
		}
		// A local tree goes up with --recursive, below the target directory.
		tree := filepath.Join(work, "tree")
		os.MkdirAll(filepath.Join(tree, "sub"), 0o755)
		os.WriteFile(filepath.Join(tree, "top.txt"), []byte("top"), 0o644)
		os.WriteFile(filepath.Join(tree, "sub", "leaf.txt"), []byte("leaf"), 0o644)
		if r := cliRun(t, home, w.alice, "", "vfolder", "upload", tree, "data:a/"); r.code != exitUsage || !strings.Contains(r.stderr, "--recursive") {
			t.Errorf("a directory without --recursive: exit %d, %s", r.code, r.stderr)
		}
		wantOK(t, cliRun(t, home, w.alice, "", "vfolder", "upload", "-r", tree, "data:a/"), "upload -r")
		r = wantOK(t, cliRun(t, home, w.alice, "", "vfolder", "info", "data:a/tree/sub/leaf.txt", "--json"), "info leaf")
		var leaf client.FileEntry
		if err := json.Unmarshal([]byte(r.stdout), &leaf); err != nil || leaf.Size != 4 || leaf.Type != "file" {
			t.Errorf("uploaded tree's leaf: %s (%v)", r.stdout, err)
		}
		wantOK(t, cliRun(t, home, w.alice, "", "vfolder", "download", "data:a", work), "download a directory")
		zr, err := zip.OpenReader(filepath.Join(work, "a.zip"))
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		found := false
		for _, f := range zr.File {
			if f.Name == "d.bin" && f.UncompressedSize64 == 3*mib+12345 {
				found = true
			}
		}
		if !found {
			t.Errorf("a.zip lacks d.bin: %v", zr.File)
		}
	})

	t.Run("rm of a directory needs --recursive and a confirmation", func(t *testing.T) {
		r := cliRun(t, home, w.alice, "", "vfolder", "rm", "data:a")
		if r.code != exitError || !strings.Contains(r.stderr, "--recursive") {
			t.Errorf("rm of a non-empty directory: exit %d, %s; want 1 pointing at --recursive", r.code, r.stderr)
		}
		r = cliRun(t, home, w.alice, "", "vfolder", "rm", "--recursive", "data:a")
		if r.code != exitUsage || !strings.Contains(r.stderr, "--yes") {
			t.Errorf("rm -r without a terminal or --yes: exit %d, %s; want 2 asking for --yes", r.code, r.stderr)
		}
		wantOK(t, cliRun(t, home, w.alice, "", "vfolder", "rm", "--recursive", "--yes", "data:a"), "rm -r --yes")
		wantOK(t, cliRun(t, home, w.alice, "", "vfolder", "rm", "data:in/resume.bin"), "rm a file")
		r = wantOK(t, cliRun(t, home, w.alice, "", "vfolder", "ls", "data:", "--json"), "ls")
		if strings.Contains(r.stdout, `"a"`) || strings.Contains(r.stdout, "resume.bin") {
			t.Errorf("removed paths still listed: %s", r.stdout)
		}
		if r := cliRun(t, home, w.alice, "", "vfolder", "rm", "data"); r.code != exitUsage {
			t.Errorf("rm of a whole folder without --yes: exit %d, %s; want 2", r.code, r.stderr)
		}
		wantOK(t, cliRun(t, home, w.alice, "", "vfolder", "rm", "data", "--yes"), "rm folder")
		if vs, err := w.aliceAPI.VFolders(t.Context(), false); err != nil || len(vs) != 0 {
			t.Errorf("alice's folders after rm: %v, %v", vs, err)
		}
	})
}

// testGroup makes sure the host has a group named name and returns its gid.
func testGroup(t *testing.T, name string) int {
	t.Helper()
	if out, err := exec.Command("groupadd", "-f", name).CombinedOutput(); err != nil {
		t.Fatalf("groupadd -f %s: %v\n%s\nthis test needs root and groupadd (Debian: passwd package)", name, err, out)
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		t.Fatal(err)
	}
	gid, _ := strconv.Atoi(g.Gid)
	return gid
}

func TestProjectGIDCLI(t *testing.T) {
	w := newVFWorld(t)
	home := t.TempDir()
	gid := testGroup(t, "slurmgate-test-grp")
	proj := w.domain + "/team"

	r := wantOK(t, cliRun(t, home, w.root, "", "admin", "project", "create", proj, "--gid", strconv.Itoa(gid), "--json"), "project create --gid")
	var p client.Project
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil || p.GID == nil || *p.GID != gid {
		t.Fatalf("created project %s (%v); want gid %d", r.stdout, err, gid)
	}
	r = cliRun(t, home, w.root, "", "admin", "project", "create", w.domain+"/other", "--gid", "59998")
	if r.code != exitUsage || !strings.Contains(r.stderr, "gid 59998") || !strings.Contains(r.stderr, "groupadd") {
		t.Errorf("unknown gid: exit %d, stderr %s; want 2 saying to create the group", r.code, r.stderr)
	}
	r = cliRun(t, home, w.root, "", "admin", "project", "update", proj, "--gid", "0")
	if r.code != exitUsage || !strings.Contains(r.stderr, "positive") {
		t.Errorf("gid 0: exit %d, stderr %s", r.code, r.stderr)
	}
	if r := wantOK(t, cliRun(t, home, w.root, "", "admin", "project", "ls"), "project ls"); !strings.Contains(r.stdout, strconv.Itoa(gid)) {
		t.Errorf("project ls does not show the gid:\n%s", r.stdout)
	}
	wantOK(t, cliRun(t, home, w.root, "", "admin", "member", "set", proj, "alice", "--role", "project-admin"), "member set")

	r = wantOK(t, cliRun(t, home, w.alice, "", "vfolder", "create", "shared", "--project", proj, "--json"), "project folder")
	var v client.VFolder
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || v.OwnerKind != "project" {
		t.Fatalf("project folder %s (%v)", r.stdout, err)
	}
	st, err := os.Stat(w.host.Path(strings.ReplaceAll(v.ID, "-", "")))
	if err != nil {
		t.Fatal(err)
	}
	if s := st.Sys().(*syscall.Stat_t); int(s.Gid) != gid || st.Mode()&os.ModeSetgid == 0 || st.Mode().Perm() != 0o770 {
		t.Errorf("project folder group %d, mode %v; want %d and drwxrws---", s.Gid, st.Mode(), gid)
	}
}
