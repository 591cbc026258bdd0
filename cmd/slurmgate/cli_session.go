package main

// session create|ls|info|events|logs|rm, and the waiting and log following
// that run and sbatch share.

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v3"

	"github.com/slurmgate/slurmgate/api/client"
	"github.com/slurmgate/slurmgate/slurmctl"
)

// pollInterval is how often the CLI asks for a session's state while it
// waits; the gateway's reconciler ticks every few seconds anyway.
const pollInterval = time.Second

// sessionFlags are the resource and placement flags of session create and
// run. Their names follow sbatch where sbatch has one.
func sessionFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "image", Aliases: []string{"i"}, Usage: "container `IMAGE` from the catalogue, name[:tag] (default: config key image)"},
		&cli.StringFlag{Name: "project", Aliases: []string{"A", "account"}, Usage: "`DOMAIN/PROJECT` to charge (default: config key project, else your only project)"},
		&cli.StringFlag{Name: "scaling-group", Aliases: []string{"p", "partition"}, Usage: "scaling `GROUP` to run in (default: config key scaling_group)"},
		&cli.StringFlag{Name: "preset", Usage: "resource `PRESET` (see `slurmgate preset ls`); explicit flags override it"},
		&cli.IntFlag{Name: "cpus", Aliases: []string{"c"}, Usage: "`N` CPUs"},
		&cli.StringFlag{Name: "mem", Usage: "memory `SIZE`, e.g. 4096 or 4G (default unit M)"},
		&cli.StringFlag{Name: "gpus", Aliases: []string{"G"}, Usage: "GPUs as `[TYPE:]N`, e.g. 2 or a100:2"},
		&cli.StringFlag{Name: "time", Aliases: []string{"t"}, Usage: "time `LIMIT` as Slurm writes it: minutes, H:M:S or D-H"},
		&cli.StringFlag{Name: "name", Aliases: []string{"J"}, Usage: "session `NAME`"},
		&cli.StringSliceFlag{Name: "env", Aliases: []string{"e"}, Usage: "set `VAR=value` in the session (repeatable)"},
		&cli.DurationFlag{Name: "max-wait", Usage: "cancel the session if it has not started after `DURATION`, e.g. 30m"},
		mountFlag(),
	}
}

// mountFlag is --mount of session create, run and sbatch.
func mountFlag() cli.Flag {
	return &cli.StringSliceFlag{Name: "mount",
		Usage: "mount vfolder `VF[:/home/work/PATH][:ro]` (by name or id; default path /home/work/VF; repeatable)"}
}

// parseMounts reads --mount values: VF, VF:ro, VF:/home/work/PATH or
// VF:/home/work/PATH:ro. The gateway checks the rest (that the folder is
// yours to use so, that the path lies under /home/work).
func parseMounts(vals []string) ([]client.Mount, error) {
	var out []client.Mount
	for _, v := range vals {
		parts := strings.Split(v, ":")
		m := client.Mount{VFolder: parts[0]}
		rest := parts[1:]
		if n := len(rest); n > 0 && (rest[n-1] == "ro" || rest[n-1] == "rw") {
			m.ReadOnly, rest = rest[n-1] == "ro", rest[:n-1]
		}
		if len(rest) == 1 && strings.HasPrefix(rest[0], "/") {
			m.Target, rest = rest[0], nil
		}
		if m.VFolder == "" || len(rest) > 0 {
			return nil, usageErrorf("--mount %q: want VF[:/home/work/PATH][:ro], e.g. data:/home/work/data:ro", v)
		}
		out = append(out, m)
	}
	return out, nil
}

// requestFromFlags builds a session request from sessionFlags and the
// configured defaults.
func requestFromFlags(cmd *cli.Command, cfg cliConfig, typ string) (client.SessionRequest, error) {
	req := client.SessionRequest{
		Type: typ, Name: cmd.String("name"), Preset: cmd.String("preset"),
		Image:        cmp(cmd.String("image"), cfg.Image),
		Project:      projectPath(cmp(cmd.String("project"), cfg.Project)),
		ScalingGroup: cmp(cmd.String("scaling-group"), cfg.ScalingGroup),
		CPUs:         cmd.Int("cpus"),
		MaxWaitS:     int64(cmd.Duration("max-wait") / time.Second),
	}
	if req.Image == "" {
		return req, usageErrorf("no image: give --image (see `slurmgate image ls`) or set a default with `slurmgate config set image NAME`")
	}
	if req.ScalingGroup == "" {
		return req, usageErrorf("no scaling group: give --scaling-group/-p (see `slurmgate scaling-group ls`) or set a default with `slurmgate config set scaling_group NAME`")
	}
	if v := cmd.String("mem"); v != "" {
		mb, err := slurmctl.ParseMemoryMB(v)
		if err != nil || mb <= 0 {
			return req, usageErrorf("--mem %q: want a size such as 4096 or 4G", v)
		}
		req.MemoryMB = mb
	}
	if v := cmd.String("gpus"); v != "" {
		typ, count, typed := strings.Cut(v, ":")
		if !typed {
			typ, count = "", v
		}
		n, err := strconv.Atoi(count)
		if err != nil || n < 1 {
			return req, usageErrorf("--gpus %q: want [TYPE:]N, e.g. 2 or a100:2", v)
		}
		req.GPUs, req.GPUType = n, typ
	}
	if v := cmd.String("time"); v != "" {
		d, err := slurmctl.ParseTimeLimit(v)
		if err != nil {
			return req, usageErrorf("--time %q: %v", v, err)
		}
		req.TimeLimitS = int64(d / time.Second) // 0 (UNLIMITED): the gateway's default
	}
	mounts, err := parseMounts(cmd.StringSlice("mount"))
	if err != nil {
		return req, err
	}
	req.Mounts = mounts
	for _, kv := range cmd.StringSlice("env") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return req, usageErrorf("--env %q: want VAR=value", kv)
		}
		if req.Environment == nil {
			req.Environment = map[string]string{}
		}
		req.Environment[k] = v
	}
	return req, nil
}

// projectPath accepts a project as the API names it ("acme/vision") or as
// Slurm names its account ("acme.vision"), so that #SBATCH -A works.
func projectPath(p string) string {
	if p == "" || strings.Contains(p, "/") {
		return p
	}
	domain, project, ok := strings.Cut(p, ".")
	if !ok {
		return p
	}
	return domain + "/" + project
}

func cmp(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// live reports whether a session has not ended.
func live(state string) bool {
	switch state {
	case "TERMINATED", "ERROR", "CANCELLED":
		return false
	}
	return true
}

// pendingLine is a pending session's status in words: the reason, the
// queue position and the estimated start, all from the session resource.
func pendingLine(s *client.Session) string {
	parts := []string{s.State}
	if s.StatusMessage != "" {
		parts = append(parts, s.StatusMessage)
	}
	if s.QueuePosition != nil {
		parts = append(parts, fmt.Sprintf("position %d in the queue", *s.QueuePosition))
	}
	if s.EstimatedStart != nil {
		parts = append(parts, "estimated start "+s.EstimatedStart.Local().Format("Jan 2 15:04"))
	}
	return strings.Join(parts, "; ")
}

// waitWhilePending polls the session until it has started: past PENDING
// (Slurm queues it) and PREPARING (the container and its services start),
// showing why it waits as a spinner line when errw is a terminal, or one
// line per change otherwise (quiet suppresses those).
func waitWhilePending(ctx context.Context, c *client.Client, s *client.Session, errw io.Writer, quiet bool) (*client.Session, error) {
	var bar *progressbar.ProgressBar
	if f, ok := errw.(*os.File); ok && isTerminal(f) {
		bar = progressbar.NewOptions(-1, progressbar.OptionSetWriter(errw), progressbar.OptionSpinnerType(14),
			progressbar.OptionEnableColorCodes(false), progressbar.OptionClearOnFinish(), progressbar.OptionSetElapsedTime(true))
		defer bar.Finish()
	}
	last := ""
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for s.State == "PENDING" || s.State == "PREPARING" {
		line := pendingLine(s)
		switch {
		case bar != nil:
			bar.Describe(line)
			bar.Add(1)
		case !quiet && line != last:
			fmt.Fprintln(errw, line)
		}
		last = line
		select {
		case <-ctx.Done():
			return s, ctx.Err()
		case <-tick.C:
		}
		next, err := c.Session(ctx, s.ID)
		if err != nil {
			return s, err
		}
		s = next
	}
	return s, nil
}

// followLogs copies the session's stdout and stderr to out and errw until
// the session ends, then returns it as it ended.
func followLogs(ctx context.Context, c *client.Client, id string, out, errw io.Writer) (*client.Session, error) {
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, stream := range []struct {
		name string
		w    io.Writer
	}{{"stdout", out}, {"stderr", errw}} {
		wg.Go(func() {
			errs[i] = c.SessionLog(ctx, id, client.LogOptions{Stream: stream.name, Follow: true}, stream.w)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	// The log ends when the gateway has seen the job end; the state may
	// trail by one reconciler tick.
	for {
		s, err := c.Session(ctx, id)
		if err != nil || !live(s.State) || s.State == "TERMINATING" && s.ExitCode != nil {
			return s, err
		}
		select {
		case <-ctx.Done():
			return s, ctx.Err()
		case <-time.After(pollInterval):
		}
	}
}

// sessionExit is the exit status run and sbatch --wait end with: the job's
// own, or exitNoResult when it has none (cancelled before it started,
// refused by Slurm, killed by a signal or at its time limit).
func sessionExit(s *client.Session) error {
	switch {
	case s.ExitCode != nil && *s.ExitCode != 0:
		return &cliError{code: *s.ExitCode, msg: fmt.Sprintf("session %s: %s", shortID(s.ID), s.StatusMessage)}
	case s.ExitCode != nil && s.SlurmState == "COMPLETED":
		return nil
	}
	return &cliError{code: exitNoResult, msg: fmt.Sprintf("session %s ended %s without an exit code of its own: %s", shortID(s.ID), s.State, s.StatusMessage),
		hint: "see `slurmgate session events " + s.ID + "`"}
}

// newIdempotencyKey makes a create safe to retry: the gateway answers a
// repeated key with the session it already made.
func newIdempotencyKey() string { return "cli-" + rand.Text() }

func sessionCommand() *cli.Command {
	return &cli.Command{
		Name:  "session",
		Usage: "create, list, inspect and remove compute sessions",
		Description: `A session is one Slurm job, submitted as you, running a container image.

Examples:
   slurmgate session create --image lab/pytorch:2.3 -p gpu --gpus a100:1 -t 4:00:00
   slurmgate session ls --state RUNNING --json
   slurmgate session logs -f 3f2a…

` + exitCodesHelp,
		Commands: []*cli.Command{
			sessionCreateCommand(), sessionListCommand(), sessionInfoCommand(),
			sessionEventsCommand(), sessionLogsCommand(), sessionRemoveCommand(),
		},
	}
}

func sessionCreateCommand() *cli.Command {
	return &cli.Command{
		Name:  "create",
		Usage: "create an interactive (default) or batch session and wait until it runs",
		Description: `Submits the session's job, shows why it waits while it is PENDING (Slurm's
reason in words, the queue position, the estimated start) and prints the
session once it runs, with the URLs of its apps (Jupyter, …). --no-wait
returns right after the submission.

Examples:
   slurmgate session create --image host -p cpu -c 2 --mem 4G -t 60
   slurmgate session create --type batch --image host -p cpu --command 'make test' --json

` + exitCodesHelp,
		DisableSliceFlagSeparator: true,
		Flags: append(sessionFlags(),
			&cli.StringFlag{Name: "type", Value: "interactive", Usage: "`interactive` or batch"},
			&cli.StringFlag{Name: "command", Usage: "`COMMAND` to run (bash -c); a batch session needs one"},
			&cli.BoolFlag{Name: "no-wait", Usage: "return once submitted, without waiting for the session to start"},
			jsonFlag),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if cmd.NArg() > 0 {
				return usageErrorf("session create takes no arguments (got %q); give the command with --command", cmd.Args().First())
			}
			c, cfg, err := apiClient()
			if err != nil {
				return err
			}
			req, err := requestFromFlags(cmd, cfg, cmd.String("type"))
			if err != nil {
				return err
			}
			req.Command = cmd.String("command")
			req.IdempotencyKey = newIdempotencyKey()
			s, err := c.CreateSession(ctx, req)
			if err != nil {
				return apiError(err, cfg.Endpoint)
			}
			if !cmd.Bool("no-wait") {
				s, err = waitWhilePending(ctx, c, s, cmd.Root().ErrWriter, cmd.Bool("json"))
				if errors.Is(err, context.Canceled) {
					return &cliError{code: exitSignal, msg: fmt.Sprintf("stopped waiting; session %s is still %s", s.ID, s.State),
						hint: "cancel it with `slurmgate session rm " + s.ID + "`, or watch it with `slurmgate session info " + s.ID + "`"}
				}
				if err != nil {
					return apiError(err, cfg.Endpoint)
				}
			}
			if cmd.Bool("json") {
				return printJSON(cmd, s)
			}
			printSession(cmd.Root().Writer, s)
			if s.State == "ERROR" || s.State == "CANCELLED" {
				return &cliError{code: exitError, msg: "session " + shortID(s.ID) + " " + s.State + ": " + s.StatusMessage,
					hint: "see `slurmgate session events " + s.ID + "`"}
			}
			if s.State == "RUNNING" {
				printAppURLs(ctx, cmd.Root().Writer, c, s.ID)
			}
			return nil
		},
	}
}

func sessionListCommand() *cli.Command {
	return &cli.Command{
		Name:    "ls",
		Aliases: []string{"list"},
		Usage:   "list your sessions, newest first",
		Description: `Examples:
   slurmgate session ls
   slurmgate session ls --state PENDING --state RUNNING --project acme/vision
   slurmgate session ls --all --json`,
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "state", Aliases: []string{"s"}, Usage: "only sessions in `STATE` (PENDING, RUNNING, TERMINATED, …; repeatable)"},
			&cli.StringFlag{Name: "project", Aliases: []string{"A"}, Usage: "only sessions of `DOMAIN/PROJECT`"},
			&cli.StringFlag{Name: "owner", Aliases: []string{"u"}, Usage: "only `USER`'s sessions (admins)"},
			&cli.BoolFlag{Name: "all", Aliases: []string{"a"}, Usage: "every session you may see, not only yours"},
			&cli.IntFlag{Name: "limit", Aliases: []string{"n"}, Value: 50, Usage: "at most `N` sessions"},
			jsonFlag,
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			c, cfg, err := apiClient()
			if err != nil {
				return err
			}
			opts := client.SessionListOptions{States: upper(cmd.StringSlice("state")), Project: projectPath(cmd.String("project")),
				Owner: cmd.String("owner"), All: cmd.Bool("all")}
			limit := cmd.Int("limit")
			var ss []client.Session
			for len(ss) < limit {
				opts.Limit = min(limit-len(ss), 200)
				page, err := c.ListSessions(ctx, opts)
				if err != nil {
					return apiError(err, cfg.Endpoint)
				}
				ss = append(ss, page.Items...)
				if page.Next == "" {
					break
				}
				opts.Cursor = page.Next
			}
			if cmd.Bool("json") {
				if ss == nil {
					ss = []client.Session{}
				}
				return printJSON(cmd, ss)
			}
			now := time.Now()
			rows := make([][]string, 0, len(ss))
			for _, s := range ss {
				rows = append(rows, []string{s.ID, orDash(s.Name), s.Owner, s.Project, s.State, s.Type, s.Image, s.ScalingGroup,
					strconv.Itoa(s.CPUs), formatMemory(s.MemoryMB), formatGPUs(s.GPUs, s.GPUType), age(s.CreatedAt, now)})
			}
			return table(cmd.Root().Writer, []string{"ID", "NAME", "OWNER", "PROJECT", "STATE", "TYPE", "IMAGE", "GROUP", "CPUS", "MEM", "GPUS", "AGE"}, rows)
		},
	}
}

func upper(ss []string) []string {
	for i, s := range ss {
		ss[i] = strings.ToUpper(s)
	}
	return ss
}

// sessionArg returns the one SESSION argument.
// sessionClient reads a command's SESSION argument and makes the API
// client: the first steps of every command that acts on one session.
func sessionClient(cmd *cli.Command) (id string, c *client.Client, cfg cliConfig, err error) {
	if id, err = sessionArg(cmd); err != nil {
		return "", nil, cfg, err
	}
	c, cfg, err = apiClient()
	return id, c, cfg, err
}

func sessionArg(cmd *cli.Command) (string, error) {
	if cmd.NArg() != 1 {
		return "", usageErrorf("%s takes one SESSION id (see `slurmgate session ls`)", cmd.FullName())
	}
	return cmd.Args().First(), nil
}

func sessionInfoCommand() *cli.Command {
	return &cli.Command{
		Name:      "info",
		Aliases:   []string{"show"},
		Usage:     "show one session",
		ArgsUsage: "SESSION",
		Description: `Example:
   slurmgate session info 3f2a9c1e-… --json`,
		Flags: []cli.Flag{jsonFlag},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			id, c, cfg, err := sessionClient(cmd)
			if err != nil {
				return err
			}
			s, err := c.Session(ctx, id)
			if err != nil {
				return apiError(err, cfg.Endpoint)
			}
			if cmd.Bool("json") {
				return printJSON(cmd, s)
			}
			printSession(cmd.Root().Writer, s)
			if s.State == "RUNNING" {
				printAppURLs(ctx, cmd.Root().Writer, c, s.ID)
			}
			return nil
		},
	}
}

// printSession prints a session as "key  value" lines, skipping empty ones.
func printSession(w io.Writer, s *client.Session) {
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "%-16s %s\n", k, v)
		}
	}
	line("id", s.ID)
	line("name", s.Name)
	line("owner", s.Owner)
	line("project", s.Project)
	line("type", s.Type)
	line("image", s.Image)
	line("scaling group", s.ScalingGroup)
	line("partition", s.Partition)
	line("state", s.State)
	line("status", s.StatusMessage)
	if s.QueuePosition != nil {
		line("queue position", strconv.Itoa(*s.QueuePosition))
	}
	if s.EstimatedStart != nil {
		line("estimated start", s.EstimatedStart.Local().Format(time.RFC3339))
	}
	line("resources", fmt.Sprintf("%d CPUs, %s memory, %s GPUs, time limit %s", s.CPUs, formatMemory(s.MemoryMB),
		formatGPUs(s.GPUs, s.GPUType), slurmctl.FormatTimeLimit(time.Duration(s.TimeLimitS)*time.Second)))
	if s.JobID != nil {
		line("slurm job", fmt.Sprintf("%d (%s)", *s.JobID, orDash(s.SlurmState)))
	}
	line("node", s.Node)
	line("command", s.Command)
	for _, k := range slices.Sorted(maps.Keys(s.Environment)) {
		line("env", k+"="+s.Environment[k])
	}
	for _, m := range s.Mounts {
		mode := "rw"
		if m.ReadOnly {
			mode = "ro"
		}
		line("mount", m.VFolder+" at "+m.Target+" ("+mode+")")
	}
	if s.ExitCode != nil {
		line("exit code", strconv.Itoa(*s.ExitCode))
	}
	line("created", s.CreatedAt.Local().Format(time.RFC3339))
	if s.StartedAt != nil {
		line("started", s.StartedAt.Local().Format(time.RFC3339))
	}
	if s.EndedAt != nil {
		line("ended", s.EndedAt.Local().Format(time.RFC3339))
	}
}

func sessionEventsCommand() *cli.Command {
	return &cli.Command{
		Name:      "events",
		Usage:     "show a session's timeline, oldest first",
		ArgsUsage: "SESSION",
		Description: `Example:
   slurmgate session events 3f2a9c1e-…`,
		Flags: []cli.Flag{jsonFlag},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			id, c, cfg, err := sessionClient(cmd)
			if err != nil {
				return err
			}
			evs, err := c.SessionEvents(ctx, id)
			if err != nil {
				return apiError(err, cfg.Endpoint)
			}
			if cmd.Bool("json") {
				if evs == nil {
					evs = []client.Event{}
				}
				return printJSON(cmd, evs)
			}
			rows := make([][]string, 0, len(evs))
			for _, e := range evs {
				change := ""
				if e.From != e.To {
					change = e.From + " → " + e.To
				}
				rows = append(rows, []string{e.At.Local().Format("2006-01-02 15:04:05"), e.Kind, orDash(change), e.Message})
			}
			return table(cmd.Root().Writer, []string{"TIME", "EVENT", "STATE", "MESSAGE"}, rows)
		},
	}
}

func sessionLogsCommand() *cli.Command {
	return &cli.Command{
		Name:      "logs",
		Usage:     "print a session's job output",
		ArgsUsage: "SESSION",
		Description: `Prints the job's standard output (--stderr: its standard error). With -f it
keeps printing as the job writes, until the session ends.

Examples:
   slurmgate session logs 3f2a9c1e-…
   slurmgate session logs -f --tail 20 3f2a9c1e-…`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep printing until the session ends"},
			&cli.BoolFlag{Name: "stderr", Usage: "the job's standard error instead of its output"},
			&cli.IntFlag{Name: "tail", Aliases: []string{"n"}, Usage: "start at the last `N` lines"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			id, c, cfg, err := sessionClient(cmd)
			if err != nil {
				return err
			}
			opts := client.LogOptions{Follow: cmd.Bool("follow"), Tail: cmd.Int("tail")}
			if cmd.Bool("stderr") {
				opts.Stream = "stderr"
			}
			err = c.SessionLog(ctx, id, opts, cmd.Root().Writer)
			if errors.Is(err, context.Canceled) {
				return nil // Ctrl-C ends a followed log; the session goes on
			}
			return apiError(err, cfg.Endpoint)
		},
	}
}

func sessionRemoveCommand() *cli.Command {
	return &cli.Command{
		Name:      "rm",
		Aliases:   []string{"destroy"},
		Usage:     "cancel sessions: their jobs are cancelled and they end shortly after",
		ArgsUsage: "SESSION...",
		Description: `Example:
   slurmgate session rm 3f2a9c1e-… 77b0d2aa-…`,
		Flags: []cli.Flag{jsonFlag},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if cmd.NArg() == 0 {
				return usageErrorf("session rm takes one or more SESSION ids (see `slurmgate session ls`)")
			}
			c, cfg, err := apiClient()
			if err != nil {
				return err
			}
			var out []*client.Session
			var errs []error
			for _, id := range cmd.Args().Slice() {
				s, err := c.DestroySession(ctx, id)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", id, apiError(err, cfg.Endpoint)))
					continue
				}
				out = append(out, s)
				if !cmd.Bool("json") {
					fmt.Fprintf(cmd.Root().Writer, "%s %s\n", s.ID, s.State)
				}
			}
			if cmd.Bool("json") {
				printJSON(cmd, out)
			}
			if len(errs) == 1 {
				var ce *cliError
				if errors.As(errs[0], &ce) {
					return &cliError{code: ce.code, msg: errs[0].Error()}
				}
			}
			if len(errs) > 0 {
				return &cliError{code: exitError, msg: errors.Join(errs...).Error()}
			}
			return nil
		},
	}
}

// printAppURLs lists a running session's apps with their URLs, which is
// what a person wants right after create; failing to read them is not an
// error of the create.
func printAppURLs(ctx context.Context, w io.Writer, c *client.Client, id string) {
	apps, err := c.SessionApps(ctx, id)
	if err != nil || len(apps.Apps) == 0 {
		return
	}
	for _, a := range apps.Apps {
		state := ""
		if !a.Ready {
			state = "  (not ready yet)"
		}
		fmt.Fprintf(w, "%-16s %s%s\n", "app "+a.Name, appURL(c, id, a), state)
	}
	fmt.Fprintf(w, "%-16s slurmgate app forward %s APP [LOCALPORT]\n", "reach it", id)
}
