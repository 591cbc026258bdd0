package apptainer

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/slurmgate/slurmgate/testdata/images"
)

// Sessions starting at once on one node share the cache: all must get the
// same complete entry, and no temporary file may be left behind.
func TestImageCacheConcurrentPreparation(t *testing.T) {
	img := images.Require(t)
	cache := t.TempDir()
	for _, fuse := range []bool{true, false} {
		var wg sync.WaitGroup
		got := make([]string, 6)
		errs := make([]error, 6)
		for i := range got {
			wg.Go(func() { got[i], errs[i] = cachedImage(t.Context(), img.Busybox, cache, fuse) })
		}
		wg.Wait()
		for i := range got {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			if got[i] != got[0] {
				t.Fatalf("fuse=%v: preparations disagree: %q vs %q", fuse, got[i], got[0])
			}
		}
		if fuse {
			b, err := os.ReadFile(got[0])
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(b)
			if want := hex.EncodeToString(sum[:]) + ".sqfs"; filepath.Base(got[0]) != want {
				t.Errorf("cached SquashFS %s is not named by its content's SHA-256 (%s)", got[0], want)
			}
		} else if _, err := os.Stat(filepath.Join(got[0], "bin", "busybox")); err != nil {
			t.Errorf("unpacked image lacks /bin/busybox: %v", err)
		}
	}
	filepath.Walk(cache, func(p string, _ os.FileInfo, _ error) error {
		if strings.HasPrefix(filepath.Base(p), ".partial-") {
			t.Errorf("temporary %s left in the cache", p)
		}
		return nil
	})
}
