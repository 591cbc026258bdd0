package client

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// A stand-in for the gateway's login: a cookie and a CSRF token, both
// required on the keypair request, as api's cookie authentication does.
func TestCLIPasswordLoginMintsKeypairWithCookieAndCSRF(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.Method + " " + r.URL.Path {
		case "POST /api/v1/auth/login":
			var in struct{ Username, Password string }
			json.NewDecoder(r.Body).Decode(&in)
			if in.Username != "alice" || in.Password != "pw" {
				w.Header().Set("Content-Type", "application/problem+json")
				w.WriteHeader(http.StatusUnauthorized)
				w.Write([]byte(`{"title":"Unauthorized","status":401,"detail":"wrong user name or password"}`))
				return
			}
			http.SetCookie(w, &http.Cookie{Name: "sg_session", Value: "cookie1", Path: "/", HttpOnly: true})
			w.Write([]byte(`{"auth":"cookie","csrf_token":"csrf1"}`))
		case "POST /api/v1/keypairs", "POST /api/v1/auth/logout":
			if c, err := r.Cookie("sg_session"); err != nil || c.Value != "cookie1" || r.Header.Get("X-CSRF-Token") != "csrf1" {
				w.WriteHeader(http.StatusForbidden)
				return
			}
			w.Write([]byte(`{"access_key":"SGAK1","secret_key":"s1"}`))
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer ts.Close()
	if _, err := PasswordLogin(t.Context(), ts.URL, "alice", "wrong"); err == nil {
		t.Fatal("a wrong password logged in")
	} else if p, ok := err.(*Problem); !ok || p.Status != 401 {
		t.Fatalf("wrong password: %v, want a 401 problem", err)
	}
	c, err := PasswordLogin(t.Context(), ts.URL, "alice", "pw")
	if err != nil {
		t.Fatal(err)
	}
	kp, err := c.CreateKeypair(t.Context(), 0, "cli")
	if err != nil || kp.AccessKey != "SGAK1" || kp.SecretKey != "s1" {
		t.Fatalf("keypair %+v, %v", kp, err)
	}
	if err := c.Logout(t.Context()); err != nil {
		t.Fatal(err)
	}
}
