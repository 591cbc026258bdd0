package main

// session exec and session shell: a command or a terminal in a running
// session's container, through the gateway and the session's agent.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v3"
	"golang.org/x/term"

	"github.com/slurmgate/slurmgate/api/client"
)

func sessionExecCommand() *cli.Command {
	one := 1
	return &cli.Command{
		Name:      "exec",
		Usage:     "run a command in a running session and exit with its exit code",
		ArgsUsage: "SESSION [--] COMMAND [ARG...]",
		Description: `Runs COMMAND inside the session's container (its arguments are passed as
they are; use sh -c '…' for pipes), streams its stdout and stderr as it
writes them and exits with its exit code. Flags go before SESSION.

The command gets no input unless --stdin is given; then standard input is
read to its end first and sent whole (use session shell or ssh for
interactive programs). Ctrl-C ends the command.

Examples:
   slurmgate session exec 3f2a… -- nvidia-smi
   slurmgate session exec --stdin 3f2a… -- sh -c 'cat > /tmp/in.txt' < in.txt

` + exitStatusOfCommandHelp,
		StopOnNthArg: &one,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "stdin", Aliases: []string{"i"}, Usage: "send standard input (read to its end) to the command"},
			&cli.StringSliceFlag{Name: "env", Aliases: []string{"e"}, Usage: "set `VAR=value` for the command (repeatable)"},
		},
		DisableSliceFlagSeparator: true,
		Action: func(ctx context.Context, cmd *cli.Command) error {
			args := cmd.Args().Slice()
			if len(args) > 1 && args[1] == "--" {
				args = append(args[:1], args[2:]...)
			}
			if len(args) < 2 {
				return usageErrorf("session exec needs a SESSION and a COMMAND, e.g. `slurmgate session exec SESSION -- hostname`")
			}
			req := client.ExecRequest{Argv: args[1:], Env: cmd.StringSlice("env")}
			if cmd.Bool("stdin") {
				b, err := io.ReadAll(os.Stdin)
				if err != nil {
					return &cliError{code: exitError, msg: "reading standard input: " + err.Error()}
				}
				req.Stdin = string(b)
			}
			c, cfg, err := apiClient()
			if err != nil {
				return err
			}
			code, err := c.Exec(ctx, args[0], req, cmd.Root().Writer, cmd.Root().ErrWriter)
			switch {
			case ctx.Err() != nil:
				return &cliError{code: exitSignal, msg: "interrupted; the command was told to stop"}
			case err != nil && code < 0:
				return runtimeError(err, cfg.Endpoint, args[0])
			case err != nil:
				return &cliError{code: code, msg: err.Error()}
			}
			return exitWith(code)
		},
	}
}

// exitStatusOfCommandHelp documents the exit codes of commands that run
// something in a session.
const exitStatusOfCommandHelp = `Exit status:
   the command's (the shell's) own exit code, 128+N when signal N ended it;
   otherwise 1 (error), 2 (usage), 4 (not logged in), 5 (no such session),
   130 (interrupted).`

// exitWith ends the CLI with a remote command's exit code, silently: the
// command has said what it had to say.
func exitWith(code int) error {
	if code == 0 {
		return nil
	}
	return &cliError{code: code}
}

// runtimeError is apiError with the hints of a session's runtime: a
// session must be running, with its agent connected, to be reached.
func runtimeError(err error, endpoint, id string) error {
	e := apiError(err, endpoint)
	var ce *cliError
	if errors.As(e, &ce) && ce.hint == "" && ce.code == exitError {
		ce.hint = "the session must be RUNNING with its agent connected: `slurmgate session info " + id + "`"
	}
	return e
}

func sessionShellCommand() *cli.Command {
	return &cli.Command{
		Name:      "shell",
		Usage:     "open a terminal in a running session",
		ArgsUsage: "SESSION",
		Description: `Opens a login shell in the session's container on a terminal of your
terminal's size, and exits with the shell's exit code. Your terminal is in
raw mode while the shell runs (Ctrl-C, Ctrl-Z and Ctrl-D go to the shell),
follows your window's size, and is restored when the shell ends.

Without a terminal (input from a pipe) the input is typed into the shell and
end of input sends Ctrl-D.

Example:
   slurmgate session shell 3f2a…

` + exitStatusOfCommandHelp,
		Action: func(ctx context.Context, cmd *cli.Command) error {
			id, c, cfg, err := sessionClient(cmd)
			if err != nil {
				return err
			}
			in, out := int(os.Stdin.Fd()), int(os.Stdout.Fd())
			tty := term.IsTerminal(in)
			rows, cols := 24, 80
			if w, h, err := term.GetSize(out); err == nil {
				rows, cols = h, w
			}
			t, err := c.OpenTerminal(ctx, id, rows, cols)
			if err != nil {
				return runtimeError(err, cfg.Endpoint, id)
			}
			defer t.Close()
			if tty {
				old, err := term.MakeRaw(in)
				if err != nil {
					return &cliError{code: exitError, msg: "cannot put the terminal in raw mode: " + err.Error()}
				}
				defer term.Restore(in, old)
				winch := make(chan os.Signal, 1)
				signal.Notify(winch, syscall.SIGWINCH)
				defer signal.Stop(winch)
				go func() {
					for range winch {
						if w, h, err := term.GetSize(out); err == nil {
							t.Resize(h, w)
						}
					}
				}()
			}
			go func() {
				io.Copy(t, os.Stdin)
				if !tty {
					t.Write([]byte{4}) // end of input: ^D, as a terminal would send it
				}
			}()
			_, err = io.Copy(cmd.Root().Writer, t)
			if err != nil {
				if ctx.Err() != nil {
					return &cliError{code: exitSignal, msg: "interrupted; the terminal was closed"}
				}
				return &cliError{code: exitError, msg: fmt.Sprintf("the terminal of session %s broke: %v", id, err),
					hint: "check the session with `slurmgate session info " + id + "`"}
			}
			code, ok := t.ExitCode()
			if !ok {
				return &cliError{code: exitError, msg: fmt.Sprintf("the terminal of session %s closed without the shell's exit code", id)}
			}
			return exitWith(code)
		},
	}
}
