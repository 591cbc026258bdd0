package bridge

import (
	"context"
	"slices"
	"strings"

	"github.com/slurmgate/slurmgate/slurmctl"
)

// ClusterNode is a compute node as users see it: what it has and what is
// taken, GPUs by type, so people can tell why a session waits.
type ClusterNode struct {
	Name          string           `json:"name"`
	State         string           `json:"state"`
	Flags         []string         `json:"flags,omitempty"`
	Reason        string           `json:"reason,omitempty"`
	Partitions    []string         `json:"partitions"`
	CPUs          int              `json:"cpus"`
	AllocCPUs     int              `json:"alloc_cpus"`
	MemoryMB      int64            `json:"memory_mb"`
	AllocMemoryMB int64            `json:"alloc_memory_mb"`
	GPUs          map[string]int64 `json:"gpus,omitempty"`      // configured, by type ("" untyped)
	GPUsUsed      map[string]int64 `json:"gpus_used,omitempty"` // allocated, by type
}

// ClusterPartition is a partition with its capacity and what is free now.
type ClusterPartition struct {
	Name          string                  `json:"name"`
	State         string                  `json:"state"`
	Default       bool                    `json:"default"`
	Nodes         []string                `json:"nodes"`
	TotalCPUs     int                     `json:"total_cpus"`
	FreeCPUs      int                     `json:"free_cpus"`
	MaxTimeS      int64                   `json:"max_time_s,omitempty"` // 0: unlimited
	GPUs          map[string]GPUAvailable `json:"gpus,omitempty"`       // by type
	ScalingGroups []string                `json:"scaling_groups,omitempty"`
}

// GPUAvailable is the GPUs of one type in a partition.
type GPUAvailable struct {
	Total int64 `json:"total"`
	Free  int64 `json:"free"`
}

// ClusterNodes lists the cluster's nodes. Any active user may look, as
// sinfo lets anyone on a login node look.
func (b *Bridge) ClusterNodes(ctx context.Context, a Actor) ([]ClusterNode, error) {
	if err := b.needSlurm(); err != nil {
		return nil, err
	}
	nodes, err := b.slurm.Nodes(ctx)
	if err != nil {
		return nil, slurmUnavailable("listing the cluster's nodes", err)
	}
	out := make([]ClusterNode, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, ClusterNode{
			Name: n.Name, State: string(n.State), Flags: n.Flags, Reason: n.Reason, Partitions: n.Partitions,
			CPUs: n.CPUs, AllocCPUs: n.AllocCPUs, MemoryMB: n.RealMemoryMB, AllocMemoryMB: n.AllocMemoryMB,
			GPUs: gpusByType(n.GRES), GPUsUsed: gpusByType(n.GRESUsed),
		})
	}
	slices.SortFunc(out, func(x, y ClusterNode) int { return strings.Compare(x.Name, y.Name) })
	return out, nil
}

// ClusterPartitions lists the cluster's partitions with GPU availability,
// and which scaling groups offer each.
func (b *Bridge) ClusterPartitions(ctx context.Context, a Actor) ([]ClusterPartition, error) {
	if err := b.needSlurm(); err != nil {
		return nil, err
	}
	parts, err := b.slurm.Partitions(ctx)
	if err != nil {
		return nil, slurmUnavailable("listing the cluster's partitions", err)
	}
	groups := map[string][]string{}
	rows, err := b.db.Query(ctx, `SELECT name, partitions FROM scaling_groups ORDER BY name`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var name string
		var ps []string
		if err := rows.Scan(&name, &ps); err != nil {
			rows.Close()
			return nil, err
		}
		for _, p := range ps {
			groups[p] = append(groups[p], name)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]ClusterPartition, 0, len(parts))
	for _, p := range parts {
		cp := ClusterPartition{Name: p.Name, State: p.State, Default: p.Default, Nodes: p.Nodes,
			TotalCPUs: p.TotalCPUs, FreeCPUs: p.FreeCPUs, MaxTimeS: int64(p.MaxTime.Seconds()), ScalingGroups: groups[p.Name]}
		if len(p.GPUs) > 0 {
			cp.GPUs = map[string]GPUAvailable{}
			for typ, c := range p.GPUs {
				cp.GPUs[typ] = GPUAvailable{Total: c.Total, Free: c.Free}
			}
		}
		out = append(out, cp)
	}
	return out, nil
}

func gpusByType(gres []slurmctl.GRES) map[string]int64 {
	var m map[string]int64
	for _, g := range gres {
		if g.Name != "gpu" {
			continue
		}
		if m == nil {
			m = map[string]int64{}
		}
		m[g.Type] += g.Count
	}
	return m
}

func slurmUnavailable(what string, err error) error {
	return &Error{Kind: KindUnavailable, Message: "Slurm did not answer while " + what + "; try again shortly", Err: err}
}

// PlanAccountSync returns the drift between the database and Slurm's
// accounts and associations, changing nothing. Superadmins only: the plan
// names every domain's accounts and limits.
func (b *Bridge) PlanAccountSync(ctx context.Context, a Actor) (*SyncPlan, error) {
	if err := requireSuperadmin(a, "see the Slurm account sync plan"); err != nil {
		return nil, err
	}
	if err := b.needSlurm(); err != nil {
		return nil, err
	}
	plan, err := b.NewAccountSync().Plan(ctx)
	if err != nil {
		return nil, slurmUnavailable("planning the account sync", err)
	}
	return plan, nil
}

// ApplyAccountSync plans and applies in one pass, under the sync lock that
// the periodic sync also takes. Superadmins only.
func (b *Bridge) ApplyAccountSync(ctx context.Context, a Actor) (*SyncPlan, SyncResult, error) {
	if err := requireSuperadmin(a, "apply the Slurm account sync"); err != nil {
		return nil, SyncResult{}, err
	}
	if err := b.needSlurm(); err != nil {
		return nil, SyncResult{}, err
	}
	plan, res, err := b.NewAccountSync().Reconcile(ctx)
	if err != nil && plan == nil {
		return nil, res, slurmUnavailable("applying the account sync", err)
	}
	// Failed changes are in res; the plan and what was applied are still the answer.
	return plan, res, nil
}

// needSlurm refuses cleanly where the bridge runs without a Slurm client
// (tools and tests that only manage the database).
func (b *Bridge) needSlurm() error {
	if b.slurm == nil {
		return &Error{Kind: KindUnavailable, Message: "this gateway has no Slurm connection configured"}
	}
	return nil
}
