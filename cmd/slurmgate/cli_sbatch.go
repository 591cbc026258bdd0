package main

// sbatch: submit an existing Slurm batch script as a batch session,
// honouring its #SBATCH directives the way sbatch does, and refusing those a
// session cannot honour rather than dropping them.

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/slurmgate/slurmgate/api/client"
	"github.com/slurmgate/slurmgate/slurmctl"
)

// sbatchFlags are the sbatch options the command line may give to override
// the script's directives, by their sbatch names.
var sbatchFlags = []struct {
	name, alias, usage string
}{
	{"account", "A", "charge `ACCOUNT`: a project as domain/project or as its Slurm account domain.project"},
	{"partition", "p", "run in `PARTITION`: a scaling group's name, or a partition that belongs to exactly one"},
	{"time", "t", "time `LIMIT`: minutes, H:M:S or D-H"},
	{"cpus-per-task", "c", "`N` CPUs"},
	{"mem", "", "memory `SIZE`, e.g. 4G"},
	{"mem-per-cpu", "", "memory per CPU, `SIZE`"},
	{"gres", "", "generic resources; only GPUs, e.g. gpu:a100:2"},
	{"gpus", "G", "GPUs as `[TYPE:]N`"},
	{"gpus-per-node", "", "GPUs as `[TYPE:]N` (one node per session)"},
	{"job-name", "J", "session `NAME`"},
	{"export", "", "environment `VAR=value,...`"},
	{"chdir", "D", "absolute working `DIRECTORY` on the node"},
}

func sbatchCommand() *cli.Command {
	one := 1
	flags := []cli.Flag{
		&cli.StringFlag{Name: "image", Aliases: []string{"i"}, Usage: "container `IMAGE` to run the script in (default: config key image)"},
		&cli.BoolFlag{Name: "parsable", Usage: "print only the session id"},
		&cli.BoolFlag{Name: "wait", Aliases: []string{"W"}, Usage: "stream the job's output and exit with its exit code"},
		mountFlag(),
	}
	for _, f := range sbatchFlags {
		sf := &cli.StringFlag{Name: f.name, Usage: f.usage}
		if f.alias != "" {
			sf.Aliases = []string{f.alias}
		}
		flags = append(flags, sf)
	}
	return &cli.Command{
		Name:      "sbatch",
		Usage:     "submit a Slurm batch script as a batch session",
		ArgsUsage: "SCRIPT [ARG...]",
		Description: `Reads the script's #SBATCH directives as sbatch does; options given on the
command line override them. They map onto the session: -A/--account is the
project (acme/vision or its Slurm account acme.vision), -p/--partition the
scaling group, --gres=gpu:TYPE:N, -G/--gpus and --gpus-per-node the GPUs,
-t the time limit, -c the CPUs, --mem or --mem-per-cpu the memory, -J the
name, --export the environment and -D the working directory. --mount
VF:/home/work/PATH[:ro] binds a vfolder into the session's container.

Directives a session cannot honour (several nodes or tasks, -o/-e: the
gateway keeps the output, --qos, --constraint, --dependency, --begin, --hold,
--exclusive, GRES other than GPUs, arrays) are refused with the line that
holds them. SCRIPT "-" reads the script from stdin.

Examples:
   slurmgate sbatch --image host train.sh
   slurmgate sbatch --image host -p gpu --gres=gpu:a100:2 -t 30 --wait train.sh --epochs 3
   id=$(slurmgate sbatch --parsable job.sh)
   slurmgate sbatch --image lab/pytorch --mount data:/home/work/data --mount ref:/home/work/ref:ro train.sh

` + exitCodesHelp,
		StopOnNthArg: &one,
		Flags:        flags,
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if cmd.NArg() == 0 {
				return usageErrorf("sbatch needs a SCRIPT (or - for stdin), e.g. `slurmgate sbatch --image host job.sh`")
			}
			path, args := cmd.Args().First(), cmd.Args().Tail()
			var raw []byte
			var err error
			if path == "-" {
				raw, err = io.ReadAll(os.Stdin)
				path = "stdin"
			} else {
				raw, err = os.ReadFile(path)
			}
			if err != nil {
				return usageErrorf("reading the batch script: %v", err)
			}
			script := string(raw)
			spec, err := slurmctl.ParseBatchScript(script)
			if err != nil {
				return usageErrorf("%s: %s", path, strings.ReplaceAll(err.Error(), "\n", "\n"+path+": "))
			}
			set := map[string]string{}
			for _, f := range sbatchFlags {
				if cmd.IsSet(f.name) {
					set[f.name] = cmd.String(f.name)
				}
			}
			if _, both := set["mem"]; both {
				if _, both = set["mem-per-cpu"]; both {
					return usageErrorf("--mem and --mem-per-cpu are mutually exclusive")
				}
			}
			for name, value := range set {
				if err := slurmctl.ApplyOption(&spec, name, value); err != nil {
					return usageErrorf("command line: %v", err)
				}
			}
			req, err := batchRequest(spec, directiveLines(script), set)
			if err != nil {
				return usageErrorf("%s: %s", path, strings.ReplaceAll(err.Error(), "\n", "\n"+path+": "))
			}
			c, cfg, err := apiClient()
			if err != nil {
				return err
			}
			if req.Mounts, err = parseMounts(cmd.StringSlice("mount")); err != nil {
				return err
			}
			req.Image = cmp(cmd.String("image"), cfg.Image)
			if req.Image == "" {
				return usageErrorf("no image: give --image (see `slurmgate image ls`) or set a default with `slurmgate config set image NAME`")
			}
			if req.Project == "" {
				req.Project = cfg.Project
			}
			if req.ScalingGroup, err = scalingGroupFor(ctx, c, spec.Partition, cfg); err != nil {
				return apiError(err, cfg.Endpoint)
			}
			req.Command = batchShell(script, args, spec.WorkDir)
			req.IdempotencyKey = newIdempotencyKey()
			s, err := c.CreateSession(ctx, req)
			if err != nil {
				return apiError(err, cfg.Endpoint)
			}
			if cmd.Bool("parsable") {
				fmt.Fprintln(cmd.Root().Writer, s.ID)
			} else {
				job := ""
				if s.JobID != nil {
					job = fmt.Sprintf(" (Slurm job %d)", *s.JobID)
				}
				fmt.Fprintf(cmd.Root().Writer, "Submitted batch session %s%s\n", s.ID, job)
			}
			if !cmd.Bool("wait") {
				return nil
			}
			return attach(ctx, cmd, c, cfg, s)
		},
	}
}

// where names the origin of an option for messages: the script line that
// set it, or the command line that overrode it.
type origins struct {
	lines   map[string]lineRef
	cmdline map[string]string
}

type lineRef struct {
	n    int
	text string
}

func (o origins) of(field string) string {
	if v, ok := o.cmdline[field]; ok {
		return "command line --" + field + "=" + v
	}
	if l, ok := o.lines[field]; ok {
		return fmt.Sprintf("line %d: %s", l.n, l.text)
	}
	return "the script"
}

// directiveLines maps what each #SBATCH line sets (by sbatch long option
// name) to that line, by parsing every directive line on its own with the
// same parser; a later line overrides an earlier one, as in sbatch.
func directiveLines(script string) map[string]lineRef {
	lines := map[string]lineRef{}
	for n, line := range strings.Split(script, "\n") {
		if n == 0 {
			continue // the #! line
		}
		if !strings.HasPrefix(line, "#SBATCH") {
			if t := strings.TrimLeft(line, " \t\v\f\r"); t != "" && t[0] != '#' {
				break // the first command ends the directives, as in sbatch
			}
			continue
		}
		one, err := slurmctl.ParseBatchScript("#!/bin/sh\n" + line + "\n")
		if err != nil {
			continue
		}
		for _, f := range specFields(one) {
			lines[f] = lineRef{n + 1, line}
		}
	}
	return lines
}

// specFields names the options a parsed spec sets.
func specFields(s slurmctl.JobSpec) []string {
	var f []string
	add := func(set bool, name string) {
		if set {
			f = append(f, name)
		}
	}
	add(s.Account != "", "account")
	add(s.Partition != "", "partition")
	add(s.QOS != "", "qos")
	add(s.Name != "", "job-name")
	add(s.Comment != "", "comment")
	add(s.Environment != nil, "export")
	add(s.Nodes != 0, "nodes")
	add(s.Tasks != 0, "ntasks")
	add(s.CPUsPerTask != 0, "cpus-per-task")
	add(s.MemoryMB != 0, "mem")
	add(s.MemoryPerCPUMB != 0, "mem-per-cpu")
	add(s.GRES != nil, "gres")
	add(s.GPUs != nil, "gpus")
	add(s.GPUsPerNode != nil, "gpus-per-node")
	add(s.TimeLimit != 0, "time")
	add(s.StdOut != "", "output")
	add(s.StdErr != "", "error")
	add(s.WorkDir != "", "chdir")
	add(s.Constraint != "", "constraint")
	add(s.Exclusive, "exclusive")
	add(s.Dependency != "", "dependency")
	add(!s.Begin.IsZero(), "begin")
	add(s.Hold, "hold")
	return f
}

// refusals say why a session cannot honour an option and what to do.
var refusals = map[string]string{
	"qos":        "a session runs in its project's QOS; remove the directive",
	"comment":    "the gateway uses the job comment to find the session's job; remove the directive",
	"output":     "the gateway keeps the job's output; read it with `slurmgate session logs`, and remove the directive",
	"error":      "the gateway keeps the job's error output; read it with `slurmgate session logs --stderr`, and remove the directive",
	"constraint": "a session's scaling group decides where it runs; choose one with -p, and remove the directive",
	"exclusive":  "a session gets the resources it asks for, not whole nodes; ask for the CPUs and memory instead",
	"dependency": "sessions cannot depend on jobs; submit this one when the other has ended (sbatch --wait)",
	"begin":      "sessions start as soon as Slurm can run them; submit later instead",
	"hold":       "sessions cannot be held; submit when it should run",
}

// batchRequest maps a parsed script onto a batch session request. It fills
// what the spec gives; the caller adds the image, the scaling group and the
// command.
func batchRequest(spec slurmctl.JobSpec, lines map[string]lineRef, cmdline map[string]string) (client.SessionRequest, error) {
	o := origins{lines: lines, cmdline: cmdline}
	var errs []error
	refuse := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", o.of(field), fmt.Sprintf(format, args...)))
	}
	for _, f := range specFields(spec) {
		if why, ok := refusals[f]; ok {
			refuse(f, "--%s cannot be honoured: %s", f, why)
		}
	}
	if spec.Nodes > 1 {
		refuse("nodes", "a session runs on one node; ask for -N 1 or remove the directive")
	}
	if spec.Tasks > 1 {
		refuse("ntasks", "a session is one task; ask for its CPUs with -c instead of -n")
	}
	if strings.Contains(spec.Partition, ",") {
		refuse("partition", "a session runs in one scaling group; give one partition")
	}
	req := client.SessionRequest{
		Type: "batch", Name: spec.Name, Project: projectPath(spec.Account), CPUs: spec.CPUsPerTask,
		MemoryMB: spec.MemoryMB, Environment: spec.Environment,
		TimeLimitS: int64(spec.TimeLimit / time.Second),
	}
	if spec.MemoryPerCPUMB > 0 {
		req.MemoryMB = spec.MemoryPerCPUMB * int64(max(spec.CPUsPerTask, 1))
	}
	// GPUs may come from --gres, --gpus or --gpus-per-node; on one node they
	// all mean the same, so they must agree.
	var gpu *slurmctl.GRES
	var gpuFrom string
	take := func(g *slurmctl.GRES, field string) {
		if g == nil {
			return
		}
		if gpu != nil && (gpu.Count != g.Count || gpu.Type != g.Type) {
			refuse(field, "asks for %d %s GPUs, but %s asks for %d %s", g.Count, orDash(g.Type), o.of(gpuFrom), gpu.Count, orDash(gpu.Type))
			return
		}
		gpu, gpuFrom = g, field
	}
	for _, g := range spec.GRES {
		if g.Name != "gpu" {
			refuse("gres", "GRES %q cannot be requested through a session; only GPUs can", g.Name)
			continue
		}
		take(&g, "gres")
	}
	take(spec.GPUs, "gpus")
	take(spec.GPUsPerNode, "gpus-per-node")
	if gpu != nil {
		req.GPUs, req.GPUType = int(gpu.Count), gpu.Type
	}
	return req, errors.Join(errs...)
}

// scalingGroupFor resolves -p: a scaling group of that name, or the one
// scaling group that holds a partition of that name; with no -p, the
// configured default.
func scalingGroupFor(ctx context.Context, c *client.Client, partition string, cfg cliConfig) (string, error) {
	if partition == "" {
		if cfg.ScalingGroup == "" {
			return "", usageErrorf("no scaling group: give -p/--partition (see `slurmgate scaling-group ls`) or set a default with `slurmgate config set scaling_group NAME`")
		}
		return cfg.ScalingGroup, nil
	}
	sgs, err := c.ScalingGroups(ctx)
	if err != nil {
		return "", err
	}
	var holders []string
	for _, sg := range sgs {
		if sg.Name == partition {
			return sg.Name, nil
		}
		for _, p := range sg.Partitions {
			if p == partition {
				holders = append(holders, sg.Name)
			}
		}
	}
	switch len(holders) {
	case 1:
		return holders[0], nil
	case 0:
		return "", usageErrorf("partition %q is no scaling group and in none; see `slurmgate scaling-group ls`", partition)
	}
	return "", usageErrorf("partition %q is in several scaling groups (%s); give one of them with -p", partition, strings.Join(holders, ", "))
}

// batchShell is the session command that runs the script as sbatch would:
// written to a file and executed, so that its #! interpreter runs it and its
// arguments reach it, from the working directory -D named.
func batchShell(script string, args []string, workDir string) string {
	delim := "SLURMGATE_SCRIPT_" + rand.Text()
	for strings.Contains(script, delim) {
		delim = "SLURMGATE_SCRIPT_" + rand.Text()
	}
	if !strings.HasSuffix(script, "\n") {
		script += "\n"
	}
	var b strings.Builder
	b.WriteString(`f=$(mktemp "${TMPDIR:-/tmp}/slurmgate-batch.XXXXXX") || exit 125` + "\n")
	b.WriteString(`trap 'rm -f "$f"' EXIT` + "\n")
	fmt.Fprintf(&b, "cat >\"$f\" <<'%s'\n%s%s\n", delim, script, delim)
	b.WriteString(`chmod 700 "$f" || exit 125` + "\n")
	if workDir != "" {
		fmt.Fprintf(&b, "cd %s || exit 125\n", shellQuote(workDir))
	}
	b.WriteString(`"$f"`)
	if len(args) > 0 {
		b.WriteString(" " + shellJoin(args))
	}
	b.WriteString("\nexit $?\n")
	return b.String()
}
