// Package pasta runs pasta (from passt) as a sandbox's user-mode network
// helper, with the sandbox's published ports forwarded by pasta itself.
package pasta

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/rbox-dev/rbox/network/internal/proc"
	"github.com/rbox-dev/rbox/spec"
)

// Config is the network pasta gives the network namespace of PID.
type Config struct {
	PID       int
	Device    string
	MTU       int
	IP        string
	PrefixLen int
	Gateway   string
	DNS       string // where pasta's DNS forwarder answers
	// AllowHostLoopback maps Gateway to the host's loopback.
	AllowHostLoopback bool
	// Ports are forwarded by pasta from the host into the namespace.
	Ports []spec.Port
	Log   io.Writer
}

// Start runs pasta for the network namespace of c.PID and returns once the
// namespace is configured and the ports are bound.
//
// rootlesskit's pkg/network/pasta driver is not used to start it, because it
// falls short in three ways this package cannot wrap from the outside:
//
//   - it leaves pasta's -T/-U at their default, "auto", so every port bound
//     on the host's loopback is also reachable on the sandbox's loopback:
//     the host's loopback services leak into the sandbox even without
//     --allow-host-loopback. Here -T none -U none are always given.
//   - it lets pasta fork into the background and returns no handle on it:
//     its cleanup is a no-op and a daemonised pasta does not inherit a
//     parent-death signal, so pasta outlives the sandbox (this pasta,
//     2023-03, does not notice its namespace going away when it is given
//     by pid). Here pasta runs with --foreground as a child of a thread
//     that waits for it (see proc.Helper), and Kill ends it.
//   - as root, pasta switches to "nobody" and then may not open the
//     sandbox's user namespace, so the driver fails for root; here root
//     passes --runas 0:0, so pasta keeps the caller's identity.
//
// The options are otherwise the driver's (same address plan, tap name,
// MTU, --config-net, --dns-forward, IPv4 only). Published ports are pasta's
// own -t/-u forwards, never its scanning of the host's sockets: pasta joins
// the sandbox's namespaces (it is single-threaded and owns nothing else),
// so it is the one process that can open a socket in the sandbox's network
// namespace for each connection, and it splices a connection from the
// host's loopback to the sandbox's loopback without copying through user
// space twice.
//
// Readiness is pasta's --pid file, which pasta writes once the namespace is
// configured and its ports are bound: it is pointed at a pipe
// (/proc/self/fd/3 in pasta), so nothing touches the disk.
func Start(ctx context.Context, c Config) (*proc.Helper, error) {
	args := []string{
		"--quiet",
		"--foreground",
		"--ns-ifname", c.Device,
		"--mtu", strconv.Itoa(c.MTU),
		"--config-net",
		"--address", c.IP,
		"--netmask", strconv.Itoa(c.PrefixLen),
		"--gateway", c.Gateway,
		"--dns-forward", c.DNS,
		"--ipv4-only",
	}
	args = append(args, forwardArgs(c.Ports)...)
	// The sandbox's loopback is its own.
	args = append(args, "--tcp-ns", "none", "--udp-ns", "none", "--pid", "/proc/self/fd/3")
	if !c.AllowHostLoopback {
		args = append(args, "--no-map-gw")
	}
	if os.Geteuid() == 0 {
		args = append(args, "--runas", fmt.Sprintf("%d:%d", os.Geteuid(), os.Getegid()))
	}
	args = append(args, strconv.Itoa(c.PID))

	pidR, pidW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer pidR.Close()
	cmd := exec.Command("pasta", args...)
	cmd.ExtraFiles = []*os.File{pidW}
	h, err := proc.Start("pasta", cmd, c.Log)
	pidW.Close()
	if err != nil {
		return nil, err
	}
	if err := waitReady(ctx, h, pidR); err != nil {
		h.Kill()
		return nil, err
	}
	return h, nil
}

// forwardArgs are pasta's -t and -u options for ports: "none" for a
// protocol without ports (which also keeps pasta from forwarding UDP on
// the TCP ports' numbers), else HOSTIP/HOSTPORT:PORT entries.
func forwardArgs(ports []spec.Port) []string {
	var tcp, udp []string
	for _, p := range ports {
		e := p.HostIP + "/" + strconv.Itoa(p.HostPort) + ":" + strconv.Itoa(p.ChildPort)
		if p.Proto == "udp" {
			udp = append(udp, e)
		} else {
			tcp = append(tcp, e)
		}
	}
	spell := func(list []string) string {
		if len(list) == 0 {
			return "none"
		}
		return strings.Join(list, ",")
	}
	return []string{"--tcp-ports", spell(tcp), "--udp-ports", spell(udp)}
}

func waitReady(ctx context.Context, h *proc.Helper, pidR *os.File) error {
	type result struct {
		line string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		line, err := bufio.NewReader(pidR).ReadString('\n')
		got <- result{line, err}
	}()
	select {
	case r := <-got:
		if r.err != nil {
			<-h.Done
			return h.ExitError()
		}
		pid, err := strconv.Atoi(strings.TrimSpace(r.line))
		if err != nil {
			return fmt.Errorf("pasta wrote %q as its pid", r.line)
		}
		if pid != h.PID() {
			// --foreground keeps pasta in the process we started; a
			// pasta that forks anyway would escape the parent-death
			// signal, so refuse it.
			return fmt.Errorf("pasta runs as pid %d, not as the pid %d rbox started; this pasta is not supported", pid, h.PID())
		}
		return nil
	case <-h.Done:
		return h.ExitError()
	case <-ctx.Done():
		return fmt.Errorf("waiting for pasta: %w", ctx.Err())
	case <-time.After(proc.ReadyTimeout):
		return fmt.Errorf("pasta was not ready after %v:\n%s", proc.ReadyTimeout, h.Output())
	}
}

// Check tells whether the pasta in PATH runs.
func Check(bin string) error {
	if out, err := exec.Command(bin, "--version").CombinedOutput(); err != nil {
		return fmt.Errorf("%s --version failed: %v: %s", bin, err, out)
	}
	return nil
}
