package tunnel

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// transportWorld is an app served over a real tunnel, a ReverseProxy in
// front of it with an HTTPTransport, and a count of the streams opened.
type transportWorld struct {
	gw     *Conn
	front  *httptest.Server
	tr     *HTTPTransport
	opened atomic.Int32
}

func newTransportWorld(t *testing.T, app *http.Server) *transportWorld {
	t.Helper()
	g := newGateway(t, Keepalive{})
	agent, gw := connect(t, g, g.url(), Keepalive{})
	serveHTTPWith(t, agent, app)

	w := &transportWorld{gw: gw}
	w.tr = &HTTPTransport{Open: func(ctx context.Context) (net.Conn, error) {
		w.opened.Add(1)
		return gw.DialService(ctx, "app")
	}}
	w.front = httptest.NewServer(&httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(&url.URL{Scheme: "http", Host: "app"}) },
		Transport: w.tr,
	})
	t.Cleanup(w.front.Close)
	t.Cleanup(w.tr.Close)
	return w
}

func (w *transportWorld) do(t *testing.T, method, path string, body io.Reader) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, w.front.URL+path, body)
	resp, err := w.front.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func transportApp(release <-chan struct{}) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hello ", r.Method) })
	mux.HandleFunc("/empty", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("/upload", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, _ := io.Copy(h, r.Body)
		fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
	})
	mux.HandleFunc("/refuse", func(w http.ResponseWriter, r *http.Request) {
		// Answers before reading the body, as an app refusing an upload
		// that is too large does.
		w.Header().Set("Connection", "close")
		http.Error(w, "too large", http.StatusRequestEntityTooLarge)
	})
	mux.HandleFunc("/hints", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</app.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		fmt.Fprint(w, "final")
	})
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "first\n")
		w.(http.Flusher).Flush()
		<-release
		fmt.Fprint(w, "second\n")
	})
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		for {
			typ, b, err := ws.ReadMessage()
			if err != nil {
				return
			}
			ws.WriteMessage(typ, append([]byte("echo: "), b...))
		}
	})
	return mux
}

func TestHTTPTransportKeepsStreamsAlive(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	w := newTransportWorld(t, &http.Server{Handler: transportApp(release)})
	for i := range 20 {
		method := []string{"GET", "HEAD", "POST", "DELETE"}[i%4]
		code, body := w.do(t, method, "/hello", nil)
		want := "hello " + method
		if method == "HEAD" {
			want = ""
		}
		if code != 200 || body != want {
			t.Fatalf("%s /hello = %d %q; want 200 %q", method, code, body, want)
		}
		if code, _ := w.do(t, "GET", "/empty", nil); code != http.StatusNoContent {
			t.Fatalf("GET /empty = %d", code)
		}
	}
	if n := w.opened.Load(); n != 1 {
		t.Errorf("%d streams opened for 40 sequential requests; want 1, kept alive", n)
	}

	// Concurrent requests each get a stream, and return it.
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			for range 20 {
				if code, body := w.do(t, "GET", "/hello", nil); code != 200 || body != "hello GET" {
					t.Errorf("concurrent GET = %d %q", code, body)
				}
			}
		})
	}
	wg.Wait()
	if n := w.opened.Load(); n > 11 {
		t.Errorf("%d streams opened for 10 concurrent clients; want at most 11", n)
	}
}

func TestHTTPTransportBodies(t *testing.T) {
	release := make(chan struct{})
	w := newTransportWorld(t, &http.Server{Handler: transportApp(release)})

	data := make([]byte, 24<<20)
	rand.Read(data)
	want := fmt.Sprintf("%d %x", len(data), sha256.Sum256(data))
	if code, body := w.do(t, "POST", "/upload", bytes.NewReader(data)); code != 200 || body != want {
		t.Errorf("24 MiB upload with a length: %d %q; want %q", code, body, want)
	}
	// No length: chunked.
	if code, body := w.do(t, "POST", "/upload", io.MultiReader(bytes.NewReader(data))); code != 200 || body != want {
		t.Errorf("24 MiB chunked upload: %d %q; want %q", code, body, want)
	}

	// The app answers before reading the body: the answer arrives, the
	// upload is abandoned, and the next request works.
	if code, body := w.do(t, "POST", "/refuse", bytes.NewReader(data)); code != http.StatusRequestEntityTooLarge || !strings.Contains(body, "too large") {
		t.Errorf("upload refused early: %d %q; want 413", code, body)
	}
	if code, _ := w.do(t, "GET", "/hello", nil); code != 200 {
		t.Errorf("GET after a refused upload: %d", code)
	}

	// 1xx informational responses are passed on; the final one follows.
	if code, body := w.do(t, "GET", "/hints", nil); code != 200 || body != "final" {
		t.Errorf("GET /hints = %d %q", code, body)
	}

	// Streaming: the first chunk arrives before the app writes the second.
	resp, err := w.front.Client().Get(w.front.URL + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	first := make([]byte, 6)
	if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "first\n" {
		t.Fatalf("first chunk %q, %v", first, err)
	}
	close(release)
	rest, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(rest) != "second\n" {
		t.Errorf("rest of the stream %q", rest)
	}

	// An upgrade hands the stream to the new protocol.
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(w.front.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	for _, m := range []string{"a", "ünïcödé", strings.Repeat("x", 100000)} {
		ws.WriteMessage(websocket.TextMessage, []byte(m))
		if _, got, err := ws.ReadMessage(); err != nil || string(got) != "echo: "+m {
			t.Fatalf("websocket echo of %.20q: %.30q, %v", m, got, err)
		}
	}
}

func TestHTTPTransportAppClosesIdleStreams(t *testing.T) {
	// The app drops keep-alive connections idle for 50 ms. A request
	// after that must not be sent on a dropped stream, not even a POST,
	// which could not be sent twice.
	w := newTransportWorld(t, &http.Server{Handler: transportApp(nil), IdleTimeout: 50 * time.Millisecond})
	for range 3 {
		if code, body := w.do(t, "GET", "/hello", nil); code != 200 || body != "hello GET" {
			t.Fatalf("GET = %d %q", code, body)
		}
		time.Sleep(300 * time.Millisecond)
		if code, body := w.do(t, "POST", "/upload", strings.NewReader("abc")); code != 200 || !strings.HasPrefix(body, "3 ") {
			t.Fatalf("POST after the app closed the idle stream = %d %q", code, body)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func TestHTTPTransportCancelledRequestFreesItsStream(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	w := newTransportWorld(t, &http.Server{Handler: transportApp(release)})
	w.do(t, "GET", "/hello", nil)
	base := w.gw.NumStreams()

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", w.front.URL+"/hang", nil)
	if resp, err := w.front.Client().Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("GET /hang answered %d; want the client's deadline", resp.StatusCode)
	}
	deadline := time.Now().Add(5 * time.Second)
	for w.gw.NumStreams() > base && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := w.gw.NumStreams(); n > base {
		t.Errorf("%d streams open after the cancelled request ended; want %d", n, base)
	}
	if code, _ := w.do(t, "GET", "/hello", nil); code != 200 {
		t.Errorf("GET after a cancelled request: %d", code)
	}
}

// When the gateway ends an upgraded connection (the user's credential was
// revoked: the request's context ends), the app's output must stop
// reaching the client at once, even from an app that only writes and so
// never notices the stream's half-close.
func TestHTTPTransportEndedUpgradeStopsOutput(t *testing.T) {
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		for i := 0; ; i++ { // never reads: a log tail, a progress feed
			if ws.WriteMessage(websocket.TextMessage, []byte(fmt.Sprint("tick ", i))) != nil {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	w := newTransportWorld(t, &http.Server{Handler: app})
	revoke := make(chan context.CancelFunc, 1)
	rp := w.front.Config.Handler
	front := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		revoke <- cancel
		rp.ServeHTTP(rw, r.WithContext(ctx))
	}))
	defer front.Close()

	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(front.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if _, m, err := ws.ReadMessage(); err != nil || !strings.HasPrefix(string(m), "tick ") {
		t.Fatalf("first message %q, %v", m, err)
	}
	(<-revoke)()
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	after := 0
	for {
		_, _, err := ws.ReadMessage()
		if err == nil {
			after++
			continue
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("the app's output still reaches the client 5 s after the gateway ended the connection (%d messages since)", after)
		}
		t.Logf("client connection closed after %d more messages: %v", after, err)
		return
	}
}
