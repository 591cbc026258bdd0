package vfolder

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"syscall"

	"golang.org/x/sys/unix"
)

// Uploads are staged outside the folder, in <root>/staging/<folder id>/,
// under the upload's id, and renamed into place only when complete: an
// interrupted or failed upload is never visible under its final name, and
// one that resumes later (from any gateway replica: staging is on the shared
// file system) appends to what was already received. The staged file's size
// is the upload's offset, so the offset survives a gateway restart.

var uploadID = regexp.MustCompile(`^[0-9a-f]{32}$`)

// ErrOffset is returned when an append does not start where the staged
// file ends (a client out of step, or a concurrent append).
var ErrOffset = errors.New("the upload's offset does not match the bytes received")

func (h *Host) stagingDir(folder string) string {
	return filepath.Join(h.cfg.Root, "staging", folder)
}

func (h *Host) staged(folder, upload string) (string, error) {
	if err := checkID(folder); err != nil {
		return "", err
	}
	if !uploadID.MatchString(upload) {
		return "", fmt.Errorf("upload id %q: want 32 lower-case hex digits", upload)
	}
	return filepath.Join(h.stagingDir(folder), upload), nil
}

// StageCreate makes an empty staged file for an upload into folder by the
// user with uid.
func (h *Host) StageCreate(folder, upload string, uid int) error {
	p, err := h.staged(folder, upload)
	if err != nil {
		return err
	}
	if err := os.Mkdir(filepath.Dir(p), 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|oNoFollow, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Chown(uid, -1)
}

// StageSize returns how many bytes an upload has received.
func (h *Host) StageSize(folder, upload string) (int64, error) {
	p, err := h.staged(folder, upload)
	if err != nil {
		return 0, err
	}
	st, err := os.Lstat(p)
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// StageAppend appends at most limit bytes from r to an upload whose staged
// file must hold exactly offset bytes, and returns the new offset. Bytes
// that arrived before r failed stay: the client resumes from the returned
// offset. The file is synced before returning, so an offset the client was
// told survives a crash.
func (h *Host) StageAppend(folder, upload string, offset int64, r io.Reader, limit int64) (int64, error) {
	p, err := h.staged(folder, upload)
	if err != nil {
		return 0, err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|oNoFollow, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	// One writer at a time: a second append to the same upload (a client
	// retrying while its first request still runs) fails instead of
	// interleaving bytes.
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return 0, fmt.Errorf("%w: another request is appending to this upload", ErrOffset)
	}
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if st.Size() != offset {
		return st.Size(), fmt.Errorf("%w: it has %d bytes, the request starts at %d", ErrOffset, st.Size(), offset)
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return offset, err
	}
	n, copyErr := io.Copy(f, io.LimitReader(r, limit))
	if err := f.Sync(); err != nil && copyErr == nil {
		copyErr = err
	}
	return offset + n, copyErr
}

// StageCommit moves a complete upload to dst in the folder and gives it the
// acting user (fsys's) and the folder's group. dst's directory must exist.
// With replace, a file at dst is replaced; without, it is left alone and
// the commit fails with an error matching fs.ErrExist (replacing a file is
// deleting it, which the caller may not be allowed). The rename is atomic:
// readers see the old file or the whole new one.
func (h *Host) StageCommit(folder, upload string, fsys *FS, dst string, replace bool) (Entry, error) {
	p, err := h.staged(folder, upload)
	if err != nil {
		return Entry{}, err
	}
	dst, err = CleanPath(dst)
	if err != nil {
		return Entry{}, err
	}
	if dst == "." {
		return Entry{}, &PathError{Path: dst, Reason: "is the folder's top; name a file"}
	}
	// renameat(2) between two directory descriptors: the destination
	// directory was resolved inside the folder by os.Root, and the last
	// component is a single validated name, which rename never follows.
	dir, base := path.Split(dst)
	if dir == "" {
		dir = "."
	}
	d, err := fsys.root.OpenFile(dir, os.O_RDONLY|oDirectory, 0)
	if err != nil {
		return Entry{}, mapErr(err)
	}
	defer d.Close()
	f, err := os.OpenFile(p, os.O_RDONLY|oNoFollow, 0)
	if err != nil {
		return Entry{}, err
	}
	err = fsys.own(f, fsys.as.fileMode())
	if err == nil {
		// Staged outside the folder, the file missed what creating it in
		// place would have given it: the directory's default ACL (shares).
		err = inheritACL(int(d.Fd()), int(f.Fd()), fsys.as.fileMode())
	}
	if err == nil {
		err = f.Sync()
	}
	f.Close()
	if err != nil {
		return Entry{}, err
	}
	src, err := os.Open(filepath.Dir(p))
	if err != nil {
		return Entry{}, err
	}
	defer src.Close()
	if st, err := fsys.root.Lstat(dst); err == nil && st.IsDir() {
		return Entry{}, fmt.Errorf("%s %w; choose another name", dst, ErrIsDir)
	}
	if err := renameAt(int(src.Fd()), filepath.Base(p), int(d.Fd()), base, replace); err != nil {
		return Entry{}, mapErr(&os.LinkError{Op: "rename", Old: upload, New: dst, Err: err})
	}
	return fsys.Stat(dst)
}

// StageRemove discards an upload's staged bytes.
func (h *Host) StageRemove(folder, upload string) error {
	p, err := h.staged(folder, upload)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// renameAt renames between directory descriptors, without replace never
// over an existing name: renameat2(RENAME_NOREPLACE), or where the file
// system lacks it (NFS) a link, which fails on an existing name, and an
// unlink of the old name.
func renameAt(olddir int, oldname string, newdir int, newname string, replace bool) error {
	if replace {
		return unix.Renameat(olddir, oldname, newdir, newname)
	}
	err := unix.Renameat2(olddir, oldname, newdir, newname, unix.RENAME_NOREPLACE)
	if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS) {
		return err
	}
	if err := unix.Linkat(olddir, oldname, newdir, newname, 0); err != nil {
		return err
	}
	return unix.Unlinkat(olddir, oldname, 0)
}
