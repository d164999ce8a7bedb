package forkinit

import (
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/contract"
	"github.com/rbox-dev/rbox/spec"
	"github.com/rbox-dev/rbox/sysplan"
)

// Joining caller-given namespaces (bwrap's --userns and --pidns): pid 1
// must be cloned by a process that is in them already, since its new
// namespaces belong to the user namespace of the process that clones it
// and its pid namespace is the pid_ns_for_children of that process. Go's
// threads cannot setns(2) into a user namespace, so a joiner does
// (cloneJoin): a clone that shares this memory, and so the programs
// prepared in it, but not the thread group or the filesystem context,
// which is what the kernel asks of a process entering a user namespace. It
// enters the namespaces and clones pid 1 as a child of rbox (CLONE_PARENT),
// which then runs as on the plain fast path. The joiner and the hop share
// rbox's descriptor table (CLONE_FILES), so that pid 1's pidfd lands in
// rbox's: the pid a clone returns is in the cloner's pid namespace, the
// hop's is not rbox's. A pid namespace of pid 1's
// own under a joined one takes one more clone, the hop: the kernel makes a
// pid namespace only under the active one of the process that clones, and
// setns(2) changes only its children's.

// Step names of the joiner's program: bwrap's words for its failures.
const (
	StepJoinUserNS = "Joining specified user namespace failed"
	StepJoinPIDNS  = "Setting pidns failed"
)

// What cloneJoin reads and writes (it is in assembly): the clone flags and
// initial stack pointers of the hop (none: 0) and pid 1, the pids of the
// hop and pid 1, and the errno of a failed clone.
var (
	hopFlags, hopTop, pid1Flags, pid1Top uintptr
	hopPID, joinedPID, joinErrno         uintptr
	pid1FD                               int32
)

// Read by cloneJoin only.
var _, _, _, _ = hopFlags, hopTop, pid1Flags, pid1Top

// Required reports whether s can run only on the fast path: its pid 1 is
// the command itself (AsPID1), or it joins or switches namespaces, or
// tries to make a user namespace, which Go's threads cannot do in the
// re-executed pid 1.
func Required(s *spec.Spec) bool {
	return s.AsPID1 || s.JoinUserNS > 0 || s.JoinPIDNS > 0 || s.SwitchUserNS > 0 || s.AssertUsernsDisabled
}

// joins reports whether s has pid 1 cloned by a joiner.
func joins(s *spec.Spec) bool { return s.JoinUserNS > 0 || s.JoinPIDNS > 0 }

// Join has pid 1 made in the namespaces s joins (none: nothing to do);
// called before Start. The user namespace comes first: entering the pid
// namespace needs CAP_SYS_ADMIN in the one that owns it.
func (in *Init) Join(s *spec.Spec) {
	if !joins(s) {
		return
	}
	in.joinsPID = s.JoinPIDNS > 0
	p := new(sysplan.Program)
	if s.JoinUserNS > 0 {
		p.Step(StepJoinUserNS)
		p.Call(unix.SYS_SETNS, sysplan.V(uintptr(s.JoinUserNS)), sysplan.V(unix.CLONE_NEWUSER))
	}
	if s.JoinPIDNS > 0 {
		p.Step(StepJoinPIDNS)
		p.Call(unix.SYS_SETNS, sysplan.V(uintptr(s.JoinPIDNS)), sysplan.V(unix.CLONE_NEWPID))
	}
	p.Finish()
	in.join = p
}

// JoinFailure is the joiner's failed step.
type JoinFailure struct{ *sysplan.Failure }

// prepareJoin makes the joiner's stacks and sets what cloneJoin reads:
// pid 1 is cloned with flags.
func (in *Init) prepareJoin(flags uintptr) error {
	var err error
	if in.joinStack, err = newStack(); err != nil {
		return err
	}
	hopFlags, hopPID, joinedPID, joinErrno = 0, 0, 0, 0
	if in.joinsPID && flags&unix.CLONE_NEWPID != 0 {
		if in.hopStack, err = newStack(); err != nil {
			in.joinStack.free()
			return err
		}
		hopFlags, hopTop = unix.CLONE_VM|unix.CLONE_FILES|unix.CLONE_PARENT|uintptr(unix.SIGCHLD), in.hopStack.top()
	}
	pid1Flags, pid1Top, pid1FD = flags|unix.CLONE_PARENT|unix.CLONE_PIDFD, in.stack.top(), -1
	return nil
}

// joinerFlags are the joiner's clone flags.
const joinerFlags = unix.CLONE_VM | unix.CLONE_FILES | uintptr(unix.SIGCHLD)

// freeJoin unmaps the joiner's stacks once it and the hop have ended.
func (in *Init) freeJoin() {
	in.joinStack.free()
	in.hopStack.free()
}

// waitJoined waits for the joiner (and the hop) and returns pid 1's pid,
// or the step that failed.
func (in *Init) waitJoined(joiner int) (int, error) {
	var ws unix.WaitStatus
	wait := func(pid int) {
		for {
			if _, err := unix.Wait4(pid, &ws, 0, nil); err != unix.EINTR {
				return
			}
		}
	}
	wait(joiner)
	if hopPID > 0 {
		wait(int(hopPID))
	}
	if joinedPID > 0 {
		return pidOf(int(pid1FD))
	}
	var b [16]byte
	if n, _ := unix.Read(in.reportR, b[:]); n == len(b) {
		at := int(int32(binary.NativeEndian.Uint32(b[8:])))
		return 0, &JoinFailure{in.join.Describe(at, syscall.Errno(binary.NativeEndian.Uint32(b[12:])))}
	}
	if joinErrno != 0 {
		return 0, fmt.Errorf("clone: %w", syscall.Errno(joinErrno))
	}
	return 0, fmt.Errorf("the process entering the namespaces ended without a report (status %v)", ws)
}

// joinEntry is called by the joiner (cloneJoin): it enters the namespaces
// and returns, or exits.
//
//go:nosplit
//go:norace
func joinEntry() {
	in := forked
	if at, errno := in.join.Exec(); at >= 0 {
		in.fail(reportJoin, 0, at, errno, contract.ExitSetupFailed)
	}
}

// pidOf is the pid, in rbox's pid namespace, of the process pidfd refers
// to, which it closes.
func pidOf(pidfd int) (int, error) {
	defer unix.Close(pidfd)
	info, err := os.ReadFile("/proc/self/fdinfo/" + strconv.Itoa(pidfd))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(info), "\n") {
		if v, ok := strings.CutPrefix(line, "Pid:"); ok {
			if pid, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && pid > 0 {
				return pid, nil
			}
		}
	}
	return 0, fmt.Errorf("no pid for the sandbox's init in /proc/self/fdinfo/%d", pidfd)
}
