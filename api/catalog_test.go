package api

import (
	"net/http"
	"testing"

	"github.com/slurmgate/slurmgate/api/client"
)

func TestCatalogAPI(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, Options{})
	ctx := t.Context()
	root, alice := a.client(a.root), a.client(a.alice)

	// Scaling groups: everyone reads, superadmins write.
	_, err := alice.CreateScalingGroup(ctx, client.ScalingGroup{Name: "cpu", Partitions: []string{"cpu"}})
	wantClientProblem(t, err, http.StatusForbidden)
	sg, err := root.CreateScalingGroup(ctx, client.ScalingGroup{Name: "cpu", Partitions: []string{"cpu"}})
	if err != nil || sg.Name != "cpu" {
		t.Fatalf("create scaling group: %+v, %v", sg, err)
	}
	if got, err := alice.ScalingGroup(ctx, "cpu"); err != nil || len(got.Partitions) != 1 {
		t.Fatalf("get scaling group: %+v, %v", got, err)
	}
	if sgs, err := alice.ScalingGroups(ctx); err != nil || len(sgs) != 1 {
		t.Fatalf("list scaling groups: %v, %v", sgs, err)
	}
	_, err = alice.ScalingGroup(ctx, "gpu")
	wantClientProblem(t, err, http.StatusNotFound)

	// Presets.
	p, err := root.CreatePreset(ctx, client.Preset{Name: "small", CPUs: 2, MemoryMB: 4096})
	if err != nil || p.CPUs != 2 {
		t.Fatalf("create preset: %+v, %v", p, err)
	}
	if ps, err := alice.Presets(ctx); err != nil || len(ps) != 1 || ps[0].Name != "small" {
		t.Fatalf("list presets: %v, %v", ps, err)
	}
	err = alice.DeletePreset(ctx, "small")
	wantClientProblem(t, err, http.StatusForbidden)
	if err := root.DeletePreset(ctx, "small"); err != nil {
		t.Fatal(err)
	}

	// Images: a reference with slashes is the rest of the path.
	img, err := root.CreateImage(ctx, client.Image{Name: "lab/pytorch", Tag: "2.3", Location: "/images/pytorch.sif", Runtime: "apptainer"})
	if err != nil || img.Name != "lab/pytorch" {
		t.Fatalf("create image: %+v, %v", img, err)
	}
	if got, err := alice.Image(ctx, "lab/pytorch:2.3"); err != nil || got.Tag != "2.3" || got.Location != "/images/pytorch.sif" {
		t.Fatalf("get image: %+v, %v", got, err)
	}
	_, err = alice.Image(ctx, "lab/pytorch") // tag latest
	wantClientProblem(t, err, http.StatusNotFound)
	if imgs, err := alice.Images(ctx); err != nil || len(imgs) != 1 {
		t.Fatalf("list images: %v, %v", imgs, err)
	}
	if err := root.DeleteImage(ctx, "lab/pytorch:2.3"); err != nil {
		t.Fatal(err)
	}
	_, err = alice.Image(ctx, "lab/pytorch:2.3")
	wantClientProblem(t, err, http.StatusNotFound)

	if err := root.DeleteScalingGroup(ctx, "cpu"); err != nil {
		t.Fatal(err)
	}
	err = root.DeleteScalingGroup(ctx, "cpu")
	wantClientProblem(t, err, http.StatusNotFound)
}
