package bridge

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/slurmgate/slurmgate/apptainer"
	"github.com/slurmgate/slurmgate/apptainer/agent"
	"github.com/slurmgate/slurmgate/bridge/bridgetest"
)

// The agent's secret goes only to a 0600 file owned by the user: never
// into the job script, and the database keeps only its hash.
func TestAgentScriptKeepsTheSecretInTheUsersFile(t *testing.T) {
	db := bridgetest.Pool(t)
	b := New(db, nil, Config{TunnelURL: "ws://127.0.0.1:1/api/v1/agent/tunnel", AgentBinary: "/usr/local/bin/slurmgate"}, nil)
	ctx := t.Context()
	if _, err := b.CreateDomain(ctx, System, "lab", ""); err != nil {
		t.Fatal(err)
	}
	u, err := b.CreateUser(ctx, System, NewUser{Username: "alice", UID: 2001, Domain: "lab"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := b.CreateProject(ctx, System, "lab", "vision", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateScalingGroup(ctx, System, ScalingGroup{Name: "cpu", Cluster: "c", Partitions: []string{"cpu"}, Runtime: "none"}); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "alice")
	os.MkdirAll(dir, 0o700)
	const sid = "5a1c2b7a-8e4d-4c5b-9a6f-0123456789ab"
	_, err = db.Exec(ctx, `INSERT INTO sessions (id, user_id, project_id, domain_id, scaling_group, partition, type,
		image, cpus, memory_mb, time_limit_s, state, stdout_path, environment)
		VALUES ($1, $2, $3, $4, 'cpu', 'cpu', 'interactive', 'x:1', 1, 1024, 60, 'PENDING', $5, '{"A":"b"}')`,
		sid, u.ID, p.ID, p.DomainID, filepath.Join(dir, sid+".out"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := b.sessionByID(ctx, sid)
	if err != nil {
		t.Fatal(err)
	}
	img := Image{Location: "/img.sif", Info: apptainer.ImageInfo{Services: []apptainer.Service{
		{Name: "jupyter", Protocol: "http", Port: 8888, Command: "jupyter-notebook --sock={socket} --NotebookApp.base_url={base_url}", Socket: true, BaseURL: true}}}}
	script, err := b.agentScript(ctx, s, img, ScalingGroup{Runtime: "none"})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, sid+".agent.json")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Sys().(*syscall.Stat_t).Uid != 2001 {
		t.Errorf("agent config mode %v uid %d; want 0600 owned by 2001", fi.Mode().Perm(), fi.Sys().(*syscall.Stat_t).Uid)
	}
	raw, _ := os.ReadFile(path)
	var cfg agent.Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Secret == "" || strings.Contains(script, cfg.Secret) || !strings.Contains(script, path) {
		t.Errorf("script %q: must name %s and not hold the secret", script, path)
	}
	if err := b.AuthenticateAgent(ctx, sid, cfg.Secret); err != nil {
		t.Errorf("the written secret does not authenticate: %v", err)
	}
	if err := b.AuthenticateAgent(ctx, sid, cfg.Secret[:len(cfg.Secret)-2]+"AA"); err == nil {
		t.Error("a wrong secret authenticated")
	}
	var stored []byte
	db.QueryRow(ctx, `SELECT secret_hash FROM session_agents WHERE session_id = $1`, sid).Scan(&stored)
	if strings.Contains(string(stored), cfg.Secret) || len(stored) != 32 {
		t.Errorf("stored %d bytes; want only the SHA-256", len(stored))
	}
	if len(cfg.Services) != 1 || !cfg.Services[0].Socket || cfg.Services[0].Command[1] != "--sock={socket}" ||
		cfg.Runtime != "none" || !cfg.Interactive || cfg.Env[0] != "A=b" {
		t.Errorf("config %+v", cfg)
	}
}

func TestAgentServiceTakesItsTokenHeaderFromTheAuthLabel(t *testing.T) {
	jupyter := apptainer.Service{Name: "jupyter", Protocol: "http", Port: 8888, BaseURL: true,
		Command: "jupyter-notebook --port={port} --NotebookApp.base_url={base_url}", Auth: "token"}
	if got := agentService(jupyter).AuthHeader; got != "Authorization: token {token}" {
		t.Errorf("token-guarded service: auth header %q", got)
	}
	jupyter.Auth = ""
	if got := agentService(jupyter).AuthHeader; got != "" {
		t.Errorf("service without a token: auth header %q", got)
	}
}
