//go:build integration

package tests

// The escape suite: each test runs one attack with the probe inside a
// default sandbox and checks it fails with the expected error, then runs the
// same probe where the attack must work, so a failure is known to come from
// the sandbox and not from a probe that cannot tell. That weakened run uses
// the rbox option that gives the protection up when there is one, and runs
// the probe directly on the host when no option does. docs/security.md maps
// each claim to its test.

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// probeIn runs the probe, bound at /probe, in a sandbox made with flags.
func probeIn(t *testing.T, flags []string, args ...string) result {
	t.Helper()
	return probeInCmd(t, nil, flags, args...)
}

func probeInCmd(t *testing.T, prepare func(*exec.Cmd), flags []string, args ...string) result {
	t.Helper()
	all := append(append([]string{}, flags...), "--ro-bind", probeBin(t)+":/probe", "--", "/probe")
	return rboxCmd(t, prepare, append(all, args...)...)
}

// probeHost runs the probe directly on the host.
func probeHost(t *testing.T, prepare func(*exec.Cmd), args ...string) result {
	t.Helper()
	return runDirect(t, prepare, probeBin(t), args...)
}

func runDirect(t *testing.T, prepare func(*exec.Cmd), bin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out, errb syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if prepare != nil {
		prepare(cmd)
	}
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %v: %v", bin, args, err)
	}
	return r
}

// items reads the probe's "ITEM: RESULT" lines.
func items(r result) map[string]string {
	m := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(strings.ReplaceAll(r.stdout, "\r", "")))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ": "); ok {
			m[k] = v
		}
	}
	return m
}

// mustRefuse requires the probe to have been refused with errno (an errno
// name like "EPERM"; empty accepts any).
func mustRefuse(t *testing.T, what string, r result, errno string) {
	t.Helper()
	if r.code != 1 || !strings.Contains(r.stdout, "refused: "+errno) {
		t.Errorf("%s: want the probe refused with %s, got\n%s", what, orAny(errno), r)
	}
}

func orAny(errno string) string {
	if errno == "" {
		return "any error"
	}
	return errno
}

// mustSucceed requires the attack to have worked.
func mustSucceed(t *testing.T, what string, r result) {
	t.Helper()
	if r.code != 0 || !strings.Contains(r.stdout, "succeeded") {
		t.Errorf("%s: want the probe to succeed (the attack works there), got\n%s", what, r)
	}
}

func isRoot() bool { return os.Getuid() == 0 }

// pid 1 is rbox: the command cannot open its executable (for reading or
// writing), its memory or its descriptors, nor trace it, by default and
// when given CAP_SYS_PTRACE or every capability. With CAP_SYS_PTRACE pid 1
// runs from a sealed, execute-only copy of rbox in memory that the kernel
// puts beyond the payload's user namespace (sandbox/exe.go). Weakened: the
// same probe aimed at a process of the sandbox's own opens all of it.
func TestEscapePID1(t *testing.T) {
	for _, flags := range [][]string{nil, {"--cap-add", "SYS_PTRACE"}, {"--cap-add", "ALL"}} {
		r := probeIn(t, flags, "open-pid", "1")
		mustRefuse(t, fmt.Sprintf("flags %v", flags), r, "")
		for item, v := range items(r) {
			if strings.HasPrefix(item, "open ") || item == "readlink exe" {
				if v != "EACCES" {
					t.Errorf("flags %v: %s: %s, want EACCES", flags, item, v)
				}
			}
		}
		mustRefuse(t, fmt.Sprintf("ptrace pid 1, flags %v", flags), probeIn(t, flags, "ptrace", "1"), "EPERM")
	}
	r := rbox(t, "--cap-add", "SYS_PTRACE", "--ro-bind", probeBin(t)+":/probe", "--",
		"sh", "-c", "sleep 100 & /probe open-pid $!; kill $!")
	mustSucceed(t, "a sibling process", r)
	if got := items(r); got["open exe O_RDONLY"] != "ok" || got["open mem"] != "ok" {
		t.Errorf("a sibling process: executable or memory not opened:\n%s", r)
	}

	// From the host: pid 1 of a sandbox with CAP_SYS_PTRACE runs from the
	// sealed copy. Only real root may look; the caller itself may not.
	cmd, out := startRbox(t, "--cap-add", "SYS_PTRACE", "--", "sh", "-c", "echo ready; sleep 100")
	waitFor(t, "the sandbox to start", 10*time.Second, func() bool { return strings.Contains(out.String(), "ready") })
	pids := childPIDs(cmd.Process.Pid)
	if len(pids) != 1 {
		t.Fatalf("rbox's children: %v", pids)
	}
	exe := fmt.Sprintf("/proc/%d/exe", pids[0])
	target, err := os.Readlink(exe)
	if !isRoot() {
		if err == nil {
			t.Errorf("the caller can read pid 1's executable link: %s", target)
		}
		return
	}
	if err != nil || !strings.HasPrefix(target, "/memfd:rbox-init") {
		t.Fatalf("pid 1 runs from %q (%v), want the memfd copy", target, err)
	}
	fd, err := unix.Open(exe, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	// F_GET_SEALS needs a real descriptor; reopen the memfd read-only.
	ro, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", fd), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(ro)
	seals, err := unix.FcntlInt(uintptr(ro), unix.F_GET_SEALS, 0)
	want := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if err != nil || seals&want != want {
		t.Errorf("pid 1's executable seals = %#x (%v), want %#x", seals, err, want)
	}
	var st unix.Stat_t
	if err := unix.Fstat(ro, &st); err != nil || st.Mode&0o777 != 0o100 {
		t.Errorf("pid 1's executable mode = %o (%v), want 0100", st.Mode&0o777, err)
	}
}

var (
	maskedProc   = []string{"/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/latency_stats", "/proc/timer_stats", "/proc/sched_debug", "/proc/kallsyms", "/proc/acpi", "/proc/asound", "/proc/scsi"}
	readOnlyProc = []string{"/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs"}
)

// checkProc requires every path the host has to be masked or read-only
// (want true), or to be visible or writable.
func checkProc(t *testing.T, what string, r result, paths []string, state string) {
	t.Helper()
	got := items(r)
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			continue // the host kernel lacks it
		}
		if got[p] != state {
			t.Errorf("%s: %s is %q, want %s\n%s", what, p, got[p], state, r)
		}
	}
}

// The sensitive /proc files are masked and the kernel-tuning trees are
// read-only. --allow-nested leaves /proc bare for a nested sandbox, except
// when the caller is root: root inside is then the host's root, whom the
// kernel lets write /proc/sys by file owner alone. For other callers those
// files are root's, whom the sandbox does not map, and opening one for
// writing fails. Weakened: the host's /proc.
func TestEscapeProcMasks(t *testing.T) {
	masked := append([]string{"masked"}, maskedProc...)
	ro := append([]string{"readonly"}, readOnlyProc...)
	for _, flags := range [][]string{nil, {"--share", "pid"}} {
		mustRefuse(t, fmt.Sprintf("masks, flags %v", flags), probeIn(t, flags, masked...), "")
		mustRefuse(t, fmt.Sprintf("read-only, flags %v", flags), probeIn(t, flags, ro...), "")
	}
	nested := []string{"--allow-nested"}
	if isRoot() {
		mustRefuse(t, "masks, --allow-nested as root", probeIn(t, nested, masked...), "")
		mustRefuse(t, "read-only, --allow-nested as root", probeIn(t, nested, ro...), "")
	} else {
		checkProc(t, "--allow-nested", probeIn(t, nested, ro...), readOnlyProc, "writable")
		mustRefuse(t, "--allow-nested: open /proc/sys/vm/swappiness for writing", probeIn(t, nested, "open-write", "/proc/sys/vm/swappiness"), "EACCES")
	}
	r := probeHost(t, nil, masked...)
	mustSucceed(t, "masks on the host", r)
	checkProc(t, "on the host", r, maskedProc, "visible")
	r = probeHost(t, nil, ro...)
	mustSucceed(t, "read-only on the host", r)
	checkProc(t, "on the host", r, readOnlyProc, "writable")
}

// /sys is read-only, a fresh one or the host's (--share net), and its
// firmware and powercap trees are masked. No option makes it writable;
// the host's /sys is.
func TestEscapeSysReadOnly(t *testing.T) {
	for _, flags := range [][]string{nil, {"--share", "net"}} {
		mustRefuse(t, fmt.Sprintf("flags %v", flags), probeIn(t, flags, "readonly", "/sys", "/sys/kernel", "/sys/fs/cgroup"), "")
		mustRefuse(t, fmt.Sprintf("masks, flags %v", flags), probeIn(t, flags, "masked", "/sys/firmware", "/sys/devices/virtual/powercap"), "")
	}
	mustSucceed(t, "on the host", probeHost(t, nil, "readonly", "/sys"))
}
