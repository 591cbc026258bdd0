package webportal

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

func gz(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(s))
	w.Close()
	return b.Bytes()
}

func serve(h http.Handler, method, target string, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestHandler(t *testing.T) {
	const index = `<!doctype html><script src="/assets/main-ABC.js"></script>`
	h := newHandler(fstest.MapFS{
		"index.html":            {Data: []byte(index)},
		"favicon.svg":           {Data: []byte("<svg/>")},
		"assets/main-ABC.js":    {Data: []byte("console.log(1)")},
		"assets/main-ABC.js.gz": {Data: gz(t, "console.log(1)")},
	})

	// Client-side routes get index.html, revalidated on every load.
	for _, path := range []string{"/", "/sessions/abc", "/admin/projects", "/index.html"} {
		w := serve(h, "GET", path)
		if w.Code != 200 || w.Body.String() != index {
			t.Errorf("GET %s: %d %q, want index.html", path, w.Code, w.Body.String())
		}
		if cc := w.Header().Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("GET %s: Cache-Control %q, want no-cache", path, cc)
		}
		if !strings.Contains(w.Header().Get("Content-Security-Policy"), "frame-ancestors 'none'") {
			t.Errorf("GET %s: no CSP", path)
		}
	}
	// An unchanged index answers 304 to its ETag.
	etag := serve(h, "GET", "/").Header().Get("ETag")
	if w := serve(h, "GET", "/", "If-None-Match", etag); w.Code != http.StatusNotModified {
		t.Errorf("GET / with its ETag: %d, want 304", w.Code)
	}

	// Hashed assets are immutable, typed, and gzipped for clients that take it.
	w := serve(h, "GET", "/assets/main-ABC.js", "Accept-Encoding", "gzip, br")
	if w.Code != 200 || w.Header().Get("Content-Encoding") != "gzip" || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/javascript") ||
		!strings.Contains(w.Header().Get("Cache-Control"), "immutable") {
		t.Errorf("GET asset with gzip: %d %v", w.Code, w.Header())
	}
	zr, err := gzip.NewReader(w.Body)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(zr); string(b) != "console.log(1)" {
		t.Errorf("gzipped asset decodes to %q", b)
	}
	if w := serve(h, "GET", "/assets/main-ABC.js"); w.Header().Get("Content-Encoding") != "" || w.Body.String() != "console.log(1)" {
		t.Errorf("GET asset without gzip: %v %q", w.Header(), w.Body.String())
	}
	// A missing asset is a 404, never index.html (the browser would parse HTML as a script).
	if w := serve(h, "GET", "/assets/main-OLD.js"); w.Code != 404 {
		t.Errorf("GET missing asset: %d, want 404", w.Code)
	}
	// Non-asset files are served but revalidated.
	if w := serve(h, "GET", "/favicon.svg"); w.Code != 200 || w.Header().Get("Cache-Control") != "no-cache" || w.Header().Get("Content-Type") != "image/svg+xml" {
		t.Errorf("GET /favicon.svg: %d %v", w.Code, w.Header())
	}
	// Paths cannot climb out of the build.
	if w := serve(h, "GET", "/../../etc/passwd"); w.Body.String() != index {
		t.Errorf("GET /../../etc/passwd: %q", w.Body.String())
	}
	if w := serve(h, "POST", "/"); w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /: %d %v", w.Code, w.Header())
	}
}

func TestHandlerNotBuilt(t *testing.T) {
	h := newHandler(fstest.MapFS{".placeholder": {Data: []byte("x")}})
	w := serve(h, "GET", "/sessions/x")
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "make") {
		t.Fatalf("unbuilt portal: %d %q, want 503 saying to run make", w.Code, w.Body.String())
	}
}
