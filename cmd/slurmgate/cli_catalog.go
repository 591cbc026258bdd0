package main

// The catalogue as a researcher reads it: images, presets, scaling groups.

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/slurmgate/slurmgate/api/client"
	"github.com/slurmgate/slurmgate/slurmctl"
)

func imageCommand() *cli.Command {
	return &cli.Command{
		Name:  "image",
		Usage: "list and inspect the container images sessions can run",
		Description: `Examples:
   slurmgate image ls
   slurmgate image inspect lab/pytorch:2.3 --json`,
		Commands: []*cli.Command{
			{
				Name:    "ls",
				Aliases: []string{"list"},
				Usage:   "list the image catalogue",
				Description: `Example:
   slurmgate image ls --json`,
				Flags: []cli.Flag{jsonFlag},
				Action: func(ctx context.Context, cmd *cli.Command) error {
					return listAndPrint(ctx, cmd, (*client.Client).Images, []string{"IMAGE", "RUNTIME", "LOCATION", "CREATED"},
						func(i client.Image) []string {
							return []string{i.Name + ":" + i.Tag, orDash(i.Runtime), i.Location, age(i.CreatedAt, time.Now())}
						})
				},
			},
			{
				Name:      "inspect",
				Usage:     "show one image and its labels",
				ArgsUsage: "NAME[:TAG]",
				Description: `Example:
   slurmgate image inspect host`,
				Flags: []cli.Flag{jsonFlag},
				Action: func(ctx context.Context, cmd *cli.Command) error {
					if cmd.NArg() != 1 {
						return usageErrorf("image inspect takes one NAME[:TAG] (see `slurmgate image ls`)")
					}
					c, cfg, err := apiClient()
					if err != nil {
						return err
					}
					img, err := c.Image(ctx, cmd.Args().First())
					if err != nil {
						return apiError(err, cfg.Endpoint)
					}
					if cmd.Bool("json") {
						return printJSON(cmd, img)
					}
					w := cmd.Root().Writer
					fmt.Fprintf(w, "%-10s %s:%s\n%-10s %s\n%-10s %s\n", "image", img.Name, img.Tag, "runtime", orDash(img.Runtime), "location", img.Location)
					for _, k := range slices.Sorted(maps.Keys(img.Labels)) {
						fmt.Fprintf(w, "%-10s %s=%s\n", "label", k, img.Labels[k])
					}
					return nil
				},
			},
		},
	}
}

func presetCommand() *cli.Command {
	return &cli.Command{
		Name:  "preset",
		Usage: "list the resource presets",
		Description: `Example:
   slurmgate preset ls`,
		Commands: []*cli.Command{{
			Name:    "ls",
			Aliases: []string{"list"},
			Usage:   "list the resource presets",
			Description: `Example:
   slurmgate preset ls --json`,
			Flags: []cli.Flag{jsonFlag},
			Action: func(ctx context.Context, cmd *cli.Command) error {
				return listAndPrint(ctx, cmd, (*client.Client).Presets, []string{"PRESET", "CPUS", "MEM", "GPUS", "TIME", "DESCRIPTION"},
					func(p client.Preset) []string {
						t := "-"
						if p.TimeLimitS != nil {
							t = slurmctl.FormatTimeLimit(time.Duration(*p.TimeLimitS) * time.Second)
						}
						return []string{p.Name, fmt.Sprint(p.CPUs), formatMemory(p.MemoryMB), formatGPUs(p.GPUs, p.GPUType), t, p.Description}
					})
			},
		}},
	}
}

func scalingGroupCommand() *cli.Command {
	return &cli.Command{
		Name:  "scaling-group",
		Usage: "list the scaling groups (the partitions sessions run in)",
		Description: `Example:
   slurmgate scaling-group ls`,
		Commands: []*cli.Command{{
			Name:    "ls",
			Aliases: []string{"list"},
			Usage:   "list the scaling groups",
			Description: `Example:
   slurmgate scaling-group ls --json`,
			Flags: []cli.Flag{jsonFlag},
			Action: func(ctx context.Context, cmd *cli.Command) error {
				return listAndPrint(ctx, cmd, (*client.Client).ScalingGroups, []string{"GROUP", "PARTITIONS", "GPU TYPES", "RUNTIME", "DESCRIPTION"},
					func(sg client.ScalingGroup) []string {
						return []string{sg.Name, strings.Join(sg.Partitions, ","), orDash(strings.Join(sg.GPUTypes, ",")), orDash(sg.Runtime), sg.Description}
					})
			},
		}},
	}
}

// listAndPrint runs a list call and prints it as JSON (an array, never
// null) or as a table.
func listAndPrint[T any](ctx context.Context, cmd *cli.Command, list func(*client.Client, context.Context) ([]T, error), header []string, row func(T) []string) error {
	c, cfg, err := apiClient()
	if err != nil {
		return err
	}
	items, err := list(c, ctx)
	if err != nil {
		return apiError(err, cfg.Endpoint)
	}
	if items == nil {
		items = []T{}
	}
	if cmd.Bool("json") {
		return printJSON(cmd, items)
	}
	rows := make([][]string, len(items))
	for i, it := range items {
		rows[i] = row(it)
	}
	return table(cmd.Root().Writer, header, rows)
}
