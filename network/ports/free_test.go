package ports

import (
	"net"
	"os/exec"
	"strconv"
	"testing"
)

// A probe's socket is never copied into a child forked meanwhile from
// another goroutine: if it were, the child would hold the port until it
// executed, and binding the probed port at once would fail now and then
// (within the first few hundred binds here without the lock).
func TestProbeNotHeldByForkedChild(t *testing.T) {
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
				// setuid: its exec, and so the window, is long.
				_ = exec.Command("/usr/bin/newuidmap").Run()
			}
		}
	}()
	for i := 0; i < 20000; i++ {
		port, err := kernelPort("tcp", "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			t.Fatalf("bind %d of a port just probed: %v", i, err)
		}
		l.Close()
	}
}
