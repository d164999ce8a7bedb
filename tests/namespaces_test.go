//go:build integration

package tests

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/internal/nettest"
)

func TestHostnameIsolation(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	// Even with CAP_SYS_ADMIN, a change inside stays inside.
	out := sh(t, "hostname; hostname changed-inside && hostname", "--hostname", "sandbox-1", "--cap-add", "SYS_ADMIN")
	if got := strings.Fields(out); len(got) != 2 || got[0] != "sandbox-1" || got[1] != "changed-inside" {
		t.Fatalf("inside hostnames = %q", got)
	}
	if now, _ := os.Hostname(); now != host {
		t.Fatalf("host name changed from %q to %q", host, now)
	}
}

// ps inside sees the sandbox alone, with rbox's init as pid 1.
func TestPIDNamespace(t *testing.T) {
	out := sh(t, "ps -eo pid,comm --no-headers")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if f := strings.Fields(lines[0]); f[0] != "1" || f[1] != "rbox-init" {
		t.Fatalf("pid 1 is %q, want rbox-init", lines[0])
	}
	if len(lines) > 3 { // init, sh, ps
		t.Fatalf("ps sees more than the sandbox:\n%s", out)
	}
	// The host's pid 1 is somebody else.
	if sh(t, "cat /proc/1/comm") != "rbox-init\n" {
		t.Fatal("/proc/1 is not the sandbox's init")
	}
}

// A plain run's pid 1 is forked from rbox without exec (it still has rbox's
// command line), with or without a user-mode network, and with ports
// published through pasta (which forwards them itself); a run that needs Go
// inside the sandbox, like one whose pid 1 must run from a sealed copy of
// rbox or runs slirp4netns' port agent, re-executes rbox as pid 1.
func TestInitKinds(t *testing.T) {
	port := strconv.Itoa(nettest.FreePort(t, "tcp")) + ":80"
	for _, args := range [][]string{{"--net", "none"}, {"--net", "pasta"}, {"--net", "slirp4netns"}, {"--net", "pasta", "-p", port}} {
		forked := rbox(t, append(args, "--", "cat", "/proc/1/cmdline")...)
		if argv := strings.Split(forked.stdout, "\x00"); forked.code != 0 || len(argv) < len(args)+4 || argv[len(args)+1] != "--" || argv[len(args)+2] != "cat" {
			t.Fatalf("%v: pid 1's command line is %q, want rbox's own\n%s", args, forked.stdout, forked)
		}
	}
	for _, args := range [][]string{{"--cap-add", "SYS_PTRACE"}, {"--net", "slirp4netns", "-p", port}} {
		reexec := rbox(t, append(args, "--", "cat", "/proc/1/cmdline")...)
		if reexec.code != 0 || !strings.HasPrefix(reexec.stdout, "rbox-init\x00") {
			t.Fatalf("%v: pid 1's command line is %q, want rbox-init\n%s", args, reexec.stdout, reexec)
		}
	}
}

// A SysV message queue made on the host is invisible inside.
func TestIPCNamespace(t *testing.T) {
	qid, err := unix.SysvShmGet(unix.IPC_PRIVATE, 4096, unix.IPC_CREAT|0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.SysvShmCtl(qid, unix.IPC_RMID, nil)
	msq, _, errno := unix.Syscall(unix.SYS_MSGGET, unix.IPC_PRIVATE, unix.IPC_CREAT|0o600, 0)
	if errno != 0 {
		t.Fatal(errno)
	}
	defer unix.Syscall(unix.SYS_MSGCTL, msq, unix.IPC_RMID, 0)
	host, _ := os.ReadFile("/proc/sysvipc/msg")
	if !strings.Contains(string(host), " "+strconv.Itoa(int(msq))+" ") {
		t.Fatalf("host does not list its queue %d:\n%s", msq, host)
	}
	out := sh(t, "tail -n +2 /proc/sysvipc/msg; tail -n +2 /proc/sysvipc/shm; ls /dev/mqueue")
	if strings.TrimSpace(out) != "" {
		t.Fatalf("host IPC objects visible inside:\n%s", out)
	}
}

// A new network namespace has lo, up, and nothing else.
func TestNetworkIsLoopbackOnly(t *testing.T) {
	out := sh(t, "ls /sys/class/net; cat /sys/class/net/lo/operstate /sys/class/net/lo/flags")
	f := strings.Fields(out)
	if len(f) != 3 || f[0] != "lo" {
		t.Fatalf("interfaces inside: %q, want only lo", f)
	}
	if flags, _ := strconv.ParseUint(strings.TrimPrefix(f[2], "0x"), 16, 32); flags&unix.IFF_UP == 0 {
		t.Fatalf("lo is down (flags %s)", f[2])
	}
	// --share net keeps the host's interfaces.
	hostIfs, _ := os.ReadDir("/sys/class/net")
	shared := strings.Fields(sh(t, "ls /sys/class/net", "--share", "net"))
	if len(shared) != len(hostIfs) {
		t.Fatalf("--share net sees %q, host has %d interfaces", shared, len(hostIfs))
	}
	if len(strings.Fields(sh(t, "ls /sys/class/net", "--net", "host"))) != len(hostIfs) {
		t.Fatal("--net host does not see the host's interfaces")
	}
}

// Each namespace is new by default, and --share keeps the named ones.
func TestNamespacesNewAndShared(t *testing.T) {
	names := []string{"pid", "net", "uts", "ipc", "cgroup", "time", "user", "mnt"}
	host := map[string]string{}
	for _, n := range names {
		l, err := os.Readlink("/proc/self/ns/" + n)
		if err != nil {
			t.Fatal(err)
		}
		host[n] = l
	}
	script := ""
	for _, n := range names {
		script += "readlink /proc/self/ns/" + n + ";"
	}
	check := func(shared map[string]bool, flags ...string) {
		t.Helper()
		got := strings.Fields(sh(t, script, flags...))
		for i, n := range names {
			if same := got[i] == host[n]; same != shared[n] {
				t.Errorf("flags %v: %s namespace shared=%v, want %v", flags, n, same, shared[n])
			}
		}
	}
	check(map[string]bool{})
	check(map[string]bool{"net": true, "ipc": true, "uts": true}, "--share", "net,ipc", "--share", "uts")
	check(map[string]bool{"pid": true, "cgroup": true, "time": true}, "--share", "pid,cgroup,time")
}

// Time namespace offsets show in /proc/uptime.
func TestTimeOffsets(t *testing.T) {
	out := sh(t, "cat /proc/uptime", "--time-offset", "boottime=100000,monotonic=50000")
	up, err := strconv.ParseFloat(strings.Fields(out)[0], 64)
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.ReadFile("/proc/uptime")
	hostUp, _ := strconv.ParseFloat(strings.Fields(string(host))[0], 64)
	if up < hostUp+99990 || up > hostUp+100100 {
		t.Fatalf("uptime inside %.0f, host %.0f: want host+100000", up, hostUp)
	}
	out = sh(t, "cat /proc/uptime", "--time-offset", "boottime=2h")
	if up2, _ := strconv.ParseFloat(strings.Fields(out)[0], 64); up2 < hostUp+7190 || up2 > hostUp+7300 {
		t.Fatalf("--time-offset boottime=2h: uptime %s, host %.0f", out, hostUp)
	}
}
