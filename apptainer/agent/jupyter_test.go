package agent

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/slurmgate/slurmgate/tunnel"
)

// The real Jupyter Notebook 6.4 on a Unix socket under the gateway's base
// URL, reached through the tunnel, guarded by the service's token: the
// agent passes it in JUPYTER_TOKEN (never on the command line) and adds it
// to the requests it proxies, and a request without it is refused.
func TestJupyterOnUnixSocketWithBaseURL(t *testing.T) {
	nb, err := exec.LookPath("jupyter-notebook")
	if err != nil {
		t.Fatal("jupyter-notebook is not installed: apt-get install -y jupyter-notebook (Debian 12 ships 6.4.12)")
	}
	const secret = "anVweXRlcg"
	g := newTestGateway(t, secret)
	cfg := testConfig(t, g, secret)
	cfg.SessionID = "x"
	home := t.TempDir()
	cfg.Env = []string{"HOME=" + home, "JUPYTER_RUNTIME_DIR=" + filepath.Join(home, "rt"), "JUPYTER_CONFIG_DIR=" + filepath.Join(home, "cfg")}
	argv := []string{nb, "--no-browser", "--sock={socket}", "--NotebookApp.base_url={base_url}",
		"--notebook-dir=" + home,
		// Requests arrive with the gateway's Host; the 0700 socket directory,
		// not a Host check, is what keeps other users out.
		"--NotebookApp.allow_remote_access=True"}
	if os.Getuid() == 0 {
		argv = append(argv, "--allow-root") // the test machine runs tests as root; jobs never do
	}
	cfg.Services = []Service{{Name: "jupyter", Protocol: "http", Socket: true, BaseURL: true, Command: argv,
		AuthHeader: "Authorization: token {token}"}}
	ra := startAgent(t, cfg)
	var mu sync.Mutex
	conn := g.conn(t)
	g.waitReport(t, "jupyter ready", allReady("jupyter"))
	front := proxy(func() *tunnel.Conn { mu.Lock(); defer mu.Unlock(); return conn }, "jupyter")
	defer front.Close()
	if code, body := get(t, front.URL+"/s/x/jupyter/api/status"); code != 200 {
		t.Fatalf("GET /s/x/jupyter/api/status = %d %s", code, body)
	} else {
		t.Logf("status: %s", body)
	}
	// Straight to the socket, without the token (what the 0700 directory
	// and the token each keep other users from): refused.
	svc := ra.agent.service("jupyter")
	if svc == nil {
		t.Fatal("no service jupyter")
	}
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return svc.dial(ctx) }}}
	resp, err := c.Get("http://jupyter/s/x/jupyter/api/status")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("GET api/status on Jupyter's socket without the token = %d; want 403", resp.StatusCode)
	}
}
