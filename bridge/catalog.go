package bridge

import (
	"context"
	"errors"
	"io/fs"
	"maps"
	"path/filepath"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/slurmgate/slurmgate/apptainer"
)

// ScalingGroup is where sessions run: partitions of one Slurm cluster.
type ScalingGroup struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Cluster     string   `json:"cluster"`
	Partitions  []string `json:"partitions"`
	// GPUTypes the partitions offer ("a100"); empty when they have no GPUs.
	GPUTypes []string `json:"gpu_types"`
	// Runtime is the default container runtime: none, apptainer or charliecloud.
	Runtime string `json:"runtime"`
}

// Preset is a named resource shape users pick instead of numbers.
type Preset struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	CPUs        int    `json:"cpus"`
	MemoryMB    int64  `json:"memory_mb"`
	GPUs        int    `json:"gpus"`
	GPUType     string `json:"gpu_type"`
	TimeLimitS  *int64 `json:"time_limit_s,omitempty"`
}

// Image is a catalogue entry: a container image users may launch.
type Image struct {
	Name     string `json:"name"`
	Tag      string `json:"tag"`
	Location string `json:"location"`
	Runtime  string `json:"runtime"`
	// Labels are the image's own (read from the file when the gateway can)
	// overlaid with those given when it was added.
	Labels    map[string]string `json:"labels"`
	CreatedAt time.Time         `json:"created_at"`
	// Architecture of a SIF image (Go's name, "amd64"); empty when unknown.
	Architecture string `json:"architecture"`
	// Info is what Slurmgate's labels declare: services, minimum resources.
	Info apptainer.ImageInfo `json:"info"`
}

// Ref is "name:tag".
func (i Image) Ref() string { return i.Name + ":" + i.Tag }

var (
	catalogName = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)
	imageName   = regexp.MustCompile(`^[a-z0-9][a-z0-9_./-]{0,126}$`)
	imageTag    = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	runtimes    = map[string]bool{"none": true, "apptainer": true, "charliecloud": true}
)

// CreateScalingGroup registers partitions as a scaling group. Superadmins only.
func (b *Bridge) CreateScalingGroup(ctx context.Context, a Actor, sg ScalingGroup) (ScalingGroup, error) {
	if err := requireSuperadmin(a, "manage scaling groups"); err != nil {
		return ScalingGroup{}, err
	}
	if !catalogName.MatchString(sg.Name) {
		return ScalingGroup{}, invalid("name", "scaling group name %q: lower-case letters, digits, '_', '.', '-'", sg.Name)
	}
	if sg.Cluster == "" {
		sg.Cluster = b.cfg.Cluster
	}
	if len(sg.Partitions) == 0 {
		return ScalingGroup{}, invalid("partitions", "a scaling group needs at least one Slurm partition")
	}
	for _, p := range sg.Partitions {
		if !catalogName.MatchString(p) {
			return ScalingGroup{}, invalid("partitions", "partition name %q is not valid", p)
		}
	}
	if sg.GPUTypes == nil {
		sg.GPUTypes = []string{}
	}
	if sg.Runtime == "" {
		sg.Runtime = "none"
	}
	if !runtimes[sg.Runtime] {
		return ScalingGroup{}, invalid("runtime", "runtime %q: want none, apptainer or charliecloud", sg.Runtime)
	}
	_, err := b.db.Exec(ctx, `INSERT INTO scaling_groups (name, description, cluster, partitions, gpu_types, runtime)
		VALUES ($1, $2, $3, $4, $5, $6)`, sg.Name, sg.Description, sg.Cluster, sg.Partitions, sg.GPUTypes, sg.Runtime)
	if err != nil {
		return ScalingGroup{}, dbError(err, "scaling group "+sg.Name)
	}
	return sg, nil
}

// ScalingGroups lists all scaling groups; every user may read the catalogue.
func (b *Bridge) ScalingGroups(ctx context.Context) ([]ScalingGroup, error) {
	rows, _ := b.db.Query(ctx, scalingGroupSelect+` ORDER BY name`)
	return pgx.CollectRows(rows, pgx.RowToStructByPos[ScalingGroup])
}

// scalingGroupSelect, presetSelect and imageSelect read catalogue entries
// as pgx.RowToStructByPos scans them; CreateSession's reads use them too.
const (
	scalingGroupSelect = `SELECT name, description, cluster, partitions, gpu_types, runtime FROM scaling_groups`
	presetSelect       = `SELECT name, description, cpus, memory_mb, gpus, gpu_type, time_limit_s FROM presets`
	imageSelect        = `SELECT name, tag, location, runtime, labels, created_at, architecture, info FROM images`
)

// ScalingGroup returns one scaling group.
func (b *Bridge) ScalingGroup(ctx context.Context, name string) (ScalingGroup, error) {
	rows, _ := b.db.Query(ctx, scalingGroupSelect+` WHERE name = $1`, name)
	sg, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByPos[ScalingGroup])
	if errors.Is(err, pgx.ErrNoRows) {
		return ScalingGroup{}, notFound("scaling group", name)
	}
	return sg, err
}

// DeleteScalingGroup removes a scaling group no session refers to.
func (b *Bridge) DeleteScalingGroup(ctx context.Context, a Actor, name string) error {
	if err := requireSuperadmin(a, "manage scaling groups"); err != nil {
		return err
	}
	tag, err := b.db.Exec(ctx, `DELETE FROM scaling_groups WHERE name = $1`, name)
	if err != nil {
		return dbError(err, "scaling group "+name)
	}
	if tag.RowsAffected() == 0 {
		return notFound("scaling group", name)
	}
	return nil
}

// CreatePreset adds a resource preset. Superadmins only.
func (b *Bridge) CreatePreset(ctx context.Context, a Actor, p Preset) (Preset, error) {
	if err := requireSuperadmin(a, "manage presets"); err != nil {
		return Preset{}, err
	}
	switch {
	case !catalogName.MatchString(p.Name):
		return Preset{}, invalid("name", "preset name %q: lower-case letters, digits, '_', '.', '-'", p.Name)
	case p.CPUs <= 0:
		return Preset{}, invalid("cpus", "cpus must be at least 1")
	case p.MemoryMB <= 0:
		return Preset{}, invalid("memory_mb", "memory_mb must be at least 1")
	case p.GPUs < 0:
		return Preset{}, invalid("gpus", "gpus must not be negative")
	case p.TimeLimitS != nil && (*p.TimeLimitS <= 0 || time.Duration(*p.TimeLimitS)*time.Second > maxLifetime):
		return Preset{}, invalid("time_limit_s", "time_limit_s must be between 1 second and a year")
	}
	_, err := b.db.Exec(ctx, `INSERT INTO presets (name, description, cpus, memory_mb, gpus, gpu_type, time_limit_s)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, p.Name, p.Description, p.CPUs, p.MemoryMB, p.GPUs, p.GPUType, p.TimeLimitS)
	if err != nil {
		return Preset{}, dbError(err, "preset "+p.Name)
	}
	return p, nil
}

// Presets lists the resource presets.
func (b *Bridge) Presets(ctx context.Context) ([]Preset, error) {
	rows, _ := b.db.Query(ctx, presetSelect+` ORDER BY name`)
	return pgx.CollectRows(rows, pgx.RowToStructByPos[Preset])
}

func (b *Bridge) preset(ctx context.Context, name string) (Preset, error) {
	rows, _ := b.db.Query(ctx, presetSelect+` WHERE name = $1`, name)
	p, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByPos[Preset])
	if errors.Is(err, pgx.ErrNoRows) {
		return Preset{}, invalid("preset", "preset %q does not exist; `GET /api/v1/presets` lists them", name)
	}
	return p, err
}

// DeletePreset removes a preset.
func (b *Bridge) DeletePreset(ctx context.Context, a Actor, name string) error {
	if err := requireSuperadmin(a, "manage presets"); err != nil {
		return err
	}
	tag, err := b.db.Exec(ctx, `DELETE FROM presets WHERE name = $1`, name)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return notFound("preset", name)
	}
	return nil
}

// CreateImage adds an image to the catalogue. Superadmins only.
func (b *Bridge) CreateImage(ctx context.Context, a Actor, img Image) (Image, error) {
	if err := requireSuperadmin(a, "manage images"); err != nil {
		return Image{}, err
	}
	if img.Tag == "" {
		img.Tag = "latest"
	}
	switch {
	case !imageName.MatchString(img.Name):
		return Image{}, invalid("name", "image name %q: lower-case letters, digits, '_', '.', '/', '-'", img.Name)
	case !imageTag.MatchString(img.Tag):
		return Image{}, invalid("tag", "image tag %q is not valid", img.Tag)
	case !filepath.IsAbs(img.Location) || filepath.Clean(img.Location) != img.Location:
		return Image{}, invalid("location", "image location %q: want a clean absolute path on shared storage", img.Location)
	case img.Runtime != "" && !runtimes[img.Runtime]:
		return Image{}, invalid("runtime", "runtime %q: want none, apptainer or charliecloud", img.Runtime)
	}
	if err := inspectImage(&img); err != nil {
		return Image{}, err
	}
	err := b.db.QueryRow(ctx, `INSERT INTO images (name, tag, location, runtime, labels, architecture, info)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING created_at`,
		img.Name, img.Tag, img.Location, img.Runtime, img.Labels, img.Architecture, img.Info).Scan(&img.CreatedAt)
	if err != nil {
		return Image{}, dbError(err, "image "+img.Ref())
	}
	return img, nil
}

// inspectImage fills in what the image file says about itself: labels
// (those given win), architecture, and the meaning of Slurmgate's labels.
// Images often live on storage only the compute nodes mount; one the gateway
// cannot read is catalogued from the given labels alone. One it can read must
// be a valid image with valid labels.
func inspectImage(img *Image) error {
	given := img.Labels
	img.Labels = map[string]string{}
	f, err := apptainer.InspectImage(img.Location)
	switch {
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission):
		// Not visible from here: trust the given labels.
	case err != nil && f.Format == "":
		return invalid("location", "%v", err)
	default:
		// A label error is reported below, after the given labels are applied.
		img.Architecture = f.Arch
		maps.Copy(img.Labels, f.Labels)
	}
	maps.Copy(img.Labels, given)
	img.Info, err = apptainer.ParseLabels(img.Labels)
	if err != nil {
		return invalid("labels", "%v", err)
	}
	return nil
}

// Images lists the image catalogue.
func (b *Bridge) Images(ctx context.Context) ([]Image, error) {
	rows, _ := b.db.Query(ctx, imageSelect+` ORDER BY name, tag`)
	return pgx.CollectRows(rows, pgx.RowToStructByPos[Image])
}

// Image resolves "name[:tag]" ("latest" when the tag is omitted).
func (b *Bridge) Image(ctx context.Context, ref string) (Image, error) {
	name, tag := splitImageRef(ref)
	rows, _ := b.db.Query(ctx, imageSelect+` WHERE name = $1 AND tag = $2`, name, tag)
	img, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByPos[Image])
	if errors.Is(err, pgx.ErrNoRows) {
		return Image{}, notFound("image", name+":"+tag)
	}
	return img, err
}

// DeleteImage removes an image from the catalogue.
func (b *Bridge) DeleteImage(ctx context.Context, a Actor, ref string) error {
	if err := requireSuperadmin(a, "manage images"); err != nil {
		return err
	}
	name, tag := splitImageRef(ref)
	tag2, err := b.db.Exec(ctx, `DELETE FROM images WHERE name = $1 AND tag = $2`, name, tag)
	if err != nil {
		return err
	}
	if tag2.RowsAffected() == 0 {
		return notFound("image", ref)
	}
	return nil
}

// splitImageRef splits "name[:tag]"; the tag is what follows the last ':'
// after the last '/', as in OCI references.
func splitImageRef(ref string) (name, tag string) {
	for i := len(ref) - 1; i >= 0 && ref[i] != '/'; i-- {
		if ref[i] == ':' {
			return ref[:i], ref[i+1:]
		}
	}
	return ref, "latest"
}
