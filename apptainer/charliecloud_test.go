package apptainer

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/slurmgate/slurmgate/testdata/images"
)

// The charliecloud tests run the driver as alice, the way the agent runs it
// in a job: the test binary copies itself where alice can read it and
// re-executes as her (runuser), with chChildEnv naming the case to run; the
// child prints one JSON report that the parent checks.
const chChildEnv = "SLURMGATE_TEST_CH_CHILD"

func TestMain(m *testing.M) {
	if c := os.Getenv(chChildEnv); c != "" {
		var req chRequest
		if err := json.Unmarshal([]byte(c), &req); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(2)
		}
		rep := runCharliecloudChild(req)
		json.NewEncoder(os.Stdout).Encode(rep)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type chRequest struct {
	Image, StateDir, CacheDir string
	Mounts                    []Mount
	Commands                  [][]string
	Repeat                    int // run the last command this many more times, for latency
}

type chReport struct {
	Err                  string
	StartCold, StartWarm time.Duration
	Outputs              []string
	ExitCode             []int
	RunMean              time.Duration
}

func runCharliecloudChild(req chRequest) (rep chReport) {
	ctx := context.Background()
	d, err := LookupDriver("charliecloud")
	if err != nil {
		return chReport{Err: err.Error()}
	}
	spec := Spec{SessionID: "ch-test-" + filepath.Base(req.StateDir), Image: req.Image, Mounts: req.Mounts,
		Env: []string{"SESSION_GREETING=hello from the spec"}, StateDir: req.StateDir, CacheDir: req.CacheDir}
	t0 := time.Now()
	inst, err := d.Start(ctx, spec)
	if err != nil {
		return chReport{Err: "start: " + err.Error()}
	}
	rep.StartCold = time.Since(t0)
	t0 = time.Now()
	inst2, err := d.Start(ctx, spec)
	if err != nil {
		return chReport{Err: "second start: " + err.Error()}
	}
	rep.StartWarm = time.Since(t0)
	defer inst2.Stop(ctx)
	defer func() {
		if err := inst.Stop(ctx); err != nil && rep.Err == "" {
			rep.Err = "stop: " + err.Error()
		}
	}()
	for _, argv := range req.Commands {
		cmd, err := inst.Command(ctx, argv, []string{"CALL_VAR=from the call"})
		if err != nil {
			return chReport{Err: err.Error()}
		}
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			return chReport{Err: fmt.Sprintf("%v: %v", argv, err)}
		}
		rep.Outputs = append(rep.Outputs, string(out))
		rep.ExitCode = append(rep.ExitCode, code)
	}
	if req.Repeat > 0 {
		last := req.Commands[len(req.Commands)-1]
		t0 := time.Now()
		for range req.Repeat {
			cmd, _ := inst.Command(ctx, last, nil)
			cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
			if err := cmd.Run(); err != nil {
				return chReport{Err: fmt.Sprintf("repeat %v: %v", last, err)}
			}
		}
		rep.RunMean = time.Since(t0) / time.Duration(req.Repeat)
	}
	return rep
}

// asAlice runs req in a copy of the test binary as alice.
func asAlice(t *testing.T, req chRequest) chReport {
	t.Helper()
	if _, err := exec.LookPath("ch-run"); err != nil {
		t.Fatal("ch-run not found: install charliecloud-runtime (apt-get install -y charliecloud-runtime)")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := alicesDir(t)
	bin := filepath.Join(dir, "apptainer.test")
	if out, err := exec.Command("cp", self, bin).CombinedOutput(); err != nil {
		t.Fatalf("copying the test binary: %v: %s", err, out)
	}
	os.Chmod(bin, 0o755)
	b, _ := json.Marshal(req)
	cmd := exec.Command("runuser", "-u", "alice", "--", "env", "-i", "PATH=/usr/local/bin:/usr/bin:/bin",
		"USER=alice", "HOME="+dir, chChildEnv+"="+string(b), bin)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child as alice: %v\nstdout: %s\nstderr: %s", err, out, stderr.String())
	}
	var rep chReport
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("child printed %q: %v (stderr %s)", out, err, stderr.String())
	}
	if rep.Err != "" {
		t.Fatalf("as alice: %s", rep.Err)
	}
	return rep
}

// alicesDir is a fresh directory alice owns, below a root-owned 0755 one.
func alicesDir(t *testing.T) string {
	t.Helper()
	parent, err := os.MkdirTemp("", "slurmgate-ch-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	os.Chmod(parent, 0o755)
	dir := filepath.Join(parent, "alice")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 2001, 2001); err != nil {
		t.Fatalf("chown to alice (uid 2001; testdata/cluster/up creates her): %v", err)
	}
	return dir
}

// mkdirAlice makes dirs owned by alice.
func mkdirAlice(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := os.MkdirAll(p, 0o700); err != nil {
			t.Fatal(err)
		}
		os.Chown(p, 2001, 2001)
	}
}

func TestCharliecloudBusyboxAsAlice(t *testing.T) {
	img := images.Require(t)
	dir := alicesDir(t)
	data, ro := filepath.Join(dir, "data"), filepath.Join(dir, "shared")
	mkdirAlice(t, data, ro, filepath.Join(dir, "state"), filepath.Join(dir, "cache"))
	if err := os.WriteFile(filepath.Join(ro, "readme"), []byte("read me\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// bob's home, with a file only bob may read, must not show inside.
	if err := os.MkdirAll("/home/bob", 0o700); err == nil {
		os.Chown("/home/bob", 2002, 2002)
	}

	rep := asAlice(t, chRequest{
		Image: img.Busybox, StateDir: filepath.Join(dir, "state"), CacheDir: filepath.Join(dir, "cache"),
		Mounts: []Mount{{Source: data, Target: "/home/work/data"}, {Source: ro, Target: "/home/work/shared", ReadOnly: true}},
		Commands: [][]string{
			{"sh", "-c", `echo hi > /home/work/data/x; cat /etc/os-release; id -u; echo "$SESSION_GREETING / $CALL_VAR"; pwd`},
			{"sh", "-c", "cat /home/work/shared/readme && echo nope > /home/work/shared/y"},
			{"sh", "-c", "ls /home/bob || ls -d /home/alice || cat /etc/shadow"},
			{"true"},
		},
		Repeat: 20,
	})

	out := rep.Outputs[0]
	for _, want := range []string{"ID=busybox", "2001\n", "hello from the spec / from the call", "/home/work\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("first command printed %q; want it to contain %q", out, want)
		}
	}
	st, err := os.Stat(filepath.Join(data, "x"))
	if err != nil {
		t.Fatalf("file written in the container is not in the bound host directory: %v", err)
	}
	if uid := st.Sys().(*syscall.Stat_t).Uid; uid != 2001 {
		t.Errorf("file written in the container belongs to uid %d; want alice (2001)", uid)
	}
	if rep.ExitCode[1] == 0 || !strings.Contains(rep.Outputs[1], "read me") || !strings.Contains(rep.Outputs[1], "Read-only") {
		t.Errorf("read-only mount: exit %d, output %q; want the file readable and the write refused", rep.ExitCode[1], rep.Outputs[1])
	}
	if _, err := os.Stat(filepath.Join(ro, "y")); err == nil {
		t.Error("a write through the read-only mount reached the host")
	}
	if rep.ExitCode[2] == 0 {
		t.Errorf("the container sees other users' files or the host's /etc/shadow: %q", rep.Outputs[2])
	}
	t.Logf("busybox: cold start (SIF extraction + unpack) %v, warm start %v, ch-run `true` %v mean",
		rep.StartCold, rep.StartWarm, rep.RunMean)
}

func TestCharliecloudJupyterImageAsAlice(t *testing.T) {
	img := images.Require(t)
	dir := alicesDir(t)
	mkdirAlice(t, filepath.Join(dir, "state"), filepath.Join(dir, "cache"))
	rep := asAlice(t, chRequest{
		Image: img.Jupyter, StateDir: filepath.Join(dir, "state"), CacheDir: filepath.Join(dir, "cache"),
		Commands: [][]string{
			{"python3", "-c", "print(1+1)"},
			{"jupyter-notebook", "--version"},
		},
	})
	if rep.Outputs[0] != "2\n" || rep.ExitCode[0] != 0 {
		t.Errorf("python3 printed %q (exit %d); want 2", rep.Outputs[0], rep.ExitCode[0])
	}
	if rep.ExitCode[1] != 0 || !strings.HasPrefix(rep.Outputs[1], "6.") {
		t.Errorf("jupyter-notebook --version printed %q (exit %d); want Debian's 6.x", rep.Outputs[1], rep.ExitCode[1])
	}
	t.Logf("jupyter: cold start (SIF extraction + unpack) %v, warm start %v", rep.StartCold, rep.StartWarm)
}
