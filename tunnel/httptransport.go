package tunnel

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"sync"
	"sync/atomic"
	"time"
)

// HTTPTransport is an http.RoundTripper for one service of one tunnel: it
// carries HTTP/1.1 over the tunnel's streams and keeps them alive between
// requests.
//
// net/http.Transport would do, and did: but it spends two goroutines per
// connection and hands every request and response between them, which on
// a stream that is already an in-memory pipe costs more than the request.
// Here a request is written and its response read in the caller's
// goroutine; only a request body is written from a goroutine of its own,
// so that an app may answer before it has read the whole body.
//
// What it does not do, because a tunnel stream does not need it: proxies,
// TLS, HTTP/2, compression (responses pass through as the app encoded
// them), connection limits per host (streams are cheap; at most MaxIdle
// are kept).
type HTTPTransport struct {
	// Open opens a new stream to the service.
	Open func(context.Context) (net.Conn, error)
	// MaxIdle is how many idle streams are kept for reuse (default 64).
	MaxIdle int

	mu     sync.Mutex
	idle   []*httpStream
	closed bool
}

// httpStream is one stream carrying HTTP/1.1, with its buffers.
type httpStream struct {
	conn      net.Conn
	br        *bufio.Reader
	bw        *bufio.Writer
	idleSince time.Time
}

// CloseIdleConnections closes the idle streams; the Transport can be used
// again afterwards. It is http.Transport's method of the same name, for
// callers that treat both alike.
func (t *HTTPTransport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.mu.Unlock()
	for _, s := range idle {
		s.conn.Close()
	}
}

// Close closes the idle streams and keeps no more: streams in use are
// closed as their responses end.
func (t *HTTPTransport) Close() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.CloseIdleConnections()
}

// get returns an idle stream that is still open, or nil.
func (t *HTTPTransport) get() *httpStream {
	for {
		t.mu.Lock()
		n := len(t.idle)
		if n == 0 {
			t.mu.Unlock()
			return nil
		}
		s := t.idle[n-1]
		t.idle = t.idle[:n-1]
		t.mu.Unlock()
		if s.open() {
			return s
		}
		s.conn.Close()
	}
}

// open reports whether an idle stream may carry another request: its peer
// has neither closed it nor sent anything unasked (an app closing an idle
// keep-alive connection shows here as EOF). The check reads with a
// deadline already past, so it never waits; it is skipped for a stream
// idle for less than recheckIdle because it costs a timer: a stream
// handed from request to request under load is not checked, one that
// waited long enough for an app to time it out (Node's and Apache's
// idle timeouts are 5 s; a Go server's may be its ReadTimeout) is.
func (s *httpStream) open() bool {
	if s.br.Buffered() > 0 {
		return false
	}
	if time.Since(s.idleSince) < recheckIdle {
		return true
	}
	s.conn.SetReadDeadline(time.Unix(1, 0))
	_, err := s.br.Peek(1)
	s.conn.SetReadDeadline(time.Time{})
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

const recheckIdle = 10 * time.Millisecond

func (t *HTTPTransport) put(s *httpStream) {
	s.idleSince = time.Now()
	limit := t.MaxIdle
	if limit <= 0 {
		limit = 64
	}
	t.mu.Lock()
	if !t.closed && len(t.idle) < limit {
		t.idle = append(t.idle, s)
		s = nil
	}
	t.mu.Unlock()
	if s != nil {
		s.conn.Close()
	}
}

// RoundTrip sends the request on an idle stream, or a new one, and returns
// the response. Its body hands the stream back for the next request once
// read to the end; closed before that, it closes the stream.
func (t *HTTPTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		s := t.get()
		reused := s != nil
		if s == nil {
			c, err := t.Open(req.Context())
			if err != nil {
				closeBody(req)
				return nil, err
			}
			s = &httpStream{conn: c, br: bufio.NewReaderSize(c, 4<<10), bw: bufio.NewWriterSize(c, 4<<10)}
		}
		resp, err := t.exchange(s, req)
		if err == nil {
			return resp, nil
		}
		s.conn.Close()
		// A reused stream may have been closed by the app just as the
		// request went out; a request that can be sent again is sent on
		// another stream (a few times at most), as net/http.Transport
		// does.
		var se *sentError
		if reused && attempt < 3 && req.Context().Err() == nil && errors.As(err, &se) && !se.answered && replayable(req) {
			continue
		}
		closeBody(req)
		return nil, err
	}
}

// sentError is a failure after the request started out; answered says the
// app had begun its response.
type sentError struct {
	err      error
	answered bool
}

func (e *sentError) Error() string { return e.err.Error() }
func (e *sentError) Unwrap() error { return e.err }

// replayable reports whether a request may be sent twice: it has no body
// and is idempotent by its method or says so.
func replayable(req *http.Request) bool {
	if req.Body != nil && req.Body != http.NoBody {
		return false
	}
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return req.Header.Get("Idempotency-Key") != "" || req.Header.Get("X-Idempotency-Key") != ""
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// exchange writes req on s and reads the response head.
func (t *HTTPTransport) exchange(s *httpStream, req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// A cancelled request (the browser went away) unblocks whatever the
	// stream is waiting for; the stream is then not reused.
	stop := context.AfterFunc(ctx, func() { s.conn.SetDeadline(time.Unix(1, 0)) })

	var wrote chan error // the body writer's result; nil when written here
	if req.Body == nil || req.Body == http.NoBody {
		err := req.Write(s.bw)
		if err == nil {
			err = s.bw.Flush()
		}
		if err != nil {
			stop()
			return nil, &sentError{err: ctxErr(ctx, err)}
		}
	} else {
		wrote = make(chan error, 1)
		go func() {
			err := req.Write(s.bw)
			if err == nil {
				err = s.bw.Flush()
			}
			wrote <- err
		}()
	}

	// Whether anything came back decides whether the request may be sent
	// again (RoundTrip); ReadResponse alone does not tell.
	_, err := s.br.Peek(1)
	answered := err == nil
	var resp *http.Response
	if err == nil {
		resp, err = readResponse(s.br, req)
	}
	if err != nil {
		stop()
		if wrote != nil {
			// The writer ends once the stream is closed, or once the
			// client's body does: it is not waited for, as the client
			// may be what it waits on.
			s.conn.Close()
			select {
			case werr := <-wrote:
				if werr != nil && !errors.Is(werr, io.EOF) && ctx.Err() == nil {
					err = fmt.Errorf("%w (writing the request: %v)", err, werr)
				}
			default:
			}
		}
		return nil, &sentError{err: ctxErr(ctx, err), answered: answered}
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// The stream now belongs to the upgraded protocol (a WebSocket);
		// ReverseProxy copies both ways through the body.
		stop()
		resp.Body = &upgradedStream{s: s}
		return resp, nil
	}
	b := &responseBody{t: t, s: s, body: resp.Body, stop: stop, wrote: wrote,
		keep: !resp.Close && !req.Close}
	if resp.Body == http.NoBody {
		b.finish(true)
		return resp, nil
	}
	resp.Body = b
	return resp, nil
}

// readResponse reads the final response, passing 1xx informational ones
// (103 Early Hints, 100 Continue) to the request's trace, as
// net/http.Transport does for httputil.ReverseProxy to forward them.
func readResponse(br *bufio.Reader, req *http.Request) (*http.Response, error) {
	trace := httptrace.ContextClientTrace(req.Context())
	for range 10 {
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode < 100 || resp.StatusCode > 199 || resp.StatusCode == http.StatusSwitchingProtocols {
			return resp, nil
		}
		if trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(resp.StatusCode, textproto.MIMEHeader(resp.Header)); err != nil {
				return nil, err
			}
		}
	}
	return nil, errors.New("too many 1xx informational responses")
}

func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// responseBody hands the stream back to the Transport once the body has
// been read to its end and the request body written, or closes it.
type responseBody struct {
	t     *HTTPTransport
	s     *httpStream
	body  io.ReadCloser
	stop  func() bool
	wrote chan error
	keep  bool // the response and the request allow another request on the stream

	mu   sync.Mutex
	done bool
}

func (b *responseBody) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	if err != nil {
		b.finish(err == io.EOF)
	}
	return n, err
}

func (b *responseBody) Close() error {
	b.finish(false)
	return nil
}

// finish releases the stream: back to the idle list when the body was read
// to its end (complete) and the exchange allows reuse, closed otherwise.
func (b *responseBody) finish(complete bool) {
	b.mu.Lock()
	if b.done {
		b.mu.Unlock()
		return
	}
	b.done = true
	b.mu.Unlock()
	stopped := b.stop()
	reuse := complete && b.keep && stopped
	if b.wrote != nil && reuse {
		// Only a stream whose request went out whole carries another.
		// An app that answered without reading all of it leaves the
		// writer blocked, on the stream or on the client's body: it is
		// not waited for, and closing the stream ends it.
		select {
		case err := <-b.wrote:
			reuse = err == nil
		default:
			reuse = false
		}
	}
	if reuse {
		b.t.put(b.s)
	} else {
		b.s.conn.Close()
	}
}

// upgradedStream is the body of a 101 response: the stream itself, read
// through the buffer that may already hold the new protocol's first bytes.
//
// Close ends both directions. ReverseProxy closes it when the request's
// context ends (the user signed out or lost access) and then waits for its
// copy from the app to fail; a yamux stream's Close is only a half-close,
// so reads would go on, and the app's output would keep reaching the
// client until the app noticed. The read deadline wakes a blocked read;
// closed stops reads of what is already buffered.
type upgradedStream struct {
	s      *httpStream
	closed atomic.Bool
}

func (u *upgradedStream) Read(p []byte) (int, error) {
	if u.closed.Load() {
		return 0, net.ErrClosed
	}
	return u.s.br.Read(p)
}

func (u *upgradedStream) Write(p []byte) (int, error) { return u.s.conn.Write(p) }

func (u *upgradedStream) Close() error {
	u.closed.Store(true)
	u.s.conn.SetReadDeadline(time.Unix(1, 0))
	return u.s.conn.Close()
}
