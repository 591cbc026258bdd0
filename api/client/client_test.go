package client

// The client against stand-in servers; api's own tests run it against the
// real one.

import (
	"bytes"
	"crypto/hmac"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/slurmgate/slurmgate/api/sign"
)

func TestCredentialClientNewRejectsBadURLs(t *testing.T) {
	for _, bad := range []string{"", "gateway:8080", "ftp://h", "http://", "http://h/?x=1", "://"} {
		if _, err := New(bad); err == nil {
			t.Errorf("New(%q) succeeded", bad)
		}
	}
}

func TestCredentialClientSignsRequests(t *testing.T) {
	const ak, sk = "SGAKAAAAAAAAAAAAAAAA", "s3cret"
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		gotAK, sig, err := sign.ParseAuthorization(r.Header.Get("Authorization"))
		sts, _ := sign.StringToSign(r.Method, r.URL, r.Header.Get(sign.DateHeader), r.Header.Get(sign.NonceHeader), sign.BodyHash(body))
		switch {
		case err != nil, gotAK != ak, !hmac.Equal(sig, sign.Compute([]byte(sk), sts)):
			http.Error(w, "bad signature", http.StatusUnauthorized)
		case r.Header.Get(sign.ContentSHA256Header) != sign.BodyHash(body):
			http.Error(w, "bad body hash", http.StatusUnauthorized)
		case r.URL.Path != "/prefix/api/v1/keypairs" || r.URL.Query().Get("user_id") != "7" || r.URL.Query().Get("limit") != "2":
			http.Error(w, "wrong target "+r.URL.String(), http.StatusBadRequest)
		default:
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"items":[{"access_key":"SGAKB","created_at":"2026-01-02T03:04:05Z"}],"next":"abc"}`)
		}
	}))
	defer ts.Close()
	c, err := New(ts.URL+"/prefix/", WithKeypair(ak, sk))
	if err != nil {
		t.Fatal(err)
	}
	page, err := c.ListKeypairs(t.Context(), 7, ListOptions{Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 1 || page.Items[0].AccessKey != "SGAKB" || page.Next != "abc" || !page.Items[0].CreatedAt.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Fatalf("page %+v", page)
	}
}

func TestCredentialClientSendsToken(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer sgt_x" || r.Header.Get(sign.DateHeader) != "" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.URL.EscapedPath() != "/api/v1/keypairs/SGAK%2Fwith%20slash" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer ts.Close()
	// The last credential option wins.
	c, _ := New(ts.URL, WithKeypair("SGAKA", "s"), WithToken("sgt_x"))
	if err := c.RevokeKeypair(t.Context(), "SGAK/with slash"); err != nil {
		t.Fatal(err)
	}
}

func TestCredentialClientProblems(t *testing.T) {
	var status int
	var contentType, body string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("X-Request-Id", "RID")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	defer ts.Close()
	c, _ := New(ts.URL)

	status, contentType = http.StatusForbidden, "application/problem+json"
	body = `{"type":"urn:slurmgate:problem:quota-exceeded","title":"Resource limit reached","status":403,
		"detail":"project lab/vision may use 4 GPUs","field":"gpus","request_id":"RID",
		"quota":{"scope":"project","scope_name":"lab/vision","limit":"gpus","max":4,"in_use":3,"requested":2}}`
	_, err := c.Me(t.Context())
	var p *Problem
	if !errors.As(err, &p) {
		t.Fatalf("err = %v, want a *Problem", err)
	}
	if p.Status != 403 || p.Field != "gpus" || p.RequestID != "RID" || p.Quota == nil || p.Quota.InUse != 3 || p.Quota.ScopeName != "lab/vision" {
		t.Fatalf("problem %+v", p)
	}
	if msg := err.Error(); !strings.Contains(msg, "4 GPUs") || !strings.Contains(msg, "403") || !strings.Contains(msg, "RID") {
		t.Fatalf("Error() = %q", msg)
	}

	// A proxy in front answers in its own format.
	status, contentType, body = http.StatusBadGateway, "text/html", "<html>"+strings.Repeat("bad gateway ", 40)+"</html>"
	_, err = c.Me(t.Context())
	if !errors.As(err, &p) || p.Status != 502 || p.Title != "Bad Gateway" || !strings.HasPrefix(p.Detail, "<html>bad gateway") || len(p.Detail) > 200 || p.RequestID != "RID" {
		t.Fatalf("a proxy's error page: %#v", err)
	}

	// A success that is not JSON is an error, not a zero value.
	status, contentType, body = http.StatusOK, "application/json", "{"
	if _, err = c.Me(t.Context()); err == nil || errors.As(err, &p) {
		t.Fatalf("a truncated answer: err = %v", err)
	}
}

func TestCredentialClientRequestBodies(t *testing.T) {
	var got []byte
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = io.ReadAll(r.Body)
		if r.Header.Get("Content-Type") != "application/json" {
			w.WriteHeader(http.StatusUnsupportedMediaType)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"token":"sgt_t","expires_at":"2026-01-02T03:04:05Z"}`)
	}))
	defer ts.Close()
	c, _ := New(ts.URL)
	tok, err := c.CreateToken(t.Context(), 90*time.Minute)
	if err != nil || tok.Token != "sgt_t" {
		t.Fatalf("CreateToken = %+v, %v", tok, err)
	}
	if !bytes.Equal(got, []byte(`{"ttl_seconds":5400}`)) {
		t.Fatalf("request body %s", got)
	}
}
