package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/slurmgate/slurmgate/api/sign"
	"github.com/slurmgate/slurmgate/bridge"
)

func TestProblemMapping(t *testing.T) {
	quota := &bridge.QuotaExceeded{Scope: "project", ScopeName: "lab/vision", Limit: "gpus", Max: 4, InUse: 3, Requested: 2}
	for _, tc := range []struct {
		err    error
		status int
		kind   problemKind
	}{
		{&bridge.Error{Kind: bridge.KindInvalid, Message: "cpus must be positive", Field: "cpus"}, 422, invalidRequest},
		{&bridge.Error{Kind: bridge.KindNotFound, Message: "session x not found"}, 404, notFoundProblem},
		{&bridge.Error{Kind: bridge.KindForbidden, Message: "only admins"}, 403, forbiddenProblem},
		{&bridge.Error{Kind: bridge.KindConflict, Message: "exists"}, 409, conflictProblem},
		{&bridge.Error{Kind: bridge.KindQuota, Message: "project lab/vision may use 4 GPUs; 3 in use, 2 asked", Quota: quota}, 403, quotaExceeded},
		{&bridge.Error{Kind: bridge.KindUnavailable, Message: "Slurm does not answer", Err: errors.New("dial tcp: refused")}, 503, unavailable},
		{fmt.Errorf("wrapped: %w", &bridge.Error{Kind: bridge.KindConflict, Message: "still wrapped"}), 409, conflictProblem},
		{&bridge.Error{Kind: bridge.KindInternal, Message: "password=hunter2 leaked into a message"}, 500, internalProblem},
		{errors.New("pq: connection to 10.0.0.5 refused"), 500, internalProblem},
		{&http.MaxBytesError{Limit: 10}, 413, tooLarge},
	} {
		var logs bytes.Buffer
		w, r := stateRequest(&logs)
		writeError(w, r, tc.err)
		p := checkProblem(t, w.Code, w.Header(), w.Body.Bytes(), tc.status)
		if p.Type != tc.kind.uri() {
			t.Errorf("%v: type %s, want %s", tc.err, p.Type, tc.kind.uri())
		}
		var be *bridge.Error
		if errors.As(tc.err, &be) && be.Kind != bridge.KindInternal && p.Detail != be.Message {
			t.Errorf("%v: detail %q, want the bridge's message", tc.err, p.Detail)
		}
		if tc.status == 500 {
			if strings.Contains(p.Detail, "hunter2") || strings.Contains(p.Detail, "10.0.0.5") || !strings.Contains(p.Detail, p.RequestID) {
				t.Errorf("500 detail %q should hide the error and give the request id", p.Detail)
			}
			if !strings.Contains(logs.String(), "request failed") {
				t.Errorf("a 500 left no log line")
			}
		}
		if be != nil && be.Kind == bridge.KindInvalid && p.Field != "cpus" {
			t.Errorf("invalid: field %q, want cpus", p.Field)
		}
		if be != nil && be.Kind == bridge.KindQuota && (p.Quota == nil || *p.Quota != *quota) {
			t.Errorf("quota member %+v, want %+v", p.Quota, quota)
		}
	}
}

// stateRequest is a request carrying the server's per-request state, as
// handlers see it, logging into logs, and a recorder for its answer.
func stateRequest(logs io.Writer) (*httptest.ResponseRecorder, *http.Request) {
	r := httptest.NewRequest("GET", "/api/v1/things/1", nil)
	st := &requestState{id: "REQ1", base: slog.New(slog.NewTextHandler(logs, nil))}
	w := httptest.NewRecorder()
	w.Header().Set(requestIDHeader, st.id)
	return w, r.WithContext(context.WithValue(r.Context(), stateKey{}, st))
}

func TestProblemClientGoneIsNotAServerError(t *testing.T) {
	var logs bytes.Buffer
	w, r := stateRequest(&logs)
	ctx, cancel := context.WithCancel(r.Context())
	cancel()
	writeError(w, r.WithContext(ctx), fmt.Errorf("query: %w", context.Canceled))
	if w.Code != 499 || strings.Contains(logs.String(), "ERROR") {
		t.Fatalf("status %d, log %q; want 499 and no error logged", w.Code, logs.String())
	}
}

func TestProblemJSONDecoding(t *testing.T) {
	a := newTestAPI(t, Options{MaxBodyBytes: 4096})
	post := func(contentType, body string) *http.Request {
		r := a.request("POST", "/api/v1/keypairs", []byte(body))
		if contentType == "" {
			r.Header.Del("Content-Type")
		} else {
			r.Header.Set("Content-Type", contentType)
		}
		if err := sign.Sign(r, []byte(body), a.root.accessKey, []byte(a.root.secret), time.Now()); err != nil {
			t.Fatal(err)
		}
		return r
	}
	for _, tc := range []struct {
		name, contentType, body string
		status                  int
		field, mention          string
	}{
		{"unknown field", "application/json", `{"descripton":"typo"}`, 400, "descripton", `unknown field "descripton"`},
		{"malformed", "application/json", `{"description":`, 400, "", "malformed JSON"},
		{"syntax error", "application/json", `{"description" "x"}`, 400, "", "malformed JSON at byte"},
		{"trailing garbage", "application/json", `{"description":"x"} {"user_id":1}`, 400, "", "more than one JSON value"},
		{"trailing brace", "application/json", `{"description":"x"}}`, 400, "", "more than one JSON value"},
		{"empty body", "application/json", ``, 400, "", "empty"},
		{"wrong type", "application/json", `{"user_id":"alice"}`, 400, "user_id", "must be an integer, not string"},
		{"not an object", "application/json", `[1,2]`, 400, "", "must be an object, not array"},
		{"wrong content type", "text/plain", `{}`, 415, "", "application/json"},
		{"no content type", "", `{}`, 415, "", "no Content-Type"},
		{"other charset", "application/json; charset=latin1", `{}`, 415, "", "charset"},
		{"too large", "application/json", `{"description":"` + strings.Repeat("x", 5000) + `"}`, 413, "", "larger than 4096 bytes"},
		{"bridge rule", "application/json", `{"description":"` + strings.Repeat("x", 201) + `"}`, 422, "description", "at most 200"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, _ := a.wantProblem(post(tc.contentType, tc.body), tc.status)
			if p.Field != tc.field || !strings.Contains(p.Detail, tc.mention) {
				t.Fatalf("field %q, detail %q; want field %q and a detail mentioning %q", p.Field, p.Detail, tc.field, tc.mention)
			}
		})
	}
	// Whitespace around the value is fine, and so is an explicit charset.
	a.wantStatus(post("application/json; charset=UTF-8", " {\"description\":\"ok\"}\n"), http.StatusCreated)
}

func TestProblemUnmatchedRoutes(t *testing.T) {
	a := newTestAPI(t, Options{})
	p, _ := a.wantProblem(a.request("GET", "/api/v1/nothing-here", nil), http.StatusNotFound)
	if !strings.Contains(p.Detail, "/api/v1/nothing-here") {
		t.Fatalf("detail %q should name the path", p.Detail)
	}
	p, h := a.wantProblem(a.request("PUT", "/api/v1/me", []byte(`{}`)), http.StatusMethodNotAllowed)
	if h.Get("Allow") == "" || !strings.Contains(p.Detail, "GET") {
		t.Fatalf("405: Allow %q, detail %q; want both to list GET", h.Get("Allow"), p.Detail)
	}
}

func TestProblemPanicRecovered(t *testing.T) {
	a := newTestAPI(t, Options{})
	add := func(pattern string, h http.HandlerFunc) {
		a.srv.mux.Handle("GET "+pattern, a.srv.guard(&route{method: "GET", pattern: pattern, access: public, handler: h}))
	}
	add("/test/panic", func(http.ResponseWriter, *http.Request) { panic("boom") })
	add("/test/panic-midway", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"items":[`)
		w.(http.Flusher).Flush()
		panic("boom midway")
	})
	p, _ := a.wantProblem(a.request("GET", "/test/panic", nil), http.StatusInternalServerError)
	if strings.Contains(p.Detail, "boom") {
		t.Fatalf("detail %q shows the panic", p.Detail)
	}
	// A response already under way is aborted, not ended as if whole.
	resp, err := a.ts.Client().Do(a.request("GET", "/test/panic-midway", nil))
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Fatal("a response broken by a panic read as complete")
	}
	a.ts.Close()
	logs := a.logs.String()
	for _, want := range []string{`"panic":"boom"`, `"panic":"boom midway"`, `"stack":"goroutine`, `"status":500`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s", want)
		}
	}
}

func TestProblemRequestID(t *testing.T) {
	a := newTestAPI(t, Options{})
	r := a.request("GET", "/api/v1/me", nil)
	r.Header.Set(requestIDHeader, "from-the-proxy.42")
	p, _ := a.wantProblem(r, http.StatusUnauthorized)
	if p.RequestID != "from-the-proxy.42" {
		t.Fatalf("request id %q, want the proxy's", p.RequestID)
	}
	r.Header.Set(requestIDHeader, "bad id with spaces")
	p, _ = a.wantProblem(r, http.StatusUnauthorized)
	if strings.Contains(p.RequestID, " ") {
		t.Fatalf("a malformed request id %q was kept", p.RequestID)
	}
	var body map[string]any
	_, h, raw := a.send(a.request("GET", "/healthz", nil))
	if json.Unmarshal(raw, &body) != nil || body["status"] != "ok" || h.Get(requestIDHeader) == "" {
		t.Fatalf("healthz: %s, X-Request-Id %q", raw, h.Get(requestIDHeader))
	}
}

func TestProblemUnencodableResponse(t *testing.T) {
	var logs bytes.Buffer
	w, r := stateRequest(&logs)
	writeJSON(w, r, http.StatusOK, map[string]any{"c": make(chan int)})
	checkProblem(t, w.Code, w.Header(), w.Body.Bytes(), http.StatusInternalServerError)
	if !strings.Contains(logs.String(), "encoding the response") {
		t.Fatalf("log %q should say the response did not encode", logs.String())
	}
}
