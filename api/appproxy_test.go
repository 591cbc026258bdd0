package api

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// A page of another origin cannot act on an app with the portal cookie: a
// state change or WebSocket upgrade whose Sec-Fetch-Site or Origin says it
// came from elsewhere (another user's app in subdomain mode is same-site,
// so SameSite=Lax lets the cookie through) is refused, in path and
// subdomain mode. Requests from the app's own pages, navigations, clients
// that send neither header, and bearer tokens pass.
func TestAppProxyCookieRequestsFromOtherOrigins(t *testing.T) {
	w := newRuntimeWorld(t)
	w.ready(t)
	cookie := w.portalLogin(t, w.alice)
	gateway := strings.TrimPrefix(w.ts.URL, "http://")
	sub := "web--" + w.sid + ".apps.test"
	bobsApp := "http://web--0c0ffee0-0000-4000-8000-000000000000.apps.test"

	for _, mode := range []struct {
		name, host, path string
	}{
		{"path mode", gateway, "/s/" + w.sid + "/web/api/contents/x"},
		{"subdomain mode", sub, "/api/contents/x"},
	} {
		t.Run(mode.name, func(t *testing.T) {
			req := func(method string, h map[string]string) *http.Request {
				r := w.request(method, mode.path, []byte("{}"))
				r.Host = mode.host
				r.AddCookie(&http.Cookie{Name: sessionCookie, Value: cookie})
				for k, v := range h {
					r.Header.Set(k, v)
				}
				return r
			}
			for _, c := range []struct {
				method string
				h      map[string]string
			}{
				{"PUT", nil}, // not a browser
				{"PUT", map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "http://" + mode.host}},
				{"POST", map[string]string{"Sec-Fetch-Site": "none"}},
				{"GET", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": bobsApp}}, // a navigation or read
			} {
				w.wantStatus(req(c.method, c.h), 200)
			}
			for _, h := range []map[string]string{
				{"Sec-Fetch-Site": "same-site"},
				{"Sec-Fetch-Site": "cross-site", "Origin": "http://" + mode.host},
				{"Origin": bobsApp},
				{"Origin": "null"},
			} {
				p, _ := w.wantProblem(req("PUT", h), 403)
				if !strings.Contains(p.Detail, "another origin") {
					t.Errorf("PUT with %v: detail %q; want it to say the request came from another origin", h, p.Detail)
				}
			}
			// A bearer token is not sent by the browser on its own.
			r := req("PUT", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": bobsApp})
			r.Header.Del("Cookie")
			r.Header.Set("Authorization", w.appRequest(w.alice, "GET", "/", nil).Header.Get("Authorization"))
			w.wantStatus(r, 200)

			// WebSocket upgrades, which are GETs, are checked too.
			wsURL := "ws://" + gateway + strings.TrimSuffix(mode.path, "api/contents/x") + "ws"
			dial := func(h http.Header) (int, error) {
				h.Set("Cookie", sessionCookie+"="+cookie)
				h.Set("Host", mode.host)
				c, resp, err := websocket.DefaultDialer.Dial(wsURL, h)
				if err == nil {
					c.Close()
					return 101, nil
				}
				if resp == nil {
					return 0, err
				}
				return resp.StatusCode, err
			}
			if code, err := dial(http.Header{"Origin": {"http://" + mode.host}}); code != 101 {
				t.Errorf("WebSocket from the app's own origin: %d %v", code, err)
			}
			if code, _ := dial(http.Header{"Origin": {bobsApp}}); code != 403 {
				t.Errorf("WebSocket from another app's origin: %d; want 403", code)
			}
			if code, _ := dial(http.Header{"Sec-Fetch-Site": {"same-site"}}); code != 403 {
				t.Errorf("WebSocket with Sec-Fetch-Site: same-site: %d; want 403", code)
			}
		})
	}
}

// Behind a TLS-terminating load balancer (X-Forwarded-Proto: https), apps
// are told https, and the subdomain URLs the API gives are https.
func TestAppProxyBehindTLS(t *testing.T) {
	w := newRuntimeWorld(t)
	ag := w.ready(t)
	for _, c := range []struct{ header, want string }{{"", "http"}, {"https", "https"}} {
		r := w.appRequest(w.alice, "GET", "/s/"+w.sid+"/web/x", nil)
		if c.header != "" {
			r.Header.Set("X-Forwarded-Proto", c.header)
		}
		w.wantStatus(r, 200)
		if seen := <-ag.seen; seen.Header.Get("X-Forwarded-Proto") != c.want {
			t.Errorf("X-Forwarded-Proto %q from the client: the app saw %q; want %q", c.header, seen.Header.Get("X-Forwarded-Proto"), c.want)
		}
		r = w.signed(w.alice, "GET", "/api/v1/sessions/"+w.sid+"/apps", nil, time.Now())
		if c.header != "" {
			r.Header.Set("X-Forwarded-Proto", c.header)
		}
		var apps appList
		if err := json.Unmarshal(w.wantStatus(r, 200), &apps); err != nil {
			t.Fatal(err)
		}
		if want := c.want + "://web--" + w.sid + ".apps.test/"; len(apps.Apps) != 1 || apps.Apps[0].SubdomainURL != want {
			t.Errorf("X-Forwarded-Proto %q: apps %+v; want subdomain URL %s", c.header, apps.Apps, want)
		}
	}
}

// An app cannot set the gateway's cookies: in path mode it shares the
// portal's origin, and an sg_session of its owner's would log the visitor
// into the owner's account. Its own cookies pass.
func TestAppProxyDropsGatewaySetCookies(t *testing.T) {
	w := newRuntimeWorld(t)
	w.ready(t)
	q := url.Values{"c": {
		"sg_session=attackers-token; Path=/",
		"__Host-sg_session=x; Path=/; Secure",
		"SlurmGate_csrf=x",
		"  sg-anything=x; Path=/",
		"_xsrf=app; Path=/s/",
		"theme=dark",
	}}
	_, h, _ := w.send(w.appRequest(w.alice, "GET", "/s/"+w.sid+"/web/set-cookies?"+q.Encode(), nil))
	got := h.Values("Set-Cookie")
	want := []string{"_xsrf=app; Path=/s/", "theme=dark"}
	if !slices.Equal(got, want) {
		t.Errorf("the browser was sent Set-Cookie %q; want only the app's own %q", got, want)
	}
}
