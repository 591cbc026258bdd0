package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFindCgroupsOfASlurmJob(t *testing.T) {
	mountinfo := `25 30 0:22 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
28 25 0:25 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
29 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
`
	cases := []struct {
		name, proc, mounts string
		v2, mem, cpuacct   string
	}{
		{"hybrid", "4:memory:/slurm_c1/uid_2001/job_42/step_batch/task_0\n3:cpu,cpuacct:/slurm_c1/uid_2001/job_42/step_batch\n0::/user.slice\n", mountinfo,
			"/sys/fs/cgroup/unified/user.slice", "/sys/fs/cgroup/memory/slurm_c1/uid_2001/job_42", "/sys/fs/cgroup/cpu,cpuacct/slurm_c1/uid_2001/job_42"},
		// This test cluster: Slurm constrains memory but leaves cpu,cpuacct
		// and v2 at the root, which is the whole node, not the job.
		{"root controllers in a job", "4:memory:/slurm_c1/uid_2001/job_42/step_batch/task_0\n3:cpu,cpuacct:/\n0::/\n", mountinfo,
			"", "/sys/fs/cgroup/memory/slurm_c1/uid_2001/job_42", ""},
		{"v2", "0::/system.slice/slurmstepd.scope/job_7/step_0/user/task_0\n",
			"30 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
			"/sys/fs/cgroup/system.slice/slurmstepd.scope/job_7", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "cgroup"), []byte(c.proc), 0o600)
			os.WriteFile(filepath.Join(dir, "mountinfo"), []byte(c.mounts), 0o600)
			cg := findCgroups(filepath.Join(dir, "cgroup"), filepath.Join(dir, "mountinfo"))
			if cg.v2 != c.v2 || cg.v1["memory"] != c.mem || cg.v1["cpuacct"] != c.cpuacct {
				t.Errorf("found v2 %q, v1 %v; want v2 %q, memory %q, cpuacct %q", cg.v2, cg.v1, c.v2, c.mem, c.cpuacct)
			}
		})
	}
}

// On this machine the real /proc/self/cgroup must yield memory and CPU
// (hybrid cgroups: v1 controllers).
func TestSamplerReadsThisMachine(t *testing.T) {
	s := newSampler()
	s.sample()
	m := s.sample()
	if m.MemoryBytes == 0 || m.CPUSeconds == 0 {
		t.Errorf("metrics %+v from cgroups %s", m, s.cg.describe())
	}
}

// With CUDA_VISIBLE_DEVICES set, GPU metrics come from NVML on a GPU node,
// or a plain reason on a node without the NVIDIA driver (this test
// machine); never both missing.
func TestGPUMetricsOrReason(t *testing.T) {
	t.Setenv("CUDA_VISIBLE_DEVICES", "0")
	gpus, why := newGPUSampler().sample()
	t.Logf("GPUs %+v, unavailable: %q", gpus, why)
	switch {
	case len(gpus) > 0:
		if gpus[0].MemoryTotalBytes == 0 || gpus[0].UUID == "" {
			t.Errorf("GPU 0 without memory or UUID: %+v", gpus[0])
		}
	case why == "":
		t.Error("no GPU metrics and no reason")
	case strings.Contains(why, "not found") && !strings.Contains(why, "libnvidia-ml"):
		t.Errorf("reason %q does not name the missing library", why)
	}
	os.Unsetenv("CUDA_VISIBLE_DEVICES")
	if gpus, why := newGPUSampler().sample(); len(gpus) > 0 || why != "" {
		t.Errorf("without GPUs: %v %q; want nothing to say", gpus, why)
	}
}
