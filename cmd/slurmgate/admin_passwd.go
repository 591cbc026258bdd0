package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v3"

	"github.com/slurmgate/slurmgate/bridge"
	"github.com/slurmgate/slurmgate/sso"
)

// adminPasswdCommand sets a local password: how a bootstrap superadmin
// first logs in to the portal, before any directory is wired up.
func adminPasswdCommand() *cli.Command {
	return &cli.Command{
		Name:      "passwd",
		Usage:     "set (or --remove) a user's local portal password",
		ArgsUsage: "USER",
		Description: `Stores an argon2id hash of the password; the portal's login tries local
passwords before LDAP when sso.local_accounts is true. The password is read
from --password-file, or from stdin (without echo on a terminal).

Example:
   slurmgate admin passwd --config etc/slurmgate.toml admin`,
		Flags: []cli.Flag{
			configFlag,
			&cli.StringFlag{Name: "password-file", Usage: "read the password from `FILE` (its first line)"},
			&cli.BoolFlag{Name: "remove", Usage: "remove the user's local password"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if cmd.NArg() != 1 {
				return usageErrorf("give exactly one user name")
			}
			var hash string
			if !cmd.Bool("remove") {
				var password string
				if f := cmd.String("password-file"); f != "" {
					b, err := os.ReadFile(f)
					if err != nil {
						return err
					}
					password, _, _ = strings.Cut(string(b), "\n")
				} else {
					var err error
					if password, err = readSecret(os.Stdin, cmd.Root().ErrWriter, "new password"); err != nil {
						return err
					}
				}
				var err error
				if hash, err = sso.HashPassword(password); err != nil {
					return usageErrorf("%v", err)
				}
			}
			g, err := gatewayFrom(ctx, cmd)
			if err != nil {
				return err
			}
			defer g.db.Close()
			u, err := g.bridge.UserByName(ctx, bridge.System, cmd.Args().First())
			if err != nil {
				return err
			}
			if err := g.bridge.SetLocalPassword(ctx, bridge.System, u.ID, hash); err != nil {
				return err
			}
			what := "set"
			if hash == "" {
				what = "removed"
			}
			fmt.Fprintf(cmd.Root().Writer, "local password of %s %s\n", u.Username, what)
			return nil
		},
	}
}
