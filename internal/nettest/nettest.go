// Package nettest holds the loopback clients, echo servers and port
// helpers that the network package tests and the network integration
// tests both use.
package nettest

import (
	"bufio"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// ServeTCPEcho answers each line of each connection to ln with
// prefix+line, until ln is closed, counting connections in n (when not
// nil).
func ServeTCPEcho(ln net.Listener, prefix string, n *atomic.Int32) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		if n != nil {
			n.Add(1)
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			r := bufio.NewReader(c)
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				io.WriteString(c, prefix+line)
			}
		}()
	}
}

// ServeUDPEcho answers each datagram to c with prefix+datagram, until c
// is closed, counting datagrams in n (when not nil).
func ServeUDPEcho(c net.PacketConn, prefix string, n *atomic.Int32) {
	buf := make([]byte, 2048)
	for {
		k, addr, err := c.ReadFrom(buf)
		if err != nil {
			return
		}
		if n != nil {
			n.Add(1)
		}
		c.WriteTo(append([]byte(prefix), buf[:k]...), addr)
	}
}

// Echoes are a TCP and a UDP echo server on the host's 127.0.0.1, and what
// reached them.
type Echoes struct {
	TCPPort, UDPPort int
	TCPHits, UDPHits atomic.Int32
}

// StartEchoes starts Echoes answering with prefix, for the rest of the
// test.
func StartEchoes(t testing.TB, prefix string) *Echoes {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	e := &Echoes{TCPPort: ln.Addr().(*net.TCPAddr).Port, UDPPort: pc.LocalAddr().(*net.UDPAddr).Port}
	go ServeTCPEcho(ln, prefix, &e.TCPHits)
	go ServeUDPEcho(pc, prefix, &e.UDPHits)
	return e
}

// TCPPing sends "ping" to an echo server at addr and returns "ok REPLY" or
// "err WHY".
func TCPPing(addr string) string {
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return "err " + err.Error()
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		return "err " + err.Error()
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "err " + err.Error()
	}
	return "ok " + strings.TrimSpace(line)
}

// UDPPing is TCPPing over UDP. A forwarder may lose the first datagram
// while it sets up, so it tries a few times within the deadline.
func UDPPing(addr string) string {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return "err " + err.Error()
	}
	defer c.Close()
	buf := make([]byte, 2048)
	for i := 0; i < 4; i++ {
		if _, err := c.Write([]byte("ping")); err != nil {
			return "err " + err.Error()
		}
		c.SetReadDeadline(time.Now().Add(400 * time.Millisecond))
		n, err := c.Read(buf)
		if err == nil {
			return "ok " + string(buf[:n])
		}
		if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
			return "err " + err.Error()
		}
	}
	return "err no reply"
}

// handedOut holds the ports FreePort has returned in this process. The
// kernel may give a port that one test closed again to the next test's
// probe, and two sandboxes publishing the same port would make one of
// them fail with "already in use", so no port is handed out twice.
var (
	handedOutMu sync.Mutex
	handedOut   = map[int]bool{}
)

// FreePort returns a port that was free on 127.0.0.1 for proto ("tcp" or
// "udp") a moment ago and that no other caller in this process got.
func FreePort(t testing.TB, proto string) int {
	t.Helper()
	handedOutMu.Lock()
	defer handedOutMu.Unlock()
	for i := 0; i < 100; i++ {
		port, err := probePort(proto)
		if err != nil {
			t.Fatal(err)
		}
		if !handedOut[port] {
			handedOut[port] = true
			return port
		}
	}
	t.Fatal("FreePort: the kernel kept giving ports already handed out")
	return 0
}

// probePort asks the kernel for a free port by binding port 0. The
// socket exists only while syscall.ForkLock is held: a test forking rbox
// meanwhile would give the child a copy of it until the child executes,
// and the port with it, so that rbox, binding the port a moment later,
// finds it in use (CI saw it).
func probePort(proto string) (int, error) {
	syscall.ForkLock.Lock()
	defer syscall.ForkLock.Unlock()
	if proto == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
