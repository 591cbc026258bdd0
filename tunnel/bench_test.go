package tunnel

// Benchmarks of the tunnel alone (make bench). Every path is measured
// against a direct loopback baseline in the same run, on the same service,
// and each prints the ratio: on a shared machine only ratios compare
// between runs. The tunnel side is shaped like the app proxy: the agent
// splices a stream to a loopback service as apptainer/agent does, and the
// gateway copies with a 32 KiB buffer as httputil.ReverseProxy does.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the CPU time (user and system) this process has used. Both
// ends of the tunnel, the service and the client all run here, so CPU per
// operation compares two paths even when other work on the machine
// distorts their rates.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measured runs f and returns its wall-clock and CPU time.
func measured(f func()) (wall, cpu time.Duration) {
	c0, t0 := cpuTime(), time.Now()
	f()
	return time.Since(t0), cpuTime() - c0
}

// benchService listens on loopback and runs serve for each connection.
func benchService(tb testing.TB, serve func(net.Conn)) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); serve(c) }()
		}
	}()
	return l.Addr().String()
}

// spliceAgent accepts every stream on agent and splices it to the address
// route names for its header, both ways with half-close, as the agent does
// for tcp streams.
func spliceAgent(agent *Conn, route func(Header) string) {
	for {
		s, err := agent.AcceptStream(context.Background())
		if err != nil {
			return
		}
		go func() {
			t, err := net.Dial("tcp", route(s.Header))
			if err != nil {
				s.Reject(err.Error())
				return
			}
			s.Accept()
			var wg sync.WaitGroup
			wg.Go(func() { io.Copy(s, t); s.Close() })
			wg.Go(func() { io.Copy(t, s); closeWrite(t) })
			wg.Wait()
			t.Close()
		}()
	}
}

// benchTunnel returns a connected tunnel whose agent splices every stream
// to addr, and a dialer of such streams.
func benchTunnel(tb testing.TB, addr string) func() net.Conn {
	g := newGateway(tb, Keepalive{})
	agent, gw := connect(tb, g, g.url(), Keepalive{})
	go spliceAgent(agent, func(Header) string { return addr })
	return func() net.Conn {
		s, err := gw.OpenStream(context.Background(), Header{Kind: KindTCP, Service: "bench"})
		if err != nil {
			tb.Fatal(err)
		}
		return s
	}
}

// closeWrite half-closes c: a TCP connection's CloseWrite, or a tunnel
// stream's Close, which is its half-close.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	} else {
		c.Close()
	}
}

func tcpDialer(tb testing.TB, addr string) func() net.Conn {
	return func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			tb.Fatal(err)
		}
		return c
	}
}

// copy32k copies as httputil.ReverseProxy does: plain Read and Write with
// a 32 KiB buffer, no ReaderFrom/WriterTo shortcuts.
func copy32k(dst io.Writer, src io.Reader) (int64, error) {
	return io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, make([]byte, 32<<10))
}

// BenchmarkThroughput moves 256 MiB through one stream, agent to gateway
// (download: the agent masks what it sends) and gateway to agent (upload),
// against the same transfer over direct loopback TCP.
func BenchmarkThroughput(b *testing.B) {
	const size = 256 << 20
	chunk := make([]byte, 1<<20) // what the api benchmark's backend writes at a time
	source := benchService(b, func(c net.Conn) {
		for sent := 0; sent < size; sent += len(chunk) {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	})
	sink := benchService(b, func(c net.Conn) {
		n, _ := copy32k(io.Discard, c)
		if n == size {
			c.Write([]byte{1}) // all arrived
		}
	})
	download := func(dial func() net.Conn) {
		c := dial()
		defer c.Close()
		if n, err := copy32k(io.Discard, c); n != size {
			b.Fatalf("download: %d bytes of %d: %v", n, size, err)
		}
	}
	upload := func(dial func() net.Conn) {
		c := dial()
		defer c.Close()
		for sent := 0; sent < size; sent += len(chunk) {
			if _, err := c.Write(chunk); err != nil {
				b.Fatal(err)
			}
		}
		closeWrite(c)
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
			b.Fatalf("upload: the sink did not get %d bytes: %v", size, err)
		}
	}
	for _, dir := range []struct {
		name string
		addr string
		run  func(func() net.Conn)
	}{{"download", source, download}, {"upload", sink, upload}} {
		b.Run(dir.name, func(b *testing.B) {
			tunnel := benchTunnel(b, dir.addr)
			direct := tcpDialer(b, dir.addr)
			dir.run(tunnel) // warm up: the stream window opens to its maximum
			for b.Loop() {
				// Median of three each, interleaved, so that a burst of
				// load from elsewhere on the machine hits both alike.
				var d, t, dc, tc []time.Duration
				for range 3 {
					wall, cpu := measured(func() { dir.run(direct) })
					d, dc = append(d, wall), append(dc, cpu)
					wall, cpu = measured(func() { dir.run(tunnel) })
					t, tc = append(t, wall), append(tc, cpu)
				}
				for _, s := range [][]time.Duration{d, t, dc, tc} {
					slices.Sort(s)
				}
				mib := func(d time.Duration) float64 { return float64(size>>20) / d.Seconds() }
				b.ReportMetric(mib(t[1]), "tunnel-MiB/s")
				b.ReportMetric(mib(d[1]), "direct-MiB/s")
				b.ReportMetric(mib(t[1])/mib(d[1]), "tunnel/direct")
				b.ReportMetric(float64(tc[1].Milliseconds()), "tunnel-cpu-ms")
				b.ReportMetric(float64(dc[1].Milliseconds()), "direct-cpu-ms")
				b.Logf("256 MiB %s: tunnel %.0f MiB/s, direct loopback TCP %.0f MiB/s, tunnel/direct %.2f; CPU tunnel %v, direct %v (%.1f×)",
					dir.name, mib(t[1]), mib(d[1]), mib(t[1])/mib(d[1]), tc[1].Round(time.Millisecond), dc[1].Round(time.Millisecond), float64(tc[1])/float64(dc[1]))
			}
		})
	}
}

// BenchmarkEcho counts 100-byte round trips per second over 10 streams at
// once, each waiting for its echo before sending the next (the api
// benchmark's WebSocket echo, minus WebSocket framing), through the tunnel
// and over direct loopback TCP to the same echo service.
func BenchmarkEcho(b *testing.B) {
	const conns, rounds = 10, 3000
	echo := benchService(b, func(c net.Conn) { io.Copy(c, c) })
	run := func(dial func() net.Conn) (rate float64, cpuPerMsg time.Duration) {
		cs := make([]net.Conn, conns)
		for i := range cs {
			cs[i] = dial()
			defer cs[i].Close()
		}
		c0, start := cpuTime(), time.Now()
		var wg sync.WaitGroup
		for _, c := range cs {
			wg.Go(func() {
				msg := make([]byte, 100)
				for range rounds {
					if _, err := c.Write(msg); err != nil {
						b.Error(err)
						return
					}
					if _, err := io.ReadFull(c, msg); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		return conns * rounds / time.Since(start).Seconds(), (cpuTime() - c0) / (conns * rounds)
	}
	tunnel := benchTunnel(b, echo)
	direct := tcpDialer(b, echo)
	for b.Loop() {
		d, dc := run(direct)
		t, tc := run(tunnel)
		b.ReportMetric(t, "tunnel-msgs/s")
		b.ReportMetric(d, "direct-msgs/s")
		b.ReportMetric(t/d, "tunnel/direct")
		b.ReportMetric(float64(tc.Nanoseconds())/1e3, "tunnel-cpu-µs/msg")
		b.Logf("echo msgs/s (c=%d): tunnel %.0f, direct %.0f, tunnel/direct %.2f; CPU per round trip tunnel %v, direct %v",
			conns, t, d, t/d, tc, dc)
	}
}

// BenchmarkEchoBesideDownload measures what a bulk transfer does to an
// interactive stream on the same tunnel: the round-trip times of 100-byte
// echoes (a terminal's keystrokes) alone, and while another stream
// downloads as fast as it can. Batching must not make a keystroke wait
// behind much more than the kernel's socket buffers already hold.
func BenchmarkEchoBesideDownload(b *testing.B) {
	const rounds = 2000
	echo := benchService(b, func(c net.Conn) { io.Copy(c, c) })
	source := benchService(b, func(c net.Conn) {
		chunk := make([]byte, 1<<20)
		for {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	})
	g := newGateway(b, Keepalive{})
	agent, gw := connect(b, g, g.url(), Keepalive{})
	go spliceAgent(agent, func(h Header) string {
		if h.Service == "source" {
			return source
		}
		return echo
	})
	open := func(service string) net.Conn {
		s, err := gw.OpenStream(context.Background(), Header{Kind: KindTCP, Service: service})
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	rtts := func() (p50, p99 time.Duration) {
		c := open("echo")
		defer c.Close()
		msg := make([]byte, 100)
		lat := make([]time.Duration, rounds)
		for i := range lat {
			t0 := time.Now()
			if _, err := c.Write(msg); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(c, msg); err != nil {
				b.Fatal(err)
			}
			lat[i] = time.Since(t0)
		}
		slices.Sort(lat)
		return lat[rounds/2], lat[rounds*99/100]
	}
	for b.Loop() {
		idle50, idle99 := rtts()
		dl := open("source")
		var got int64
		done := make(chan struct{})
		go func() { got, _ = copy32k(io.Discard, dl); close(done) }()
		start := time.Now()
		busy50, busy99 := rtts()
		dl.SetReadDeadline(time.Now()) // stops the reader; the source never ends
		<-done
		rate := float64(got>>20) / time.Since(start).Seconds()
		dl.Close()
		b.ReportMetric(float64(busy50.Microseconds()), "busy-p50-µs")
		b.ReportMetric(float64(busy99.Microseconds()), "busy-p99-µs")
		b.Logf("keystroke round trip alone: p50 %v, p99 %v; beside a download (%.0f MiB/s): p50 %v, p99 %v",
			idle50, idle99, rate, busy50, busy99)
	}
}

// BenchmarkRequests loads a small-answer app with keep-alive GETs from c
// clients at once: straight to the app, through httputil.ReverseProxy over
// loopback TCP, and through the same proxy over tunnel streams (the app
// proxy's shape). Besides the rates it prints each path's median request
// time, so "tunnel/proxy" is what the tunnel itself adds.
func BenchmarkRequests(b *testing.B) {
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok"))
	})
	direct := httptest.NewServer(app)
	b.Cleanup(direct.Close)
	viaTCP := httptest.NewServer(&httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(&url.URL{Scheme: "http", Host: direct.Listener.Addr().String()})
		},
		Transport:     &http.Transport{MaxIdleConnsPerHost: 100},
		FlushInterval: -1,
	})
	b.Cleanup(viaTCP.Close)
	g := newGateway(b, Keepalive{})
	agent, gw := connect(b, g, g.url(), Keepalive{})
	serveHTTP(b, agent, app)
	viaTunnel := proxyTo(b, gw, "app")
	for _, c := range []int{1, 10, 50} {
		b.Run(fmt.Sprintf("c=%d", c), func(b *testing.B) {
			const total = 6000
			run := func(url string) (rps float64, p50, cpu time.Duration) {
				cl := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: c}}
				defer cl.CloseIdleConnections()
				lat := make([]time.Duration, total)
				var wg sync.WaitGroup
				c0, start := cpuTime(), time.Now()
				for w := range c {
					wg.Go(func() {
						for i := w; i < total; i += c {
							t0 := time.Now()
							resp, err := cl.Get(url)
							if err != nil {
								b.Error(err)
								return
							}
							io.Copy(io.Discard, resp.Body)
							resp.Body.Close()
							lat[i] = time.Since(t0)
						}
					})
				}
				wg.Wait()
				rps = total / time.Since(start).Seconds()
				cpu = (cpuTime() - c0) / total
				slices.Sort(lat)
				return rps, lat[total/2], cpu
			}
			run(viaTunnel.URL) // warm up connections
			for b.Loop() {
				dr, dp, dc := run(direct.URL)
				pr, pp, pc := run(viaTCP.URL)
				tr, tp, tc := run(viaTunnel.URL)
				b.ReportMetric(tr, "tunnel-req/s")
				b.ReportMetric(tr/dr, "tunnel/direct")
				b.ReportMetric(tr/pr, "tunnel/proxy")
				b.ReportMetric(float64((tp - pp).Microseconds()), "tunnel-added-p50-µs")
				b.ReportMetric(float64((tc-pc).Nanoseconds())/1e3, "tunnel-added-cpu-µs/req")
				b.Logf("c=%d req/s: direct %.0f, proxy over TCP %.0f, proxy over tunnel %.0f (tunnel/direct %.2f, tunnel/proxy %.2f); p50 direct %v, proxy %v, tunnel %v (tunnel adds %v); CPU/req direct %v, proxy %v, tunnel %v",
					c, dr, pr, tr, tr/dr, tr/pr, dp, pp, tp, tp-pp, dc, pc, tc)
			}
		})
	}
}
