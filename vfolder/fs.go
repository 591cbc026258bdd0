package vfolder

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"
	"time"
)

// FS is one folder's file operations on behalf of one user. Every path is a
// slash-separated path relative to the folder's top, validated by
// [CleanPath] and resolved through an [os.Root], so nothing reaches outside
// the folder. It is safe for concurrent use; Close it when done.
type FS struct {
	root    *os.Root
	as      Owner // the acting user's uid and the folder's group and kind
	maxFile int64
}

// Close releases the folder's directory descriptor.
func (f *FS) Close() error { return f.root.Close() }

// Entry describes a file or directory in a folder.
type Entry struct {
	Name    string    `json:"name"`
	Path    string    `json:"path"`
	Type    string    `json:"type"` // "file", "dir", "symlink" or "other"
	Size    int64     `json:"size"`
	Mode    string    `json:"mode"` // e.g. "-rw-r--r--"
	UID     int       `json:"uid"`
	GID     int       `json:"gid"`
	ModTime time.Time `json:"mtime"`
}

func entryOf(p string, st fs.FileInfo) Entry {
	e := Entry{Name: path.Base(p), Path: p, Size: st.Size(), Mode: st.Mode().String(), ModTime: st.ModTime().UTC()}
	if p == "." {
		e.Name = ""
	}
	switch {
	case st.Mode().IsRegular():
		e.Type = "file"
	case st.IsDir():
		e.Type, e.Size = "dir", 0
	case st.Mode()&fs.ModeSymlink != 0:
		e.Type = "symlink"
	default:
		e.Type = "other"
	}
	e.UID, e.GID = statOwner(st)
	return e
}

// ErrIsDir and ErrNotDir say a path is of the wrong kind for the operation.
var (
	ErrIsDir    = errors.New("is a directory")
	ErrNotDir   = errors.New("is not a directory")
	ErrNotEmpty = errors.New("the directory is not empty; delete it recursively to remove its contents too")
	ErrTooLarge = errors.New("the file is larger than the host allows")
	// ErrNotRegular: a FIFO, socket or device, which the gateway neither
	// reads nor copies (opening a FIFO would wait for a writer).
	ErrNotRegular = errors.New("is not a regular file or directory (a FIFO, socket or device); only files and directories can be read")
)

// mapErr turns os.Root's errors into this package's: an escape through a
// symlink becomes ErrEscapes (os.Root reports it only by its message).
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	var pe *fs.PathError
	if errors.As(err, &pe) && strings.Contains(pe.Err.Error(), "escapes") {
		return fmt.Errorf("%s: %w", pe.Path, ErrEscapes)
	}
	var le *os.LinkError
	if errors.As(err, &le) && strings.Contains(le.Err.Error(), "escapes") {
		return fmt.Errorf("%s: %w", le.New, ErrEscapes)
	}
	switch {
	case errors.Is(err, syscall.ENOTEMPTY):
		return ErrNotEmpty
	case errors.Is(err, syscall.ENOTDIR):
		return fmt.Errorf("%w: %w", ErrNotDir, err)
	case errors.Is(err, syscall.EISDIR):
		return fmt.Errorf("%w: %w", ErrIsDir, err)
	case errors.Is(err, syscall.ELOOP):
		return fmt.Errorf("%w: %w", ErrEscapes, err)
	}
	return err
}

// Stat describes the path; a symbolic link is described, not followed.
func (f *FS) Stat(p string) (Entry, error) {
	p, err := CleanPath(p)
	if err != nil {
		return Entry{}, err
	}
	st, err := f.root.Lstat(p)
	if err != nil {
		return Entry{}, mapErr(err)
	}
	return entryOf(p, st), nil
}

// List returns a directory's entries sorted by name (byte order), at most
// limit of them after the name after ("" for the first page), and whether
// more follow. Reading a directory is one getdents pass; only the entries
// returned are stat'ed, so a page of a 65,000-file directory costs one read
// of the names and limit stats.
func (f *FS) List(dir, after string, limit int) ([]Entry, bool, error) {
	dir, err := CleanPath(dir)
	if err != nil {
		return nil, false, err
	}
	d, st, err := openReadable(f.root, dir, true)
	if err != nil {
		return nil, false, mapErr(err)
	}
	defer d.Close()
	if !st.IsDir() {
		return nil, false, fmt.Errorf("%s %w", dir, ErrNotDir)
	}
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, false, err
	}
	slices.Sort(names)
	start, _ := slices.BinarySearch(names, after)
	if start < len(names) && names[start] == after {
		start++
	}
	names = names[start:]
	more := len(names) > limit
	if more {
		names = names[:limit]
	}
	out := make([]Entry, 0, len(names))
	for _, n := range names {
		p := path.Join(dir, n)
		st, err := f.root.Lstat(p)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed since the directory was read
			}
			return nil, false, mapErr(err)
		}
		out = append(out, entryOf(p, st))
	}
	return out, more, nil
}

// Mkdir creates a directory (and its missing parents with parents set),
// owned by the acting user.
func (f *FS) Mkdir(p string, parents bool) (Entry, error) {
	p, err := CleanPath(p)
	if err != nil {
		return Entry{}, err
	}
	if p == "." {
		return Entry{}, fs.ErrExist
	}
	if parents {
		parts := strings.Split(p, "/")
		for i := range parts[:len(parts)-1] {
			if err := f.mkdir(strings.Join(parts[:i+1], "/")); err != nil && !errors.Is(err, fs.ErrExist) {
				return Entry{}, err
			}
		}
	}
	if err := f.mkdir(p); err != nil {
		return Entry{}, err
	}
	return f.Stat(p)
}

func (f *FS) mkdir(p string) error {
	d, err := mkdirOwned(f.root, p)
	if err != nil {
		return mapErr(err)
	}
	defer d.Close()
	return f.own(d, f.as.subdirMode())
}

// own gives a file the acting user and the folder's group, through its
// descriptor, then sets its mode (chown clears setgid).
func (f *FS) own(file *os.File, mode os.FileMode) error {
	if err := file.Chown(f.as.UID, f.as.GID); err != nil {
		return fmt.Errorf("giving %s to uid %d: %w", file.Name(), f.as.UID, err)
	}
	return file.Chmod(mode)
}

// Rename moves from to to, replacing a file at to (not a non-empty
// directory). The folder's top cannot be moved.
func (f *FS) Rename(from, to string) error {
	from, err := CleanPath(from)
	if err != nil {
		return err
	}
	if to, err = CleanPath(to); err != nil {
		return err
	}
	if from == "." || to == "." {
		return &PathError{Path: ".", Reason: "is the folder's top, which cannot be moved or replaced"}
	}
	if to == from || strings.HasPrefix(to, from+"/") {
		return &PathError{Path: to, Reason: fmt.Sprintf("is inside %q; a directory cannot be moved into itself", from)}
	}
	return mapErr(f.root.Rename(from, to))
}

// Remove deletes a file or an empty directory, or with recursive a
// directory and everything in it. It returns the bytes freed: 0 when it
// fails.
func (f *FS) Remove(p string, recursive bool) (int64, error) {
	p, err := CleanPath(p)
	if err != nil {
		return 0, err
	}
	if p == "." {
		return 0, &PathError{Path: ".", Reason: "is the folder's top; delete the folder itself instead"}
	}
	st, err := f.root.Lstat(p)
	if err != nil {
		return 0, mapErr(err)
	}
	if !st.IsDir() {
		if err := f.root.Remove(p); err != nil {
			return 0, mapErr(err)
		}
		return st.Size(), nil
	}
	if !recursive {
		return 0, mapErr(f.root.Remove(p))
	}
	u, err := f.Usage(p)
	if err != nil {
		return 0, err
	}
	if err := f.root.RemoveAll(p); err != nil {
		// Part of the tree may be gone; the next usage scan counts what
		// is left. Claiming all of it freed would let usage drift low.
		return 0, mapErr(err)
	}
	return u.Bytes, nil
}

// Open opens a regular file or a directory for reading; anything else is
// refused with ErrNotRegular.
func (f *FS) Open(p string) (*os.File, Entry, error) {
	p, err := CleanPath(p)
	if err != nil {
		return nil, Entry{}, err
	}
	file, st, err := openReadable(f.root, p, false)
	if err != nil {
		return nil, Entry{}, mapErr(err)
	}
	return file, entryOf(p, st), nil
}

// Usage measures a path's size: a file's, or a directory tree's.
func (f *FS) Usage(p string) (Usage, error) {
	p, err := CleanPath(p)
	if err != nil {
		return Usage{}, err
	}
	sub, err := f.root.OpenRoot(p)
	if err != nil {
		if st, serr := f.root.Lstat(p); serr == nil && !st.IsDir() {
			return Usage{Bytes: st.Size(), Files: 1}, nil
		}
		return Usage{}, mapErr(err)
	}
	defer sub.Close()
	return scanRoot(sub, defaultWorkers)
}

// Copy copies a file or a directory tree from one path to another that must
// not exist yet; the copies belong to the acting user. Symbolic links are
// copied as links. It returns the bytes written.
func (f *FS) Copy(from, to string) (int64, error) {
	from, err := CleanPath(from)
	if err != nil {
		return 0, err
	}
	if to, err = CleanPath(to); err != nil {
		return 0, err
	}
	if to == "." || to == from || strings.HasPrefix(to, from+"/") || (from == "." && to != ".") {
		return 0, &PathError{Path: to, Reason: fmt.Sprintf("is %q or inside it; copy somewhere else", from)}
	}
	if _, err := f.root.Lstat(to); err == nil {
		return 0, fmt.Errorf("%s: %w", to, fs.ErrExist)
	}
	return f.copy(from, to)
}

func (f *FS) copy(from, to string) (int64, error) {
	st, err := f.root.Lstat(from)
	if err != nil {
		return 0, mapErr(err)
	}
	switch {
	case st.Mode()&fs.ModeSymlink != 0:
		target, err := f.root.Readlink(from)
		if err != nil {
			return 0, mapErr(err)
		}
		if err := f.root.Symlink(target, to); err != nil {
			return 0, mapErr(err)
		}
		return 0, mapErr(f.root.Lchown(to, f.as.UID, f.as.GID))
	case st.IsDir():
		if err := f.mkdir(to); err != nil {
			return 0, err
		}
		d, _, err := openReadable(f.root, from, true)
		if err != nil {
			return 0, mapErr(err)
		}
		names, err := d.Readdirnames(-1)
		d.Close()
		if err != nil {
			return 0, err
		}
		var total int64
		for _, n := range names {
			k, err := f.copy(path.Join(from, n), path.Join(to, n))
			total += k
			if err != nil {
				return total, err
			}
		}
		return total, nil
	case st.Mode().IsRegular():
		src, sst, err := openReadable(f.root, from, false)
		if err != nil {
			return 0, mapErr(err)
		}
		defer src.Close()
		if !sst.Mode().IsRegular() {
			return 0, fmt.Errorf("%s %w", from, ErrIsDir) // replaced since the Lstat
		}
		dst, err := f.root.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return 0, mapErr(err)
		}
		if err := f.own(dst, f.as.fileMode()); err != nil {
			dst.Close()
			return 0, err
		}
		n, err := io.Copy(dst, src) // copy_file_range where the file system can
		if cerr := dst.Close(); err == nil {
			err = cerr
		}
		return n, err
	}
	return 0, nil // devices, sockets, fifos: not copied
}
