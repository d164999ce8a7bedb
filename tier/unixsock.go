package tier

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ResolveUnixABI is the Landlock ABI that restricts connecting to pathname
// unix sockets. Below it, Landlock lets a confined process connect to any
// socket whose path it can resolve (a session bus, a container engine's
// socket) whatever its filesystem rules: the landlock tier then refuses
// creating AF_UNIX sockets altogether, with a seccomp filter of its own.
// socketpair(2) still works.
const ResolveUnixABI = 9

// unixSocketArch is how this build's filters (this one, the gap program)
// tell the native system call
// ABI, and the number of socket(2) in it (with x32's bit on amd64).
var unixSocketArch = map[string]struct {
	audit   uint32
	sockets []uint32
}{
	"amd64": {unix.AUDIT_ARCH_X86_64, []uint32{unix.SYS_SOCKET, unix.SYS_SOCKET | 0x40000000}},
	"arm64": {unix.AUDIT_ARCH_AARCH64, []uint32{unix.SYS_SOCKET}},
}

// unixSocketFilter refuses socket(AF_UNIX, ...) with EACCES, and every
// system call of a non-native ABI (whose socket calls may go through
// socketcall(2), out of a filter's reach) with ENOSYS.
func unixSocketFilter() ([]unix.SockFilter, error) {
	a, ok := unixSocketArch[runtime.GOARCH]
	if !ok {
		return nil, fmt.Errorf("the landlock tier on %s needs Landlock ABI %d to keep pathname unix sockets closed", runtime.GOARCH, ResolveUnixABI)
	}
	p := []unix.SockFilter{
		stmt(bpfLd, offArch),
		jump(unix.BPF_JEQ, a.audit, 1, 0),
		refuse(unix.ENOSYS),
		stmt(bpfLd, offNr),
	}
	// Each socket number jumps to the domain check after the last one.
	for i, nr := range a.sockets {
		p = append(p, jump(unix.BPF_JEQ, nr, uint8(len(a.sockets)-i), 0))
	}
	return append(append(p, allow), argEquals(0, unix.AF_UNIX, unix.EACCES)...), nil
}

// loadFilter loads prog, the filter named what, on the calling thread,
// which has no_new_privs set.
func loadFilter(what string, prog []unix.SockFilter, err error) error {
	if err != nil {
		return err
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	_, _, errno := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(prog)
	if errno != 0 {
		return fmt.Errorf("seccomp: load the %s: %w", what, errno)
	}
	return nil
}
