package bridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// LogOptions selects what SessionLog writes.
type LogOptions struct {
	// Stream is "stdout" (default) or "stderr".
	Stream string
	// Tail, when positive, starts at the last Tail lines instead of the beginning.
	Tail int
	// Follow keeps writing as the job writes, until the session ends or ctx is done.
	Follow bool
}

// logPoll is how often a followed log is checked for growth.
const logPoll = 250 * time.Millisecond

// SessionLog writes a session's job output to w, calling flush after each
// chunk so a streaming response delivers it at once.
func (b *Bridge) SessionLog(ctx context.Context, a Actor, id string, opt LogOptions, w io.Writer, flush func()) error {
	s, err := b.Session(ctx, a, id)
	if err != nil {
		return err
	}
	path := s.stdoutPath
	switch opt.Stream {
	case "", "stdout":
	case "stderr":
		path = s.stderrPath
	default:
		return invalid("stream", "stream %q: want stdout or stderr", opt.Stream)
	}
	if opt.Tail < 0 {
		return invalid("tail", "tail must not be negative")
	}
	var off int64
	if opt.Tail > 0 {
		off = tailOffset(path, s.OwnerUID, opt.Tail)
	}
	for {
		n, err := copyFrom(path, s.OwnerUID, off, w)
		off += n
		if n > 0 && flush != nil {
			flush()
		}
		if err != nil {
			return err
		}
		if !opt.Follow {
			return nil
		}
		if n == 0 {
			cur, err := b.sessionByID(ctx, id)
			if err != nil {
				return err
			}
			if !cur.State.Live() {
				// One last read: the job may have written before it ended.
				n, err := copyFrom(path, s.OwnerUID, off, w)
				if n > 0 && flush != nil {
					flush()
				}
				return err
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(logPoll):
			}
		}
	}
}

// openJobOutput opens a job's output file for the gateway to read. The
// gateway reads as root from a directory the session's owner controls, so
// the owner could put a symbolic link there to a file only root may read
// (the gateway's secret key, /etc/shadow), a hard link to one, or a FIFO
// that would hang the reader. Only a regular file the owner owns is read:
// the link is not followed, the open does not block, and the file's owner
// is checked on the descriptor, not the name.
func openJobOutput(path string, ownerUID int) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, syscall.ELOOP) {
		return nil, &Error{Kind: KindForbidden, Message: fmt.Sprintf("the job's output %s is a symbolic link; the gateway reads only the file the job wrote", filepath.Base(path))}
	}
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !st.Mode().IsRegular() || !ok || int(sys.Uid) != ownerUID {
		f.Close()
		return nil, &Error{Kind: KindForbidden, Message: fmt.Sprintf("the job's output %s is not a regular file of the session's owner (uid %d); the gateway reads only the file the job wrote", filepath.Base(path), ownerUID)}
	}
	return f, nil
}

// copyFrom copies the file from off to its current end. A file not yet
// created (a pending job) reads as empty.
func copyFrom(path string, ownerUID int, off int64, w io.Writer) (int64, error) {
	f, err := openJobOutput(path, ownerUID)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return 0, err
	}
	return io.Copy(w, f)
}

// tailOffset finds where the last n lines of the file begin, reading
// backwards in blocks so a large log costs only its tail.
func tailOffset(path string, ownerUID, n int) int64 {
	f, err := openJobOutput(path, ownerUID)
	if err != nil {
		return 0
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0
	}
	end := st.Size()
	buf := make([]byte, 64<<10)
	lines := 0
	pos := end
	// A final newline ends the last line; it does not start another.
	skipLast := true
	for pos > 0 {
		size := min(int64(len(buf)), pos)
		pos -= size
		if _, err := f.ReadAt(buf[:size], pos); err != nil {
			return 0
		}
		for i := size - 1; i >= 0; i-- {
			if buf[i] != '\n' {
				skipLast = false
				continue
			}
			if skipLast && pos+i == end-1 {
				skipLast = false
				continue
			}
			lines++
			if lines == n {
				return pos + i + 1
			}
		}
	}
	return 0
}
