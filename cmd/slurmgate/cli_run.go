package main

// run: a batch session whose output streams to the terminal and whose exit
// code is the command's, like srun.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v3"

	"github.com/slurmgate/slurmgate/api/client"
)

func runCommand() *cli.Command {
	one := 1
	return &cli.Command{
		Name:      "run",
		Usage:     "run a command in a batch session, stream its output and exit with its exit code",
		ArgsUsage: "[--] COMMAND [ARG...]",
		Description: `Creates a batch session that runs COMMAND (its arguments are passed as they
are; use sh -c '…' for pipes and redirections), waits while Slurm queues it,
streams the job's stdout and stderr as it writes them, and exits with the
command's exit code. Flags end at COMMAND, so its own flags need no "--".

Ctrl-C asks whether to cancel the session when stdin is a terminal (answer n
to keep following it), and cancels it otherwise, as does SIGTERM.

Examples:
   slurmgate run --image host -p cpu -- sh -c 'echo out; exit 3'
   slurmgate run --image lab/pytorch:2.3 -p gpu --gpus a100:1 --mem 16G -t 2:00:00 python train.py --lr 3e-4
   slurmgate run --image lab/pytorch:2.3 -p gpu --mount data:/home/work/data --mount ref:ro python /home/work/data/train.py

` + exitCodesHelp,
		DisableSliceFlagSeparator: true,
		StopOnNthArg:              &one,
		Flags:                     sessionFlags(),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			args := cmd.Args().Slice()
			if len(args) > 0 && args[0] == "--" {
				args = args[1:]
			}
			if len(args) == 0 {
				return usageErrorf("run needs a COMMAND, e.g. `slurmgate run --image host -p cpu -- hostname`")
			}
			c, cfg, err := apiClient()
			if err != nil {
				return err
			}
			req, err := requestFromFlags(cmd, cfg, "batch")
			if err != nil {
				return err
			}
			req.Command = shellJoin(args)
			req.IdempotencyKey = newIdempotencyKey()
			s, err := c.CreateSession(ctx, req)
			if err != nil {
				return apiError(err, cfg.Endpoint)
			}
			return attach(ctx, cmd, c, cfg, s)
		},
	}
}

// attach waits for a batch session to start, streams its output and returns
// its exit status. The root context ends at the first Ctrl-C, but the
// session outlives it, so the streams run on a context of their own and the
// signals are handled here.
func attach(ctx context.Context, cmd *cli.Command, c *client.Client, cfg cliConfig, s *client.Session) error {
	out, errw := cmd.Root().Writer, cmd.Root().ErrWriter
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	sctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()

	quiet := true
	if f, ok := errw.(*os.File); ok && isTerminal(f) {
		quiet = false
	}
	type result struct {
		s   *client.Session
		err error
	}
	done := make(chan result, 1)
	go func() {
		cur, err := waitWhilePending(sctx, c, s, errw, quiet)
		if err == nil {
			// Even when the session has ended already: a short job may go
			// from PENDING to TERMINATED between two polls.
			cur, err = followLogs(sctx, c, s.ID, out, errw)
		}
		done <- result{cur, err}
	}()
	cancelling := false
	for {
		select {
		case r := <-done:
			switch {
			case r.err != nil:
				return apiError(r.err, cfg.Endpoint)
			case cancelling:
				return &cliError{code: exitSignal, msg: fmt.Sprintf("session %s cancelled: %s", shortID(s.ID), r.s.StatusMessage)}
			}
			return sessionExit(r.s)
		case sig := <-sigs:
			if cancelling {
				return &cliError{code: exitSignal, msg: fmt.Sprintf("stopped waiting; session %s is being cancelled", s.ID),
					hint: "check with `slurmgate session info " + s.ID + "`"}
			}
			if sig == os.Interrupt && isTerminal(os.Stdin) && !confirm(os.Stdin, errw, fmt.Sprintf("\ncancel session %s? [y/N] ", shortID(s.ID))) {
				fmt.Fprintf(errw, "session %s keeps running; following its output (Ctrl-C to be asked again)\n", shortID(s.ID))
				continue
			}
			fmt.Fprintf(errw, "cancelling session %s …\n", s.ID)
			if _, err := c.DestroySession(sctx, s.ID); err != nil {
				return apiError(err, cfg.Endpoint)
			}
			cancelling = true
		}
	}
}

// confirm asks a yes/no question; anything but y or yes is no.
func confirm(in io.Reader, out io.Writer, question string) bool {
	fmt.Fprint(out, question)
	line, _ := bufio.NewReader(in).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true
	}
	return false
}

// shellJoin quotes args for bash -c so that each reaches the command as it
// was given.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}

func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.,/:=+@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
