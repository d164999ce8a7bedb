// Command probe is a static multi-call program the integration tests run
// inside the sandbox, each call trying one thing a hostile payload might
// try and printing what the kernel said.
//
// A check prints "succeeded" and exits 0 when the attack worked, or
// "refused: ERRNO: text" and exits 1 when it did not. Checks that try
// several things print one "ITEM: RESULT" line each first; they succeed
// when any one of them did. Exit 2 is a usage error.
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

var checks = map[string]func(args []string) error{
	"tiocsti":          tiocsti,
	"read":             readFile,
	"read-cwd":         readCwd,
	"write":            writeFile,
	"open-write":       openWrite,
	"mkdir":            mkdir,
	"fds":              fds,
	"open-pid":         openPid,
	"remount":          remount,
	"nested-remount":   nestedRemount,
	"kill":             kill,
	"ptrace":           ptrace,
	"connect-abstract": connectAbstract,
	"connect-tcp":      connectTCP,
	"connect-unix":     connectUnix,
	"ipc":              ipc,
	"keyring":          keyring,
	"sethostname":      sethostname,
	"settime":          settime,
	"euid":             euid,
	"mknod":            mknod,
	"devices":          devices,
	"masked":           masked,
	"readonly":         readOnly,
	"syscalls":         syscalls,
	"getpid-loop":      getpidLoop,
	"watch-joiners":    watchJoiners,
	"alloc":            alloc,
}

// usage is a check's complaint about its arguments.
type usage string

func (u usage) Error() string { return string(u) }

// exitCode ends the probe with that code and nothing more said: a child
// probe has printed the verdict.
type exitCode int

func (c exitCode) Error() string { return fmt.Sprintf("exit %d", int(c)) }

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: probe CHECK [ARGS]")
		os.Exit(2)
	}
	check, ok := checks[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "probe: unknown check %q\n", os.Args[1])
		os.Exit(2)
	}
	err := check(os.Args[2:])
	var u usage
	var code exitCode
	switch {
	case errors.As(err, &code):
		os.Exit(int(code))
	case errors.As(err, &u):
		fmt.Fprintf(os.Stderr, "probe %s: %v\n", os.Args[1], err)
		os.Exit(2)
	case err != nil:
		fmt.Printf("refused: %s\n", describe(err))
		os.Exit(1)
	}
	fmt.Println("succeeded")
}

// describe names an error by its errno when it has one: "EPERM: operation
// not permitted".
func describe(err error) string {
	var errno unix.Errno
	if errors.As(err, &errno) {
		name := unix.ErrnoName(errno)
		if name == "" {
			name = fmt.Sprintf("errno %d", int(errno))
		}
		return name + ": " + errno.Error()
	}
	return err.Error()
}

// errnoName is the short name of err's errno, or "ok" for nil.
func errnoName(err error) string {
	if err == nil {
		return "ok"
	}
	return strings.SplitN(describe(err), ":", 2)[0]
}

// report collects the results of a check that tries several things.
type report struct{ worked int }

// try prints one item's result and counts it when it worked.
func (r *report) try(item string, err error) {
	fmt.Printf("%s: %s\n", item, errnoName(err))
	if err == nil {
		r.worked++
	}
}

// note prints an item that is neither a success nor a refusal.
func (r *report) note(item, what string) { fmt.Printf("%s: %s\n", item, what) }

// hit prints an item that shows the attack worked.
func (r *report) hit(item, what string) {
	fmt.Printf("%s: %s\n", item, what)
	r.worked++
}

// result is the check's outcome: nil when anything worked.
func (r *report) result() error {
	if r.worked > 0 {
		return nil
	}
	return errors.New("all refused")
}

func need(args []string, n int, what string) error {
	if len(args) != n {
		return usage("expected " + what)
	}
	return nil
}

// tiocsti pushes args[0] into the input queue of the terminal on fd 0.
func tiocsti(args []string) error {
	if err := need(args, 1, "TEXT"); err != nil {
		return err
	}
	for _, c := range []byte(args[0]) {
		b := c
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, 0, unix.TIOCSTI, uintptr(unsafe.Pointer(&b))); errno != 0 {
			return errno
		}
	}
	return nil
}
