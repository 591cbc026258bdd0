package tunnel

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkThroughput sends 256 MiB through a tunnel stream and through a
// direct loopback TCP connection in the same run and prints the ratio.
func BenchmarkThroughput(b *testing.B) {
	const size = 256 << 20
	buf := make([]byte, 256<<10)
	// send writes size bytes to c and returns when the sink has read them all.
	send := func(c net.Conn, got <-chan int64) time.Duration {
		start := time.Now()
		for sent := 0; sent < size; sent += len(buf) {
			if _, err := c.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
		c.Close()
		if n := <-got; n != size {
			b.Fatalf("sink got %d bytes of %d", n, size)
		}
		return time.Since(start)
	}
	for b.Loop() {
		// Direct: loopback TCP into a sink.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		got := make(chan int64, 1)
		go func() {
			c, _ := l.Accept()
			n, _ := io.Copy(io.Discard, c)
			got <- n
		}()
		c, _ := net.Dial("tcp", l.Addr().String())
		direct := send(c, got)
		l.Close()

		g := newGateway(b, Keepalive{})
		agent, gw := connect(b, g, g.url(), Keepalive{})
		go func() {
			s, err := agent.AcceptStream(context.Background())
			if err != nil {
				return
			}
			s.Accept()
			n, _ := io.Copy(io.Discard, s)
			got <- n
		}()
		s, err := gw.OpenStream(context.Background(), Header{Kind: KindTCP, Service: "sink"})
		if err != nil {
			b.Fatal(err)
		}
		tun := send(s, got)
		mb := float64(size) / (1 << 20)
		b.ReportMetric(mb/tun.Seconds(), "tunnel-MiB/s")
		b.ReportMetric(mb/direct.Seconds(), "direct-MiB/s")
		b.Logf("throughput: tunnel %.0f MiB/s, direct loopback TCP %.0f MiB/s, tunnel/direct %.2f",
			mb/tun.Seconds(), mb/direct.Seconds(), direct.Seconds()/tun.Seconds())
	}
}

// BenchmarkRequestLatency measures sequential small HTTP requests through
// httputil.ReverseProxy over the tunnel against the same requests sent
// straight to the app, and prints the ratio.
func BenchmarkRequestLatency(b *testing.B) {
	const n = 2000
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	run := func(url string) time.Duration {
		c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
		start := time.Now()
		for range n {
			resp, err := c.Get(url)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return time.Since(start) / n
	}
	for b.Loop() {
		direct := httptest.NewServer(app)
		d := run(direct.URL)
		direct.Close()

		g := newGateway(b, Keepalive{})
		agent, gw := connect(b, g, g.url(), Keepalive{})
		serveHTTP(b, agent, app)
		front := proxyTo(b, gw, "app")
		tun := run(front.URL)
		b.ReportMetric(float64(tun.Microseconds()), "tunnel-µs/req")
		b.ReportMetric(float64(d.Microseconds()), "direct-µs/req")
		b.Logf("request latency: through proxy+tunnel %v, direct %v, tunnel/direct %.2f", tun, d, float64(tun)/float64(d))
	}
}
