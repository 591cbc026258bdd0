// Package webportal owns the researcher and admin web portal: its TypeScript
// sources (src/), their build (build.mjs, run by `make portal`), the built
// files embedded in the binary, and the http.Handler that serves them.
//
// The portal is a single-page application that talks to the REST API like any
// other client, so this package imports nothing of the server: the gateway
// mounts [Handler] beside the API (which owns /api/, /s/, /metrics and
// /healthz) and the portal gets every other path.
package webportal

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

// dist is the build output. On a clean checkout it holds only a placeholder
// file; the real files are made by `make portal` and are not committed.
//
//go:embed all:dist
var dist embed.FS

// Handler serves the embedded portal.
func Handler() http.Handler {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // "dist" is a literal directory of the embed
	}
	return newHandler(sub)
}

// Built reports whether the binary holds a portal build, for the gateway's
// start-up log.
func Built() bool {
	_, err := fs.Stat(dist, "dist/index.html")
	return err == nil
}

// handler serves a built portal from files:
//   - /assets/… are content-hashed by the build, so they are cached for a
//     year and never fall back to index.html (a missing script must be a
//     404, not HTML the browser then fails to parse);
//   - any other path that is not a file is a client-side route and gets
//     index.html, revalidated on every load so a new build is picked up;
//   - a pre-compressed name.gz beside a file is sent to clients that take gzip.
type handler struct {
	files fs.FS
	index []byte // nil when the embed holds no build
	etag  string // of index
}

func newHandler(files fs.FS) *handler {
	h := &handler{files: files}
	if b, err := fs.ReadFile(files, "index.html"); err == nil {
		sum := sha256.Sum256(b)
		h.index, h.etag = b, `"`+hex.EncodeToString(sum[:8])+`"`
	}
	return h
}

// securityHeaders apply to every response: the portal loads nothing from
// other origins and is never framed. Inline styles are allowed because
// xterm.js sizes its rows with them; scripts stay 'self' only.
func securityHeaders(w http.ResponseWriter) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; connect-src 'self'; "+
		"object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("X-Frame-Options", "DENY")
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w)
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "the web portal serves only GET and HEAD; the REST API is under /api/v1", http.StatusMethodNotAllowed)
		return
	}
	if h.index == nil {
		notBuilt(w)
		return
	}
	name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
	if name != "" && name != "index.html" && !strings.HasSuffix(name, ".gz") {
		if h.serveFile(w, r, name) {
			return
		}
		if strings.HasPrefix(name, "assets/") {
			http.Error(w, "no such portal asset: the page may come from an older build; reload it", http.StatusNotFound)
			return
		}
	}
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("ETag", h.etag)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	http.ServeContent(w, r, "index.html", time.Time{}, bytes.NewReader(h.index))
}

// serveFile serves one built file if it exists and reports whether it did.
func (h *handler) serveFile(w http.ResponseWriter, r *http.Request, name string) bool {
	st, err := fs.Stat(h.files, name)
	if err != nil || st.IsDir() {
		return false
	}
	body, err := fs.ReadFile(h.files, name)
	if err != nil {
		return false
	}
	hd := w.Header()
	if strings.HasPrefix(name, "assets/") {
		hd.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		hd.Set("Cache-Control", "no-cache")
	}
	hd.Add("Vary", "Accept-Encoding")
	// ServeContent would sniff the type of the gzip bytes, so name it from
	// the uncompressed file.
	if ctype := contentType(name); ctype != "" {
		hd.Set("Content-Type", ctype)
	}
	if acceptsGzip(r) {
		if gz, err := fs.ReadFile(h.files, name+".gz"); err == nil {
			hd.Set("Content-Encoding", "gzip")
			body = gz
		}
	}
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(body))
	return true
}

func contentType(name string) string {
	switch path.Ext(name) {
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".json", ".map":
		return "application/json"
	case ".ico":
		return "image/x-icon"
	}
	return ""
}

func acceptsGzip(r *http.Request) bool {
	for part := range strings.SplitSeq(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.TrimSpace(enc) == "gzip" && strings.ReplaceAll(q, " ", "") != "q=0" {
			return true
		}
	}
	return false
}

// notBuilt is what a binary built without `make portal` shows: the API
// works, the portal needs a build.
func notBuilt(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusServiceUnavailable)
	w.Write([]byte(notBuiltPage))
}

const notBuiltPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Slurmgate: portal not built</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font: 16px/1.5 system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; padding: 0 1rem; color: #1a1a1a">
<h1>The web portal is not built into this binary</h1>
<p>This gateway was compiled without the portal's files. The REST API works
(<a href="/api/v1/openapi.json">/api/v1/openapi.json</a>); to get the portal, build
the binary with <code>make</code> (which runs <code>make portal</code>: <code>npm ci</code> and
<code>npm run build</code> in <code>webportal/</code>, needing Node.js 20 and npm) and restart the gateway.</p>
</body></html>
`
