package slurmctl

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
)

// cliRunner runs Slurm's own commands for the operations slurmrestd lacks.
// Each run authenticates with a freshly minted JWT in SLURM_JWT, so the
// gateway needs neither root nor munge: the command acts as exactly the
// user the token names.
type cliRunner struct {
	minter    *Minter
	slurmConf string
}

// run executes name args as user and returns its standard output. A non-zero
// exit becomes a classified *Error carrying the command's own message.
func (r *cliRunner) run(ctx context.Context, op, user, name string, args ...string) ([]byte, error) {
	token, err := r.minter.Mint(user)
	if err != nil {
		return nil, &Error{Op: op, Kind: ErrInvalidRequest, Message: err.Error()}
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = []string{
		"PATH=" + envOr("PATH", "/usr/local/bin:/usr/bin:/bin"),
		"LANG=C",
		"SLURM_JWT=" + token,
		// Slurm's CLI otherwise prints times in the gateway's zone; we parse them.
		"TZ=UTC",
	}
	if r.slurmConf != "" {
		cmd.Env = append(cmd.Env, "SLURM_CONF="+r.slurmConf)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if err == nil {
		return stdout.Bytes(), nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if errors.Is(err, exec.ErrNotFound) {
		return nil, &Error{Op: op, Kind: ErrUnavailable, Message: name + " is not installed on the gateway host (Debian package slurm-client)"}
	}
	msg := strings.TrimSpace(stderr.String())
	if msg == "" {
		// sacctmgr reports "Nothing new added." and friends on stdout.
		msg = strings.TrimSpace(stdout.String())
	}
	if msg == "" {
		msg = err.Error()
	}
	return nil, classifySlurmError(op, 0, cleanCLIMessage(name, msg))
}

// cleanCLIMessage drops the "sacctmgr: error: " prefixes and joins lines, so
// the message reads as one sentence in an API error.
func cleanCLIMessage(name, msg string) string {
	var lines []string
	for l := range strings.SplitSeq(msg, "\n") {
		l = strings.TrimSpace(l)
		l = strings.TrimPrefix(l, name+": ")
		l = strings.TrimPrefix(l, "error: ")
		if l != "" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "; ")
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
