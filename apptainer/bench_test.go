package apptainer

import (
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/slurmgate/slurmgate/testdata/images"
)

// BenchmarkCommandStart: the cost of running `true` in a charliecloud
// container (ch-run over the unpacked busybox image) against running it as a
// host process (runtime none), measured in the same run.
func BenchmarkCommandStart(b *testing.B) {
	img := images.Require(b)
	dir := b.TempDir()
	os.Setenv("USER", "root") // ch-run wants $USER; the benchmark runs as whoever runs it
	run := func(d Driver, spec Spec) time.Duration {
		inst, err := d.Start(b.Context(), spec)
		if err != nil {
			b.Fatal(err)
		}
		defer inst.Stop(b.Context())
		t0 := time.Now()
		for range b.N {
			cmd, _ := inst.Command(b.Context(), []string{"true"}, nil)
			cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
			if err := cmd.Run(); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(t0) / time.Duration(b.N)
	}
	host := run(none{}, Spec{SessionID: "bench-none"})
	b.ResetTimer()
	ch := run(charliecloud{}, Spec{SessionID: "bench-ch", Image: img.Busybox,
		StateDir: filepath.Join(dir, "state"), CacheDir: filepath.Join(dir, "cache")})
	b.ReportMetric(float64(host.Microseconds()), "host-µs/op")
	b.ReportMetric(float64(ch.Microseconds()), "ch-run-µs/op")
	b.ReportMetric(float64(ch)/float64(host), "ch-run/host")
}
