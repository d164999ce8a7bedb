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

// Which executor runs pid 1 for each kind of run: the fast one (forkinit:
// pid 1 is forked from rbox without exec and still has rbox's command
// line) unless the run needs Go inside the sandbox (initplan.Hooks), which
// takes the re-exec one (initproc: rbox-init).
// Under RBOX_TEST_FORCE_REEXEC (scripts/run-integration's second pass)
// every run takes the re-exec one.
func TestInitKinds(t *testing.T) {
	forced := os.Getenv("RBOX_TEST_FORCE_REEXEC") != ""
	// A port each: the first run's helper may still hold its own as the
	// second starts.
	port, port2 := nettest.FreePort(t, "tcp"), nettest.FreePort(t, "tcp")
	kinds := []struct {
		name  string
		flags []string
		fast  bool
	}{
		{"plain", nil, true},
		{"user-mode network", []string{"--net", "user"}, true},
		{"pasta", []string{"--net", "pasta"}, true},
		{"slirp4netns", []string{"--net", "slirp4netns"}, true},
		{"binds, non-root with an added capability", []string{"--bind", hostDir(t) + ":/work", "--uid", "1000", "--cap-add", "NET_RAW"}, true},
		{"published port through pasta (it forwards itself)", []string{"--net", "pasta", "-p", strconv.Itoa(port) + ":80"}, true},
		{"published port through slirp4netns (the port agent)", []string{"--net", "slirp4netns", "-p", strconv.Itoa(port2) + ":80"}, false},
		{"terminal", []string{"-t"}, true},
		{"overlay", []string{"--overlay"}, false},
		{"shared pid namespace", []string{"--share", "pid"}, true},
		{"CAP_SYS_PTRACE", []string{"--cap-add", "SYS_PTRACE"}, true},
	}
	for _, k := range kinds {
		// The payload's parent is pid 1, whichever pid namespace it is in.
		r := rbox(t, append(k.flags, "--", "sh", "-c", `tr '\0' ' ' </proc/$PPID/cmdline`)...)
		reexec := strings.HasPrefix(r.stdout, "rbox-init ")
		if r.code != 0 || !reexec && !strings.Contains(r.stdout, " -- sh -c ") {
			t.Fatalf("%s: pid 1's command line is %q\n%s", k.name, r.stdout, r)
		}
		want := "fast"
		if forced || !k.fast {
			want = "re-exec"
		}
		got := "fast"
		if reexec {
			got = "re-exec"
		}
		t.Logf("%-55s %s", k.name, got)
		if got != want {
			t.Errorf("%s runs on the %s executor, want %s", k.name, got, want)
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
