//go:build !amd64

package forkinit

import "syscall"

// cloneInit and clonePayload fork: the child gets a copy of the caller's
// memory and runs on its copy of the current stack.
//
//go:nosplit
//go:norace
func cloneInit(flags, _ uintptr) (uintptr, uintptr) {
	pid, _, errno := syscall.RawSyscall6(syscall.SYS_CLONE, flags, 0, 0, 0, 0, 0)
	if errno == 0 && pid == 0 {
		childEntry()
	}
	return pid, uintptr(errno)
}

//go:nosplit
//go:norace
func clonePayload(flags, _ uintptr) (uintptr, uintptr) {
	pid, _, errno := syscall.RawSyscall6(syscall.SYS_CLONE, flags, 0, 0, 0, 0, 0)
	if errno == 0 && pid == 0 {
		payloadEntry()
	}
	return pid, uintptr(errno)
}

const sharesMemory = false
