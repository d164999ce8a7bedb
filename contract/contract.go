// Package contract is what the sandbox's pid 1 promises the rest of rbox
// and rbox's callers, whichever executor runs it (forkinit, the clone that
// shares the parent's memory, or initproc, the re-executed rbox): the exit
// codes, the signals passed on to the command, the rules and messages of
// the command's search, and the argv[0] that marks a re-execution as pid 1.
// The CLI, the parent (sandbox) and both executors import it; it imports
// nothing of rbox.
package contract

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Arg0 marks a re-execution of rbox as the sandbox's pid 1.
const Arg0 = "rbox-init"

// Exit codes, as documented in docs/reference.md. A command that ran exits
// with its own status, or SignalBase+N when signal N killed it.
const (
	ExitSetupFailed   = 125 // rbox's own error: bad input, a setup step failed
	ExitCannotExecute = 126 // the command was found but cannot be executed
	ExitNotFound      = 127 // the command (or what it needs to start) was not found
	SignalBase        = 128
)

// Forwarded are the signals rbox passes on to pid 1, and pid 1 to the
// command.
var Forwarded = []os.Signal{unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH}

// StatusCode is the exit code that reports wait status ws: the exit
// status, or SignalBase+N if the process died of signal N.
func StatusCode(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return SignalBase + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// Search is the state of the command's search, which is execvp's: each
// candidate path is tried in turn (the name itself when it holds a slash,
// else the name in each directory of the search path). Both executors run
// it; its methods call nothing, so they run in children forked without
// exec.
type Search struct {
	// Errno is the error to report if no candidate runs.
	Errno syscall.Errno
	// Found is the candidate Errno is about, or -1 when none was found.
	Found int
}

// NewSearch is a search that has tried nothing.
func NewSearch() Search { return Search{Errno: unix.ENOENT, Found: -1} }

// Failed records that the execve of candidate i failed with errno, exists
// telling whether the candidate exists (asked only after ENOENT), and
// reports whether the search goes on to the next candidate. A missing
// file or directory goes on; so do a denied file and a file whose execve
// says ENOENT although it exists (a script whose interpreter is missing, a
// program whose loader is), the first of them remembered and reported if
// nothing runs; any other error ends the search.
//
//go:nosplit
func (s *Search) Failed(i int, errno syscall.Errno, exists bool) bool {
	switch {
	case errno == unix.ENOENT && !exists, errno == unix.ENOTDIR:
		return true
	case errno == unix.ENOENT, errno == unix.EACCES:
		if s.Found < 0 {
			s.Errno, s.Found = errno, i
		}
		return true
	}
	s.Errno, s.Found = errno, i
	return false
}

// Candidates are the paths a search for the command name tries, in
// order: name itself when it holds a slash, else name in each directory
// of searchPath (an empty entry is the working directory).
func Candidates(name, searchPath string) []string {
	if strings.Contains(name, "/") {
		return []string{name}
	}
	var out []string
	for _, dir := range filepath.SplitList(searchPath) {
		if dir == "" {
			dir = "."
		}
		out = append(out, filepath.Join(dir, name))
	}
	return out
}

// ExitCode is the exit code for the search's failure.
//
//go:nosplit
func (s *Search) ExitCode() int {
	if s.Errno == unix.ENOENT || s.Errno == unix.ENOTDIR {
		return ExitNotFound
	}
	return ExitCannotExecute
}

// ExecFailure is the exit code and message for the command name that
// could not be executed because of errno, the error its Search reports.
// found tells that a candidate exists: ENOENT then means that what it
// needs to start is missing, and is reported as bash reports it.
func ExecFailure(name string, errno error, found bool) (int, error) {
	switch {
	case found && errors.Is(errno, unix.ENOENT):
		return ExitNotFound, fmt.Errorf("%s: cannot execute: required file not found (the interpreter its #! line names, or its loader, is missing)", name)
	case errors.Is(errno, unix.ENOENT) || errors.Is(errno, unix.ENOTDIR):
		if strings.Contains(name, "/") {
			return ExitNotFound, fmt.Errorf("%s: no such file", name)
		}
		return ExitNotFound, fmt.Errorf("%s: command not found", name)
	default:
		return ExitCannotExecute, fmt.Errorf("%s: cannot execute: %v", name, errno)
	}
}
