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
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/internal/nettest"
	"github.com/rbox-dev/rbox/seccomp"
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

// secretFile writes a secret in a host directory no bind exposes.
func secretFile(t *testing.T) (dir, path string) {
	t.Helper()
	dir = hostDir(t)
	path = filepath.Join(dir, "secret")
	writeFile(t, path, "TOPSECRET\n")
	return dir, path
}

// startSleeper starts a host process of the caller that lives until the
// test ends.
func startSleeper(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

// A host process's root, /proc/<host pid>/root, leads to host files. The
// host's processes are not in the sandbox's pid namespace. With --share pid
// they are, and still the kernel refuses: the payload's user namespace is
// not the one its target lives in. Only on the host does the path work.
func TestEscapeSecretViaHostPIDRoot(t *testing.T) {
	_, secret := secretFile(t)
	path := fmt.Sprintf("/proc/%d/root%s", os.Getpid(), secret)
	mustRefuse(t, "default", probeIn(t, nil, "read", path), "ENOENT")
	mustRefuse(t, "--share pid", probeIn(t, []string{"--share", "pid"}, "read", path), "EACCES")
	r := probeHost(t, nil, "read", path)
	mustSucceed(t, "on the host", r)
	if !strings.Contains(r.stdout, "TOPSECRET") {
		t.Errorf("on the host: the probe did not read the secret:\n%s", r)
	}
}

// A caller's working directory outside the binds does not come along: the
// command starts in / of the sandbox and a relative path finds nothing.
// No option keeps a host working directory; on the host the same relative
// read works.
func TestEscapeSecretViaCwd(t *testing.T) {
	dir, _ := secretFile(t)
	inDir := func(c *exec.Cmd) { c.Dir = dir }
	r := probeInCmd(t, inDir, nil, "read-cwd", "secret")
	mustRefuse(t, "default", r, "ENOENT")
	if items(r)["cwd"] != "/" {
		t.Errorf("working directory inside = %q, want /\n%s", items(r)["cwd"], r)
	}
	r = probeHost(t, inDir, "read-cwd", "secret")
	mustSucceed(t, "on the host", r)
	if !strings.Contains(r.stdout, "TOPSECRET") {
		t.Errorf("on the host: the probe did not read the secret:\n%s", r)
	}
}

// None of rbox's own descriptors (the spec pipe, the console socket, the
// old root, pid 1's /proc and cgroup files) reaches the command, with or
// without a terminal: it holds 0, 1 and 2 alone. TestFDsNotInherited covers
// the caller's descriptors. Weakened: --preserve-fds 1 passes one on, and
// the probe reports it.
func TestEscapeOwnFDs(t *testing.T) {
	for _, flags := range [][]string{nil, {"-t"}} {
		r := probeIn(t, flags, "fds")
		mustRefuse(t, fmt.Sprintf("flags %v", flags), r, "")
		got := items(r)
		for _, fd := range []string{"fd 0", "fd 1", "fd 2"} {
			if got[fd] == "" {
				t.Errorf("flags %v: %s missing:\n%s", flags, fd, r)
			}
		}
		if flags != nil && !strings.HasPrefix(got["fd 0"], "/dev/pts/") {
			t.Errorf("-t: fd 0 is %q, want the sandbox's own terminal", got["fd 0"])
		}
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	r := probeInCmd(t, func(c *exec.Cmd) { c.ExtraFiles = []*os.File{pw} }, []string{"--preserve-fds", "1"}, "fds")
	mustSucceed(t, "--preserve-fds 1", r)
	if !strings.HasPrefix(items(r)["fd 3"], "pipe:") {
		t.Errorf("--preserve-fds 1: fd 3 not reported as the pipe:\n%s", r)
	}
}

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

	// From the host: the re-executed pid 1 of a sandbox with
	// CAP_SYS_PTRACE runs from the sealed copy (its memory then belongs to
	// the caller's user namespace, as the fast path's pid 1's does, which
	// is rbox's own). Only real root may look; the caller itself may not.
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
	if err == nil && os.Getenv("RBOX_TEST_FORCE_REEXEC") == "" && target == rboxBin {
		return // the fast path's pid 1: rbox, forked without exec
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

// A read-only bind cannot be remounted read-write: the command lacks
// CAP_SYS_ADMIN. TestReadOnlyBind covers plain writes. Weakened: with
// --cap-add SYS_ADMIN the remount works and the write reaches the host.
func TestEscapeRemountReadOnlyBind(t *testing.T) {
	dir := hostDir(t)
	mustRefuse(t, "default", probeIn(t, []string{"--ro-bind", dir + ":/data"}, "remount", "/data"), "EPERM")
	if _, err := os.Stat(filepath.Join(dir, "written-by-probe")); err == nil {
		t.Fatal("a file appeared in the read-only bind's source")
	}
	r := probeIn(t, []string{"--ro-bind", dir + ":/data", "--cap-add", "SYS_ADMIN"}, "remount", "/data")
	mustSucceed(t, "--cap-add SYS_ADMIN", r)
	if _, err := os.Stat(filepath.Join(dir, "written-by-probe")); err != nil {
		t.Errorf("--cap-add SYS_ADMIN: the write did not reach the host: %v", err)
	}
}

// A new user and mount namespace inside makes the command root over a copy
// of its mounts, but the kernel locks the read-only flag of every copied
// mount: the remount fails even with --allow-nested (which lets the user
// namespace be made) and --cap-add SYS_ADMIN. By default the user namespace
// itself is refused. Weakened: the same nested remount of a read-write
// bind works, so the probe's nested path is sound.
func TestEscapeNestedRemountReadOnlyBind(t *testing.T) {
	dir := hostDir(t)
	ro := []string{"--ro-bind", dir + ":/data"}
	mustRefuse(t, "default", probeIn(t, ro, "nested-remount", "/data"), "EPERM")
	mustRefuse(t, "--allow-nested", probeIn(t, append(ro, "--allow-nested"), "nested-remount", "/data"), "EPERM")
	mustRefuse(t, "--allow-nested --cap-add SYS_ADMIN",
		probeIn(t, append(ro, "--allow-nested", "--cap-add", "SYS_ADMIN"), "nested-remount", "/data"), "EPERM")
	if _, err := os.Stat(filepath.Join(dir, "written-by-probe")); err == nil {
		t.Fatal("a file appeared in the read-only bind's source")
	}
	r := probeIn(t, []string{"--bind", dir + ":/data", "--allow-nested"}, "nested-remount", "/data")
	mustSucceed(t, "a read-write bind", r)
	if _, err := os.Stat(filepath.Join(dir, "written-by-probe")); err != nil {
		t.Errorf("a read-write bind: the write did not reach the host: %v", err)
	}
}

// A host process is out of reach of signals: its pid does not exist in the
// sandbox. Weakened: with --share pid the kernel decides by uid alone, and
// the command kills a host process of the caller's.
func TestEscapeSignalHostProcess(t *testing.T) {
	sleeper := startSleeper(t)
	pid := strconv.Itoa(sleeper.Process.Pid)
	mustRefuse(t, "default", probeIn(t, nil, "kill", pid, "15"), "ESRCH")
	if err := sleeper.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the host process died: %v", err)
	}
	mustSucceed(t, "--share pid", probeIn(t, []string{"--share", "pid"}, "kill", pid, "15"))
	done := make(chan error, 1)
	go func() { done <- sleeper.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Error("--share pid: the host process survived the signal")
	}
}

// A host process cannot be traced. By default its pid does not exist; with
// --share pid it is visible (a null signal reaches it) but the kernel still
// refuses, as the command's user namespace does not own the host's. No
// option lifts that; on the host the same probe traces it.
func TestEscapePtraceHostProcess(t *testing.T) {
	sleeper := startSleeper(t)
	pid := strconv.Itoa(sleeper.Process.Pid)
	mustRefuse(t, "default", probeIn(t, nil, "ptrace", pid), "ESRCH")
	mustRefuse(t, "--share pid", probeIn(t, []string{"--share", "pid"}, "ptrace", pid), "EPERM")
	mustSucceed(t, "--share pid, null signal", probeIn(t, []string{"--share", "pid"}, "kill", pid, "0"))
	mustSucceed(t, "on the host", probeHost(t, nil, "ptrace", pid))
}

// serve accepts connections on l and greets each with line.
func serve(t *testing.T, l net.Listener, line string) {
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte(line + "\n"))
			c.Close()
		}
	}()
}

// An abstract unix socket of the host belongs to the host's network
// namespace. Weakened: --net host.
func TestEscapeHostAbstractSocket(t *testing.T) {
	name := fmt.Sprintf("rbox-escape-%d", os.Getpid())
	l, err := net.Listen("unix", "@"+name)
	if err != nil {
		t.Fatal(err)
	}
	serve(t, l, "HOST-SOCKET")
	mustRefuse(t, "default", probeIn(t, nil, "connect-abstract", name), "ECONNREFUSED")
	r := probeIn(t, []string{"--net", "host"}, "connect-abstract", name)
	mustSucceed(t, "--net host", r)
	if items(r)["data"] != "HOST-SOCKET" {
		t.Errorf("--net host: connected elsewhere:\n%s", r)
	}
}

// A service on the host's 127.0.0.1 is not the sandbox's loopback.
// Weakened: --net host.
func TestEscapeHostLoopbackTCP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, l, "HOST-TCP")
	addr := l.Addr().String()
	mustRefuse(t, "default", probeIn(t, nil, "connect-tcp", addr), "ECONNREFUSED")
	r := probeIn(t, []string{"--net", "host"}, "connect-tcp", addr)
	mustSucceed(t, "--net host", r)
	if items(r)["data"] != "HOST-TCP" {
		t.Errorf("--net host: connected elsewhere:\n%s", r)
	}
}

// The host's SysV shared memory and message queue, its POSIX message queue
// and shared memory cannot be opened by key or name. TestIPCNamespace
// checks they are not listed. Weakened: --share ipc.
func TestEscapeHostIPCByKey(t *testing.T) {
	key := 0x7b000000 | os.Getpid()&0xffffff
	name := fmt.Sprintf("rbox-escape-%d", os.Getpid())
	shm, err := unix.SysvShmGet(key, 4096, unix.IPC_CREAT|unix.IPC_EXCL|0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.SysvShmCtl(shm, unix.IPC_RMID, nil)
	msq, _, errno := unix.Syscall(unix.SYS_MSGGET, uintptr(key), unix.IPC_CREAT|unix.IPC_EXCL|0o600, 0)
	if errno != 0 {
		t.Fatal(errno)
	}
	defer unix.Syscall(unix.SYS_MSGCTL, msq, unix.IPC_RMID, 0)
	cname, _ := unix.BytePtrFromString(name)
	mq, _, errno := unix.Syscall6(unix.SYS_MQ_OPEN, uintptr(unsafe.Pointer(cname)), unix.O_CREAT|unix.O_EXCL|unix.O_RDWR|unix.O_CLOEXEC, 0o600, 0, 0, 0)
	if errno != 0 {
		t.Fatal(errno)
	}
	unix.Close(int(mq))
	defer unix.Syscall(unix.SYS_MQ_UNLINK, uintptr(unsafe.Pointer(cname)), 0, 0)
	writeFile(t, "/dev/shm/"+name, "HOST-SHM\n")
	defer os.Remove("/dev/shm/" + name)

	want := []string{"sysv shm", "sysv msg", "posix mq", "posix shm"}
	r := probeIn(t, nil, "ipc", strconv.Itoa(key), name)
	mustRefuse(t, "default", r, "")
	for _, item := range want {
		if got := items(r)[item]; got != "ENOENT" {
			t.Errorf("default: %s: %s, want ENOENT", item, got)
		}
	}
	r = probeIn(t, []string{"--share", "ipc"}, "ipc", strconv.Itoa(key), name)
	mustSucceed(t, "--share ipc", r)
	for _, item := range want {
		if got := items(r)[item]; got != "ok" {
			t.Errorf("--share ipc: %s: %s, want ok", item, got)
		}
	}
}

// A key in the caller's session keyring stays out of reach. The default
// filter answers every keyring call with ENOSYS; without the filter, the
// command's session keyring is a fresh one, where the key is not found and
// cannot be read by its serial number. No option shares the caller's
// keyring; on the host the probe finds and reads the key.
func TestEscapeSessionKeyring(t *testing.T) {
	// Keyrings belong to the thread: join a fresh session keyring, add
	// the key and start every process from this thread, which dies with
	// the test.
	runtime.LockOSThread()
	if _, err := unix.KeyctlJoinSessionKeyring(fmt.Sprintf("rbox-escape-%d", os.Getpid())); err != nil {
		t.Fatalf("join a session keyring: %v", err)
	}
	desc := fmt.Sprintf("rbox-escape-key-%d", os.Getpid())
	serial, err := unix.AddKey("user", desc, []byte("KEYSECRET"), unix.KEY_SPEC_SESSION_KEYRING)
	if err != nil {
		t.Fatalf("add_key: %v", err)
	}
	args := []string{"keyring", strconv.Itoa(serial), desc}

	r := probeIn(t, nil, args...)
	mustRefuse(t, "default", r, "")
	got := items(r)
	if got["search session keyring"] != "ENOSYS" || got["read key"] != "ENOSYS" {
		t.Errorf("default: want ENOSYS from the filter:\n%s", r)
	}
	r = probeIn(t, []string{"--seccomp", "unconfined"}, args...)
	mustRefuse(t, "--seccomp unconfined", r, "")
	got = items(r)
	if got["search session keyring"] != "ENOKEY" || got["read key"] != "EACCES" {
		t.Errorf("--seccomp unconfined: want ENOKEY and EACCES from a fresh session keyring:\n%s", r)
	}
	r = probeHost(t, nil, args...)
	mustSucceed(t, "on the host", r)
	if items(r)["data"] != "KEYSECRET" {
		t.Errorf("on the host: the key was not read:\n%s", r)
	}
}

// The host's name cannot be changed: by default the command lacks
// CAP_SYS_ADMIN, and with it and the host's uts namespace (--share uts)
// the kernel still refuses, as that namespace belongs to the host's user
// namespace. TestHostnameIsolation shows a change in the sandbox's own uts
// namespace stays there. Weakened: in its own uts namespace with --cap-add
// SYS_ADMIN the call works (the host's name unchanged), and real root on
// the host may set it (to its current value).
func TestEscapeHostname(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	mustRefuse(t, "default", probeIn(t, nil, "sethostname", "escaped"), "EPERM")
	mustRefuse(t, "--share uts --cap-add SYS_ADMIN", probeIn(t, []string{"--share", "uts", "--cap-add", "SYS_ADMIN"}, "sethostname", "escaped"), "EPERM")
	mustSucceed(t, "--cap-add SYS_ADMIN", probeIn(t, []string{"--cap-add", "SYS_ADMIN"}, "sethostname", "escaped"))
	if now, _ := os.Hostname(); now != host {
		t.Fatalf("host name changed from %q to %q", host, now)
	}
	if isRoot() {
		mustSucceed(t, "on the host as root", probeHost(t, nil, "sethostname", host))
	}
}

// The clocks cannot be set: the filter refuses clock_settime and
// settimeofday with EPERM, and without it the kernel does, as setting them
// needs CAP_SYS_TIME in the host's user namespace, which no option grants.
// Weakened: real root on the host sets them (to the time just read).
func TestEscapeHostClock(t *testing.T) {
	for _, flags := range [][]string{nil, {"--seccomp", "unconfined", "--cap-add", "ALL"}} {
		r := probeIn(t, flags, "settime")
		mustRefuse(t, fmt.Sprintf("flags %v", flags), r, "")
		if got := items(r); got["clock_settime"] != "EPERM" || got["settimeofday"] != "EPERM" {
			t.Errorf("flags %v: want EPERM from both calls:\n%s", flags, r)
		}
	}
	if isRoot() {
		mustSucceed(t, "on the host as root", probeHost(t, nil, "settime"))
	}
}

// A setuid binary gives nothing: every mount is nosuid and the command runs
// with no_new_privs (and the host's ids it would switch to are unmapped).
// Weakened: on the host the same setuid probe runs as its owner.
func TestEscapeSetuid(t *testing.T) {
	setuidProbe := os.Getenv("RBOX_PROBE_SETUID")
	if setuidProbe == "" {
		t.Skip("RBOX_PROBE_SETUID is not set: scripts/run-integration makes it when run as root")
	}
	for _, flags := range [][]string{nil, {"--uid", "1000"}} {
		args := append(append([]string{}, flags...), "--ro-bind", setuidProbe+":/probe-setuid", "--", "/probe-setuid", "euid")
		r := rbox(t, args...)
		mustRefuse(t, fmt.Sprintf("flags %v", flags), r, "effective uid unchanged")
	}
	r := runDirect(t, nil, setuidProbe, "euid")
	mustSucceed(t, "on the host", r)
	if items(r)["euid"] != "65534" {
		t.Errorf("on the host: euid %q, want nobody's", items(r)["euid"])
	}
}

// mknod of a device fails, even with --cap-add MKNOD: devices need
// CAP_MKNOD in the host's user namespace. A fifo, made by the same probe
// call in the same sandbox, works. Weakened: real root on the host makes
// the device.
func TestEscapeMknod(t *testing.T) {
	for _, flags := range [][]string{nil, {"--cap-add", "MKNOD"}} {
		mustRefuse(t, fmt.Sprintf("flags %v", flags), probeIn(t, flags, "mknod", "/tmp/null", "c"), "EPERM")
		mustSucceed(t, fmt.Sprintf("a fifo, flags %v", flags), probeIn(t, flags, "mknod", "/tmp/fifo", "p"))
	}
	if isRoot() {
		mustSucceed(t, "on the host as root", probeHost(t, nil, "mknod", filepath.Join(t.TempDir(), "null"), "c"))
	}
}

// /dev holds the documented device nodes and nothing else (a terminal's
// pty and /dev/console with -t). Weakened: binding the host's /dev.
func TestEscapeDeviceNodes(t *testing.T) {
	allowed := []string{"null", "zero", "full", "random", "urandom", "tty", "pts/ptmx"}
	mustRefuse(t, "default", probeIn(t, nil, append([]string{"devices"}, allowed...)...), "")
	mustRefuse(t, "-t", probeIn(t, []string{"-t"}, append([]string{"devices", "console", "pts/0"}, allowed...)...), "")
	mustSucceed(t, "--bind /dev:/dev", probeIn(t, []string{"--bind", "/dev:/dev"}, append([]string{"devices"}, allowed...)...))
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

// kernelChecksFirst are the calls of the default deny list for which the
// kernel's own first check, a capability in the host's user namespace or
// a sysctl, gives the same EPERM as the filter (or, on kernels built
// without them, ENOSYS for both): the filter is a second lock there, and
// the unconfined run cannot tell the two apart.
var kernelChecksFirst = map[string]bool{
	"kexec_load": true, "kexec_file_load": true, "init_module": true, "finit_module": true,
	"delete_module": true, "acct": true, "swapoff": true, "syslog": true, "lookup_dcookie": true,
	"bpf": true, "open_by_handle_at": true,
}

// Every call of the default deny list gets its documented errno, made by
// number with arguments the kernel would refuse harmlessly. Weakened:
// --seccomp unconfined, where the kernel answers instead, with another
// errno for every call but those in kernelChecksFirst. --cap-add SYS_BOOT
// takes reboot past its capability check to EINVAL.
func TestEscapeSeccompDenyList(t *testing.T) {
	denied := seccomp.DeniedByDefault()
	names := make([]string, 0, len(denied))
	for _, d := range denied {
		names = append(names, d.Syscall)
	}
	args := append([]string{"syscalls"}, names...)
	def := items(probeIn(t, nil, args...))
	unconfined := items(probeIn(t, []string{"--seccomp", "unconfined", "--cap-add", "SYS_BOOT"}, args...))
	tested := 0
	for _, d := range denied {
		want := unix.ErrnoName(d.Errno)
		got, other := def[d.Syscall], unconfined[d.Syscall]
		switch {
		case got == "absent":
			if other != "absent" {
				t.Errorf("%s: absent by default but %q unconfined", d.Syscall, other)
			}
			continue
		case got != want:
			t.Errorf("%s: %q by default, want %s", d.Syscall, got, want)
		case other == want && !kernelChecksFirst[d.Syscall]:
			t.Errorf("%s: %s also with --seccomp unconfined: the probe cannot tell the filter's answer", d.Syscall, other)
		case other == want:
			t.Logf("%s: the kernel too answers %s", d.Syscall, other)
		}
		tested++
	}
	if tested < len(denied)-6 {
		t.Errorf("only %d of %d calls exist on this ABI", tested, len(denied))
	}
}

// A Docker-format profile that refuses mkdir: mkdir fails with its errno,
// other calls work. Weakened: --seccomp unconfined, where mkdir works.
func TestEscapeSeccompDockerProfile(t *testing.T) {
	dir := os.Getenv("RBOX_TESTDATA")
	if dir == "" {
		t.Fatal("RBOX_TESTDATA must name the copy of testdata/seccomp (`scripts/run-integration` sets it)")
	}
	profile := []string{"--seccomp", filepath.Join(dir, "deny-mkdir.json")}
	mustRefuse(t, "deny-mkdir.json", probeIn(t, profile, "mkdir", "/tmp/d"), "EPERM")
	mustSucceed(t, "deny-mkdir.json, a write", probeIn(t, profile, "write", "/tmp/f"))
	out := sh(t, "mkdir /tmp/d 2>/dev/null || echo mkdir-refused; echo data >/tmp/f && cat /tmp/f", profile...)
	if out != "mkdir-refused\ndata\n" {
		t.Errorf("deny-mkdir.json: a shell sees %q", out)
	}
	mustSucceed(t, "--seccomp unconfined", probeIn(t, []string{"--seccomp", "unconfined"}, "mkdir", "/tmp/d"))
}

// The landlock tier (docs/tiers.md): no namespaces, so every attack below
// would reach the host if Landlock, the new session or the seccomp filter
// were missing. Each runs on every way this host ends in the landlock tier
// (tests/tiers_test.go's landlockHosts) and is proven against the flag
// that gives the protection up, or against the probe run on the host.

// A host file outside the binds cannot be read, nor a host process's
// environment through /proc. Weakened: --ro-bind of the file's directory;
// the probe on the host.
func TestEscapeLandlockHostFiles(t *testing.T) {
	dir, secret := secretFile(t)
	sleeper := startSleeper(t)
	environ := fmt.Sprintf("/proc/%d/environ", sleeper.Process.Pid)
	for _, h := range landlockHosts {
		t.Run(h.name, func(t *testing.T) {
			mustRefuse(t, "secret", h.probe(t, nil, "read", secret), "EACCES")
			mustRefuse(t, "environ", h.probe(t, nil, "read", environ), "EACCES")
			mustSucceed(t, "--ro-bind of its directory", h.probe(t, []string{"--ro-bind", dir + ":" + dir}, "read", secret))
		})
	}
	mustSucceed(t, "environ on the host", probeHost(t, nil, "read", environ))
}

// Nothing outside the read-write binds and the private temporary directory
// can be written: not a read-only bind, not an unbound directory the
// caller owns. Weakened: --bind.
func TestEscapeLandlockWrites(t *testing.T) {
	for _, h := range landlockHosts {
		t.Run(h.name, func(t *testing.T) {
			d := hostDir(t)
			mustRefuse(t, "unbound", h.probe(t, nil, "write", d+"/x"), "EACCES")
			mustRefuse(t, "--ro-bind", h.probe(t, []string{"--ro-bind", d + ":" + d}, "write", d+"/x"), "EACCES")
			mustRefuse(t, "mkdir", h.probe(t, []string{"--ro-bind", d + ":" + d}, "mkdir", d+"/sub"), "EACCES")
			mustSucceed(t, "--bind", h.probe(t, []string{"--bind", d + ":" + d}, "write", d+"/x"))
		})
	}
}

// A host process of the caller's cannot be signalled or traced (Landlock
// ABI 6 scopes signals; ptrace is limited to the sandbox's own domain).
// Weakened: the probe on the host.
func TestEscapeLandlockHostProcess(t *testing.T) {
	sleeper := startSleeper(t)
	pid := strconv.Itoa(sleeper.Process.Pid)
	for _, h := range landlockHosts {
		t.Run(h.name, func(t *testing.T) {
			mustRefuse(t, "kill", h.probe(t, nil, "kill", pid, "15"), "EPERM")
			mustRefuse(t, "ptrace", h.probe(t, nil, "ptrace", pid), "EPERM")
		})
	}
	if err := sleeper.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the host process died: %v", err)
	}
	mustSucceed(t, "ptrace on the host", probeHost(t, nil, "ptrace", pid))
	mustSucceed(t, "kill on the host", probeHost(t, nil, "kill", pid, "15"))
}

// The host's abstract unix sockets are out of reach (Landlock ABI 6), with
// --net host too; its TCP services without --net host (ABI 4). Weakened:
// the probe on the host; --net host for TCP.
func TestEscapeLandlockNetwork(t *testing.T) {
	name := fmt.Sprintf("rbox-escape-ll-%d", os.Getpid())
	ul, err := net.Listen("unix", "@"+name)
	if err != nil {
		t.Fatal(err)
	}
	serve(t, ul, "HOST-SOCKET")
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, tl, "HOST-TCP")
	addr := tl.Addr().String()
	// Landlock's scope refuses the connection (EPERM); below ABI 9 the
	// tier's own filter refuses the AF_UNIX socket before (EACCES).
	abstractErr := "EPERM"
	if landlockABI() < 9 {
		abstractErr = "EACCES"
	}
	for _, h := range landlockHosts {
		t.Run(h.name, func(t *testing.T) {
			mustRefuse(t, "abstract", h.probe(t, nil, "connect-abstract", name), abstractErr)
			mustRefuse(t, "abstract, --net host", h.probe(t, []string{"--net", "host"}, "connect-abstract", name), abstractErr)
			mustRefuse(t, "tcp", h.probe(t, nil, "connect-tcp", addr), "EACCES")
			r := h.probe(t, []string{"--net", "host"}, "connect-tcp", addr)
			mustSucceed(t, "tcp, --net host", r)
			if items(r)["data"] != "HOST-TCP" {
				t.Errorf("--net host: connected elsewhere:\n%s", r)
			}
		})
	}
	mustSucceed(t, "abstract on the host", probeHost(t, nil, "connect-abstract", name))
}

// landlockABI is the kernel's Landlock ABI version.
func landlockABI() int {
	v, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	if errno != 0 {
		return 0
	}
	return int(v)
}

// A host service on a pathname unix socket (a session bus, a container
// engine's socket) is out of reach, in a directory the caller owns and
// whatever the binds: below Landlock ABI 9 the tier refuses AF_UNIX
// sockets altogether. Weakened: the probe on the host.
func TestEscapeLandlockUnixSocket(t *testing.T) {
	dir := hostDir(t)
	path := filepath.Join(dir, "service.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	serve(t, l, "HOST-UNIX")
	for _, h := range landlockHosts {
		t.Run(h.name, func(t *testing.T) {
			mustRefuse(t, "unbound", h.probe(t, nil, "connect-unix", path), "EACCES")
			mustRefuse(t, "--ro-bind", h.probe(t, []string{"--ro-bind", dir + ":" + dir}, "connect-unix", path), "EACCES")
		})
	}
	r := probeHost(t, nil, "connect-unix", path)
	mustSucceed(t, "on the host", r)
	if items(r)["data"] != "HOST-UNIX" {
		t.Errorf("on the host: connected elsewhere:\n%s", r)
	}
}

// Keystrokes pushed with TIOCSTI never reach the caller's terminal: the
// command runs in a session of its own whose controlling terminal is a
// pseudo-terminal rbox opened, even with no seccomp filter (then the probe
// types into that one). Weakened: the probe on the terminal itself.
func TestEscapeLandlockTIOCSTI(t *testing.T) {
	probe := probeBin(t)
	injectDirectly(t, probe)
	for _, flags := range [][]string{{}, {"--seccomp", "unconfined"}} {
		cmd := exec.Command(rboxBin, append(flags, "--isolation", "landlock", "--ro-bind", probe+":"+probe, "--", probe, "tiocsti", "echo INJECTED\n")...)
		_, tty, out := interactive(t, cmd)
		waitExit(t, cmd, 10*time.Second)
		time.Sleep(100 * time.Millisecond)
		if n := pendingInput(t, tty); n != 0 {
			t.Errorf("rbox %v: %d bytes injected into the caller's terminal; output %q", flags, n, out.String())
		}
		if len(flags) == 0 && !strings.Contains(out.String(), "refused: EPERM") {
			t.Errorf("rbox %v: want the probe refused by the filter, got %q", flags, out.String())
		}
	}
}

// A writable bind lets the sandbox leave a symlink (data -> the caller's
// secret directory) for a later run to follow: binding dir/data is refused
// with a line naming the link and its target, and nothing runs. Weakened:
// binding the target by its own name, on purpose, exposes it.
func TestEscapeSymlinkedBindSource(t *testing.T) {
	secretDir, _ := secretFile(t)
	shared := hostDir(t)
	if r := rbox(t, "-q", "--bind", shared+":/shared", "--", "ln", "-s", secretDir, "/shared/data"); r.code != 0 {
		t.Fatalf("the sandbox could not plant the link:\n%s", r)
	}
	link := filepath.Join(shared, "data")
	r := probeIn(t, []string{"--bind", link + ":/data"}, "read", "/data/secret")
	if r.code != 125 || strings.Contains(r.stdout, "TOPSECRET") {
		t.Fatalf("a planted symlink was followed:\n%s", r)
	}
	for _, want := range []string{"source " + link + " is a symlink to " + secretDir, "--bind " + secretDir + ":/data"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr does not say %q:\n%s", want, r)
		}
	}
	r = probeIn(t, []string{"--bind", secretDir + ":/data"}, "read", "/data/secret")
	mustSucceed(t, "the target bound on purpose", r)
	if !strings.Contains(r.stdout, "TOPSECRET") {
		t.Errorf("the target bound on purpose: the probe did not read the secret:\n%s", r)
	}
}

// rbox bwrap builds its root from the caller's ordered mounts, the later
// ones inside earlier binds. A symlink the command (or anyone) planted in
// a bound directory, pointing at a host path, must not send a later mount
// point onto the host: destinations are resolved inside the new root.
// Weakened: the host path is bound into the sandbox at the same place, so
// the same command line reaches it, as it must.
func TestEscapeBwrapDestThroughSymlink(t *testing.T) {
	work, target := hostDir(t), hostDir(t)
	if err := os.Symlink(target, filepath.Join(work, "link")); err != nil {
		t.Fatal(err)
	}
	run := func(extra ...string) result {
		args := append([]string{"bwrap", "--unshare-user", "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin",
			"--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64"}, extra...)
		args = append(args, "--bind", work, "/w", "--dir", "/w/link/planted", "--", "true")
		return rbox(t, args...)
	}
	// The symlink leads nowhere in the sandbox: the setup fails, naming
	// it.
	if r := run(); r.code != 1 || !strings.Contains(r.stderr, "/w/link is a symlink") {
		t.Fatalf("rbox bwrap: %s", r)
	}
	if _, err := os.Stat(filepath.Join(target, "planted")); err == nil {
		t.Fatalf("a mount point was made on the host through a symlink in a bound directory")
	}
	if r := run("--bind", target, target); r.code != 0 {
		t.Fatalf("weakened: %s", r)
	}
	if _, err := os.Stat(filepath.Join(target, "planted")); err != nil {
		t.Fatalf("weakened: the directory should reach the host through the bound target: %v", err)
	}
}

// Through rbox's egress proxies, which connect from the host, the host's
// loopback stays closed however it is written (a name that resolves to it,
// 127.0.0.1, 0.0.0.0, ::ffff:127.0.0.1, ::1), even when the rules allow
// every address; a direct connection reaches the sandbox's own loopback.
// Weakened: --allow-host-loopback.
func TestEscapeEgressHostLoopback(t *testing.T) {
	addr, n := egressServer(t, "127.0.0.1:0", "host")
	p := portOf(addr)
	flags := []string{"--net", "user", "--cap-add", "ALL", "--allow-net", "loop.test,0.0.0.0/0,::/0"}
	checks := []string{"connect loop.test:" + p, "connect 127.0.0.1:" + p, "connect 0.0.0.0:" + p,
		"connect [::ffff:127.0.0.1]:" + p, "socks 127.0.0.1:" + p, "socks loop.test:" + p, "raw 127.0.0.1:" + p}
	got, _ := egressRun(t, "loop.test=127.0.0.1", flags, checks...)
	for _, c := range checks[:4] {
		if !strings.HasPrefix(got[c], "status 403") || !strings.Contains(got[c], "loopback") {
			t.Errorf("%s: got %q, want a 403 about the host's loopback", c, got[c])
		}
	}
	for _, c := range checks[4:6] {
		if !strings.Contains(got[c], "not allowed by ruleset") && !strings.Contains(got[c], "connection refused") {
			t.Errorf("%s: got %q, want a SOCKS5 refusal", c, got[c])
		}
	}
	if got[checks[6]] != "err "+syscall.ECONNREFUSED.Error() {
		t.Errorf("%s: got %q, want the sandbox's own loopback to refuse", checks[6], got[checks[6]])
	}
	// [::1]: the host's IPv6 loopback, where nothing listens; refused
	// before any attempt.
	got, _ = egressRun(t, "", flags, "connect [::1]:"+p)
	if g := got["connect [::1]:"+p]; !strings.HasPrefix(g, "status 403") {
		t.Errorf("connect [::1]: got %q", g)
	}
	if n.Load() != 0 {
		t.Fatalf("the host's loopback server got %d connections", n.Load())
	}
	got, _ = egressRun(t, "loop.test=127.0.0.1", append(flags, "--allow-host-loopback"), checks[:6]...)
	for _, c := range checks[:6] {
		if got[c] != "ok host:ping" {
			t.Errorf("--allow-host-loopback: %s: got %q", c, got[c])
		}
	}
}

// Root in an egress sandbox, even with every capability, cannot give
// itself a way out: it may add routes and bring up interfaces, but its
// network namespace has no link to anywhere, so the host's own address
// stays unreachable. Weakened: --net host, where the same probe connects.
func TestEscapeEgressNetAdmin(t *testing.T) {
	hostIP := hostAddress(t)
	addr, _ := egressServer(t, net.JoinHostPort(hostIP, "0"), "host")
	script := "ip route add default dev lo && ip link add eg0 type veth peer name eg1 && ip link set eg0 up && ip link set eg1 up" +
		" && ip addr add 10.200.0.2/24 dev eg0 && ip route add " + hostIP + "/32 via 10.200.0.1 dev eg0 && echo 'setup: done'"
	got, r := egressRunAfter(t, "", script, []string{"--net", "user", "--cap-add", "ALL", "--allow-net", "example.com"}, "raw "+addr)
	if !strings.Contains(r.stdout, "setup: done") {
		t.Fatalf("root could not change its network namespace (the attack did not run):\n%s", r)
	}
	if g := got["raw "+addr]; strings.HasPrefix(g, "ok") || !strings.HasPrefix(g, "err") {
		t.Errorf("raw connection to the host's %s: got %q", addr, g)
	}
	got, _ = egressRun(t, "", []string{"--net", "host"}, "raw "+addr)
	if g := got["raw "+addr]; g != "ok host:ping" {
		t.Errorf("--net host: raw connection to %s: got %q", addr, g)
	}
}

// hostAddress is an IPv4 address of one of the host's interfaces other
// than the loopback.
func hostAddress(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil {
			return ipn.IP.String()
		}
	}
	t.Fatal("the host has no IPv4 address besides its loopback")
	return ""
}

// rbox exec's joining process, between joining the sandbox and executing
// the command, is out of the sandbox's reach (runc CVE-2016-9962): a probe
// holding CAP_SYS_PTRACE inside watches for it and tries ptrace and its
// /proc fd, exe, cwd and mem. A long PATH keeps each joining process a few
// milliseconds in that state. The same attacks on the exec'd commands once
// they run (an ordinary process of the sandbox) must work: that is the
// weakened setup showing the probe would notice.
func TestEscapeExecJoiningProcess(t *testing.T) {
	ns := newNamedState(t)
	ns.ok("run", "-d", "--name", "watch", "--cap-add", "SYS_PTRACE", "--ro-bind", probeBin(t)+":/probe", "--",
		"/probe", "watch-joiners", "8", filepath.Base(rboxBin), "sleep")
	var long []string
	for i := 0; i < 1000; i++ {
		long = append(long, fmt.Sprintf("/no/such/dir/%d", i))
	}
	path := "PATH=" + strings.Join(append(long, "/usr/bin", "/bin"), ":")
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		if r := ns.rbox("exec", "--env", path, "watch", "--", "sleep", "0.05"); r.code != 0 {
			t.Fatalf("exec %d: %s", i, r)
		}
	}
	if got := ns.ok("wait", "watch"); got != "0\n" {
		t.Fatalf("the probe ended with %q: %s", got, ns.ok("logs", "watch"))
	}
	m := items(result{stdout: ns.ok("logs", "watch")})
	t.Logf("probe: %v", m)
	if m["joining-seen"] == "0" || m["exec-seen"] == "0" {
		t.Fatalf("the probe never saw a joining process or an exec'd command: %v", m)
	}
	for _, what := range []string{"fd", "exe", "cwd", "mem", "ptrace"} {
		if m["joining-"+what] != "0" {
			t.Errorf("the sandbox reached a joining process's %s %s times", what, m["joining-"+what])
		}
	}
	for _, what := range []string{"fd", "exe", "cwd", "mem"} {
		if m["exec-"+what] == "0" {
			t.Errorf("weakened setup: the probe never reached an exec'd command's %s, so it cannot tell", what)
		}
	}
	ns.ok("rm", "watch")
}

// A sandbox given the state directory (a user's --bind) plants symlinks in
// it: for another sandbox's entry, pointing at a host directory, and for
// its own log, pointing at a secret. rbox follows neither: rm does not
// remove the directory's files, logs does not print the secret, ps goes on.
// Weakened setup: a plain reader that follows links (os.ReadFile,
// os.ReadDir) is redirected by the same links.
func TestEscapeStateSymlink(t *testing.T) {
	ns := newNamedState(t)
	victim := hostDir(t)
	writeFile(t, filepath.Join(victim, "precious"), "keep me")
	_, secret := secretFile(t)
	state := filepath.Join(ns.xdg, "rbox")
	ns.ok("run", "--name", "other", "--", "true")
	// The sandbox plants the links, then waits.
	script := fmt.Sprintf(`ln -s %s /state/sandboxes/evil && rm /state/sandboxes/planter/log && ln -s %s /state/sandboxes/planter/log && `+
		`rm -r /state/sandboxes/other && ln -s %s /state/sandboxes/other && echo planted > /tmp/done; exec sleep 300`, victim, secret, victim)
	ns.ok("run", "-d", "--name", "planter", "--bind", state+":/state", "--", "sh", "-c", script)
	waitFor(t, "the links", 5*time.Second, func() bool {
		// other is replaced last: wait for its link, not the directory.
		other, err := os.Lstat(filepath.Join(state, "sandboxes", "other"))
		fi, err2 := os.Lstat(filepath.Join(state, "sandboxes", "planter", "log"))
		return err == nil && err2 == nil && fi.Mode()&os.ModeSymlink != 0 && other.Mode()&os.ModeSymlink != 0
	})
	// Weakened: a reader that follows links gets the secret and the files.
	if b, err := os.ReadFile(filepath.Join(state, "sandboxes", "planter", "log")); err != nil || !strings.Contains(string(b), "TOPSECRET") {
		t.Fatalf("weakened setup: the planted log link does not lead to the secret: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(state, "sandboxes", "evil", "precious")); err != nil {
		t.Fatalf("weakened setup: the planted entry does not lead to the host directory: %v", err)
	}
	for _, name := range []string{"evil", "other"} {
		r := ns.rbox("rm", "-f", name)
		if r.code == 0 {
			t.Errorf("rm %s through a planted link succeeded: %s", name, r)
		}
	}
	if b, err := os.ReadFile(filepath.Join(victim, "precious")); err != nil || string(b) != "keep me" {
		t.Errorf("the host directory behind a planted link was changed: %q %v", b, err)
	}
	r := ns.rbox("logs", "planter")
	if r.code == 0 || strings.Contains(r.stdout, "TOPSECRET") {
		t.Errorf("logs followed the planted link: %s", r)
	}
	listed := ns.ps(false)
	if _, evil := listed["evil"]; !listed["planter"].Running || evil || len(listed) != 1 {
		t.Errorf("ps with planted links: %v", listed)
	}
	ns.ok("stop", "-t", "0", "planter")
	ns.ok("rm", "planter")
	for _, name := range []string{"evil", "other"} {
		_ = os.Remove(filepath.Join(state, "sandboxes", name))
	}
}

// rbox exec carries neither the caller's descriptors nor its working
// directory into the sandbox: the exec'd probe holds 0, 1 and 2 alone and
// starts at the sandbox command's directory, where the caller's secret is
// not. Weakened: the same probe run on the host with the same descriptor
// and directory sees both.
func TestEscapeExecFDsAndCwd(t *testing.T) {
	ns := newNamedState(t)
	ns.ok("run", "-d", "--name", "fds", "--ro-bind", probeBin(t)+":/probe", "--", "sleep", "300")
	dir, _ := secretFile(t)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	prepare := func(c *exec.Cmd) { ns.env(c); c.Dir = dir; c.ExtraFiles = []*os.File{pw} }
	r := rboxCmd(t, prepare, "exec", "fds", "--", "/probe", "fds")
	mustRefuse(t, "exec", r, "")
	if got := items(r); got["fd 3"] != "" || got["fd 0"] == "" {
		t.Errorf("exec: descriptors other than 0-2 reached the command:\n%s", r)
	}
	r = rboxCmd(t, prepare, "exec", "fds", "--", "/probe", "read-cwd", "secret")
	mustRefuse(t, "exec", r, "ENOENT")
	if items(r)["cwd"] != "/" {
		t.Errorf("exec: working directory inside = %q, want /\n%s", items(r)["cwd"], r)
	}
	h := probeHost(t, func(c *exec.Cmd) { c.Dir = dir; c.ExtraFiles = []*os.File{pw} }, "fds")
	mustSucceed(t, "on the host", h)
	if !strings.HasPrefix(items(h)["fd 3"], "pipe:") {
		t.Errorf("on the host: fd 3 not seen:\n%s", h)
	}
	if h := probeHost(t, func(c *exec.Cmd) { c.Dir = dir }, "read-cwd", "secret"); !strings.Contains(h.stdout, "TOPSECRET") {
		t.Errorf("on the host: the secret was not read:\n%s", h)
	}
	ns.ok("rm", "-f", "fds")
}

// Root with every capability on one network cannot reach another
// network's sandbox, however it routes or readdresses its eth0 (the
// networks' namespaces have no link between them), nor the host's loopback
// through the network's slirp4netns. Weakened: the same script on the
// victim's own network reaches it, and --net user --allow-host-loopback
// reaches the host's loopback.
func TestEscapeBridgeOtherNetwork(t *testing.T) {
	ns := newNetworkState(t)
	ns.ok("network", "create", "dev")
	ns.ok("network", "create", "other")
	ns.ok("run", "-d", "--name", "db", "--net", "dev", "--", "sh", "-c",
		"while true; do echo secret-of-db | busybox nc -l -p 5432; done")
	loop, hits := egressServer(t, "127.0.0.1:0", "hostloop")
	_, loopPort, _ := net.SplitHostPort(loop)
	attack := "ip route add 10.89.0.0/24 dev eth0 2>/dev/null; busybox nc -w 2 10.89.0.2 5432 </dev/null; " +
		"ip addr flush dev eth0 && ip addr add 10.89.0.99/24 dev eth0 && ip route add default dev eth0 && echo readdressed; " +
		"busybox nc -w 2 10.89.0.2 5432 </dev/null; echo ping | timeout 3 busybox nc -w 2 10.0.2.2 " + loopPort + "; true"
	r := ns.rbox("run", "--net", "other", "--cap-add", "ALL", "--", "sh", "-c", attack)
	if !strings.Contains(r.stdout, "readdressed") {
		t.Fatalf("the attack did not run (root could not readdress eth0):\n%s", r)
	}
	if strings.Contains(r.stdout, "secret-of-db") || hits.Load() != 0 {
		t.Errorf("a sandbox on another network reached db or the host's loopback (%d connections):\n%s", hits.Load(), r)
	}
	// Weakened: on db's own network the same probe reaches it.
	w := ns.rbox("run", "--net", "dev", "--", "sh", "-c", "busybox nc -w 2 10.89.0.2 5432 </dev/null")
	if !strings.Contains(w.stdout, "secret-of-db") {
		t.Errorf("weakened setup: db not reached from its own network:\n%s", w)
	}
	w = ns.rbox("run", "--net", "user", "--allow-host-loopback", "--", "sh", "-c", "echo ping | timeout 3 busybox nc -w 2 10.0.2.2 "+loopPort+"; true")
	if !strings.Contains(w.stdout, "hostloop") {
		t.Errorf("weakened setup: the host's loopback not reached with --allow-host-loopback:\n%s", w)
	}
}

// bwrap's --userns2: the sandbox is built in the caller's user namespace U
// and its command runs in U2, nested in U. Its namespaces stay U's, so
// even with every capability in U2 the command cannot undo the setup: a
// read-only tmpfs stays read-only. Weakened: without --userns2 the command
// holds those capabilities in U, which owns its mount namespace, and the
// remount works.
func TestEscapeBwrapUserns2(t *testing.T) {
	h := newNSHolder(t, false)
	run := func(extra ...string) bwrapRun {
		args := append(append(append([]string{"--userns", "3", "--unshare-pid"}, extra...), "--cap-add", "ALL"), usrRoot...)
		args = append(args, "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/t", "--remount-ro", "/t",
			"sh", "-c", "mount -o remount,bind,rw,nosuid,nodev /t 2>/dev/null && echo rw || echo ro")
		return runWithFiles(t, []string{rboxBin, "bwrap"}, h.files(), args...)
	}
	if r := run("--userns2", "5"); r.code != 0 || r.stdout != "ro\n" {
		t.Fatalf("--userns2: %+v", r)
	}
	if r := run(); r.code != 0 || r.stdout != "rw\n" {
		t.Fatalf("weakened (no --userns2): %+v", r)
	}
}

// Root with every capability in an --allow-net sandbox on a network gives
// itself a default route through the network's gateway and tries a raw TCP
// connection to the host's address and a DNS question to the gateway's
// relay (a way to carry data out in names): the holder's bridge filter
// drops both. Weakened: a sandbox on the same network without --allow-net
// reaches the same server and gets an answer from the same relay.
func TestEscapeBridgeAllowNet(t *testing.T) {
	ns := newNetworkState(t)
	ns.ok("network", "create", "dev")
	addr, hits := egressServer(t, net.JoinHostPort(hostAddress(t), "0"), "host")
	// The gateway's responder answers db itself (10.89.0.2) and relays
	// other names: an answer about db shows the relay is reachable,
	// whatever the host's own DNS does.
	ns.ok("run", "-d", "--name", "db", "--net", "dev", "--", "sleep", "300")
	attack := "ip route add default via 10.89.0.1 dev eth0 && echo 'setup: done'; " +
		"busybox nslookup -timeout=2 db 10.89.0.1 2>&1 | grep -q 'Address: *10.89.0.2' && echo 'dns: answered'"
	got, r := egressRunEnv(t, []string{"XDG_RUNTIME_DIR=" + ns.xdg}, "", attack,
		[]string{"--net", "dev", "--cap-add", "ALL", "--allow-net", "example.com"}, "raw "+addr)
	if !strings.Contains(r.stdout, "setup: done") {
		t.Fatalf("root could not add a default route (the attack did not run):\n%s", r)
	}
	if g := got["raw "+addr]; !strings.HasPrefix(g, "err") || strings.Contains(r.stdout, "dns: answered") || hits.Load() != 0 {
		t.Errorf("a restricted sandbox got out: raw connection %q, %d connections on the host, DNS:\n%s", g, hits.Load(), r.stdout)
	}
	got, r = egressRunEnv(t, []string{"XDG_RUNTIME_DIR=" + ns.xdg}, "", attack, []string{"--net", "dev", "--cap-add", "ALL"}, "raw "+addr)
	if g := got["raw "+addr]; g != "ok host:ping" || !strings.Contains(r.stdout, "dns: answered") {
		t.Errorf("weakened setup (no --allow-net): raw connection %q, DNS:\n%s", g, r.stdout)
	}
}

// The degraded tier (tests/tiers_degraded_test.go): what Landlock closes
// where the host refuses a namespace.

// Without a network namespace: the host's interfaces, and TCP to the
// host refused by Landlock (ABI 4+) while UDP, which the line says is not
// enforced, gets through. Weakened, with the host's network asked for
// (--net host), the same TCP connection is made: the check can see one.
func TestEscapeDegradedNoNetNS(t *testing.T) {
	echoes := nettest.StartEchoes(t, "host:")
	tcpHits := &echoes.TCPHits
	job := fmt.Sprintf("dial 127.0.0.1:%d 127.0.0.1:%d", echoes.TCPPort, echoes.UDPPort)

	r := rboxCmd(t, onHost(t, "nonetns"), probeArgs(t, job)...)
	if r.code != 0 {
		t.Fatal(r)
	}
	degradedLine(t, r, "no network namespace (clone with CLONE_NEWNET: operation not permitted): the host's is shared")
	if !strings.Contains(r.stderr, "refuses TCP bind and connect, abstract unix sockets outside it") || !strings.Contains(r.stderr, "not enforced: UDP") {
		t.Errorf("the line does not say what Landlock refuses and what it leaves:\n%s", r)
	}
	if !strings.Contains(r.stdout, "tcp err") || tcpHits.Load() != 0 {
		t.Errorf("TCP reached the host's loopback from a sandbox without --net host (server saw %d):\n%s", tcpHits.Load(), r)
	}
	if !strings.Contains(r.stdout, "udp ok host:ping") {
		t.Errorf("UDP, said to be unenforced, did not get through:\n%s", r)
	}
	weak := rboxCmd(t, onHost(t, "nonetns"), append([]string{"--net", "host"}, probeArgs(t, job)...)...)
	if weak.code != 0 || !strings.Contains(weak.stdout, "tcp ok host:ping") {
		t.Errorf("weakened (--net host): the probe did not reach the host's TCP server, so the test proves nothing:\n%s", weak)
	}
	if strings.Contains(weak.stderr, "refuses TCP") {
		t.Errorf("--net host asked for the host's network, yet TCP is refused:\n%s", weak)
	}

	// The host's interfaces; confined as usual.
	host, err := os.ReadDir("/sys/class/net")
	if err != nil {
		t.Fatal(err)
	}
	r = rboxCmd(t, onHost(t, "nonetns"), "--", "sh", "-c", "ls /sys/class/net | wc -l; grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status | tr -d '\\t'")
	if f := strings.Fields(r.stdout); r.code != 0 || len(f) != 3 || f[0] != strconv.Itoa(len(host)) || f[1] != "NoNewPrivs:1" || f[2] != "Seccomp:2" {
		t.Errorf("want the host's %d interfaces, no_new_privs and seccomp, got\n%s", len(host), r)
	}
}

// Without a pid namespace: the host's processes are listed, but Landlock
// (ABI 6+) refuses signals to them; the command's background processes
// end with it. Weakened, with the pid namespace shared on a host that has
// one (--share pid, no Landlock), the same signal is delivered.
func TestEscapeDegradedNoPIDNS(t *testing.T) {
	pid := hostSleeper(t)
	script := "test -d /proc/" + pid + " && echo listed; kill -0 " + pid + " && echo signalled; sleep 61.5 & echo bg=$!"
	r := rboxCmd(t, onHost(t, "nopidns"), "--", "sh", "-c", script)
	degradedLine(t, r, "no pid namespace (clone with CLONE_NEWPID: operation not permitted): the host's is shared")
	if !strings.Contains(r.stdout, "listed") || strings.Contains(r.stdout, "signalled") || !strings.Contains(r.stderr, "Operation not permitted") {
		t.Errorf("want the host's process listed and the signal to it refused, got\n%s", r)
	}
	if !strings.Contains(r.stderr, "refuses signals outside it") {
		t.Errorf("the line does not say signals are refused:\n%s", r)
	}
	for _, l := range strings.Split(r.stdout, "\n") {
		if v, ok := strings.CutPrefix(l, "bg="); ok {
			waitFor(t, "the background sleep to end with the sandbox", 5*time.Second, func() bool {
				_, err := os.Stat("/proc/" + v)
				return err != nil
			})
		}
	}
	weak := rboxCmd(t, nil, "--share", "pid", "--", "sh", "-c", script)
	if !strings.Contains(weak.stdout, "signalled") {
		t.Errorf("weakened (--share pid): the signal did not reach the host's process, so the test proves nothing:\n%s", weak)
	}
}

// Landlock's TCP rights miss MPTCP sockets and TCP Fast Open (which
// connects from sendto): without a network namespace, the degraded and
// landlock tiers' seccomp program refuses both, and the host's TCP server
// sees nothing.
// Weakened, with the host's network asked for (--net host: no
// compensation), both reach it, so the check can see them.
func TestEscapeDegradedMPTCP(t *testing.T) {
	echoes := nettest.StartEchoes(t, "host:")
	hits, port := &echoes.TCPHits, echoes.TCPPort
	script := fmt.Sprintf(`
import socket
for name, proto, fastopen in (("mptcp", 262, False), ("fastopen", 0, True)):
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, proto)
        if fastopen:
            s.sendto(b"x", socket.MSG_FASTOPEN, ("127.0.0.1", %d))
        else:
            s.connect(("127.0.0.1", %d))
        print(name, "connected")
    except OSError as e:
        print(name, "refused:", e.strerror)
`, port, port)
	r := rboxCmd(t, onHost(t, "nonetns"), "--", "python3", "-c", script)
	if r.code != 0 || !strings.Contains(r.stdout, "mptcp refused") || !strings.Contains(r.stdout, "fastopen refused") || hits.Load() != 0 {
		t.Errorf("MPTCP or TCP Fast Open reached the host's server from the degraded tier (server saw %d):\n%s", hits.Load(), r)
	}
	if !strings.Contains(r.stderr, "a seccomp program refuses MPTCP sockets and TCP Fast Open") {
		t.Errorf("the tier line does not say what the seccomp program refuses:\n%s", r)
	}
	// The landlock tier, in the host's network namespace too.
	r = rboxCmd(t, nil, "--isolation", "landlock", "--", "/usr/bin/python3", "-c", script)
	if r.code != 0 || !strings.Contains(r.stdout, "mptcp refused") || !strings.Contains(r.stdout, "fastopen refused") || hits.Load() != 0 {
		t.Errorf("MPTCP or TCP Fast Open reached the host's server from the landlock tier (server saw %d):\n%s", hits.Load(), r)
	}
	weak := rboxCmd(t, onHost(t, "nonetns"), "--net", "host", "--", "python3", "-c", script)
	if !strings.Contains(weak.stdout, "mptcp connected") || !strings.Contains(weak.stdout, "fastopen connected") {
		t.Errorf("weakened (--net host): MPTCP and TCP Fast Open did not connect, so the test proves nothing:\n%s", weak)
	}
}

// Without a pid namespace (the degraded tier's, the landlock tier), the
// calls that reach another process with no more than a uid check are
// refused: prlimit on a host process (which could set its CPU limit to
// kill it) and setpriority on the caller's every process. Weakened,
// --share pid on a host with pid namespaces (no compensation) changes the
// host process's limit.
func TestEscapeDegradedPrlimit(t *testing.T) {
	pid := hostSleeper(t)
	script := "prlimit --pid " + pid + " --nofile=77:77 && echo limited; renice -n 5 -u $(id -u) >/dev/null && echo reniced-user; nice -n 5 echo reniced-self"
	limit := func() string {
		b, _ := os.ReadFile("/proc/" + pid + "/limits")
		return string(b)
	}
	for _, how := range [][]string{{"nopidns"}, {"", "--isolation", "landlock"}} {
		r := rboxCmd(t, onHost(t, how[0]), append(how[1:], "--", "sh", "-c", script)...)
		if strings.Contains(r.stdout, "limited") || strings.Contains(limit(), " 77 ") || strings.Contains(r.stdout, "reniced-user") || !strings.Contains(r.stdout, "reniced-self") {
			t.Errorf("%v: want prlimit on a host process and renice of every process of the uid refused, renice of itself allowed, got\n%s", how, r)
		}
	}
	// (Without the renice of every process of the uid: as root, that
	// would be every root process on the host.)
	weak := rboxCmd(t, nil, "--share", "pid", "--", "sh", "-c", "prlimit --pid "+pid+" --nofile=77:77 && echo limited")
	if !strings.Contains(weak.stdout, "limited") || !strings.Contains(limit(), " 77 ") {
		t.Errorf("weakened (--share pid): prlimit did not reach the host process, so the test proves nothing:\n%s\n%s", weak, limit())
	}
}

// hostSleeper starts a process on the host, outside any sandbox, killed at
// the test's end, and returns its pid.
func hostSleeper(t *testing.T) string {
	t.Helper()
	sleeper := exec.Command("sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })
	return strconv.Itoa(sleeper.Process.Pid)
}
