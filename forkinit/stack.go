package forkinit

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// childStack is the usable size of pid 1's and the payload process's
// stacks: the nosplit functions they run need well under a page (the
// linker bounds a chain of nosplit frames to about 800 bytes).
const childStack = 64 << 10

// A stack is a child's stack: a mapping of its own, outside Go's heap,
// whose lowest page is PROT_NONE. The children run in the parent's memory,
// so a child that overflowed a stack carved from the heap would overwrite
// Go's objects silently; here it faults on the guard page and dies of
// SIGSEGV, and rbox exits as pid 1 did (128+SIGSEGV).
type stack struct {
	mem   []byte // the whole mapping, the guard page first
	guard int    // the guard's size: one page
}

// newStack maps a stack of childStack bytes above a guard page.
func newStack() (stack, error) {
	guard := unix.Getpagesize()
	mem, err := unix.Mmap(-1, 0, guard+childStack, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_STACK|unix.MAP_NORESERVE)
	if err != nil {
		return stack{}, fmt.Errorf("map a stack for the sandbox's init: %w", err)
	}
	if err := unix.Mprotect(mem[:guard], unix.PROT_NONE); err != nil {
		_ = unix.Munmap(mem)
		return stack{}, fmt.Errorf("guard page of the sandbox's init stack: %w", err)
	}
	return stack{mem: mem, guard: guard}, nil
}

// top is the initial stack pointer of a child on s: below the top of the
// mapping, 16-byte aligned (amd64 and arm64 both ask for it).
func (s stack) top() uintptr {
	return (uintptr(unsafe.Pointer(unsafe.SliceData(s.mem))) + uintptr(len(s.mem)) - 64) &^ 15
}

// free unmaps s; no child may run on it any more.
func (s *stack) free() {
	if s.mem != nil {
		_ = unix.Munmap(s.mem)
		s.mem = nil
	}
}
