//go:build integration

package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The default view: system directories read-only, merged-/usr symlinks
// kept, fresh /tmp, /proc, /dev, /sys; the rest of the host absent.
func TestDefaultView(t *testing.T) {
	out := sh(t, `
		for d in /usr /etc; do touch $d/rbox-probe 2>/dev/null && echo "writable $d"; done
		touch /tmp/ok && echo tmp-writable
		touch /rbox-probe 2>/dev/null && echo root-writable
		ls /dev | tr '\n' ' '; echo
		ls /tmp | tr '\n' ' '; echo
		test -e /home && ls /home
		test "$HOME" != /root && test -e /root && echo root-visible
		touch /sys/rbox 2>/dev/null && echo sys-writable
		echo done`)
	for _, bad := range []string{"writable /usr", "writable /etc", "root-writable", "root-visible", "sys-writable"} {
		if strings.Contains(out, bad) {
			t.Errorf("default view: %s\n%s", bad, out)
		}
	}
	if !strings.Contains(out, "tmp-writable") {
		t.Errorf("/tmp is not writable:\n%s", out)
	}
	lines := strings.Split(out, "\n")
	devs := strings.Fields(lines[1])
	want := "console? fd full mqueue null ptmx pts random shm stderr stdin stdout tty urandom zero"
	for _, d := range strings.Fields(want) {
		if strings.HasSuffix(d, "?") {
			continue
		}
		found := false
		for _, x := range devs {
			found = found || x == d
		}
		if !found {
			t.Errorf("/dev lacks %s: %v", d, devs)
		}
	}
	if len(devs) > len(strings.Fields(want))+1 {
		t.Errorf("/dev has more than the documented set: %v", devs)
	}
	if strings.TrimSpace(lines[2]) != "ok" {
		t.Errorf("/tmp is not fresh: %q", lines[2])
	}
	// Merged /usr: /bin is the same symlink as on the host.
	if hostLink, err := os.Readlink("/bin"); err == nil {
		if got := strings.TrimSpace(sh(t, "readlink /bin")); got != hostLink {
			t.Errorf("/bin -> %q inside, %q on the host", got, hostLink)
		}
	}
}

// A host file outside the binds is unreachable, also through /proc/1/root,
// the payload's own /proc/self/root, and .. from a bind.
func TestHostFilesUnreachable(t *testing.T) {
	secretDir := hostDir(t)
	secret := filepath.Join(secretDir, "secret")
	writeFile(t, secret, "TOPSECRET")
	work := hostDir(t)
	out := sh(t, `
		cat `+secret+` 2>/dev/null
		cat /proc/1/root`+secret+` 2>/dev/null
		cat /proc/self/root`+secret+` 2>/dev/null
		cd /work/../../../.. && cat .`+secret+` 2>/dev/null
		ls /proc/1/root/ | tr '\n' ' '
		cat /proc/1/cwd`+secret+` 2>/dev/null
		readlink /proc/1/exe 2>/dev/null && echo exe-readable
		cat /proc/1/exe >/dev/null 2>&1 && echo exe-openable
		readlink /proc/1/fd/0 2>/dev/null && echo fd-readable
		echo end`, "--bind", work+":/work")
	if strings.Contains(out, "TOPSECRET") {
		t.Fatalf("host secret read inside:\n%s", out)
	}
	for _, bad := range []string{"exe-readable", "exe-openable", "fd-readable"} {
		if strings.Contains(out, bad) {
			t.Errorf("pid 1 exposes itself: %s\n%s", bad, out)
		}
	}
	if strings.Contains(out, "home") || strings.Contains(out, "root ") {
		t.Errorf("/proc/1/root shows host directories: %s", out)
	}
}

// Read-only binds refuse writes and a remount to read-write.
func TestReadOnlyBind(t *testing.T) {
	dir := hostDir(t)
	writeFile(t, filepath.Join(dir, "sub", "f"), "x")
	r := rbox(t, "--ro-bind", dir+":/data", "--", "sh", "-c", `
		touch /data/new 2>/dev/null && echo wrote
		touch /data/sub/new 2>/dev/null && echo wrote-sub
		mount -o remount,rw /data 2>/dev/null && echo remounted
		mount -o remount,bind,rw /data 2>/dev/null && echo remounted-bind
		cat /data/sub/f`)
	if r.code != 0 || strings.Contains(r.stdout, "wrote") || strings.Contains(r.stdout, "remounted") || !strings.Contains(r.stdout, "x") {
		t.Fatalf("read-only bind:\n%s", r)
	}
	if _, err := os.Stat(filepath.Join(dir, "new")); err == nil {
		t.Fatal("a file appeared in the read-only bind's source")
	}
}

// A symlink planted in a bind source resolves inside the sandbox, and one
// planted where a later mount goes cannot redirect it onto the host.
func TestPlantedSymlinks(t *testing.T) {
	secretDir := hostDir(t)
	writeFile(t, filepath.Join(secretDir, "secret"), "TOPSECRET")
	src := hostDir(t)
	if err := os.Symlink(filepath.Join(secretDir, "secret"), filepath.Join(src, "evil")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secretDir, filepath.Join(src, "evildir")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/tmp", filepath.Join(src, "tmplink")); err != nil {
		t.Fatal(err)
	}
	other := hostDir(t)
	writeFile(t, filepath.Join(other, "payload"), "PAYLOAD")
	out := sh(t, "cat /work/evil 2>/dev/null; cat /work/evildir/secret 2>/dev/null; cat /tmp/mounted/payload; echo end",
		"--bind", src+":/work", "--ro-bind", other+":/work/tmplink/mounted")
	if strings.Contains(out, "TOPSECRET") {
		t.Fatalf("symlink escaped the sandbox:\n%s", out)
	}
	// The mount followed the symlink as the sandbox sees it: to its /tmp.
	if !strings.Contains(out, "PAYLOAD") {
		t.Fatalf("mount through the symlink did not land inside the sandbox:\n%s", out)
	}
	if _, err := os.Stat("/tmp/mounted"); err == nil {
		t.Fatal("setup created a mount point in the host's /tmp through a planted symlink")
	}
	// A symlink to a host path the sandbox lacks is refused, not followed
	// onto the host.
	r := rbox(t, "--bind", src+":/work", "--ro-bind", other+":/work/evildir/mounted", "--", "true")
	if r.code != 125 || !strings.Contains(r.stderr, "is a symlink to") {
		t.Fatalf("mount through a symlink to a host path: want exit 125 naming the symlink, got\n%s", r)
	}
	if _, err := os.Stat(filepath.Join(secretDir, "mounted")); err == nil {
		t.Fatal("setup created a mount point on the host through a planted symlink")
	}
}

// --tmpfs with size and mode, --dir, --symlink and -w, applied in order.
func TestMountFlags(t *testing.T) {
	dir := hostDir(t)
	writeFile(t, filepath.Join(dir, "file"), "")
	out := sh(t, `
		stat -c %a /scratch; df -k /scratch | tail -1 | awk '{print $2}'
		test -d /made/deep && echo dir-ok
		readlink /link
		pwd
		test -f /scratch/inner/file && echo order-ok`,
		"--tmpfs", "/scratch:size=8m,mode=700", "--dir", "/made/deep", "--symlink", "/scratch:/link",
		"--bind", dir+":/scratch/inner", "-w", "/made")
	f := strings.Fields(out)
	if len(f) < 6 || f[5] != "order-ok" || f[0] != "700" || f[1] != "8192" || f[2] != "dir-ok" || f[3] != "/scratch" || f[4] != "/made" {
		t.Fatalf("mount flags:\n%s", out)
	}
	if out := sh(t, "test -f /scratch/inner/file && echo order-ok", "--tmpfs", "/scratch", "--bind", dir+":/scratch/inner"); !strings.Contains(out, "order-ok") {
		t.Fatal("a bind given after --tmpfs is not visible on top of it")
	}
}

// The sandbox starts in the DST matching the caller's cwd under a bound SRC.
func TestCwdFollowsBind(t *testing.T) {
	dir := hostDir(t)
	if err := os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := rboxCmd(t, func(c *exec.Cmd) { c.Dir = filepath.Join(dir, "a", "b") }, "--bind", dir+":/work", "--", "pwd")
	if strings.TrimSpace(r.stdout) != "/work/a/b" {
		t.Fatalf("cwd inside = %q, want /work/a/b\n%s", r.stdout, r)
	}
	r = rboxCmd(t, func(c *exec.Cmd) { c.Dir = dir }, "--", "pwd")
	if strings.TrimSpace(r.stdout) != "/" {
		t.Fatalf("cwd without a matching bind = %q, want /", r.stdout)
	}
}

// -w into a magic link or outside the root is refused.
func TestChdirRefusesMagicLinks(t *testing.T) {
	for _, dir := range []string{"/proc/self/fd/0", "/proc/1/cwd", "/proc/self/root/etc"} {
		r := rbox(t, "-w", dir, "--", "pwd")
		if r.code != 125 || !strings.Contains(r.stderr, "working directory") {
			t.Errorf("-w %s: want exit 125 naming the working directory, got:\n%s", dir, r)
		}
	}
}

// The host's $HOME is not visible unless bound: the sandbox's $HOME is an
// empty tmpfs of its own (TestHome), and with --home none nothing.
func TestHomeHidden(t *testing.T) {
	home := hostDir(t)
	writeFile(t, home+"/.ssh/id_ed25519", "KEY")
	withHome := func(c *exec.Cmd) { c.Env = append(os.Environ(), "HOME="+home) }
	if r := rboxCmd(t, withHome, "--", "sh", "-c", "ls -A "+home+"; echo end"); r.stdout != "end\n" {
		t.Fatalf("the host's %s shows inside:\n%s", home, r)
	}
	if r := rboxCmd(t, withHome, "--home", "none", "--", "sh", "-c", "test -e "+home+" && echo visible; echo end"); strings.Contains(r.stdout, "visible") {
		t.Fatalf("--home none: %s is visible inside", home)
	}
}
