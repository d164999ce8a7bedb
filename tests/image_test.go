//go:build integration

package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// drivers are the overlay drivers each storage test runs with.
var drivers = []string{"overlay", "fuse-overlayfs"}

// A directory as /, read-only.
func TestRootfsReadOnly(t *testing.T) {
	root := rootfsDir(t)
	r := rbox(t, "--rootfs", root, "--", "/bin/sh", "-c", "cat /etc/passwd; touch /new")
	if r.code == 0 || !strings.Contains(r.stderr, "Read-only file system") {
		t.Fatalf("writing to a read-only rootfs:\n%s", r)
	}
	if !strings.Contains(r.stdout, "user:x:1000") {
		t.Errorf("rootfs content not seen:\n%s", r)
	}
}

// --overlay: writes go to a tmpfs and vanish; the directory is untouched.
func TestRootfsOverlayThrowaway(t *testing.T) {
	for _, d := range drivers {
		t.Run(d, func(t *testing.T) {
			root := rootfsDir(t)
			sh := func(script string) string {
				r := rbox(t, "--rootfs", root, "--overlay", "--storage-driver", d, "--", "/bin/sh", "-c", script)
				if r.code != 0 {
					t.Fatalf("%s:\n%s", script, r)
				}
				return r.stdout
			}
			sh("echo new > /new && rm /etc/base-only && cat /new")
			if out := sh("ls /new /etc/base-only 2>&1; true"); strings.Contains(out, "/new\n") || !strings.Contains(out, "/etc/base-only") {
				t.Errorf("second run sees the first one's changes: %q", out)
			}
			if _, err := os.Stat(filepath.Join(root, "etc/base-only")); err != nil {
				t.Errorf("rootfs changed: %v", err)
			}
		})
	}
}

// --overlay-dir: writes are kept in the directory and seen by the next run.
func TestRootfsOverlayDirPersists(t *testing.T) {
	for _, d := range drivers {
		t.Run(d, func(t *testing.T) {
			root := rootfsDir(t)
			upper := filepath.Join(hostDir(t), "upper")
			run := func(script string) string {
				r := rbox(t, "--rootfs", root, "--overlay-dir", upper, "--storage-driver", d, "--", "/bin/sh", "-c", script)
				if r.code != 0 {
					t.Fatalf("%s:\n%s", script, r)
				}
				return r.stdout
			}
			run("echo kept > /kept && rm /etc/base-only")
			if out := run("cat /kept; ls /etc/base-only 2>&1; true"); !strings.HasPrefix(out, "kept\n") || !strings.Contains(out, "No such file") {
				t.Errorf("second run: %q", out)
			}
			if b, err := os.ReadFile(filepath.Join(upper, "kept")); err != nil || string(b) != "kept\n" {
				t.Errorf("upper directory: %q %v", b, err)
			}
			if _, err := os.Stat(filepath.Join(root, "etc/base-only")); err != nil {
				t.Errorf("rootfs changed: %v", err)
			}
		})
	}
}

// --overlay alone makes the host view writable, throw-away.
func TestHostViewOverlay(t *testing.T) {
	marker := fmt.Sprintf("/etc/rbox-overlay-test-%d", os.Getpid())
	out := sh(t, "echo x > "+marker+" && cat "+marker+" && mkdir -p /var/rbox-test && echo ok", "--overlay")
	if out != "x\nok\n" {
		t.Errorf("inside: %q", out)
	}
	if _, err := os.Stat(marker); err == nil {
		os.Remove(marker)
		t.Fatal("a write under --overlay reached the host")
	}
}

// checkImage checks the test image's files, owners and config inside.
func checkImage(t *testing.T, s, img string, flags ...string) {
	t.Helper()
	id := me(t)
	owner := "1000"
	if !id.full() {
		owner = "0" // only the caller is mapped: the store squashes owners
	}
	out := inImage(t, s, img, "stat -c %u:%g /home/user/file; cat /home/user/file; echo; ls /etc/base-only /opq/old 2>&1; cat /opq/new", append([]string{"--uid", "0", "--gid", "0"}, flags...)...)
	want := owner + ":" + owner + "\nhello\n"
	if !strings.HasPrefix(out, want) || !strings.Contains(out, "/etc/base-only: No such file") ||
		!strings.Contains(out, "/opq/old: No such file") || !strings.HasSuffix(out, "new") {
		t.Errorf("image content:\n%s\nwant owner %s, whiteout and opaque directory honoured", out, owner)
	}
	if !id.full() {
		return // the image's user 1000 does not exist in this sandbox
	}
	// No command: the image's Cmd, as its User, in its WorkingDir, with
	// its Env.
	r := rbox(t, append([]string{"--storage-root", s, "--image", img}, flags...)...)
	if r.code != 0 || r.stdout != "hi\n1000\n/home/user\n" {
		t.Errorf("image command:\n%s", r)
	}
}

func TestImagePullAndRun(t *testing.T) {
	reg := testRegistry(t)
	ref := reg + "/test/busybox:1"
	pushImage(t, ref, testImage(t, false))
	s := store(t)
	r := image(t, s, "pull", ref)
	if r.code != 0 {
		t.Fatalf("pull:\n%s", r)
	}
	if !strings.Contains(r.stderr, "Copying blob") || strings.Contains(r.stderr, "\x1b[") {
		t.Errorf("pull progress on a pipe should be plain lines:\n%s", r.stderr)
	}
	for _, d := range drivers {
		t.Run(d, func(t *testing.T) { checkImage(t, s, ref, "--storage-driver", d) })
	}
	if out := image(t, s, "ls"); !strings.Contains(out.stdout, ref) {
		t.Errorf("ls:\n%s", out)
	}
	// Arguments replace the image's Cmd; the caller's environment does not
	// leak in, --env does.
	flags := []string{"--env", "EXTRA=e"}
	if !me(t).full() {
		flags = append(flags, "--uid", "0", "--gid", "0")
		// Without subordinate ids the image's user cannot be mapped.
		r := rbox(t, "--storage-root", s, "--image", ref)
		if r.code != 125 || !strings.Contains(r.stderr, "cannot map") {
			t.Errorf("image user without subordinate ids:\n%s", r)
		}
	}
	t.Setenv("HOSTTHING", "leak")
	out := inImage(t, s, ref, "echo $GREETING $HOSTTHING $EXTRA", flags...)
	if out != "hi e\n" {
		t.Errorf("environment: %q", out)
	}
}

func TestImageLoadArchives(t *testing.T) {
	s := store(t)
	dir := hostDir(t)
	docker, oci := filepath.Join(dir, "docker.tar"), filepath.Join(dir, "oci.tar")
	dockerArchive(t, docker, "example.com/test/docker:1", testImage(t, false))
	ociArchive(t, oci, "example.com/test/oci:1", testImage(t, true))
	for _, c := range []struct{ archive, name string }{{docker, "example.com/test/docker:1"}, {oci, "example.com/test/oci:1"}} {
		if r := image(t, s, "load", c.archive); r.code != 0 || !strings.Contains(r.stdout, c.name) {
			t.Fatalf("load %s:\n%s", c.archive, r)
		}
		checkImage(t, s, c.name)
	}
}

func TestImageImportTarball(t *testing.T) {
	s := store(t)
	tarball := filepath.Join(hostDir(t), "minirootfs.tar.gz")
	writeFile(t, tarball, string(gzipped(t, tarOf(t, busyboxEntries(t)))))
	if r := image(t, s, "import", tarball, "mini"); r.code != 0 {
		t.Fatalf("import:\n%s", r)
	}
	if out := inImage(t, s, "mini", "cat /etc/base-only; echo $PATH"); !strings.HasPrefix(out, "deleted above/") {
		t.Errorf("imported image: %q", out)
	}
}

func TestBadInputRejected(t *testing.T) {
	s := store(t)
	dir := hostDir(t)
	good := filepath.Join(dir, "good.tar")
	writeFile(t, good, string(tarOf(t, busyboxEntries(t))))
	if r := image(t, s, "import", good, "good"); r.code != 0 {
		t.Fatal(r)
	}
	before := image(t, s, "ls", "--quiet").stdout
	full := gzipped(t, tarOf(t, busyboxEntries(t)))
	for name, data := range map[string][]byte{
		"traversal": tarOf(t, []tarEntry{tFile("../../etc/evil", "x")}),
		"absolute":  tarOf(t, []tarEntry{tFile("/etc/evil", "x")}),
		"symlink":   tarOf(t, []tarEntry{tLink("l", "/"), tFile("l/evil", "x")}),
		"truncated": full[:len(full)/2],
		"garbage":   []byte(strings.Repeat("garbage ", 200)),
	} {
		p := filepath.Join(dir, name+".tar")
		writeFile(t, p, string(data))
		r := image(t, s, "import", p, "bad")
		if r.code != 125 || !strings.Contains(r.stderr, "bad image input") {
			t.Errorf("%s: want exit 125 and a clear error:\n%s", name, r)
		}
	}
	if r := rbox(t, "--storage-root", s, "--image", "no-such-image", "--", "true"); r.code != 125 || !strings.Contains(r.stderr, "image not known") {
		t.Errorf("unknown image:\n%s", r)
	}
	if after := image(t, s, "ls", "--quiet").stdout; after != before {
		t.Errorf("store changed: %q -> %q", before, after)
	}
}

// startBackground starts rbox and waits until the command printed ready.
func startBackground(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(rboxBin, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	buf := make([]byte, 6)
	if _, err := out.Read(buf); err != nil || string(buf) != "ready\n" {
		t.Fatalf("background rbox said %q (%v)", buf, err)
	}
	return cmd
}

func TestImageInUseAndConcurrentRuns(t *testing.T) {
	s := store(t)
	tarball := filepath.Join(hostDir(t), "rootfs.tar")
	writeFile(t, tarball, string(tarOf(t, busyboxEntries(t))))
	if r := image(t, s, "import", tarball, "busy"); r.code != 0 {
		t.Fatal(r)
	}
	a := startBackground(t, "--storage-root", s, "--image", "busy", "--", "/bin/sh", "-c", "echo a > /tmp/mine; echo a > /a; echo ready; sleep 60")
	b := startBackground(t, "--storage-root", s, "--image", "busy", "--", "/bin/sh", "-c", "echo b > /b; echo ready; ls /a 2>&1; sleep 60")
	if r := image(t, s, "rm", "busy"); r.code != 125 || !strings.Contains(r.stderr, "in use") {
		t.Fatalf("rm while running:\n%s", r)
	}
	// kill -9 of one sandbox: the other still holds the image.
	a.Process.Signal(syscall.SIGKILL)
	a.Wait()
	if r := image(t, s, "rm", "busy"); r.code != 125 {
		t.Fatalf("rm while one still runs:\n%s", r)
	}
	b.Process.Signal(syscall.SIGKILL)
	b.Wait()
	waitFor(t, "the sandboxes to end", 10*time.Second, func() bool {
		return image(t, s, "rm", "busy").code == 0
	})
	if out := image(t, s, "ls", "--quiet").stdout; out != "" {
		t.Errorf("images left: %q", out)
	}
}

// fuseChildren lists fuse-overlayfs processes whose ancestry includes pid.
func fuseDescendants(pid int) []int {
	var out []int
	for _, p := range processesWith("fuse-overlayfs") {
		for q := p; q > 1; q = parentOf(q) {
			if q == pid {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

func parentOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

func TestNoFuseLeftAfterKill9(t *testing.T) {
	s := store(t)
	tarball := filepath.Join(hostDir(t), "rootfs.tar")
	writeFile(t, tarball, string(tarOf(t, busyboxEntries(t))))
	if r := image(t, s, "import", tarball, "busy"); r.code != 0 {
		t.Fatal(r)
	}
	for _, share := range [][]string{nil, {"--share", "pid"}} {
		args := append([]string{"--storage-root", s, "--storage-driver", "fuse-overlayfs", "--image", "busy"}, share...)
		cmd := startBackground(t, append(args, "--", "/bin/sh", "-c", "echo ready; sleep 60")...)
		fuse := fuseDescendants(cmd.Process.Pid)
		if len(fuse) == 0 {
			t.Fatalf("%v: no fuse-overlayfs process under rbox", share)
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		waitFor(t, "fuse-overlayfs to exit", 10*time.Second, func() bool {
			for _, p := range fuse {
				if _, err := os.Stat(fmt.Sprintf("/proc/%d", p)); err == nil {
					return false
				}
			}
			return true
		})
		if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), "fuse-overlayfs") {
			t.Errorf("a fuse-overlayfs mount is visible on the host")
		}
	}
	// Exiting normally leaves nothing either.
	cmd := startBackground(t, "--storage-root", s, "--storage-driver", "fuse-overlayfs", "--image", "busy", "--", "/bin/sh", "-c", "echo ready; sleep 1")
	fuse := fuseDescendants(cmd.Process.Pid)
	if len(fuse) == 0 {
		t.Fatal("no fuse-overlayfs process under rbox")
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "fuse-overlayfs to exit", 10*time.Second, func() bool {
		for _, p := range fuse {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", p)); err == nil {
				return false
			}
		}
		return true
	})
}

func TestCheckReportsStorage(t *testing.T) {
	r := rbox(t, "check")
	var overlay, helper bool
	for _, l := range strings.Split(r.stdout, "\n") {
		f := strings.Fields(l)
		if len(f) > 2 && f[0] == "pass" && f[1] == "overlayfs" && strings.Contains(l, "--overlay and --image use it") {
			overlay = true
		}
		if len(f) > 2 && f[0] == "pass" && f[1] == "rbox-image" {
			helper = true
		}
	}
	if !overlay || !helper {
		t.Errorf("rbox check should say native overlay works and find rbox-image:\n%s", r)
	}
}
