//go:build cgo && linux

package agent

import (
	"fmt"
	"slices"
	"strconv"
	"sync"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/slurmgate/slurmgate/tunnel"
)

// nvmlSampler reads utilisation and memory of the job's GPUs through NVML
// (libnvidia-ml.so.1, loaded at run time: the binary runs on nodes without
// it). On a CPU node it says why there are no GPU metrics once, not as an
// error.
type nvmlSampler struct {
	once sync.Once
	why  string
}

func newGPUSampler() gpuSampler { return &nvmlSampler{} }

func (s *nvmlSampler) sample() ([]tunnel.GPUMetrics, string) {
	ids, ok := visibleGPUs()
	if !ok {
		return nil, "" // no GPU allocated: nothing to say
	}
	s.once.Do(func() {
		if ret := nvml.Init(); ret != nvml.SUCCESS {
			s.why = "NVML: " + nvml.ErrorString(ret)
			if ret == nvml.ERROR_LIBRARY_NOT_FOUND {
				s.why = "libnvidia-ml.so.1 (NVIDIA driver) not found on this node"
			}
		}
	})
	if s.why != "" {
		return nil, s.why
	}
	n, ret := nvml.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return nil, "NVML device count: " + nvml.ErrorString(ret)
	}
	var out []tunnel.GPUMetrics
	var errs []string
	for i := range n {
		d, ret := nvml.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			continue // a device the job's cgroup hides
		}
		uuid, _ := d.GetUUID()
		// CUDA_VISIBLE_DEVICES holds UUIDs or indices; with Slurm's
		// ConstrainDevices the job sees only its devices, in order.
		if !slices.Contains(ids, uuid) && !slices.Contains(ids, strconv.Itoa(i)) {
			continue
		}
		g := tunnel.GPUMetrics{Index: i, UUID: uuid}
		g.Name, _ = d.GetName()
		if u, ret := d.GetUtilizationRates(); ret == nvml.SUCCESS {
			g.UtilizationPct = int(u.Gpu)
		} else {
			errs = append(errs, fmt.Sprintf("GPU %d utilisation: %s", i, nvml.ErrorString(ret)))
		}
		if m, ret := d.GetMemoryInfo(); ret == nvml.SUCCESS {
			g.MemoryUsedBytes, g.MemoryTotalBytes = m.Used, m.Total
		}
		out = append(out, g)
	}
	if len(out) == 0 {
		return nil, fmt.Sprintf("none of CUDA_VISIBLE_DEVICES=%v is among NVML's %d devices", ids, n)
	}
	if len(errs) > 0 {
		return out, fmt.Sprint(errs)
	}
	return out, ""
}
