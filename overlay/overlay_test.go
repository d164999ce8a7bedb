package overlay

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rbox-dev/rbox/internal/nsexec"
	"golang.org/x/sys/unix"
)

// The tests run real mounts: each scenario is a helper process started in
// new user, mount and pid namespaces (like the sandbox's pid 1) by
// re-executing the test binary. They pass as root and as an unprivileged
// user with subordinate ids.

func TestMain(m *testing.M) {
	in, err := nsexec.Child()
	if err != nil {
		fmt.Fprintln(os.Stderr, "namespaced helper:", err)
		os.Exit(125)
	}
	if in {
		if err := helper(os.Args[1], os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "helper", os.Args[1]+":", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runHelper runs helper name in fresh namespaces and returns its stdout.
func runHelper(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := helperCmd(name, args...)
	if err != nil {
		t.Fatalf("helper %s %v: %v", name, args, err)
	}
	return out
}

func helperCmd(name string, args ...string) (string, error) {
	cmd := exec.Command(os.Args[0], append([]string{name}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := nsexec.Start(cmd, unix.CLONE_NEWPID); err != nil {
		return "", err
	}
	if err := cmd.Wait(); err != nil {
		return stdout.String(), fmt.Errorf("%v: %s", err, stderr.String())
	}
	return stdout.String(), nil
}

// testDir returns a directory that is removed, from inside a user
// namespace (it holds files of subordinate ids), when the test ends.
func testDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "rbox-overlay-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := helperCmd("rmall", dir); err != nil {
			t.Errorf("remove %s: %v", dir, err)
		}
	})
	return dir
}

func helper(name string, args []string) error {
	switch name {
	case "rmall":
		return os.RemoveAll(args[0])
	case "probe":
		for _, r := range ProbeAll() {
			fmt.Printf("%s\t%v\n", r.Driver, r.Err)
		}
		d, err := Probe()
		fmt.Printf("auto\t%s\t%v\n", d, err)
		return nil
	case "lowers":
		return makeLowers(args[0])
	case "session":
		return session(Driver(args[0]), args[1], args[2], args[3:])
	case "hold":
		// Mount with fuse-overlayfs, report, and wait to be killed.
		base := args[0]
		upper, work, err := Scratch(filepath.Join(base, "scratch"), 0)
		if err != nil {
			return err
		}
		target := filepath.Join(base, "merged")
		if _, err := Mount(Fuse, []string{filepath.Join(base, "l2"), filepath.Join(base, "l1")}, upper, work, target); err != nil {
			return err
		}
		if _, err := os.Stat(filepath.Join(target, "l1file")); err != nil {
			return err
		}
		fmt.Println("ready")
		if args[1] == "exit" {
			return nil // exit without unmounting
		}
		time.Sleep(time.Hour)
		return nil
	case "many":
		return manyLowers(args[0], Driver(args[1]))
	}
	return fmt.Errorf("unknown helper %q", name)
}

// makeLowers builds two layers: l1 (bottom) and l2 (top, with a whiteout of
// l1's "gone", an opaque directory "opq" and a file owned by 1000:1000).
func makeLowers(base string) error {
	p := func(s ...string) string { return filepath.Join(append([]string{base}, s...)...) }
	for _, d := range []string{"l1/opq", "l1/dir", "l2/opq", "l2/dir", "merged"} {
		if err := os.MkdirAll(p(d), 0o755); err != nil {
			return err
		}
	}
	files := map[string]string{
		"l1/l1file": "one", "l1/gone": "bye", "l1/opq/hidden": "h", "l1/dir/a": "a",
		"l2/opq/visible": "v", "l2/dir/b": "b", "l2/user1000": "mine",
	}
	for f, c := range files {
		if err := os.WriteFile(p(f), []byte(c), 0o644); err != nil {
			return err
		}
	}
	if nsexec.FullMapping() {
		if err := os.Chown(p("l2/user1000"), 1000, 1000); err != nil {
			return err
		}
	}
	if err := unix.Mknod(p("l2/gone"), unix.S_IFCHR, 0); err != nil {
		return err
	}
	return unix.Setxattr(p("l2/opq"), "user.overlay.opaque", []byte("y"), 0)
}

// session mounts the two layers and runs the steps given:
// check-base, write, check-written, check-clean.
func session(d Driver, base, upperMode string, steps []string) error {
	p := func(s ...string) string { return filepath.Join(append([]string{base}, s...)...) }
	var upper, work string
	var err error
	switch upperMode {
	case "scratch":
		upper, work, err = Scratch(p("scratch"), 64<<20)
	case "persist":
		upper = p("upper")
		work = WorkDirFor(upper)
	case "ro":
	}
	if err != nil {
		return err
	}
	target := p("merged")
	cleanup, used, err := MountUsed(d, []string{p("l2"), p("l1")}, upper, work, target)
	if err != nil {
		return err
	}
	m := func(s string) string { return filepath.Join(target, s) }
	for _, step := range steps {
		switch step {
		case "check-base":
			if err := want(m("l1file"), "one"); err != nil {
				return err
			}
			if err := want(m("dir/a"), "a"); err != nil {
				return err
			}
			if err := want(m("dir/b"), "b"); err != nil {
				return err
			}
			if err := want(m("opq/visible"), "v"); err != nil {
				return err
			}
			if err := absent(m("gone")); err != nil {
				return err
			}
			if err := absent(m("opq/hidden")); err != nil {
				return err
			}
			var st unix.Stat_t
			if err := unix.Stat(m("user1000"), &st); err != nil {
				return err
			}
			if want := ownerWanted(); st.Uid != want || st.Gid != want {
				return fmt.Errorf("user1000 owned by %d:%d inside, want %d", st.Uid, st.Gid, want)
			}
		case "write":
			if err := os.WriteFile(m("newfile"), []byte("new"), 0o644); err != nil {
				return err
			}
			if err := os.Remove(m("l1file")); err != nil {
				return err
			}
			if err := os.WriteFile(m("dir/a"), []byte("changed"), 0o644); err != nil {
				return err
			}
			if err := os.Chown(m("newfile"), int(ownerWanted()), int(ownerWanted())); err != nil {
				return err
			}
		case "check-written":
			if err := want(m("newfile"), "new"); err != nil {
				return err
			}
			if err := absent(m("l1file")); err != nil {
				return err
			}
			if err := want(m("dir/a"), "changed"); err != nil {
				return err
			}
		case "check-clean":
			if err := absent(m("newfile")); err != nil {
				return err
			}
			if err := want(m("l1file"), "one"); err != nil {
				return err
			}
			if err := want(m("dir/a"), "a"); err != nil {
				return err
			}
		case "check-ro":
			if err := os.WriteFile(m("newfile"), nil, 0o644); !errors.Is(err, unix.EROFS) {
				return fmt.Errorf("write to a read-only overlay: %v", err)
			}
		case "unmount":
			if err := cleanup(); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unknown step %q", step)
		}
	}
	fmt.Println("used", used)
	// The lowers are never written.
	if err := want(p("l1/l1file"), "one"); err != nil {
		return err
	}
	return want(p("l1/dir/a"), "a")
}

func want(path, content string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if string(b) != content {
		return fmt.Errorf("%s holds %q, want %q", path, b, content)
	}
	return nil
}

func absent(path string) error {
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s should not exist (err %v)", path, err)
	}
	return nil
}

// manyLowers mounts 300 lowers with long paths: more than one page of
// mount options.
func manyLowers(base string, d Driver) error {
	var lowers []string
	long := strings.Repeat("x", 40)
	for i := 0; i < 300; i++ {
		l := filepath.Join(base, fmt.Sprintf("layer-%s-%03d", long, i))
		if err := os.MkdirAll(l, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(l, fmt.Sprintf("f%03d", i)), []byte(strconv.Itoa(i)), 0o644); err != nil {
			return err
		}
		lowers = append([]string{l}, lowers...)
	}
	upper, work, err := Scratch(filepath.Join(base, "scratch"), 0)
	if err != nil {
		return err
	}
	target := filepath.Join(base, "merged")
	if err := os.MkdirAll(target, 0o755); err != nil {
		return err
	}
	cleanup, err := Mount(d, lowers, upper, work, target)
	if err != nil {
		return err
	}
	defer cleanup()
	for _, i := range []int{0, 150, 299} {
		if err := want(filepath.Join(target, fmt.Sprintf("f%03d", i)), strconv.Itoa(i)); err != nil {
			return err
		}
	}
	return nil
}

func TestProbe(t *testing.T) {
	out := runHelper(t, "probe")
	t.Logf("probe:\n%s", out)
	for _, d := range Drivers {
		if !strings.Contains(out, string(d)+"\t<nil>\n") {
			t.Errorf("driver %s does not work here:\n%s", d, out)
		}
	}
	if !strings.Contains(out, "auto\toverlay\t<nil>") {
		t.Errorf("Probe should pick native overlay on this kernel:\n%s", out)
	}
}

func lowersDir(t *testing.T) string {
	base := testDir(t)
	runHelper(t, "lowers", base)
	return base
}

func TestThrowaway(t *testing.T) {
	for _, d := range Drivers {
		t.Run(string(d), func(t *testing.T) {
			base := lowersDir(t)
			out := runHelper(t, "session", string(d), base, "scratch", "check-base", "write", "check-written")
			if !strings.Contains(out, "used "+string(d)) {
				t.Fatalf("driver used: %q", out)
			}
			// A new sandbox sees none of the previous one's writes.
			runHelper(t, "session", string(d), base, "scratch", "check-base", "check-clean")
			// Cleanup unmounts too.
			runHelper(t, "session", string(d), base, "scratch", "write", "unmount")
		})
	}
}

func TestPersistentUpper(t *testing.T) {
	for _, d := range Drivers {
		t.Run(string(d), func(t *testing.T) {
			base := lowersDir(t)
			runHelper(t, "session", string(d), base, "persist", "check-base", "write", "check-written")
			runHelper(t, "session", string(d), base, "persist", "check-written")
			if _, err := os.Stat(filepath.Join(base, "upper", "newfile")); err != nil {
				t.Errorf("upper directory lacks the written file: %v", err)
			}
		})
	}
}

func TestReadOnly(t *testing.T) {
	for _, d := range []Driver{Native, Fuse} {
		t.Run(string(d), func(t *testing.T) {
			base := lowersDir(t)
			runHelper(t, "session", string(d), base, "ro", "check-base", "check-ro")
		})
	}
}

func TestAutoPicksNative(t *testing.T) {
	base := lowersDir(t)
	out := runHelper(t, "session", string(Auto), base, "scratch", "check-base")
	if !strings.Contains(out, "used overlay") {
		t.Fatalf("auto used %q", out)
	}
}

func TestManyLowers(t *testing.T) {
	for _, d := range []Driver{Native, Fuse} {
		t.Run(string(d), func(t *testing.T) {
			runHelper(t, "many", testDir(t), string(d))
		})
	}
}

// fusePids lists fuse-overlayfs processes whose command line mentions dir.
func fusePids(dir string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cl, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		s := string(cl)
		if strings.Contains(s, "fuse-overlayfs") && strings.Contains(s, dir) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func waitNoFuse(t *testing.T, dir string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(fusePids(dir)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("fuse-overlayfs still running: %v", fusePids(dir))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func startHold(t *testing.T, base, mode string, extra uintptr) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "hold", base, mode)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	outp, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := nsexec.Start(cmd, extra); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 6)
	if _, err := outp.Read(buf); err != nil || string(buf) != "ready\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("hold helper: %q %v: %s", buf, err, stderr.String())
	}
	if mode == "wait" && len(fusePids(base)) == 0 {
		t.Fatal("no fuse-overlayfs process while mounted")
	}
	return cmd
}

func TestFuseGoneAfterExit(t *testing.T) {
	base := lowersDir(t)
	cmd := startHold(t, base, "exit", unix.CLONE_NEWPID)
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	waitNoFuse(t, base)
}

func TestFuseGoneAfterKill9(t *testing.T) {
	for _, c := range []struct {
		name  string
		flags uintptr
	}{{"own-pid-ns", unix.CLONE_NEWPID}, {"shared-pid-ns", 0}} {
		t.Run(c.name, func(t *testing.T) {
			base := lowersDir(t)
			cmd := startHold(t, base, "wait", c.flags)
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			cmd.Wait()
			waitNoFuse(t, base)
			// Nothing is left mounted where the host can see it.
			mi, _ := os.ReadFile("/proc/self/mountinfo")
			if strings.Contains(string(mi), base) {
				t.Errorf("host mount table mentions %s", base)
			}
		})
	}
}

func TestParseDriver(t *testing.T) {
	for in, want := range map[string]Driver{"": Auto, "auto": Auto, "overlay": Native, "native": Native, "fuse-overlayfs": Fuse, "vfs": VFS} {
		if got, err := ParseDriver(in); err != nil || got != want {
			t.Errorf("ParseDriver(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseDriver("btrfs"); err == nil {
		t.Error("want error for btrfs")
	}
	if got := WorkDirFor("/a/b/upper/"); got != "/a/b/.upper.rbox-work" {
		t.Errorf("WorkDirFor = %q", got)
	}
}

// ownerWanted is 1000 when the caller has subordinate ids (the files were
// chowned to 1000), else 0: with only the caller mapped, nothing else can
// own a file.
func ownerWanted() uint32 {
	if nsexec.FullMapping() {
		return 1000
	}
	return 0
}
