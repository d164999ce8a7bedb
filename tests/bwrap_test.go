//go:build integration

package tests

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The conformance suite: each command line runs through Debian's bwrap
// (0.8, installed by scripts/test-setup) and through `rbox bwrap`, and what
// is seen inside is compared. The tests run as root and as the
// unprivileged test user; Debian's bwrap is not setuid, so as the test
// user it always makes a user namespace, as rbox does. The command lines
// pass --unshare-user so that root's runs mean the same for both.
// Options newer than 0.8 are checked against the 0.11 manual.

// bwrapRun is one run of a bwrap command line.
type bwrapRun struct {
	stdout, stderr string
	code           int
	fds            map[int]string // what was written on the output descriptors
}

// fdSpec is a descriptor given to the run: input data, or an output to
// collect.
type fdSpec struct {
	in     string
	output bool
}

// runBwrapLike runs exe (bwrap, or rbox with "bwrap" first) with args and
// the descriptors fds (numbered from 3, in order, without a hole).
func runBwrapLike(t *testing.T, exe []string, fds []fdSpec, args ...string) bwrapRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe[0], append(append([]string{}, exe[1:]...), args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	outputs := map[int]*os.File{}
	var closeAfter []*os.File
	for i, f := range fds {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		if f.output {
			cmd.ExtraFiles = append(cmd.ExtraFiles, w)
			outputs[3+i] = r
			closeAfter = append(closeAfter, w)
			continue
		}
		cmd.ExtraFiles = append(cmd.ExtraFiles, r)
		closeAfter = append(closeAfter, r)
		go func() { _, _ = w.WriteString(f.in); w.Close() }()
	}
	collected := map[int]chan string{}
	for fd, r := range outputs {
		c := make(chan string, 1)
		collected[fd] = c
		go func() {
			var b bytes.Buffer
			_, _ = b.ReadFrom(r)
			r.Close()
			c <- b.String()
		}()
	}
	err := cmd.Start()
	for _, f := range closeAfter {
		f.Close()
	}
	if err != nil {
		t.Fatalf("%v: %v", exe, err)
	}
	err = cmd.Wait()
	res := bwrapRun{stdout: out.String(), stderr: errb.String(), fds: map[int]string{}}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	default:
		t.Fatalf("%v: %v", exe, err)
	}
	for fd, c := range collected {
		select {
		case res.fds[fd] = <-c:
		case <-time.After(10 * time.Second):
			t.Fatalf("%v: descriptor %d never closed", exe, fd)
		}
	}
	return res
}

func realBwrap(t *testing.T, fds []fdSpec, args ...string) bwrapRun {
	t.Helper()
	return runBwrapLike(t, []string{"bwrap"}, fds, args...)
}

func rboxBwrap(t *testing.T, fds []fdSpec, args ...string) bwrapRun {
	t.Helper()
	return runBwrapLike(t, []string{rboxBin, "bwrap"}, fds, args...)
}

// usrRoot is the smallest root a shell runs in: /usr and the merged-/usr
// links of Debian 12.
var usrRoot = []string{"--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64"}

// withShell is args, then sh -c script.
func withShell(args []string, script string) []string {
	return append(append(append([]string{}, args...), "--unshare-user"), "sh", "-c", script)
}

// mountTable lists the sandbox's mounts as "point options fstype", sorted,
// without the ids, devices and superblock options that differ per run, and
// without /proc/sys, which rbox covers read-only for a root caller and
// bwrap 0.8 does not.
const mountTable = `while read -r id parent dev root point opts rest; do
  fstype=${rest#*- }; fstype=${fstype%% *}; echo "$point $opts $fstype"
done < /proc/self/mountinfo | grep -v '^/proc/sys ' | sort`

// compareBwrap runs args (a sh -c script last) through both and requires
// the same output and exit code.
func compareBwrap(t *testing.T, fds []fdSpec, args ...string) (bw, rb bwrapRun) {
	t.Helper()
	bw = realBwrap(t, fds, args...)
	rb = rboxBwrap(t, fds, args...)
	if bw.code != rb.code || bw.stdout != rb.stdout {
		t.Fatalf("bwrap %q\nbwrap: exit %d\n%s%s\nrbox bwrap: exit %d\n%s%s", args, bw.code, bw.stdout, bw.stderr, rb.code, rb.stdout, rb.stderr)
	}
	return bw, rb
}

func TestBwrapConformance(t *testing.T) {
	dir := hostDir(t)
	writeFile(t, filepath.Join(dir, "f"), "host file\n")
	if err := os.Mkdir(filepath.Join(dir, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "d", "inner"), "inner\n")
	nsOf := func(name string) string {
		l, err := os.Readlink("/proc/self/ns/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	// Prints, for each namespace, whether it is the host's.
	nsScript := "for n in ipc net pid uts cgroup user mnt; do l=$(readlink /proc/self/ns/$n); " +
		"case \" " + strings.Join([]string{nsOf("ipc"), nsOf("net"), nsOf("pid"), nsOf("uts"), nsOf("cgroup"), nsOf("user"), nsOf("mnt")}, " ") + " \" in " +
		"*\" $l \"*) echo $n host;; *) echo $n new;; esac; done"
	cases := []struct {
		name   string
		args   []string
		script string
		fds    []fdSpec
	}{
		{"ids", usrRoot, "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups", nil},
		{"uid-gid", append([]string{"--uid", "5", "--gid", "6"}, usrRoot...), "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map", nil},
		{"caps", usrRoot, "grep -E '^(CapEff|CapPrm|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status", nil},
		{"caps-uid", append([]string{"--uid", "7"}, usrRoot...), "grep -E '^(CapEff|CapPrm|CapAmb):' /proc/self/status", nil},
		{"cap-add", append([]string{"--uid", "0", "--cap-add", "CAP_NET_RAW", "--cap-add", "cap_chown"}, usrRoot...), "grep -E '^(CapEff|CapPrm):' /proc/self/status", nil},
		{"cap-drop", append([]string{"--cap-add", "ALL", "--cap-drop", "CAP_SYS_ADMIN"}, usrRoot...), "grep -E '^CapEff:' /proc/self/status | cut -c1-12", nil},
		{"ns-none", append(usrRoot, "--proc", "/proc"), nsScript, nil},
		{"ns-pid", append(append([]string{"--unshare-pid"}, usrRoot...), "--proc", "/proc"), nsScript + "; test -d /proc/1 && echo has-pid-1", nil},
		{"ns-net", append(append([]string{"--unshare-net"}, usrRoot...), "--proc", "/proc"), nsScript + "; ls /proc/self/net/dev >/dev/null && cat /proc/net/dev | tail -n +3 | cut -d: -f1", nil},
		{"ns-ipc", append(append([]string{"--unshare-ipc"}, usrRoot...), "--proc", "/proc"), nsScript, nil},
		{"ns-uts", append(append([]string{"--unshare-uts", "--hostname", "sandbox-name"}, usrRoot...), "--proc", "/proc"), nsScript + "; cat /proc/sys/kernel/hostname", nil},
		{"ns-cgroup", append(append([]string{"--unshare-cgroup"}, usrRoot...), "--proc", "/proc"), nsScript, nil},
		{"ns-cgroup-try", append(append([]string{"--unshare-cgroup-try", "--unshare-user-try"}, usrRoot...), "--proc", "/proc"), nsScript, nil},
		{"ns-all", append(append([]string{"--unshare-all"}, usrRoot...), "--proc", "/proc"), nsScript, nil},
		{"ns-all-share-net", append(append([]string{"--unshare-all", "--share-net"}, usrRoot...), "--proc", "/proc"), nsScript, nil},
		{"env", append([]string{"--setenv", "RBOX_A", "a b", "--setenv", "RBOX_B", "b", "--unsetenv", "RBOX_B", "--chdir", "/usr"}, usrRoot...), "env | grep -E '^(RBOX_|PWD=)' | sort; pwd", nil},
		{"clearenv", append([]string{"--clearenv", "--setenv", "RBOX_C", "c"}, usrRoot...), "/usr/bin/env | sort", nil},
		{"chdir-default", append(usrRoot, "--bind", dir, dir), "pwd; echo $PWD", nil},
		{"root-tmpfs", append(usrRoot, "--dir", "/x"), "touch /y && ls /; stat -c '%a %u' / /x; " + mountTable, nil},
		{"ro-bind-root", []string{"--ro-bind", "/", "/"}, "touch /etc/rbox-test 2>/dev/null; echo $?; head -c0 /etc/hostname && echo readable", nil},
		{"bind", append(usrRoot, "--bind", dir, "/w", "--ro-bind", filepath.Join(dir, "f"), "/w/ro-f"), "cat /w/f /w/ro-f; echo x > /w/d/new && echo wrote; echo y > /w/ro-f 2>/dev/null || echo refused; " + mountTable, nil},
		{"bind-try", append(usrRoot, "--bind-try", "/nonexistent-rbox", "/a", "--ro-bind-try", "/nonexistent-rbox", "/b", "--dev-bind-try", "/nonexistent-rbox", "/c", "--ro-bind-try", dir, "/d"), "ls / ; ls /d", nil},
		{"dev-bind", append(usrRoot, "--dev-bind", "/dev/null", "/n", "--bind", "/dev/null", "/m"), "echo x > /n && echo dev-ok; echo x > /m 2>/dev/null || echo nodev; " + mountTable, nil},
		{"remount-ro", append(usrRoot, "--tmpfs", "/t", "--dir", "/t/sub", "--remount-ro", "/t"), "touch /t/x 2>/dev/null || echo ro; " + mountTable, nil},
		{"proc", append(append([]string{"--unshare-pid"}, usrRoot...), "--proc", "/proc"), "test -d /proc/1 && echo has-pid-1; " + mountTable, nil},
		{"dev", append(usrRoot, "--dev", "/dev"), "ls -A /dev | sort; readlink /dev/ptmx /dev/fd /dev/stdout; echo x > /dev/null && echo null-ok; head -c 4 /dev/zero | od -An -tx1; " + mountTable, nil},
		{"tmpfs-perms-size", append(usrRoot, "--perms", "0700", "--size", "1048576", "--tmpfs", "/t", "--tmpfs", "/u"), "stat -c '%a' /t /u; df -k /t | tail -1 | awk '{print $2}'; " + mountTable, nil},
		{"mqueue", append(append([]string{"--unshare-ipc"}, usrRoot...), "--mqueue", "/mq"), mountTable, nil},
		{"dir-perms", append(usrRoot, "--perms", "0751", "--dir", "/a/b", "--dir", "/c"), "stat -c '%n %a' /a /a/b /c", nil},
		{"parent-perms", append(usrRoot, "--perms", "0700", "--dir", "/a/b", "--perms", "0750", "--tmpfs", "/c/d", "--perms", "0600", "--file", "3", "/e/f"),
			"stat -c '%n %a' /a /a/b /c /c/d /e /e/f", []fdSpec{{in: "x"}}},
		{"file-data", append(usrRoot, "--tmpfs", "/t", "--file", "3", "/t/f", "--bind-data", "4", "/t/b", "--perms", "0644", "--ro-bind-data", "5", "/t/r"),
			"cat /t/f /t/b /t/r; stat -c '%n %a' /t/f /t/b /t/r; echo z > /t/r 2>/dev/null || echo ro; " + mountTable,
			[]fdSpec{{in: "file\n"}, {in: "bound\n"}, {in: "ro-bound\n"}}},
		{"symlink-chmod", append(usrRoot, "--tmpfs", "/t", "--symlink", "../usr", "/t/l", "--dir", "/t/d", "--chmod", "0700", "/t/d"), "readlink /t/l; stat -c '%a' /t/d", nil},
		{"exit-code", usrRoot, "exit 7", nil},
		{"killed", usrRoot, "kill -9 $$", nil},
		// A session made inside the pid namespace has an id there; the
		// caller's shows as 0.
		{"new-session", append(append([]string{"--new-session", "--unshare-pid"}, usrRoot...), "--proc", "/proc"), sessionScript, nil},
		{"same-session", append(append([]string{"--unshare-pid"}, usrRoot...), "--proc", "/proc"), sessionScript, nil},
		{"seccomp", append(append([]string{"--seccomp", "3"}, usrRoot...), "--tmpfs", "/t", "--proc", "/proc", "--dev", "/dev"), "mkdir /t/x 2>/dev/null; echo $?; grep -E '^Seccomp:' /proc/self/status", []fdSpec{{in: string(denyMkdirBPF())}}},
		{"args-fd", []string{"--args", "3"}, "echo $RBOX_ARGS; ls /", []fdSpec{{in: "--ro-bind\x00/usr\x00/usr\x00--symlink\x00usr/bin\x00/bin\x00--symlink\x00usr/lib\x00/lib\x00--symlink\x00usr/lib64\x00/lib64\x00--setenv\x00RBOX_ARGS\x00from fd\x00"}}},
		{"selinux-labels", append([]string{"--exec-label", "x", "--file-label", "y"}, usrRoot...), "echo ran", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fds := c.fds
			compareBwrap(t, fds, withShell(c.args, c.script)...)
		})
	}
}

// sessionScript says whether the shell's session was made in the
// sandbox's pid namespace.
const sessionScript = "set -- $(cat /proc/$$/stat); [ \"$6\" != 0 ] && echo new-session || echo caller-session"

// denyMkdirBPF is a seccomp program that fails mkdir and mkdirat with
// EPERM and allows the rest (the architecture is the test machine's).
func denyMkdirBPF() []byte { return denyBPF(uint32(unix.SYS_MKDIRAT), uint32(mkdirNr)) }

// denyBPF is a seccomp program that fails the two system calls a and b
// with EPERM and allows the rest.
func denyBPF(a, b uint32) []byte {
	const (
		ldW   = 0x20 // BPF_LD|BPF_W|BPF_ABS
		jeqK  = 0x15 // BPF_JMP|BPF_JEQ|BPF_K
		retK  = 0x06 // BPF_RET|BPF_K
		allow = 0x7fff0000
		eperm = 0x00050000 | 1
	)
	type ins struct {
		code   uint16
		jt, jf uint8
		k      uint32
	}
	prog := []ins{
		{ldW, 0, 0, 0},
		{jeqK, 2, 0, a},
		{jeqK, 1, 0, b},
		{retK, 0, 0, allow},
		{retK, 0, 0, eperm},
	}
	var out bytes.Buffer
	for _, i := range prog {
		_ = binary.Write(&out, binary.NativeEndian, i)
	}
	return out.Bytes()
}

// jsonNumbers hides the numbers of bwrap's JSON, which differ per run.
var jsonNumbers = regexp.MustCompile(`: [0-9]+`)

func TestBwrapInfoAndJSONStatus(t *testing.T) {
	for _, args := range [][]string{
		append([]string{"--unshare-user"}, usrRoot...),
		append([]string{"--unshare-user", "--unshare-pid", "--unshare-net"}, usrRoot...),
		append([]string{"--unshare-user", "--unshare-all"}, usrRoot...),
	} {
		full := append(append([]string{"--info-fd", "3", "--json-status-fd", "4"}, args...), "sh", "-c", "exit 3")
		out := []fdSpec{{output: true}, {output: true}}
		bw, rb := compareBwrap(t, out, full...)
		for fd := 3; fd <= 4; fd++ {
			b, r := jsonNumbers.ReplaceAllString(bw.fds[fd], ": N"), jsonNumbers.ReplaceAllString(rb.fds[fd], ": N")
			if b != r {
				t.Fatalf("%q: fd %d differs:\nbwrap:\n%s\nrbox bwrap:\n%s", args, fd, bw.fds[fd], rb.fds[fd])
			}
		}
		if !strings.Contains(rb.fds[4], `{ "exit-code": 3 }`) {
			t.Fatalf("json status without the exit code:\n%s", rb.fds[4])
		}
	}
	// The ids are the sandbox's: child-pid is a live process whose net
	// namespace is the one reported, while the command runs.
	rb := runBwrapLike(t, []string{rboxBin, "bwrap"}, []fdSpec{{output: true}},
		append(append([]string{"--info-fd", "3", "--unshare-user", "--unshare-net", "--unshare-pid"}, usrRoot...), "--proc", "/proc", "sh", "-c", "readlink /proc/self/ns/net")...)
	m := regexp.MustCompile(`"net-namespace": ([0-9]+)`).FindStringSubmatch(rb.fds[3])
	if m == nil || strings.TrimSpace(rb.stdout) != "net:["+m[1]+"]" {
		t.Fatalf("info says %q, the command saw %q", rb.fds[3], rb.stdout)
	}
}

func TestBwrapBadInput(t *testing.T) {
	cases := [][]string{
		{"--bogus-option", "true"},
		{"--ro-bind", "/"},
		{"--ro-bind", "/nonexistent-rbox-src", "/x", "true"},
		{"--uid", "notanumber", "true"},
		{"--hostname", "x", "true"},
		{"--ro-bind", "/", "/"},
		{"--perms", "0700", "--bind", "/", "/", "true"},
		{"--size", "100", "--dir", "/x", "true"},
	}
	for _, args := range cases {
		bw := realBwrap(t, nil, args...)
		rb := rboxBwrap(t, nil, args...)
		bwFirst, _, _ := strings.Cut(bw.stderr, "\n")
		rbFirst, _, _ := strings.Cut(rb.stderr, "\n")
		if bw.code != 1 || rb.code != 1 {
			t.Fatalf("%q: exit codes bwrap %d, rbox bwrap %d (want 1)\n%s\n%s", args, bw.code, rb.code, bw.stderr, rb.stderr)
		}
		if len(args) > 1 && args[0] == "--perms" || args[0] == "--size" {
			// bwrap 0.8 words these its way; rbox follows 0.11's manual.
			if !strings.HasPrefix(rbFirst, "bwrap: "+args[0]+" must be followed by") {
				t.Fatalf("%q: %q", args, rb.stderr)
			}
			continue
		}
		if bwFirst != rbFirst {
			t.Fatalf("%q: first line of stderr:\nbwrap:      %q\nrbox bwrap: %q", args, bwFirst, rbFirst)
		}
	}
	// Nothing left behind by a failed setup: a mount point that cannot be
	// made under a read-only bind fails in the sandbox.
	before := tmpEntries(t)
	rb := rboxBwrap(t, nil, "--unshare-user", "--ro-bind", "/usr", "/usr", "--dir", "/usr/rbox-cannot-exist", "true")
	if rb.code != 1 || !strings.HasPrefix(rb.stderr, "bwrap: ") || !strings.Contains(rb.stderr, "/usr/rbox-cannot-exist") {
		t.Fatalf("setup failure: exit %d, %q", rb.code, rb.stderr)
	}
	for name := range tmpEntries(t) {
		// gcc's temporary files come and go with other work on the
		// machine (cgo builds).
		if !before[name] && !regexp.MustCompile(`^cc[0-9A-Za-z]{6}\.`).MatchString(name) {
			t.Fatalf("left in /tmp: %s", name)
		}
	}
}

// The 0.11 options Debian's 0.8 lacks, checked against bwrap(1) of 0.11.
func TestBwrapNewerOptions(t *testing.T) {
	dir := hostDir(t)
	for _, d := range []string{"low", "high", "up", "work"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(dir, "low", "a"), "low\n")
	writeFile(t, filepath.Join(dir, "low", "b"), "low\n")
	writeFile(t, filepath.Join(dir, "high", "a"), "high\n")
	ovl := func(rest ...string) []string {
		return append(append([]string{"--unshare-user"}, usrRoot...), rest...)
	}
	// "the first source on the command line at the bottom of the stack".
	rb := rboxBwrap(t, nil, append(ovl("--overlay-src", filepath.Join(dir, "low"), "--overlay-src", filepath.Join(dir, "high"), "--ro-overlay", "/o"),
		"sh", "-c", "cat /o/a /o/b; touch /o/c 2>/dev/null || echo ro")...)
	if rb.code != 0 || rb.stdout != "high\nlow\nro\n" {
		t.Fatalf("--ro-overlay: %+v", rb)
	}
	// --tmp-overlay: writes go to a tmpfs, the sources stay as they are.
	rb = rboxBwrap(t, nil, append(ovl("--overlay-src", filepath.Join(dir, "low"), "--tmp-overlay", "/o"),
		"sh", "-c", "echo new > /o/b && cat /o/b")...)
	if rb.code != 0 || rb.stdout != "new\n" {
		t.Fatalf("--tmp-overlay: %+v", rb)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "low", "b")); string(data) != "low\n" {
		t.Fatalf("--tmp-overlay changed its source: %q", data)
	}
	// --overlay RWSRC WORKDIR DEST: writes go to RWSRC.
	rb = rboxBwrap(t, nil, append(ovl("--overlay-src", filepath.Join(dir, "low"), "--overlay", filepath.Join(dir, "up"), filepath.Join(dir, "work"), "/o"),
		"sh", "-c", "echo kept > /o/k && cat /o/a")...)
	if rb.code != 0 || rb.stdout != "low\n" {
		t.Fatalf("--overlay: %+v", rb)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "up", "k")); string(data) != "kept\n" {
		t.Fatalf("--overlay: upper has %q", data)
	}
	// --level-prefix: "<3>" (a fatal error) before each diagnostic line.
	rb = rboxBwrap(t, nil, "--level-prefix", "--ro-bind", "/nonexistent-rbox", "/x", "true")
	if rb.code != 1 || !strings.HasPrefix(rb.stderr, "<3>bwrap: Can't find source path /nonexistent-rbox") {
		t.Fatalf("--level-prefix: %+v", rb)
	}
	// --add-seccomp-fd, as --seccomp.
	rb = rboxBwrap(t, []fdSpec{{in: string(denyMkdirBPF())}}, append(ovl("--add-seccomp-fd", "3", "--tmpfs", "/t"), "sh", "-c", "mkdir /t/x 2>/dev/null || echo denied")...)
	if rb.code != 0 || rb.stdout != "denied\n" {
		t.Fatalf("--add-seccomp-fd: %+v", rb)
	}
	// --argv0: the command's argv[0], the program run still the one
	// named.
	rb = rboxBwrap(t, nil, append(ovl("--argv0", "renamed"), "sh", "-c", "echo $0")...)
	if rb.code != 0 || rb.stdout != "renamed\n" {
		t.Fatalf("--argv0: %+v", rb)
	}
	rb = rboxBwrap(t, nil, append(ovl("--unshare-pid", "--argv0", "renamed2"), "sh", "-c", "echo $0")...)
	if rb.code != 0 || rb.stdout != "renamed2\n" {
		t.Fatalf("--argv0 (fast path): %+v", rb)
	}
	// --disable-userns: no user namespace can be made inside;
	// --assert-userns-disabled holds then, and fails without it.
	rb = rboxBwrap(t, nil, append(ovl("--disable-userns", "--assert-userns-disabled"), "sh", "-c", "unshare -U true 2>/dev/null || echo refused")...)
	if rb.code != 0 || rb.stdout != "refused\n" {
		t.Fatalf("--disable-userns: %+v", rb)
	}
	rb = rboxBwrap(t, nil, append(ovl(), "sh", "-c", "unshare -U true && echo allowed")...)
	if rb.code != 0 || rb.stdout != "allowed\n" {
		t.Fatalf("without --disable-userns: %+v", rb)
	}
	rb = rboxBwrap(t, nil, append(ovl("--assert-userns-disabled"), "true")...)
	if rb.code != 1 || rb.stderr != "bwrap: creation of new user namespaces was not disabled as requested\n" {
		t.Fatalf("--assert-userns-disabled alone: %+v", rb)
	}
	// --add-seccomp-fd more than once: every program applies (on both
	// kinds of pid 1: a shared pid namespace takes rbox's re-executed one).
	for _, pidns := range [][]string{nil, {"--unshare-pid"}} {
		rb = rboxBwrap(t, []fdSpec{{in: string(denyMkdirBPF())}, {in: string(denyBPF(uint32(unix.SYS_SYMLINKAT), uint32(symlinkNr)))}},
			append(ovl(append(pidns, "--add-seccomp-fd", "3", "--add-seccomp-fd", "4", "--tmpfs", "/t")...), "sh", "-c",
				"mkdir /t/x 2>/dev/null || echo no-mkdir; ln -s a /t/l 2>/dev/null || echo no-symlink; touch /t/f && echo touch")...)
		if rb.code != 0 || rb.stdout != "no-mkdir\nno-symlink\ntouch\n" {
			t.Fatalf("two --add-seccomp-fd %q: %+v", pidns, rb)
		}
	}
	// --version names both.
	rb = rboxBwrap(t, nil, "--version")
	if rb.code != 0 || !strings.HasPrefix(rb.stdout, "bubblewrap 0.11") {
		t.Fatalf("--version: %+v", rb)
	}
}

// waitGone waits until no process carries marker.
func waitGone(marker string) bool {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if len(processesWith(marker)) == 0 {
			return true
		}
	}
	return false
}

// dieWithParent starts `sh -c 'EXE... sleep MARKER & wait'`, kills the
// shell with SIGKILL once the sandbox runs, and requires the sandbox gone.
func dieWithParent(t *testing.T, exe []string) {
	t.Helper()
	marker := fmt.Sprintf("%d.%d", os.Getpid(), time.Now().UnixNano()%1000000)
	script := strings.Join(exe, " ") + " sleep " + marker + " & wait"
	cmd := exec.Command("sh", "-c", script)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the sandboxed sleep", 10*time.Second, func() bool {
		for _, pid := range processesWith(marker) {
			if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); string(comm) == "sleep\n" {
				return true
			}
		}
		return false
	})
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	if !waitGone(marker) {
		var left []string
		for _, pid := range processesWith(marker) {
			stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			left = append(left, string(stat))
		}
		t.Fatalf("still running after its caller's parent was killed:\n%s", strings.Join(left, "\n"))
	}
}

func TestBwrapDieWithParent(t *testing.T) {
	base := append([]string{"--die-with-parent", "--unshare-user", "--unshare-pid"}, usrRoot...)
	t.Run("bwrap", func(t *testing.T) { dieWithParent(t, append([]string{"bwrap"}, base...)) })
	t.Run("rbox-bwrap", func(t *testing.T) { dieWithParent(t, append([]string{rboxBin, "bwrap"}, base...)) })
	t.Run("rbox-bwrap-shared-pid", func(t *testing.T) {
		dieWithParent(t, append([]string{rboxBin, "bwrap", "--die-with-parent", "--unshare-user"}, usrRoot...))
	})
	t.Run("native", func(t *testing.T) { dieWithParent(t, []string{rboxBin, "--die-with-parent", "--"}) })
}

func TestBwrapSyncAndBlockFD(t *testing.T) {
	for _, exe := range [][]string{{"bwrap"}, {rboxBin, "bwrap"}} {
		// --block-fd: nothing runs until the descriptor has data.
		blockR, blockW, _ := os.Pipe()
		syncR, syncW, _ := os.Pipe()
		cmd := exec.Command(exe[0], append(exe[1:], append(append([]string{"--unshare-user", "--block-fd", "3", "--sync-fd", "4"}, usrRoot...), "sh", "-c", "echo ran")...)...)
		var out bytes.Buffer
		cmd.Stdout = &out
		cmd.ExtraFiles = []*os.File{blockR, syncW}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		blockR.Close()
		syncW.Close()
		time.Sleep(300 * time.Millisecond)
		if out.Len() != 0 {
			t.Fatalf("%v: ran before --block-fd had data", exe)
		}
		_, _ = blockW.Write([]byte{1})
		// --sync-fd: the caller's end sees EOF once the sandbox is gone.
		done := make(chan struct{})
		go func() { _, _ = syncR.Read(make([]byte, 1)); close(done) }()
		if err := cmd.Wait(); err != nil || out.String() != "ran\n" {
			t.Fatalf("%v: %v %q", exe, err, out.String())
		}
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("%v: --sync-fd still open after the sandbox ended", exe)
		}
		blockW.Close()
		syncR.Close()
	}
}

// A link named bwrap to rbox is rbox bwrap.
func TestBwrapLinkName(t *testing.T) {
	dir := hostDir(t)
	link := filepath.Join(dir, "bwrap")
	if err := os.Symlink(rboxBin, link); err != nil {
		t.Fatal(err)
	}
	r := runBwrapLike(t, []string{link}, nil, append(append([]string{"--unshare-user"}, usrRoot...), "sh", "-c", "ls /")...)
	if r.code != 0 || r.stdout != "bin\nlib\nlib64\nusr\n" {
		t.Fatalf("bwrap link: %+v", r)
	}
}

// Command lines as real callers build them, written from their public
// documentation.
func TestBwrapCallers(t *testing.T) {
	work := hostDir(t)
	if err := os.MkdirAll(filepath.Join(work, ".git"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(work, ".git", "HEAD"), "ref: refs/heads/main\n")
	writeFile(t, filepath.Join(work, "src.txt"), "source\n")
	t.Run("flatpak", func(t *testing.T) {
		// Flatpak: /usr read-only, its own /dev and /proc, generated
		// /etc/passwd through --file, a --bind-data, a seccomp program
		// on a descriptor, status as JSON, all namespaces but the
		// network's.
		args := []string{
			"--args", "3",
			"--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
			"--die-with-parent", "--new-session",
			"--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
			"--dev", "/dev", "--proc", "/proc", "--dir", "/tmp", "--dir", "/var/tmp", "--dir", "/run/user/1000",
			"--perms", "0644", "--file", "4", "/etc/passwd", "--ro-bind-data", "5", "/run/flatpak-info", "--bind-data", "8", "/run/user/1000/doc",
			"--seccomp", "6", "--json-status-fd", "7", "--setenv", "FLATPAK_ID", "org.example.App", "--chdir", "/",
			"sh", "-c", "id -u; cut -d: -f1 /etc/passwd; cat /run/flatpak-info /run/user/1000/doc; echo $FLATPAK_ID; mkdir /tmp/x 2>/dev/null || echo no-mkdir; ls /dev | sort | tr '\\n' ' '",
		}
		fds := []fdSpec{
			{in: "--clearenv\x00--setenv\x00PATH\x00/usr/bin\x00"},
			{in: "app:x:1000:1000::/home/app:/bin/sh\n"},
			{in: "[Application]\nname=org.example.App\n"},
			{in: string(denyMkdirBPF())},
			{output: true},
			{in: "document portal\n"},
		}
		bw, rb := compareBwrap(t, fds, args...)
		if b, r := jsonNumbers.ReplaceAllString(bw.fds[7], ": N"), jsonNumbers.ReplaceAllString(rb.fds[7], ": N"); b != r {
			t.Fatalf("json status:\nbwrap:\n%s\nrbox bwrap:\n%s", bw.fds[7], rb.fds[7])
		}
	})
	t.Run("codex", func(t *testing.T) {
		// Codex CLI's Linux sandbox: the host read-only, writable roots
		// bound back, .git inside a writable root read-only again, its
		// own /dev and /proc, a new pid namespace and session, tied to
		// its parent.
		args := []string{
			"--new-session", "--die-with-parent", "--ro-bind", "/", "/",
			"--bind", work, work, "--ro-bind", filepath.Join(work, ".git"), filepath.Join(work, ".git"),
			"--dev", "/dev", "--unshare-user", "--unshare-pid", "--proc", "/proc", "--chdir", work,
			"--", "sh", "-c", "echo out > new.txt && cat new.txt; echo x > .git/HEAD 2>/dev/null || echo git-ro; touch /etc/codex 2>/dev/null || echo root-ro; pwd",
		}
		compareBwrap(t, nil, args...)
		if data, _ := os.ReadFile(filepath.Join(work, "new.txt")); string(data) != "out\n" {
			t.Fatalf("the writable root's file on the host: %q", data)
		}
	})
	t.Run("sandbox-runtime", func(t *testing.T) {
		// Anthropic's sandbox-runtime: no network namespace shared, the
		// host read-only with writable paths, denied paths covered with
		// an empty tmpfs or /dev/null, /dev and /proc, a new pid
		// namespace, dies with its parent.
		args := []string{
			"--new-session", "--die-with-parent", "--unshare-net", "--unshare-pid", "--unshare-user",
			"--ro-bind", "/", "/", "--bind", work, work, "--tmpfs", filepath.Join(work, ".git"),
			"--ro-bind", "/dev/null", filepath.Join(work, "src.txt"),
			"--dev", "/dev", "--proc", "/proc", "--chdir", work,
			"--", "sh", "-c", "ls -A .git | wc -l; wc -c < src.txt; cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '",
		}
		compareBwrap(t, nil, args...)
	})
}

// The native options that come from bwrap.
func TestBwrapNativeOptions(t *testing.T) {
	dir := hostDir(t)
	writeFile(t, filepath.Join(dir, "f"), "f\n")
	// --dev-bind keeps device nodes usable; --bind does not.
	out := sh(t, "echo x > /n && echo dev-ok; echo x > /m 2>/dev/null || echo nodev", "--dev-bind", "/dev/null:/n", "--bind", "/dev/null:/m")
	if out != "dev-ok\nnodev\n" {
		t.Fatalf("--dev-bind: %q", out)
	}
	// --bind-try and --ro-bind-try skip missing sources.
	out = sh(t, "ls /opt/rbox-a 2>&1 | head -1; cat /b/f", "--bind-try", "/nonexistent-rbox:/opt/rbox-a", "--ro-bind-try", dir+":/b")
	if !strings.Contains(out, "No such file") || !strings.HasSuffix(out, "f\n") {
		t.Fatalf("--bind-try: %q", out)
	}
	// --info-fd and --json-status-fd: bwrap's JSON.
	info := runBwrapLike(t, []string{rboxBin}, []fdSpec{{output: true}, {output: true}}, "--info-fd", "3", "--json-status-fd", "4", "--", "sh", "-c", "exit 5")
	if info.code != 5 || !strings.Contains(info.fds[3], `"child-pid": `) || !strings.Contains(info.fds[3], `"pid-namespace": `) ||
		!strings.HasSuffix(info.fds[4], "{ \"exit-code\": 5 }\n") {
		t.Fatalf("--info-fd/--json-status-fd: %+v", info)
	}
	// --args FD: NUL-separated flags in its place.
	r := runBwrapLike(t, []string{rboxBin}, []fdSpec{{in: "--env\x00RBOX_X=from fd\x00-w\x00/usr\x00"}}, "--args", "3", "--", "sh", "-c", "echo $RBOX_X; pwd")
	if r.code != 0 || r.stdout != "from fd\n/usr\n" {
		t.Fatalf("--args: %+v", r)
	}
	// --seccomp-fd: the BPF program replaces the default filter.
	r = runBwrapLike(t, []string{rboxBin}, []fdSpec{{in: string(denyMkdirBPF())}}, "--seccomp-fd", "3", "--", "sh", "-c", "mkdir /tmp/x 2>/dev/null || echo denied; grep Seccomp_filters /proc/self/status")
	if r.code != 0 || r.stdout != "denied\nSeccomp_filters:\t1\n" {
		t.Fatalf("--seccomp-fd: %+v", r)
	}
	// --new-session: the command leads its own session (as always).
	out = sh(t, "set -- $(cat /proc/$$/stat); [ \"$6\" = \"$1\" ] && echo own-session", "--new-session")
	if out != "own-session\n" {
		t.Fatalf("--new-session: %q", out)
	}
}

func TestBwrapEnvAndCwdDefault(t *testing.T) {
	// Without --chdir the command starts where the caller is when the
	// sandbox has it, else in $HOME, else /.
	dir := hostDir(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{append(usrRoot, "--bind", dir, dir), dir},
		{usrRoot, "/"},
	} {
		run := func(exe []string) string {
			cmd := exec.Command(exe[0], append(exe[1:], withShell(c.args, "pwd")...)...)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "HOME=/nonexistent-home")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%v: %v %s", exe, err, out)
			}
			return string(out)
		}
		bw, rb := run([]string{"bwrap"}), run([]string{rboxBin, "bwrap"})
		if bw != rb || strings.TrimSpace(rb) != c.want {
			t.Fatalf("cwd: bwrap %q, rbox bwrap %q, want %q", bw, rb, c.want)
		}
	}
}

// --bind-fd and --ro-bind-fd (Debian's 0.8 fails to stat the descriptor
// of an unprivileged caller): the directory open on FD, bound.
func TestBwrapBindFD(t *testing.T) {
	dir := hostDir(t)
	writeFile(t, filepath.Join(dir, "f"), "by fd\n")
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(rboxBin, append(append([]string{"bwrap", "--unshare-user", "--bind-fd", "3", "/bf", "--ro-bind-fd", "3", "/rbf"}, usrRoot...),
		"sh", "-c", "cat /bf/f /rbf/f; echo x > /bf/w && echo rw; echo x > /rbf/w2 2>/dev/null || echo ro")...)
	cmd.ExtraFiles = []*os.File{f}
	out, err := cmd.Output()
	if err != nil || string(out) != "by fd\nby fd\nrw\nro\n" {
		t.Fatalf("--bind-fd: %v\n%s", err, out)
	}
}

// --lock-file: a read lock on the file, seen from the host, as long as the
// sandbox runs.
func TestBwrapLockFile(t *testing.T) {
	dir := hostDir(t)
	lockPath := filepath.Join(dir, "lock")
	writeFile(t, lockPath, "")
	locked := func() bool {
		f, err := os.OpenFile(lockPath, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		l := unix.Flock_t{Type: unix.F_WRLCK}
		if err := unix.FcntlFlock(f.Fd(), unix.F_GETLK, &l); err != nil {
			t.Fatal(err)
		}
		return l.Type != unix.F_UNLCK
	}
	// bwrap 0.8 shows its lock from the host only without --unshare-pid;
	// rbox with and without (its two kinds of pid 1).
	for _, c := range []struct{ exe, pidns []string }{
		{[]string{"bwrap"}, nil}, {[]string{rboxBin, "bwrap"}, nil}, {[]string{rboxBin, "bwrap"}, []string{"--unshare-pid"}},
	} {
		exe := c.exe
		args := append(append(append([]string{"--unshare-user"}, c.pidns...), usrRoot...), "--bind", dir, "/d", "--lock-file", "/d/lock", "sh", "-c", "echo ready; read x; exit 0")
		cmd := exec.Command(exe[0], append(exe[1:], args...)...)
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 6)
		if _, err := io.ReadFull(stdout, buf); err != nil {
			t.Fatalf("%v: %v", exe, err)
		}
		// rbox takes the lock before the command starts; bwrap's pid 1
		// takes it after forking the command, which may print first.
		if exe[0] == "bwrap" {
			waitFor(t, "[bwrap]: its lock", 5*time.Second, locked)
		} else if !locked() {
			t.Fatalf("%v: no lock on %s while the sandbox runs", exe, lockPath)
		}
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Fatalf("%v: %v", exe, err)
		}
		// bwrap may exit a moment before its pid 1, which holds the lock,
		// is gone.
		waitFor(t, fmt.Sprintf("%v: the lock to go with the sandbox", exe), 5*time.Second, func() bool { return !locked() })
	}
}

// --help prints the usage on stdout and exits 0, as bwrap does.
func TestBwrapHelp(t *testing.T) {
	for _, exe := range [][]string{{"bwrap"}, {rboxBin, "bwrap"}} {
		r := runBwrapLike(t, exe, nil, "--help")
		if r.code != 0 || !strings.HasPrefix(r.stdout, "usage: bwrap [OPTIONS...] [--] COMMAND [ARGS...]\n") || !strings.Contains(r.stdout, "--ro-bind") {
			t.Fatalf("%v --help: %+v", exe, r)
		}
	}
}

// --rbox-map-subids, rbox's own: the caller's subordinate ranges mapped
// around its id, when it has them; otherwise a refusal naming the fix.
func TestBwrapMapSubids(t *testing.T) {
	id := me(t)
	r := rboxBwrap(t, nil, append(append([]string{"--rbox-map-subids", "--unshare-user", "--uid", "0"}, usrRoot...), "--tmpfs", "/t", "sh", "-c",
		"wc -l < /proc/self/uid_map; touch /t/f && chown 1000:1000 /t/f && stat -c %u /t/f")...)
	if !id.full() {
		if r.code != 1 || !strings.HasPrefix(r.stderr, "bwrap: --rbox-map-subids: no subordinate") {
			t.Fatalf("without ranges: %+v", r)
		}
		return
	}
	// chown needs CAP_CHOWN: root's default without --cap-add is none
	// for an unprivileged caller, so the run adds it.
	r = rboxBwrap(t, nil, append(append([]string{"--rbox-map-subids", "--unshare-user", "--unshare-pid", "--uid", "0", "--cap-add", "CAP_CHOWN"}, usrRoot...), "--proc", "/proc", "--tmpfs", "/t", "sh", "-c",
		"wc -l < /proc/self/uid_map; touch /t/f && chown 1000:1000 /t/f && stat -c %u /t/f")...)
	lines := strings.Fields(r.stdout)
	if r.code != 0 || len(lines) != 2 || lines[0] == "1" || lines[1] != "1000" {
		t.Fatalf("with ranges: %+v", r)
	}
}

// --as-pid-1: the command is pid 1 of its pid namespace. rbox does it on
// its fast path (root callers' too, CAP_SYS_PTRACE being on that path
// since the planner), whatever executor the suite forces.
func TestBwrapAsPID1(t *testing.T) {
	args := append(append([]string{"--unshare-user", "--unshare-pid", "--as-pid-1"}, usrRoot...), "--proc", "/proc", "sh", "-c", "echo $$; cat /proc/1/comm")
	_, rb := compareBwrap(t, nil, args...)
	if rb.stdout != "1\nsh\n" {
		t.Fatalf("--as-pid-1: %q", rb.stdout)
	}
}
