package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/urfave/cli/v3"
)

// exitDrift is the exit status of `admin sync --plan` when Slurm differs
// from the desired state.
const exitDrift = 3

// adminCommand holds the administrator's commands that run on the gateway
// host against its database and Slurm directly, with the server's
// configuration.
func adminCommand() *cli.Command {
	return &cli.Command{
		Name:  "admin",
		Usage: "administer the gateway from its own host (uses the server's configuration)",
		Commands: []*cli.Command{
			adminPasswdCommand(),
			{
				Name:  "bootstrap",
				Usage: "create the first superadmin and print their API keypair (once)",
				Description: `Creates the domain "default" if there is none, the first superadmin in it,
and a keypair for them. Refuses if a superadmin exists already.

Example:
   slurmgate admin bootstrap --config etc/slurmgate.toml --username admin --uid 1000`,
				Flags: []cli.Flag{
					configFlag,
					&cli.StringFlag{Name: "username", Required: true, Usage: "POSIX `USER` of the superadmin"},
					&cli.IntFlag{Name: "uid", Required: true, Usage: "their POSIX `UID`"},
					&cli.StringFlag{Name: "email", Usage: "their e-mail `ADDRESS`"},
					&cli.BoolFlag{Name: "json", Usage: "print as JSON"},
				},
				Action: func(ctx context.Context, cmd *cli.Command) error {
					g, err := gatewayFrom(ctx, cmd)
					if err != nil {
						return err
					}
					defer g.db.Close()
					actor, ak, sk, err := g.bridge.Bootstrap(ctx, cmd.String("username"), int(cmd.Int("uid")), cmd.String("email"))
					if err != nil {
						return err
					}
					out := map[string]any{"username": actor.Username, "access_key": ak, "secret_key": sk}
					if cmd.Bool("json") {
						return json.NewEncoder(cmd.Root().Writer).Encode(out)
					}
					fmt.Fprintf(cmd.Root().Writer, "superadmin %s created\naccess key  %s\nsecret key  %s\n(the secret key is shown only now)\n", actor.Username, ak, sk)
					return nil
				},
			},
			{
				Name:  "sync",
				Usage: "show or repair drift between Slurmgate's organisations and Slurm's accounts",
				Description: `--plan (the default) prints what differs between the desired state (domains,
projects, members, policies) and slurmdbd; --apply repairs it. Only accounts
whose Organization is the configured managed_organization are ever changed.

Exit status: 0 when Slurm matches (or --apply repaired everything), 3 when
--plan found drift or a conflict (so a cron job or monitoring check can alert
on it), 1 when something failed, 2 on a usage error.

Examples:
   slurmgate admin sync --plan
   slurmgate admin sync --apply --json`,
				Flags: []cli.Flag{
					configFlag,
					&cli.BoolFlag{Name: "plan", Usage: "print the drift and change nothing (default)"},
					&cli.BoolFlag{Name: "apply", Usage: "apply the plan"},
					&cli.BoolFlag{Name: "json", Usage: "print as JSON"},
				},
				Action: func(ctx context.Context, cmd *cli.Command) error {
					if cmd.Bool("plan") && cmd.Bool("apply") {
						return cli.Exit("choose one of --plan and --apply", 2)
					}
					g, err := gatewayFrom(ctx, cmd)
					if err != nil {
						return err
					}
					defer g.db.Close()
					sync := g.bridge.NewAccountSync()
					plan, err := sync.Plan(ctx)
					if err != nil {
						return err
					}
					w := cmd.Root().Writer
					if !cmd.Bool("apply") {
						clean := plan.Empty() && len(plan.Conflicts) == 0
						if cmd.Bool("json") {
							if err := json.NewEncoder(w).Encode(plan); err != nil {
								return err
							}
						} else if clean {
							fmt.Fprintln(w, "no drift: Slurm matches the desired state")
						}
						if clean {
							return nil
						}
						if !cmd.Bool("json") {
							for _, c := range plan.Changes {
								fmt.Fprintln(w, c.String())
							}
							for _, c := range plan.Conflicts {
								fmt.Fprintf(w, "conflict: %s: %s\n", c.Account, c.Reason)
							}
						}
						return cli.Exit(fmt.Sprintf("drift: %d changes, %d conflicts; `slurmgate admin sync --apply` repairs the changes, conflicts need a person",
							len(plan.Changes), len(plan.Conflicts)), exitDrift)
					}
					res, err := sync.Apply(ctx, plan)
					if cmd.Bool("json") {
						json.NewEncoder(w).Encode(res)
					} else {
						for _, c := range plan.Changes {
							fmt.Fprintln(w, c.String())
						}
						fmt.Fprintf(w, "%d of %d changes applied\n", res.Applied, len(plan.Changes))
						for _, f := range res.Failed {
							fmt.Fprintf(w, "failed: %s: %v\n", f.Change.String(), f.Err)
						}
					}
					return err
				},
			},
		},
	}
}

func gatewayFrom(ctx context.Context, cmd *cli.Command) (*gateway, error) {
	cfg, err := loadConfig(cmd.String("config"), os.Environ())
	if err != nil {
		return nil, cli.Exit(err.Error(), 2)
	}
	return openGateway(ctx, cfg, cmd.Root().ErrWriter)
}
