package apptainer

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/slurmgate/slurmgate/testdata/images"
)

func TestInspectTestImages(t *testing.T) {
	img := images.Require(t)
	for _, tc := range []struct {
		path, service string
		port          int
		baseURL       bool
	}{
		{img.Busybox, "httpd", 8080, false},
		{img.Jupyter, "jupyter", 8888, true},
	} {
		f, err := InspectImage(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if f.Format != "sif" || f.Arch != runtime.GOARCH || f.ID == "" {
			t.Errorf("%s: format %q arch %q id %q; want a %s SIF", tc.path, f.Format, f.Arch, f.ID, runtime.GOARCH)
		}
		p := f.Primary
		st, _ := os.Stat(tc.path)
		if p == nil || p.FS != "squashfs" || p.Type != "primary" || p.Offset <= 0 || p.Size <= 0 || p.Offset+p.Size > st.Size() {
			t.Errorf("%s: primary partition %+v (file size %d)", tc.path, p, st.Size())
		}
		if len(f.Info.Services) != 1 || f.Info.Services[0].Name != tc.service || f.Info.Services[0].Port != tc.port ||
			f.Info.Services[0].BaseURL != tc.baseURL || f.Labels[LabelService+tc.service] == "" {
			t.Errorf("%s: labels %v → services %+v", tc.path, f.Labels, f.Info.Services)
		}
	}
}

func TestInspectDirectoryImage(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, ".singularity.d"), 0o755)
	os.WriteFile(filepath.Join(dir, labelsJSON), []byte(`{"org.slurmgate.service.vscode":"http:8080","org.slurmgate.service.vscode.command":"code-server --bind-addr 127.0.0.1:{port}"}`), 0o644)
	f, err := InspectImage(dir)
	if err != nil {
		t.Fatal(err)
	}
	if f.Format != "dir" || len(f.Info.Services) != 1 || f.Info.Services[0].Name != "vscode" || f.Info.Services[0].BaseURL {
		t.Errorf("directory image: %+v", f)
	}
	// Bad labels and files that are not images are errors that say so.
	os.WriteFile(filepath.Join(dir, labelsJSON), []byte(`{"org.slurmgate.service.vscode":"http"}`), 0o644)
	if _, err := InspectImage(dir); err == nil || !strings.Contains(err.Error(), "PROTOCOL:PORT") {
		t.Errorf("bad label: %v", err)
	}
	notSIF := filepath.Join(dir, "x.sif")
	os.WriteFile(notSIF, []byte("#!/bin/sh\n"), 0o644)
	if _, err := InspectImage(notSIF); err == nil || !strings.Contains(err.Error(), "neither a directory nor a SIF") {
		t.Errorf("not a SIF: %v", err)
	}
}
