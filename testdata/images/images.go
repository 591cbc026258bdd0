// Package images provides the test images that testdata/images/build makes
// (a busybox SIF and a Debian + Jupyter SIF, labelled for Slurmgate), for
// tests of the container runtimes and of the catalogue.
//
// A test that needs them calls [Require]. The script runs at most once per
// test process and is cached across processes; when it cannot build the
// images the test fails with the reason and the fix, never skips.
package images

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// Images are the paths of the built SIF files, world-readable.
type Images struct {
	Busybox string
	Jupyter string
}

var (
	once   sync.Once
	built  Images
	errMsg string
)

// Require builds (or finds cached) the test images.
func Require(t testing.TB) Images {
	t.Helper()
	once.Do(func() { built, errMsg = build() })
	if errMsg != "" {
		t.Fatal(errMsg)
	}
	return built
}

func build() (Images, string) {
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "build")
	var stderr bytes.Buffer
	cmd := exec.Command(script)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return Images{}, fmt.Sprintf("%s failed (%v): %s", script, err, strings.TrimSpace(stderr.String()))
	}
	paths := strings.Fields(string(out))
	if len(paths) != 2 {
		return Images{}, fmt.Sprintf("%s printed %q; want the busybox and jupyter image paths", script, out)
	}
	return Images{Busybox: paths[0], Jupyter: paths[1]}, ""
}
