package slirp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rootless-containers/rootlesskit/v2/pkg/port"
	portchild "github.com/rootless-containers/rootlesskit/v2/pkg/port/builtin/child"
	"github.com/rootless-containers/rootlesskit/v2/pkg/port/builtin/opaque"
	"github.com/rootless-containers/rootlesskit/v2/pkg/port/builtin/parent/tcp"
	"github.com/rootless-containers/rootlesskit/v2/pkg/port/builtin/parent/udp"
)

// Published ports use rootlesskit's builtin port driver: this process
// listens on the host port (pkg/port/builtin/parent/tcp and .../udp), and for
// each connection (or UDP peer) asks an agent inside the sandbox
// (pkg/port/builtin/child, goroutines of the sandbox's pid 1) over a unix
// socket to dial the sandbox's 127.0.0.1:PORT and pass the connected socket
// back. Nothing runs as a separate process.
//
// What is wrapped: the driver's parent half (parent.NewDriver) keeps its
// unix socket and a FIFO in a state directory on the host's disk, which a
// SIGKILLed rbox would leave behind. Instead the socket lives on a tmpfs that
// pid 1 creates detached (fsopen/fsmount: it is mounted nowhere) and keeps
// open at a fixed descriptor number, portDirFD. pid 1 binds the socket as
// /proc/self/fd/N/port.sock; this process reaches it as
// /proc/CHILDPID/fd/N/port.sock, which the kernel allows because this process
// owns the sandbox's user namespace. The tmpfs, socket included, disappears
// with pid 1, and nothing is on the host's disk at any time. The per-port
// listeners (tcp.Run, udp.Run) are called directly with that socket path; the
// driver's FIFO handshake is replaced by pid 1 waiting for its own agent (see
// startPortAgent), and ports are bound in Start, before the sandbox runs
// anything, so a port in use fails early. Connections that arrive before
// pid 1's agent is listening are retried by the driver for about 200ms.

// forward is one published port's listener in this process.
type forward struct {
	spec    PortSpec
	stopCh  chan struct{}
	stopped chan error
}

func (n *Network) startForwards(childPID int, ps []PortSpec, log io.Writer) error {
	if log == nil {
		log = io.Discard
	}
	socketPath := fmt.Sprintf("/proc/%d/fd/%d/%s", childPID, portDirFD, portSockNam)
	seen := map[string]bool{}
	for _, p := range ps {
		if seen[p.hostAddr()] {
			return fmt.Errorf("host port %s is published twice", p.hostAddr())
		}
		seen[p.hostAddr()] = true
		spec := port.Spec{
			Proto:      p.Proto,
			ParentIP:   p.HostIP,
			ParentPort: p.HostPort,
			ChildPort:  p.ChildPort,
			// Always the sandbox's loopback: the agent would otherwise
			// dial the host address inside the sandbox.
			ChildIP: "127.0.0.1",
		}
		f := &forward{spec: p, stopCh: make(chan struct{}), stopped: make(chan error, 1)}
		var err error
		switch p.Proto {
		case "tcp":
			err = tcp.Run(socketPath, spec, f.stopCh, f.stopped, log)
		case "udp":
			err = udp.Run(socketPath, spec, f.stopCh, f.stopped, log)
		default:
			err = fmt.Errorf("unsupported protocol %q", p.Proto)
		}
		if err != nil {
			return bindError(p, err)
		}
		n.mu.Lock()
		n.forwards = append(n.forwards, f)
		n.mu.Unlock()
	}
	return nil
}

func (f *forward) stop() error {
	close(f.stopCh)
	select {
	case <-f.stopped:
		// The error is the listener's Close, which cannot matter here.
	case <-time.After(5 * time.Second):
		return fmt.Errorf("stop forwarding %s: timed out", f.spec.hostAddr())
	}
	return nil
}

// startPortAgent runs, in the sandbox's pid 1, the inside half of the port
// driver, and returns once it accepts connections. The agent's goroutines
// run for the rest of pid 1's life.
func startPortAgent(fd int, log io.Writer) error {
	if log == nil {
		log = io.Discard
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil {
		return fmt.Errorf("port forwarder: descriptor %d is already in use in pid 1", fd)
	}
	dir, err := detachedTmpfs()
	if err != nil {
		return fmt.Errorf("port forwarder: private tmpfs: %w", err)
	}
	if err := unix.Dup3(dir, fd, unix.O_CLOEXEC); err != nil {
		unix.Close(dir)
		return fmt.Errorf("port forwarder: dup to descriptor %d: %w", fd, err)
	}
	unix.Close(dir)

	base := "/proc/self/fd/" + strconv.Itoa(fd) + "/"
	ready := base + "ready"
	if err := unix.Mkfifo(ready, 0o600); err != nil {
		return fmt.Errorf("port forwarder: %w", err)
	}
	opq := map[string]string{
		opaque.SocketPath:         base + portSockNam,
		opaque.ChildReadyPipePath: ready,
	}
	agentErr := make(chan error, 1)
	go func() {
		// quit is never closed: the agent lives as long as pid 1.
		agentErr <- portchild.NewDriver(log).RunChildDriver(opq, make(chan struct{}), "")
	}()
	// The agent opens the FIFO for writing, listens, then closes it: EOF
	// here means it accepts connections. Opening for reading blocks until
	// the agent opens its end, so do it aside, in case the agent fails
	// first.
	readyDone := make(chan error, 1)
	go func() {
		f, err := os.OpenFile(ready, os.O_RDONLY, 0)
		if err != nil {
			readyDone <- err
			return
		}
		_, err = io.Copy(io.Discard, f)
		f.Close()
		readyDone <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), helperTimeout)
	defer cancel()
	select {
	case err := <-readyDone:
		if err != nil {
			return fmt.Errorf("port forwarder: %w", err)
		}
	case err := <-agentErr:
		// Unblock the reader if the agent never opened the FIFO.
		if w, e := os.OpenFile(ready, os.O_WRONLY|unix.O_NONBLOCK, 0); e == nil {
			w.Close()
		}
		return fmt.Errorf("port forwarder: %v", err)
	case <-ctx.Done():
		return errors.New("port forwarder: agent did not start")
	}
	_ = os.Remove(ready)
	// The socket is reached only through pid 1's descriptor, which only
	// the sandbox's owner may follow; let that owner in whatever the
	// sandbox's uid map says root is.
	_ = os.Chmod(base+portSockNam, 0o666)
	return nil
}

// detachedTmpfs returns a descriptor for the root of a new tmpfs that is not
// attached anywhere: it exists only as long as the descriptor does.
func detachedTmpfs() (int, error) {
	fsfd, err := unix.Fsopen("tmpfs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("fsopen: %w", err)
	}
	defer unix.Close(fsfd)
	for k, v := range map[string]string{"mode": "0711", "size": "64k", "nr_inodes": "16"} {
		if err := unix.FsconfigSetString(fsfd, k, v); err != nil {
			return -1, fmt.Errorf("fsconfig %s=%s: %w", k, v, err)
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return -1, fmt.Errorf("fsconfig create: %w", err)
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_NOEXEC|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV)
	if err != nil {
		return -1, fmt.Errorf("fsmount: %w", err)
	}
	return mfd, nil
}
