package api

// The session runtime end to end, through everything real: REST create →
// Slurm job → `slurmgate agent` on the node, as alice → container
// (Charliecloud, or none) → services → RUNNING → the app proxy, terminals,
// exec and metrics over the agent's tunnel.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/slurmgate/slurmgate/api/client"
	"github.com/slurmgate/slurmgate/bridge"
	"github.com/slurmgate/slurmgate/testdata/images"
)

// waitRunning polls the session until it is RUNNING and returns how long
// that took; any end state fails the test with the session's message.
func waitRunning(t *testing.T, c *client.Client, id string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		s, err := c.Session(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		switch s.State {
		case "RUNNING":
			return time.Since(start)
		case "TERMINATED", "ERROR", "CANCELLED":
			t.Fatalf("session %s ended %s before RUNNING: %s", id, s.State, s.StatusMessage)
		}
		if time.Since(start) > limit {
			t.Fatalf("session %s still %s after %v: %s", id, s.State, limit, s.StatusMessage)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// wantNotFound checks err is the API's 404.
func wantNotFound(t *testing.T, what string, err error) {
	t.Helper()
	var p *client.Problem
	if !errors.As(err, &p) || p.Status != http.StatusNotFound {
		t.Errorf("bob: %s: %v; want 404", what, err)
	}
}

// jupyterMessage is a message of Jupyter's messaging protocol (v5) as its
// WebSocket carries it: JSON with the channel named.
type jupyterMessage struct {
	Channel      string         `json:"channel"`
	Header       map[string]any `json:"header"`
	ParentHeader map[string]any `json:"parent_header"`
	Metadata     map[string]any `json:"metadata"`
	Content      map[string]any `json:"content"`
}

func TestSessionE2E(t *testing.T) {
	imgs := images.Require(t)
	a, _ := newSessionAPI(t, func(c *bridge.Config) { c.CullInterval = 500 * time.Millisecond })
	ctx := t.Context()
	go a.b.RunReconciler(ctx)
	go a.b.RunCuller(ctx)
	for _, sg := range []bridge.ScalingGroup{
		{Name: "cc", Partitions: []string{"cpu"}, Runtime: "charliecloud"},
		{Name: "gpu", Partitions: []string{"gpu"}, GPUTypes: []string{"a100"}},
	} {
		if _, err := a.b.CreateScalingGroup(ctx, bridge.System, sg); err != nil {
			t.Fatal(err)
		}
	}
	for _, img := range []bridge.Image{{Name: "jupyter", Location: imgs.Jupyter}, {Name: "busybox", Location: imgs.Busybox}} {
		if _, err := a.b.CreateImage(ctx, bridge.System, img); err != nil {
			t.Fatal(err)
		}
	}
	// A file of bob's that alice's container must not reach.
	secretDir := "/home/bob/.slurmgate-e2e"
	os.MkdirAll(secretDir, 0o700)
	os.WriteFile(filepath.Join(secretDir, "secret"), []byte("bob's\n"), 0o600)
	os.Chown(filepath.Join(secretDir, "secret"), 2002, 2002)
	os.Chown(secretDir, 2002, 2002)
	t.Cleanup(func() { os.RemoveAll(secretDir) })

	alice, bob := a.client(a.alice), a.client(a.bob)
	create := func(req client.SessionRequest) *client.Session {
		t.Helper()
		s, err := alice.CreateSession(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// All three at once: the Jupyter one is the slowest to become ready.
	jup := create(client.SessionRequest{Type: "interactive", Image: "jupyter", ScalingGroup: "cc", CPUs: 1, MemoryMB: 1024, TimeLimitS: 900})
	box := create(client.SessionRequest{Type: "interactive", Image: "busybox", ScalingGroup: "cc", CPUs: 1, MemoryMB: 256, TimeLimitS: 900})
	gpu := create(client.SessionRequest{Type: "interactive", Image: "host", ScalingGroup: "gpu", GPUs: 2, GPUType: "a100", CPUs: 1, MemoryMB: 256, TimeLimitS: 900})
	t.Logf("busybox (charliecloud) create → RUNNING: %v", waitRunning(t, alice, box.ID, 2*time.Minute))
	t.Logf("host (none, 2 GPUs) create → RUNNING: %v", waitRunning(t, alice, gpu.ID, 2*time.Minute))
	t.Logf("jupyter (charliecloud) create → RUNNING: %v", waitRunning(t, alice, jup.ID, 4*time.Minute))

	tok, err := alice.CreateToken(ctx, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	appURL := alice.AppURL(jup.ID, "jupyter")
	app := func(method, path string, body io.Reader) (int, []byte) {
		t.Helper()
		r, _ := http.NewRequestWithContext(ctx, method, appURL+path, body)
		r.Header.Set("Authorization", "Bearer "+tok.Token)
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}

	t.Run("jupyter status", func(t *testing.T) {
		if code, body := app("GET", "api/status", nil); code != 200 {
			t.Fatalf("GET %sapi/status = %d %s", appURL, code, body)
		}
	})

	t.Run("jupyter kernel round trip", func(t *testing.T) {
		code, body := app("POST", "api/kernels", strings.NewReader(`{"name":"python3"}`))
		var kernel struct{ ID string }
		if code != 201 || json.Unmarshal(body, &kernel) != nil || kernel.ID == "" {
			t.Fatalf("POST api/kernels = %d %s; want 201 and a kernel id", code, body)
		}
		ws, resp, err := websocket.DefaultDialer.DialContext(ctx, "ws"+strings.TrimPrefix(appURL, "http")+"api/kernels/"+kernel.ID+"/channels",
			http.Header{"Authorization": {"Bearer " + tok.Token}})
		if err != nil {
			t.Fatalf("kernel WebSocket: %v (%v)", err, resp)
		}
		defer ws.Close()
		msgID := fmt.Sprintf("sg-e2e-%d", time.Now().UnixNano())
		req := jupyterMessage{Channel: "shell",
			Header: map[string]any{"msg_id": msgID, "msg_type": "execute_request", "session": "sg-e2e", "username": "alice",
				"version": "5.3", "date": time.Now().UTC().Format(time.RFC3339)},
			ParentHeader: map[string]any{}, Metadata: map[string]any{},
			Content: map[string]any{"code": "1+1", "silent": false, "store_history": true, "user_expressions": map[string]any{},
				"allow_stdin": false, "stop_on_error": true}}
		if err := ws.WriteJSON(req); err != nil {
			t.Fatal(err)
		}
		// A fresh kernel may take a few seconds to answer on a busy node.
		ws.SetReadDeadline(time.Now().Add(60 * time.Second))
		var seen []string
		for {
			var m jupyterMessage
			if err := ws.ReadJSON(&m); err != nil {
				t.Fatalf("reading the kernel's answer: %v; messages so far %v", err, seen)
			}
			seen = append(seen, fmt.Sprint(m.Channel, "/", m.Header["msg_type"]))
			if m.ParentHeader["msg_id"] != msgID || m.Header["msg_type"] != "execute_result" {
				continue
			}
			data, _ := m.Content["data"].(map[string]any)
			if data["text/plain"] != "2" {
				t.Fatalf("execute_result %v; want text/plain 2", m.Content)
			}
			return
		}
	})

	t.Run("terminal", func(t *testing.T) {
		term, err := alice.OpenTerminal(ctx, jup.ID, 30, 100)
		if err != nil {
			t.Fatal(err)
		}
		defer term.Close()
		var out bytes.Buffer
		readUntil := func(want string) {
			t.Helper()
			done := make(chan error, 1)
			go func() {
				buf := make([]byte, 4096)
				for !strings.Contains(out.String(), want) {
					n, err := term.Read(buf)
					out.Write(buf[:n])
					if err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("terminal: reading for %q: %v; so far %q", want, err, out.String())
				}
			case <-time.After(20 * time.Second):
				term.Close()
				t.Fatalf("terminal: no %q within 20 s; so far %q", want, out.String())
			}
			out.Reset()
		}
		// h''i: the echoed command line is not the answer.
		term.Write([]byte("echo h''i\n"))
		readUntil("hi\r\n")
		term.Write([]byte("stty size\n"))
		readUntil("30 100")
		if err := term.Resize(40, 120); err != nil {
			t.Fatal(err)
		}
		term.Write([]byte("stty size\n"))
		readUntil("40 120")
	})

	t.Run("exec streams output and exit code", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		code, err := alice.Exec(ctx, jup.ID, client.ExecRequest{Argv: []string{"/bin/sh", "-c", "echo out; echo err >&2; id -un; exit 7"}}, &stdout, &stderr)
		if err != nil || code != 7 || stdout.String() != "out\nalice\n" || stderr.String() != "err\n" {
			t.Errorf("exec: code %d err %v stdout %q stderr %q; want 7, out+alice, err", code, err, stdout.String(), stderr.String())
		}
	})

	t.Run("bob gets 404", func(t *testing.T) {
		btok, err := bob.CreateToken(ctx, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		r, _ := http.NewRequestWithContext(ctx, "GET", appURL+"api/status", nil)
		r.Header.Set("Authorization", "Bearer "+btok.Token)
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Errorf("bob: GET alice's app: %d; want 404", resp.StatusCode)
		}
		_, err = bob.OpenTerminal(ctx, jup.ID, 24, 80)
		wantNotFound(t, "terminal", err)
		_, err = bob.Exec(ctx, jup.ID, client.ExecRequest{Argv: []string{"true"}}, io.Discard, io.Discard)
		wantNotFound(t, "exec", err)
		_, err = bob.SessionMetrics(ctx, jup.ID)
		wantNotFound(t, "metrics", err)
		_, err = bob.SessionApps(ctx, jup.ID)
		wantNotFound(t, "apps", err)
	})

	t.Run("gpu session sees its 2 GPUs", func(t *testing.T) {
		var out bytes.Buffer
		code, err := alice.Exec(ctx, gpu.ID, client.ExecRequest{Argv: []string{"/bin/sh", "-c", "echo $CUDA_VISIBLE_DEVICES"}}, &out, io.Discard)
		if err != nil || code != 0 || out.String() != "0,1\n" {
			t.Errorf("CUDA_VISIBLE_DEVICES: %q (code %d, %v); want 0,1", out.String(), code, err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			m, err := alice.SessionMetrics(ctx, gpu.ID)
			if err != nil {
				t.Fatal(err)
			}
			if m.At != nil {
				// No NVML on this machine: the status says so, no error.
				if !strings.HasPrefix(m.GPUStatus, "GPU metrics unavailable: ") {
					t.Errorf("gpu_status %q; want \"GPU metrics unavailable: …\" without NVML", m.GPUStatus)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("no metrics from the GPU session's agent within 30 s")
			}
			time.Sleep(500 * time.Millisecond)
		}
	})

	t.Run("container cannot see other users' files", func(t *testing.T) {
		var out, errOut bytes.Buffer
		code, err := alice.Exec(ctx, box.ID, client.ExecRequest{Argv: []string{"/bin/sh", "-c", "cat " + secretDir + "/secret"}}, &out, &errOut)
		if err != nil || code == 0 || strings.Contains(out.String(), "bob's") {
			t.Errorf("cat of bob's 0600 file in a 0700 directory: code %d %v, stdout %q; want a failure", code, err, out.String())
		}
		out.Reset()
		code, err = alice.Exec(ctx, box.ID, client.ExecRequest{Argv: []string{"/bin/sh", "-c", "ls -A /home/bob"}}, &out, io.Discard)
		if err != nil || (code == 0 && strings.TrimSpace(out.String()) != "") {
			t.Errorf("ls -A /home/bob: code %d %v, %q; want a failure or nothing", code, err, out.String())
		}
	})

	t.Run("idle session is culled", func(t *testing.T) {
		// Last: the policy covers all of alice's sessions.
		five := int64(5)
		if _, err := a.b.SetPolicy(ctx, bridge.System, bridge.Policy{Scope: "user", TargetID: a.alice.UserID, IdleTimeoutS: &five}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		for {
			s, err := alice.Session(ctx, box.ID)
			if err != nil {
				t.Fatal(err)
			}
			if s.State != "RUNNING" {
				events, err := alice.SessionEvents(ctx, box.ID)
				if err != nil {
					t.Fatal(err)
				}
				// The status message moves on (TERMINATING, then "terminated
				// on request" once Slurm ends the job); the reason stays in
				// the timeline.
				if !slices.ContainsFunc(events, func(e client.Event) bool { return e.Kind == "idle" && e.To == "TERMINATING" }) {
					t.Fatalf("session left RUNNING as %s (%s), events %+v; want ended for idleness", s.State, s.StatusMessage, events)
				}
				t.Logf("idle session culled %v after the 5 s policy was set", time.Since(start))
				return
			}
			if time.Since(start) > time.Minute {
				t.Fatalf("idle session still RUNNING after a minute with idle_timeout_s 5")
			}
			time.Sleep(250 * time.Millisecond)
		}
	})
}
