package forkinit

import (
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/contract"
	"github.com/rbox-dev/rbox/initplan"
	"github.com/rbox-dev/rbox/sysplan"
)

// CanStartPayload says whether StartPayload works on this architecture
// (it needs the clone trampoline).
const CanStartPayload = sharesMemory

// StartPayload starts the payload of pl from this process, the re-executed
// pid 1 (package initproc), the way forkinit's own pid 1 does: a
// CLONE_VM|CLONE_VFORK child on a stack of its own runs pl.Session and
// pl.Payload, then the command's search. So the payload's confinement and
// rlimits are set in the payload's process on both executors, never on a
// Go pid 1 (whose runtime could not live under the payload's RLIMIT_DATA).
// It returns the payload's pid, or the message and exit code of the step
// that failed (the child is then reaped). It must be called on a locked
// thread; the fds the payload keeps must not be close-on-exec.
func StartPayload(pl *initplan.Plan) (pid int, msg string, code int, err error) {
	if !sharesMemory {
		return 0, "", 0, errors.New("starting the payload needs the clone trampoline, written for amd64 and arm64 only")
	}
	in := &Init{payload: []*sysplan.Program{pl.Session, pl.Payload}, cmd: pl.Command, search: contract.NewSearch()}
	if in.payloadStack, err = newStack(); err != nil {
		return 0, "", 0, err
	}
	// The child runs on it until it has executed (CLONE_VFORK) or
	// exited, which is before clonePayload returns.
	defer in.payloadStack.free()
	var rp [2]int
	if err := unix.Pipe2(rp[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return 0, "", 0, fmt.Errorf("pipe: %w", err)
	}
	in.reportR, in.reportW = rp[0], rp[1]
	defer unix.Close(in.reportR)
	if err := unix.PthreadSigmask(unix.SIG_SETMASK, nil, &in.oldMask); err != nil {
		unix.Close(in.reportW)
		return 0, "", 0, fmt.Errorf("sigprocmask: %w", err)
	}
	syscall.ForkLock.Lock()
	forked = in
	beforeFork()
	p, errno := clonePayload(unix.CLONE_VM|unix.CLONE_VFORK|uintptr(unix.SIGCHLD), in.payloadStack.top())
	afterFork()
	syscall.ForkLock.Unlock()
	unix.Close(in.reportW)
	if errno != 0 {
		return 0, "", 0, fmt.Errorf("start the command: clone: %w", syscall.Errno(errno))
	}
	if msg, code, ok := in.Describe(); ok {
		var ws unix.WaitStatus
		for {
			if _, err := unix.Wait4(int(p), &ws, 0, nil); err != unix.EINTR {
				break
			}
		}
		return 0, msg, code, nil
	}
	return int(p), "", 0, nil
}
