package seccomp

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/spec"
)

// MaxProgram is the kernel's limit on a filter's instructions
// (BPF_MAXINSNS).
const MaxProgram = 4096

// Program turns a filter's BPF (struct sock_filter entries in native byte
// order, as libseccomp exports them) into the array seccomp(2) takes.
func Program(bpf []byte) ([]unix.SockFilter, error) {
	const size = int(unsafe.Sizeof(unix.SockFilter{}))
	n := len(bpf) / size
	if len(bpf)%size != 0 || n == 0 || n > MaxProgram {
		return nil, fmt.Errorf("seccomp: a filter of %d bytes is not a program of 1 to %d instructions", len(bpf), MaxProgram)
	}
	prog := make([]unix.SockFilter, n)
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&prog[0])), len(bpf)), bpf)
	return prog, nil
}

// Load loads f on the calling thread only (no TSYNC), after setting
// no_new_privs on it.
//
// It locks the calling goroutine to its thread for good: the filter belongs
// to the thread, so the goroutine must not move off it and no other
// goroutine may be scheduled onto it. Children forked from this thread
// inherit the filter; other threads of the process stay unfiltered, and Go
// starts new threads from a clean template thread while a goroutine holds
// LockOSThread, so they stay unfiltered too. After Load under the default
// profile, fork with clone, not clone3: os/exec does unless SysProcAttr
// asks for UseCgroupFD or CLONE_NEWTIME.
func Load(f *spec.SeccompFilter) error {
	runtime.LockOSThread()
	prog, err := Program(f.BPF)
	if err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("seccomp: set no_new_privs: %w", err)
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	_, _, errno := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, uintptr(f.Flags), uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(prog)
	if errno != 0 {
		return fmt.Errorf("seccomp: load filter: %w", errno)
	}
	return nil
}
