// Package sandbox is the parent side of a run: it starts the child in its
// new namespaces, writes the child's id maps, relays the terminal and
// signals, and turns the child's end into rbox's exit code.
//
// The handover: the child is a re-execution of /proc/self/exe, cloned into
// the new namespaces and given every capability as ambient so that it keeps
// them across the exec although its uid has no mapping yet. It reads the
// Spec from a pipe, then blocks on the same pipe for the Start message,
// which the parent writes once newuidmap and newgidmap are done. The child
// runs the Go runtime's start-up while the two setuid helpers run.
package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/caps"
	"github.com/rbox-dev/rbox/console"
	"github.com/rbox-dev/rbox/contract"
	"github.com/rbox-dev/rbox/forkinit"
	"github.com/rbox-dev/rbox/initproc"
	"github.com/rbox-dev/rbox/kernelapi"
	"github.com/rbox-dev/rbox/limits"
	"github.com/rbox-dev/rbox/network"
	"github.com/rbox-dev/rbox/network/egress"
	"github.com/rbox-dev/rbox/spec"
	"github.com/rbox-dev/rbox/userns"
)

// ForceReexecEnv, set to anything in rbox's environment, makes every run
// take the re-exec executor (initproc) even where the fast one could run
// it. It is for rbox's own tests, which run the whole integration suite
// once on each executor; it is not a user-facing setting.
const ForceReexecEnv = "RBOX_TEST_FORCE_REEXEC"

// cloneFlags are the namespaces the child is created in.
func cloneFlags(s *spec.Spec) uintptr {
	flags := uintptr(unix.CLONE_NEWNS)
	if s.JoinUserNS == 0 {
		flags |= unix.CLONE_NEWUSER
	}
	for ns, flag := range map[string]uintptr{
		spec.NSPID: unix.CLONE_NEWPID, spec.NSNet: unix.CLONE_NEWNET, spec.NSUTS: unix.CLONE_NEWUTS,
		spec.NSIPC: unix.CLONE_NEWIPC,
	} {
		if !s.Shares(ns) {
			flags |= flag
		}
	}
	// The time namespace is made by pid 1 just before the payload starts:
	// its offsets can be set only while it has no member. The cgroup
	// namespace is made by pid 1 first thing (initplan), once the parent
	// has placed it in the sandbox's cgroups: rooted there, it shows the
	// payload nothing above them, and a payload given CAP_SYS_ADMIN cannot
	// mount its way out of them.
	return flags
}

// allCaps lists every capability number up to the kernel's last, for the
// child's ambient set.
func allCaps() []uintptr {
	out := make([]uintptr, caps.Last()+1)
	for i := range out {
		out[i] = uintptr(i)
	}
	return out
}

// Run runs the sandbox s with id maps from plan and returns rbox's exit
// code. It must be called on the main thread (the child's parent-death
// signal fires when the thread that started it exits). The files in hold
// stay open in pid 1, and so alive, for the sandbox's whole life without
// reaching the command (an image's in-use lock).
func Run(s *spec.Spec, plan *userns.Plan, hold ...*os.File) int {
	return RunHooks(s, plan, nil, hold...)
}

// RunHooks is Run with h called at the moments it names (h may be nil).
func RunHooks(s *spec.Spec, plan *userns.Plan, h *Hooks, hold ...*os.File) int {
	s.LegacyMount = s.LegacyMount || kernelapi.MountAPIMissing() != ""
	box, err := limits.Setup(s.Limits)
	if err != nil {
		return h.failer()("%v", err)
	}
	return box.Finish(run(s, plan, box, h, hold))
}

// run runs the sandbox s, whose limits are box.
func run(s *spec.Spec, plan *userns.Plan, box *limits.Box, h *Hooks, hold []*os.File) int {
	failf := h.failer()
	// The payload's process sets the rlimits (a plan step).
	box.ForPayload(s)
	// --as-pid-1 and caller-given namespaces exist on the fast path only
	// (the CLI checks Eligible): the test switch leaves them there.
	forced := os.Getenv(ForceReexecEnv) != "" && !forkinit.Required(s)
	if len(hold) == 0 && forkinit.Eligible(s) && s.JoinNet == nil && s.Bridge == nil && !forced {
		return runFast(s, plan, box, h)
	}
	specR, specW, err := os.Pipe()
	if err != nil {
		return failf("pipe: %v", err)
	}
	defer specW.Close()

	extra := make([]*os.File, 0, s.PreserveFDs+len(hold)+2)
	for i := 0; i < s.PreserveFDs; i++ {
		extra = append(extra, os.NewFile(uintptr(3+i), "preserved"))
	}
	extra = append(extra, hold...)
	extra = append(extra, specR)
	start := initproc.Start{SetgroupsDenied: plan.SetgroupsDenied}
	var consoleParent, consoleChild *os.File
	if s.TTY {
		if consoleParent, consoleChild, err = socketPair(); err != nil {
			specR.Close()
			return failf("console socket: %v", err)
		}
		defer consoleParent.Close()
		start.ConsoleSocket = 3 + len(extra)
		extra = append(extra, consoleChild)
	}
	exe, args := "/proc/self/exe", []string{contract.Arg0, strconv.Itoa(3 + s.PreserveFDs + len(hold))}
	// The child's ends: closed here once it has them.
	childEnds := []*os.File{specR, consoleChild}
	closeChildEnds := func() {
		for _, f := range childEnds {
			if f != nil {
				f.Close()
			}
		}
	}
	var readyR *os.File
	if needsSealedInit(s) {
		// See exe.go: pid 1 from a sealed copy, and a pipe on which it
		// says it may be given its id maps.
		sealed, err := sealedInit()
		if err != nil {
			closeChildEnds()
			return failf("make a sealed copy of rbox for pid 1 (needed when the command holds CAP_SYS_PTRACE): %v", err)
		}
		exe = fmt.Sprintf("/proc/self/fd/%d", 3+len(extra))
		extra = append(extra, sealed)
		childEnds = append(childEnds, sealed)
		var readyW *os.File
		if readyR, readyW, err = os.Pipe(); err != nil {
			closeChildEnds()
			return failf("pipe: %v", err)
		}
		defer readyR.Close()
		args = append(args, strconv.Itoa(3+len(extra)))
		extra = append(extra, readyW)
		childEnds = append(childEnds, readyW)
	}
	cmd := &exec.Cmd{
		Path:       exe,
		Args:       args,
		Env:        []string{},
		Stdin:      os.Stdin,
		Stdout:     os.Stdout,
		Stderr:     os.Stderr,
		ExtraFiles: extra,
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags:  cloneFlags(s),
			AmbientCaps: allCaps(),
			Pdeathsig:   unix.SIGKILL,
		},
	}
	if s.Shares(spec.NSPID) {
		if err := adoptOrphans(); err != nil {
			closeChildEnds()
			return failf("%v", err)
		}
	}
	// Born in its cgroup v2 leaf where there is one: its cgroup
	// namespace is then rooted there. A pid 1 that joins a network's user
	// namespace (startInit), or on a kernel without clone3 (before 5.3),
	// is placed by box.Attach instead.
	into, cgroupFD := false, -1
	if s.JoinNet == nil && s.Bridge == nil && kernelapi.Clone3() {
		if cgroupFD, into, err = box.CloneInto(); err != nil {
			closeChildEnds()
			return failf("%v", err)
		}
	}
	if into {
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, cgroupFD
	}
	err = startInit(cmd, s)
	if into {
		unix.Close(cgroupFD)
	}
	closeChildEnds()
	if err != nil {
		return failf("start the sandbox: %v (see `rbox check`)", err)
	}

	// The spec goes out and the network helper starts while the maps are
	// written; the pipe buffer may be smaller than a large spec.
	specSent := make(chan error, 1)
	go func() { specSent <- s.Encode(specW) }()
	netStarted := startNetwork(s, cmd.Process.Pid)
	var mapErr error
	if readyR != nil {
		if _, err := readyR.Read(make([]byte, 1)); err != nil {
			mapErr = fmt.Errorf("the sandbox's init ended before its id maps were written")
		}
	}
	if mapErr == nil && s.JoinNet == nil && s.Bridge == nil {
		mapErr = plan.Write(cmd.Process.Pid)
	}
	if mapErr == nil {
		mapErr = box.Attach(cmd.Process.Pid)
	}
	if err := <-specSent; err != nil && mapErr == nil {
		mapErr = fmt.Errorf("send the spec: %w", err)
	}
	netw, netErr := netStarted()
	if netErr == nil {
		// Closed once the sandbox has ended (or failed to start): stops
		// the helper and the port forwarding.
		defer netw.Close()
	} else if mapErr == nil {
		mapErr = netErr
	}
	if mapErr == nil {
		mapErr = attachBridge(s, cmd.Process.Pid)
	}
	if mapErr != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return failf("%v", mapErr)
	}
	start.Net = netw.Child
	if err := h.started(cmd.Process.Pid); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return failf("%v", err)
	}

	if err := json.NewEncoder(specW).Encode(start); err != nil {
		_ = cmd.Process.Kill()
	}
	specW.Close()
	notifyStarted(cmd.Process.Pid, box)

	var term *console.Relay
	if consoleParent != nil {
		if term, err = startTerminal(consoleParent); err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return failf("%v", err)
		}
		if term != nil {
			defer term.Restore()
		}
	}

	signals := make(chan os.Signal, 16)
	signal.Notify(signals, contract.Forwarded...)
	defer signal.Stop(signals)
	go func() {
		for sig := range signals {
			if sig == unix.SIGWINCH && term != nil {
				term.Resize()
				continue
			}
			_ = cmd.Process.Signal(sig)
		}
	}()

	err = cmd.Wait()
	if s.Shares(spec.NSPID) {
		killOrphans(netw.HelperPIDs())
	}
	if term != nil {
		term.Drain(0)
	}
	return exitCode(cmd.ProcessState, err)
}

// startNetwork starts the sandbox's network for its pid 1 in the
// background, at once, and returns a function that waits for it. The helper
// (pasta or slirp4netns) and the port forwarding run as long as the
// returned Network is open; the kernel ends the helper if rbox dies. The
// egress proxies, when s has a policy, are started by that function, once
// the caller has written pid 1's id maps.
func startNetwork(s *spec.Spec, pid int) func() (*sandboxNet, error) {
	o := netOptions(s)
	type result struct {
		n   *sandboxNet
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := network.Start(context.Background(), pid, o)
		done <- result{&sandboxNet{Network: n}, err}
	}()
	return func() (*sandboxNet, error) {
		r := <-done
		if r.err == nil {
			// Only now: pid 1 running from a sealed copy lets this
			// process at its namespaces once its maps may be written.
			if r.n.egress, r.err = startEgress(s, pid); r.err != nil {
				r.n.Close()
			}
		}
		if r.err != nil {
			return nil, fmt.Errorf("network: %w", r.err)
		}
		return r.n, nil
	}
}

// netOptions is the network s asks for.
func netOptions(s *spec.Spec) network.Options {
	o := network.Options{Mode: s.Net, AllowHostLoopback: s.AllowHostLoopback, DNS: s.DNS, Publish: s.Publish}
	if s.Egress != nil {
		o.DNS = egress.ProxyIP // the egress DNS responder
	}
	return o
}

func exitCode(ps *os.ProcessState, err error) int {
	if ps == nil {
		return failf("wait for the sandbox: %v", err)
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok {
		return contract.StatusCode(ws)
	}
	return ps.ExitCode()
}

func failf(format string, a ...any) int {
	fmt.Fprintf(os.Stderr, "rbox: "+format+"\n", a...)
	return contract.ExitSetupFailed
}

func socketPair() (*os.File, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	return os.NewFile(uintptr(fds[0]), "console"), os.NewFile(uintptr(fds[1]), "console"), nil
}

// startTerminal receives the master side of the payload's terminal from
// pid 1 on socket and starts relaying it; nil when pid 1 sent none (it
// failed before).
func startTerminal(socket *os.File) (*console.Relay, error) {
	master, err := console.Receive(socket)
	if err != nil || master == nil {
		return nil, err
	}
	t := console.NewRelay(master)
	t.Start()
	return t, nil
}
