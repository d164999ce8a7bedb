package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/console"
	"github.com/rbox-dev/rbox/contract"
	"github.com/rbox-dev/rbox/forkinit"
	"github.com/rbox-dev/rbox/initplan"
	"github.com/rbox-dev/rbox/limits"
	"github.com/rbox-dev/rbox/network"
	"github.com/rbox-dev/rbox/spec"
	"github.com/rbox-dev/rbox/userns"
)

// runFast runs s with a pid 1 forked without exec (see package forkinit).
// pid 1 is cloned first; while newuidmap and newgidmap write its id maps
// and the network helper starts, this process prepares pid 1's programs
// (the seccomp filter comes compiled in s).
func runFast(s *spec.Spec, plan *userns.Plan, box *limits.Box, h *Hooks) int {
	failf := h.failer()
	in, err := forkinit.New()
	if err != nil {
		return failf("%v", err)
	}
	defer in.Close()
	// Signals that arrive from now on are passed on to pid 1, which
	// forwards them to the command once it runs.
	signals := make(chan os.Signal, 16)
	signal.Notify(signals, contract.Forwarded...)
	defer signal.Stop(signals)

	learned := initplan.Learned{SetgroupsDenied: plan.SetgroupsDenied}
	var consoleParent, consoleChild *os.File
	if s.TTY {
		if consoleParent, consoleChild, err = socketPair(); err != nil {
			return failf("console socket: %v", err)
		}
		defer consoleParent.Close()
		learned.ConsoleSocket = int(consoleChild.Fd())
	}
	if s.Shares(spec.NSPID) {
		if err := adoptOrphans(); err != nil {
			return failf("%v", err)
		}
	}
	in.Join(s)
	pid, err := in.Start(cloneFlags(s))
	if consoleChild != nil {
		// pid 1 has its end by the clone; this one must go for the
		// socket to end when pid 1 does.
		consoleChild.Close()
	}
	var joinErr *forkinit.JoinFailure
	if errors.As(err, &joinErr) {
		return failf("%v", err)
	}
	if err != nil {
		return failf("start the sandbox: %v (see `rbox check`)", err)
	}
	var term atomic.Pointer[console.Relay]
	go func() {
		for sig := range signals {
			if t := term.Load(); sig == unix.SIGWINCH && t != nil {
				t.Resize()
				continue
			}
			_ = unix.Kill(pid, sig.(unix.Signal))
		}
	}()
	mapped := make(chan error, 1)
	go func() { mapped <- plan.Write(pid) }()
	netStarted := startNetwork(s, pid)
	learned.Net, err = network.ChildFor(netOptions(s))
	if err == nil {
		err = in.Prepare(s, learned)
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
		err = box.Attach(pid)
	}
	if err == nil {
		err = h.started(pid)
	}
	if err == nil {
		err = in.Send()
	}
	if err == nil && consoleParent != nil {
		var t *console.Relay
		if t, err = startTerminal(consoleParent); t != nil {
			term.Store(t)
			defer t.Restore()
		}
	}
	if err != nil {
		_ = unix.Kill(pid, unix.SIGKILL)
		_, _ = in.Wait(pid)
		return failf("%v", err)
	}
	notifyStarted(pid, box)
	ws, err := in.Wait(pid)
	if s.Shares(spec.NSPID) {
		killOrphans(netw.HelperPIDs())
	}
	if t := term.Load(); t != nil {
		t.Drain(0)
	}
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
	return contract.StatusCode(syscall.WaitStatus(ws))
}
