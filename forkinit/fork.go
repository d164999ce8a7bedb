package forkinit

import (
	"fmt"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/contract"
)

// The runtime's own hooks around a fork, which package syscall uses for
// ForkExec. They block signals and mark the stack so that nothing between
// fork and exec can grow it; the runtime keeps them for this use
// (go.dev/issue/67401).
//
//go:linkname beforeFork syscall.runtime_BeforeFork
func beforeFork()

//go:linkname afterFork syscall.runtime_AfterFork
func afterFork()

//go:linkname afterForkInChild syscall.runtime_AfterForkInChild
func afterForkInChild()

// pipes makes the start and report pipes. The parent's read end of the
// report pipe is non-blocking: it is read once pid 1 has ended.
func (in *Init) pipes() error {
	var sp, rp [2]int
	if err := unix.Pipe2(sp[:], unix.O_CLOEXEC); err != nil {
		return fmt.Errorf("pipe: %w", err)
	}
	if err := unix.Pipe2(rp[:], unix.O_CLOEXEC); err != nil {
		unix.Close(sp[0])
		unix.Close(sp[1])
		return fmt.Errorf("pipe: %w", err)
	}
	in.startR, in.startW, in.reportR, in.reportW = sp[0], sp[1], rp[0], rp[1]
	return unix.SetNonblock(in.reportR, true)
}

// Start clones pid 1 with clone flags (the new namespaces) and returns its
// pid; pid 1 waits for Send. It must be called on the main thread, locked:
// the child's parent-death signal fires when the thread that cloned it
// exits.
func (in *Init) Start(flags uintptr) (int, error) {
	var mask unix.Sigset_t
	if err := unix.PthreadSigmask(unix.SIG_SETMASK, nil, &mask); err != nil {
		return 0, fmt.Errorf("sigprocmask: %w", err)
	}
	// The whole set: its first 8 bytes are the kernel's sigset on every
	// architecture (uint64 words on 64-bit ones, uint32 pairs on 386).
	in.oldMask = mask
	syscall.ForkLock.Lock()
	if in.join != nil {
		if err := in.prepareJoin(flags | unix.CLONE_VM | uintptr(unix.SIGCHLD)); err != nil {
			syscall.ForkLock.Unlock()
			return 0, err
		}
		defer in.freeJoin()
	}
	forked = in
	beforeFork()
	var pid, errno uintptr
	if in.join != nil {
		pid, errno = cloneJoin(joinerFlags, in.joinStack.top())
	} else {
		pid, errno = cloneInit(flags|unix.CLONE_VM|uintptr(unix.SIGCHLD), in.stack.top())
	}
	afterFork()
	var joinErr error
	if in.join != nil && errno == 0 {
		// The joiner shares this descriptor table: the child's ends
		// stay open until pid 1 has its copy.
		var jpid int
		jpid, joinErr = in.waitJoined(int(pid))
		pid = uintptr(jpid)
	}
	syscall.ForkLock.Unlock()
	// The child's ends. The fields stay as they are: pid 1 may share this
	// memory and reads them.
	unix.Close(in.startR)
	unix.Close(in.reportW)
	if errno != 0 {
		return 0, syscall.Errno(errno)
	}
	if joinErr != nil {
		return 0, joinErr
	}
	in.running = true
	return int(pid), nil
}

// forked is the Init that the child started by cloneVM runs.
var forked *Init

// Wait waits for pid 1 to end. Its memory (when shared) stays in use
// until then.
func (in *Init) Wait(pid int) (unix.WaitStatus, error) {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if err != unix.EINTR {
			// pid 1 is gone, and with it (it is init, or waited for
			// the payload's exec) every child that used its stacks.
			in.running = in.running && err != nil
			runtime.KeepAlive(in)
			return ws, err
		}
	}
}

// Send lets pid 1 go on, once its id maps are written and Prepare has
// filled in its programs.
func (in *Init) Send() error {
	_, err := unix.Write(in.startW, []byte{'G'})
	in.closeStart()
	if err != nil {
		return fmt.Errorf("start the sandbox's init: %w", err)
	}
	return nil
}

// The code below runs in the forked children: only system calls, on the
// memory the parent prepared. Every function is nosplit and calls nothing
// that is not, and none can panic: slices are walked with range, other
// indexes are constants into arrays or checked against the length first,
// so the compiler leaves no bounds check (TestChildCode checks the
// compiled code for calls into the runtime).

// childEntry is where pid 1 starts.
//
//go:nosplit
//go:norace
func childEntry() { forked.child() }

// payloadEntry is where the payload's process starts.
//
//go:nosplit
//go:norace
func payloadEntry() { forked.startPayload() }

// child is pid 1.
//
//go:nosplit
//go:norace
func (in *Init) child() {
	syscall.RawSyscall(unix.SYS_PRCTL, unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0)
	syscall.RawSyscall(unix.SYS_CLOSE, uintptr(in.startW), 0, 0)
	syscall.RawSyscall(unix.SYS_CLOSE, uintptr(in.reportR), 0, 0)
	// EOF: the parent failed (and said why) or died.
	if !readFull(in.startR, uintptr(unsafe.Pointer(&in.buf[0])), 1) {
		exit(contract.ExitSetupFailed)
	}
	syscall.RawSyscall(unix.SYS_CLOSE, uintptr(in.startR), 0, 0)
	// The last program (the epilogue) leaves the signalfd in slot 0.
	var sigfd uintptr
	for i, p := range in.init {
		if at, errno := p.Exec(); at >= 0 {
			in.fail(reportInit, i, at, errno, contract.ExitSetupFailed)
		}
		sigfd = p.Slots[0]
	}
	if in.asPID1 { // rbox bwrap --as-pid-1: no init, the command is pid 1
		in.startPayload()
	}
	// pid 1 waits (CLONE_VFORK) until the payload has exec'd or failed:
	// until then they share one memory.
	pid, errno := clonePayload(unix.CLONE_VM|unix.CLONE_VFORK|uintptr(unix.SIGCHLD), in.payloadTop)
	if errno != 0 {
		in.fail(reportInit, -1, -1, syscall.Errno(errno), contract.ExitSetupFailed)
	}
	syscall.RawSyscall(unix.SYS_CLOSE, uintptr(in.reportW), 0, 0)
	in.supervise(pid, sigfd)
}

// startPayload runs in the payload's process: its session and limits,
// then the command's search.
//
//go:nosplit
//go:norace
func (in *Init) startPayload() {
	for i, p := range in.payload {
		if at, errno := p.Exec(); at >= 0 {
			in.fail(reportPayload, i, at, errno, contract.ExitSetupFailed)
		}
	}
	// Go's signal handlers back to the defaults, as after ForkExec, and
	// the signal mask rbox was started with.
	afterForkInChild()
	syscall.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&in.oldMask)), 0, 8, 0, 0)
	c := &in.cmd
	// Argv and Envv end with a 0, so never empty.
	argv, envv := uintptr(unsafe.Pointer(unsafe.SliceData(c.Argv))), uintptr(unsafe.Pointer(unsafe.SliceData(c.Envv)))
	for i, path := range c.Paths {
		_, _, errno := syscall.RawSyscall(unix.SYS_EXECVE, path, argv, envv)
		exists := false
		if errno == unix.ENOENT {
			_, _, e := syscall.RawSyscall6(unix.SYS_FACCESSAT, atFDCWD, path, unix.F_OK, 0, 0, 0)
			exists = e == 0
		}
		if !in.search.Failed(i, errno, exists) {
			break
		}
	}
	in.fail(reportExec, -1, in.search.Found, in.search.Errno, in.search.ExitCode())
}

// supervise is init's loop: forward signals to the payload, reap every
// child, and end with the payload's status. pid 1's death then ends every
// other process of the pid namespace.
//
//go:nosplit
//go:norace
func (in *Init) supervise(payload, sigfd uintptr) {
	for {
		_, _, errno := syscall.RawSyscall(unix.SYS_READ, sigfd, uintptr(unsafe.Pointer(&in.sigbuf[0])), uintptr(len(in.sigbuf)))
		if errno == unix.EINTR || errno == unix.EAGAIN {
			continue
		}
		if errno != 0 {
			exit(contract.ExitSetupFailed)
		}
		signo := uintptr(in.sigbuf[0]) | uintptr(in.sigbuf[1])<<8
		if signo != uintptr(unix.SIGCHLD) {
			syscall.RawSyscall(unix.SYS_KILL, payload, signo, 0)
			continue
		}
		for {
			pid, _, errno := syscall.RawSyscall6(unix.SYS_WAIT4, ^uintptr(0), uintptr(unsafe.Pointer(&in.status)), unix.WNOHANG, 0, 0, 0)
			if errno != 0 || pid == 0 {
				break
			}
			if pid != payload {
				continue
			}
			if sig := in.status & 0x7f; sig != 0 {
				exit(contract.SignalBase + uintptr(sig))
			}
			exit(uintptr(in.status>>8) & 0xff)
		}
	}
}

// fail reports (kind, program, op, errno) to the parent and exits with
// code.
//
//go:nosplit
//go:norace
func (in *Init) fail(kind int32, prog, at int, errno syscall.Errno, code int) {
	in.report[0], in.report[1], in.report[2], in.report[3] = kind, int32(prog), int32(at), int32(errno)
	syscall.RawSyscall(unix.SYS_WRITE, uintptr(in.reportW), uintptr(unsafe.Pointer(&in.report[0])), 16)
	exit(uintptr(code))
}

//go:nosplit
//go:norace
func readFull(fd int, buf, n uintptr) bool {
	for n > 0 {
		r, _, errno := syscall.RawSyscall(unix.SYS_READ, uintptr(fd), buf, n)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 || r == 0 {
			return false
		}
		buf += r
		n -= r
	}
	return true
}

//go:nosplit
//go:norace
func exit(code uintptr) {
	for {
		syscall.RawSyscall(unix.SYS_EXIT_GROUP, code, 0, 0)
	}
}

// atFDCWD is AT_FDCWD as a system call argument.
const atFDCWD = ^uintptr(-unix.AT_FDCWD - 1)
