package apptainer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/sylabs/sif/v2/pkg/sif"
)

// ImageFile is what inspecting an image on disk found.
type ImageFile struct {
	Path string `json:"path"`
	// Format is "sif" or "dir" (an unpacked root filesystem); empty when
	// the path is not an image (InspectImage's error says why).
	Format string `json:"format"`
	// Arch is the Go name of the primary partition's architecture ("amd64");
	// empty for directories.
	Arch string `json:"architecture,omitempty"`
	// ID is the SIF's unique id.
	ID      string     `json:"id,omitempty"`
	Primary *Partition `json:"primary_partition,omitempty"`
	// Labels are all the image's labels; Info is what Slurmgate's mean.
	Labels map[string]string `json:"labels"`
	Info   ImageInfo         `json:"info"`
}

// Partition is a SIF partition descriptor.
type Partition struct {
	// DescriptorID identifies the descriptor within the SIF.
	DescriptorID uint32 `json:"descriptor_id"`
	FS           string `json:"fs"`   // squashfs, ext3, …
	Type         string `json:"type"` // primary, system, data, overlay
	Offset       int64  `json:"offset"`
	Size         int64  `json:"size"`
}

// labelsJSON is where Apptainer keeps the labels inside an image's root
// filesystem; directory images are read from there.
const labelsJSON = ".singularity.d/labels.json"

// InspectImage reads a SIF file's header, primary partition and labels, or a
// directory image's labels. Labels come, later sources winning, from a SIF
// labels descriptor, from the JSON-generic metadata descriptor Apptainer ≥ 1.1
// writes ({"data":{"attributes":{"labels":{…}}}}), or for a directory from
// /.singularity.d/labels.json. Malformed Slurmgate labels are an error.
func InspectImage(path string) (ImageFile, error) {
	st, err := os.Stat(path)
	if err != nil {
		return ImageFile{}, fmt.Errorf("image: %w", err)
	}
	img := ImageFile{Path: path, Labels: map[string]string{}}
	if st.IsDir() {
		img.Format = "dir"
		b, err := os.ReadFile(filepath.Join(path, labelsJSON))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return img, fmt.Errorf("image %s: %w", path, err)
		}
		if err == nil {
			if err := json.Unmarshal(b, &img.Labels); err != nil {
				return img, fmt.Errorf("image %s: /%s is not a JSON object of strings: %w", path, labelsJSON, err)
			}
		}
	} else if err := inspectSIF(path, &img); err != nil {
		return img, err
	}
	img.Info, err = ParseLabels(img.Labels)
	if err != nil {
		return img, fmt.Errorf("image %s: %w", path, err)
	}
	return img, nil
}

func inspectSIF(path string, img *ImageFile) error {
	f, err := sif.LoadContainerFromPath(path, sif.OptLoadWithFlag(os.O_RDONLY))
	if err != nil {
		return fmt.Errorf("image %s is neither a directory nor a SIF file: %w", path, err)
	}
	defer f.UnloadContainer()
	img.Format = "sif"
	img.ID = f.ID()
	d, err := f.GetDescriptor(sif.WithPartitionType(sif.PartPrimSys))
	if err != nil {
		return fmt.Errorf("image %s has no primary system partition: %w", path, err)
	}
	fs, pt, arch, err := d.PartitionMetadata()
	if err != nil {
		return fmt.Errorf("image %s: primary partition: %w", path, err)
	}
	img.Arch = arch // Go's name; "unknown" when the SIF does not say
	img.Primary = &Partition{DescriptorID: d.ID(), FS: fsName(fs), Type: partName(pt), Offset: d.Offset(), Size: d.Size()}

	for _, dt := range []sif.DataType{sif.DataLabels, sif.DataGenericJSON} {
		ds, err := f.GetDescriptors(sif.WithDataType(dt))
		if err != nil {
			return fmt.Errorf("image %s: %w", path, err)
		}
		for _, d := range ds {
			b, err := io.ReadAll(io.LimitReader(d.GetReader(), 1<<20))
			if err != nil {
				return fmt.Errorf("image %s: descriptor %d: %w", path, d.ID(), err)
			}
			labels, err := decodeLabels(dt, b)
			if err != nil {
				return fmt.Errorf("image %s: descriptor %d (%s): %w", path, d.ID(), d.Name(), err)
			}
			for k, v := range labels {
				img.Labels[k] = v
			}
		}
	}
	return nil
}

// apptainerMetadata is the part of Apptainer's JSON-generic "inspect
// metadata" descriptor that holds the labels.
type apptainerMetadata struct {
	Data struct {
		Attributes struct {
			Labels map[string]string `json:"labels"`
		} `json:"attributes"`
	} `json:"data"`
}

func decodeLabels(dt sif.DataType, b []byte) (map[string]string, error) {
	if dt == sif.DataLabels {
		var labels map[string]string
		if err := json.Unmarshal(b, &labels); err != nil {
			return nil, fmt.Errorf("labels are not a JSON object of strings: %w", err)
		}
		return labels, nil
	}
	// Generic JSON may hold anything; only Apptainer's metadata carries labels.
	var md apptainerMetadata
	if json.Unmarshal(b, &md) != nil {
		return nil, nil
	}
	return md.Data.Attributes.Labels, nil
}

func fsName(fs sif.FSType) string {
	switch fs {
	case sif.FsSquash:
		return "squashfs"
	case sif.FsExt3:
		return "ext3"
	case sif.FsImmuObj:
		return "immutable"
	case sif.FsRaw:
		return "raw"
	case sif.FsEncryptedSquashfs:
		return "encrypted-squashfs"
	}
	return fmt.Sprintf("fs-%d", fs)
}

func partName(pt sif.PartType) string {
	switch pt {
	case sif.PartPrimSys:
		return "primary"
	case sif.PartSystem:
		return "system"
	case sif.PartData:
		return "data"
	case sif.PartOverlay:
		return "overlay"
	}
	return fmt.Sprintf("part-%d", pt)
}
