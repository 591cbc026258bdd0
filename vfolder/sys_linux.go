package vfolder

import (
	"os"
	"syscall"
)

const (
	oNoFollow  = syscall.O_NOFOLLOW
	oDirectory = syscall.O_DIRECTORY
	oNonBlock  = syscall.O_NONBLOCK
)

// ownerOf reads a folder's group and kind from its top directory: a
// setgid top is a project's, read-only without the group's write bit.
func ownerOf(st os.FileInfo) Owner {
	s := st.Sys().(*syscall.Stat_t)
	project := st.Mode()&os.ModeSetgid != 0
	return Owner{UID: int(s.Uid), GID: int(s.Gid), Project: project, ReadOnly: project && st.Mode()&0o020 == 0}
}

func statOwner(st os.FileInfo) (uid, gid int) {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return int(s.Uid), int(s.Gid)
	}
	return -1, -1
}
