package client

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ScalingGroup is one or more partitions of one cluster that sessions run in.
type ScalingGroup struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Cluster     string   `json:"cluster"`
	Partitions  []string `json:"partitions"`
	GPUTypes    []string `json:"gpu_types"`
	Runtime     string   `json:"runtime"`
}

// Preset is a named set of resources for a session.
type Preset struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	CPUs        int    `json:"cpus"`
	MemoryMB    int64  `json:"memory_mb"`
	GPUs        int    `json:"gpus"`
	GPUType     string `json:"gpu_type"`
	TimeLimitS  *int64 `json:"time_limit_s,omitempty"`
}

// Image is a container image in the catalogue.
type Image struct {
	Name      string            `json:"name"`
	Tag       string            `json:"tag"`
	Location  string            `json:"location"`
	Runtime   string            `json:"runtime"`
	Labels    map[string]string `json:"labels"`
	CreatedAt time.Time         `json:"created_at,omitzero"`
}

// ScalingGroups lists the scaling groups.
func (c *Client) ScalingGroups(ctx context.Context) ([]ScalingGroup, error) {
	return list[ScalingGroup](ctx, c, "/api/v1/scaling-groups")
}

// ScalingGroup returns a scaling group by name.
func (c *Client) ScalingGroup(ctx context.Context, name string) (*ScalingGroup, error) {
	return call[ScalingGroup](ctx, c, http.MethodGet, "/api/v1/scaling-groups/"+url.PathEscape(name), nil)
}

// CreateScalingGroup registers a scaling group (superadmins).
func (c *Client) CreateScalingGroup(ctx context.Context, sg ScalingGroup) (*ScalingGroup, error) {
	return call[ScalingGroup](ctx, c, http.MethodPost, "/api/v1/scaling-groups", sg)
}

// DeleteScalingGroup removes a scaling group (superadmins).
func (c *Client) DeleteScalingGroup(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/scaling-groups/"+url.PathEscape(name), nil, nil)
}

// Presets lists the resource presets.
func (c *Client) Presets(ctx context.Context) ([]Preset, error) {
	return list[Preset](ctx, c, "/api/v1/presets")
}

// CreatePreset adds a resource preset (superadmins).
func (c *Client) CreatePreset(ctx context.Context, p Preset) (*Preset, error) {
	return call[Preset](ctx, c, http.MethodPost, "/api/v1/presets", p)
}

// DeletePreset removes a resource preset (superadmins).
func (c *Client) DeletePreset(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/presets/"+url.PathEscape(name), nil, nil)
}

// Images lists the image catalogue.
func (c *Client) Images(ctx context.Context) ([]Image, error) {
	return list[Image](ctx, c, "/api/v1/images")
}

// imagePath escapes each segment of a reference, keeping its slashes, which
// the server's route takes as the rest of the path.
func imagePath(ref string) string {
	segs := strings.Split(ref, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return "/api/v1/images/" + strings.Join(segs, "/")
}

// Image returns an image by "name[:tag]" (tag "latest" when omitted).
func (c *Client) Image(ctx context.Context, ref string) (*Image, error) {
	return call[Image](ctx, c, http.MethodGet, imagePath(ref), nil)
}

// CreateImage adds an image to the catalogue (superadmins).
func (c *Client) CreateImage(ctx context.Context, img Image) (*Image, error) {
	return call[Image](ctx, c, http.MethodPost, "/api/v1/images", img)
}

// DeleteImage removes an image from the catalogue (superadmins).
func (c *Client) DeleteImage(ctx context.Context, ref string) error {
	return c.do(ctx, http.MethodDelete, imagePath(ref), nil, nil)
}
