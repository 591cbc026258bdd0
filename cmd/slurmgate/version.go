package main

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/urfave/cli/v3"

	"github.com/slurmgate/slurmgate/slurmctl"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func versionString() string {
	return fmt.Sprintf("%s (%s, %s/%s)", version, revision(), runtime.GOOS, runtime.GOARCH)
}

func revision() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return s.Value[:12]
			}
		}
	}
	return "unknown revision"
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version, build and supported Slurm REST API versions",
		Description: `Examples:
   slurmgate version
   slurmgate version --json`,
		Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print as JSON"}},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			info := struct {
				Version       string   `json:"version"`
				Revision      string   `json:"revision"`
				Go            string   `json:"go"`
				Platform      string   `json:"platform"`
				SlurmRESTAPIs []string `json:"slurm_rest_apis"`
			}{version, revision(), runtime.Version(), runtime.GOOS + "/" + runtime.GOARCH, slurmctl.SupportedAPIVersions()}
			if cmd.Bool("json") {
				enc := json.NewEncoder(cmd.Root().Writer)
				enc.SetIndent("", "  ")
				return enc.Encode(info)
			}
			fmt.Fprintf(cmd.Root().Writer, "slurmgate %s\nrevision  %s\ngo        %s\nplatform  %s\nslurm     REST API %v\n",
				info.Version, info.Revision, info.Go, info.Platform, info.SlurmRESTAPIs)
			return nil
		},
	}
}
