package apptainer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/sylabs/sif/v2/pkg/sif"
)

// The node's image cache turns a SIF into something ch-run can run: the
// SIF's primary SquashFS partition as a .sqfs file (ch-run mounts it with
// FUSE), or, where the user cannot use FUSE, that SquashFS unpacked into a
// directory. Entries are content-addressed by the SquashFS's SHA-256:
//
//	CACHE/sqfs/SHA256.sqfs   the partition, byte for byte
//	CACHE/dir/SHA256/        the partition unpacked
//	CACHE/ref/KEY            "SHA256": which partition a SIF holds, so a
//	                         warm start hashes nothing (KEY digests the SIF's
//	                         id, the descriptor and the file's size and mtime)
//
// Every entry is written under a temporary name in the same directory and
// renamed into place, so two sessions preparing one image at once on a node
// both end up with a complete copy and never see a partial one.

// cachedImage returns what ch-run should run for image: the image itself when
// it is a directory or a .sqfs file, otherwise (a SIF) its cached SquashFS,
// as a file when fuse is true or as a directory.
func cachedImage(ctx context.Context, image, cacheDir string, fuse bool) (string, error) {
	st, err := os.Stat(image)
	if err != nil {
		return "", fmt.Errorf("image: %w", err)
	}
	if st.IsDir() || strings.HasSuffix(image, ".sqfs") {
		return image, nil
	}
	if cacheDir == "" {
		return "", fmt.Errorf("image %s is a SIF and the spec names no cache directory to extract it into", image)
	}
	f, err := sif.LoadContainerFromPath(image, sif.OptLoadWithFlag(os.O_RDONLY))
	if err != nil {
		return "", fmt.Errorf("image %s is neither a directory, a .sqfs nor a SIF file: %w", image, err)
	}
	defer f.UnloadContainer()
	d, err := f.GetDescriptor(sif.WithPartitionType(sif.PartPrimSys))
	if err != nil {
		return "", fmt.Errorf("image %s has no primary partition: %w", image, err)
	}
	if fs, _, _, _ := d.PartitionMetadata(); fs != sif.FsSquash {
		return "", fmt.Errorf("image %s: primary partition is %s; charliecloud needs squashfs", image, fsName(fs))
	}
	for _, sub := range []string{"sqfs", "dir", "ref"} {
		if err := os.MkdirAll(filepath.Join(cacheDir, sub), 0o700); err != nil {
			return "", fmt.Errorf("image cache: %w", err)
		}
	}

	key := sha256.Sum256(fmt.Appendf(nil, "%s\x00%d\x00%d\x00%d\x00%d\x00%d\x00%d",
		f.ID(), d.ID(), d.Offset(), d.Size(), d.ModifiedAt().Unix(), st.Size(), st.ModTime().UnixNano()))
	ref := filepath.Join(cacheDir, "ref", hex.EncodeToString(key[:]))
	sum, _ := os.ReadFile(ref)
	sqfs := filepath.Join(cacheDir, "sqfs", string(sum)+".sqfs")
	if len(sum) != 64 || !exists(sqfs) {
		if sum, err = extractPartition(ctx, d, cacheDir); err != nil {
			return "", fmt.Errorf("image %s: %w", image, err)
		}
		sqfs = filepath.Join(cacheDir, "sqfs", string(sum)+".sqfs")
		if err := writeAtomic(ref, sum); err != nil {
			return "", fmt.Errorf("image cache: %w", err)
		}
	}
	if fuse {
		return sqfs, nil
	}
	dir := filepath.Join(cacheDir, "dir", string(sum))
	if exists(dir) {
		return dir, nil
	}
	return dir, unpack(ctx, sqfs, dir)
}

// extractPartition copies d's data into the cache, hashing it on the way,
// and returns its hex SHA-256.
func extractPartition(ctx context.Context, d sif.Descriptor, cacheDir string) ([]byte, error) {
	tmp, err := os.CreateTemp(filepath.Join(cacheDir, "sqfs"), ".partial-*")
	if err != nil {
		return nil, fmt.Errorf("image cache: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the rename, a no-op
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(tmp, h), ctxReader{ctx, d.GetReader()})
	if err == nil {
		err = tmp.Close()
	} else {
		tmp.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("extracting the SquashFS partition: %w", err)
	}
	sum := []byte(hex.EncodeToString(h.Sum(nil)))
	if err := os.Rename(tmp.Name(), filepath.Join(cacheDir, "sqfs", string(sum)+".sqfs")); err != nil {
		return nil, fmt.Errorf("image cache: %w", err)
	}
	return sum, nil
}

// unpack unsquashes sqfs into dir, via a temporary sibling.
func unpack(ctx context.Context, sqfs, dir string) error {
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".partial-*")
	if err != nil {
		return fmt.Errorf("image cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	root := filepath.Join(tmp, "root")
	out, err := exec.CommandContext(ctx, "unsquashfs", "-no-progress", "-no-xattrs", "-d", root, sqfs).CombinedOutput()
	// Exit status 2 is unsquashfs's "non-fatal errors": device nodes an
	// unprivileged user cannot create. ch-run binds the host's /dev anyway.
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 2 && exists(filepath.Join(root, "bin")) {
		err = nil
	}
	if errors.Is(err, exec.ErrNotFound) {
		return fmt.Errorf("unpacking the image needs unsquashfs (Debian: apt-get install squashfs-tools), or FUSE for the user (/dev/fuse readable and writable)")
	}
	if err != nil {
		return fmt.Errorf("unsquashfs %s: %v: %s", sqfs, err, lastLines(out, 5))
	}
	if err := os.Rename(root, dir); err != nil && !exists(dir) {
		return fmt.Errorf("image cache: %w", err)
	}
	// If another session's rename won, its copy is as good as ours.
	return nil
}

// writeAtomic replaces path with data, never exposing a partial file.
func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".partial-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// fuseUsable reports whether this user can mount FUSE file systems, which
// running a .sqfs with ch-run needs.
func fuseUsable() bool {
	return syscall.Access("/dev/fuse", 0o6) == nil // R_OK|W_OK
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " / ")
}

// ctxReader stops a long copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
