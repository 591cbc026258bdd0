package slurmctl

import (
	"context"
	"slices"
)

// Nodes lists every node with its configured and allocated resources.
func (c *Client) Nodes(ctx context.Context) ([]Node, error) {
	return c.dialect.nodes(ctx, c, c.cfg.AdminUser)
}

// Usable reports whether the scheduler may place new work on n.
func (n Node) Usable() bool {
	switch n.State {
	case "DOWN", "FUTURE", "UNKNOWN", "":
		return false
	}
	for _, f := range n.Flags {
		switch f {
		case "DRAIN", "DRAINING", "DRAINED", "NOT_RESPONDING", "FAIL", "MAINTENANCE", "POWERED_DOWN", "POWER_DOWN", "REBOOT_REQUESTED":
			return false
		}
	}
	return true
}

// Partitions lists partitions with their nodes, free CPUs and GPU totals and
// free counts by type, computed from one nodes request and one partitions
// request. Nodes the scheduler cannot use count towards totals, not free.
func (c *Client) Partitions(ctx context.Context) ([]Partition, error) {
	parts, err := c.dialect.partitions(ctx, c, c.cfg.AdminUser)
	if err != nil {
		return nil, err
	}
	nodes, err := c.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	for i := range parts {
		p := &parts[i]
		p.GPUs = map[string]GPUCount{}
		for _, n := range nodes {
			if !slices.Contains(n.Partitions, p.Name) {
				continue
			}
			p.Nodes = append(p.Nodes, n.Name)
			usable := n.Usable()
			if usable {
				p.FreeCPUs += max(n.CPUs-n.AllocCPUs, 0)
			}
			for _, g := range n.GRES {
				if g.Name != "gpu" {
					continue
				}
				gc := p.GPUs[g.Type]
				gc.Total += g.Count
				if usable {
					gc.Free += max(g.Count-usedGRES(n.GRESUsed, g), 0)
				}
				p.GPUs[g.Type] = gc
			}
		}
	}
	return parts, nil
}

func usedGRES(used []GRES, g GRES) int64 {
	var n int64
	for _, u := range used {
		if u.Name == g.Name && u.Type == g.Type {
			n += u.Count
		}
	}
	return n
}
