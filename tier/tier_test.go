package tier

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

var errEPERM error = unix.EPERM

// This machine runs the full tier: the probe finds a user namespace that
// can mount, as root and as the test user (scripts/run-unit-as-user).
func TestProbeHere(t *testing.T) {
	if b, refused, err := Probe(); b != nil || len(refused) != 0 || err != nil {
		t.Fatalf("Probe: %v, refused %v, %v", b, refused, err)
	}
	c, err := Choose(Auto, nil)
	if err != nil || c.Tier != Full || c.Blocker != nil {
		t.Errorf("Choose(auto) = %+v, %v; want full", c, err)
	}
	if c, err := Choose(Landlock, nil); err != nil || c.Tier != Landlock {
		t.Errorf("Choose(landlock) = %+v, %v", c, err)
	}
	if _, err := Choose("partial", nil); err == nil || !strings.Contains(err.Error(), "auto, full, landlock") {
		t.Errorf("Choose(partial): %v", err)
	}
}

// The kernel here (6.18) has Landlock ABI 7: every guarantee of the tier
// but the pathname unix socket rule, which the tier's own filter takes.
func TestABIHere(t *testing.T) {
	if abi := ABI(); abi < 6 {
		t.Fatalf("Landlock ABI %d, want 6 or more (%s)", abi, ABIProblem())
	}
	if m := Missing(ABI(), false); len(m) != 0 {
		t.Errorf("Missing = %q, want none", m)
	}
	if _, err := unixSocketFilter(); err != nil {
		t.Error(err)
	}
}

func TestMissing(t *testing.T) {
	m := strings.Join(Missing(3, false), "; ")
	for _, want := range []string{"TCP is not restricted", "signals to host processes"} {
		if !strings.Contains(m, want) {
			t.Errorf("Missing(3) = %q, lacks %q", m, want)
		}
	}
	if strings.Contains(strings.Join(Missing(3, true), ";"), "TCP") {
		t.Error("Missing(3, allowNet) names TCP, which --net host opens anyway")
	}
}

func TestBlockerText(t *testing.T) {
	for b, want := range map[*Blocker]string{
		{NoUserNS: true, Err: errEPERM}: "user namespaces are refused here",
		{Err: errEPERM}:                 "the user namespace holds no capabilities",
	} {
		if got := b.Error(); !strings.HasPrefix(got, want) {
			t.Errorf("%q, want prefix %q", got, want)
		}
	}
	d := Describe(Choice{Tier: Landlock, Blocker: &Blocker{NoUserNS: true, Err: errEPERM}}, false)
	if !strings.HasPrefix(d, "isolation: landlock tier (Landlock ABI ") || strings.Contains(d, "\n") {
		t.Errorf("Describe = %q", d)
	}
}

// The sysctls that restrict user namespaces make a run probe, and name
// themselves in the blocker; AppArmor's restriction spares root.
func TestSysctlSigns(t *testing.T) {
	root := os.Getuid() == 0
	for _, c := range []struct {
		key, value string
		suspect    bool
		blocker    Blocker
		says       string
	}{
		{"kernel/apparmor_restrict_unprivileged_userns", "1", !root, Blocker{Err: unix.EPERM}, "kernel.apparmor_restrict_unprivileged_userns is 1"},
		{"user/max_user_namespaces", "0", true, Blocker{NoUserNS: true, Err: unix.ENOSPC}, "user.max_user_namespaces is 0 or reached"},
		{"kernel/unprivileged_userns_clone", "0", !root, Blocker{NoUserNS: true, Err: unix.EPERM}, "kernel.unprivileged_userns_clone is 0"},
	} {
		procSys = t.TempDir()
		t.Cleanup(func() { procSys = "/proc/sys" })
		p := filepath.Join(procSys, c.key)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(c.value+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := Suspect(); got != c.suspect {
			t.Errorf("%s=%s: Suspect() = %v, want %v", c.key, c.value, got, c.suspect)
		}
		if msg := c.blocker.Error(); c.suspect && !strings.Contains(msg, c.says) {
			t.Errorf("%s=%s: blocker %q, want it to say %q", c.key, c.value, msg, c.says)
		}
	}
}

// ProcCovered sees a mount over a part of /proc (a container's mask) but
// not binfmt_misc's, which covers an empty directory.
func TestProcCovered(t *testing.T) {
	defer func(old string) { mountinfo = old }(mountinfo)
	dir := t.TempDir()
	for _, c := range []struct {
		lines string
		want  bool
	}{
		{"22 1 0:21 / /proc rw,nosuid - proc proc rw\n30 22 0:28 / /proc/sys/fs/binfmt_misc rw - autofs systemd-1 rw\n", false},
		{"22 1 0:21 / /proc rw,nosuid - proc proc rw\n31 22 0:5 /null /proc/kcore rw - devtmpfs udev rw\n", true},
		{"22 1 0:21 / /proc rw,nosuid - proc proc rw\n23 1 0:22 / /procfoo rw - tmpfs tmpfs rw\n", false},
	} {
		mountinfo = filepath.Join(dir, "mountinfo")
		if err := os.WriteFile(mountinfo, []byte(c.lines), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := ProcCovered(); got != c.want {
			t.Errorf("ProcCovered on\n%s= %v, want %v", c.lines, got, c.want)
		}
	}
}

// The degraded tier's compensation on this kernel (ABI 6 or later): TCP
// and abstract sockets for a refused network namespace, signals for a
// refused pid namespace, each with its seccomp gaps; none for a covered
// /proc, where the user namespace keeps what matters.
func TestCompensation(t *testing.T) {
	if ABI() < 6 {
		t.Fatalf("Landlock ABI %d, want 6 or more", ABI())
	}
	net, pid := Refusal{What: "net", Err: errEPERM}, Refusal{What: "pid", Err: errEPERM}
	c, missing, err := Compensation([]Refusal{net, pid})
	if err != nil {
		t.Fatal(err)
	}
	if d := c.Landlock; d.HandledNet&3 != 3 || d.Scoped != 3 || d.AttrSize != 24 || d.HandledFS != 0 || c.Filter == nil {
		t.Errorf("net and pid refused: %+v, filter %v", d, c.Filter != nil)
	}
	if g := gapsOf([]Refusal{net, pid}, c); !g.net || !g.pid {
		t.Errorf("gaps: %+v", g)
	}
	if len(missing) != 1 || !strings.Contains(missing[0], "reach the host's network") {
		t.Errorf("net and pid refused: not enforced %q", missing)
	}
	if c, missing, err := Compensation([]Refusal{{What: Proc}}); c != nil || len(missing) != 0 || err != nil {
		t.Errorf("a covered /proc: %+v, %q, %v", c, missing, err)
	}
}

// The gaps' seccomp program, loaded for real in a child process: what
// Landlock does not see is refused, the process's own calls pass.
func TestGapProgram(t *testing.T) {
	if os.Getenv("RBOX_TIER_GAP_CHILD") == "1" {
		gapChild()
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestGapProgram$")
	cmd.Env = append(os.Environ(), "RBOX_TIER_GAP_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	want := []string{
		"mptcp: protocol not supported", "fastopen: operation not supported", "tcp: ok",
		"prlimit other: operation not permitted", "prlimit self: ok", "prlimit read other: ok",
		"setpriority user: operation not permitted", "setpriority self: ok",
		"affinity other: operation not permitted", "affinity self: ok",
	}
	for _, w := range want {
		if !strings.Contains(string(out), w+"\n") {
			t.Errorf("want %q, got\n%s", w, out)
		}
	}
}

func gapChild() {
	prog, err := filterGaps{net: true, pid: true}.program()
	if err != nil {
		panic(err)
	}
	runtime.LockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		panic(err)
	}
	filter := unsafe.Slice((*unix.SockFilter)(unsafe.Pointer(&prog[0])), len(prog)/8)
	fprog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if _, _, e := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&fprog))); e != 0 {
		panic(e)
	}
	say := func(what string, err error) {
		if err == nil {
			fmt.Println(what + ": ok")
		} else {
			fmt.Println(what + ": " + err.Error())
		}
	}
	_, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM, ipprotoMPTCP)
	say("mptcp", err)
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	say("tcp", err)
	say("fastopen", unix.Sendto(fd, []byte("x"), msgFastOpen, &unix.SockaddrInet4{Port: 9, Addr: [4]byte{127, 0, 0, 1}}))
	lim := unix.Rlimit{Cur: 64, Max: 1 << 20}
	say("prlimit other", unix.Prlimit(os.Getppid(), unix.RLIMIT_NOFILE, &lim, nil))
	var old unix.Rlimit
	say("prlimit read other", unix.Prlimit(os.Getppid(), unix.RLIMIT_NOFILE, nil, &old))
	say("prlimit self", unix.Prlimit(0, unix.RLIMIT_NOFILE, &old, nil))
	say("setpriority user", unix.Setpriority(unix.PRIO_USER, 0, 0))
	say("setpriority self", unix.Setpriority(unix.PRIO_PROCESS, 0, 1))
	var set unix.CPUSet
	set.Set(0)
	say("affinity other", unix.SchedSetaffinity(os.Getppid(), &set))
	say("affinity self", unix.SchedSetaffinity(0, &set))
}
