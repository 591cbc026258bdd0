package main

// kill -9 of a real `slurmgate server` under a running session: the agent
// reconnects to the restarted gateway, the same app URL works again, and no
// session is lost.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/slurmgate/slurmgate/api/client"
	"github.com/slurmgate/slurmgate/bridge"
	"github.com/slurmgate/slurmgate/bridge/bridgetest"
	"github.com/slurmgate/slurmgate/slurmctl"
	"github.com/slurmgate/slurmgate/testdata/cluster"
	"github.com/slurmgate/slurmgate/testdata/images"
)

// gatewayProcess runs `slurmgate server` on addr until stopped.
type gatewayProcess struct {
	t    *testing.T
	bin  string
	env  []string
	log  string
	cmd  *exec.Cmd
	addr string
}

func (g *gatewayProcess) start() {
	g.t.Helper()
	logf, err := os.OpenFile(g.log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		g.t.Fatal(err)
	}
	defer logf.Close()
	g.cmd = exec.Command(g.bin, "server")
	g.cmd.Env, g.cmd.Stdout, g.cmd.Stderr = g.env, logf, logf
	if err := g.cmd.Start(); err != nil {
		g.t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + g.addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(g.log)
			g.t.Fatalf("slurmgate server did not answer on %s within 30 s: %v\n%s", g.addr, err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (g *gatewayProcess) kill() {
	if g.cmd != nil && g.cmd.Process != nil {
		g.cmd.Process.Signal(syscall.SIGKILL)
		g.cmd.Wait()
	}
}

func TestRestartE2EGatewayKilledAgentReconnects(t *testing.T) {
	env := cluster.Require(t)
	imgs := images.Require(t)
	bin := cluster.AgentBinary(t) // one binary: the gateway and the agent
	dbURL := bridgetest.Database(t)
	ctx := t.Context()

	// The organisation, written through the domain layer into the
	// gateway's fresh database before the gateway starts.
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	slurm, err := slurmctl.New(slurmctl.Config{URL: env.RestURL, Cluster: env.Name, JWTKey: env.JWTKey(t), SlurmConf: env.SlurmConf})
	if err != nil {
		t.Fatal(err)
	}
	// The gateway's key: keypairs made here must decrypt in the gateway.
	key, err := readKeyFile(env.SecretKeyPath, "security.secret_key_file", 32)
	if err != nil {
		t.Fatal(err)
	}
	b := bridge.New(pool, slurm, bridge.Config{Cluster: env.Name, JobOutputDir: env.JobOutputDir, SecretKey: key}, nil)
	domain := fmt.Sprintf("r%x", time.Now().UnixNano()&0xffffffff)
	if _, err := b.CreateDomain(ctx, bridge.System, domain, ""); err != nil {
		t.Fatal(err)
	}
	alice, err := b.CreateUser(ctx, bridge.System, bridge.NewUser{Username: "alice", UID: 2001, Domain: domain})
	if err != nil {
		t.Fatal(err)
	}
	ak, sk, err := b.CreateKeypair(ctx, alice.Actor(), alice.ID, "restart test")
	if err != nil {
		t.Fatal(err)
	}
	project, err := b.CreateProject(ctx, bridge.System, domain, "vision", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.SetMembership(ctx, bridge.System, project.ID, alice.ID, "member"); err != nil {
		t.Fatal(err)
	}
	if err := slurm.CreateAccount(ctx, slurmctl.Account{Name: domain, Organization: "slurmgate-test"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for range 50 {
			if err := slurm.DeleteAccount(context.Background(), domain); err == nil || errors.Is(err, slurmctl.ErrNotFound) {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
	if err := slurm.CreateAccount(ctx, slurmctl.Account{Name: project.Account(), Parent: domain, Organization: "slurmgate-test"}); err != nil {
		t.Fatal(err)
	}
	if err := slurm.CreateAssociation(ctx, slurmctl.Association{Account: project.Account(), User: "alice"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateScalingGroup(ctx, bridge.System, bridge.ScalingGroup{Name: "cc", Partitions: []string{"cpu"}, Runtime: "charliecloud"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateImage(ctx, bridge.System, bridge.Image{Name: "jupyter", Location: imgs.Jupyter}); err != nil {
		t.Fatal(err)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	vars, err := os.ReadFile(cluster.EnvFile())
	if err != nil {
		t.Fatal(err)
	}
	genv := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	for line := range strings.Lines(string(vars)) {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "SLURMGATE_SLURM_") || strings.HasPrefix(line, "SLURMGATE_SECURITY_") || strings.HasPrefix(line, "SLURMGATE_SESSIONS_") {
			genv = append(genv, line)
		}
	}
	genv = append(genv, "SLURMGATE_DATABASE_URL="+dbURL, "SLURMGATE_SERVER_LISTEN="+addr, "SLURMGATE_SERVER_PUBLIC_URL=http://"+addr,
		"SLURMGATE_SESSIONS_AGENT_BINARY="+bin, "SLURMGATE_SESSIONS_TUNNEL_URL=ws://"+addr+"/api/v1/agent/tunnel",
		// An organisation of its own: the server's account sync deletes
		// every account of its organisation that its (fresh) database
		// does not want, and the default is make dev's gateway's.
		fmt.Sprintf("SLURMGATE_SYNC_MANAGED_ORGANIZATION=sgtest-restart-%x", time.Now().UnixNano()&0xffffffff))
	gw := &gatewayProcess{t: t, bin: bin, env: genv, log: filepath.Join(t.TempDir(), "gateway.log"), addr: addr}
	gw.start()
	t.Cleanup(gw.kill)
	defer func() {
		if t.Failed() {
			out, _ := os.ReadFile(gw.log)
			t.Logf("gateway log:\n%s", out)
		}
	}()

	c, err := client.New("http://"+addr, client.WithKeypair(ak, sk))
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.CreateSession(ctx, client.SessionRequest{Type: "interactive", Image: "jupyter", ScalingGroup: "cc", CPUs: 1, MemoryMB: 1024, TimeLimitS: 600})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if s, err := b.Session(context.Background(), bridge.System, s.ID); err == nil && s.JobID != nil {
			slurm.Cancel(context.Background(), "alice", slurmctl.JobID(*s.JobID))
		}
	})
	start := time.Now()
	for {
		got, err := c.Session(ctx, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State == "RUNNING" {
			break
		}
		if got.State == "TERMINATED" || got.State == "ERROR" || got.State == "CANCELLED" || time.Since(start) > 3*time.Minute {
			t.Fatalf("session %s: %s (%s); want RUNNING", s.ID, got.State, got.StatusMessage)
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("create → RUNNING through the real gateway: %v", time.Since(start))
	tok, err := c.CreateToken(ctx, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	status := func() (int, error) {
		r, _ := http.NewRequestWithContext(ctx, "GET", c.AppURL(s.ID, "jupyter")+"api/status", nil)
		r.Header.Set("Authorization", "Bearer "+tok.Token)
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if code, err := status(); code != 200 {
		t.Fatalf("app URL before the restart: %d %v", code, err)
	}

	gw.kill()
	restarted := time.Now()
	gw.start()
	var code int
	for {
		if code, err = status(); code == 200 {
			break
		}
		if time.Since(restarted) > 10*time.Second {
			t.Fatalf("app URL after kill -9 and restart: %d %v after 10 s; want 200 once the agent reconnects", code, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("gateway kill -9 → restarted → app URL 200 again: %v", time.Since(restarted))
	page, err := c.ListSessions(ctx, client.SessionListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 1 || page.Items[0].ID != s.ID || page.Items[0].State != "RUNNING" {
		t.Errorf("sessions after the restart: %+v; want the one session, RUNNING", page.Items)
	}
}
