// Package tunnel owns the wire protocol between a session's agent and the
// gateway: the authentication hello, stream kinds and their headers,
// multiplexing and keepalive. Both ends import it; it imports neither.
//
// # Transport
//
// The agent runs on a compute node that accepts no inbound connection, so it
// dials the gateway: one WebSocket (ws:// or wss://) per agent, carried as
// binary messages and wrapped as a net.Conn, with yamux multiplexing streams
// over it. The gateway is the yamux client and the agent the yamux server:
// the gateway opens most streams (app requests, terminals, exec, raw TCP,
// stop requests) and the agent opens the report stream. yamux lets either
// side open streams; the roles only decide stream-id parity.
//
// gorilla/websocket performs the handshake and parses what arrives; what
// leaves after the hello is framed by this package, so that the yamux
// frames written while one socket write is in progress go out together as
// the next binary message, in one write. That batching, not the framing,
// is what makes the data path cheap: a busy stream's frames are prepared
// while the kernel copies the previous batch, and many small frames of
// many streams share a message and a system call. The agent masks what it
// sends, as RFC 6455 requires of a client (an intermediary that caches
// must never see bytes an app chose), in the same pass that copies it into
// the message.
//
// # Hello
//
// Before yamux starts, the agent sends one text message
//
//	{"protocol":1,"session":"s-123","secret":"<base64url>","version":"v0.3.0"}
//
// and the gateway answers {"ok":true} or {"ok":false,"reason":"…"}. The
// gateway checks the secret with [AcceptConfig.Authenticate]; the secret
// travels only in that message, never in the URL or a header, and this
// package never logs it.
//
// # Streams
//
// Each stream starts with a [Header]: a 4-byte big-endian length and that
// many bytes of JSON. The accepting side answers with a reply in the same
// framing ({} or {"error":"…"}) before any payload, so the opener learns
// "no such service" as an error instead of a closed stream. Then, by kind:
//
//   - [KindHTTP]: HTTP/1.1 to a named service, as on a TCP connection;
//     upgrades (WebSocket) and chunked bodies work, so an
//     httputil.ReverseProxy with an [HTTPTransport] over the tunnel proxies
//     an app. A service that needs its requests changed (its credential
//     added, the gateway's path prefix removed) says how in its
//     [ServiceState].Shape; a gateway that does so opens the stream with
//     [Header].Shaped and the agent passes it to the app unparsed.
//     Otherwise the agent changes each request itself.
//   - [KindTCP]: raw bytes to a named service or a port on the node's loopback.
//   - [KindPTY], [KindExec]: a process; both directions carry [Frame]s
//     (stdin, resize, stdout, stderr, exit) so that resize and the exit code
//     travel beside the bytes. [StartProcess] is the gateway's end.
//   - [KindReport] (agent to gateway): a sequence of JSON [Report] values.
//   - [KindStop] (gateway to agent): end the session; the agent stops its
//     services and container and exits.
//
// # Keepalive
//
// Both ends ping over the WebSocket every [Keepalive].Interval and yamux
// pings on its own at the same interval, so an idle app connection still
// sees traffic on the wire and an intermediary's idle timeout (commonly 60 s)
// never fires. A peer silent for [Keepalive].Timeout is dead: the Conn
// closes and [Conn.Done] is closed.
package tunnel
