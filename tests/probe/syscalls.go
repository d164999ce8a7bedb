package main

import (
	"golang.org/x/sys/unix"
)

// call is one system call made with arguments chosen so that, should the
// filter let it through, the kernel refuses it harmlessly, where it can
// with an errno other than the filter's.
type call struct {
	nr   uintptr
	args [6]uintptr
	// undo reverts what a call that went through did.
	undo func(ret uintptr)
}

// syscalls makes each named system call by number and prints the errno it
// got, "ok" when it went through, or "absent" when this ABI has no such
// call. It succeeds when any call went through.
func syscalls(args []string) error {
	if len(args) == 0 {
		return usage("expected NAME...")
	}
	var r report
	for _, name := range args {
		c, ok := syscallTable[name]
		if !ok {
			r.note(name, "absent")
			continue
		}
		ret, _, errno := unix.Syscall6(c.nr, c.args[0], c.args[1], c.args[2], c.args[3], c.args[4], c.args[5])
		if errno == 0 && c.undo != nil {
			c.undo(ret)
		}
		r.try(name, errnoErr(errno))
	}
	return r.result()
}
