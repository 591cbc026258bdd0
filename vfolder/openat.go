package vfolder

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"

	"golang.org/x/sys/unix"
)

// os.Root resolves symbolic links itself and follows one that stays inside
// the root even when O_NOFOLLOW is asked for (it retries the open on
// ELOOP). Where the gateway gives away or changes what it opens, following
// a link a job swapped in would redirect the change to the link's target
// (the folder's top, say), so the last component is opened here with
// openat(2) relative to its parent, which os.Root resolved.

// errReplaced is returned when what the gateway just created was replaced
// before it could be given its owner: a job raced it.
var errReplaced = errors.New("was replaced while being created (a job changing the folder at the same moment?); try again")

// afterMkdir, when set (by tests), runs between creating a directory and
// opening it: where a racing job would swap it.
var afterMkdir func(p string)

// openParent opens p's parent directory inside r and returns it with p's
// last component. p is clean and not ".".
func openParent(r *os.Root, p string) (*os.File, string, error) {
	dir, base := path.Split(p)
	if dir == "" {
		dir = "."
	}
	d, err := r.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, "", err
	}
	return d, base, nil
}

// openNoFollow opens p inside r with flags, failing with ELOOP, rather than
// following, if p's last component is a symbolic link.
func openNoFollow(r *os.Root, p string, flags int) (*os.File, error) {
	if p == "." {
		return r.OpenFile(".", flags, 0) // the root itself, never a link
	}
	d, base, err := openParent(r, p)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	fd, err := unix.Openat(int(d.Fd()), base, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "openat", Path: p, Err: err}
	}
	return os.NewFile(uintptr(fd), p), nil
}

// mkdirOwned creates the directory p inside r and returns it open, after
// checking that what it opened is the directory it made: empty, and the
// gateway's (a job can swap in a link, which is not followed, or a
// directory of its own, which is refused).
func mkdirOwned(r *os.Root, p string) (*os.File, error) {
	d, base, err := openParent(r, p)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	dirfd := int(d.Fd())
	if err := unix.Mkdirat(dirfd, base, 0o700); err != nil {
		return nil, &fs.PathError{Op: "mkdir", Path: p, Err: err}
	}
	if afterMkdir != nil {
		afterMkdir(p)
	}
	fd, err := unix.Openat(dirfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%s %w: %w", p, errReplaced, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, err
	}
	// A new directory has two links (one on btrfs, which counts none for
	// directories); one with a subdirectory has more.
	if int(st.Uid) != os.Geteuid() || st.Nlink > 2 || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		unix.Close(fd)
		return nil, fmt.Errorf("%s %w", p, errReplaced)
	}
	return os.NewFile(uintptr(fd), p), nil
}

// openReadable opens p inside r for reading, a directory only with dirOnly,
// and refuses anything but a regular file or a directory. O_NONBLOCK keeps
// the open of a FIFO from waiting for a writer (forever, if a job made it
// to pin the gateway's threads); a regular file gets blocking reads back.
func openReadable(r *os.Root, p string, dirOnly bool) (*os.File, fs.FileInfo, error) {
	flags := os.O_RDONLY | unix.O_NONBLOCK | unix.O_NOCTTY
	if dirOnly {
		flags |= unix.O_DIRECTORY
	}
	file, err := r.OpenFile(p, flags, 0)
	if err != nil {
		return nil, nil, err
	}
	st, err := file.Stat()
	if err == nil && !st.Mode().IsRegular() && !st.IsDir() {
		err = fmt.Errorf("%s %w", p, ErrNotRegular)
	}
	if err == nil && st.Mode().IsRegular() {
		err = unix.SetNonblock(int(file.Fd()), false)
	}
	if err != nil {
		file.Close()
		return nil, nil, err
	}
	return file, st, nil
}
