package forkinit

import (
	"encoding/binary"
	"fmt"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/contract"
	"github.com/rbox-dev/rbox/sysplan"
)

// Spawn starts a command that joins existing namespaces (rbox exec, package
// enter) with the clone trampoline of pid 1, in two steps, because Go's
// runtime cannot:
//
//   - the outer child is cloned without sharing this process's memory (it
//     gets a copy, and one thread): setns(2) into a user namespace needs a
//     single-threaded process, into a time namespace one whose memory no
//     other process shares. It runs Outer (the setns calls, closing
//     descriptors), then
//   - clones the inner child, which shares the outer child's memory until it
//     executes (CLONE_VM|CLONE_VFORK) and has this process as its parent
//     (CLONE_PARENT), so that it is created in the joined pid namespace and
//     this process waits for it. It runs Inner, which ends with execve.
//
// The outer child reports the inner one's pid, and either child an op that
// failed, on a close-on-exec pipe; it exits once the inner child has
// executed or failed.
type Spawn struct {
	Outer, Inner sysplan.Program
	// InnerFlags are added to the inner child's clone flags.
	InnerFlags uintptr

	reportR, reportW       int
	outerStack, innerStack stack
	oldMask                uint64
	report                 [3]int32
}

// Report kinds of a Spawn.
const (
	SpawnOuterFailed = 1 // an op of Outer failed
	SpawnInnerFailed = 2 // an op of Inner failed
	spawnPid         = 3
)

// spawning is the Spawn the children run (set before cloning, read only
// by them).
var spawning *Spawn

// NewSpawn makes a Spawn's pipe and stacks. Its report pipe's write end is
// ReportFD, which Outer must keep open (it is close-on-exec).
func NewSpawn() (*Spawn, error) {
	sp := &Spawn{}
	var err error
	if sp.outerStack, err = newStack(); err != nil {
		return nil, err
	}
	if sp.innerStack, err = newStack(); err != nil {
		sp.outerStack.free()
		return nil, err
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		sp.outerStack.free()
		sp.innerStack.free()
		return nil, fmt.Errorf("pipe: %w", err)
	}
	sp.reportR, sp.reportW = p[0], p[1]
	return sp, nil
}

// ReportFD is the descriptor the children report on.
func (sp *Spawn) ReportFD() int { return sp.reportW }

// OldMask is where the signal mask this process had lives while the
// children run: Inner restores it (rt_sigprocmask) just before execve.
func (sp *Spawn) OldMask() uintptr { return uintptr(unsafe.Pointer(&sp.oldMask)) }

// SpawnFailure is a failed op: which program, its index, the errno.
type SpawnFailure struct {
	Kind  int
	At    int
	Errno syscall.Errno
}

// Run starts the children, waits for the outer one, and returns the inner
// child's pid (a child of this process), or the op that failed. It must be
// called on a locked thread; Outer and Inner must be finished.
func (sp *Spawn) Run() (int, *SpawnFailure, error) {
	if !sharesMemory {
		return 0, nil, fmt.Errorf("joining a sandbox needs the clone trampoline, written for amd64 and arm64 only")
	}
	var mask unix.Sigset_t
	if err := unix.PthreadSigmask(unix.SIG_SETMASK, nil, &mask); err != nil {
		return 0, nil, fmt.Errorf("sigprocmask: %w", err)
	}
	// The first 64 signals, as the kernel's sigset_t holds them (Val is
	// [16]uint64 on 64-bit machines, [32]uint32 on 32-bit ones).
	sp.oldMask = *(*uint64)(unsafe.Pointer(&mask))
	syscall.ForkLock.Lock()
	spawning = sp
	beforeFork()
	pid, errno := cloneOuter(uintptr(unix.SIGCHLD), sp.outerStack.top())
	afterFork()
	syscall.ForkLock.Unlock()
	// The outer child runs on its own copy of this memory, the inner one
	// in the outer's: neither uses these mappings after the clone.
	sp.outerStack.free()
	sp.innerStack.free()
	unix.Close(sp.reportW)
	if errno != 0 {
		unix.Close(sp.reportR)
		return 0, nil, fmt.Errorf("clone: %w", syscall.Errno(errno))
	}
	var ws unix.WaitStatus
	for {
		if _, err := unix.Wait4(int(pid), &ws, 0, nil); err != unix.EINTR {
			break
		}
	}
	defer unix.Close(sp.reportR)
	var b [12]byte
	inner := 0
	var failure *SpawnFailure
	for {
		n, err := unix.Read(sp.reportR, b[:])
		if err == unix.EINTR {
			continue
		}
		if n != len(b) {
			break
		}
		kind := int(int32(binary.NativeEndian.Uint32(b[0:])))
		at := int(int32(binary.NativeEndian.Uint32(b[4:])))
		e := syscall.Errno(binary.NativeEndian.Uint32(b[8:]))
		if kind == spawnPid {
			inner = at
		} else if failure == nil {
			failure = &SpawnFailure{Kind: kind, At: at, Errno: e}
		}
	}
	if failure != nil {
		if inner > 0 {
			// Reap the inner child, which exited after its report.
			_, _ = unix.Wait4(inner, &ws, 0, nil)
		}
		return 0, failure, nil
	}
	if inner == 0 {
		return 0, nil, fmt.Errorf("the joining process ended without a report (status %v)", ws)
	}
	return inner, nil, nil
}

// The code below runs in the children: see the rules above child().

//go:nosplit
//go:norace
func outerEntry() { spawning.outer() }

//go:nosplit
//go:norace
func innerEntry() { spawning.inner() }

//go:nosplit
//go:norace
func (sp *Spawn) outer() {
	syscall.RawSyscall(unix.SYS_CLOSE, uintptr(sp.reportR), 0, 0)
	if at, errno := sp.Outer.Exec(); at >= 0 {
		sp.fail(SpawnOuterFailed, at, errno)
	}
	pid, errno := cloneInner(unix.CLONE_VM|unix.CLONE_VFORK|unix.CLONE_PARENT|uintptr(unix.SIGCHLD)|sp.InnerFlags, sp.innerStack.top())
	if errno != 0 {
		sp.fail(SpawnOuterFailed, -1, syscall.Errno(errno))
	}
	sp.report[0], sp.report[1], sp.report[2] = spawnPid, int32(pid), 0
	syscall.RawSyscall(unix.SYS_WRITE, uintptr(sp.reportW), uintptr(unsafe.Pointer(&sp.report[0])), 12)
	exit(0)
}

//go:nosplit
//go:norace
func (sp *Spawn) inner() {
	// Go's signal handlers back to the defaults, as after ForkExec; Inner
	// restores the signal mask last.
	afterForkInChild()
	if at, errno := sp.Inner.Exec(); at >= 0 {
		sp.fail(SpawnInnerFailed, at, errno)
	}
	// Inner ended without executing.
	sp.fail(SpawnInnerFailed, -1, unix.ENOEXEC)
}

//go:nosplit
//go:norace
func (sp *Spawn) fail(kind int32, at int, errno syscall.Errno) {
	sp.report[0], sp.report[1], sp.report[2] = kind, int32(at), int32(errno)
	syscall.RawSyscall(unix.SYS_WRITE, uintptr(sp.reportW), uintptr(unsafe.Pointer(&sp.report[0])), 12)
	exit(contract.ExitSetupFailed)
}
