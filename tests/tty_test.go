//go:build integration

package tests

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// interactive runs cmd on a fresh terminal, as a user's shell would start
// it, and returns the terminal's master side and everything printed.
func interactive(t *testing.T, cmd *exec.Cmd) (*os.File, *os.File, *syncBuffer) {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ptmx.Close(); tty.Close() })
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	out := &syncBuffer{}
	go func() { _, _ = io.Copy(out, ptmx) }()
	return ptmx, tty, out
}

// An interactive shell gets a terminal with job control: ^C interrupts the
// foreground job, ^Z stops it, and the shell's exit status is rbox's. In
// the full tier and in the landlock tier (a pseudo-terminal rbox opens).
func TestInteractiveShell(t *testing.T) {
	for _, flags := range [][]string{nil, {"--isolation", "landlock"}} {
		t.Run(fmt.Sprint(flags), func(t *testing.T) { interactiveShell(t, flags) })
	}
}

func interactiveShell(t *testing.T, flags []string) {
	cmd := exec.Command(rboxBin, append(flags, "--env", "PS1=PROMPT$ ", "--", "bash", "--norc", "--noprofile", "-i")...)
	cmd.Env = append(os.Environ(), "TERM=dumb")
	ptmx, _, out := interactive(t, cmd)
	send := func(s string) {
		if _, err := ptmx.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(what string) { t.Helper(); expectOutput(t, out, what) }
	expect("PROMPT$ ")
	// Each expected text differs from the typed line, which the terminal
	// echoes first.
	send("echo $((6*7))x; test -t 0 && echo tty-$((2+3))\n")
	expect("42x")
	expect("tty-5")
	send("sleep 100\n")
	time.Sleep(300 * time.Millisecond)
	send("\x03")
	send("echo after-int-$?\n")
	expect("after-int-130")
	send("sleep 200\n")
	time.Sleep(300 * time.Millisecond)
	send("\x1a")
	expect("Stopped")
	send("jobs; echo jobs-$((1+1))-listed\n")
	expect("jobs-2-listed\r\n")
	if strings.Count(out.String(), "Stopped") < 2 {
		t.Fatalf("jobs does not list the stopped job:\n%s", out.String())
	}
	// Bring it back to the foreground and interrupt it there.
	send("fg\n")
	time.Sleep(300 * time.Millisecond)
	send("\x03")
	send("echo after-fg-$?\n")
	expect("after-fg-130")
	send("exit 7\n")
	if code := waitExit(t, cmd, 10*time.Second); code != 7 {
		t.Fatalf("rbox exited %d, want 7; terminal:\n%s", code, out.String())
	}
	if strings.Contains(out.String(), "no job control") || strings.Contains(out.String(), "cannot set terminal process group") {
		t.Errorf("shell has no job control:\n%s", out.String())
	}
}

// rbox started in the background of an interactive shell leaves the
// terminal alone: taking it over would get rbox stopped by SIGTTOU.
func TestBackgroundLeavesTerminal(t *testing.T) {
	cmd := exec.Command("bash", "--norc", "--noprofile", "-i")
	cmd.Env = append(os.Environ(), "TERM=dumb", "PS1=PROMPT$ ")
	ptmx, _, out := interactive(t, cmd)
	expect := func(what string) { t.Helper(); expectOutput(t, out, what) }
	expect("PROMPT$ ")
	if _, err := ptmx.Write([]byte(rboxBin + " -- sh -c 'echo in-bg-$((40+2))' & wait $!; echo waited-$?\n")); err != nil {
		t.Fatal(err)
	}
	expect("waited-0")
	if !strings.Contains(out.String(), "in-bg-42") || strings.Contains(out.String(), "Stopped") {
		t.Fatalf("background rbox:\n%s", out.String())
	}
	_, _ = ptmx.Write([]byte("exit\n"))
	waitExit(t, cmd, 10*time.Second)
}

// A command that pushes keystrokes with TIOCSTI reaches only rbox's own
// terminal, never the caller's, even with no seccomp filter. The same probe
// run directly on the caller's terminal shows the attack works there.
func TestTIOCSTIDoesNotReachHostTerminal(t *testing.T) {
	probe := probeBin(t)
	// The weakened case: no sandbox at all.
	injectDirectly(t, probe)
	for _, flags := range [][]string{{}, {"--seccomp", "unconfined"}} {
		cmd := exec.Command(rboxBin, append(flags, "--ro-bind", probe+":/probe", "--", "/probe", "tiocsti", "echo INJECTED\n")...)
		_, tty, out := interactive(t, cmd)
		waitExit(t, cmd, 10*time.Second)
		time.Sleep(100 * time.Millisecond)
		if n := pendingInput(t, tty); n != 0 {
			t.Errorf("rbox %v: %d bytes injected into the caller's terminal; output %q", flags, n, out.String())
		}
	}
}

// waitExit waits for cmd at most d, killing it then, and returns its exit
// code.
func waitExit(t *testing.T, cmd *exec.Cmd, d time.Duration) int {
	t.Helper()
	timer := time.AfterFunc(d, func() { _ = cmd.Process.Kill() })
	defer timer.Stop()
	_ = cmd.Wait()
	return cmd.ProcessState.ExitCode()
}

// expectOutput waits until the terminal has shown what.
func expectOutput(t *testing.T, out *syncBuffer, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), what) {
		if time.Now().After(deadline) {
			t.Fatalf("terminal never showed %q; it shows:\n%s", what, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pendingInput is how many bytes wait to be read on tty.
func pendingInput(t *testing.T, tty *os.File) int {
	t.Helper()
	n, err := unix.IoctlGetInt(int(tty.Fd()), unix.TIOCINQ)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// injectDirectly runs the TIOCSTI probe on a terminal of its own, with no
// sandbox: the attack the TIOCSTI tests are proven against.
func injectDirectly(t *testing.T, probe string) {
	t.Helper()
	direct := exec.Command(probe, "tiocsti", "echo INJECTED\n")
	_, tty, out := interactive(t, direct)
	waitExit(t, direct, 10*time.Second)
	if pendingInput(t, tty) == 0 {
		t.Fatalf("probe could not inject into its own terminal: %s", out.String())
	}
}
