// Package proc runs the long-lived helper processes of a sandbox's network
// (pasta, slirp4netns) so that none outlives rbox.
package proc

import (
	"bytes"
	"fmt"
	"io"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Helper is one long-running helper process (pasta or slirp4netns) that
// must not outlive this process.
//
// The helper is started with PR_SET_PDEATHSIG=SIGKILL, so the kernel kills
// it when rbox dies, SIGKILL included. That signal fires when the *thread*
// that forked the helper exits, not the process: Go may retire an idle OS
// thread at any time, which would kill a healthy helper. So the helper is
// forked from a goroutine locked to its thread, and that goroutine stays
// (blocked in Wait) for as long as the helper lives; the thread is only let
// go once the helper is reaped.
type Helper struct {
	name string
	cmd  *exec.Cmd
	out  *tailBuffer

	// Done is closed once the helper is reaped.
	Done    chan struct{}
	waitErr error
	stop    sync.Once
}

// Start starts cmd, named name in messages, with its output kept for
// ExitError and copied to log when log is not nil.
func Start(name string, cmd *exec.Cmd, log io.Writer) (*Helper, error) {
	h := &Helper{name: name, cmd: cmd, out: &tailBuffer{max: 4096}, Done: make(chan struct{})}
	var w io.Writer = h.out
	if log != nil {
		w = io.MultiWriter(h.out, log)
	}
	cmd.Stdout = w
	cmd.Stderr = w
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	started := make(chan error, 1)
	go func() {
		// Never unlocked: when this goroutine returns the thread ends with
		// it, and by then the helper has been reaped.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			close(h.Done)
			return
		}
		started <- nil
		h.waitErr = cmd.Wait()
		close(h.Done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return h, nil
}

// Exited reports whether the helper has ended.
func (h *Helper) Exited() bool {
	select {
	case <-h.Done:
		return true
	default:
		return false
	}
}

// ExitError describes how the helper ended, with the tail of its output.
func (h *Helper) ExitError() error {
	msg := strings.TrimSpace(h.out.String())
	if msg != "" {
		msg = ":\n" + msg
	}
	return fmt.Errorf("%s exited early (%v)%s", h.name, h.waitErr, msg)
}

// WaitError is how the helper ended ("signal: killed"), once Done.
func (h *Helper) WaitError() error { return h.waitErr }

// Kill ends the helper and waits until it is reaped.
func (h *Helper) Kill() {
	h.stop.Do(func() {
		if h.cmd.Process != nil {
			_ = h.cmd.Process.Kill()
		}
		select {
		case <-h.Done:
		case <-time.After(10 * time.Second):
			// Cannot happen for SIGKILL short of a stuck kernel; do not
			// hang rbox on it.
		}
	})
}

// PID is the helper's process id.
func (h *Helper) PID() int {
	if h.cmd.Process == nil {
		return 0
	}
	return h.cmd.Process.Pid
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf.Write(p)
	if over := t.buf.Len() - t.max; over > 0 {
		t.buf.Next(over)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buf.String()
}

// Output is the tail of the helper's output so far.
func (h *Helper) Output() string { return h.out.String() }

// ReadyTimeout bounds how long a helper may take to be ready.
const ReadyTimeout = 20 * time.Second
