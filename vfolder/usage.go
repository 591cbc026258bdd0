package vfolder

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"runtime"
	"sync"
	"syscall"
)

// Usage is what a folder (or part of one) holds: apparent bytes of regular
// files, and counts of files and directories.
type Usage struct {
	Bytes int64 `json:"bytes"`
	Files int64 `json:"files"`
	Dirs  int64 `json:"dirs"`
}

// QuotaMethod measures a folder's usage and applies its limit on the
// storage itself, where the storage can. The gateway checks the limit on
// every write through the API in any case; a method that enforces it in the
// file system as well also holds back jobs writing directly. XFS project
// quotas (xfs_quota -x -c 'limit -p bhard=…') or Lustre project quotas (lfs
// setquota -p) fit here.
type QuotaMethod interface {
	// Name is the value of quota_method that selects it.
	Name() string
	// Usage measures the folder at dir.
	Usage(ctx context.Context, dir string) (Usage, error)
	// SetLimit applies a limit in bytes (0: none) to the folder at dir.
	SetLimit(ctx context.Context, dir string, bytes int64) error
}

// quotaMethod returns the method configured by name.
func quotaMethod(name string) (QuotaMethod, error) {
	switch name {
	case "", "scan":
		return scanQuota{}, nil
	}
	return nil, fmt.Errorf("quota_method %q is not supported; use \"scan\"", name)
}

// scanQuota measures by walking the tree and enforces nothing on disk: the
// gateway's checks on writes are the limit.
type scanQuota struct{}

func (scanQuota) Name() string { return "scan" }

func (scanQuota) Usage(ctx context.Context, dir string) (Usage, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return Usage{}, err
	}
	defer r.Close()
	return scanRootCtx(ctx, r, defaultWorkers)
}

func (scanQuota) SetLimit(context.Context, string, int64) error { return nil }

// Usage measures the folder through the host's quota method.
func (h *Host) Usage(ctx context.Context, id string) (Usage, error) {
	if err := checkID(id); err != nil {
		return Usage{}, err
	}
	return h.quota.Usage(ctx, h.Path(id))
}

// defaultWorkers: a walk waits on metadata I/O (an NFS or Lustre round trip
// per directory), not on the CPU, so it runs several directories at once.
var defaultWorkers = max(8, 2*runtime.GOMAXPROCS(0))

func scanRoot(r *os.Root, workers int) (Usage, error) {
	return scanRootCtx(context.Background(), r, workers)
}

// scanRootCtx walks the tree under r with workers reading directories in
// parallel. Symbolic links are counted as entries, never followed; a file
// or directory removed during the walk is skipped, not an error.
func scanRootCtx(ctx context.Context, r *os.Root, workers int) (Usage, error) {
	var (
		mu    sync.Mutex
		total Usage
	)
	err := walkDirs(ctx, r, workers, func(r *os.Root, dir string) ([]string, error) {
		u, subdirs, err := scanDir(r, dir)
		mu.Lock()
		total.Bytes += u.Bytes
		total.Files += u.Files
		total.Dirs += u.Dirs
		mu.Unlock()
		return subdirs, err
	})
	return total, err
}

// walkDirs calls visit for every directory of the tree under r, starting
// with "." and continuing with the subdirectories each visit returns, with
// workers visiting directories in parallel. The first error is returned;
// the subdirectories of a directory whose visit failed are not walked, the
// rest of the tree still is.
func walkDirs(ctx context.Context, r *os.Root, workers int, visit func(r *os.Root, dir string) ([]string, error)) error {
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	// An unbounded queue: a worker that finds subdirectories must never
	// block handing them over, or a wide tree would deadlock the pool.
	var (
		qmu     sync.Mutex
		queue   = []string{"."}
		cond    = sync.NewCond(&qmu)
		pending = 1 // directories queued or being visited
	)
	next := func() (string, bool) {
		qmu.Lock()
		defer qmu.Unlock()
		for len(queue) == 0 && pending > 0 {
			cond.Wait()
		}
		if len(queue) == 0 {
			return "", false
		}
		d := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		return d, true
	}
	done := func(subdirs []string) {
		qmu.Lock()
		queue = append(queue, subdirs...)
		pending += len(subdirs) - 1
		qmu.Unlock()
		cond.Broadcast()
	}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				dir, ok := next()
				if !ok {
					return
				}
				var subdirs []string
				err := ctx.Err()
				if err == nil {
					subdirs, err = visit(r, dir)
				}
				if err != nil {
					subdirs = nil
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
				done(subdirs)
			}
		}()
	}
	wg.Wait()
	return firstErr
}

func scanDir(r *os.Root, dir string) (Usage, []string, error) {
	var u Usage
	// O_DIRECTORY: a directory swapped for a FIFO since it was listed
	// fails at once instead of waiting for a writer.
	d, err := r.OpenFile(dir, os.O_RDONLY|oDirectory|oNonBlock, 0)
	if err != nil {
		if isGone(err) || errors.Is(err, syscall.ENOTDIR) {
			return u, nil, nil
		}
		return u, nil, mapErr(err)
	}
	defer d.Close()
	u.Dirs = 1
	var subdirs []string
	for {
		ents, err := d.ReadDir(1024)
		for _, e := range ents {
			switch {
			case e.IsDir():
				subdirs = append(subdirs, path.Join(dir, e.Name()))
			case e.Type().IsRegular():
				info, err := e.Info()
				if err != nil {
					if isGone(err) {
						continue
					}
					return u, subdirs, err
				}
				u.Bytes += info.Size()
				u.Files++
			default:
				u.Files++
			}
		}
		if err != nil || len(ents) == 0 {
			break
		}
	}
	return u, subdirs, nil
}

func isGone(err error) bool { return errors.Is(err, fs.ErrNotExist) }
