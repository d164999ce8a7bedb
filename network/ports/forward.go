package ports

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

	"github.com/rbox-dev/rbox/spec"
)

// With slirp4netns, published ports use rootlesskit's builtin port driver
// (pasta forwards them itself, see package pasta): this process
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
// open at a fixed descriptor number, AgentDirFD. pid 1 binds the socket as
// /proc/self/fd/N/port.sock; this process reaches it as
// /proc/CHILDPID/fd/N/port.sock, which the kernel allows because this process
// owns the sandbox's user namespace. The tmpfs, socket included, disappears
// with pid 1, and nothing is on the host's disk at any time. The per-port
// listeners (tcp.Run, udp.Run) are called directly with that socket path; the
// driver's FIFO handshake is replaced by pid 1 waiting for its own agent (see
// startPortAgent), and ports are bound in Start, before the sandbox runs
// anything, so a port in use fails early. Connections that arrive before
// pid 1's agent is listening are retried by the driver for about 200ms.

// AgentDirFD is the descriptor number at which the sandbox's pid 1 keeps
// the agent's private tmpfs open.
const AgentDirFD = 1000

const agentSocket = "port.sock"

// Forwarder is the host's half of the forwarding of a sandbox's ports.
type Forwarder struct {
	forwards []*forward
}

// forward is one published port's listener in this process.
type forward struct {
	port    spec.Port
	stopCh  chan struct{}
	stopped chan error
}

// Forward binds ps on the host and forwards their connections to the agent
// that the sandbox's pid 1, childPID, runs (see StartAgent). On error
// nothing is left bound.
func Forward(childPID int, ps []spec.Port, log io.Writer) (*Forwarder, error) {
	if log == nil {
		log = io.Discard
	}
	fw := &Forwarder{}
	socketPath := fmt.Sprintf("/proc/%d/fd/%d/%s", childPID, AgentDirFD, agentSocket)
	seen := map[string]bool{}
	for _, p := range ps {
		if seen[hostAddr(p)] {
			fw.Close()
			return nil, fmt.Errorf("host port %s is published twice", hostAddr(p))
		}
		seen[hostAddr(p)] = true
		spec := port.Spec{
			Proto:      p.Proto,
			ParentIP:   p.HostIP,
			ParentPort: p.HostPort,
			ChildPort:  p.ChildPort,
			// Always the sandbox's loopback: the agent would otherwise
			// dial the host address inside the sandbox.
			ChildIP: "127.0.0.1",
		}
		f := &forward{port: p, stopCh: make(chan struct{}), stopped: make(chan error, 1)}
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
			fw.Close()
			return nil, bindError(p, err)
		}
		fw.forwards = append(fw.forwards, f)
	}
	return fw, nil
}

// Close stops forwarding and releases the host's ports.
func (fw *Forwarder) Close() error {
	var errs []error
	for _, f := range fw.forwards {
		if err := f.stop(); err != nil {
			errs = append(errs, err)
		}
	}
	fw.forwards = nil
	return errors.Join(errs...)
}

func (f *forward) stop() error {
	close(f.stopCh)
	select {
	case <-f.stopped:
		// The error is the listener's Close, which cannot matter here.
	case <-time.After(5 * time.Second):
		return fmt.Errorf("stop forwarding %s: timed out", hostAddr(f.port))
	}
	return nil
}

// StartAgent runs, in the sandbox's pid 1, the inside half of the port
// driver, with its socket in a private tmpfs kept open at descriptor fd,
// and returns once it accepts connections. The agent's goroutines run for
// the rest of pid 1's life.
func StartAgent(fd int, log io.Writer) error {
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
		opaque.SocketPath:         base + agentSocket,
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
	ctx, cancel := context.WithTimeout(context.Background(), agentTimeout)
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
	_ = os.Chmod(base+agentSocket, 0o666)
	return nil
}

// agentTimeout bounds how long StartAgent waits for the agent to listen.
const agentTimeout = 20 * time.Second

// detachedTmpfs returns a descriptor for the root of a new tmpfs that is not
// attached anywhere: it exists only as long as the descriptor does.
func detachedTmpfs() (int, error) {
	fsfd, err := unix.Fsopen("tmpfs", unix.FSOPEN_CLOEXEC)
	if err == unix.ENOSYS {
		return detachedTmpfsLegacy()
	}
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

// detachedTmpfsLegacy is detachedTmpfs on a kernel without the new mount
// API: the tmpfs is mounted on /tmp of pid 1's fresh mount namespace
// (before its filesystem is built, nothing else runs in it), its root
// opened, and the mount detached at once; the descriptor keeps it alive.
func detachedTmpfsLegacy() (int, error) {
	const at = "/tmp"
	if err := unix.Mount("tmpfs", at, "tmpfs", unix.MS_NOEXEC|unix.MS_NOSUID|unix.MS_NODEV, "mode=0711,size=64k,nr_inodes=16"); err != nil {
		return -1, fmt.Errorf("mount a tmpfs on %s: %w", at, err)
	}
	fd, err := unix.Open(at, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if uerr := unix.Unmount(at, unix.MNT_DETACH); uerr != nil && err == nil {
		unix.Close(fd)
		return -1, fmt.Errorf("detach the tmpfs: %w", uerr)
	}
	if err != nil {
		return -1, fmt.Errorf("open the tmpfs: %w", err)
	}
	return fd, nil
}
