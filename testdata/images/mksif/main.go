// Command mksif wraps a SquashFS root filesystem into a SIF file the way
// `apptainer build` lays one out, without needing Apptainer: the SquashFS as
// the primary system partition, and the image's labels in the JSON-generic
// metadata descriptor that `apptainer inspect` reads. The test-image script
// (testdata/images/build) uses it.
//
//	mksif -squashfs rootfs.sqfs -labels labels.json -o image.sif
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/sylabs/sif/v2/pkg/sif"
)

func main() {
	sqfs := flag.String("squashfs", "", "SquashFS file holding the root filesystem")
	labelsPath := flag.String("labels", "", "JSON object of string labels (optional)")
	out := flag.String("o", "", "SIF file to write; replaced atomically")
	arch := flag.String("arch", runtime.GOARCH, "architecture of the root filesystem (Go's name)")
	flag.Parse()
	if *sqfs == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: mksif -squashfs FILE [-labels FILE] -o FILE.sif")
		os.Exit(2)
	}
	if err := build(*sqfs, *labelsPath, *out, *arch); err != nil {
		fmt.Fprintln(os.Stderr, "mksif:", err)
		os.Exit(1)
	}
}

// metadata is the shape of Apptainer's "inspect metadata" descriptor.
type metadata struct {
	Type string `json:"type"`
	Data struct {
		Attributes struct {
			Labels map[string]string `json:"labels"`
		} `json:"attributes"`
	} `json:"data"`
}

func build(sqfsPath, labelsPath, out, arch string) error {
	var md metadata
	md.Type = "container"
	md.Data.Attributes.Labels = map[string]string{}
	if labelsPath != "" {
		b, err := os.ReadFile(labelsPath)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &md.Data.Attributes.Labels); err != nil {
			return fmt.Errorf("%s: want a JSON object of strings: %w", labelsPath, err)
		}
	}
	mdJSON, err := json.Marshal(md)
	if err != nil {
		return err
	}

	fs, err := os.Open(sqfsPath)
	if err != nil {
		return err
	}
	defer fs.Close()
	part, err := sif.NewDescriptorInput(sif.DataPartition, fs,
		sif.OptPartitionMetadata(sif.FsSquash, sif.PartPrimSys, arch))
	if err != nil {
		return err
	}
	meta, err := sif.NewDescriptorInput(sif.DataGenericJSON, bytes.NewReader(mdJSON), sif.OptObjectName("metadata.json"))
	if err != nil {
		return err
	}

	// Write beside the target and rename, so a reader never sees half a SIF.
	tmp := filepath.Join(filepath.Dir(out), "."+filepath.Base(out)+".tmp")
	f, err := sif.CreateContainerAtPath(tmp, sif.OptCreateWithDescriptors(part, meta))
	if err != nil {
		return err
	}
	if err := f.UnloadContainer(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}
