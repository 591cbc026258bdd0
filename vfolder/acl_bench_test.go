package vfolder

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkGrant applies and removes a share on a tree of 200 directories
// and 10,000 files, walking in parallel (as Grant does) against one worker
// as the baseline, and reports the speed-up.
func BenchmarkGrant(b *testing.B) {
	dir := b.TempDir()
	for i := range 200 {
		d := filepath.Join(dir, fmt.Sprintf("d%03d", i/20), fmt.Sprintf("e%02d", i%20))
		if err := os.MkdirAll(d, 0o755); err != nil {
			b.Fatal(err)
		}
		for j := range 50 {
			if err := os.WriteFile(filepath.Join(d, fmt.Sprint(j)), nil, 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	run := func(workers, perm int) time.Duration {
		t0 := time.Now()
		s := shareACL{uid: 2002, owner: 2001, perm: perm}
		if err := walkDirs(b.Context(), r, workers, s.dir); err != nil {
			b.Fatal(err)
		}
		return time.Since(t0)
	}
	var one, par time.Duration
	b.ResetTimer()
	for range b.N {
		one += run(1, permR|permW|permX) + run(1, -1)
		par += run(defaultWorkers, permR|permW|permX) + run(defaultWorkers, -1)
	}
	b.ReportMetric(float64(one)/float64(par), "x-one-worker-speed")
	b.Logf("grant+revoke on 10,200 entries: %v with %d workers, %v with one; ratio %.2f",
		par/time.Duration(b.N), defaultWorkers, one/time.Duration(b.N), float64(one)/float64(par))
}
