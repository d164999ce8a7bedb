package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/bwrapcli"
	"github.com/rbox-dev/rbox/sandbox"
	"github.com/rbox-dev/rbox/spec"
)

// bwrapFlags are the run flags that come from bubblewrap, which its users
// rely on (issue 12). --args FD is spliced in before parsing (spliceArgsFD).
type bwrapFlags struct {
	DevBind       mountFlag `name:"dev-bind" placeholder:"SRC:DST" help:"Bind host path SRC at DST read-write with its device nodes usable (/dev/fuse, /dev/kvm, a GPU)."`
	BindTry       mountFlag `name:"bind-try" placeholder:"SRC:DST" help:"As --bind, skipped when SRC does not exist."`
	ROBindTry     mountFlag `name:"ro-bind-try" placeholder:"SRC:DST" help:"As --ro-bind, skipped when SRC does not exist."`
	DieWithParent bool      `name:"die-with-parent" help:"End the sandbox when rbox's parent process dies, even by SIGKILL."`
	InfoFD        *int      `name:"info-fd" placeholder:"FD" help:"Write the sandbox's pid and namespace ids to FD as JSON once it starts (bwrap's format)."`
	JSONStatusFD  *int      `name:"json-status-fd" placeholder:"FD" help:"Write JSON lines to FD: the pid and namespace ids at start, the exit code at the end (bwrap's format)."`
	SeccompFD     *int      `name:"seccomp-fd" placeholder:"FD" help:"Load the command's seccomp filter from FD: a compiled BPF program (struct sock_filter array), as bwrap --seccomp takes; replaces --seccomp."`
	NewSession    bool      `name:"new-session" help:"Start the command in a new session (rbox always does; accepted for bwrap users)."`
	ArgsFD        int       `name:"args" placeholder:"FD" help:"Read more arguments from FD, NUL-separated, in this place (before --)."`
}

// apply sets what the flags change in s and returns the hooks the run
// needs for them (nil for none) and what to do with its exit code.
func (b *bwrapFlags) apply(s *spec.Spec) (*sandbox.Hooks, func(code int), error) {
	if b.SeccompFD != nil {
		data, err := readFD(*b.SeccompFD)
		if err != nil {
			return nil, nil, fmt.Errorf("--seccomp-fd %d: %v", *b.SeccompFD, err)
		}
		if len(data) == 0 || len(data)%8 != 0 {
			return nil, nil, fmt.Errorf("--seccomp-fd %d: %d bytes is not a BPF program (a whole number of 8-byte instructions)", *b.SeccompFD, len(data))
		}
		s.SeccompFilter = &spec.SeccompFilter{BPF: data}
	}
	if b.DieWithParent {
		s.DieWithParent = true
		if err := dieWithParent(); err != nil {
			return nil, nil, fmt.Errorf("--die-with-parent: %v", err)
		}
	}
	if b.InfoFD == nil && b.JSONStatusFD == nil {
		return nil, func(int) {}, nil
	}
	rep := &bwrapcli.Reporter{Info: -1, JSON: -1, Block: -1, UsernsBlock: -1, Spec: s}
	for _, f := range []struct {
		fd   *int
		into *int
		name string
	}{{b.InfoFD, &rep.Info, "--info-fd"}, {b.JSONStatusFD, &rep.JSON, "--json-status-fd"}} {
		if f.fd == nil {
			continue
		}
		if _, err := unix.FcntlInt(uintptr(*f.fd), unix.F_GETFD, 0); err != nil || *f.fd < 3 {
			return nil, nil, fmt.Errorf("%s %d: not an open descriptor of 3 or more", f.name, *f.fd)
		}
		*f.into = *f.fd
	}
	// The exit code is reported when it is the command's; a failure of
	// rbox's own goes to stderr only, as bwrap's does.
	started, failed := false, false
	hooks := &sandbox.Hooks{
		Started: func(pid int) error {
			err := rep.Started(pid)
			started = err == nil
			return err
		},
		Failed: func(msg string, code int) int {
			failed = true
			fmt.Fprintf(os.Stderr, "rbox: %s\n", msg)
			return code
		},
	}
	finish := func(code int) {
		if started && !failed {
			rep.Exited(code)
		}
	}
	return hooks, finish, nil
}

// readFD reads all of fd and closes it.
func readFD(fd int) ([]byte, error) {
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
		return nil, fmt.Errorf("not an open descriptor")
	}
	f := os.NewFile(uintptr(fd), "fd"+strconv.Itoa(fd))
	defer f.Close()
	return io.ReadAll(f)
}

// spliceArgsFD replaces each --args FD (or --args=FD) before -- with the
// NUL-separated arguments read from FD, for callers whose argument lists
// exceed the kernel's limit on a command line.
func spliceArgsFD(args []string) ([]string, error) {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...), nil
		}
		var v string
		switch {
		case a == "--args" && i+1 < len(args):
			v = args[i+1]
			i++
		case strings.HasPrefix(a, "--args="):
			v = strings.TrimPrefix(a, "--args=")
		default:
			out = append(out, a)
			continue
		}
		fd, err := strconv.Atoi(v)
		if err != nil || fd < 0 {
			return nil, fmt.Errorf("--args %q: expected a file descriptor number", v)
		}
		data, err := readFD(fd)
		if err != nil {
			return nil, fmt.Errorf("--args %d: %v", fd, err)
		}
		extra := strings.Split(strings.TrimSuffix(string(data), "\x00"), "\x00")
		if len(data) == 0 {
			extra = nil
		}
		rest, err := spliceArgsFD(append(extra, args[i+1:]...))
		if err != nil {
			return nil, err
		}
		return append(out, rest...), nil
	}
	return out, nil
}
