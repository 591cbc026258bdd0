package main

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// startBrowserLogin runs `login --browser` without a display and returns
// the code it printed and a wait for its end.
func startBrowserLogin(t *testing.T, w *cliWorld, dir string) (code string, wait func() (stdout, stderr string, exit int)) {
	t.Helper()
	cmd := cliCmd(t, dir, []string{"DISPLAY=", "WAYLAND_DISPLAY="}, "", "login", "--endpoint", w.url, "--browser")
	var out bytes.Buffer
	cmd.Stdout = &out
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var printed strings.Builder
	sc := bufio.NewScanner(pipe)
	re := regexp.MustCompile(`confirm the code ([B-Z]{4}-[B-Z]{4}) \(or open (\S+)\)`)
	for sc.Scan() {
		printed.WriteString(sc.Text() + "\n")
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			code = m[1]
			if m[2] != w.url+"/device?code="+code {
				t.Errorf("verification_uri_complete %s", m[2])
			}
			break
		}
	}
	if code == "" {
		cmd.Wait()
		t.Fatalf("login --browser printed no code:\n%s", printed.String())
	}
	return code, func() (string, string, int) {
		rest, _ := bufio.NewReader(pipe).ReadString(0)
		for sc.Scan() {
			printed.WriteString(sc.Text() + "\n")
		}
		printed.WriteString(rest)
		err := cmd.Wait()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return out.String(), printed.String(), cmd.ProcessState.ExitCode()
	}
}

func TestCLIDeviceLoginBrowser(t *testing.T) {
	w := newCLIWorld(t)
	ctx := t.Context()

	// alice approves with her credentials: the CLI stores a keypair of hers.
	dir := t.TempDir()
	code, wait := startBrowserLogin(t, w, dir)
	if err := w.api.ApproveDeviceLogin(ctx, strings.ToLower(code), true); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, exit := wait()
	if exit != 0 || !strings.Contains(stdout, "as alice") {
		t.Fatalf("login --browser: exit %d\n%s\n%s", exit, stdout, stderr)
	}
	cfgPath := filepath.Join(dir, ".config", "slurmgate", "config.toml")
	if fi, err := os.Stat(cfgPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("stored configuration: %v %v", fi, err)
	}
	if r := cliRun(t, dir, nil, "", "whoami"); r.code != 0 || !strings.HasPrefix(r.stdout, "alice ") {
		t.Fatalf("whoami after login --browser: %+v", r)
	}
	// The same code cannot be approved again.
	if err := w.api.ApproveDeviceLogin(ctx, code, true); err == nil {
		t.Fatal("a consumed code was approved again")
	}

	// Denied: exit 4 and a message that says so.
	code, wait = startBrowserLogin(t, w, t.TempDir())
	if err := w.api.ApproveDeviceLogin(ctx, code, false); err != nil {
		t.Fatal(err)
	}
	_, stderr, exit = wait()
	if exit != exitAuth || !strings.Contains(stderr, "denied in the portal") {
		t.Fatalf("denied login: exit %d\n%s", exit, stderr)
	}
}
