package slurmctl

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// A dialect maps our operations onto one slurmrestd API version: its paths,
// its JSON and its quirks. Raw structs live in the dialect's file and never
// leave it, so adding v0.0.40 means adding a file and a line in dialects,
// with no change to callers.
type dialect interface {
	version() string
	ping(ctx context.Context, c *Client, user string) error
	submit(ctx context.Context, c *Client, user string, spec JobSpec) (JobID, error)
	job(ctx context.Context, c *Client, user string, id JobID) (Job, error)
	// jobs lists every job slurmctld still holds; since, when not zero, lets
	// slurmctld skip work when nothing changed (update_time).
	jobs(ctx context.Context, c *Client, user string, since time.Time) ([]Job, error)
	// signal sends sig ("" meaning cancel the job, as scancel does).
	signal(ctx context.Context, c *Client, user string, id JobID, sig string) error
	nodes(ctx context.Context, c *Client, user string) ([]Node, error)
	partitions(ctx context.Context, c *Client, user string) ([]Partition, error)
	accounts(ctx context.Context, c *Client, user string) ([]Account, error)
	associations(ctx context.Context, c *Client, user string, f AssociationFilter) ([]Association, error)
	users(ctx context.Context, c *Client, user string) ([]User, error)
}

var dialects = map[string]dialect{
	"v0.0.38": v0038{},
}

// SupportedAPIVersions lists the slurmrestd dialects this package speaks.
func SupportedAPIVersions() []string {
	vs := make([]string, 0, len(dialects))
	for v := range dialects {
		vs = append(vs, v)
	}
	slices.Sort(vs)
	return vs
}

func dialectFor(version string) (dialect, error) {
	if version == "" {
		vs := SupportedAPIVersions()
		version = vs[len(vs)-1]
	}
	d, ok := dialects[version]
	if !ok {
		return nil, fmt.Errorf("slurmctl: slurmrestd API %q is not supported (supported: %s)",
			version, strings.Join(SupportedAPIVersions(), ", "))
	}
	return d, nil
}
