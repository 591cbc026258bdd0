package vfolder

import (
	"archive/zip"
	"errors"
	"io"
	"os"
	"path"
	"slices"
	"strings"
)

// WriteZip streams the directory at dir as a zip archive to w, entries
// named relative to dir. Files are stored, not compressed: research data is
// mostly compressed already, and storing keeps the stream at disk speed.
// Symbolic links and special files are left out (a FIFO is never opened:
// its open would wait for a writer). An error after the first byte leaves
// a truncated archive; the caller should abort the response.
func (f *FS) WriteZip(w io.Writer, dir string) error {
	dir, err := CleanPath(dir)
	if err != nil {
		return err
	}
	sub, err := f.root.OpenRoot(dir)
	if err != nil {
		return mapErr(err)
	}
	defer sub.Close()
	zw := zip.NewWriter(w)
	if err := zipDir(zw, sub, "."); err != nil {
		return mapErr(err)
	}
	return zw.Close()
}

// zipDir adds dir's entries to zw, in name order, and recurses into its
// subdirectories. Every open is one that cannot block (openReadable), so
// something swapped for a FIFO since it was listed is skipped or refused.
func zipDir(zw *zip.Writer, r *os.Root, dir string) error {
	d, _, err := openReadable(r, dir, true)
	if err != nil {
		return err
	}
	ents, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
		return err
	}
	slices.SortFunc(ents, func(a, b os.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	for _, e := range ents {
		p := path.Join(dir, e.Name())
		switch {
		case e.IsDir():
			info, err := e.Info()
			if isGone(err) {
				continue
			}
			if err != nil {
				return err
			}
			hdr, err := zip.FileInfoHeader(info)
			if err != nil {
				return err
			}
			hdr.Name, hdr.Method = p+"/", zip.Store
			if _, err := zw.CreateHeader(hdr); err != nil {
				return err
			}
			if err := zipDir(zw, r, p); err != nil {
				return err
			}
		case e.Type().IsRegular():
			if err := zipFile(zw, r, p); err != nil {
				return err
			}
		}
	}
	return nil
}

func zipFile(zw *zip.Writer, r *os.Root, p string) error {
	in, st, err := openReadable(r, p, false)
	if isGone(err) || errors.Is(err, ErrNotRegular) {
		return nil // removed, or replaced by a FIFO or the like, since it was listed
	}
	if err != nil {
		return err
	}
	defer in.Close()
	if !st.Mode().IsRegular() {
		return nil // replaced by a directory since it was listed
	}
	hdr, err := zip.FileInfoHeader(st)
	if err != nil {
		return err
	}
	hdr.Name, hdr.Method = p, zip.Store
	out, err := zw.CreateHeader(hdr)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	return err
}
