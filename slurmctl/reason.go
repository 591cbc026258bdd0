package slurmctl

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// PendingContext is what the caller knows around a pending job. Every field
// is optional: what is unknown is left out of the sentence, never guessed.
type PendingContext struct {
	// LimitScope names the owner of Limits as Slurmgate's users know it
	// ("project", "domain"). Slurm only has accounts, so "" reads "account".
	LimitScope string
	// Limits are the limits of the job's account: group limits (GrpTRES,
	// GrpJobs, GrpSubmitJobs) and the per-user and per-job ones (MaxJobs,
	// MaxSubmitJobs, MaxTRESPerJob, MaxWall) as they apply to the job.
	Limits Limits
	// InUse is the TRES held by the running jobs that count against Limits.
	// A nil map means unknown; a resource missing from a non-nil map is 0.
	InUse TRES
	// RunningJobs and SubmittedJobs count the jobs that count against
	// Limits: running, and running plus pending.
	RunningJobs   int
	SubmittedJobs int
	// Related are further associations whose limits can hold the job: the
	// user's own association within the account, the account's parents (a
	// project's domain). Slurm gives the same reason whichever level is full,
	// so the sentence names the first level, Limits first, that the job
	// would overrun.
	Related []LimitUsage
	// Partition is the job's partition as last listed; nil when unknown.
	Partition *Partition
	// QueuePosition is the job's 1-based place among its partition's
	// pending jobs ordered by priority; 0 when unknown.
	QueuePosition int
	// Now is when the sentence will be read: the estimated start is told
	// relative to it, in its time zone. Zero means time.Now().
	Now time.Time
}

// LimitUsage is one association's limits and what counts against them; its
// fields mean what the same-named fields of [PendingContext] mean.
type LimitUsage struct {
	Scope         string
	Limits        Limits
	InUse         TRES
	RunningJobs   int
	SubmittedJobs int
}

// ExplainPending says in a sentence why job j is still pending and, where
// known, how long it may wait: "waiting: project limit of 2 GPUs reached (2
// in use)", "waiting for 2 × a100 GPUs in partition gpu (1 free); estimated
// start 14:20". Sentences start with "waiting" when time alone may help,
// "held" when someone must release the job, and "will not start" when the
// job can never start as submitted. What the job asks for (TRES, CPUs,
// NodeCount, TimeLimit), its account, QOS and Slurm's estimated start
// (StartTime) come from j; the rest from pc. A reason it does not know is
// still shown as Slurm gave it. Jobs that are not pending get "".
func ExplainPending(j Job, pc PendingContext) string {
	if j.State != JobPending && j.State != "" {
		return ""
	}
	x := explainer{job: j, pc: pc, now: pc.Now}
	if x.now.IsZero() {
		x.now = time.Now()
	}
	return x.explain()
}

// WaitsOnOthers reports whether a job pending for reason cannot start until
// something other than the scheduler's next pass happens: a hold released,
// a dependency satisfied, its begin time reached, or an association or QOS
// limit lifted (another job ending, an administrator). A caller watching
// for the job to start can stop watching closely.
func WaitsOnOthers(reason string) bool {
	key, _ := reasonKey(reason)
	switch key {
	case "JobHeldUser", "JobHeldAdmin", "JobHoldMaxRequeue", "Dependency", "DependencyNeverSatisfied", "BeginTime":
		return true
	}
	_, limit := parseLimitReason(key)
	return limit
}

type explainer struct {
	job Job
	pc  PendingContext
	now time.Time
}

// reasonKey is the reason's name without the detail squeue and slurmctld
// sometimes append ("ReqNodeNotAvail, UnavailableNodes:c1").
func reasonKey(reason string) (key, detail string) {
	key, detail, _ = strings.Cut(strings.TrimSpace(reason), ",")
	return strings.TrimSpace(key), strings.TrimSpace(detail)
}

func (x *explainer) explain() string {
	key, detail := reasonKey(x.job.Reason)
	switch {
	case key == "" || key == "None":
		return x.waiting("queued; the scheduler has not considered it yet")
	case strings.HasPrefix(strings.ToLower(key), "launch failed"):
		// slurmctld requeues and holds a batch job whose launch failed, with
		// this text in place of a reason name.
		return "held: its launch failed on a node; an administrator should check the node, then release the job"
	case strings.HasPrefix(key, "Nodes_required_for_job_are_DOWN"):
		return x.waiting("waiting: nodes it needs are down, drained or reserved for jobs in higher-priority partitions")
	}
	if f, ok := simpleReasons[key]; ok {
		return f(x, detail)
	}
	if l, ok := parseLimitReason(key); ok {
		return x.limit(l)
	}
	return x.waiting("waiting (Slurm reason: " + strings.TrimSpace(x.job.Reason) + ")")
}

// simpleReasons are the reasons that are not resource limits, by the names
// of Slurm 22.05's job_reason_string().
var simpleReasons = map[string]func(x *explainer, detail string) string{
	"Resources": (*explainer).resources,
	"Priority": func(x *explainer, _ string) string {
		s := "waiting: higher-priority jobs are ahead"
		if p := x.pc.QueuePosition; p > 0 {
			s += fmt.Sprintf(" (position %d in queue)", p)
		}
		return x.waiting(s)
	},
	"Dependency": func(x *explainer, _ string) string {
		return x.waiting("waiting for the jobs it depends on")
	},
	"DependencyNeverSatisfied": func(*explainer, string) string {
		return "will not start: a job it depends on ended in a way that can never satisfy the dependency; cancel it and submit again"
	},
	"BeginTime": func(x *explainer, _ string) string {
		if at := x.when(x.job.StartTime); at != "" {
			return "waiting for its requested start time, " + at
		}
		return "waiting for its requested start time"
	},
	"JobHeldUser": func(*explainer, string) string {
		return "held by its owner; it starts only once released"
	},
	"JobHeldAdmin": func(*explainer, string) string {
		return "held by an administrator; it starts only once they release it"
	},
	"JobHoldMaxRequeue": func(*explainer, string) string {
		return "held: it was requeued too many times; an administrator must release it"
	},
	"PartitionDown": func(x *explainer, _ string) string {
		return x.waiting(fmt.Sprintf("waiting: partition %s is down until an administrator brings it back", x.partition()))
	},
	"PartitionInactive": func(x *explainer, _ string) string {
		return x.waiting(fmt.Sprintf("waiting: partition %s is inactive and starts no jobs until an administrator reactivates it", x.partition()))
	},
	"PartitionNodeLimit": func(x *explainer, _ string) string {
		nodes := ""
		if n := x.requestedNodes(); n > 0 {
			nodes = " " + plural(n, "node")
		}
		return fmt.Sprintf("will not start: it asks for%s, outside the node limits of partition %s; submit again with a node count the partition allows", nodes, x.partition())
	},
	"PartitionTimeLimit": func(x *explainer, _ string) string {
		var maxTime time.Duration
		if p := x.pc.Partition; p != nil {
			maxTime = p.MaxTime
		}
		return x.overTime("partition "+x.partition()+"'s", maxTime)
	},
	"ReqNodeNotAvail": func(x *explainer, detail string) string {
		switch {
		case strings.Contains(strings.ToLower(detail), "maintenance"):
			return x.waiting("waiting: the nodes it needs are reserved for maintenance")
		case strings.HasPrefix(detail, "UnavailableNodes:") && len(detail) > len("UnavailableNodes:"):
			return x.waiting("waiting: nodes it needs are down, drained or reserved (" + strings.TrimPrefix(detail, "UnavailableNodes:") + ")")
		}
		return x.waiting("waiting: nodes it needs are down, drained or reserved")
	},
	"NodeDown": func(x *explainer, _ string) string {
		return x.waiting("waiting: a node it needs is down")
	},
	"BadConstraints": func(x *explainer, _ string) string {
		return fmt.Sprintf("will not start: no node in partition %s can satisfy its request (features, memory or GPUs per node); submit again asking for less", x.partition())
	},
	"InvalidAccount": func(x *explainer, _ string) string {
		return fmt.Sprintf("will not start: %s is no longer valid for its user (removed, or the user left it)", x.accountName())
	},
	"InvalidQOS": func(x *explainer, _ string) string {
		return fmt.Sprintf("will not start: %s is not valid for %s", x.qos().ref, x.accountName())
	},
	"AccountNotAllowed": func(x *explainer, _ string) string {
		return fmt.Sprintf("will not start: partition %s does not accept jobs of %s", x.partition(), x.accountName())
	},
	"QOSNotAllowed": func(x *explainer, _ string) string {
		return fmt.Sprintf("will not start: partition %s does not accept jobs of %s", x.partition(), x.qos().ref)
	},
	"Licenses": func(x *explainer, _ string) string {
		return x.waiting("waiting for licenses")
	},
	"Reservation": func(x *explainer, _ string) string {
		return x.waiting("waiting for its reservation to begin")
	},
	"Prolog": func(*explainer, string) string {
		return "starting: the node prolog is running"
	},
	"Cleaning": func(x *explainer, _ string) string {
		return x.waiting("waiting: its previous run is still being cleaned up")
	},
	"BurstBufferResources": func(x *explainer, _ string) string {
		return x.waiting("waiting for burst buffer space")
	},
	"BurstBufferStageIn": func(x *explainer, _ string) string {
		return x.waiting("waiting for its burst buffer files to be staged in")
	},
	"FrontEndDown": func(x *explainer, _ string) string {
		return x.waiting("waiting: no front-end node is up")
	},
	"PowerNotAvail": func(x *explainer, _ string) string {
		return x.waiting("waiting for power capacity")
	},
	"PowerReserved": func(x *explainer, _ string) string {
		return x.waiting("waiting: power capacity is reserved for other jobs")
	},
	"QOSUsageThreshold": func(x *explainer, _ string) string {
		return x.waiting(fmt.Sprintf("waiting: %s has reached the usage threshold of %s", x.accountName(), x.qos().ref))
	},
	"DeadLine": func(*explainer, string) string {
		return "will not start: its deadline has passed"
	},
	"MaxMemPerLimit": func(x *explainer, _ string) string {
		return fmt.Sprintf("will not start: it asks for more memory per CPU or per node than partition %s allows; submit again asking for less", x.partition())
	},
	"PartitionConfig": func(x *explainer, _ string) string {
		return fmt.Sprintf("will not start: its request does not fit the configuration of partition %s", x.partition())
	},
	"ReservationDeleted": func(*explainer, string) string {
		return "will not start: its reservation was deleted"
	},
	"ReservationInvalid": func(*explainer, string) string {
		return "will not start: its reservation is not valid for it"
	},
	"JobLaunchFailure": func(*explainer, string) string {
		return "held: its launch failed on a node; an administrator should check the node, then release the job"
	},
	"AccountingPolicy": func(x *explainer, _ string) string {
		return x.waiting("waiting: an accounting policy limit holds it")
	},
	"JobArrayTaskLimit": func(x *explainer, _ string) string {
		return x.waiting("waiting: its job array already runs as many tasks as it may")
	},
	// Reasons of releases before TRES limits; kept because jobs in the
	// accounting database keep their reasons.
	"AssociationJobLimit": func(x *explainer, _ string) string {
		return x.waiting(fmt.Sprintf("waiting: %s job limit reached", assocOwner(x.pc.LimitScope).label))
	},
	"AssociationResourceLimit": func(x *explainer, _ string) string {
		return x.waiting(fmt.Sprintf("waiting: %s resource limit reached", assocOwner(x.pc.LimitScope).label))
	},
	"AssociationTimeLimit": func(x *explainer, _ string) string {
		return x.waiting(fmt.Sprintf("waiting: %s time limit reached", assocOwner(x.pc.LimitScope).label))
	},
	"QOSJobLimit": func(x *explainer, _ string) string {
		return x.waiting(fmt.Sprintf("waiting: %s job limit reached", x.qos().label))
	},
	"QOSResourceLimit": func(x *explainer, _ string) string {
		return x.waiting(fmt.Sprintf("waiting: %s resource limit reached", x.qos().label))
	},
	"QOSTimeLimit": func(x *explainer, _ string) string {
		return x.waiting(fmt.Sprintf("waiting: %s time limit reached", x.qos().label))
	},
}

// waiting appends the estimated start, which Slurm's backfill scheduler
// computes for jobs it expects to place.
func (x *explainer) waiting(s string) string {
	if at := x.when(x.job.StartTime); at != "" {
		return s + "; estimated start " + at
	}
	return s
}

// when tells a future instant relative to now, in now's time zone; "" for
// an unknown or past one (a stale estimate says nothing).
func (x *explainer) when(t time.Time) string {
	if t.IsZero() || !t.After(x.now) {
		return ""
	}
	t = t.In(x.now.Location())
	ty, tm, td := t.Date()
	ny, nm, nd := x.now.Date()
	days := int(time.Date(ty, tm, td, 0, 0, 0, 0, time.UTC).Sub(time.Date(ny, nm, nd, 0, 0, 0, 0, time.UTC)).Hours() / 24)
	switch {
	case days == 0:
		return t.Format("15:04")
	case days == 1:
		return t.Format("tomorrow 15:04")
	case days < 7:
		return t.Format("Mon 15:04")
	case ty == ny:
		return t.Format("2 Jan 15:04")
	}
	return t.Format("2 Jan 2006 15:04")
}

func (x *explainer) partition() string {
	if p := x.pc.Partition; p != nil && p.Name != "" {
		return p.Name
	}
	if x.job.Partition != "" {
		return x.job.Partition
	}
	return "(unknown)"
}

// accountName names the job's account, in the reader's terms when the
// caller gave them.
func (x *explainer) accountName() string {
	switch {
	case x.job.Account == "":
		return "its " + assocOwner(x.pc.LimitScope).label
	case x.pc.LimitScope != "" && x.pc.LimitScope != "account":
		return fmt.Sprintf("its %s (Slurm account %s)", x.pc.LimitScope, x.job.Account)
	}
	return "account " + x.job.Account
}

// An owner is whoever set a limit, named two ways: as a label ("project
// limit of 2 GPUs") and as a reference ("than the project allows").
type owner struct{ label, ref string }

func assocOwner(scope string) owner {
	if scope == "" {
		scope = "account"
	}
	return owner{scope, "the " + scope}
}

func (x *explainer) qos() owner {
	if x.job.QOS == "" {
		return owner{"QOS", "its QOS"}
	}
	name := strconv.Quote(x.job.QOS) + " QOS"
	return owner{name, "the " + name}
}

func (x *explainer) requestedNodes() int64 {
	if n := x.job.TRES["node"]; n > 0 {
		return n
	}
	return int64(x.job.NodeCount)
}

// requested is what the job asks for of a TRES. Slurm lists a typed GPU
// request under both gres/gpu and gres/gpu:TYPE when both are tracked; when
// only the typed form is there, the untyped total is their sum.
func (x *explainer) requested(key string) int64 {
	if n, ok := x.job.TRES[key]; ok {
		return n
	}
	if !strings.HasPrefix(key, "gres/") || strings.Contains(key, ":") {
		return 0
	}
	var sum int64
	for k, n := range x.job.TRES {
		if strings.HasPrefix(k, key+":") {
			sum += n
		}
	}
	return sum
}

// resources explains Reason=Resources: the job is next in line but what it
// needs is not free. It names the shortage when the partition's counts show
// one.
func (x *explainer) resources(string) string {
	p := x.pc.Partition
	if p == nil {
		return x.waiting("waiting for resources to become free")
	}
	var typed []string
	for k := range x.job.TRES {
		if strings.HasPrefix(k, "gres/gpu:") {
			typed = append(typed, k)
		}
	}
	slices.Sort(typed)
	for _, k := range typed {
		need, free := x.job.TRES[k], p.GPUs[strings.TrimPrefix(k, "gres/gpu:")].Free
		if free < need {
			return x.waiting(fmt.Sprintf("waiting for %s in partition %s (%d free)", quantity(k, need), p.Name, free))
		}
	}
	if need := x.requested("gres/gpu"); need > 0 && len(typed) == 0 && p.GPUs != nil {
		var free int64
		for _, c := range p.GPUs {
			free += c.Free
		}
		if free < need {
			return x.waiting(fmt.Sprintf("waiting for %s in partition %s (%d free)", quantity("gres/gpu", need), p.Name, free))
		}
	}
	need := x.job.TRES["cpu"]
	if need == 0 {
		need = int64(x.job.CPUs)
	}
	if p.TotalCPUs > 0 && need > int64(p.FreeCPUs) {
		return x.waiting(fmt.Sprintf("waiting for %s in partition %s (%d free)", quantity("cpu", need), p.Name, p.FreeCPUs))
	}
	return x.waiting(fmt.Sprintf("waiting for resources in partition %s", p.Name))
}

// overTime explains a time limit above a maximum that the job cannot
// exceed; whose is possessive ("the project's", "partition gpu's").
func (x *explainer) overTime(whose string, maxTime time.Duration) string {
	var b strings.Builder
	b.WriteString("will not start: its time limit")
	if x.job.TimeLimit > 0 {
		b.WriteString(" " + FormatTimeLimit(x.job.TimeLimit))
	}
	fmt.Fprintf(&b, " exceeds %s maximum", whose)
	if maxTime > 0 {
		m := FormatTimeLimit(maxTime)
		fmt.Fprintf(&b, " of %s; submit again with a time limit of %s or less", m, m)
	} else {
		b.WriteString("; submit again with a shorter time limit")
	}
	return b.String()
}

// A limitReason is one of Slurm's many resource-limit reasons taken apart:
// AssocGrpGRES is {qos: false, kind: "Grp", res: resGRES}. Decoding the names
// rather than listing them covers every resource, window and scope, and the
// spelling differences between releases (AssocGrpCPUMinutesLimit then
// AssocGrpCPUMinsLimit).
type limitReason struct {
	qos    bool   // a QOS limit, else an association limit
	kind   string // "Grp", "Max" or "Min"
	res    string // one of the res* constants
	window string // "", "mins" (TRESMins) or "runmins" (TRESRunMins)
	per    string // "", "job", "node", "user" or "account"
}

const (
	resCPU     = "cpu"
	resMem     = "mem"
	resNode    = "node"
	resGRES    = "gres"
	resBB      = "bb"
	resLicense = "license"
	resEnergy  = "energy"
	resBilling = "billing"
	resUnknown = "unknown"
	resJobs    = "jobs"
	resSubmit  = "submit"
	resWall    = "wall"
)

// A nameToken is one piece of a reason name and what it stands for.
type nameToken struct{ token, value string }

// The pieces of limit reason names, longer spellings first so that
// "SubmitJobs" is not read as "Submit…" nor "Jobs" as "Job" and a stray "s".
var (
	limitResTokens = []nameToken{
		{"SubmitJobs", resSubmit}, {"SubmitJob", resSubmit},
		{"WallDuration", resWall}, {"Wall", resWall},
		{"Memory", resMem}, {"Mem", resMem},
		{"Nodes", resNode}, {"Node", resNode},
		{"CPUs", resCPU}, {"Cpus", resCPU}, {"CPU", resCPU}, {"Cpu", resCPU},
		{"GRES", resGRES}, {"BB", resBB}, {"License", resLicense},
		{"Energy", resEnergy}, {"Billing", resBilling}, {"Unknown", resUnknown},
		{"Jobs", resJobs}, {"Job", resJobs},
	}
	limitWindowTokens = []nameToken{
		{"RunMinutes", "runmins"}, {"RunMins", "runmins"}, {"Minutes", "mins"}, {"Mins", "mins"},
	}
	limitPerTokens = []nameToken{
		{"PerJob", "job"}, {"PerNode", "node"}, {"PerUser", "user"}, {"PerAccount", "account"},
	}
)

// parseLimitReason decodes names of the form
// (Assoc|QOS)?(Grp|Max|Min)RESOURCE(RunMinutes|Minutes|…)?(PerJob|…)?(Limit|NotSatisfied)?
// where only QOS limits per account come without a prefix
// (MaxCpuPerAccount).
func parseLimitReason(name string) (limitReason, bool) {
	var l limitReason
	s := name
	switch {
	case strings.HasPrefix(s, "Assoc"):
		s = s[len("Assoc"):]
	case strings.HasPrefix(s, "QOS"):
		s, l.qos = s[len("QOS"):], true
	default:
		l.qos = true // verified below: must be a per-account limit
	}
	for _, k := range []string{"Grp", "Max", "Min"} {
		if strings.HasPrefix(s, k) {
			l.kind, s = k, s[len(k):]
			break
		}
	}
	if l.kind == "" {
		return limitReason{}, false
	}
	cut := func(tokens []nameToken) string {
		for _, t := range tokens {
			if strings.HasPrefix(s, t.token) {
				s = s[len(t.token):]
				return t.value
			}
		}
		return ""
	}
	if l.res = cut(limitResTokens); l.res == "" {
		return limitReason{}, false
	}
	l.window = cut(limitWindowTokens)
	l.per = cut(limitPerTokens)
	if s != "" && s != "Limit" && s != "NotSatisfied" {
		return limitReason{}, false
	}
	if !strings.HasPrefix(name, "Assoc") && !strings.HasPrefix(name, "QOS") && l.per != "account" {
		return limitReason{}, false
	}
	return l, true
}

// levels are the associations whose limits may hold the job, Limits first.
func (x *explainer) levels() []LimitUsage {
	first := LimitUsage{Scope: x.pc.LimitScope, Limits: x.pc.Limits, InUse: x.pc.InUse,
		RunningJobs: x.pc.RunningJobs, SubmittedJobs: x.pc.SubmittedJobs}
	return append([]LimitUsage{first}, x.pc.Related...)
}

func (x *explainer) limit(l limitReason) string {
	own := assocOwner(x.pc.LimitScope)
	if l.qos {
		own = x.qos()
	}
	noun := x.reasonNoun(l.res)
	switch {
	case l.res == resWall && l.kind == "Max":
		if !l.qos {
			for _, lvl := range x.levels() {
				if lvl.Limits.MaxWall > 0 {
					return x.overTime(assocOwner(lvl.Scope).ref+"'s", lvl.Limits.MaxWall)
				}
			}
		}
		return x.overTime(own.ref+"'s", 0)
	case l.res == resWall:
		return x.waiting(fmt.Sprintf("waiting: %s budget of running time (GrpWall) is used up", own.label))
	case l.res == resJobs || l.res == resSubmit:
		return x.jobCount(l, own)
	case l.kind == "Min":
		return fmt.Sprintf("will not start: it asks for fewer %s than %s requires; submit again asking for more", pluralNoun(noun), own.ref)
	case l.window == "mins" && l.kind == "Grp":
		return x.waiting(fmt.Sprintf("waiting: %s budget of %s-minutes is used up", own.label, noun))
	case l.window == "runmins":
		return x.waiting(fmt.Sprintf("waiting: %s limit on %s-minutes held by running jobs is reached; it frees up as they finish", own.label, noun))
	case l.window == "mins":
		return fmt.Sprintf("will not start: its %s-minutes (amount × time limit) exceed what %s allows per job; ask for less or a shorter time limit", noun, own.ref)
	case l.kind == "Grp" && !l.qos:
		return x.groupTRES(l.res, noun)
	case l.kind == "Grp":
		return x.waiting(fmt.Sprintf("waiting: %s %s limit reached", own.label, noun))
	case l.per == "user" || l.per == "account":
		return x.waiting(fmt.Sprintf("waiting: %s limit on %s per %s reached", own.label, pluralNoun(noun), l.per))
	case l.per == "node":
		return fmt.Sprintf("will not start: it asks for more %s per node than %s allows; submit again asking for less", pluralNoun(noun), own.ref)
	}
	if !l.qos {
		if s := x.perJobTRES(l.res); s != "" {
			return s
		}
	}
	return fmt.Sprintf("will not start: it asks for more %s than %s allows per job; submit again asking for less", pluralNoun(noun), own.ref)
}

// jobCount explains limits on numbers of jobs: GrpJobs and MaxJobs count
// running jobs, GrpSubmitJobs and MaxSubmitJobs running and pending ones.
// Max limits without a scope in their name are per user.
func (x *explainer) jobCount(l limitReason, own owner) string {
	what, count := "running jobs", "running"
	if l.res == resSubmit {
		what, count = "queued and running jobs", "submitted"
	}
	per := ""
	switch {
	case l.per != "":
		per = " per " + l.per
	case l.kind == "Max":
		per = " per user"
	}
	if l.qos {
		return x.waiting(fmt.Sprintf("waiting: %s limit on %s%s reached", own.label, what, per))
	}
	for _, lvl := range x.levels() {
		var limit, have int
		switch {
		case l.kind == "Grp" && l.res == resJobs:
			limit, have = lvl.Limits.GrpJobs, lvl.RunningJobs
		case l.kind == "Grp":
			limit, have = lvl.Limits.GrpSubmitJobs, lvl.SubmittedJobs
		case l.res == resJobs:
			limit, have = lvl.Limits.MaxJobs, lvl.RunningJobs
		default:
			limit, have = lvl.Limits.MaxSubmitJobs, lvl.SubmittedJobs
		}
		if limit <= 0 {
			continue
		}
		p := per
		if lvl.Scope == "user" {
			p = "" // "user limit of 2 running jobs per user" says it twice
		}
		s := fmt.Sprintf("waiting: %s limit of %d %s%s reached", assocOwner(lvl.Scope).label, limit, what, p)
		if have > 0 {
			s += fmt.Sprintf(" (%d %s)", have, count)
		}
		return x.waiting(s)
	}
	return x.waiting(fmt.Sprintf("waiting: %s limit on %s%s reached", own.label, what, per))
}

// groupTRES explains an association's GrpTRES limit being reached, naming
// the level, the resource and the amounts where they are known.
func (x *explainer) groupTRES(res, noun string) string {
	var fallback string
	for _, lvl := range x.levels() {
		for _, key := range limitKeys(lvl.Limits.GrpTRES, res) {
			limit, need := lvl.Limits.GrpTRES[key], x.requested(key)
			switch {
			case limit == 0:
				return fmt.Sprintf("will not start: the %s may not use %s", assocOwner(lvl.Scope).label, pluralNoun(resourceNoun(key)))
			case need > limit:
				return fmt.Sprintf("will not start: it asks for %s but the %s limit is %s; submit again asking for less",
					quantity(key, need), assocOwner(lvl.Scope).label, quantity(key, limit))
			}
			s := fmt.Sprintf("waiting: %s limit of %s reached", assocOwner(lvl.Scope).label, quantity(key, limit))
			if lvl.InUse == nil {
				if fallback == "" {
					fallback = s
				}
				continue
			}
			used := lvl.InUse[key]
			switch {
			case used >= limit:
				return x.waiting(fmt.Sprintf("%s (%s in use)", s, amount(key, used)))
			case used+need > limit:
				return x.waiting(fmt.Sprintf("%s (%s in use, this job asks for %s)", s, amount(key, used), amount(key, need)))
			}
			if fallback == "" {
				fallback = fmt.Sprintf("%s (%s in use)", s, amount(key, used))
			}
		}
	}
	if fallback != "" {
		return x.waiting(fallback)
	}
	return x.waiting(fmt.Sprintf("waiting: %s %s limit reached", assocOwner(x.pc.LimitScope).label, noun))
}

// perJobTRES explains MaxTRESPerJob with amounts when a level sets it.
func (x *explainer) perJobTRES(res string) string {
	for _, lvl := range x.levels() {
		for _, key := range limitKeys(lvl.Limits.MaxTRESPerJob, res) {
			limit, need := lvl.Limits.MaxTRESPerJob[key], x.requested(key)
			if need > limit {
				return fmt.Sprintf("will not start: it asks for %s but the %s allows at most %s per job; submit again asking for less",
					quantity(key, need), assocOwner(lvl.Scope).label, quantity(key, limit))
			}
		}
	}
	return ""
}

// limitKeys are the TRES names in t that a reason's resource covers, sorted
// so that the untyped gres/gpu comes before gres/gpu:a100.
func limitKeys(t TRES, res string) []string {
	var keys []string
	for _, k := range slices.Sorted(maps.Keys(t)) {
		switch res {
		case resGRES, resBB, resLicense:
			if strings.HasPrefix(k, res+"/") {
				keys = append(keys, k)
			}
		default:
			if k == res {
				keys = append(keys, k)
			}
		}
	}
	return keys
}

// reasonNoun names a reason's resource without an amount; GRES reads as
// GPU when the job asks for GPUs, which is what GRES means at most sites.
func (x *explainer) reasonNoun(res string) string {
	if res == resGRES {
		for k := range x.job.TRES {
			if strings.HasPrefix(k, "gres/gpu") {
				return "GPU"
			}
		}
		return "GRES"
	}
	return map[string]string{
		resCPU: "CPU", resMem: "memory", resNode: "node", resBB: "burst buffer",
		resLicense: "license", resEnergy: "energy", resBilling: "billing",
		resUnknown: "resource", resJobs: "job", resSubmit: "job", resWall: "time",
	}[res]
}

// resourceNoun names one TRES key without an amount.
func resourceNoun(key string) string {
	switch {
	case key == "cpu":
		return "CPU"
	case key == "mem":
		return "memory"
	case key == "node":
		return "node"
	case key == "gres/gpu":
		return "GPU"
	case strings.HasPrefix(key, "gres/gpu:"):
		return strings.TrimPrefix(key, "gres/gpu:") + " GPU"
	}
	_, name, _ := strings.Cut(key, "/")
	if name == "" {
		return key
	}
	return name
}

// pluralNoun turns a countable noun into its plural; mass nouns such as
// memory and energy stay as they are.
func pluralNoun(noun string) string {
	switch noun {
	case "memory", "energy", "billing", "time", "burst buffer":
		return noun
	}
	return noun + "s"
}

func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.FormatInt(n, 10) + " " + pluralNoun(noun)
}

// quantity renders an amount of a TRES: "8 CPUs", "64 GiB of memory",
// "2 GPUs", "2 × a100 GPUs".
func quantity(key string, n int64) string {
	switch {
	case key == "mem":
		return memorySize(n) + " of memory"
	case key == "cpu", key == "node", key == "gres/gpu":
		return plural(n, resourceNoun(key))
	case key == "billing":
		return plural(n, "billing unit")
	case strings.HasPrefix(key, "gres/gpu:"):
		return fmt.Sprintf("%d × %s", n, pluralIf(n, resourceNoun(key)))
	case strings.HasPrefix(key, "license/"):
		return fmt.Sprintf("%d %s %s", n, resourceNoun(key), pluralIf(n, "license"))
	}
	return fmt.Sprintf("%d %s", n, resourceNoun(key))
}

func pluralIf(n int64, noun string) string {
	if n == 1 {
		return noun
	}
	return pluralNoun(noun)
}

// amount renders an amount of a TRES without its noun, for "(2 in use)".
func amount(key string, n int64) string {
	if key == "mem" {
		return memorySize(n)
	}
	return strconv.FormatInt(n, 10)
}

// memorySize renders MiB in the largest binary unit that keeps it readable.
func memorySize(mib int64) string {
	switch {
	case mib >= 1<<20 && mib%(1<<20) == 0:
		return fmt.Sprintf("%d TiB", mib>>20)
	case mib >= 1<<10 && mib%(1<<10) == 0:
		return fmt.Sprintf("%d GiB", mib>>10)
	case mib >= 1<<10:
		// Two decimals at most: 2000 MiB is 1.95 GiB, not a rounded-up 2.0.
		s := strconv.FormatFloat(float64(mib)/(1<<10), 'f', 2, 64)
		return strings.TrimRight(strings.TrimRight(s, "0"), ".") + " GiB"
	}
	return fmt.Sprintf("%d MiB", mib)
}
