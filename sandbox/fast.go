package sandbox

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/forkinit"
	"github.com/rbox-dev/rbox/initproc"
	"github.com/rbox-dev/rbox/network"
	"github.com/rbox-dev/rbox/spec"
	"github.com/rbox-dev/rbox/userns"
)

// runFast runs s with a pid 1 forked without exec (see package forkinit).
// pid 1 is cloned first; while newuidmap and newgidmap write its id maps
// and the network helper starts, this process prepares pid 1's programs
// (the seccomp filter comes compiled in s).
func runFast(s *spec.Spec, plan *userns.Plan, h *Hooks) int {
	failf := h.failer()
	in, err := forkinit.New()
	if err != nil {
		return failf("%v", err)
	}
	defer in.Close()
	// Signals that arrive from now on are passed on to pid 1, which
	// forwards them to the command once it runs.
	signals := make(chan os.Signal, 16)
	signal.Notify(signals, initproc.Forwarded...)
	defer signal.Stop(signals)

	pid, err := in.Start(cloneFlags(s))
	if err != nil {
		return failf("start the sandbox: %v (see `rbox check`)", err)
	}
	go func() {
		for sig := range signals {
			_ = unix.Kill(pid, sig.(unix.Signal))
		}
	}()
	mapped := make(chan error, 1)
	go func() { mapped <- plan.Write(pid) }()
	netStarted := startNetwork(s, pid)
	child, err := network.ChildFor(netOptions(s))
	if err == nil {
		err = in.Prepare(s, plan.SetgroupsDenied, child)
	}
	if mapErr := <-mapped; err == nil {
		err = mapErr
	}
	netw, netErr := netStarted()
	if netErr == nil {
		// Closed once the sandbox has ended: stops the helper.
		defer netw.Close()
	} else if err == nil {
		err = netErr
	}
	if err == nil {
		err = h.started(pid)
	}
	if err == nil {
		err = in.Send()
	}
	if err != nil {
		_ = unix.Kill(pid, unix.SIGKILL)
		_, _ = in.Wait(pid)
		return failf("%v", err)
	}
	ws, err := in.Wait(pid)
	if err != nil {
		return failf("wait for the sandbox: %v", err)
	}
	if msg, code, ok := in.Describe(); ok {
		if h != nil && h.Failed != nil {
			return h.Failed(msg, code)
		}
		fmt.Fprintf(os.Stderr, "rbox: %s\n", msg)
		return code
	}
	return statusCode(syscall.WaitStatus(ws))
}
