// Command seed fills a fresh development gateway through its REST API, as
// any client would: domain "lab", project "lab/vision" with alice, bob and
// carol, scaling groups cpu and gpu, a preset and a host image, and a
// keypair per user. testdata/cluster/gateway runs it once and keeps the
// printed credentials.
//
// Usage: go run ./testdata/cluster/seed URL ACCESS_KEY SECRET_KEY
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/slurmgate/slurmgate/api/client"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: seed URL ACCESS_KEY SECRET_KEY")
		os.Exit(2)
	}
	if err := seed(os.Args[1], os.Args[2], os.Args[3]); err != nil {
		fmt.Fprintln(os.Stderr, "seed:", err)
		os.Exit(1)
	}
}

func seed(url, ak, sk string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.New(url, client.WithKeypair(ak, sk))
	if err != nil {
		return err
	}
	if _, err := c.CreateDomain(ctx, "lab", "development domain"); err != nil {
		return err
	}
	proj, err := c.CreateProject(ctx, "lab", "vision", "development project")
	if err != nil {
		return err
	}
	for _, sg := range []client.ScalingGroup{
		{Name: "cpu", Description: "CPU nodes c1, c2", Partitions: []string{"cpu"}, Runtime: "none"},
		{Name: "gpu", Description: "GPU node g1 (4 × a100)", Partitions: []string{"gpu"}, GPUTypes: []string{"a100"}, Runtime: "none"},
	} {
		if _, err := c.CreateScalingGroup(ctx, sg); err != nil {
			return err
		}
	}
	hour := int64(3600)
	if _, err := c.CreatePreset(ctx, client.Preset{Name: "small", Description: "1 CPU, 1 GiB, 1 hour", CPUs: 1, MemoryMB: 1024, TimeLimitS: &hour}); err != nil {
		return err
	}
	if _, err := c.CreateImage(ctx, client.Image{Name: "host", Tag: "latest", Location: "/", Runtime: "none"}); err != nil {
		return err
	}
	for i, name := range []string{"alice", "bob", "carol"} {
		u, err := c.CreateUser(ctx, client.NewUser{Username: name, UID: 2001 + i, Domain: "lab", Email: name + "@lab.example"})
		if err != nil {
			return err
		}
		if _, err := c.SetMember(ctx, proj.ID, u.ID, "member"); err != nil {
			return err
		}
		kp, err := c.CreateKeypair(ctx, u.ID, "make dev")
		if err != nil {
			return err
		}
		fmt.Printf("%-6s access key %s  secret key %s\n", name, kp.AccessKey, kp.SecretKey)
	}
	return nil
}
