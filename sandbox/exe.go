package sandbox

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/spec"
)

// Pid 1 is rbox itself. It makes itself non-dumpable before the payload
// starts, so the kernel lets another process at its /proc/1/exe, mem, fd
// and ptrace only with CAP_SYS_PTRACE in the user namespace that owns its
// memory. For a plain re-execution that is the sandbox's namespace, where a
// payload given CAP_SYS_PTRACE holds it: it could then open the host's rbox
// binary through /proc/1/exe, and take over pid 1, whose other threads keep
// every capability and no seccomp filter.
//
// (The fast path's pid 1 is no re-execution: its memory is the rbox
// parent's, which the caller executed in its own user namespace, so it
// needs no copy; see forkinit.Eligible.)
//
// So when the payload of a re-executed pid 1 is to hold CAP_SYS_PTRACE,
// pid 1 runs from a sealed, execute-only copy of rbox in memory. The child cannot read that copy when
// it executes it (its uid has no mapping yet, so its capabilities do not
// apply to the file), and the kernel then ties its memory to the caller's
// user namespace, where the payload holds no capability. pid 1 is out of the
// payload's reach whatever it was granted, and what it runs from is not a
// host file. The copy costs a few milliseconds, so it is only made when
// needed.
//
// A process that executed a file it cannot read starts non-dumpable, and
// newuidmap refuses a target it does not own in /proc: the child makes
// itself dumpable again and says so on a pipe before the parent writes its
// id maps (initproc.Main), and turns non-dumpable for good before the
// payload starts.

// needsSealedInit reports whether the payload may hold CAP_SYS_PTRACE.
func needsSealedInit(s *spec.Spec) bool {
	for _, c := range s.Caps {
		if c == "CAP_SYS_PTRACE" {
			return true
		}
	}
	return false
}

// sealedInit copies the running rbox into a memfd, makes it execute-only
// for its owner and seals it against any change, and returns an O_PATH
// handle to it: the read-write descriptor memfd_create returns would make
// exec fail with ETXTBSY.
func sealedInit() (*os.File, error) {
	src, err := os.Open("/proc/self/exe")
	if err != nil {
		return nil, err
	}
	defer src.Close()
	flags := unix.MFD_CLOEXEC | unix.MFD_ALLOW_SEALING
	fd, err := unix.MemfdCreate(initName, flags|unix.MFD_EXEC)
	if errors.Is(err, unix.EINVAL) {
		// Kernels before 6.3 know no MFD_EXEC; their memfds are
		// executable.
		fd, err = unix.MemfdCreate(initName, flags)
	}
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	mem := os.NewFile(uintptr(fd), initName)
	defer mem.Close()
	if _, err := io.Copy(mem, src); err != nil {
		return nil, fmt.Errorf("copy rbox: %w", err)
	}
	if err := unix.Fchmod(fd, 0o100); err != nil {
		return nil, fmt.Errorf("chmod: %w", err)
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	path, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", fd), unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("reopen: %w", err)
	}
	return os.NewFile(uintptr(path), initName), nil
}

// initName names the memfd; /proc/1/exe shows "/memfd:rbox-init (deleted)".
const initName = "rbox-init"
