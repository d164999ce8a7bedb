// Package initproc is the sandbox's pid 1 when it must run Go: the
// re-executed rbox that waits for its id maps, runs the plan that initplan
// makes for the Spec (the same Programs the fast path, forkinit, runs),
// does the plan's Hooks (the port forwarder's agent, a custom root), starts
// the command and then reaps zombies and forwards signals until the command
// exits. What it adds is its mechanism, not steps: reading the Spec, Go's
// fork for the payload, signal forwarding and reaping in Go.
//
// The main goroutine is locked to the main thread for the whole life of the
// process (see Lock). The plan's Init programs run on that thread; the
// payload's (its session, rlimits, identity and limits, the seccomp filter
// last) run in the payload's own process, started as the fast path starts
// it (forkinit.StartPayload), so pid 1 never runs under them. Only where
// the architecture has no clone trampoline does Go's fork start the
// payload, from this thread, under the payload's program and rlimits.
package initproc

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/contract"
	"github.com/rbox-dev/rbox/forkinit"
	"github.com/rbox-dev/rbox/fsetup"
	"github.com/rbox-dev/rbox/initplan"
	"github.com/rbox-dev/rbox/kernelapi"
	"github.com/rbox-dev/rbox/limits"
	"github.com/rbox-dev/rbox/network"
	"github.com/rbox-dev/rbox/network/ports"
	"github.com/rbox-dev/rbox/spec"
)

// Start is what the parent sends once the child's id maps are written.
type Start struct {
	// SetgroupsDenied mirrors the parent's choice: setgroups(2) fails then.
	SetgroupsDenied bool `json:"setgroups_denied,omitempty"`
	// ConsoleSocket, when not zero, is the fd of a unix socket on which pid
	// 1 sends the master side of the payload's pseudo-terminal.
	ConsoleSocket int `json:"console_socket,omitempty"`
	// Net is what pid 1 does to finish the network from inside.
	Net network.ChildConfig `json:"net"`
}

// Lock pins the main goroutine to the main thread. Called from an init
// function, so it holds from the first line of main.
func Lock() { runtime.LockOSThread() }

// Main runs pid 1 and never returns. args[0] names the fd carrying the
// spec; args[1], when given, the pipe on which to tell the parent that it
// may write the id maps (see sandbox/exe.go).
func Main(args []string) {
	if len(args) == 2 {
		if err := readyForMaps(args[1]); err != nil {
			os.Exit(fail(contract.ExitSetupFailed, err))
		}
	}
	os.Exit(run(args[0]))
}

// readyForMaps makes pid 1 dumpable again and tells the parent. Executing a
// file it could not read (rbox's sealed copy) left it non-dumpable, which
// makes /proc/PID root's and newuidmap refuse it. The payload does not
// exist yet; the plan makes pid 1 non-dumpable again before it starts.
func readyForMaps(fdArg string) error {
	fd, err := strconv.Atoi(fdArg)
	if err != nil {
		return fmt.Errorf("bad ready fd %q", fdArg)
	}
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set dumpable: %w", err)
	}
	ready := os.NewFile(uintptr(fd), "ready")
	defer ready.Close()
	if _, err := ready.Write([]byte{1}); err != nil {
		return fmt.Errorf("tell the parent: %w", err)
	}
	return nil
}

func fail(code int, err error) int {
	if bwrapErrors { // rbox bwrap: bwrap's shape and exit status
		fmt.Fprintf(os.Stderr, "bwrap: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "rbox: %v\n", err)
	return code
}

// bwrapErrors is the Spec's BwrapErrors, for fail.
var bwrapErrors bool

func run(fdArg string) int {
	fd, err := strconv.Atoi(fdArg)
	if err != nil {
		return fail(contract.ExitSetupFailed, fmt.Errorf("bad spec fd %q", fdArg))
	}
	pipe := os.NewFile(uintptr(fd), "spec")
	dec := json.NewDecoder(pipe)
	var s spec.Spec
	if err := dec.Decode(&s); err != nil {
		return fail(contract.ExitSetupFailed, fmt.Errorf("read sandbox spec: %w", err))
	}
	bwrapErrors = s.BwrapErrors
	var start Start
	// Blocks until the parent has written our uid and gid maps.
	if err := dec.Decode(&start); err != nil {
		// The parent failed and has said why, or died.
		return contract.ExitSetupFailed
	}
	pipe.Close()
	// Whatever else was inherited must not reach the payload; the fds it
	// should keep are dup'ed into place when it starts.
	if err := kernelapi.CloexecFrom(3); err != nil {
		return fail(contract.ExitSetupFailed, fmt.Errorf("close_range: %w", err))
	}
	pl, err := initplan.New(&s, initplan.Learned{SetgroupsDenied: start.SetgroupsDenied, Net: start.Net, ConsoleSocket: start.ConsoleSocket})
	if err != nil {
		return fail(contract.ExitSetupFailed, err)
	}
	// The command's stdio are fds 0 to 2, which the plan may turn into
	// its terminal; pid 1's own messages go on to the caller's stderr.
	stdio := []*os.File{os.NewFile(0, "stdin"), os.NewFile(1, "stdout"), os.NewFile(2, "stderr")}
	if s.TTY {
		stderr, err := unix.FcntlInt(2, unix.F_DUPFD_CLOEXEC, 3)
		if err != nil {
			return fail(contract.ExitSetupFailed, fmt.Errorf("dup stderr: %w", err))
		}
		os.Stderr = os.NewFile(uintptr(stderr), "stderr")
	}
	for _, st := range pl.Init {
		if err := runStage(st, pl, start.Net); err != nil {
			return fail(contract.ExitSetupFailed, err)
		}
	}
	return superviseCommand(&s, pl, stdio)
}

// runStage runs one stage of the plan on this, the main, thread: a
// Program, or a Hook.
func runStage(st initplan.Stage, pl *initplan.Plan, n network.ChildConfig) error {
	switch st.Hook {
	case 0:
		return st.Program.Run()
	case initplan.HookPorts:
		// The plan has checked the interface and blocked the gateway;
		// this is rootlesskit's port agent, whose goroutines serve for
		// the rest of pid 1's life.
		return ports.StartAgent(n.PortDirFD, nil)
	case initplan.HookRoot:
		return fsetup.Build(pl.Root)
	}
	return fmt.Errorf("no hook %v in this rbox", st.Hook)
}

// superviseCommand starts the payload and acts as init until it exits.
func superviseCommand(s *spec.Spec, pl *initplan.Plan, stdio []*os.File) int {
	signals := make(chan os.Signal, 16)
	signal.Notify(signals, contract.Forwarded...)
	pid, code := -1, 0
	if forkinit.CanStartPayload {
		pid, code = startPayloadRaw(s, pl)
	} else {
		pid, code = startPayloadGo(s, pl, stdio)
	}
	if pid < 0 {
		return code
	}
	go func() {
		for sig := range signals {
			_ = unix.Kill(pid, sig.(syscall.Signal))
		}
	}()
	return reapUntil(pid)
}

// startPayloadRaw starts the payload as the fast path's pid 1 does
// (forkinit.StartPayload): its own process runs the plan's Session and
// Payload programs, rlimits included, then the command's search. The fds
// it keeps are 0 to 2 (the plan made them its terminal with -t) and the
// caller's preserved ones, which lose close-on-exec here.
func startPayloadRaw(s *spec.Spec, pl *initplan.Plan) (int, int) {
	for i := 0; i < s.PreserveFDs; i++ {
		if _, err := unix.FcntlInt(uintptr(3+i), unix.F_SETFD, 0); err != nil {
			return -1, fail(contract.ExitSetupFailed, fmt.Errorf("keep fd %d for the command: %w", 3+i, err))
		}
	}
	pid, msg, code, err := forkinit.StartPayload(pl)
	switch {
	case err != nil:
		return -1, fail(contract.ExitSetupFailed, err)
	case msg != "":
		return -1, fail(code, errors.New(msg))
	}
	return pid, 0
}

// startPayloadGo is the same with Go's fork, where this architecture has
// no clone trampoline: the Payload program and the rlimits are then set on
// this thread, which forks the payload, and so on pid 1 too. The search
// (contract.Search) runs over the plan's candidates.
func startPayloadGo(s *spec.Spec, pl *initplan.Plan, stdio []*os.File) (int, int) {
	// Through package syscall: Go's fork would otherwise give the payload
	// the open-files limit this process started with.
	if err := limits.ApplyInit(s.Limits); err != nil {
		return -1, fail(contract.ExitSetupFailed, err)
	}
	if err := pl.Payload.Run(); err != nil {
		return -1, fail(contract.ExitSetupFailed, err)
	}
	files := append([]*os.File{}, stdio...)
	for i := 0; i < s.PreserveFDs; i++ {
		files = append(files, os.NewFile(uintptr(3+i), "preserved"))
	}
	// The plan's Session, done by Go's fork.
	sys := &syscall.SysProcAttr{Setsid: !s.KeepSession}
	if s.DieWithParent {
		sys.Pdeathsig = unix.SIGKILL
	}
	if pl.Terminal >= 0 {
		sys.Setctty, sys.Ctty = true, pl.Terminal
	}
	search := contract.NewSearch()
	for i, path := range pl.Command.Candidates {
		p, err := os.StartProcess(path, s.Argv(), &os.ProcAttr{Env: s.Env, Files: files, Sys: sys})
		if err == nil {
			return p.Pid, 0
		}
		var errno syscall.Errno
		if !errors.As(err, &errno) {
			return -1, fail(contract.ExitSetupFailed, fmt.Errorf("start the command: %w", err))
		}
		exists := errno == unix.ENOENT && unix.Access(path, unix.F_OK) == nil
		if !search.Failed(i, errno, exists) {
			break
		}
	}
	code, err := contract.ExecFailure(pl.Command.Name, search.Errno, search.Found >= 0)
	return -1, fail(code, err)
}

// reapUntil reaps every child until pid exits and returns its exit code the
// way a shell reports it.
func reapUntil(pid int) int {
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return contract.ExitSetupFailed
		}
		if got == pid {
			return contract.StatusCode(syscall.WaitStatus(ws))
		}
	}
}
