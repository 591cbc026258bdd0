package main

import (
	"strings"

	"github.com/urfave/cli/v3"
)

// addClientCommands adds the researcher's and admin's client commands (the
// cli_*.go files: REST API clients) to the tree, and makes shell completion
// a visible command.
func addClientCommands(app *cli.Command) {
	app.Commands = append(app.Commands,
		loginCommand(), logoutCommand(), whoamiCommand(), configCommand(),
		runCommand(), sbatchCommand(), sessionCommand(),
		imageCommand(), presetCommand(), scalingGroupCommand(), usageCommand(),
		vfolderCommand(),
		appCommand(), sshCommand(),
	)
	// session exec and shell live in cli_exec.go, beside the other runtime
	// commands.
	for _, c := range app.Commands {
		if c.Name == "session" {
			c.Commands = append(c.Commands, sessionExecCommand(), sessionShellCommand())
		}
	}
	addAdminRESTCommands(app)
	app.ConfigureShellCompletionCommand = func(c *cli.Command) {
		c.Hidden = false
		c.Usage = "print a shell completion script for bash or zsh (also fish, pwsh)"
		c.Description = strings.TrimSpace(`
Prints a script that completes slurmgate's commands, subcommands and flags;
it asks slurmgate itself, so it stays right as the CLI changes.

Examples:
   source <(slurmgate completion bash)     # in ~/.bashrc
   source <(slurmgate completion zsh)      # in ~/.zshrc`)
	}
}
