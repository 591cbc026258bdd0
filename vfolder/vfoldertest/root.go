// Package vfoldertest gives tests a storage host root under a directory the
// test users (alice, bob, …) can traverse, removed when the test ends.
package vfoldertest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/slurmgate/slurmgate/vfolder"
)

// Base holds the test roots; files in them belong to the test users, so it
// must be traversable by them (0755), unlike a 0700 t.TempDir.
const Base = "/var/lib/slurmgate-test"

// Host returns the configuration of a fresh storage host named name.
func Host(t testing.TB, name string) vfolder.HostConfig {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("vfolder tests create files owned by the test users and need root (the gateway's privilege); run them as root")
	}
	if err := os.MkdirAll(Base, 0o755); err != nil {
		t.Fatal(err)
	}
	root, err := os.MkdirTemp(Base, "vfolders-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	return vfolder.HostConfig{Name: name, Root: filepath.Clean(root)}
}
