package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v3"

	"github.com/slurmgate/slurmgate/apptainer/agent"
)

// agentCommand is `slurmgate agent`: the first step of every session's job.
// It runs as the researcher, reads the configuration the gateway wrote and
// exits with the batch command's status.
func agentCommand() *cli.Command {
	return &cli.Command{
		Name:  "agent",
		Usage: "run a session inside its Slurm job (started by the job script, not by hand)",
		Description: `The agent dials the gateway, starts the session's container and services,
serves terminals and app traffic through the tunnel, and stops everything on
SIGTERM (scancel, time limit). FILE is written by the gateway and must be
readable by its owner only (mode 0600): it holds the session's secret.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Usage: "agent configuration `FILE` (JSON, mode 0600)", Required: true},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			cfg, err := agent.Load(cmd.String("config"))
			if err != nil {
				return err
			}
			// Slurm sends SIGTERM on scancel and at the time limit, then
			// SIGKILL after KillWait: name the signal as the reason.
			ctx, cancel := context.WithCancelCause(ctx)
			defer cancel(nil)
			sigs := make(chan os.Signal, 1)
			signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
			defer signal.Stop(sigs)
			go func() {
				select {
				case s := <-sigs:
					cancel(fmt.Errorf("received %v (scancel, time limit or node shutdown)", s))
				case <-ctx.Done():
				}
			}()
			logTo := os.Stderr
			if cfg.LogFile != "" {
				// The session's stderr stays the researcher's; errors that
				// end the agent still reach it through the return below.
				if f, err := os.OpenFile(cfg.LogFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600); err == nil {
					defer f.Close()
					logTo = f
				} else {
					fmt.Fprintf(os.Stderr, "slurmgate agent: logging to stderr: %v\n", err)
				}
			}
			a, err := agent.New(cfg, agent.Options{
				Logger:  slog.New(slog.NewTextHandler(logTo, nil)),
				Version: versionString(),
			})
			if err != nil {
				return err
			}
			code, err := a.Run(ctx)
			if err != nil {
				return err
			}
			if code != 0 {
				// The job's exit status is the batch command's; the
				// command's own stderr already says what went wrong, and a
				// line of ours would land in the user's output file.
				return cli.Exit("", code)
			}
			return nil
		},
	}
}
