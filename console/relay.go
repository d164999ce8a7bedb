package console

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// Relay copies between the caller's stdio and the master side of a
// command's pseudo-terminal: the one a sandbox's pid 1 or rbox exec's
// joining process allocates inside the sandbox, or the landlock tier's.
type Relay struct {
	master *os.File
	host   *os.File // the caller's terminal, or nil when none of stdio is one
	saved  *term.State
	copied chan struct{}
}

// NewRelay makes a relay for master, sized as the caller's terminal.
func NewRelay(master *os.File) *Relay {
	r := &Relay{master: master, copied: make(chan struct{})}
	for _, f := range []*os.File{os.Stdin, os.Stdout, os.Stderr} {
		if IsTerminal(f) {
			r.host = f
			break
		}
	}
	r.Resize()
	return r
}

// Host is the caller's terminal, nil when none of its stdio is one.
func (r *Relay) Host() *os.File { return r.host }

// Resize gives the pseudo-terminal the caller's terminal's size (on
// SIGWINCH).
func (r *Relay) Resize() {
	if r.host != nil {
		_ = pty.InheritSize(r.host, r.master)
	}
}

// Start copies the caller's side to the pseudo-terminal and back. The
// caller's terminal is put in raw mode only when stdin is that terminal and
// rbox is in its foreground: keys then reach the command's line
// discipline, so ^C and ^Z act inside.
func (r *Relay) Start() {
	if IsTerminal(os.Stdin) && IsForeground(os.Stdin) {
		if saved, err := term.MakeRaw(0); err == nil {
			r.saved = saved
		}
	}
	// Input goes to the pseudo-terminal when stdin is the terminal, or
	// when none of stdio is one (-t without a terminal).
	if r.host == nil || IsTerminal(os.Stdin) {
		go func() { _, _ = io.Copy(r.master, os.Stdin) }()
	}
	out := os.Stdout
	if r.host != nil && !IsTerminal(os.Stdout) {
		out = os.Stderr
	}
	go func() {
		_, err := io.Copy(out, r.master)
		// EIO is how a master reports that every slave is closed.
		if err != nil && !errors.Is(err, unix.EIO) {
			fmt.Fprintf(os.Stderr, "rbox: terminal: %v\n", err)
		}
		close(r.copied)
	}()
}

// Drain waits for the command's last output to reach the caller: until
// every slave is closed, or at most limit when limit is not 0 (a process
// the command left may hold one).
func (r *Relay) Drain(limit time.Duration) {
	if limit == 0 {
		<-r.copied
		return
	}
	select {
	case <-r.copied:
	case <-time.After(limit):
	}
}

// Restore gives the caller's terminal its modes back and closes the
// master.
func (r *Relay) Restore() {
	if r.saved != nil {
		_ = term.Restore(0, r.saved)
	}
	r.master.Close()
}
