// Command slurmgate is the one binary of Slurmgate: the gateway server, the
// in-job session agent and the researcher's CLI. This file wires the command
// tree; the logic lives in the packages it calls.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v3"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newApp().Run(ctx, os.Args)
	stop()
	if err != nil {
		// An empty message is a remote command's exit code passed on
		// (session exec, shell, ssh): it has spoken for itself.
		if msg := err.Error(); msg != "" {
			fmt.Fprintln(os.Stderr, "slurmgate:", msg)
		}
		os.Exit(exitCode(err))
	}
}

func newApp() *cli.Command {
	app := &cli.Command{
		Name:    "slurmgate",
		Usage:   "compute sessions on a Slurm cluster: gateway, in-job agent and CLI",
		Version: versionString(),
		Description: `Slurmgate runs interactive and batch compute sessions as Slurm jobs, submitted
as your own POSIX user, and reaches their apps (Jupyter, terminals, any port)
through the gateway without an inbound port on the compute node.

Examples (researchers):
   slurmgate login --endpoint https://gw.example.org --username alice
   slurmgate run --image busybox -- hostname          a batch session; its exit code is yours
   slurmgate sbatch --wait train.sh                   #SBATCH directives honoured, output streamed
   slurmgate session create --image jupyter --gpus 2  an interactive session; waits and prints its apps
   slurmgate app forward SESSION jupyter 8888         the app on localhost:8888
   slurmgate ssh SESSION                              OpenSSH into the session (scp, sftp too)
   slurmgate vfolder upload -r results data:runs/     resumable, with a progress bar
Examples (operators):
   slurmgate server --config /etc/slurmgate.toml      the gateway
   slurmgate admin sync --plan                        what Slurm's accounts lack (exit 3 on drift)
   slurmgate admin project create lab/vision --gid 5001

Every read command takes --json. Exit codes: 0 ok, 1 error, 2 usage, 3 refused
(quota or permission), 4 not logged in, 5 not found; run and sbatch --wait exit
with the job's own code. Each command's --help has more.`,
		EnableShellCompletion: true,
		// main turns errors into messages and exit codes; the library must
		// not exit the process itself (tests run the command tree in-process).
		ExitErrHandler: func(context.Context, *cli.Command, error) {},
		Commands: []*cli.Command{
			versionCommand(),
			serverCommand(),
			adminCommand(),
			agentCommand(),
		},
	}
	addClientCommands(app)
	markUsageErrors(app)
	return app
}

// markUsageErrors makes a bad flag or argument anywhere in the tree exit
// with status 2, as Slurm's tools and the shell convention do.
func markUsageErrors(cmd *cli.Command) {
	cmd.OnUsageError = func(_ context.Context, _ *cli.Command, err error, _ bool) error {
		return cli.Exit(err.Error()+"\n(see --help)", 2)
	}
	for _, sub := range cmd.Commands {
		markUsageErrors(sub)
	}
}

// exitCode maps an error to the process exit status: 2 for usage errors, as
// the shell convention and Slurm's own tools do, 1 for everything else.
func exitCode(err error) int {
	if ec, ok := err.(cli.ExitCoder); ok {
		return ec.ExitCode()
	}
	return 1
}
