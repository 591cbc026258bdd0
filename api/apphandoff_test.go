package api

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// handoffWorld is a runtime world whose app hosts resolve: every host name
// is dialled at the test server, as a wildcard DNS name would send it.
type handoffWorld struct {
	*runtimeWorld
	port string
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

func newHandoffWorld(t *testing.T) *handoffWorld {
	w := newRuntimeWorld(t)
	// Known only once the test server listens; set before any request.
	w.srv.publicURL = w.ts.URL
	addr := w.ts.Listener.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	var d net.Dialer
	return &handoffWorld{runtimeWorld: w, port: port, dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}}
}

// appURL is an app host's URL in the test apps domain.
func (w *handoffWorld) appURL(app, session, path string) string {
	return "http://" + app + "--" + session + ".apps.test:" + w.port + path
}

// browser is an HTTP client with a cookie jar; follow says whether it
// follows redirects, and hops records the URLs it was redirected to.
func (w *handoffWorld) browser(t *testing.T, follow bool) (*http.Client, *cookiejar.Jar, *[]string) {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{DialContext: w.dial}
	t.Cleanup(tr.CloseIdleConnections)
	hops := &[]string{}
	c := &http.Client{Jar: jar, Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(r *http.Request, via []*http.Request) error {
			*hops = append(*hops, r.URL.String())
			if !follow {
				return http.ErrUseLastResponse
			}
			if len(via) > 10 {
				return errors.New("too many redirects")
			}
			return nil
		}}
	return c, jar, hops
}

// get sends a GET with headers h (pairs) and returns the response, body read.
func get(t *testing.T, c *http.Client, u string, h ...string) (*http.Response, string) {
	t.Helper()
	r, err := http.NewRequestWithContext(t.Context(), "GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(h); i += 2 {
		r.Header.Set(h[i], h[i+1])
	}
	resp, err := c.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// handoffCode asks the portal origin, with the portal cookie, for a code
// for the app URL to, and returns the redirect's URL.
func (w *handoffWorld) handoffCode(t *testing.T, cookie, to string) *url.URL {
	t.Helper()
	c, jar, _ := w.browser(t, false)
	gw, _ := url.Parse(w.ts.URL)
	jar.SetCookies(gw, []*http.Cookie{{Name: sessionCookie, Value: cookie}})
	resp, body := get(t, c, w.ts.URL+appHandoffPath+"?"+url.Values{"to": {to}}.Encode())
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("handoff to %s: %d %s", to, resp.StatusCode, body)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Path != handoffPath || loc.Query().Get("code") == "" {
		t.Fatalf("handoff redirects to %q", resp.Header.Get("Location"))
	}
	return loc
}

// A browser holding only the portal cookie opens an app on its own host:
// the app host sends it to the portal's origin, which hands it back with a
// one-time code that becomes the app host's own cookie; the app sees
// neither cookie. The app credential works for plain requests and
// WebSockets, and ends with the portal login: its WebSocket closes, and
// requests are refused.
func TestAppHandoffEndToEnd(t *testing.T) {
	w := newHandoffWorld(t)
	ag := w.ready(t)
	cookie := w.portalLogin(t, w.alice)
	c, jar, hops := w.browser(t, true)
	gw, _ := url.Parse(w.ts.URL)
	jar.SetCookies(gw, []*http.Cookie{{Name: sessionCookie, Value: cookie}})

	start := w.appURL("web", w.sid, "/lab/tree?x=1")
	resp, body := get(t, c, start, "Accept", "text/html,application/xhtml+xml")
	if resp.StatusCode != 200 || body != "path=/lab/tree" {
		t.Fatalf("opening %s: %d %q after redirects %q", start, resp.StatusCode, body, *hops)
	}
	if got := resp.Request.URL.String(); got != start {
		t.Errorf("landed on %s; want %s", got, start)
	}
	if len(*hops) != 3 || !strings.HasPrefix((*hops)[0], w.ts.URL+appHandoffPath+"?to=") ||
		!strings.HasPrefix((*hops)[1], w.appURL("web", w.sid, handoffPath+"?code=")) || (*hops)[2] != start {
		t.Errorf("redirects %q; want the portal's handoff, the app host's handoff, then %s", *hops, start)
	}
	var seen *http.Request
	for len(ag.seen) > 0 {
		seen = <-ag.seen
	}
	if seen == nil || seen.Header.Get("Cookie") != "" {
		t.Errorf("the app saw Cookie %q; want none of the gateway's cookies", seen.Header.Get("Cookie"))
	}
	appHostURL, _ := url.Parse(w.appURL("web", w.sid, "/"))
	var appToken string
	for _, ck := range jar.Cookies(appHostURL) {
		if ck.Name == appCookie {
			appToken = ck.Value
		}
	}
	if appToken == "" {
		t.Fatalf("the app host's cookies %v have no %s", jar.Cookies(appHostURL), appCookie)
	}
	for _, ck := range jar.Cookies(gw) {
		if ck.Name == appCookie {
			t.Errorf("the portal's origin got %s too", appCookie)
		}
	}
	// A script's request (no text/html) rides on the app cookie alone.
	*hops = nil
	if resp, body := get(t, c, w.appURL("web", w.sid, "/api/contents")); resp.StatusCode != 200 || len(*hops) != 0 {
		t.Fatalf("fetch with %s: %d %q, redirects %q", appCookie, resp.StatusCode, body, *hops)
	}

	// A WebSocket opened with it closes when the portal login ends.
	d := websocket.Dialer{NetDialContext: w.dial, Jar: jar, HandshakeTimeout: 10 * time.Second}
	origin := w.appURL("web", w.sid, "")
	ws, _, err := d.Dial("ws"+strings.TrimPrefix(w.appURL("web", w.sid, "/ws"), "http"), http.Header{"Origin": {origin}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.WriteMessage(websocket.TextMessage, []byte("x"))
	if _, msg, err := ws.ReadMessage(); err != nil || string(msg) != "echo:x" {
		t.Fatalf("%q %v", msg, err)
	}
	// From another app's page (same site, so SameSite=Lax sends it) the
	// cookie opens nothing.
	if _, resp, err := d.Dial("ws"+strings.TrimPrefix(w.appURL("web", w.sid, "/ws"), "http"), http.Header{"Origin": {w.appURL("web", "0c0ffee0-0000-4000-8000-000000000000", "")}}); err == nil || resp == nil || resp.StatusCode != 403 {
		t.Errorf("WebSocket with %s from another app's origin: %v; want 403", appCookie, err)
	}

	// Logging out of the portal (the portal's own route) ends it.
	_, csrf, err := w.b.ActorForPortalSession(t.Context(), cookie)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := http.NewRequestWithContext(t.Context(), "POST", w.ts.URL+"/api/v1/auth/logout", nil)
	out.Header.Set(csrfHeader, csrf.CSRFToken)
	if resp, err := c.Do(out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("logout: %v %v", resp, err)
	}
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, _, err := ws.ReadMessage(); err == nil {
		t.Fatal("the app WebSocket stayed open after logout")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the app WebSocket stayed open for 10 s after logout")
	}
	r := w.request("GET", "/api/contents", nil)
	r.Host = appHostURL.Host
	r.AddCookie(&http.Cookie{Name: appCookie, Value: appToken})
	p, h := w.wantProblem(r, 401)
	if !strings.Contains(p.Detail, "logged out") {
		t.Errorf("after logout: %q; want it to say the login was logged out", p.Detail)
	}
	if !strings.Contains(strings.Join(h.Values("Set-Cookie"), "\n"), appCookie+"=;") {
		t.Errorf("the dead %s is not dropped: Set-Cookie %q", appCookie, h.Values("Set-Cookie"))
	}
	// A page load goes through the handoff again, which the portal refuses
	// now that the browser is logged out.
	*hops = nil
	if resp, _ := get(t, c, start, "Sec-Fetch-Mode", "navigate"); resp.StatusCode != 401 || len(*hops) != 1 {
		t.Errorf("page load after logout: %d after %q; want 401 from the portal's handoff", resp.StatusCode, *hops)
	}
}

// Codes work once, for a minute, on the host they were minted for; the
// app cookie works on that host only; nobody gets a code for a session
// they may not use; next never leaves the host; bad to= is refused.
func TestAppHandoffRefusals(t *testing.T) {
	w := newHandoffWorld(t)
	w.ready(t)
	ctx := t.Context()
	cookie := w.portalLogin(t, w.alice)
	web := w.appURL("web", w.sid, "/")
	noFollow, _, _ := w.browser(t, false)
	redeem := func(host string, loc *url.URL) (*http.Response, string) {
		t.Helper()
		u := *loc
		u.Host = host + ":" + w.port
		return get(t, noFollow, u.String())
	}
	refused := func(what string, resp *http.Response, body string) {
		t.Helper()
		if p := checkProblem(t, resp.StatusCode, resp.Header, []byte(body), 403); !strings.Contains(p.Detail, "from the portal") {
			t.Errorf("%s: %q; want it to say to open the app from the portal", what, p.Detail)
		}
	}
	webHost := "web--" + w.sid + ".apps.test"

	// Redeemed on another host (another app of the same session): refused,
	// and spent.
	loc := w.handoffCode(t, cookie, web)
	resp, body := redeem("jupyter--"+w.sid+".apps.test", loc)
	refused("code on another host", resp, body)
	resp, body = redeem(webHost, loc)
	refused("code after a try on another host", resp, body)

	// Used twice.
	loc = w.handoffCode(t, cookie, web)
	if resp, body := redeem(webHost, loc); resp.StatusCode != 303 || resp.Header.Get("Location") != "/" {
		t.Fatalf("redeem: %d %q, Location %q", resp.StatusCode, body, resp.Header.Get("Location"))
	}
	resp, body = redeem(webHost, loc)
	refused("code used twice", resp, body)

	for _, ck := range resp.Cookies() {
		if ck.Name == appCookie {
			t.Error("a refused code set a cookie")
		}
	}

	// Expired.
	loc = w.handoffCode(t, cookie, web)
	if _, err := w.db.Exec(ctx, `UPDATE app_handoffs SET expires_at = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	resp, body = redeem(webHost, loc)
	refused("expired code", resp, body)

	// next stays on the host.
	var appToken string
	for _, next := range []string{"//evil.example/x", "http://evil.example/x", "/\\evil.example", "https:evil.example"} {
		loc = w.handoffCode(t, cookie, web)
		q := loc.Query()
		q.Set("next", next)
		loc.RawQuery = q.Encode()
		resp, body := redeem(webHost, loc)
		if resp.StatusCode != 303 || resp.Header.Get("Location") != "/" {
			t.Errorf("next=%q: %d %q, Location %q; want / on the app host", next, resp.StatusCode, body, resp.Header.Get("Location"))
		}
		for _, ck := range resp.Cookies() {
			if ck.Name == appCookie {
				appToken = ck.Value
				if !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.Domain != "" {
					t.Errorf("%s cookie %+v: want host-only, HttpOnly, SameSite=Lax, Path=/", appCookie, ck)
				}
			}
		}
	}
	if appToken == "" {
		t.Fatal("no app cookie was set")
	}

	// The app cookie authenticates its host only: not the API, not path
	// mode, not another app of the session, not another session's host.
	withApp := func(host, path string) *http.Request {
		r := w.request("GET", path, nil)
		if host != "" {
			r.Host = host
		}
		r.AddCookie(&http.Cookie{Name: appCookie, Value: appToken})
		return r
	}
	w.wantStatus(withApp(webHost, "/x"), 200)
	w.wantProblem(withApp("", "/api/v1/auth/session"), 401)
	w.wantProblem(withApp("", "/s/"+w.sid+"/web/x"), 401)
	w.wantProblem(withApp("jupyter--"+w.sid+".apps.test", "/x"), 401)
	bobSID := w.bobSession(t)
	w.wantProblem(withApp("web--"+bobSID+".apps.test", "/x"), 401)

	// Alice gets no code for bob's session (she cannot see it); an admin
	// who can is refused as UseSession refuses.
	gwc, jar, _ := w.browser(t, false)
	gw, _ := url.Parse(w.ts.URL)
	jar.SetCookies(gw, []*http.Cookie{{Name: sessionCookie, Value: cookie}})
	handoff := func(to string) (*http.Response, string) {
		return get(t, gwc, w.ts.URL+appHandoffPath+"?"+url.Values{"to": {to}}.Encode())
	}
	resp, body = handoff(w.appURL("web", bobSID, "/"))
	checkProblem(t, resp.StatusCode, resp.Header, []byte(body), 404)
	r := w.signed(w.root, "GET", appHandoffPath+"?"+url.Values{"to": {w.appURL("web", bobSID, "/")}}.Encode(), nil, time.Now())
	w.wantProblem(r, 403)

	// to must be an app host's URL.
	for _, to := range []string{"", "/lab", "https://evil.example/", "http://web--" + w.sid + ".apps.test.evil.example/",
		"http://alice@web--" + w.sid + ".apps.test/", "javascript:alert(1)", "http://apps.test/", "http://x.web--" + w.sid + ".apps.test/",
		"ftp://web--" + w.sid + ".apps.test/"} {
		resp, body := handoff(to)
		checkProblem(t, resp.StatusCode, resp.Header, []byte(body), 400)
	}

	// Without server.public_url a page load cannot be sent to the portal.
	w.srv.publicURL = ""
	r = w.request("GET", "/lab", nil)
	r.Host = webHost
	r.Header.Set("Accept", "text/html")
	if p, _ := w.wantProblem(r, 401); !strings.Contains(p.Detail, "server.public_url") {
		t.Errorf("no public_url: %q; want it to say to set server.public_url", p.Detail)
	}
}

// bobSession inserts a session of bob's and returns its id.
func (w *handoffWorld) bobSession(t *testing.T) string {
	t.Helper()
	sid := "0c0ffee0-0000-4000-8000-000000000001"
	_, err := w.db.Exec(t.Context(), `INSERT INTO sessions (id, user_id, project_id, domain_id, scaling_group, partition, type,
		image, cpus, memory_mb, time_limit_s, state, started_at)
		SELECT $1, $2, project_id, domain_id, 'cpu', 'cpu', 'interactive', 'host:latest', 2, 1024, 3600, 'RUNNING', now()
		FROM sessions WHERE id = $3`, sid, w.bob.UserID, w.sid)
	if err != nil {
		t.Fatal(err)
	}
	return sid
}
