package main

import (
	"strconv"

	"golang.org/x/sys/unix"
)

// alloc maps MiB of private memory and touches every page, as a program
// allocating a buffer would: "succeeded" when it got it all.
func alloc(args []string) error {
	if len(args) != 1 {
		return usage("usage: alloc MIB")
	}
	mib, err := strconv.Atoi(args[0])
	if err != nil || mib <= 0 {
		return usage("alloc: MIB must be a positive number")
	}
	mem, err := unix.Mmap(-1, 0, mib<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return err
	}
	for i := 0; i < len(mem); i += 4096 {
		mem[i] = 1
	}
	return nil
}
