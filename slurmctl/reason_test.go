package slurmctl

import (
	"strings"
	"testing"
	"time"
)

func TestExplainPending(t *testing.T) {
	now := time.Date(2025, time.March, 14, 10, 0, 0, 0, time.FixedZone("CET", 3600))
	today1420 := time.Date(2025, time.March, 14, 13, 20, 0, 0, time.UTC) // 14:20 CET
	tomorrow9 := now.Add(23 * time.Hour)
	gpu := &Partition{Name: "gpu", State: "UP", TotalCPUs: 64, FreeCPUs: 8, MaxTime: 48 * time.Hour,
		GPUs: map[string]GPUCount{"a100": {Total: 8, Free: 1}, "v100": {Total: 4, Free: 4}}}
	job := func(reason string, tres TRES) Job {
		return Job{ID: 42, State: JobPending, Reason: reason, Account: "acme.vision", Partition: "gpu",
			QOS: "normal", TRES: tres, TimeLimit: 4 * time.Hour}
	}
	project := func(l Limits, inUse TRES) PendingContext {
		return PendingContext{LimitScope: "project", Limits: l, InUse: inUse, Partition: gpu, Now: now}
	}
	base := PendingContext{Partition: gpu, Now: now}

	tests := []struct {
		name string
		job  Job
		pc   PendingContext
		want string
	}{
		// Just submitted, or not pending at all.
		{"None", job("None", nil), base, "queued; the scheduler has not considered it yet"},
		{"no reason yet", job("", nil), base, "queued; the scheduler has not considered it yet"},
		{"running", Job{State: JobRunning, Reason: "None"}, base, ""},
		{"completed", Job{State: JobCompleted}, base, ""},

		// Resources: name the shortage from the partition's counts.
		{"Resources typed GPUs", with(job("Resources", TRES{"cpu": 8, "gres/gpu": 2, "gres/gpu:a100": 2}), func(j *Job) { j.StartTime = today1420 }),
			base, "waiting for 2 × a100 GPUs in partition gpu (1 free); estimated start 14:20"},
		{"Resources untyped GPUs", job("Resources", TRES{"gres/gpu": 6}), base,
			"waiting for 6 GPUs in partition gpu (5 free)"},
		{"Resources CPUs", job("Resources", TRES{"cpu": 16}), base,
			"waiting for 16 CPUs in partition gpu (8 free)"},
		{"Resources, enough free in total", job("Resources", TRES{"cpu": 4, "gres/gpu:v100": 2}), base,
			"waiting for resources in partition gpu"},
		{"Resources, partition unknown", job("Resources", TRES{"cpu": 4}), PendingContext{Now: now},
			"waiting for resources to become free"},
		{"Resources, stale estimate", with(job("Resources", TRES{"cpu": 4}), func(j *Job) { j.StartTime = now.Add(-time.Hour) }), base,
			"waiting for resources in partition gpu"},

		// Priority.
		{"Priority", job("Priority", nil), PendingContext{QueuePosition: 3, Now: now},
			"waiting: higher-priority jobs are ahead (position 3 in queue)"},
		{"Priority with estimate", with(job("Priority", nil), func(j *Job) { j.StartTime = tomorrow9 }), PendingContext{QueuePosition: 1, Now: now},
			"waiting: higher-priority jobs are ahead (position 1 in queue); estimated start tomorrow 09:00"},
		{"Priority, position unknown", with(job("Priority", nil), func(j *Job) { j.StartTime = now.Add(4 * 24 * time.Hour) }), base,
			"waiting: higher-priority jobs are ahead; estimated start Tue 10:00"},

		// Association group TRES limits.
		{"AssocGrpGRES reached", job("AssocGrpGRES", TRES{"gres/gpu": 1}),
			project(Limits{GrpTRES: TRES{"gres/gpu": 2}}, TRES{"gres/gpu": 2}),
			"waiting: project limit of 2 GPUs reached (2 in use)"},
		{"AssocGrpGRES would be exceeded", job("AssocGrpGRES", TRES{"gres/gpu": 2}),
			project(Limits{GrpTRES: TRES{"gres/gpu": 4}}, TRES{"gres/gpu": 3}),
			"waiting: project limit of 4 GPUs reached (3 in use, this job asks for 2)"},
		{"AssocGrpGRES beyond the limit alone", job("AssocGrpGRES", TRES{"gres/gpu": 4}),
			project(Limits{GrpTRES: TRES{"gres/gpu": 2}}, TRES{}),
			"will not start: it asks for 4 GPUs but the project limit is 2 GPUs; submit again asking for less"},
		{"AssocGrpGRES limit of zero", job("AssocGrpGRES", TRES{"gres/gpu": 1}),
			project(Limits{GrpTRES: TRES{"gres/gpu": 0}}, TRES{}),
			"will not start: the project may not use GPUs"},
		{"AssocGrpGRES typed limit", job("AssocGrpGRES", TRES{"gres/gpu": 1, "gres/gpu:a100": 1}),
			project(Limits{GrpTRES: TRES{"gres/gpu:a100": 2}}, TRES{"gres/gpu:a100": 2}),
			"waiting: project limit of 2 × a100 GPUs reached (2 in use)"},
		{"AssocGrpGRES typed request, untyped limit", job("AssocGrpGRES", TRES{"gres/gpu:a100": 1}),
			project(Limits{GrpTRES: TRES{"gres/gpu": 1}}, TRES{"gres/gpu": 1}),
			"waiting: project limit of 1 GPU reached (1 in use)"},
		{"AssocGrpGRES use unknown", job("AssocGrpGRES", TRES{"gres/gpu": 1}),
			project(Limits{GrpTRES: TRES{"gres/gpu": 2}}, nil),
			"waiting: project limit of 2 GPUs reached"},
		{"AssocGrpGRES, the domain is full", job("AssocGrpGRES", TRES{"gres/gpu": 1}),
			with2(project(Limits{GrpTRES: TRES{"gres/gpu": 8}}, TRES{"gres/gpu": 3}), func(pc *PendingContext) {
				pc.Related = []LimitUsage{{Scope: "domain", Limits: Limits{GrpTRES: TRES{"gres/gpu": 4}}, InUse: TRES{"gres/gpu": 4}}}
			}),
			"waiting: domain limit of 4 GPUs reached (4 in use)"},
		{"AssocGrpGRES, nothing known", job("AssocGrpGRES", TRES{"gres/gpu": 1}), base,
			"waiting: account GPU limit reached"},
		{"AssocGrpGRES, not a GPU", job("AssocGrpGRES", TRES{"gres/mps": 100}), base,
			"waiting: account GRES limit reached"},
		{"AssocGrpCpuLimit", job("AssocGrpCpuLimit", TRES{"cpu": 4}),
			project(Limits{GrpTRES: TRES{"cpu": 32}}, TRES{"cpu": 30}),
			"waiting: project limit of 32 CPUs reached (30 in use, this job asks for 4)"},
		{"AssocGrpMemLimit", job("AssocGrpMemLimit", TRES{"mem": 32 << 10}),
			project(Limits{GrpTRES: TRES{"mem": 256 << 10}}, TRES{"mem": 240 << 10}),
			"waiting: project limit of 256 GiB of memory reached (240 GiB in use, this job asks for 32 GiB)"},
		{"AssocGrpMemLimit in odd sizes", job("AssocGrpMemLimit", TRES{"mem": 1536}),
			project(Limits{GrpTRES: TRES{"mem": 2000}}, TRES{"mem": 1000}),
			"waiting: project limit of 1.95 GiB of memory reached (1000 MiB in use, this job asks for 1.5 GiB)"},
		{"AssocGrpNodeLimit", job("AssocGrpNodeLimit", TRES{"node": 1}),
			project(Limits{GrpTRES: TRES{"node": 4}}, TRES{"node": 4}),
			"waiting: project limit of 4 nodes reached (4 in use)"},
		{"AssocGrpBilling", job("AssocGrpBilling", TRES{"billing": 10}),
			project(Limits{GrpTRES: TRES{"billing": 100}}, TRES{"billing": 95}),
			"waiting: project limit of 100 billing units reached (95 in use, this job asks for 10)"},
		{"AssocGrpLicense", job("AssocGrpLicense", TRES{"license/matlab": 1}),
			project(Limits{GrpTRES: TRES{"license/matlab": 2}}, TRES{"license/matlab": 2}),
			"waiting: project limit of 2 matlab licenses reached (2 in use)"},

		// Association job counts.
		{"AssocGrpJobsLimit", job("AssocGrpJobsLimit", nil),
			with2(project(Limits{GrpJobs: 5}, nil), func(pc *PendingContext) { pc.RunningJobs = 5 }),
			"waiting: project limit of 5 running jobs reached (5 running)"},
		{"AssocGrpSubmitJobsLimit", job("AssocGrpSubmitJobsLimit", nil),
			with2(project(Limits{GrpSubmitJobs: 10}, nil), func(pc *PendingContext) { pc.SubmittedJobs = 10 }),
			"waiting: project limit of 10 queued and running jobs reached (10 submitted)"},
		{"AssocMaxJobsLimit", job("AssocMaxJobsLimit", nil),
			with2(project(Limits{MaxJobs: 2}, nil), func(pc *PendingContext) { pc.RunningJobs = 2 }),
			"waiting: project limit of 2 running jobs per user reached (2 running)"},
		{"AssocMaxJobsLimit on the user's association", job("AssocMaxJobsLimit", nil),
			with2(project(Limits{GrpJobs: 10}, nil), func(pc *PendingContext) {
				pc.Related = []LimitUsage{{Scope: "user", Limits: Limits{MaxJobs: 2}, RunningJobs: 2}}
			}),
			"waiting: user limit of 2 running jobs reached (2 running)"},
		{"AssocMaxJobsLimit, nothing known", job("AssocMaxJobsLimit", nil), base,
			"waiting: account limit on running jobs per user reached"},
		{"AssocMaxSubmitJobLimit", job("AssocMaxSubmitJobLimit", nil), project(Limits{MaxSubmitJobs: 20}, nil),
			"waiting: project limit of 20 queued and running jobs per user reached"},

		// Association time and per-job limits.
		{"AssocMaxWallDurationPerJobLimit", job("AssocMaxWallDurationPerJobLimit", nil), project(Limits{MaxWall: 2 * time.Hour}, nil),
			"will not start: its time limit 04:00:00 exceeds the project's maximum of 02:00:00; submit again with a time limit of 02:00:00 or less"},
		{"AssocMaxWallDurationPerJobLimit, limit unknown", job("AssocMaxWallDurationPerJobLimit", nil), base,
			"will not start: its time limit 04:00:00 exceeds the account's maximum; submit again with a shorter time limit"},
		{"AssocGrpWallLimit", job("AssocGrpWallLimit", nil), project(Limits{}, nil),
			"waiting: project budget of running time (GrpWall) is used up"},
		{"AssocGrpCPUMinutesLimit", job("AssocGrpCPUMinutesLimit", nil), project(Limits{}, nil),
			"waiting: project budget of CPU-minutes is used up"},
		{"AssocGrpCPURunMinutesLimit", job("AssocGrpCPURunMinutesLimit", nil), project(Limits{}, nil),
			"waiting: project limit on CPU-minutes held by running jobs is reached; it frees up as they finish"},
		{"AssocGrpGRESRunMinutes", job("AssocGrpGRESRunMinutes", TRES{"gres/gpu": 1}), project(Limits{}, nil),
			"waiting: project limit on GPU-minutes held by running jobs is reached; it frees up as they finish"},
		{"AssocMaxCpuPerJobLimit", job("AssocMaxCpuPerJobLimit", TRES{"cpu": 32}), project(Limits{MaxTRESPerJob: TRES{"cpu": 16}}, nil),
			"will not start: it asks for 32 CPUs but the project allows at most 16 CPUs per job; submit again asking for less"},
		{"AssocMaxGRESPerJob", job("AssocMaxGRESPerJob", TRES{"gres/gpu": 8}), base,
			"will not start: it asks for more GPUs than the account allows per job; submit again asking for less"},
		{"AssocMaxNodePerJobLimit", job("AssocMaxNodePerJobLimit", nil), project(Limits{}, nil),
			"will not start: it asks for more nodes than the project allows per job; submit again asking for less"},
		{"AssocMaxMemPerJob", job("AssocMaxMemPerJob", TRES{"mem": 512 << 10}), project(Limits{MaxTRESPerJob: TRES{"mem": 256 << 10}}, nil),
			"will not start: it asks for 512 GiB of memory but the project allows at most 256 GiB of memory per job; submit again asking for less"},
		{"AssocMaxCpuPerNode", job("AssocMaxCpuPerNode", nil), project(Limits{}, nil),
			"will not start: it asks for more CPUs per node than the project allows; submit again asking for less"},
		{"AssocMaxCpuMinutesPerJobLimit", job("AssocMaxCpuMinutesPerJobLimit", nil), project(Limits{}, nil),
			"will not start: its CPU-minutes (amount × time limit) exceed what the project allows per job; ask for less or a shorter time limit"},

		// QOS limits.
		{"QOSMaxWallDurationPerJobLimit", with(job("QOSMaxWallDurationPerJobLimit", nil), func(j *Job) { j.TimeLimit = 72 * time.Hour }), base,
			`will not start: its time limit 3-00:00:00 exceeds the "normal" QOS's maximum; submit again with a shorter time limit`},
		{"QOSGrpCpuLimit", job("QOSGrpCpuLimit", nil), base, `waiting: "normal" QOS CPU limit reached`},
		{"QOSGrpGRES", job("QOSGrpGRES", TRES{"gres/gpu": 1}), base, `waiting: "normal" QOS GPU limit reached`},
		{"QOSGrpMemLimit", job("QOSGrpMemLimit", nil), base, `waiting: "normal" QOS memory limit reached`},
		{"QOSGrpNodeLimit", job("QOSGrpNodeLimit", nil), base, `waiting: "normal" QOS node limit reached`},
		{"QOSGrpJobsLimit", job("QOSGrpJobsLimit", nil), base, `waiting: "normal" QOS limit on running jobs reached`},
		{"QOSGrpSubmitJobsLimit", job("QOSGrpSubmitJobsLimit", nil), base, `waiting: "normal" QOS limit on queued and running jobs reached`},
		{"QOSGrpWallLimit", job("QOSGrpWallLimit", nil), base, `waiting: "normal" QOS budget of running time (GrpWall) is used up`},
		{"QOSMaxJobsPerUserLimit", job("QOSMaxJobsPerUserLimit", nil), base, `waiting: "normal" QOS limit on running jobs per user reached`},
		{"QOSMaxSubmitJobPerUserLimit", job("QOSMaxSubmitJobPerUserLimit", nil), base,
			`waiting: "normal" QOS limit on queued and running jobs per user reached`},
		{"QOSMaxGRESPerUser", job("QOSMaxGRESPerUser", TRES{"gres/gpu": 1}), base, `waiting: "normal" QOS limit on GPUs per user reached`},
		{"QOSMaxCpuPerUserLimit", job("QOSMaxCpuPerUserLimit", nil), base, `waiting: "normal" QOS limit on CPUs per user reached`},
		{"MaxCpuPerAccount", job("MaxCpuPerAccount", nil), base, `waiting: "normal" QOS limit on CPUs per account reached`},
		{"MaxJobsPerAccount", job("MaxJobsPerAccount", nil), base, `waiting: "normal" QOS limit on running jobs per account reached`},
		{"QOSMaxCpuPerJobLimit", job("QOSMaxCpuPerJobLimit", nil), base,
			`will not start: it asks for more CPUs than the "normal" QOS allows per job; submit again asking for less`},
		{"QOSMinGRES", job("QOSMinGRES", TRES{"gres/gpu": 1}), base,
			`will not start: it asks for fewer GPUs than the "normal" QOS requires; submit again asking for more`},
		{"QOSMinCpuNotSatisfied", job("QOSMinCpuNotSatisfied", nil), base,
			`will not start: it asks for fewer CPUs than the "normal" QOS requires; submit again asking for more`},
		{"QOS without a name", with(job("QOSGrpCpuLimit", nil), func(j *Job) { j.QOS = "" }), base, "waiting: QOS CPU limit reached"},

		// Nodes and partitions.
		{"ReqNodeNotAvail", job("ReqNodeNotAvail", nil), base, "waiting: nodes it needs are down, drained or reserved"},
		{"ReqNodeNotAvail with nodes", job("ReqNodeNotAvail, UnavailableNodes:g[1-2]", nil), base,
			"waiting: nodes it needs are down, drained or reserved (g[1-2])"},
		{"ReqNodeNotAvail for maintenance", job("ReqNodeNotAvail, Reserved for maintenance", nil), base,
			"waiting: the nodes it needs are reserved for maintenance"},
		{"nodes down or held for other partitions", job("Nodes_required_for_job_are_DOWN,_DRAINED_or_reserved_for_jobs_in_higher_priority_partitions", nil), base,
			"waiting: nodes it needs are down, drained or reserved for jobs in higher-priority partitions"},
		{"NodeDown", job("NodeDown", nil), base, "waiting: a node it needs is down"},
		{"PartitionDown", job("PartitionDown", nil), base, "waiting: partition gpu is down until an administrator brings it back"},
		{"PartitionInactive", job("PartitionInactive", nil), PendingContext{Now: now},
			"waiting: partition gpu is inactive and starts no jobs until an administrator reactivates it"},
		{"PartitionNodeLimit", with(job("PartitionNodeLimit", nil), func(j *Job) { j.NodeCount = 8 }), base,
			"will not start: it asks for 8 nodes, outside the node limits of partition gpu; submit again with a node count the partition allows"},
		{"PartitionTimeLimit", with(job("PartitionTimeLimit", nil), func(j *Job) { j.TimeLimit = 72 * time.Hour }), base,
			"will not start: its time limit 3-00:00:00 exceeds partition gpu's maximum of 2-00:00:00; submit again with a time limit of 2-00:00:00 or less"},
		{"PartitionConfig", job("PartitionConfig", nil), base, "will not start: its request does not fit the configuration of partition gpu"},
		{"MaxMemPerLimit", job("MaxMemPerLimit", nil), base,
			"will not start: it asks for more memory per CPU or per node than partition gpu allows; submit again asking for less"},
		{"BadConstraints", job("BadConstraints", nil), base,
			"will not start: no node in partition gpu can satisfy its request (features, memory or GPUs per node); submit again asking for less"},

		// Dependencies, times and holds.
		{"Dependency", job("Dependency", nil), base, "waiting for the jobs it depends on"},
		{"DependencyNeverSatisfied", job("DependencyNeverSatisfied", nil), base,
			"will not start: a job it depends on ended in a way that can never satisfy the dependency; cancel it and submit again"},
		{"BeginTime", with(job("BeginTime", nil), func(j *Job) { j.StartTime = tomorrow9 }), base,
			"waiting for its requested start time, tomorrow 09:00"},
		{"BeginTime far ahead", with(job("BeginTime", nil), func(j *Job) { j.StartTime = now.AddDate(0, 2, 0) }), base,
			"waiting for its requested start time, 14 May 10:00"},
		{"BeginTime next year", with(job("BeginTime", nil), func(j *Job) { j.StartTime = now.AddDate(1, 0, 0) }), base,
			"waiting for its requested start time, 14 Mar 2026 10:00"},
		{"JobHeldUser", job("JobHeldUser", nil), base, "held by its owner; it starts only once released"},
		{"JobHeldAdmin", job("JobHeldAdmin", nil), base, "held by an administrator; it starts only once they release it"},
		{"JobHoldMaxRequeue", job("JobHoldMaxRequeue", nil), base, "held: it was requeued too many times; an administrator must release it"},
		{"launch failed", job("launch failed requeued held", nil), base,
			"held: its launch failed on a node; an administrator should check the node, then release the job"},
		{"JobLaunchFailure", job("JobLaunchFailure", nil), base,
			"held: its launch failed on a node; an administrator should check the node, then release the job"},

		// Accounts and QOS that no longer fit.
		{"InvalidAccount", job("InvalidAccount", nil), base,
			"will not start: account acme.vision is no longer valid for its user (removed, or the user left it)"},
		{"InvalidAccount of a project", job("InvalidAccount", nil), PendingContext{LimitScope: "project", Now: now},
			"will not start: its project (Slurm account acme.vision) is no longer valid for its user (removed, or the user left it)"},
		{"InvalidQOS", with(job("InvalidQOS", nil), func(j *Job) { j.QOS = "gold" }), base,
			`will not start: the "gold" QOS is not valid for account acme.vision`},
		{"AccountNotAllowed", job("AccountNotAllowed", nil), base, "will not start: partition gpu does not accept jobs of account acme.vision"},
		{"QOSNotAllowed", job("QOSNotAllowed", nil), base, `will not start: partition gpu does not accept jobs of the "normal" QOS`},
		{"QOSUsageThreshold", job("QOSUsageThreshold", nil), base,
			`waiting: account acme.vision has reached the usage threshold of the "normal" QOS`},

		// The rest of Slurm's reasons.
		{"Licenses", job("Licenses", nil), base, "waiting for licenses"},
		{"Reservation", job("Reservation", nil), base, "waiting for its reservation to begin"},
		{"ReservationDeleted", job("ReservationDeleted", nil), base, "will not start: its reservation was deleted"},
		{"Prolog", job("Prolog", nil), base, "starting: the node prolog is running"},
		{"Cleaning", job("Cleaning", nil), base, "waiting: its previous run is still being cleaned up"},
		{"BurstBufferResources", job("BurstBufferResources", nil), base, "waiting for burst buffer space"},
		{"AccountingPolicy", job("AccountingPolicy", nil), base, "waiting: an accounting policy limit holds it"},
		{"AssociationJobLimit", job("AssociationJobLimit", nil), PendingContext{LimitScope: "project"}, "waiting: project job limit reached"},
		{"QOSResourceLimit", job("QOSResourceLimit", nil), base, `waiting: "normal" QOS resource limit reached`},
		{"DeadLine", job("DeadLine", nil), base, "will not start: its deadline has passed"},
		{"unknown reason", with(job("SomethingNew", nil), func(j *Job) { j.StartTime = today1420 }), base,
			"waiting (Slurm reason: SomethingNew); estimated start 14:20"},
		{"unknown limit-like reason", job("AssocGrpWidgets", nil), base, "waiting (Slurm reason: AssocGrpWidgets)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ExplainPending(tt.job, tt.pc); got != tt.want {
				t.Errorf("ExplainPending:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

// Every limit reason Slurm 22.05 can give must decode, so that none falls
// through to the raw fallback.
func TestExplainPendingDecodesEveryLimitReason(t *testing.T) {
	names := []string{
		"QOSGrpCpuLimit", "QOSGrpCPUMinutesLimit", "QOSGrpCPURunMinutesLimit", "QOSGrpJobsLimit",
		"QOSGrpMemLimit", "QOSGrpNodeLimit", "QOSGrpSubmitJobsLimit", "QOSGrpWallLimit",
		"QOSMaxCpuPerJobLimit", "QOSMaxCpuMinutesPerJobLimit", "QOSMaxNodePerJobLimit",
		"QOSMaxWallDurationPerJobLimit", "QOSMaxCpuPerUserLimit", "QOSMaxJobsPerUserLimit",
		"QOSMaxNodePerUserLimit", "QOSMaxSubmitJobPerUserLimit", "QOSMinCpuNotSatisfied",
		"AssocGrpCpuLimit", "AssocGrpCPUMinutesLimit", "AssocGrpCPURunMinutesLimit", "AssocGrpJobsLimit",
		"AssocGrpMemLimit", "AssocGrpNodeLimit", "AssocGrpSubmitJobsLimit", "AssocGrpWallLimit",
		"AssocMaxJobsLimit", "AssocMaxCpuPerJobLimit", "AssocMaxCpuMinutesPerJobLimit",
		"AssocMaxNodePerJobLimit", "AssocMaxWallDurationPerJobLimit", "AssocMaxSubmitJobLimit",
		"AssocGrpUnknown", "AssocGrpUnknownMinutes", "AssocGrpUnknownRunMinutes", "AssocMaxUnknownPerJob",
		"AssocMaxUnknownPerNode", "AssocMaxUnknownMinutesPerJob", "AssocMaxCpuPerNode",
		"AssocGrpMemMinutes", "AssocGrpMemRunMinutes", "AssocMaxMemPerJob", "AssocMaxMemPerNode",
		"AssocMaxMemMinutesPerJob", "AssocGrpNodeMinutes", "AssocGrpNodeRunMinutes",
		"AssocMaxNodeMinutesPerJob", "AssocGrpEnergy", "AssocGrpEnergyMinutes", "AssocGrpEnergyRunMinutes",
		"AssocMaxEnergyPerJob", "AssocMaxEnergyPerNode", "AssocMaxEnergyMinutesPerJob", "AssocGrpGRES",
		"AssocGrpGRESMinutes", "AssocGrpGRESRunMinutes", "AssocMaxGRESPerJob", "AssocMaxGRESPerNode",
		"AssocMaxGRESMinutesPerJob", "AssocGrpLicense", "AssocGrpLicenseMinutes", "AssocGrpLicenseRunMinutes",
		"AssocMaxLicensePerJob", "AssocMaxLicenseMinutesPerJob", "AssocGrpBB", "AssocGrpBBMinutes",
		"AssocGrpBBRunMinutes", "AssocMaxBBPerJob", "AssocMaxBBPerNode", "AssocMaxBBMinutesPerJob",
		"QOSGrpUnknown", "QOSGrpUnknownMinutes", "QOSGrpUnknownRunMinutes", "QOSMaxUnknownPerJob",
		"QOSMaxUnknownPerNode", "QOSMaxUnknownPerUser", "QOSMaxUnknownMinutesPerJob", "QOSMinUnknown",
		"QOSMaxCpuPerNode", "QOSGrpMemoryMinutes", "QOSGrpMemoryRunMinutes", "QOSMaxMemoryPerJob",
		"QOSMaxMemoryPerNode", "QOSMaxMemoryPerUser", "QOSMaxMemoryMinutesPerJob", "QOSMinMemory",
		"QOSGrpNodeMinutes", "QOSGrpNodeRunMinutes", "QOSMaxNodeMinutesPerJob", "QOSMinNode",
		"QOSGrpEnergy", "QOSGrpEnergyMinutes", "QOSGrpEnergyRunMinutes", "QOSMaxEnergyPerJob",
		"QOSMaxEnergyPerNode", "QOSMaxEnergyPerUser", "QOSMaxEnergyMinutesPerJob", "QOSMinEnergy",
		"QOSGrpGRES", "QOSGrpGRESMinutes", "QOSGrpGRESRunMinutes", "QOSMaxGRESPerJob", "QOSMaxGRESPerNode",
		"QOSMaxGRESPerUser", "QOSMaxGRESMinutesPerJob", "QOSMinGRES", "QOSGrpLicense", "QOSGrpLicenseMinutes",
		"QOSGrpLicenseRunMinutes", "QOSMaxLicensePerJob", "QOSMaxLicensePerUser", "QOSMaxLicenseMinutesPerJob",
		"QOSMinLicense", "QOSGrpBB", "QOSGrpBBMinutes", "QOSGrpBBRunMinutes", "QOSMaxBBPerJob",
		"QOSMaxBBPerNode", "QOSMaxBBPerUser", "QOSMinBB", "MaxBBPerAccount", "MaxCpuPerAccount",
		"MaxEnergyPerAccount", "MaxGRESPerAccount", "MaxNodePerAccount", "MaxLicensePerAccount",
		"MaxMemoryPerAccount", "MaxUnknownPerAccount", "MaxJobsPerAccount", "MaxSubmitJobsPerAccount",
		"AssocGrpBilling", "AssocGrpBillingMinutes", "AssocGrpBillingRunMinutes", "AssocMaxBillingPerJob",
		"AssocMaxBillingPerNode", "AssocMaxBillingMinutesPerJob", "QOSGrpBilling", "QOSGrpBillingMinutes",
		"QOSGrpBillingRunMinutes", "QOSMaxBillingPerJob", "QOSMaxBillingPerNode", "QOSMaxBillingPerUser",
		"QOSMaxBillingMinutesPerJob", "MaxBillingPerAccount", "QOSMinBilling",
		// Spellings of older releases.
		"AssocGrpCPUMinsLimit", "QOSGrpMemoryLimit", "QOSGrpNodesLimit", "AssocMaxCpusPerJobLimit",
		"QOSMinCPUsNotSatisfied",
	}
	for _, name := range names {
		if _, ok := parseLimitReason(name); !ok {
			t.Errorf("parseLimitReason(%q) failed", name)
			continue
		}
		got := ExplainPending(Job{State: JobPending, Reason: name, QOS: "normal"}, PendingContext{})
		if strings.Contains(got, "Slurm reason") || got == "" {
			t.Errorf("ExplainPending for %s fell back to %q", name, got)
		}
	}
	for _, name := range []string{"Resources", "Priority", "Maximum", "AssocGrp", "GrpCpuLimit", "MaxCpuPerJob", "AssocGrpCpuLimitX"} {
		if l, ok := parseLimitReason(name); ok {
			t.Errorf("parseLimitReason(%q) = %+v, want no limit reason", name, l)
		}
	}
}

func with(j Job, f func(*Job)) Job {
	f(&j)
	return j
}

func with2(pc PendingContext, f func(*PendingContext)) PendingContext {
	f(&pc)
	return pc
}

func TestWaitsOnOthers(t *testing.T) {
	for reason, want := range map[string]bool{
		"JobHeldUser": true, "JobHeldAdmin": true, "Dependency": true, "BeginTime": true,
		"AssocGrpCpuLimit": true, "AssocGrpGRES": true, "AssocMaxJobsLimit": true, "QOSMaxWallDurationPerJobLimit": true,
		"None": false, "Priority": false, "Resources": false, "": false,
		"ReqNodeNotAvail, UnavailableNodes:c1": false, "JobHeldUser, extra": true,
	} {
		if got := WaitsOnOthers(reason); got != want {
			t.Errorf("WaitsOnOthers(%q) = %v, want %v", reason, got, want)
		}
	}
}
