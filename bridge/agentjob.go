package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/slurmgate/slurmgate/apptainer"
	"github.com/slurmgate/slurmgate/apptainer/agent"
)

// A session job's one step is the agent (slurmgate agent, as the user): it
// dials the gateway, starts the container and the image's services, and
// serves the app proxy, terminals and exec. The gateway writes the agent's
// configuration, secret included, to a 0600 file owned by the user in the
// user's 0700 output directory; the job script only names the file, so the
// secret is never in the script or the job's environment, which other users
// may read (scontrol show job, /proc/<pid>/environ).

// agentScript issues the session's agent secret, writes the agent's
// configuration and renders the job script that runs the agent.
func (b *Bridge) agentScript(ctx context.Context, s Session, img Image, sg ScalingGroup) (string, error) {
	secret, err := b.IssueAgentSecret(ctx, s.ID)
	if err != nil {
		return "", err
	}
	return b.agentScriptWith(s, img, sg, secret)
}

// agentScriptWith is agentScript with the secret already issued
// (CreateSession issues it in the transaction that records the session).
func (b *Bridge) agentScriptWith(s Session, img Image, sg ScalingGroup, secret string) (string, error) {
	cfg := agent.Config{
		SessionID:   s.ID,
		GatewayURL:  b.cfg.TunnelURL,
		Secret:      secret,
		Runtime:     cmpOr(img.Runtime, sg.Runtime),
		Image:       img.Location,
		Interactive: s.Type == "interactive",
		Command:     s.Command,
		LogFile:     filepath.Join(filepath.Dir(s.stdoutPath), s.ID+".agent.log"),
	}
	for _, k := range slices.Sorted(maps.Keys(s.Environment)) {
		cfg.Env = append(cfg.Env, k+"="+s.Environment[k])
	}
	for _, m := range s.Mounts {
		cfg.Mounts = append(cfg.Mounts, agent.Mount{Source: m.HostPath, Target: m.Target, ReadOnly: m.ReadOnly})
	}
	for _, sv := range img.Info.Services {
		cfg.Services = append(cfg.Services, agentService(sv))
	}
	path := filepath.Join(filepath.Dir(s.stdoutPath), s.ID+".agent.json")
	if err := writeUserFile(path, s.OwnerUID, cfg); err != nil {
		return "", err
	}
	return apptainer.AgentJobScript(apptainer.AgentJob{SessionID: s.ID, Agent: b.cfg.AgentBinary, Config: path})
}

// agentService turns an image's service label into what the agent starts.
// A service whose command names neither {port} nor {socket} listens on the
// label's fixed port. One without {base_url} is served at "/": the agent
// strips the gateway's /s/{session}/{name} prefix for it.
func agentService(sv apptainer.Service) agent.Service {
	out := agent.Service{Name: sv.Name, Protocol: sv.Protocol, Command: strings.Fields(sv.Command),
		Socket: sv.Socket, BaseURL: sv.BaseURL}
	if !strings.Contains(sv.Command, "{port}") && !sv.Socket {
		out.Port = sv.Port
	}
	// For a token-guarded service (its image's .auth label) the agent
	// presents the token for the user, in the header the app reads
	// (Jupyter's, and JupyterHub's single-user servers'): the browser never
	// holds it.
	out.AuthHeader = sv.AuthHeader()
	return out
}

// writeUserFile writes v as JSON to path, mode 0600, owned by uid: made
// and given away before the secret goes in, so no other user can ever read
// it. The gateway writes as root into a directory uid controls, so the file
// is always a new one: whatever stood at path (an earlier configuration of
// the session, or a symbolic link to a file of root's that the user placed
// there to have it truncated and given to them) is removed, and the create
// fails rather than follow or reuse anything put there in between.
func writeUserFile(path string, uid int, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("agent configuration: replacing %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("agent configuration: %w", err)
	}
	defer f.Close()
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	if err := f.Chown(uid, -1); err != nil {
		return fmt.Errorf("agent configuration %s: giving it to uid %d: %w (the gateway runs as root to do this)", path, uid, err)
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.Close()
}
