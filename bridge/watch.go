package bridge

import (
	"context"
	"sync"
	"time"
)

// SessionChange tells a watcher that a session changed. Watchers re-read the
// session (with their actor's rights) rather than trusting a payload: the
// notification is a hint, the database is the truth.
type SessionChange struct {
	// ID is the session that changed; empty when Resync is set.
	ID string
	// Resync means changes may have been missed (the watcher fell behind, or
	// the database connection was re-established): re-read everything.
	Resync bool
}

// notifyChannel is the PostgreSQL channel migration 0005's trigger notifies
// on every committed session insert or update.
const notifyChannel = "slurmgate_sessions"

// WatchSessions delivers a SessionChange for every committed change to any
// session, on any gateway replica, until ctx ends; the channel is then
// closed. Delivery never blocks the bridge: a watcher that falls behind gets
// one Resync instead of the changes it missed.
//
// One LISTEN connection serves every watcher of this Bridge; it is opened
// with the first watcher and closed with the last.
func (b *Bridge) WatchSessions(ctx context.Context) <-chan SessionChange {
	w := &watcher{ch: make(chan SessionChange, 64)}
	h := b.watch
	h.add(w)
	go func() {
		<-ctx.Done()
		h.remove(w)
	}()
	return w.ch
}

type watcher struct {
	ch chan SessionChange
	// lost: a change was dropped; the next delivery must be a Resync.
	lost bool
}

type sessionWatchHub struct {
	b        *Bridge
	mu       sync.Mutex
	watchers map[*watcher]struct{}
	stop     context.CancelFunc // of the LISTEN loop; nil while nobody watches
}

func (h *sessionWatchHub) add(w *watcher) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.watchers[w] = struct{}{}
	if h.stop == nil {
		ctx, cancel := context.WithCancel(context.Background())
		h.stop = cancel
		go h.listen(ctx)
	}
}

func (h *sessionWatchHub) remove(w *watcher) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.watchers[w]; !ok {
		return
	}
	delete(h.watchers, w)
	close(w.ch)
	if len(h.watchers) == 0 && h.stop != nil {
		h.stop()
		h.stop = nil
	}
}

func (h *sessionWatchHub) broadcast(c SessionChange) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.watchers {
		if w.lost {
			select {
			case w.ch <- SessionChange{Resync: true}:
				w.lost = false
			default:
				continue
			}
			if c.Resync {
				continue
			}
		}
		select {
		case w.ch <- c:
		default:
			w.lost = true
		}
	}
}

// listen holds one connection in LISTEN until ctx ends, reconnecting with
// backoff; after every reconnection watchers resync, since notifications
// sent while no connection listened are gone.
func (h *sessionWatchHub) listen(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for first := true; ctx.Err() == nil; first = false {
		if !first {
			h.broadcast(SessionChange{Resync: true})
		}
		err := h.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		h.b.log.Warn("session watch: listening for changes failed; retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (h *sessionWatchHub) listenOnce(ctx context.Context) error {
	conn, err := h.b.db.Acquire(ctx)
	if err != nil {
		return err
	}
	// A connection that was LISTENing goes back to no pool: closing it is
	// the only sure way to drop the subscription and any queued notifications.
	defer func() {
		_ = conn.Conn().Close(context.WithoutCancel(ctx))
		conn.Release()
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return err
	}
	for {
		n, err := conn.Conn().WaitForNotification(ctx)
		if err != nil {
			return err
		}
		h.broadcast(SessionChange{ID: n.Payload})
	}
}
