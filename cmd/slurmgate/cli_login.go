package main

// login, logout and whoami: the CLI's credentials.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/urfave/cli/v3"
	"golang.org/x/term"

	"github.com/slurmgate/slurmgate/api/client"
)

func loginCommand() *cli.Command {
	return &cli.Command{
		Name:  "login",
		Usage: "store the gateway endpoint and your API keypair in the configuration file",
		Description: `With a keypair (--access-key), checks it against the gateway and stores it
in ~/.config/slurmgate/config.toml, mode 0600. With --username, logs in with
your password (local account or LDAP, when the gateway offers it), mints a
keypair for this CLI, logs the password session out and stores the keypair.
Secrets are read from stdin (without echo on a terminal) unless given, so
they stay out of your shell history. With --browser, prints a page and a
code: open the page anywhere (it opens here when a display is set), log in
to the portal as you always do (LDAP, single sign-on or a local account),
check the code and allow; the CLI then receives a keypair of yours. This
works from a login node without a browser.

Examples:
   slurmgate login --endpoint https://gateway.example.org --username alice
   slurmgate login --endpoint https://gateway.example.org --browser
   slurmgate login --endpoint https://gateway.example.org --access-key SGAK… --secret-key -
   echo "$SECRET" | slurmgate login --endpoint http://127.0.0.1:8080 --access-key SGAK…

` + exitCodesHelp,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "endpoint", Usage: "gateway `URL`, e.g. https://gateway.example.org (default: the configured one)"},
			&cli.StringFlag{Name: "access-key", Usage: "your API access `KEY`"},
			&cli.StringFlag{Name: "secret-key", Usage: "your API secret `KEY`, or - to read it from stdin"},
			&cli.StringFlag{Name: "username", Aliases: []string{"u"}, Usage: "log in as `USER` with a password instead of a keypair"},
			&cli.BoolFlag{Name: "browser", Usage: "log in through the portal in a browser (single sign-on), here or on another device"},
			jsonFlag,
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			path, err := cliConfigPath()
			if err != nil {
				return err
			}
			cfg, err := readCLIConfig(path)
			if err != nil {
				return err
			}
			cfg.Endpoint = cmp(cmd.String("endpoint"), cfg.Endpoint)
			if cfg.Endpoint == "" {
				return usageErrorf("no endpoint: give --endpoint https://GATEWAY")
			}
			switch user := cmd.String("username"); {
			case (user != "") && cmd.String("access-key") != "",
				cmd.Bool("browser") && (user != "" || cmd.String("access-key") != ""):
				return usageErrorf("give one of --browser, --username or --access-key")
			case cmd.Bool("browser"):
				if cfg.AccessKey, cfg.SecretKey, err = keypairByBrowser(ctx, cfg.Endpoint, cmd.Root().ErrWriter); err != nil {
					return apiError(err, cfg.Endpoint)
				}
			case user != "":
				password, err := readSecret(os.Stdin, cmd.Root().ErrWriter, "password")
				if err != nil {
					return err
				}
				if cfg.AccessKey, cfg.SecretKey, err = keypairByPassword(ctx, cfg.Endpoint, user, password); err != nil {
					return apiError(err, cfg.Endpoint)
				}
			case cmd.String("access-key") != "":
				cfg.AccessKey = cmd.String("access-key")
				cfg.SecretKey = cmd.String("secret-key")
				if cfg.SecretKey == "" || cfg.SecretKey == "-" {
					if cfg.SecretKey, err = readSecret(os.Stdin, cmd.Root().ErrWriter, "secret key"); err != nil {
						return err
					}
				} else {
					warnSecretOnCommandLine(cmd.Root().ErrWriter, "login … --secret-key -")
				}
			default:
				return usageErrorf("give --browser (log in through the portal), --username (password login) or --access-key (a keypair from the portal or an admin)")
			}
			c, err := client.New(cfg.Endpoint, client.WithKeypair(cfg.AccessKey, cfg.SecretKey), client.WithUserAgent("slurmgate-cli/"+version))
			if err != nil {
				return usageErrorf("--endpoint: %v", err)
			}
			me, err := c.Me(ctx)
			if err != nil {
				return apiError(err, cfg.Endpoint)
			}
			if err := writeCLIConfig(path, cfg); err != nil {
				return fmt.Errorf("storing the credentials: %w", err)
			}
			if cmd.Bool("json") {
				return printJSON(cmd, me)
			}
			fmt.Fprintf(cmd.Root().Writer, "logged in to %s as %s (%s, domain %s); credentials stored in %s\n",
				cfg.Endpoint, me.Username, me.Role, me.Domain, path)
			return nil
		},
	}
}

// keypairByPassword logs in with a password, mints a keypair for this CLI
// and ends the password session again: the stored keypair is the CLI's only
// credential, and it can be revoked on its own.
func keypairByPassword(ctx context.Context, endpoint, user, password string) (accessKey, secretKey string, err error) {
	c, err := client.PasswordLogin(ctx, endpoint, user, password, client.WithUserAgent("slurmgate-cli/"+version))
	if err != nil {
		return "", "", err
	}
	defer c.Logout(context.WithoutCancel(ctx))
	host, _ := os.Hostname()
	kp, err := c.CreateKeypair(ctx, 0, "slurmgate CLI on "+cmp(host, "unknown host"))
	if err != nil {
		return "", "", err
	}
	return kp.AccessKey, kp.SecretKey, nil
}

// keypairByBrowser runs a device login: the gateway gives a code, the
// person approves it in the portal (logging in there however the site
// allows), and the poll then receives a keypair of theirs. The device code
// is this process's secret: it is never printed.
func keypairByBrowser(ctx context.Context, endpoint string, out io.Writer) (accessKey, secretKey string, err error) {
	c, err := client.New(endpoint, client.WithUserAgent("slurmgate-cli/"+version))
	if err != nil {
		return "", "", usageErrorf("--endpoint: %v", err)
	}
	host, _ := os.Hostname()
	d, err := c.StartDeviceLogin(ctx, "slurmgate CLI on "+cmp(host, "unknown host"))
	if err != nil {
		return "", "", err
	}
	fmt.Fprintf(out, "To log in, open %s\nand confirm the code %s (or open %s)\n", d.VerificationURI, d.UserCode, d.VerificationURIComplete)
	if os.Getenv("DISPLAY") != "" || os.Getenv("WAYLAND_DISPLAY") != "" {
		// Best effort: the printed URL works wherever xdg-open does not.
		if err := exec.Command("xdg-open", d.VerificationURIComplete).Start(); err == nil {
			fmt.Fprintln(out, "(opened in your browser)")
		}
	}
	fmt.Fprintf(out, "waiting for the approval (the code is valid for %v)…\n", time.Duration(d.ExpiresIn)*time.Second)
	ctx, cancel := context.WithTimeout(ctx, time.Duration(d.ExpiresIn)*time.Second)
	defer cancel()
	kp, err := c.WaitDeviceLogin(ctx, d)
	var p *client.Problem
	switch {
	case errors.As(err, &p) && p.Type == client.ProblemAccessDenied:
		return "", "", &cliError{code: exitAuth, msg: "the login was denied in the portal",
			hint: "run `slurmgate login --browser` again and choose Allow, logged in as the user this CLI should act as"}
	case errors.As(err, &p) && p.Type == client.ProblemExpiredToken, errors.Is(err, context.DeadlineExceeded):
		return "", "", &cliError{code: exitAuth, msg: "the login code expired before it was approved",
			hint: "run `slurmgate login --browser` again and approve within " + (time.Duration(d.ExpiresIn) * time.Second).String()}
	case err != nil:
		return "", "", err
	}
	return kp.AccessKey, kp.SecretKey, nil
}

// loginCommandHint is the login command that hints show: the secret key is
// read from stdin, since a command line is readable by every user of the
// machine (ps, /proc/PID/cmdline) and lands in shell history.
const loginCommandHint = "slurmgate login --endpoint URL --access-key AK --secret-key -"

// warnSecretOnCommandLine says, on stderr, that a secret given as an
// argument has been exposed, and how to give it instead.
func warnSecretOnCommandLine(w io.Writer, instead string) {
	fmt.Fprintf(w, "warning: a secret key on the command line is visible to every user of this machine (ps) and stays in your shell history; next time use `slurmgate %s` and type or pipe it on stdin, and revoke this keypair if others may have seen it\n", instead)
}

// readSecret reads a secret from stdin: without echo from a terminal, else
// its first line.
func readSecret(in *os.File, prompt io.Writer, what string) (string, error) {
	var secret string
	if term.IsTerminal(int(in.Fd())) {
		fmt.Fprint(prompt, what+": ")
		b, err := term.ReadPassword(int(in.Fd()))
		fmt.Fprintln(prompt)
		if err != nil {
			return "", err
		}
		secret = string(b)
	} else {
		line, err := bufio.NewReader(in).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", err
		}
		secret = line
	}
	secret = strings.TrimSpace(secret)
	if secret == "" {
		return "", usageErrorf("no %s given: type it when asked, or pipe it on stdin", what)
	}
	return secret, nil
}

func logoutCommand() *cli.Command {
	return &cli.Command{
		Name:  "logout",
		Usage: "remove the stored keypair (the keypair itself stays valid until revoked)",
		Description: `Example:
   slurmgate logout`,
		Action: func(ctx context.Context, cmd *cli.Command) error {
			path, err := cliConfigPath()
			if err != nil {
				return err
			}
			cfg, err := readCLIConfig(path)
			if err != nil {
				return err
			}
			cfg.AccessKey, cfg.SecretKey = "", ""
			if err := writeCLIConfig(path, cfg); err != nil {
				return err
			}
			fmt.Fprintf(cmd.Root().Writer, "credentials removed from %s\n", path)
			return nil
		},
	}
}

func whoamiCommand() *cli.Command {
	return &cli.Command{
		Name:  "whoami",
		Usage: "show who the stored credentials act as",
		Description: `Example:
   slurmgate whoami --json`,
		Flags: []cli.Flag{jsonFlag},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			c, cfg, err := apiClient()
			if err != nil {
				return err
			}
			me, err := c.Me(ctx)
			if err != nil {
				return apiError(err, cfg.Endpoint)
			}
			if cmd.Bool("json") {
				return printJSON(cmd, me)
			}
			fmt.Fprintf(cmd.Root().Writer, "%s (uid %d, %s, domain %s) at %s\n", me.Username, me.UID, me.Role, me.Domain, cfg.Endpoint)
			return nil
		},
	}
}
