package main

// usage: what the caller's live sessions hold against their quotas. The API
// has no usage resource yet, so the CLI computes it from the policies and
// the live sessions the caller can see.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/urfave/cli/v3"

	"github.com/slurmgate/slurmgate/api/client"
)

// quotaUse is one limit and what live sessions hold against it.
type quotaUse struct {
	Scope string `json:"scope"` // "user", "project" or "domain"
	Name  string `json:"name"`  // "alice", "acme/vision", "acme"
	Limit string `json:"limit"` // "cpus", "memory_mb", "gpus", "gpus:a100", "sessions", "pending_sessions"
	InUse int64  `json:"in_use"`
	// Max is nil when the policy sets no limit.
	Max *int64 `json:"max"`
}

func usageCommand() *cli.Command {
	return &cli.Command{
		Name:  "usage",
		Usage: "show what your live sessions hold against your user, project and domain quotas",
		Description: `Computed by the CLI from the policies and the live sessions you can see: a
project's or domain's use by other members counts only if you may see their
sessions (admins can).

Examples:
   slurmgate usage
   slurmgate usage --json`,
		Flags: []cli.Flag{jsonFlag},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			c, cfg, err := apiClient()
			if err != nil {
				return err
			}
			uses, err := computeUsage(ctx, c)
			if err != nil {
				return apiError(err, cfg.Endpoint)
			}
			if cmd.Bool("json") {
				return printJSON(cmd, uses)
			}
			rows := make([][]string, len(uses))
			for i, u := range uses {
				max := "unlimited"
				if u.Max != nil {
					max = fmt.Sprint(*u.Max)
				}
				rows[i] = []string{u.Scope, u.Name, u.Limit, fmt.Sprint(u.InUse), max}
			}
			return table(cmd.Root().Writer, []string{"SCOPE", "NAME", "LIMIT", "IN USE", "MAX"}, rows)
		},
	}
}

func computeUsage(ctx context.Context, c *client.Client) ([]quotaUse, error) {
	me, err := c.Me(ctx)
	if err != nil {
		return nil, err
	}
	projects, err := c.Projects(ctx)
	if err != nil {
		return nil, err
	}
	var sessions []client.Session
	opts := client.SessionListOptions{All: true, States: []string{"PENDING", "PREPARING", "RUNNING", "TERMINATING"}}
	opts.Limit = 200
	for {
		page, err := c.ListSessions(ctx, opts)
		if err != nil {
			return nil, err
		}
		sessions = append(sessions, page.Items...)
		if page.Next == "" || len(sessions) >= 10000 {
			break
		}
		opts.Cursor = page.Next
	}
	policy := func(scope string, id int64) (*client.Policy, error) {
		p, err := c.Policy(ctx, scope, id)
		var prob *client.Problem
		if errors.As(err, &prob) && prob.Status == 404 {
			return &client.Policy{}, nil // no policy: unlimited
		}
		return p, err
	}
	var out []quotaUse
	add := func(scope, name string, pol *client.Policy, match func(client.Session) bool) {
		var mine []client.Session
		for _, s := range sessions {
			if match(s) {
				mine = append(mine, s)
			}
		}
		var cpus, mem, gpus, pending int64
		byType := map[string]int64{}
		for _, s := range mine {
			cpus += int64(s.CPUs)
			mem += s.MemoryMB
			gpus += int64(s.GPUs)
			byType[s.GPUType] += int64(s.GPUs)
			if s.State == "PENDING" {
				pending++
			}
		}
		i64 := func(p *int) *int64 {
			if p == nil {
				return nil
			}
			v := int64(*p)
			return &v
		}
		out = append(out,
			quotaUse{scope, name, "cpus", cpus, i64(pol.MaxCPUs)},
			quotaUse{scope, name, "memory_mb", mem, pol.MaxMemoryMB})
		var gpuMax *int64
		if v, ok := pol.MaxGPUs[""]; ok {
			gpuMax = i64(&v)
		}
		out = append(out, quotaUse{scope, name, "gpus", gpus, gpuMax})
		for _, typ := range slices.Sorted(maps.Keys(pol.MaxGPUs)) {
			if typ != "" {
				v := pol.MaxGPUs[typ]
				// Untyped GPUs may land on any type, as admission counts them.
				out = append(out, quotaUse{scope, name, "gpus:" + typ, byType[typ] + byType[""], i64(&v)})
			}
		}
		out = append(out,
			quotaUse{scope, name, "sessions", int64(len(mine)), i64(pol.MaxConcurrentSessions)},
			quotaUse{scope, name, "pending_sessions", pending, i64(pol.MaxPendingSessions)})
	}
	up, err := policy("user", me.ID)
	if err != nil {
		return nil, err
	}
	add("user", me.Username, up, func(s client.Session) bool { return s.Owner == me.Username })
	for _, p := range projects {
		pp, err := policy("project", p.ID)
		if err != nil {
			return nil, err
		}
		path := p.Domain + "/" + p.Name
		add("project", path, pp, func(s client.Session) bool { return s.Project == path })
	}
	dp, err := policy("domain", me.DomainID)
	if err != nil {
		return nil, err
	}
	add("domain", me.Domain, dp, func(s client.Session) bool { return strings.HasPrefix(s.Project, me.Domain+"/") })
	return out, nil
}
