package slirp

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// startPasta runs pasta for the network namespace of childPID.
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
//     that waits for it (see helper), and Close kills it.
//   - as root, pasta switches to "nobody" and then may not open the
//     sandbox's user namespace, so the driver fails for root; here root
//     passes --runas 0:0, so pasta keeps the caller's identity.
//
// The options are otherwise the driver's (same address plan, tap name,
// MTU, --config-net, --dns-forward, no inbound auto-forwarding, IPv4 only).
// Readiness is pasta's --pid file, which pasta writes once the namespace is
// configured: it is pointed at a pipe (/proc/self/fd/3 in pasta), so
// nothing touches the disk.
func (n *Network) startPasta(ctx context.Context, childPID, mtu int, o Options) error {
	args := []string{
		"--quiet",
		"--foreground",
		"--ns-ifname", DeviceName,
		"--mtu", strconv.Itoa(mtu),
		"--config-net",
		"--address", SandboxIP,
		"--netmask", strconv.Itoa(PrefixLen),
		"--gateway", GatewayIP,
		"--dns-forward", DNSIP,
		"--ipv4-only",
		// Inbound ports come through the builtin port driver, never from
		// pasta's scanning of the host's sockets...
		"--tcp-ports", "none", "--udp-ports", "none",
		// ...and the sandbox's loopback is its own.
		"--tcp-ns", "none", "--udp-ns", "none",
		"--pid", "/proc/self/fd/3",
	}
	if !o.AllowHostLoopback {
		args = append(args, "--no-map-gw")
	}
	if os.Geteuid() == 0 {
		args = append(args, "--runas", fmt.Sprintf("%d:%d", os.Geteuid(), os.Getegid()))
	}
	args = append(args, strconv.Itoa(childPID))

	pidR, pidW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer pidR.Close()
	cmd := exec.Command(ModePasta, args...)
	cmd.ExtraFiles = []*os.File{pidW}
	h, err := startHelper(ModePasta, cmd, o.Log)
	pidW.Close()
	if err != nil {
		return err
	}
	n.addHelper(h)

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
			<-h.done
			return h.exitError()
		}
		pid, err := strconv.Atoi(strings.TrimSpace(r.line))
		if err != nil {
			return fmt.Errorf("pasta wrote %q as its pid", r.line)
		}
		if pid != h.pid() {
			// --foreground keeps pasta in the process we started; a
			// pasta that forks anyway would escape the parent-death
			// signal, so refuse it.
			return fmt.Errorf("pasta runs as pid %d, not as the pid %d rbox started; this pasta is not supported", pid, h.pid())
		}
		return nil
	case <-h.done:
		return h.exitError()
	case <-ctx.Done():
		return fmt.Errorf("waiting for pasta: %w", ctx.Err())
	case <-time.After(helperTimeout):
		return fmt.Errorf("pasta was not ready after %v:\n%s", helperTimeout, h.out.String())
	}
}

// helperTimeout bounds how long Start waits for a helper to be ready.
const helperTimeout = 20 * time.Second

func (n *Network) addHelper(h *helper) {
	n.mu.Lock()
	n.helpers = append(n.helpers, h)
	n.mu.Unlock()
}
