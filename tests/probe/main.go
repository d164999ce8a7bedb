// Command probe is a static multi-call program the integration tests run
// inside the sandbox, each call trying one thing a hostile payload might
// try and printing what the kernel said.
package main

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: probe CHECK [ARGS]")
		os.Exit(2)
	}
	checks := map[string]func(args []string) error{
		"tiocsti": tiocsti,
	}
	check, ok := checks[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "probe: unknown check %q\n", os.Args[1])
		os.Exit(2)
	}
	if err := check(os.Args[2:]); err != nil {
		fmt.Printf("refused: %v\n", err)
		os.Exit(1)
	}
	fmt.Println("succeeded")
}

// tiocsti pushes args[0] into the input queue of the terminal on fd 0.
func tiocsti(args []string) error {
	for _, c := range []byte(args[0]) {
		b := c
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, 0, unix.TIOCSTI, uintptr(unsafe.Pointer(&b))); errno != 0 {
			return errno
		}
	}
	return nil
}
