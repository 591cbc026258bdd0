package main

import (
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// A sample of /proc/net/tcp6 from an x86-64 (little-endian) host: a
// listener on ::ffff:127.0.0.1:8888, a v4-mapped client of it owned by uid
// 2001, the server side owned by 0, a real IPv6 ::1 pair, and an orphaned
// socket (inode 0).
const sampleTCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0000000000000000FFFF00000100007F:22B8 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4711 1 0000000000000000 100 0 0 10 0
   1: 0000000000000000FFFF00000100007F:D431 0000000000000000FFFF00000100007F:22B8 01 00000000:00000000 00:00000000 00000000  2001        0 4712 1 0000000000000000 20 4 30 10 -1
   2: 0000000000000000FFFF00000100007F:22B8 0000000000000000FFFF00000100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 4713 1 0000000000000000 20 4 30 10 -1
   3: 00000000000000000000000001000000:9C40 00000000000000000000000001000000:1F90 01 00000000:00000000 00:00000000 00000000  2002        0 4714 1 0000000000000000 20 4 30 10 -1
   4: 0000000000000000FFFF00000100007F:D432 0000000000000000FFFF00000100007F:22B8 05 00000000:00000000 00:00000000 00000000     0        0 0 1 0000000000000000 20 4 30 10 -1
`

const sampleTCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:22B8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5001 1 0000000000000000 100 0 0 10 0
   1: 0100007F:D433 0100007F:22B8 01 00000000:00000000 00:00000000 00000000  2003        0 5002 1 0000000000000000 20 4 30 10 -1
`

func TestFindSocketUIDParsesProcNetTCP(t *testing.T) {
	if !littleEndian() {
		t.Fatal("the samples are from a little-endian host; this test needs samples from a big-endian one too")
	}
	ap := netip.MustParseAddrPort
	cases := []struct {
		name   string
		table  string
		want   sockPair
		uid    int
		found  bool
		hasErr bool
	}{
		{"v4-mapped client in tcp6", sampleTCP6, sockPair{ap("127.0.0.1:54321"), ap("127.0.0.1:8888")}, 2001, true, false},
		{"server side is another socket", sampleTCP6, sockPair{ap("127.0.0.1:8888"), ap("127.0.0.1:54321")}, 0, true, false},
		{"IPv6 loopback", sampleTCP6, sockPair{ap("[::1]:40000"), ap("[::1]:8080")}, 2002, true, false},
		{"orphaned socket is no owner", sampleTCP6, sockPair{ap("127.0.0.1:54322"), ap("127.0.0.1:8888")}, 0, false, true},
		{"absent", sampleTCP6, sockPair{ap("127.0.0.1:1"), ap("127.0.0.1:8888")}, 0, false, false},
		{"IPv4 table", sampleTCP, sockPair{ap("127.0.0.1:54323"), ap("127.0.0.1:8888")}, 2003, true, false},
		{"bad line", "header\n 0: zz:1 0100007F:22B8 01 0:0 0:0 0 0 0 1 1\n", sockPair{}, 0, false, true},
	}
	for _, c := range cases {
		uid, found, err := findSocketUID(strings.NewReader(c.table), c.want)
		if uid != c.uid || found != c.found || (err != nil) != c.hasErr {
			t.Errorf("%s: findSocketUID = %d, %v, %v; want %d, %v, error %v", c.name, uid, found, err, c.uid, c.found, c.hasErr)
		}
	}
}

func littleEndian() bool {
	a, err := parseProcAddr("0100007F:0001")
	return err == nil && a.Addr() == netip.MustParseAddr("127.0.0.1")
}

// TestForwardAcceptsOnlyItsOwnUser connects to the listener `app forward`
// uses from this process and from a process running as bob: only ours is
// carried, bob's is closed and named in a warning.
func TestForwardAcceptsOnlyItsOwnUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test starts a process as bob (uid 2002): run it as root")
	}
	bob, err := user.Lookup("bob")
	if err != nil {
		t.Fatalf("user bob: %v (testdata/cluster/up creates alice, bob and carol)", err)
	}
	bobUID, _ := strconv.Atoi(bob.Uid)
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatalf("bash is needed (its /dev/tcp connects as bob): %v", err)
	}

	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var warnings []int
	l := ownerOnly(inner, os.Geteuid(), func(uid int, err error) {
		mu.Lock()
		defer mu.Unlock()
		warnings = append(warnings, uid)
		if err != nil {
			t.Logf("refused: %v", err)
		}
	})
	defer l.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()

	// Bob connects twice and waits for an answer: the listener must close
	// both connections (read sees EOF at once) and warn once.
	port := inner.Addr().(*net.TCPAddr).Port
	script := `for i in 1 2; do exec 3<>/dev/tcp/127.0.0.1/` + strconv.Itoa(port) + ` || exit 3
	read -t 20 -u 3 line; rc=$?; exec 3<&-; [ $rc -gt 128 ] && exit 4; done; exit 0`
	cmd := exec.Command(bash, "-c", script)
	bg, _ := strconv.Atoi(bob.Gid)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(bobUID), Gid: uint32(bg)}}
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case c := <-accepted:
		t.Fatalf("a connection from bob (%s) was accepted", c.RemoteAddr())
	case err := <-done:
		if err != nil {
			t.Fatalf("bob's connections: %v (exit 3: connect failed; 4: the connection stayed open 20 s)", err)
		}
	}

	mine, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer mine.Close()
	select {
	case c := <-accepted:
		defer c.Close()
		if c.RemoteAddr().String() != mine.LocalAddr().String() {
			t.Errorf("accepted %s; want our own connection from %s", c.RemoteAddr(), mine.LocalAddr())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("our own connection was not accepted within 20 s")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(warnings) != 1 || warnings[0] != bobUID {
		t.Errorf("warnings for uids %v; want one, for bob's uid %d", warnings, bobUID)
	}
}
