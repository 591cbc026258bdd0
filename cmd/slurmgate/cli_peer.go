package main

// Who opened a loopback connection: `app forward` listens on 127.0.0.1,
// which every user of a shared login node can reach, and the agent adds
// the service's token to every TCP stream, so a connection carried for
// another user would hand them an authenticated app (code execution as
// us, for Jupyter). The kernel knows the owner of the peer's socket; we
// ask it through /proc/net/tcp{,6}.

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
)

// ownerOnlyListener returns from Accept only the connections whose peer
// socket belongs to uid; others are closed, and warn is called once for
// each uid refused (uid -1: the owner could not be found).
type ownerOnlyListener struct {
	net.Listener
	uid  int
	warn func(uid int, err error)

	mu     sync.Mutex
	warned map[int]bool
}

func ownerOnly(l net.Listener, uid int, warn func(uid int, err error)) *ownerOnlyListener {
	return &ownerOnlyListener{Listener: l, uid: uid, warn: warn, warned: map[int]bool{}}
}

func (l *ownerOnlyListener) Accept() (net.Conn, error) {
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		uid, err := peerUID(conn)
		if err == nil && uid == l.uid {
			return conn, nil
		}
		conn.Close()
		if err != nil {
			uid = -1
		}
		l.mu.Lock()
		first := !l.warned[uid]
		l.warned[uid] = true
		l.mu.Unlock()
		if first {
			l.warn(uid, err)
		}
	}
}

// peerUID returns the uid owning the other end of a loopback TCP
// connection: the socket whose local address is conn's remote one and
// whose remote address is conn's local one.
func peerUID(conn net.Conn) (int, error) {
	local, ok1 := conn.RemoteAddr().(*net.TCPAddr)
	remote, ok2 := conn.LocalAddr().(*net.TCPAddr)
	if !ok1 || !ok2 {
		return 0, fmt.Errorf("not a TCP connection: %s", conn.RemoteAddr())
	}
	want := sockPair{local.AddrPort(), remote.AddrPort()}
	want.local = netip.AddrPortFrom(want.local.Addr().Unmap(), want.local.Port())
	want.remote = netip.AddrPortFrom(want.remote.Addr().Unmap(), want.remote.Port())
	var errs []error
	for _, path := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		uid, found, err := findSocketUID(f, want)
		f.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", path, err))
			continue
		}
		if found {
			return uid, nil
		}
	}
	if len(errs) > 0 {
		return 0, fmt.Errorf("cannot tell who opened the connection from %s: %w", local, errors.Join(errs...))
	}
	return 0, fmt.Errorf("no socket with local address %s and remote %s in /proc/net/tcp{,6} (its owner closed it)", local, remote)
}

// sockPair is a TCP socket's (local, remote) address pair, IPv4 addresses
// unmapped so that an IPv6 socket connected to ::ffff:127.0.0.1 matches.
type sockPair struct{ local, remote netip.AddrPort }

// findSocketUID scans a /proc/net/tcp or tcp6 table for the socket with
// the address pair want. Only sockets a process still holds count: the
// kernel shows orphaned and TIME_WAIT sockets (inode 0) with uid 0, which
// says nothing about who opened them.
func findSocketUID(r io.Reader, want sockPair) (uid int, found bool, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	sc.Scan() // header
	for sc.Scan() {
		// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode …
		f := strings.Fields(sc.Text())
		if len(f) < 10 {
			continue
		}
		local, err1 := parseProcAddr(f[1])
		remote, err2 := parseProcAddr(f[2])
		if err1 != nil || err2 != nil {
			return 0, false, fmt.Errorf("unreadable line %q: %w", sc.Text(), errors.Join(err1, err2))
		}
		if local != want.local || remote != want.remote {
			continue
		}
		if f[9] == "0" {
			return 0, false, fmt.Errorf("the socket from %s is no longer held by any process", want.local)
		}
		uid, err := strconv.Atoi(f[7])
		if err != nil {
			return 0, false, fmt.Errorf("unreadable uid %q: %w", f[7], err)
		}
		return uid, true, nil
	}
	return 0, false, sc.Err()
}

// parseProcAddr parses an address as /proc/net/tcp prints it: the IP as
// 32-bit words in the kernel's byte order, each as 8 hex digits (one word
// for IPv4, four for IPv6), a colon, and the port as 4 hex digits.
func parseProcAddr(s string) (netip.AddrPort, error) {
	ipHex, portHex, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("address %q: no port", s)
	}
	port, err := strconv.ParseUint(portHex, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("address %q: port: %w", s, err)
	}
	words, err := hex.DecodeString(ipHex)
	if err != nil || (len(words) != 4 && len(words) != 16) {
		return netip.AddrPort{}, fmt.Errorf("address %q: want 8 or 32 hex digits before the port", s)
	}
	// Each word was printed as a number: big-endian digits of a value that
	// sat in memory in the host's order.
	ip := make([]byte, len(words))
	for i := 0; i < len(words); i += 4 {
		binary.NativeEndian.PutUint32(ip[i:], binary.BigEndian.Uint32(words[i:]))
	}
	addr, _ := netip.AddrFromSlice(ip)
	return netip.AddrPortFrom(addr.Unmap(), uint16(port)), nil
}
