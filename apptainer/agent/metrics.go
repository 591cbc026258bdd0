package agent

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/slurmgate/slurmgate/tunnel"
)

// cgroups locates the job's cgroup in both hierarchies. Nodes run cgroup
// v2 (unified), v1 (one hierarchy per controller) or both at once (hybrid:
// v1 controllers with v2 mounted at /sys/fs/cgroup/unified); each metric
// is read from v2 where the controller is there, else from v1.
type cgroups struct {
	v2     string            // directory of the job's v2 cgroup, "" if none
	v1     map[string]string // controller → directory of the job's v1 cgroup
	reason string            // why nothing was found
}

// jobLevel cuts a cgroup path below Slurm's job level
// (/slurm/uid_2001/job_42/step_batch/… → /slurm/uid_2001/job_42), so the
// metrics are the whole job's, not just the agent's step.
var jobLevel = regexp.MustCompile(`^(.*/job_[0-9]+)(/.*)?$`)

func findCgroups(procCgroup, mountinfo string) cgroups {
	cg := cgroups{v1: map[string]string{}}
	mounts := map[string]string{} // controller ("" for v2) → mount point
	mi, err := os.ReadFile(mountinfo)
	if err != nil {
		cg.reason = err.Error()
		return cg
	}
	for line := range strings.Lines(string(mi)) {
		// id parent major:minor root mountpoint options ... - fstype source superoptions
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 3 {
			continue
		}
		switch g[0] {
		case "cgroup2":
			mounts[""] = f[4]
		case "cgroup":
			for opt := range strings.SplitSeq(g[2], ",") {
				mounts[opt] = f[4]
			}
		}
	}
	pc, err := os.ReadFile(procCgroup)
	if err != nil {
		cg.reason = err.Error()
		return cg
	}
	inJob := false // some controller puts this process in a Slurm job
	for line := range strings.Lines(string(pc)) {
		if parts := strings.SplitN(strings.TrimSpace(line), ":", 3); len(parts) == 3 && jobLevel.MatchString(parts[2]) {
			inJob = true
		}
	}
	for line := range strings.Lines(string(pc)) {
		parts := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(parts) != 3 {
			continue
		}
		path := parts[2]
		if m := jobLevel.FindStringSubmatch(path); m != nil {
			path = m[1]
		}
		if path == "/" && inJob {
			// In a Slurm job the root cgroup is the whole node, not the
			// job: Slurm left this controller unconstrained (hybrid nodes
			// put cpu and cpuacct there). Reading it would make every
			// session on a busy node look busy and never idle.
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			if mp, ok := mounts[""]; ok {
				cg.v2 = filepath.Join(mp, path)
			}
			continue
		}
		for ctrl := range strings.SplitSeq(parts[1], ",") {
			if mp, ok := mounts[ctrl]; ok {
				cg.v1[ctrl] = filepath.Join(mp, path)
			}
		}
	}
	if cg.v2 == "" && len(cg.v1) == 0 {
		cg.reason = "no cgroup of this process found in " + procCgroup
	}
	return cg
}

func readUint(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return 0, nil
	}
	return strconv.ParseUint(s, 10, 64)
}

func readKey(path, key string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		if k == key {
			return strconv.ParseUint(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("%s has no %s", path, key)
}

// cpuSeconds is the job's CPU time: v2 cpu.stat usage_usec, else v1
// cpuacct.usage (nanoseconds).
func (cg cgroups) cpuSeconds() (float64, error) {
	if cg.v2 != "" {
		if us, err := readKey(filepath.Join(cg.v2, "cpu.stat"), "usage_usec"); err == nil {
			return float64(us) / 1e6, nil
		}
	}
	if d, ok := cg.v1["cpuacct"]; ok {
		ns, err := readUint(filepath.Join(d, "cpuacct.usage"))
		return float64(ns) / 1e9, err
	}
	return 0, fmt.Errorf("no cpu accounting in the job's cgroup (%s)", cg.describe())
}

// memory is the job's memory use and limit (0: none).
func (cg cgroups) memory() (used, limit uint64, err error) {
	if cg.v2 != "" {
		if used, err = readUint(filepath.Join(cg.v2, "memory.current")); err == nil {
			limit, _ = readUint(filepath.Join(cg.v2, "memory.max"))
			return used, limit, nil
		}
	}
	if d, ok := cg.v1["memory"]; ok {
		if used, err = readUint(filepath.Join(d, "memory.usage_in_bytes")); err != nil {
			return 0, 0, err
		}
		limit, _ = readUint(filepath.Join(d, "memory.limit_in_bytes"))
		if limit >= 1<<62 { // v1 writes "no limit" as a huge page-aligned number
			limit = 0
		}
		return used, limit, nil
	}
	return 0, 0, fmt.Errorf("no memory controller in the job's cgroup (%s)", cg.describe())
}

func (cg cgroups) describe() string {
	if cg.reason != "" {
		return cg.reason
	}
	return fmt.Sprintf("v2 %q, v1 %v", cg.v2, cg.v1)
}

// sampler turns cumulative counters into a report.
type sampler struct {
	cg      cgroups
	gpus    gpuSampler
	lastAt  time.Time
	lastCPU float64
}

func newSampler() *sampler {
	return &sampler{cg: findCgroups("/proc/self/cgroup", "/proc/self/mountinfo"), gpus: newGPUSampler()}
}

func (s *sampler) sample() *tunnel.Metrics {
	m := &tunnel.Metrics{}
	now := time.Now()
	if cpu, err := s.cg.cpuSeconds(); err == nil {
		m.CPUSeconds = cpu
		if !s.lastAt.IsZero() {
			m.CPUCores = (cpu - s.lastCPU) / now.Sub(s.lastAt).Seconds()
		}
		s.lastAt, s.lastCPU = now, cpu
	} else {
		m.Unavailable = append(m.Unavailable, "cpu: "+err.Error())
	}
	if used, limit, err := s.cg.memory(); err == nil {
		m.MemoryBytes, m.MemoryLimitBytes = used, limit
	} else {
		m.Unavailable = append(m.Unavailable, "memory: "+err.Error())
	}
	gpus, why := s.gpus.sample()
	m.GPUs = gpus
	if why != "" {
		m.Unavailable = append(m.Unavailable, "GPU metrics unavailable: "+why)
	}
	return m
}

// gpuSampler reads the job's GPUs; sample returns why it cannot, if so.
type gpuSampler interface {
	sample() ([]tunnel.GPUMetrics, string)
}

// visibleGPUs lists the job's GPUs as Slurm and CUDA name them: UUIDs or
// indices from CUDA_VISIBLE_DEVICES. An empty result with ok false means
// no GPU was allocated.
func visibleGPUs() (ids []string, ok bool) {
	v, set := os.LookupEnv("CUDA_VISIBLE_DEVICES")
	if !set || v == "" || v == "NoDevFiles" {
		return nil, false
	}
	return strings.Split(v, ","), true
}
