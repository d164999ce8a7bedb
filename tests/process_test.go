//go:build integration

package tests

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The exit code, and for a command that cannot start the one line that
// says why: the same on both executors (scripts/run-integration runs this
// on each). A file that exists but whose interpreter does not is "required
// file not found" (as bash says), not "command not found" nor "no such
// file".
func TestExitCodes(t *testing.T) {
	dir := hostDir(t)
	writeFile(t, dir+"/noexec", "#!/bin/sh\n")
	writeFile(t, dir+"/badinterp", "#!/no/such/interpreter\n")
	if err := os.Chmod(dir+"/badinterp", 0o755); err != nil {
		t.Fatal(err)
	}
	const badInterp = ": cannot execute: required file not found (the interpreter its #! line names, or its loader, is missing)"
	for _, c := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"true"}, 0, ""},
		{[]string{"sh", "-c", "exit 3"}, 3, ""},
		{[]string{"/data/noexec"}, 126, "rbox: /data/noexec: cannot execute: permission denied"},
		{[]string{"/etc"}, 126, "rbox: /etc: is a directory"},
		{[]string{"no-such-command-rbox"}, 127, "rbox: no-such-command-rbox: command not found"},
		{[]string{"/no/such/path"}, 127, "rbox: /no/such/path: no such file"},
		{[]string{"/data/badinterp"}, 127, "rbox: /data/badinterp" + badInterp},
		{[]string{"badinterp"}, 127, "rbox: badinterp" + badInterp},
		{[]string{"sh", "-c", "kill -9 $$"}, 128 + 9, ""},
		{[]string{"sh", "-c", "kill -TERM $$"}, 128 + 15, ""},
	} {
		args := append([]string{"--ro-bind", dir + ":/data", "--env", "PATH=/data:/usr/bin:/bin", "--"}, c.args...)
		r := rbox(t, args...)
		if r.code != c.code {
			t.Errorf("rbox -- %v: exit %d, want %d\n%s", c.args, r.code, c.code, r)
		}
		var lines []string
		for _, l := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
			if l != "" && !strings.HasPrefix(l, "rbox: warning: ") {
				lines = append(lines, l)
			}
		}
		if c.says != "" && (len(lines) != 1 || lines[0] != c.says) {
			t.Errorf("rbox -- %v says %q, want %q", c.args, lines, c.says)
		}
	}
}

// startRbox starts rbox in the background and returns the command and a
// function that reads what it printed so far.
func startRbox(t *testing.T, args ...string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(rboxBin, args...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd, out
}

// Signals sent to rbox reach the command, which decides its exit.
func TestSignalForwarding(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH} {
		n := int(sig)
		script := fmt.Sprintf("trap 'echo got-%d; exit %d' %d; echo ready; while :; do sleep 0.05; done", n, 40+n, n)
		cmd, out := startRbox(t, "--", "sh", "-c", script)
		waitFor(t, "the command to start", 10*time.Second, func() bool { return strings.Contains(out.String(), "ready") })
		if err := cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		err := cmd.Wait()
		code := cmd.ProcessState.ExitCode()
		if code != 40+n || !strings.Contains(out.String(), fmt.Sprintf("got-%d", n)) {
			t.Errorf("signal %v: exit %d (%v), output %q; want the trap to run and exit %d", sig, code, err, out.String(), 40+n)
		}
	}
}

// pid 1 reaps orphans, and when the command exits, background processes
// die with the sandbox.
func TestZombiesReapedAndBackgroundKilled(t *testing.T) {
	out := sh(t, `sh -c 'sleep 0.1 & exit 0'; sleep 0.5; ps -eo stat,comm --no-headers | grep -c '^Z' || true`)
	if strings.TrimSpace(out) != "0" {
		t.Fatalf("zombies inside: %s", out)
	}
	marker := fmt.Sprintf("rbox-bg-%d", time.Now().UnixNano())
	// The marker names a shell that waits for its sleep, so its command line
	// stays visible in /proc.
	r := rbox(t, "--", "sh", "-c", "setsid sh -c 'sleep 1000; :' "+marker+" >/dev/null 2>&1 & sleep 0.2; exit 0")
	if r.code != 0 {
		t.Fatal(r)
	}
	waitFor(t, "the background process to die", 5*time.Second, func() bool { return len(processesWith(marker)) == 0 })
}

// With the host's pid namespace there is no kernel teardown; rbox's init
// still kills what the command left behind.
func TestSharedPIDBackgroundKilled(t *testing.T) {
	marker := fmt.Sprintf("rbox-bg-%d", time.Now().UnixNano())
	r := rbox(t, "--share", "pid", "--", "sh", "-c", "setsid sh -c 'sleep 1000; :' "+marker+" >/dev/null 2>&1 & sleep 0.2; exit 0")
	if r.code != 0 {
		t.Fatal(r)
	}
	waitFor(t, "the background process to die", 5*time.Second, func() bool { return len(processesWith(marker)) == 0 })
}

// kill -9 of rbox takes the whole sandbox with it: no process, mount or
// temporary directory remains.
func TestKill9LeavesNothing(t *testing.T) {
	marker := fmt.Sprintf("rbox-k9-%d", time.Now().UnixNano())
	before := tmpEntries(t)
	dir := hostDir(t)
	cmd, out := startRbox(t, "--bind", dir+":/work", "--tmpfs", "/scratch", "--", "sh", "-c",
		"sh -c 'sleep 1000; :' "+marker+" & sh -c 'sleep 1000; :' "+marker+"-fg & echo ready; wait")
	waitFor(t, "the sandbox to start", 10*time.Second, func() bool { return strings.Contains(out.String(), "ready") })
	waitFor(t, "both sleeps", 5*time.Second, func() bool { return len(processesWith(marker)) >= 3 }) // the two shells and the script naming them
	pid1 := childPIDs(cmd.Process.Pid)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	waitFor(t, "the sandbox's processes to die", 5*time.Second, func() bool { return len(processesWith(marker)) == 0 })
	for _, p := range pid1 {
		waitFor(t, "rbox's init to die", 5*time.Second, func() bool { return syscall.Kill(p, 0) != nil })
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), dir) || strings.Contains(string(mounts), "/scratch") {
		t.Errorf("host mount table mentions the sandbox:\n%s", mounts)
	}
	after := tmpEntries(t)
	for e := range after {
		if !before[e] {
			t.Errorf("rbox left %s in /tmp", e)
		}
	}
}

func childPIDs(ppid int) []int {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", ppid, ppid))
	var out []int
	for _, f := range strings.Fields(string(data)) {
		n, _ := strconv.Atoi(f)
		out = append(out, n)
	}
	return out
}

// An fd the caller left open does not reach the command; --preserve-fds
// passes the ones asked for.
func TestFDsNotInherited(t *testing.T) {
	f, err := os.Open("/etc/hostname")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	list := func(extra ...string) string {
		r := rboxCmd(t, func(c *exec.Cmd) { c.ExtraFiles = []*os.File{f, f} },
			append(extra, "--", "sh", "-c", "ls /proc/self/fd | sort -n | tr '\\n' ' '")...)
		if r.code != 0 {
			t.Fatal(r)
		}
		return strings.TrimSpace(r.stdout)
	}
	// ls's own directory fd is 3.
	if got := list(); got != "0 1 2 3" {
		t.Errorf("fds inside = %q, want 0 1 2 (and ls's 3)", got)
	}
	if got := list("--preserve-fds", "1"); got != "0 1 2 3 4" {
		t.Errorf("fds with --preserve-fds 1 = %q, want 0 1 2 3 (and ls's 4)", got)
	}
}

// no_new_privs is set and root inside holds exactly the documented set.
func TestPrivileges(t *testing.T) {
	status := func(flags ...string) map[string]string {
		m := map[string]string{}
		for _, l := range strings.Split(sh(t, "cat /proc/self/status", flags...), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok {
				m[k] = strings.TrimSpace(v)
			}
		}
		return m
	}
	// CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP
	// NET_BIND_SERVICE SYS_CHROOT SETFCAP: bits 0-3,5-8,10,18,31.
	const defaultSet = "00000000800405fb"
	s := status()
	if s["NoNewPrivs"] != "1" {
		t.Errorf("NoNewPrivs = %q", s["NoNewPrivs"])
	}
	for _, k := range []string{"CapEff", "CapPrm", "CapBnd"} {
		if s[k] != defaultSet {
			t.Errorf("%s = %s, want %s", k, s[k], defaultSet)
		}
	}
	if s["CapInh"] != "0000000000000000" || s["CapAmb"] != "0000000000000000" {
		t.Errorf("CapInh %s CapAmb %s, want none", s["CapInh"], s["CapAmb"])
	}
	if got := status("--cap-drop", "ALL")["CapEff"]; got != "0000000000000000" {
		t.Errorf("--cap-drop ALL: CapEff = %s", got)
	}
	if got := status("--cap-add", "net_raw", "--cap-drop", "CHOWN")["CapEff"]; got != "00000000800425fa" {
		t.Errorf("--cap-add net_raw --cap-drop CHOWN: CapEff = %s, want 00000000800425fa", got)
	}
	// A non-root uid gets only what --cap-add granted, as ambient.
	if got := status("--uid", "1000", "--cap-add", "NET_RAW")["CapEff"]; got != "0000000000002000" {
		t.Errorf("--uid 1000 --cap-add NET_RAW: CapEff = %s, want 0000000000002000", got)
	}
	// mknod fails.
	if out := sh(t, "mknod /tmp/null c 1 3 2>/dev/null && echo made; echo end"); strings.Contains(out, "made") {
		t.Error("mknod succeeded inside")
	}
}

func TestEnvironment(t *testing.T) {
	r := rboxCmd(t, func(c *exec.Cmd) { c.Env = append(os.Environ(), "RBOX_KEEP=1", "RBOX_DROP=1") },
		"--env", "RBOX_NEW=two=2,3", "--unset-env", "RBOX_DROP", "--", "sh", "-c", "echo $RBOX_KEEP,$RBOX_DROP,$RBOX_NEW")
	if strings.TrimSpace(r.stdout) != "1,,two=2,3" {
		t.Errorf("environment: %q", r.stdout)
	}
	r = rboxCmd(t, func(c *exec.Cmd) { c.Env = append(os.Environ(), "RBOX_KEEP=1") },
		"--clear-env", "--env", "A=b", "--", "/usr/bin/env")
	if strings.TrimSpace(r.stdout) != "A=b" {
		t.Errorf("--clear-env: env is %q", r.stdout)
	}
}

// rbox runs inside rbox when nesting is allowed.
func TestNested(t *testing.T) {
	out := sh(t, "/rbox -- sh -c 'cat /proc/self/uid_map; echo inner-ok' 2>&1", "--allow-nested", "--ro-bind", rboxBin+":/rbox")
	if !strings.Contains(out, "inner-ok") {
		t.Fatalf("nested rbox failed:\n%s", out)
	}
}
