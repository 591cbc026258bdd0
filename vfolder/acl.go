package vfolder

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path"
	"slices"

	"golang.org/x/sys/unix"
)

// Shares on disk: POSIX ACLs written through the kernel's xattr interface
// (system.posix_acl_access and system.posix_acl_default, the binary format
// of linux/posix_acl_xattr.h), not by running setfacl, so the gateway needs
// no extra package and applies each ACL through a descriptor it opened
// without following links (openat with O_NOFOLLOW relative to the parent:
// os.Root alone would follow a link that stays inside the folder).

const (
	aclXattrAccess  = "system.posix_acl_access"
	aclXattrDefault = "system.posix_acl_default"
	aclXattrVersion = 2

	aclUserObj  = 0x01
	aclUser     = 0x02
	aclGroupObj = 0x04
	aclGroup    = 0x08
	aclMask     = 0x10
	aclOther    = 0x20

	aclUndefinedID = ^uint32(0)

	permR = 4
	permW = 2
	permX = 1
)

type aclEntry struct {
	tag, perm uint16
	id        uint32
}

// aclFromMode is the three-entry ACL that a mode alone is.
func aclFromMode(mode uint32) []aclEntry {
	return []aclEntry{
		{aclUserObj, uint16(mode >> 6 & 7), aclUndefinedID},
		{aclGroupObj, uint16(mode >> 3 & 7), aclUndefinedID},
		{aclOther, uint16(mode & 7), aclUndefinedID},
	}
}

func parseACL(b []byte) ([]aclEntry, error) {
	if len(b) < 4 || (len(b)-4)%8 != 0 || binary.LittleEndian.Uint32(b) != aclXattrVersion {
		return nil, errors.New("malformed POSIX ACL extended attribute")
	}
	var es []aclEntry
	for b = b[4:]; len(b) > 0; b = b[8:] {
		es = append(es, aclEntry{binary.LittleEndian.Uint16(b), binary.LittleEndian.Uint16(b[2:]), binary.LittleEndian.Uint32(b[4:])})
	}
	return es, nil
}

func encodeACL(es []aclEntry) []byte {
	b := binary.LittleEndian.AppendUint32(make([]byte, 0, 4+8*len(es)), aclXattrVersion)
	for _, e := range es {
		b = binary.LittleEndian.AppendUint16(b, e.tag)
		b = binary.LittleEndian.AppendUint16(b, e.perm)
		b = binary.LittleEndian.AppendUint32(b, e.id)
	}
	return b
}

// setUser returns es with uid's named entry set to perm, or removed when
// perm is negative, and the mask recomputed as setfacl does: the union of
// the group class (owning group, named users and groups), so no named
// entry is cut short. Without named entries the mask goes, and the ACL is
// the mode again (the kernel then drops the attribute).
func setUser(es []aclEntry, uid uint32, perm int) []aclEntry {
	out := make([]aclEntry, 0, len(es)+2)
	for _, e := range es {
		if e.tag == aclMask || e.tag == aclUser && e.id == uid {
			continue
		}
		out = append(out, e)
	}
	if perm >= 0 {
		out = append(out, aclEntry{aclUser, uint16(perm), uid})
	}
	var mask uint16
	named := false
	for _, e := range out {
		switch e.tag {
		case aclUser, aclGroup:
			named = true
			fallthrough
		case aclGroupObj:
			mask |= e.perm
		}
	}
	if named {
		out = append(out, aclEntry{aclMask, mask, aclUndefinedID})
	}
	// The kernel wants entries ordered by tag, named ones by id.
	slices.SortFunc(out, func(a, b aclEntry) int { return cmp.Or(cmp.Compare(a.tag, b.tag), cmp.Compare(a.id, b.id)) })
	return out
}

func hasNamed(es []aclEntry, except uint32) bool {
	for _, e := range es {
		if e.tag == aclGroup || e.tag == aclUser && e.id != except {
			return true
		}
	}
	return false
}

// ErrNoACL is returned when a host's file system does not store POSIX ACLs,
// so shares cannot reach the disk.
var ErrNoACL = errors.New("the file system does not support POSIX ACLs; mount the host's root with ACL support (ext4 and XFS have it by default; NFS needs v4.2 or the NFSv3 ACL side protocol)")

// Grant gives the user uid access to a user folder's whole tree on disk, as
// a share allows it: read and traverse (r-X), or with write also write
// (rwX). Each directory and regular file gets a named-user entry in its
// access ACL, and each directory the same in its default ACL, so what is
// created later inherits it; the default ACL also names the folder's
// owner (rwx), so files the grantee's jobs create stay readable and
// removable by the owner. The mask is widened to the union of the group
// class so the entry takes effect. Symbolic links are never followed and
// special files (FIFOs, sockets, devices) are left alone. Grant is
// idempotent and changes a previous grant's permission in place.
//
// What the file system enforces differs from the API in one way: POSIX
// permissions cannot allow writing files but not deleting them in a
// directory one can write, so rw and rw-delete shares both get rwX on disk.
func (h *Host) Grant(ctx context.Context, id string, uid int, write bool) error {
	perm := permR | permX
	if write {
		perm |= permW
	}
	return h.applyShare(ctx, id, uid, perm)
}

// Revoke removes the user uid's entries from a folder's tree: its jobs can
// no longer traverse the folder's top. Files the user created stay theirs
// (the owner reaches them through the default ACL's entry); the owner's
// default entry goes once no other user is named, leaving the folder as it
// was before any share. Revoking a user who has no entries does nothing.
func (h *Host) Revoke(ctx context.Context, id string, uid int) error {
	return h.applyShare(ctx, id, uid, -1)
}

func (h *Host) applyShare(ctx context.Context, id string, uid, perm int) error {
	if err := checkID(id); err != nil {
		return err
	}
	if uid <= 0 {
		return fmt.Errorf("vfolder %s: sharing with uid %d: shares go to unprivileged users", id, uid)
	}
	r, err := os.OpenRoot(h.Path(id))
	if err != nil {
		return err
	}
	defer r.Close()
	top, err := r.Stat(".")
	if err != nil {
		return err
	}
	owner := ownerOf(top)
	if owner.Project {
		return fmt.Errorf("vfolder %s is a project's: its members reach it through the project's group, not through shares", id)
	}
	if owner.UID == uid {
		return fmt.Errorf("vfolder %s: uid %d owns it already", id, uid)
	}
	s := shareACL{uid: uint32(uid), owner: uint32(owner.UID), perm: perm}
	err = walkDirs(ctx, r, defaultWorkers, s.dir)
	if errors.Is(err, unix.EOPNOTSUPP) {
		return fmt.Errorf("vfolder host %s: %w", h.cfg.Name, ErrNoACL)
	}
	return err
}

// shareACL applies one user's entries (perm < 0: their removal) to a tree.
type shareACL struct {
	uid, owner uint32
	perm       int
}

// dir applies the ACLs to a directory and its regular files, returning its
// subdirectories for the walk.
func (s shareACL) dir(r *os.Root, dir string) ([]string, error) {
	d, err := openNoFollow(r, dir, os.O_RDONLY|oDirectory)
	if err != nil {
		if isGone(err) || errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			return nil, nil // removed, or replaced by a link or file, since it was listed
		}
		return nil, mapErr(err)
	}
	defer d.Close()
	fd := int(d.Fd())
	if err := s.apply(fd, true); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	var subdirs []string
	for {
		ents, rerr := d.ReadDir(1024)
		for _, e := range ents {
			switch {
			case e.IsDir():
				subdirs = append(subdirs, path.Join(dir, e.Name()))
			case e.Type().IsRegular():
				if err := s.file(fd, e.Name()); err != nil {
					return subdirs, fmt.Errorf("%s: %w", path.Join(dir, e.Name()), err)
				}
			}
		}
		if rerr != nil || len(ents) == 0 {
			break
		}
	}
	return subdirs, nil
}

// file applies the access ACL to a regular file, opened relative to its
// directory without following a link swapped in since the listing.
func (s shareACL) file(dirfd int, name string) error {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ELOOP) {
			return nil
		}
		return err
	}
	defer unix.Close(fd)
	return s.apply(fd, false)
}

func (s shareACL) apply(fd int, isDir bool) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if isDir != (st.Mode&unix.S_IFMT == unix.S_IFDIR) || !isDir && st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil // replaced by something else since it was listed
	}
	access, err := getACL(fd, aclXattrAccess)
	if err != nil {
		return err
	}
	if access == nil {
		access = aclFromMode(st.Mode)
	}
	perm := s.perm
	if perm >= 0 && !isDir && st.Mode&0o111 == 0 {
		perm &^= permX // X: execute only for directories and files already executable
	}
	if st.Uid == s.uid {
		// The grantee's own file (written by their job): their owner entry
		// already governs it, and a named entry for the owner is refused
		// by nothing but meaningless.
		perm = -1
	}
	if err := setACL(fd, aclXattrAccess, setUser(access, s.uid, perm)); err != nil {
		return err
	}
	if !isDir {
		return nil
	}
	def, err := getACL(fd, aclXattrDefault)
	if err != nil {
		return err
	}
	if def == nil {
		if s.perm < 0 {
			return nil
		}
		// setfacl's rule: a new default ACL starts from the access ACL's
		// base entries.
		for _, e := range access {
			if e.tag == aclUserObj || e.tag == aclGroupObj || e.tag == aclOther {
				def = append(def, e)
			}
		}
	}
	def = setUser(def, s.uid, s.perm)
	if s.perm >= 0 {
		def = setUser(def, s.owner, permR|permW|permX)
	} else if !hasNamed(def, s.owner) {
		def = setUser(def, s.owner, -1)
	}
	if !hasNamed(def, aclUndefinedID) {
		// Only the base entries are left: no default ACL, as before any
		// share (new files then follow the creator's umask again).
		if err := unix.Fremovexattr(fd, aclXattrDefault); err != nil && !errors.Is(err, unix.ENODATA) {
			return err
		}
		return nil
	}
	return setACL(fd, aclXattrDefault, def)
}

// inheritACL gives a file made elsewhere and moved into the directory dirfd
// the access ACL the kernel would have given it had it been created there
// with mode: the directory's default ACL, its owner, owning group (or mask)
// and other entries narrowed by mode (posix_acl_create). Without a default
// ACL it does nothing.
func inheritACL(dirfd, fd int, mode os.FileMode) error {
	def, err := getACL(dirfd, aclXattrDefault)
	if err != nil || def == nil {
		if errors.Is(err, unix.EOPNOTSUPP) {
			err = nil
		}
		return err
	}
	m := uint16(mode.Perm())
	hasMask := slices.ContainsFunc(def, func(e aclEntry) bool { return e.tag == aclMask })
	for i := range def {
		switch e := &def[i]; {
		case e.tag == aclUserObj:
			e.perm &= m >> 6 & 7
		case e.tag == aclOther:
			e.perm &= m & 7
		case e.tag == aclMask, e.tag == aclGroupObj && !hasMask:
			e.perm &= m >> 3 & 7
		}
	}
	return setACL(fd, aclXattrAccess, def)
}

// getACL reads an ACL attribute; nil when the file has none.
func getACL(fd int, name string) ([]aclEntry, error) {
	buf := make([]byte, 4+8*16)
	for {
		n, err := unix.Fgetxattr(fd, name, buf)
		switch {
		case errors.Is(err, unix.ENODATA):
			return nil, nil
		case errors.Is(err, unix.ERANGE):
			size, err := unix.Fgetxattr(fd, name, nil)
			if err != nil {
				return nil, err
			}
			buf = make([]byte, size)
			continue
		case err != nil:
			return nil, err
		}
		return parseACL(buf[:n])
	}
}

func setACL(fd int, name string, es []aclEntry) error {
	return unix.Fsetxattr(fd, name, encodeACL(es), 0)
}
