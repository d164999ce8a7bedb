package slirp

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

// helper is one long-running helper process (pasta or slirp4netns) that
// must not outlive this process.
//
// The helper is started with PR_SET_PDEATHSIG=SIGKILL, so the kernel kills
// it when rbox dies, SIGKILL included. That signal fires when the *thread*
// that forked the helper exits, not the process: Go may retire an idle OS
// thread at any time, which would kill a healthy helper. So the helper is
// forked from a goroutine locked to its thread, and that goroutine stays
// (blocked in Wait) for as long as the helper lives; the thread is only let
// go once the helper is reaped.
type helper struct {
	name string
	cmd  *exec.Cmd
	out  *tailBuffer

	done    chan struct{} // closed once the helper is reaped
	waitErr error
	stop    sync.Once
}

func startHelper(name string, cmd *exec.Cmd, log io.Writer) (*helper, error) {
	h := &helper{name: name, cmd: cmd, out: &tailBuffer{max: 4096}, done: make(chan struct{})}
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
			close(h.done)
			return
		}
		started <- nil
		h.waitErr = cmd.Wait()
		close(h.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return h, nil
}

// exited reports whether the helper has ended.
func (h *helper) exited() bool {
	select {
	case <-h.done:
		return true
	default:
		return false
	}
}

// exitError describes how the helper ended, with the tail of its output.
func (h *helper) exitError() error {
	msg := strings.TrimSpace(h.out.String())
	if msg != "" {
		msg = ":\n" + msg
	}
	return fmt.Errorf("%s exited early (%v)%s", h.name, h.waitErr, msg)
}

// kill ends the helper and waits until it is reaped.
func (h *helper) kill() {
	h.stop.Do(func() {
		if h.cmd.Process != nil {
			_ = h.cmd.Process.Kill()
		}
		select {
		case <-h.done:
		case <-time.After(10 * time.Second):
			// Cannot happen for SIGKILL short of a stuck kernel; do not
			// hang rbox on it.
		}
	})
}

func (h *helper) pid() int {
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
