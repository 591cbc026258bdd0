package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// The server's handler sends every request for an app's host in subdomain
// mode to the API (whose app proxy serves it), whatever its path: an app
// served at "/" has its own /lab and /index.html. The gateway's own host
// keeps the portal, also when the apps domain is a parent of it.
func TestWithPortalRoutesAppHostsToTheAPI(t *testing.T) {
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "api") })
	h := withPortal(api, "apps.example.org")
	for _, c := range []struct {
		host, path string
		api        bool
	}{
		{"jupyter--7d1c2b7a.apps.example.org", "/lab", true},
		{"jupyter--7d1c2b7a.apps.example.org", "/", true},
		{"Jupyter--7d1c2b7a.Apps.Example.org.:8443", "/index.html", true},
		{"jupyter--7d1c2b7a.apps.example.org", "/api/v1/auth/session", true},
		{"gateway.example.org", "/lab", false},
		{"gateway.example.org", "/api/v1/auth/session", true},
		{"gateway.example.org", "/s/x/jupyter/", true},
		{"apps.example.org", "/lab", false},
		{"portal.apps.example.org", "/", false}, // not an app's shape
		{"evil-apps.example.org", "/lab", false},
	} {
		r := httptest.NewRequest("GET", c.path, nil)
		r.Host = c.host
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if got := rec.Body.String() == "api"; got != c.api {
			t.Errorf("GET %s%s went to the API: %v; want %v", c.host, c.path, got, c.api)
		}
	}
	// Without an apps domain, only paths route.
	r := httptest.NewRequest("GET", "/lab", nil)
	r.Host = "jupyter--7d1c2b7a.apps.example.org"
	rec := httptest.NewRecorder()
	withPortal(api, "").ServeHTTP(rec, r)
	if rec.Body.String() == "api" {
		t.Error("with no apps domain, /lab went to the API")
	}
}
