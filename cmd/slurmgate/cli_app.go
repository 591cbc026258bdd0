package main

// app ls|open|forward: a session's apps (Jupyter, TensorBoard, any service
// its agent runs) by URL through the gateway's app proxy, or on a local port
// through a TCP stream.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/slurmgate/slurmgate/api/client"
)

func appCommand() *cli.Command {
	return &cli.Command{
		Name:  "app",
		Usage: "list, open and forward a running session's apps",
		Description: `Apps are the services a session's agent runs (Jupyter, TensorBoard, …).
They are reached through the gateway: by URL (the app proxy checks that you
may use the session) or on a port of this machine (app forward).

Examples:
   slurmgate app ls 3f2a…
   slurmgate app open 3f2a… jupyter
   slurmgate app forward 3f2a… jupyter 8888

` + exitCodesHelp,
		Commands: []*cli.Command{appListCommand(), appOpenCommand(), appForwardCommand()},
	}
}

// appWithURL is an app as the CLI shows it: with its full URL.
type appWithURL struct {
	client.App
	FullURL string `json:"full_url"`
}

func appListCommand() *cli.Command {
	return &cli.Command{
		Name:      "ls",
		Aliases:   []string{"list"},
		Usage:     "list a session's apps, their readiness and URLs",
		ArgsUsage: "SESSION",
		Description: `Example:
   slurmgate app ls 3f2a… --json`,
		Flags: []cli.Flag{jsonFlag},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			id, c, cfg, err := sessionClient(cmd)
			if err != nil {
				return err
			}
			apps, err := c.SessionApps(ctx, id)
			if err != nil {
				return apiError(err, cfg.Endpoint)
			}
			out := make([]appWithURL, 0, len(apps.Apps))
			for _, a := range apps.Apps {
				out = append(out, appWithURL{a, appURL(c, id, a)})
			}
			if cmd.Bool("json") {
				return printJSON(cmd, struct {
					AgentConnected bool         `json:"agent_connected"`
					Apps           []appWithURL `json:"apps"`
				}{apps.AgentConnected, out})
			}
			rows := make([][]string, 0, len(out))
			for _, a := range out {
				state := "ready"
				if !a.Ready {
					state = "starting"
					if a.Error != "" {
						state = "failed: " + a.Error
					}
				}
				rows = append(rows, []string{a.Name, state, a.FullURL})
			}
			if err := table(cmd.Root().Writer, []string{"APP", "STATE", "URL"}, rows); err != nil {
				return err
			}
			if !apps.AgentConnected {
				fmt.Fprintf(cmd.Root().ErrWriter, "the session's agent is not connected: its apps cannot be reached now (see `slurmgate session info %s`)\n", id)
			}
			return nil
		},
	}
}

// appURL prefers the app's own origin when the gateway serves apps on
// subdomains: apps that insist on "/" work only there.
func appURL(c *client.Client, id string, a client.App) string {
	if a.SubdomainURL != "" {
		return a.SubdomainURL
	}
	return c.AppURL(id, a.Name)
}

// findApp returns the session's app of that name, or an error naming the
// apps it has.
func findApp(ctx context.Context, c *client.Client, endpoint, id, name string) (client.App, error) {
	apps, err := c.SessionApps(ctx, id)
	if err != nil {
		return client.App{}, apiError(err, endpoint)
	}
	names := make([]string, 0, len(apps.Apps))
	for _, a := range apps.Apps {
		if a.Name == name {
			return a, nil
		}
		names = append(names, a.Name)
	}
	return client.App{}, &cliError{code: exitNotFound, msg: fmt.Sprintf("session %s has no app %q (it has %v)", shortID(id), name, names),
		hint: "see `slurmgate app ls " + id + "`"}
}

// sessionAppArgs returns SESSION and APP, and the optional third argument.
func sessionAppArgs(cmd *cli.Command, maxArgs int) (id, app, extra string, err error) {
	if n := cmd.NArg(); n < 2 || n > maxArgs {
		return "", "", "", usageErrorf("%s takes SESSION APP%s (see `slurmgate app ls SESSION`)", cmd.FullName(),
			map[bool]string{true: " [LOCALPORT]"}[maxArgs == 3])
	}
	return cmd.Args().Get(0), cmd.Args().Get(1), cmd.Args().Get(2), nil
}

func appOpenCommand() *cli.Command {
	return &cli.Command{
		Name:      "open",
		Usage:     "print an app's URL and open it in a browser when there is a display",
		ArgsUsage: "SESSION APP",
		Description: `Prints the app's URL on the gateway. When this machine has a display
($DISPLAY or $WAYLAND_DISPLAY) and xdg-open, it also opens the URL there; the
browser must be signed in to the gateway's portal. On a login node without a
browser, use app forward instead.

Example:
   slurmgate app open 3f2a… jupyter`,
		Flags: []cli.Flag{&cli.BoolFlag{Name: "print", Usage: "only print the URL, even with a display"}},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			id, name, _, err := sessionAppArgs(cmd, 2)
			if err != nil {
				return err
			}
			c, cfg, err := apiClient()
			if err != nil {
				return err
			}
			a, err := findApp(ctx, c, cfg.Endpoint, id, name)
			if err != nil {
				return err
			}
			u := appURL(c, id, a)
			fmt.Fprintln(cmd.Root().Writer, u)
			if !a.Ready {
				fmt.Fprintf(cmd.Root().ErrWriter, "app %s is not ready yet%s\n", name, map[bool]string{true: ": " + a.Error}[a.Error != ""])
			}
			if cmd.Bool("print") || (os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "") {
				return nil
			}
			opener, err := exec.LookPath("xdg-open")
			if err != nil {
				return nil
			}
			if err := exec.Command(opener, u).Start(); err != nil {
				fmt.Fprintf(cmd.Root().ErrWriter, "could not open a browser: %v\n", err)
			}
			return nil
		},
	}
}

func appForwardCommand() *cli.Command {
	return &cli.Command{
		Name:      "forward",
		Usage:     "forward a port on this machine to a session's app",
		ArgsUsage: "SESSION APP [LOCALPORT]",
		Description: `Listens on 127.0.0.1:LOCALPORT (a free port when omitted; the address is
printed) and carries each connection to the app through the gateway, so a
local browser, Jupyter client or database client reaches it as if it ran
here. The connections are raw TCP: the app sees them as its own clients.
Only connections opened by your own user are carried: others on this machine
are refused (with a warning), since the app would take them for you.
Runs until Ctrl-C.

Examples:
   slurmgate app forward 3f2a… jupyter 8888
   slurmgate app forward 3f2a… tensorboard`,
		Action: func(ctx context.Context, cmd *cli.Command) error {
			id, name, portArg, err := sessionAppArgs(cmd, 3)
			if err != nil {
				return err
			}
			port := 0
			if portArg != "" {
				if port, err = strconv.Atoi(portArg); err != nil || port < 1 || port > 65535 {
					return usageErrorf("LOCALPORT %q: want a port number from 1 to 65535", portArg)
				}
			}
			c, cfg, err := apiClient()
			if err != nil {
				return err
			}
			a, err := findApp(ctx, c, cfg.Endpoint, id, name)
			if err != nil {
				return err
			}
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
			if err != nil {
				return &cliError{code: exitError, msg: fmt.Sprintf("cannot listen on 127.0.0.1:%d: %v", port, err),
					hint: "choose another LOCALPORT, or omit it for a free one"}
			}
			return forward(ctx, cmd, c, id, a, l)
		},
	}
}

// forward accepts on l until ctx ends, carrying each connection to the
// app over a TCP stream of its own.
func forward(ctx context.Context, cmd *cli.Command, c *client.Client, id string, a client.App, l net.Listener) error {
	out, errw := cmd.Root().Writer, cmd.Root().ErrWriter
	addr := l.Addr().String()
	// Check the path once: an app that serves under the gateway's prefix
	// (Jupyter with base_url) answers there, others at "/".
	local := "http://" + addr + "/"
	if a.URL != "" && servesUnder(ctx, c, id, a.Name, a.URL) {
		local = "http://" + addr + a.URL
	}
	fmt.Fprintf(out, "forwarding %s to app %s of session %s\n%s\n", addr, a.Name, shortID(id), local)
	fmt.Fprintln(errw, "Ctrl-C to stop")

	// Any user of this machine can connect to 127.0.0.1, and the agent
	// authenticates every stream to the app as us: carry only our own.
	l = ownerOnly(l, os.Geteuid(), func(uid int, err error) {
		if err != nil {
			fmt.Fprintf(errw, "warning: refused a connection: %v\n", err)
			return
		}
		fmt.Fprintf(errw, "warning: refused a connection from uid %d: only this user's (uid %d) connections are forwarded\n", uid, os.Geteuid())
	})
	var wg sync.WaitGroup
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	for {
		conn, err := l.Accept()
		if err != nil {
			break
		}
		wg.Go(func() {
			defer conn.Close()
			dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			remote, err := c.DialTCP(dctx, id, a.Name)
			cancel()
			if err != nil {
				fmt.Fprintf(errw, "connection from %s: %v\n", conn.RemoteAddr(), err)
				return
			}
			defer remote.Close()
			pipe(ctx, conn, remote)
		})
	}
	wg.Wait()
	return nil
}

// servesUnder reports whether the app answers GET prefix with something
// other than 404, asked over one TCP stream.
func servesUnder(ctx context.Context, c *client.Client, id, app, prefix string) bool {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conn, err := c.DialTCP(ctx, id, app)
	if err != nil {
		return false
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", prefix)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode != http.StatusNotFound
}

// pipe copies both ways until either side ends or ctx does: the WebSocket
// carries no half-close, so the first end closes both.
func pipe(ctx context.Context, a, b net.Conn) {
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		io.Copy(dst, src)
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	select {
	case <-done:
	case <-ctx.Done():
	}
	a.Close()
	b.Close()
}
