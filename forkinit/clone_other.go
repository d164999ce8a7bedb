//go:build !amd64 && !arm64

package forkinit

import "golang.org/x/sys/unix"

// Starting a child on a stack of its own takes a few lines of assembly,
// written for amd64 and arm64; elsewhere (386, arm, riscv64, ...) every
// run goes through initproc, the re-executed pid 1.
const sharesMemory = false

func cloneInit(_, _ uintptr) (uintptr, uintptr)    { return 0, uintptr(unix.ENOSYS) }
func clonePayload(_, _ uintptr) (uintptr, uintptr) { return 0, uintptr(unix.ENOSYS) }
func cloneOuter(_, _ uintptr) (uintptr, uintptr)   { return 0, uintptr(unix.ENOSYS) }
func cloneInner(_, _ uintptr) (uintptr, uintptr)   { return 0, uintptr(unix.ENOSYS) }
func cloneJoin(_, _ uintptr) (uintptr, uintptr)    { return 0, uintptr(unix.ENOSYS) }
