package api

import (
	"net/http"

	"github.com/slurmgate/slurmgate/bridge"
)

// clusterRoutes: what the cluster has and what is free, the caller's quota
// use, and the Slurm account sync's plan for admins.
func (s *Server) clusterRoutes() []route {
	return []route{
		{method: "GET", pattern: "/api/v1/cluster/nodes", summary: "The cluster's nodes: CPUs, memory and GPUs by type, configured and allocated",
			access: authenticated, handler: s.clusterNodes, response: []bridge.ClusterNode{}},
		{method: "GET", pattern: "/api/v1/cluster/partitions", summary: "The cluster's partitions with free CPUs and GPUs by type, and the scaling groups that offer them",
			access: authenticated, handler: s.clusterPartitions, response: []bridge.ClusterPartition{}},
		{method: "GET", pattern: "/api/v1/usage", summary: "The caller's quota use: their own, each project's and their domain's policy with what is in use",
			access: authenticated, handler: s.usage, response: []bridge.ScopeUsage{}},
		{method: "GET", pattern: "/api/v1/sync/plan", summary: "The drift between the database and Slurm's accounts and associations (changes nothing)",
			access: superadmin, handler: s.syncPlan, response: bridge.SyncPlan{}},
		{method: "POST", pattern: "/api/v1/sync/apply", summary: "Plan and apply the Slurm account sync now; failed changes are listed",
			access: superadmin, handler: s.syncApply, response: syncOutcome{}},
	}
}

func (s *Server) clusterNodes(w http.ResponseWriter, r *http.Request) {
	nodes, err := s.b.ClusterNodes(r.Context(), ActorFrom(r.Context()))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, nodes)
}

func (s *Server) clusterPartitions(w http.ResponseWriter, r *http.Request) {
	parts, err := s.b.ClusterPartitions(r.Context(), ActorFrom(r.Context()))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, parts)
}

func (s *Server) usage(w http.ResponseWriter, r *http.Request) {
	u, err := s.b.Usage(r.Context(), ActorFrom(r.Context()))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, u)
}

func (s *Server) syncPlan(w http.ResponseWriter, r *http.Request) {
	plan, err := s.b.PlanAccountSync(r.Context(), ActorFrom(r.Context()))
	if err != nil {
		writeError(w, r, err)
		return
	}
	if plan.Changes == nil {
		plan.Changes = []bridge.SyncChange{}
	}
	writeJSON(w, r, http.StatusOK, plan)
}

// syncOutcome is what applying the sync did.
type syncOutcome struct {
	Plan    *bridge.SyncPlan `json:"plan"`
	Applied int              `json:"applied"`
	Failed  []syncFailure    `json:"failed"`
}

type syncFailure struct {
	Change bridge.SyncChange `json:"change"`
	Error  string            `json:"error"`
}

func (s *Server) syncApply(w http.ResponseWriter, r *http.Request) {
	plan, res, err := s.b.ApplyAccountSync(r.Context(), ActorFrom(r.Context()))
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := syncOutcome{Plan: plan, Applied: res.Applied, Failed: []syncFailure{}}
	for _, f := range res.Failed {
		out.Failed = append(out.Failed, syncFailure{Change: f.Change, Error: f.Err.Error()})
	}
	writeJSON(w, r, http.StatusOK, out)
}
