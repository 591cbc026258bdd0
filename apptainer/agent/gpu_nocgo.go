//go:build !cgo || !linux

package agent

import "github.com/slurmgate/slurmgate/tunnel"

// Without cgo there is no way to load NVML.
type noGPUSampler struct{}

func newGPUSampler() gpuSampler { return noGPUSampler{} }

func (noGPUSampler) sample() ([]tunnel.GPUMetrics, string) {
	if _, ok := visibleGPUs(); !ok {
		return nil, ""
	}
	return nil, "this slurmgate was built without cgo, so it cannot load NVML"
}
