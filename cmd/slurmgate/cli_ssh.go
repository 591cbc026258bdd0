package main

// ssh: plain OpenSSH (and scp, sftp, ssh -L) into a running session. The
// session's agent speaks SSH on a tunnel stream the gateway opens only for
// the session's owner (apptainer/agent/ssh.go says why that is the
// authentication); this command is the ProxyCommand that carries ssh's
// bytes over that stream, and pins the agent's host key in a known_hosts
// file of its own.

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v3"
	"golang.org/x/crypto/ssh"

	"github.com/slurmgate/slurmgate/api/client"
)

func sshCommand() *cli.Command {
	one := 1
	return &cli.Command{
		Name:      "ssh",
		Usage:     "OpenSSH, scp and sftp into a running session through the gateway",
		ArgsUsage: "SESSION [--] [COMMAND [ARG...]]",
		Description: `Runs the system ssh into the session's container: a login shell, or
COMMAND (its arguments are passed as they are). ssh reaches the session
through the gateway (ProxyCommand "slurmgate ssh --proxy SESSION"); the
session's host key is read through the gateway and pinned in
~/.config/slurmgate/known_hosts, so ssh checks it without asking.
No key is needed: the gateway lets only you open the session's stream.
Flags go before SESSION.

--config prints an ssh_config stanza for ~/.ssh/config (and pins the key),
after which plain ssh, scp, sftp and rsync work with the host
slurmgate-SESSION.

Examples:
   slurmgate ssh 3f2a…
   slurmgate ssh 3f2a… -- nvidia-smi -L
   slurmgate ssh -L 6006:localhost:6006 3f2a…
   slurmgate ssh --config 3f2a… >> ~/.ssh/config
   scp data.csv slurmgate-3f2a…:   sftp slurmgate-3f2a…

` + exitStatusOfCommandHelp,
		StopOnNthArg:              &one,
		DisableSliceFlagSeparator: true,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "config", Usage: "print an ssh_config stanza for the session instead of connecting"},
			&cli.BoolFlag{Name: "proxy", Usage: "be ssh's ProxyCommand: carry standard input and output to the session's SSH service"},
			&cli.StringSliceFlag{Name: "option", Aliases: []string{"o"}, Usage: "pass `OPTION` to ssh as -o OPTION (repeatable)"},
			&cli.StringSliceFlag{Name: "local-forward", Aliases: []string{"L"}, Usage: "pass `SPEC` to ssh as -L SPEC, e.g. 8888:localhost:8888 (the session's node loopback only)"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			args := cmd.Args().Slice()
			if len(args) > 1 && args[1] == "--" {
				args = append(args[:1], args[2:]...)
			}
			if len(args) == 0 {
				return usageErrorf("ssh needs a SESSION, e.g. `slurmgate ssh SESSION` (see `slurmgate session ls`)")
			}
			id, remote := args[0], args[1:]
			if cmd.Bool("proxy") && cmd.Bool("config") {
				return usageErrorf("--proxy and --config exclude each other")
			}
			if (cmd.Bool("proxy") || cmd.Bool("config")) && len(remote) > 0 {
				return usageErrorf("--proxy and --config take only SESSION, not a command")
			}
			c, cfg, err := apiClient()
			if err != nil {
				return err
			}
			if cmd.Bool("proxy") {
				return sshProxy(ctx, c, cfg.Endpoint, id)
			}
			opts, err := sshOptions(ctx, c, cfg.Endpoint, id)
			if err != nil {
				return err
			}
			if cmd.Bool("config") {
				fmt.Fprintf(cmd.Root().Writer, "Host %s\n", sshHost(id))
				for _, o := range opts {
					k, v, _ := strings.Cut(o, "=")
					fmt.Fprintf(cmd.Root().Writer, "    %s %s\n", k, v)
				}
				return nil
			}
			bin, err := lookSSH()
			if err != nil {
				return err
			}
			argv := []string{"ssh"}
			for _, o := range slices.Concat(opts, cmd.StringSlice("option")) {
				argv = append(argv, "-o", o)
			}
			for _, l := range cmd.StringSlice("local-forward") {
				argv = append(argv, "-L", l)
			}
			argv = append(argv, sshHost(id))
			if len(remote) > 0 {
				// ssh joins its arguments with spaces for the remote shell:
				// quote them so that each arrives as given.
				argv = append(argv, "--", shellJoin(remote))
			}
			// ssh takes over the terminal, the signals and the exit status.
			err = syscall.Exec(bin, argv, os.Environ())
			return &cliError{code: exitError, msg: "cannot run ssh: " + err.Error()}
		},
	}
}

func sshHost(id string) string { return "slurmgate-" + id }

func lookSSH() (string, error) {
	bin, err := exec.LookPath("ssh")
	if err != nil {
		return "", &cliError{code: exitError, msg: "ssh is not installed here",
			hint: "install OpenSSH's client (Debian: apt-get install openssh-client), or use `slurmgate session shell`"}
	}
	return bin, nil
}

// sshOptions pins the session's host key and returns the ssh_config
// options (Key=value) that reach the session through this binary.
func sshOptions(ctx context.Context, c *client.Client, endpoint, id string) ([]string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, &cliError{code: exitError, msg: "cannot find the slurmgate binary for ssh's ProxyCommand: " + err.Error()}
	}
	known, err := pinHostKey(ctx, c, endpoint, id)
	if err != nil {
		return nil, err
	}
	return []string{
		"ProxyCommand=" + shellQuote(self) + " ssh --proxy " + shellQuote(id),
		"HostKeyAlias=" + sshHost(id),
		"UserKnownHostsFile=" + sshQuote(known),
		"GlobalKnownHostsFile=/dev/null",
		"StrictHostKeyChecking=yes",
		"UpdateHostKeys=no",
		// The gateway pings the stream; this keeps NATs on the way open
		// and notices a dead gateway.
		"ServerAliveInterval=30",
	}, nil
}

// sshQuote quotes a path for ssh_config when it needs it.
func sshQuote(s string) string {
	if strings.ContainsAny(s, " \t\"") {
		return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"`
	}
	return s
}

// pinHostKey reads the session's host key through the gateway and writes
// it to the CLI's known_hosts under the session's alias, replacing an older
// one (the agent makes a new key when it restarts). It returns the file.
func pinHostKey(ctx context.Context, c *client.Client, endpoint, id string) (string, error) {
	cfgPath, err := cliConfigPath()
	if err != nil {
		return "", err
	}
	known := filepath.Join(filepath.Dir(cfgPath), "known_hosts")
	kctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	key, err := c.SSHHostKey(kctx, id)
	if err != nil {
		return "", runtimeError(err, endpoint, id)
	}
	line := sshHost(id) + " " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))
	if err := pinKnownHost(known, sshHost(id), line); err != nil {
		return "", &cliError{code: exitError, msg: "pinning the session's host key: " + err.Error()}
	}
	return known, nil
}

// pinKnownHost replaces host's lines in the known_hosts file with line.
// Several ssh runs (scp -r, parallel jobs) pin keys at once: the
// read-modify-rename holds a flock on a sibling lock file, so that none
// loses another's update (the rename replaces the file, so the lock cannot
// be on the file itself).
func pinKnownHost(known, host, line string) error {
	if err := os.MkdirAll(filepath.Dir(known), 0o700); err != nil {
		return err
	}
	lock, err := os.OpenFile(known+".lock", os.O_CREATE|os.O_RDWR|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close() // releases the flock
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("locking %s: %w", lock.Name(), err)
	}
	old, err := os.ReadFile(known)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	var lines []string
	for l := range strings.Lines(string(old)) {
		l = strings.TrimRight(l, "\n")
		if l != "" && !strings.HasPrefix(l, host+" ") {
			lines = append(lines, l)
		}
	}
	lines = append(lines, line)
	return writeFileAtomic(known, []byte(strings.Join(lines, "\n")+"\n"))
}

// writeFileAtomic replaces path with data (mode 0600) by a rename, so that
// concurrent ssh runs never read half a file.
func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".known_hosts-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// sshProxy carries standard input to the session's SSH service and its
// answers to standard output, until either side ends: what ssh expects of a
// ProxyCommand. Errors go to stderr, where ssh shows them.
func sshProxy(ctx context.Context, c *client.Client, endpoint, id string) error {
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	conn, err := c.DialTCP(dctx, id, client.SSHService)
	cancel()
	if err != nil {
		return runtimeError(err, endpoint, id)
	}
	defer conn.Close()
	done := make(chan error, 2)
	go func() {
		_, err := io.Copy(conn, os.Stdin)
		done <- err
	}()
	go func() {
		_, err := io.Copy(os.Stdout, conn)
		done <- err
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return nil
}
