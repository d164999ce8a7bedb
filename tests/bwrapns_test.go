//go:build integration

package tests

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// bwrap's caller-given namespaces (--userns, --pidns, --userns2,
// --userns-block-fd), compared with Debian's bwrap 0.8, which has them all.
// The namespaces are the test's own: a holder made with unshare(1), whose
// /proc/PID/ns files are passed as descriptors to both.

// nsHolder holds a user namespace U (the sandbox's, with the caller mapped
// to root), a pid namespace P owned by U, and a user namespace U2 nested
// in U, as descriptors.
type nsHolder struct {
	userns, pidns, userns2 *os.File
	pidnsID                string // readlink of P
	userns2ID              string // readlink of U2
}

// newNSHolder starts the holder: `unshare -U -r --pid --fork` runs a shell
// (pid 1 of P) that starts `unshare -U -r sleep` (in U2). With
// disableUserns, the shell first sets user.max_user_namespaces to 0 in U.
func newNSHolder(t *testing.T, disableUserns bool) *nsHolder {
	t.Helper()
	script := "unshare -U -r sleep 600 & wait"
	if disableUserns {
		script = "echo 0 > /proc/sys/user/max_user_namespaces && exec sleep 600"
	}
	cmd := exec.Command("unshare", "-U", "-r", "--pid", "--fork", "sh", "-c", script)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Killing P's pid 1 ends every process of P.
		for _, pid := range childrenOf(cmd.Process.Pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	var shell, sleeper int
	waitFor(t, "the namespace holder", 10*time.Second, func() bool {
		kids := childrenOf(cmd.Process.Pid)
		if len(kids) != 1 {
			return false
		}
		shell = kids[0]
		if disableUserns {
			comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", shell))
			return string(comm) == "sleep\n"
		}
		for _, k := range childrenOf(shell) {
			if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", k)); string(comm) == "sleep\n" {
				sleeper = k
				return true
			}
		}
		return false
	})
	open := func(pid int, ns string) *os.File {
		f, err := os.Open(fmt.Sprintf("/proc/%d/ns/%s", pid, ns))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	h := &nsHolder{userns: open(shell, "user"), pidns: open(shell, "pid")}
	h.pidnsID, _ = os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", shell))
	if !disableUserns {
		h.userns2 = open(sleeper, "user")
		h.userns2ID, _ = os.Readlink(fmt.Sprintf("/proc/%d/ns/user", sleeper))
	}
	return h
}

// files are the holder's descriptors as the run's 3, 4 and 5 (U, P, U2).
func (h *nsHolder) files() []*os.File {
	fs := []*os.File{h.userns, h.pidns}
	if h.userns2 != nil {
		fs = append(fs, h.userns2)
	}
	return fs
}

// runWithFiles runs exe with args and files as descriptors 3, 4, ...
func runWithFiles(t *testing.T, exe []string, files []*os.File, args ...string) bwrapRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe[0], append(append([]string{}, exe[1:]...), args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.ExtraFiles = files
	// bwrap 0.8 may leave a process holding the output behind.
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	res := bwrapRun{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	default:
		t.Fatalf("%v: %v", exe, err)
	}
	return res
}

// compareWithFiles runs args through bwrap and rbox bwrap and requires the
// same exit code, output and first line of stderr.
func compareWithFiles(t *testing.T, files []*os.File, args ...string) (bw, rb bwrapRun) {
	t.Helper()
	bw = runWithFiles(t, []string{"bwrap"}, files, args...)
	rb = runWithFiles(t, []string{rboxBin, "bwrap"}, files, args...)
	bwFirst, _, _ := strings.Cut(bw.stderr, "\n")
	rbFirst, _, _ := strings.Cut(rb.stderr, "\n")
	if bw.code != rb.code || bw.stdout != rb.stdout || bwFirst != rbFirst {
		t.Fatalf("bwrap %q\nbwrap: exit %d\n%s%s\nrbox bwrap: exit %d\n%s%s", args, bw.code, bw.stdout, bw.stderr, rb.code, rb.stdout, rb.stderr)
	}
	return bw, rb
}

func TestBwrapJoinNamespaces(t *testing.T) {
	h := newNSHolder(t, false)
	// /proc needs a pid namespace owned by U: the host's is not.
	idScript := "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map; readlink /proc/self/ns/user; grep -E '^Groups:' /proc/self/status"
	// Capabilities: none for an ordinary caller, as bwrap gives. (bwrap
	// 0.8 run by root in a joined namespace drops CAP_SYS_RESOURCE, for
	// a reason of its own; rbox gives root's run all, as without
	// --userns.)
	capScript := "grep -E '^(CapEff|CapPrm|CapBnd):' /proc/self/status"
	if os.Getuid() == 0 {
		capScript = "grep -c '^CapEff:' /proc/self/status"
	}
	cases := []struct {
		name   string
		args   []string
		script string
	}{
		// The caller as U maps it (root), no capability, U's maps.
		{"userns", []string{"--userns", "3", "--unshare-pid", "--proc", "/proc"}, idScript},
		{"userns-uid", []string{"--userns", "3", "--uid", "0", "--gid", "0", "--unshare-pid", "--proc", "/proc"}, idScript},
		// An id U does not map: bwrap's error.
		{"userns-unmapped-uid", []string{"--userns", "3", "--uid", "5"}, "id -u"},
		{"userns-caps", []string{"--userns", "3", "--unshare-pid", "--proc", "/proc"}, capScript},
		{"userns-cap-add", []string{"--userns", "3", "--cap-add", "CAP_NET_RAW", "--unshare-pid", "--proc", "/proc"}, capScript},
		{"userns-namespaces", []string{"--userns", "3", "--unshare-net", "--unshare-uts", "--hostname", "joined", "--unshare-pid", "--proc", "/proc"}, "readlink /proc/self/ns/user; cat /proc/sys/kernel/hostname"},
		// P joined: the command is in it, and sees P's pid 1 (the
		// holder's shell) in its /proc.
		{"pidns", []string{"--userns", "3", "--pidns", "4", "--proc", "/proc"}, "readlink /proc/self/ns/pid; cat /proc/1/comm"},
		// With --unshare-pid: a pid namespace of its own, a child of P.
		{"pidns-unshare-pid", []string{"--userns", "3", "--pidns", "4", "--unshare-pid", "--proc", "/proc"},
			"echo $$; [ \"$(readlink /proc/self/ns/pid)\" = \"" + h.pidnsID + "\" ] && echo joined || echo own"},
		// --userns2: set up in U, the command in U2. (Entering U2 gives
		// back the whole bounding set, which bwrap 0.8 leaves; rbox drops
		// it again, to --cap-add's: compared without it.)
		{"userns2", []string{"--userns", "3", "--userns2", "5", "--unshare-pid", "--proc", "/proc"}, idScript + "; grep -E '^CapEff:' /proc/self/status"},
		// --assert-userns-disabled: U allows user namespaces.
		{"assert-userns-disabled", []string{"--userns", "3", "--assert-userns-disabled"}, "echo ran"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append(append(append([]string{}, c.args...), usrRoot...), "sh", "-c", c.script)
			_, rb := compareWithFiles(t, h.files(), args...)
			switch c.name {
			case "pidns":
				if !strings.HasPrefix(rb.stdout, h.pidnsID+"\n") {
					t.Fatalf("not in the holder's pid namespace: %q", rb.stdout)
				}
			case "pidns-unshare-pid":
				if rb.stdout != "2\nown\n" {
					t.Fatalf("%q", rb.stdout)
				}
			case "userns2":
				if !strings.Contains(rb.stdout, h.userns2ID+"\n") {
					t.Fatalf("not in the nested user namespace %s: %q", h.userns2ID, rb.stdout)
				}
				r := runWithFiles(t, []string{rboxBin, "bwrap"}, h.files(), append(args[:len(args)-1:len(args)-1], "grep -E '^CapBnd:' /proc/self/status")...)
				if r.stdout != "CapBnd:\t0000000000000000\n" && os.Getuid() != 0 {
					t.Fatalf("bounding set in U2: %q", r.stdout)
				}
			case "assert-userns-disabled", "userns-unmapped-uid":
				if rb.code != 1 {
					t.Fatalf("exit %d", rb.code)
				}
			}
		})
	}
	// --info-fd and --json-status-fd: the namespaces made, not the joined
	// ones.
	for _, extra := range [][]string{{"--pidns", "4"}, {"--pidns", "4", "--unshare-pid"}} {
		run := func(exe []string) (string, int) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			files := append(h.files()[:2:2], nil, w)
			args := append(append(append([]string{"--userns", "3", "--info-fd", "6"}, extra...), usrRoot...), "true")
			res := runWithFiles(t, exe, files, args...)
			w.Close()
			var b bytes.Buffer
			_, _ = b.ReadFrom(r)
			return jsonNumbers.ReplaceAllString(b.String(), ": N"), res.code
		}
		bw, bwCode := run([]string{"bwrap"})
		rb, rbCode := run([]string{rboxBin, "bwrap"})
		if bw != rb || bwCode != 0 || rbCode != 0 {
			t.Fatalf("%q: info\nbwrap (exit %d):\n%s\nrbox bwrap (exit %d):\n%s", extra, bwCode, bw, rbCode, rb)
		}
	}
}

// A user namespace whose creator disabled further ones: the assertion
// holds for both, and the command cannot make one.
func TestBwrapJoinAssertUsernsDisabled(t *testing.T) {
	h := newNSHolder(t, true)
	args := append(append([]string{"--userns", "3", "--assert-userns-disabled"}, usrRoot...), "sh", "-c", "unshare -U true 2>/dev/null || echo refused")
	_, rb := compareWithFiles(t, h.files(), args...)
	if rb.code != 0 || rb.stdout != "refused\n" {
		t.Fatalf("%+v", rb)
	}
}

// --userns-block-fd: the sandbox waits, its user namespace made but not
// mapped, while the caller writes the maps for the child-pid that
// --info-fd reports; then it runs with them.
func TestBwrapUsernsBlockFD(t *testing.T) {
	uid, gid := os.Getuid(), os.Getgid()
	run := func(exe []string) string {
		blockR, blockW, _ := os.Pipe()
		infoR, infoW, _ := os.Pipe()
		defer blockW.Close()
		defer infoR.Close()
		args := append(append([]string{"--unshare-user", "--userns-block-fd", "3", "--info-fd", "4", "--uid", "7", "--unshare-pid", "--proc", "/proc"}, usrRoot...),
			"sh", "-c", "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups")
		cmd := exec.Command(exe[0], append(exe[1:], args...)...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		cmd.ExtraFiles = []*os.File{blockR, infoW}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		blockR.Close()
		infoW.Close()
		var info strings.Builder
		sc := bufio.NewScanner(infoR)
		for sc.Scan() {
			info.WriteString(sc.Text() + "\n")
			if sc.Text() == "}" {
				break
			}
		}
		m := regexp.MustCompile(`"child-pid": ([0-9]+)`).FindStringSubmatch(info.String())
		if m == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("%v: no child-pid in %q: %s", exe, info.String(), errb.String())
		}
		// Not mapped yet: nothing ran.
		if data, _ := os.ReadFile("/proc/" + m[1] + "/uid_map"); len(data) != 0 || out.Len() != 0 {
			t.Fatalf("%v: mapped or running before the block descriptor had data: %q %q", exe, data, out.String())
		}
		proc := "/proc/" + m[1]
		for _, w := range []struct{ file, data string }{
			{"uid_map", fmt.Sprintf("0 %d 1\n", uid)}, {"setgroups", "deny"}, {"gid_map", fmt.Sprintf("0 %d 1\n", gid)},
		} {
			if err := os.WriteFile(proc+"/"+w.file, []byte(w.data), 0); err != nil {
				t.Fatalf("%v: write %s: %v", exe, w.file, err)
			}
		}
		_, _ = blockW.Write([]byte{1})
		if err := cmd.Wait(); err != nil {
			t.Fatalf("%v: %v: %s", exe, err, errb.String())
		}
		return out.String()
	}
	bw, rb := run([]string{"bwrap"}), run([]string{rboxBin, "bwrap"})
	// bwrap writes no map and switches to no uid (--uid 7 is not used):
	// the caller's maps hold.
	want := fmt.Sprintf("0\n0\n         0 %10d          1\n         0 %10d          1\ndeny\n", uid, gid)
	if bw != rb || rb != want {
		t.Fatalf("bwrap:\n%s\nrbox bwrap:\n%s\nwant:\n%s", bw, rb, want)
	}
}

// What bwrap refuses of these options before it starts, in its words.
func TestBwrapNamespaceBadInput(t *testing.T) {
	h := newNSHolder(t, false)
	for _, args := range [][]string{
		{"--userns-block-fd", "3", "true"},
		{"--unshare-user", "--userns-block-fd", "3", "true"},
		{"--userns", "3", "--unshare-user", "true"},
		{"--userns", "3", "--unshare-user-try", "true"},
		{"--disable-userns", "true"},
		{"--unshare-user", "--disable-userns", "--userns-block-fd", "3", "--info-fd", "1", "true"},
		{"--userns", "99", "--ro-bind", "/", "/", "true"},
		{"--userns", "4", "--ro-bind", "/", "/", "true"}, // a pid namespace
		{"--userns", "3", "--pidns", "99", "--ro-bind", "/", "/", "true"},
		{"--userns", "3", "--pidns", "3", "--ro-bind", "/", "/", "true"}, // a user namespace
	} {
		bw := runWithFiles(t, []string{"bwrap"}, h.files(), args...)
		rb := runWithFiles(t, []string{rboxBin, "bwrap"}, h.files(), args...)
		bwFirst, _, _ := strings.Cut(bw.stderr, "\n")
		rbFirst, _, _ := strings.Cut(rb.stderr, "\n")
		if bw.code != 1 || rb.code != 1 || bwFirst != rbFirst {
			t.Fatalf("%q:\nbwrap: exit %d %q\nrbox bwrap: exit %d %q", args, bw.code, bw.stderr, rb.code, rb.stderr)
		}
	}
	// bwrap 0.8 reports a bad --userns2 from its monitor and leaves its
	// sandbox process waiting for ever: checked against its words only.
	for _, c := range []struct{ fd, want string }{{"3", "Invalid argument"}, {"99", "Bad file descriptor"}} {
		rb := runWithFiles(t, []string{rboxBin, "bwrap"}, h.files(), "--userns", "3", "--userns2", c.fd, "--ro-bind", "/", "/", "true")
		if rb.code != 1 || rb.stderr != "bwrap: Setting userns2 failed: "+c.want+"\n" {
			t.Fatalf("--userns2 %s: exit %d %q", c.fd, rb.code, rb.stderr)
		}
	}
	// Without --userns the namespace would be entered from the one rbox
	// makes, where the kernel refuses it, as to bwrap run by an ordinary
	// user; rbox says so before it starts (root: by name, as bwrap run by
	// root would stay in the host's user namespace).
	for _, opt := range [][]string{{"--pidns", "4"}, {"--userns2", "5"}} {
		rb := runWithFiles(t, []string{rboxBin, "bwrap"}, h.files(), append(opt, "--ro-bind", "/", "/", "true")...)
		want := map[string]string{"--pidns": "bwrap: Setting pidns failed: Operation not permitted", "--userns2": "bwrap: Setting userns2 failed: Operation not permitted"}[opt[0]]
		if os.Getuid() == 0 {
			want = "bwrap: " + opt[0] + " is not supported by rbox"
		} else if bw := runWithFiles(t, []string{"bwrap"}, h.files(), append(opt, "--ro-bind", "/", "/", "true")...); !strings.HasPrefix(bw.stderr, want) {
			t.Fatalf("bwrap %q: %q", opt, bw.stderr)
		}
		if rb.code != 1 || !strings.HasPrefix(rb.stderr, want) {
			t.Fatalf("%q: exit %d %q, want %q", opt, rb.code, rb.stderr, want)
		}
	}
}
