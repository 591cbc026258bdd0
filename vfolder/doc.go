// Package vfolder owns virtual folders on shared storage: the storage hosts
// (a root directory that every node mounts at the same path), the layout of
// folders beneath a host's root, the POSIX ownership a folder and the files
// written into it get, safe file operations confined to one folder with
// [os.Root], staged (resumable) uploads, streaming zip downloads, and usage
// measurement behind a [QuotaMethod]. Who may do what with a folder, and the
// folders' records, belong to package bridge; this package only touches
// disks.
//
// # Layout
//
// A host's root holds two directories the gateway creates:
//
//	<root>/vf/<id[0:2]>/<id>/   one folder's contents: what sessions bind-mount
//	<root>/staging/<id>/        uploads in progress for that folder (0700, root)
//
// The two-hex-digit prefix spreads folders over 256 directories, so no
// directory grows with the number of folders. Paths come only from folder
// ids the gateway generated, never from the names people choose, so a name
// can be renamed, contain any character, or collide with another owner's
// without touching the disk.
//
// # Privilege model
//
// The gateway process that calls this package runs as root (or, better,
// with only CAP_CHOWN, CAP_FOWNER and CAP_DAC_OVERRIDE): it must create
// folders owned by users and projects, and write files into folders that
// are 0700 to everyone but their owner. Because it bypasses permission
// checks, it is the gateway (package bridge) that decides who may read and
// write, and this package that guarantees where:
//
//   - every path is resolved inside one folder through [os.Root], so no
//     "..", absolute path, symlink or NUL byte reaches outside it, even if a
//     job racing the gateway replaces a directory with a symlink;
//   - ownership, modes and ACLs are changed on open file descriptors
//     (fchown, fchmod, fsetxattr), never by path, and what is changed is
//     opened with openat(2) and O_NOFOLLOW relative to its parent (os.Root
//     itself follows a link that stays inside the folder, O_NOFOLLOW or
//     not), so a swapped symlink cannot redirect them; a directory the
//     gateway just made is given away only after fstat shows it is still
//     that one (the gateway's, empty);
//   - every file and directory the gateway creates in a folder is given to
//     the requesting user's uid and the folder's gid before it becomes
//     visible under its final name;
//   - it never executes, interprets or follows the content of users' files,
//     and never changes the ownership or mode of anything it did not create
//     (apart from the folder's own top directory).
//
// A user's folder is owned by the user's uid and primary gid, mode 0700. A
// project's folder is owned by root and the project's POSIX group, mode
// 2770 (setgid, so files the members' jobs create inherit the group), or
// 2750 when its members may only read ([Owner].ReadOnly): then the group
// has no write bit on the folder nor on anything the gateway creates in it,
// so members' jobs, which reach it through the group, cannot write either.
// Members with rw and with rw-delete both get group rwx: as with shares,
// the file system cannot let a job write files in a directory but not
// delete them; only operations through the gateway tell the two apart. A
// project without a POSIX group cannot have folders: without one, the
// choice would be between a folder nobody's jobs can write and one everyone
// can, and both are wrong.
//
// # Shares on disk
//
// The gateway decides who may use a folder; a job, though, runs as its
// user and meets only the file system's permissions. So when a user
// folder is shared (package bridge calls [Host.Grant] once the invitation
// is accepted or its permission changes, [Host.Revoke] when it ends), the
// grantee's uid gets POSIX ACL entries on the whole tree: ro gives r-X
// (read, and traverse directories), rw and rw-delete give rwX. Directories
// get the same entry in their default ACL, so what anyone creates later
// inherits it, and the default ACL names the owner (rwx) too, so files the
// grantee's jobs create stay readable and removable by the owner. The mask
// is the union of the group class, so no entry is cut short; files and
// directories the gateway creates in a user's folder have group bits as
// wide as the owner's for the same reason (they are the mask).
//
// What the file system enforces is coarser than the API: POSIX permissions
// cannot allow writing files in a directory but not deleting them, so rw
// and rw-delete are both rwX on disk, and only operations through the
// gateway tell them apart. A job can also narrow what it wrote (chmod 600
// empties its file's mask, hiding it from the owner's and other
// grantees' entries); the gateway, which bypasses permissions, still
// reaches it. Symbolic links are never followed and special files are left
// alone. Project folders need none of this: members reach them through the
// project's group (see the privilege model above for ro).
package vfolder
