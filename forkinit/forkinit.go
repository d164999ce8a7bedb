// Package forkinit is the sandbox's pid 1 on rbox's fast path: a child
// that the parent clones into the new namespaces and that never execs, so a
// run pays for one Go start-up, not two.
//
// The child shares the parent's memory (CLONE_VM) and runs on a stack of
// its own; Go's runtime cannot run there (no allocation, no stack growth,
// no scheduler). So the parent has the planner (initplan) prepare
// everything as sysplan Programs while the child waits for its id maps,
// and the child only executes them, then starts the payload and serves as
// init with raw system calls: a signalfd for the signals to forward and for
// SIGCHLD, wait4 to reap. What it adds to the plan is its own: closing
// what the parent had open, the signalfd.
//
// A plan with Hooks (work that needs Go inside the sandbox) runs on
// initproc, the re-executed pid 1 (see Eligible).
//
// The handover: the child blocks on the start pipe until the parent has
// written its id maps; a failure in the child is written to the report
// pipe as (kind, program, op index, errno), which the parent turns into a
// message naming the step.
package forkinit

import (
	"encoding/binary"
	"fmt"
	"slices"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/contract"
	"github.com/rbox-dev/rbox/initplan"
	"github.com/rbox-dev/rbox/spec"
	"github.com/rbox-dev/rbox/sysplan"
)

// Eligible reports whether s can run on the fast path: its plan has no
// Hooks (see initplan.Hooks) and this architecture has the clone
// trampoline.
//
// A payload holding CAP_SYS_PTRACE may run here: pid 1 shares the memory
// of the rbox the caller executed, which belongs to the caller's user
// namespace, and the plan makes it non-dumpable, so the kernel lets only a
// holder of CAP_SYS_PTRACE in the caller's namespace at its memory, /proc
// entries and ptrace (TestEscapePID1).
func Eligible(s *spec.Spec) bool {
	return sharesMemory && len(initplan.Hooks(s)) == 0
}

// Report kinds written on the report pipe.
const (
	reportInit    = 1 // an op of one of Init.init failed
	reportPayload = 2 // an op of one of Init.payload failed
	reportExec    = 3 // the command's search ended without an exec
)

// Init is pid 1: its programs and the memory they use, which it shares
// with the parent.
type Init struct {
	// init are pid 1's programs: its own first, the plan's, its own last;
	// payload the payload process's: the plan's session and limits.
	init, payload []*sysplan.Program
	cmd           initplan.Command
	search        contract.Search

	startR, startW   int // the start pipe: the parent writes, the child reads
	reportR, reportW int // the report pipe: the child writes
	// startClosed and reportClosed are the parent's: it closes its ends
	// without touching the fds above, which pid 1 may read in shared memory.
	startClosed, reportClosed bool

	// stack and payloadStack are pid 1's and the payload process's
	// stacks (both run in the parent's memory); payloadTop is the
	// payload's initial stack pointer, which pid 1 reads. running: pid 1
	// was started and not yet reaped, so the stacks may be in use.
	stack, payloadStack stack
	payloadTop          uintptr
	running             bool

	sigs    uint64        // forwarded signals and SIGCHLD, as a kernel sigset
	oldMask unix.Sigset_t // the signal mask the payload gets back
	sigbuf  [128]byte
	status  int32
	report  [4]int32
	buf     [1]byte
	// asPID1: the command is pid 1 itself (rbox bwrap --as-pid-1): pid 1
	// runs the payload's programs and executes it, with no init.
	asPID1 bool
}

// New makes a pid 1 to be started with Start: its pipes and stacks.
func New() (*Init, error) {
	in := new(Init)
	var err error
	if in.stack, err = newStack(); err != nil {
		return nil, err
	}
	if in.payloadStack, err = newStack(); err != nil {
		in.stack.free()
		return nil, err
	}
	in.payloadTop = in.payloadStack.top()
	if err := in.pipes(); err != nil {
		in.stack.free()
		in.payloadStack.free()
		return nil, err
	}
	return in, nil
}

// Prepare fills in what pid 1 runs for s, after Start: pid 1 shares this
// memory and reads it only once Send has let it go on, so the programs are
// built while the id-map helpers run.
func (in *Init) Prepare(s *spec.Spec, l initplan.Learned) error {
	for _, sig := range append(contract.Forwarded, unix.SIGCHLD) {
		in.sigs |= 1 << (uint(sig.(unix.Signal)) - 1)
	}
	in.asPID1 = s.AsPID1
	pl, err := initplan.New(s, l)
	if err != nil {
		return err
	}
	keep := []int{in.reportW, in.startR}
	if s.TTY {
		keep = append(keep, l.ConsoleSocket)
	}
	in.init = append(in.init, in.prologue(s, keep))
	for _, st := range pl.Init {
		if st.Program == nil {
			return fmt.Errorf("the fast path cannot run the step %q, which needs Go", st.Hook)
		}
		in.init = append(in.init, st.Program)
	}
	in.init = append(in.init, in.epilogue())
	in.payload = []*sysplan.Program{pl.Session, pl.Payload}
	in.cmd = pl.Command
	in.search = contract.NewSearch()
	return nil
}

// prologue is what pid 1 does first: close what it shares with the
// parent but the descriptors in keep.
func (in *Init) prologue(s *spec.Spec, keep []int) *sysplan.Program {
	p := new(sysplan.Program)
	// Nothing the parent had open reaches the sandbox but stdio, the
	// preserved fds, the report pipe (close-on-exec: the payload's exec
	// closes it) and the console socket (the plan closes it).
	p.Step("close inherited file descriptors")
	from := 3 + s.PreserveFDs
	slices.Sort(keep)
	for _, keep := range keep {
		if keep > from {
			p.CloseRange(uintptr(from), uintptr(keep-1), 0)
		}
		if keep >= from {
			from = keep + 1
		}
	}
	p.CloseRange(uintptr(from), ^uintptr(0), 0)
	p.Finish()
	return p
}

// epilogue is pid 1's last step before the payload: the signalfd it
// serves on, in slot 0.
func (in *Init) epilogue() *sysplan.Program {
	p := new(sysplan.Program)
	p.Step("signalfd")
	p.Call(unix.SYS_SIGNALFD4, sysplan.V(^uintptr(0)), sysplan.V(sysplan.Keep(p, &in.sigs)), sysplan.V(8), sysplan.V(unix.SFD_CLOEXEC)).Into(0)
	p.Finish()
	return p
}

// Close releases the parent's ends of the pipes, and the stacks once no
// child can run on them (pid 1 never started, or reaped by Wait).
func (in *Init) Close() {
	in.closeStart()
	if !in.reportClosed {
		unix.Close(in.reportR)
		in.reportClosed = true
	}
	if !in.running {
		in.stack.free()
		in.payloadStack.free()
	}
}

func (in *Init) closeStart() {
	if !in.startClosed {
		unix.Close(in.startW)
		in.startClosed = true
	}
}

// Describe turns a report from the child into rbox's message and exit code;
// ok is false when the child reported nothing.
func (in *Init) Describe() (msg string, code int, ok bool) {
	var b [16]byte
	n, _ := unix.Read(in.reportR, b[:])
	if n != len(b) {
		return "", 0, false
	}
	kind := int32(binary.NativeEndian.Uint32(b[0:]))
	prog := int(int32(binary.NativeEndian.Uint32(b[4:])))
	at := int(int32(binary.NativeEndian.Uint32(b[8:])))
	errno := syscall.Errno(binary.NativeEndian.Uint32(b[12:]))
	progs := in.init
	switch kind {
	case reportPayload:
		progs = in.payload
		fallthrough
	case reportInit:
		if prog < 0 || prog >= len(progs) {
			return fmt.Sprintf("start the command: %v", errno), contract.ExitSetupFailed, true
		}
		return progs[prog].Describe(at, errno).Error(), contract.ExitSetupFailed, true
	}
	code, err := contract.ExecFailure(in.cmd.Name, errno, at >= 0)
	return err.Error(), code, true
}
