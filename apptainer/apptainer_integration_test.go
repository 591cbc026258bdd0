//go:build apptainer

package apptainer

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slurmgate/slurmgate/testdata/images"
)

// TestApptainerInstance runs a real Apptainer instance. Apptainer is not
// packaged for Debian 12, so this file is built only with the apptainer tag,
// which `make test` adds where apptainer is on PATH; with the tag and no
// apptainer, the test fails.
func TestApptainerInstance(t *testing.T) {
	if _, err := exec.LookPath("apptainer"); err != nil {
		t.Fatal("built with -tags apptainer but apptainer is not on PATH: install Apptainer (https://apptainer.org/docs/admin/main/installation.html)")
	}
	img := images.Require(t)
	d, _ := LookupDriver("apptainer")
	dir := t.TempDir()
	ctx := t.Context()
	inst, err := d.Start(ctx, Spec{SessionID: filepath.Base(dir), Image: img.Busybox, Env: []string{"A=spec"},
		Mounts: []Mount{{Source: dir, Target: "/home/work/data"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Stop(ctx)
	cmd, _ := inst.Command(ctx, []string{"sh", "-c", `echo "$A $B" > /home/work/data/x; cat /home/work/data/x`}, []string{"B=call"})
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "spec call" {
		t.Fatalf("exec printed %q (%v)", out, err)
	}
	if err := inst.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}
