package contract

import (
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// The search goes on past missing, denied and found-but-unstartable
// candidates, reports the first remembered one, and stops at any other
// error; each outcome has its exit code and message.
func TestSearchAndExecFailure(t *testing.T) {
	type try struct {
		errno  syscall.Errno
		exists bool
	}
	cases := []struct {
		name  string
		tries []try
		code  int
		msg   string
	}{
		{"make", []try{{unix.ENOENT, false}, {unix.ENOTDIR, false}}, ExitNotFound, "make: command not found"},
		{"/bin/x", []try{{unix.ENOENT, false}}, ExitNotFound, "/bin/x: no such file"},
		{"run.sh", []try{{unix.ENOENT, false}, {unix.ENOENT, true}, {unix.EACCES, false}}, ExitNotFound,
			"run.sh: cannot execute: required file not found (the interpreter its #! line names, or its loader, is missing)"},
		{"tool", []try{{unix.EACCES, false}, {unix.ENOENT, true}}, ExitCannotExecute, "tool: cannot execute: permission denied"},
		{"big", []try{{unix.E2BIG, false}, {unix.ENOENT, false}}, ExitCannotExecute, "big: cannot execute: argument list too long"},
	}
	for _, c := range cases {
		s := NewSearch()
		for i, tr := range c.tries {
			goOn := s.Failed(i, tr.errno, tr.exists)
			if want := tr.errno != unix.E2BIG; goOn != want {
				t.Errorf("%s: candidate %d (%v): goes on = %v", c.name, i, tr.errno, goOn)
			}
			if !goOn {
				break
			}
		}
		code, err := ExecFailure(c.name, s.Errno, s.Found >= 0)
		if code != c.code || err.Error() != c.msg || s.ExitCode() != c.code {
			t.Errorf("%s: %d %q, want %d %q", c.name, code, err, c.code, c.msg)
		}
	}
}
