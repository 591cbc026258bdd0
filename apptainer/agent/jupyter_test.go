package agent

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/slurmgate/slurmgate/tunnel"
)

// The real Jupyter Notebook 6.4 on a Unix socket under the gateway's base
// URL, reached through the tunnel.
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
		"--NotebookApp.token=", "--notebook-dir=" + home,
		// Requests arrive with the gateway's Host; the 0700 socket directory,
		// not a Host check, is what keeps other users out.
		"--NotebookApp.allow_remote_access=True"}
	if os.Getuid() == 0 {
		argv = append(argv, "--allow-root") // the test machine runs tests as root; jobs never do
	}
	cfg.Services = []Service{{Name: "jupyter", Protocol: "http", Socket: true, BaseURL: true, Command: argv}}
	startAgent(t, cfg)
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
}
