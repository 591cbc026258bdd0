package vfolder

import (
	"archive/zip"
	"io"
	"io/fs"
)

// WriteZip streams the directory at dir as a zip archive to w, entries
// named relative to dir. Files are stored, not compressed: research data is
// mostly compressed already, and storing keeps the stream at disk speed.
// Symbolic links and special files are left out. An error after the first
// byte leaves a truncated archive; the caller should abort the response.
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
	err = fs.WalkDir(sub.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == "." {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if !d.IsDir() && !d.Type().IsRegular() {
			return nil
		}
		hdr, err := zip.FileInfoHeader(info)
		if err != nil {
			return err
		}
		hdr.Name = p
		hdr.Method = zip.Store
		if d.IsDir() {
			hdr.Name += "/"
			_, err = zw.CreateHeader(hdr)
			return err
		}
		out, err := zw.CreateHeader(hdr)
		if err != nil {
			return err
		}
		in, err := sub.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		_, err = io.Copy(out, in)
		return err
	})
	if err != nil {
		return mapErr(err)
	}
	return zw.Close()
}
