package main

// The CLI's own configuration: which gateway to talk to and with which
// keypair, in ~/.config/slurmgate/config.toml. It is a credential file, so it
// is written 0600 and, like ssh's keys, refused when others could read it.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/BurntSushi/toml"
	"github.com/urfave/cli/v3"

	"github.com/slurmgate/slurmgate/api/client"
)

// cliConfig is the CLI's configuration file. Every key can be overridden by
// SLURMGATE_<KEY> in the environment (SLURMGATE_ENDPOINT, …).
type cliConfig struct {
	Endpoint  string `toml:"endpoint"`
	AccessKey string `toml:"access_key"`
	SecretKey string `toml:"secret_key"`
	// Defaults for session requests, so everyday commands stay short.
	Image        string `toml:"image,omitempty"`
	Project      string `toml:"project,omitempty"`
	ScalingGroup string `toml:"scaling_group,omitempty"`
}

// cliConfigKeys are the keys `config set` accepts, in the file's order.
var cliConfigKeys = []string{"endpoint", "access_key", "secret_key", "image", "project", "scaling_group"}

// field returns the address of the field named by key.
func (c *cliConfig) field(key string) *string {
	switch key {
	case "endpoint":
		return &c.Endpoint
	case "access_key":
		return &c.AccessKey
	case "secret_key":
		return &c.SecretKey
	case "image":
		return &c.Image
	case "project":
		return &c.Project
	case "scaling_group":
		return &c.ScalingGroup
	}
	return nil
}

// cliConfigPath is where the configuration lives: $XDG_CONFIG_HOME or
// ~/.config, then slurmgate/config.toml.
func cliConfigPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("finding the configuration directory: %w (set HOME or XDG_CONFIG_HOME)", err)
	}
	return filepath.Join(dir, "slurmgate", "config.toml"), nil
}

// readCLIConfig reads the file, which may be absent (zero config). It
// refuses a file that is not the caller's or that others can read, since it
// holds a secret key.
func readCLIConfig(path string) (cliConfig, error) {
	var cfg cliConfig
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return cfg, nil
	}
	if err != nil {
		return cfg, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return cfg, err
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return cfg, usageErrorf("%s holds your secret key but is readable by others (mode %04o); run: chmod 600 %s", path, perm, path)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != os.Getuid() {
		return cfg, usageErrorf("%s belongs to uid %d, not to you (uid %d); remove it and log in again", path, sys.Uid, os.Getuid())
	}
	if _, err := toml.NewDecoder(f).Decode(&cfg); err != nil {
		return cfg, usageErrorf("%s: %v; fix the file or remove it and log in again", path, err)
	}
	return cfg, nil
}

// writeCLIConfig replaces the file atomically, 0600 in a 0700 directory.
func writeCLIConfig(path string, cfg cliConfig) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	var buf bytes.Buffer
	buf.WriteString("# slurmgate CLI configuration; it holds your secret key: keep it mode 0600.\n")
	if err := toml.NewEncoder(&buf).Encode(cfg); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".config-*.toml")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// loadCLIConfig is the file with the environment laid over it.
func loadCLIConfig() (cliConfig, string, error) {
	path, err := cliConfigPath()
	if err != nil {
		return cliConfig{}, "", err
	}
	cfg, err := readCLIConfig(path)
	if err != nil {
		return cfg, path, err
	}
	for _, k := range cliConfigKeys {
		if v, ok := os.LookupEnv("SLURMGATE_" + strings.ToUpper(k)); ok && v != "" {
			*cfg.field(k) = v
		}
	}
	return cfg, path, nil
}

// apiClient returns a client of the configured gateway with the configured
// keypair. Its HTTP client has no overall timeout, because log streams stay
// open as long as a session runs; each request is bounded by ctx instead.
func apiClient() (*client.Client, cliConfig, error) {
	cfg, _, err := loadCLIConfig()
	if err != nil {
		return nil, cfg, err
	}
	if cfg.Endpoint == "" || cfg.AccessKey == "" || cfg.SecretKey == "" {
		return nil, cfg, &cliError{code: exitAuth, msg: "not logged in: no gateway endpoint or keypair configured",
			hint: "run `" + loginCommandHint + "`, or set SLURMGATE_ENDPOINT, SLURMGATE_ACCESS_KEY and SLURMGATE_SECRET_KEY"}
	}
	c, err := client.New(cfg.Endpoint, client.WithKeypair(cfg.AccessKey, cfg.SecretKey),
		client.WithUserAgent("slurmgate-cli/"+version), client.WithHTTPClient(&http.Client{}))
	if err != nil {
		return nil, cfg, usageErrorf("endpoint: %v; fix it with `slurmgate config set endpoint URL`", err)
	}
	return c, cfg, nil
}

func configCommand() *cli.Command {
	return &cli.Command{
		Name:  "config",
		Usage: "show or change the CLI's configuration (~/.config/slurmgate/config.toml)",
		Description: `The CLI reads its gateway endpoint, keypair and defaults for new sessions
from ~/.config/slurmgate/config.toml ($XDG_CONFIG_HOME is honoured). The file
holds your secret key: it is written with mode 0600, and the CLI refuses to
read it when others can. Environment variables override the file:
SLURMGATE_ENDPOINT, SLURMGATE_ACCESS_KEY, SLURMGATE_SECRET_KEY,
SLURMGATE_IMAGE, SLURMGATE_PROJECT and SLURMGATE_SCALING_GROUP.

Keys: ` + strings.Join(cliConfigKeys, ", ") + `

Examples:
   slurmgate config show
   slurmgate config set image lab/pytorch:2.3
   slurmgate config set project acme/vision`,
		Commands: []*cli.Command{
			{
				Name:  "show",
				Usage: "print the effective configuration, secret key masked",
				Description: `Example:
   slurmgate config show --json`,
				Flags: []cli.Flag{jsonFlag},
				Action: func(ctx context.Context, cmd *cli.Command) error {
					cfg, path, err := loadCLIConfig()
					if err != nil {
						return err
					}
					if cfg.SecretKey != "" {
						cfg.SecretKey = "********"
					}
					if cmd.Bool("json") {
						return printJSON(cmd, map[string]any{"path": path, "endpoint": cfg.Endpoint, "access_key": cfg.AccessKey,
							"secret_key": cfg.SecretKey, "image": cfg.Image, "project": cfg.Project, "scaling_group": cfg.ScalingGroup})
					}
					w := cmd.Root().Writer
					fmt.Fprintf(w, "# %s\n", path)
					for _, k := range cliConfigKeys {
						fmt.Fprintf(w, "%-14s %s\n", k, *cfg.field(k))
					}
					return nil
				},
			},
			{
				Name:      "set",
				Usage:     "set one key in the configuration file",
				ArgsUsage: "KEY VALUE",
				Description: `Keys: ` + strings.Join(cliConfigKeys, ", ") + `. An empty VALUE clears the key.
For secret_key, VALUE - reads the key from stdin (a key on the command line
is visible to every user of this machine and stays in your shell history).

Examples:
   slurmgate config set scaling_group gpu
   slurmgate config set secret_key -`,
				Action: func(ctx context.Context, cmd *cli.Command) error {
					if cmd.NArg() != 2 {
						return usageErrorf("config set takes KEY VALUE, e.g. `slurmgate config set image lab/pytorch:2.3`")
					}
					key, value := cmd.Args().Get(0), cmd.Args().Get(1)
					if !slices.Contains(cliConfigKeys, key) {
						return usageErrorf("unknown key %q; want one of %s", key, strings.Join(cliConfigKeys, ", "))
					}
					path, err := cliConfigPath()
					if err != nil {
						return err
					}
					cfg, err := readCLIConfig(path)
					if err != nil {
						return err
					}
					if key == "secret_key" {
						if value == "-" {
							if value, err = readSecret(os.Stdin, cmd.Root().ErrWriter, "secret key"); err != nil {
								return err
							}
						} else if value != "" {
							warnSecretOnCommandLine(cmd.Root().ErrWriter, "config set secret_key -")
						}
					}
					if key == "endpoint" && value != "" {
						if _, err := client.New(value); err != nil {
							return usageErrorf("%v", err)
						}
					}
					*cfg.field(key) = value
					return writeCLIConfig(path, cfg)
				},
			},
			{
				Name:  "path",
				Usage: "print the configuration file's path",
				Action: func(ctx context.Context, cmd *cli.Command) error {
					path, err := cliConfigPath()
					if err == nil {
						fmt.Fprintln(cmd.Root().Writer, path)
					}
					return err
				},
			},
		},
	}
}
