package bridge

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
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
		off = tailOffset(path, opt.Tail)
	}
	for {
		n, err := copyFrom(path, off, w)
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
				n, err := copyFrom(path, off, w)
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

// copyFrom copies the file from off to its current end. A file not yet
// created (a pending job) reads as empty.
func copyFrom(path string, off int64, w io.Writer) (int64, error) {
	f, err := os.Open(path)
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
func tailOffset(path string, n int) int64 {
	f, err := os.Open(path)
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
