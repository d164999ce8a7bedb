package fsetup

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/internal/nsexec"
	"github.com/rbox-dev/rbox/spec"
	"github.com/rbox-dev/rbox/sysplan"
)

// The tests run Build in this test binary re-executed in new user, mount,
// pid, network and IPC namespaces (nsexec), where it becomes the sandbox's
// root; the child then looks at what it sees and reports as JSON.

const envRequest = "RBOX_FSETUP_TEST_REQUEST"

func TestMain(m *testing.M) {
	in, err := nsexec.Child()
	if err != nil {
		fmt.Fprintln(os.Stderr, "nsexec child:", err)
		os.Exit(125)
	}
	if in {
		os.Exit(child(os.Getenv(envRequest)))
	}
	os.Exit(m.Run())
}

// request is what the child builds and then looks at.
type request struct {
	Config Config
	Read   []string // files to read
	Write  []string // files to create
	Exists []string // paths to lstat
	Links  []string // symlinks to read
	Devs   []string // paths whose device number to report
	// ViaPlan runs Plan's Program instead of Build, the caller's slots
	// preset, as the fast path would.
	ViaPlan bool
}

// report is what the child saw.
type report struct {
	Err    string // Build's error
	Step   string // and its step, when an op failed
	Errno  int
	Read   map[string]string // content, or "error: ..."
	Write  map[string]string // "" when created, else the error
	Exists map[string]bool
	Links  map[string]string
	Devs   map[string]uint64
	Cwd    string
	// CallerSlots are the caller's slots after the plan ran (ViaPlan).
	CallerSlots []uintptr
}

func child(req string) int {
	var r request
	if err := json.Unmarshal([]byte(req), &r); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var rep report
	build := Build
	if r.ViaPlan {
		build = func(cfg *Config) error {
			var p sysplan.Program
			for s := FirstCallerSlot; s < sysplan.NumSlots; s++ {
				p.Slots[s] = 1000 + uintptr(s)
			}
			defer func() { rep.CallerSlots = p.Slots[FirstCallerSlot:] }()
			if err := Plan(&p, cfg); err != nil {
				return err
			}
			p.Finish()
			return p.Run()
		}
	}
	if err := build(&r.Config); err != nil {
		rep.Err = err.Error()
		var f *sysplan.Failure
		if errors.As(err, &f) {
			rep.Step, rep.Errno = f.Step, int(f.Errno)
		}
	} else {
		rep.Read, rep.Write, rep.Exists, rep.Links = map[string]string{}, map[string]string{}, map[string]bool{}, map[string]string{}
		rep.Devs = map[string]uint64{}
		for _, p := range r.Read {
			b, err := os.ReadFile(p)
			if err != nil {
				rep.Read[p] = "error: " + err.Error()
			} else {
				rep.Read[p] = string(b)
			}
		}
		for _, p := range r.Write {
			rep.Write[p] = ""
			if err := os.WriteFile(p, []byte("written"), 0o644); err != nil {
				rep.Write[p] = err.Error()
			}
		}
		for _, p := range r.Exists {
			_, err := os.Lstat(p)
			rep.Exists[p] = err == nil
		}
		for _, p := range r.Devs {
			var st unix.Stat_t
			if unix.Stat(p, &st) == nil {
				rep.Devs[p] = st.Dev
			}
		}
		for _, p := range r.Links {
			rep.Links[p], _ = os.Readlink(p)
		}
		rep.Cwd, _ = os.Getwd()
	}
	if err := json.NewEncoder(os.Stdout).Encode(&rep); err != nil {
		return 2
	}
	return 0
}

// build runs Build with r in new user, mount, pid, network and IPC
// namespaces and returns what was seen.
func build(t *testing.T, r request) report {
	t.Helper()
	return buildIn(t, r, unix.CLONE_NEWPID|unix.CLONE_NEWNET|unix.CLONE_NEWIPC)
}

// buildIn runs Build with r in new user and mount namespaces and those of
// flags.
func buildIn(t *testing.T, r request, flags uintptr) report {
	t.Helper()
	req, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), envRequest+"="+string(req))
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := nsexec.Start(cmd, flags); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v\n%s", err, errb.String())
	}
	var rep report
	if err := json.Unmarshal([]byte(out.String()), &rep); err != nil {
		t.Fatalf("child's report %q: %v\n%s", out.String(), err, errb.String())
	}
	return rep
}

// config is the configuration a sandbox of its own namespaces gets.
func config(mounts ...spec.Mount) Config {
	return Config{Mounts: mounts, NewPID: true, NewNet: true, NewIPC: true, MaskProc: true, TTYGID: -1}
}

// hostDir is a temporary directory the unprivileged caller's sandbox can
// read and write.
func hostDir(t *testing.T) string {
	d := t.TempDir()
	if err := os.Chmod(d, 0o777); err != nil {
		t.Fatal(err)
	}
	return d
}

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestBuildDefaultView(t *testing.T) {
	rw, ro := hostDir(t), hostDir(t)
	writeFile(t, filepath.Join(rw, "f"), "RW")
	writeFile(t, filepath.Join(ro, "f"), "RO")
	if err := os.Mkdir(filepath.Join(rw, "sub"), 0o777); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(hostDir(t), "file")
	writeFile(t, file, "FILE")
	cfg := config(
		spec.Mount{Kind: spec.MountBind, Source: rw, Dest: "/work"},
		spec.Mount{Kind: spec.MountROBind, Source: ro, Dest: "/deep/ro"},
		spec.Mount{Kind: spec.MountROBind, Source: file, Dest: "/files/x/file"},
		spec.Mount{Kind: spec.MountTmpfs, Dest: "/scratch", Mode: 0o700, SizeBytes: 1 << 20},
		spec.Mount{Kind: spec.MountDir, Dest: "/made/deep"},
		spec.Mount{Kind: spec.MountSymlink, Source: "/scratch", Dest: "/made/link"},
		spec.Mount{Kind: spec.MountBind, Source: ro, Dest: "/scratch/inner"},
	)
	cfg.Console = true
	cfg.Files = []File{{Dest: "/etc/resolv.conf", Data: []byte("nameserver 192.0.2.1\n")}, {Dest: "/etc/hostname"}}
	cfg.Cwd = "/work/sub"
	rep := build(t, request{
		Config: cfg,
		Read:   []string{"/work/f", "/deep/ro/f", "/files/x/file", "/etc/resolv.conf", "/etc/hostname", "/scratch/inner/f", "/proc/keys", "/proc/self/comm"},
		Write:  []string{"/work/new", "/deep/ro/new", "/scratch/new", "/new", "/etc/new", "/tmp/new", "/proc/sys/kernel/hostname", "/dev/shm/new"},
		Exists: []string{"/oldroot", "/newroot", "/usr/bin/sh", "/dev/null", "/dev/console", "/dev/pts/ptmx", "/dev/mqueue", "/made/deep", "/sys/class/net/lo", "/sys/firmware/" + firstEntry(t, "/sys/firmware"), rw},
		Links:  []string{"/made/link", "/dev/fd", "/dev/ptmx"},
		Devs:   []string{"/proc", "/sys"},
	})
	if rep.Err != "" {
		t.Fatalf("Build: %s", rep.Err)
	}
	for _, p := range []string{"/proc", "/sys"} {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		if rep.Devs[p] == st.Dev || rep.Devs[p] == 0 {
			t.Errorf("%s is not a fresh mount (device %d)", p, rep.Devs[p])
		}
	}
	wantRead := map[string]string{
		"/work/f": "RW", "/deep/ro/f": "RO", "/files/x/file": "FILE", "/etc/resolv.conf": "nameserver 192.0.2.1\n",
		"/etc/hostname": "", "/scratch/inner/f": "RO", "/proc/keys": "",
	}
	for p, want := range wantRead {
		if rep.Read[p] != want {
			t.Errorf("%s reads %q, want %q", p, rep.Read[p], want)
		}
	}
	if !strings.HasPrefix(rep.Read["/proc/self/comm"], "fsetup") {
		t.Errorf("/proc/self/comm = %q", rep.Read["/proc/self/comm"])
	}
	for _, p := range []string{"/work/new", "/scratch/new", "/tmp/new", "/dev/shm/new"} {
		if rep.Write[p] != "" {
			t.Errorf("create %s: %s", p, rep.Write[p])
		}
	}
	for _, p := range []string{"/deep/ro/new", "/new", "/etc/new", "/proc/sys/kernel/hostname"} {
		if !strings.Contains(rep.Write[p], "read-only file system") {
			t.Errorf("create %s: %q, want read-only file system", p, rep.Write[p])
		}
	}
	if b, err := os.ReadFile(filepath.Join(rw, "new")); err != nil || string(b) != "written" {
		t.Errorf("write through the bind not seen on the host: %q %v", b, err)
	}
	for p, want := range map[string]bool{
		"/oldroot": false, "/newroot": false, "/usr/bin/sh": true, "/dev/null": true, "/dev/console": true,
		"/dev/pts/ptmx": true, "/dev/mqueue": true, "/made/deep": true, "/sys/class/net/lo": true, rw: false,
	} {
		if rep.Exists[p] != want {
			t.Errorf("%s exists: %v, want %v", p, rep.Exists[p], want)
		}
	}
	for p, e := range rep.Exists {
		if strings.HasPrefix(p, "/sys/firmware/") && p != "/sys/firmware/" && e {
			t.Errorf("%s is not masked", p)
		}
	}
	for p, want := range map[string]string{"/made/link": "/scratch", "/dev/fd": "/proc/self/fd", "/dev/ptmx": "pts/ptmx"} {
		if rep.Links[p] != want {
			t.Errorf("%s -> %q, want %q", p, rep.Links[p], want)
		}
	}
	if rep.Cwd != "/work/sub" {
		t.Errorf("cwd %q, want /work/sub", rep.Cwd)
	}
}

// Where the kernel refuses a fresh /proc (a pid namespace that is not the
// sandbox's, as in a nested sandbox under masks) or sysfs, the host's are
// bound instead, masks and all.
func TestBuildFallbacks(t *testing.T) {
	cfg := config()
	cfg.NewIPC = false
	rep := buildIn(t, request{
		Config: cfg,
		Read:   []string{"/proc/1/comm", "/proc/keys"},
		Write:  []string{"/sys/new"},
		Exists: []string{"/sys/class/net/lo"},
		Devs:   []string{"/proc", "/sys"},
	}, 0)
	if rep.Err != "" {
		t.Fatal(rep.Err)
	}
	for _, p := range []string{"/proc", "/sys"} {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		if rep.Devs[p] != st.Dev {
			t.Errorf("%s is not the host's (device %d, want %d)", p, rep.Devs[p], st.Dev)
		}
	}
	comm, _ := os.ReadFile("/proc/1/comm")
	if rep.Read["/proc/1/comm"] != string(comm) || rep.Read["/proc/keys"] != "" || !rep.Exists["/sys/class/net/lo"] {
		t.Errorf("host /proc and /sys: %+v", rep)
	}
	for p, err := range rep.Write {
		if !strings.Contains(err, "read-only file system") {
			t.Errorf("create %s: %q, want read-only file system", p, err)
		}
	}
}

// firstEntry names an entry of the host directory dir, or "" when it has
// none.
func firstEntry(t *testing.T, dir string) string {
	es, err := os.ReadDir(dir)
	if err != nil || len(es) == 0 {
		return ""
	}
	return es[0].Name()
}

// A bind of a missing source fails in the op that opens it, and the step
// names the bind and the path.
func TestBuildMissingSource(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	rep := build(t, request{Config: config(spec.Mount{Kind: spec.MountBind, Source: missing, Dest: "/x"})})
	want := "bind " + missing + " on /x: open " + missing
	if rep.Step != want || syscall.Errno(rep.Errno) != unix.ENOENT {
		t.Fatalf("step %q errno %d (%s), want %q ENOENT", rep.Step, rep.Errno, rep.Err, want)
	}
	if !strings.HasSuffix(rep.Err, "no such file or directory") {
		t.Errorf("error %q", rep.Err)
	}
}

// A working directory outside the root or through a magic link is refused.
func TestBuildCwdRefused(t *testing.T) {
	for _, dir := range []string{"/no/such/dir", "/proc/self/cwd", "/proc/1/root/etc"} {
		cfg := config()
		cfg.Cwd = dir
		rep := build(t, request{Config: cfg})
		if !strings.HasPrefix(rep.Step, "working directory "+dir) || rep.Errno == 0 {
			t.Errorf("-w %s: step %q (%s)", dir, rep.Step, rep.Err)
		}
	}
}

// Symlinks planted in a bound directory resolve inside the new root: a
// mount through one lands in the sandbox, one to a host path the sandbox
// lacks is refused with its name, and nothing is created on the host.
func TestBuildPlantedSymlinks(t *testing.T) {
	secret := hostDir(t)
	writeFile(t, filepath.Join(secret, "secret"), "TOPSECRET")
	src := hostDir(t)
	for link, target := range map[string]string{
		"evil": filepath.Join(secret, "secret"), "evildir": secret, "tmplink": "/tmp",
		"abs": "/../../../" + secret, "magic": "/proc/self/root" + secret,
		// Out of the new root (/newroot/work/rel) to the host's root at
		// /oldroot, were it resolved from the setup root.
		"rel": "../../../../../../oldroot" + secret,
	} {
		if err := os.Symlink(target, filepath.Join(src, link)); err != nil {
			t.Fatal(err)
		}
	}
	other := hostDir(t)
	writeFile(t, filepath.Join(other, "payload"), "PAYLOAD")
	file := filepath.Join(hostDir(t), "file")
	writeFile(t, file, "FILE")
	bind := func(src, dst string) spec.Mount { return spec.Mount{Kind: spec.MountBind, Source: src, Dest: dst} }

	rep := build(t, request{
		Config: config(bind(src, "/work"), bind(other, "/work/tmplink/mounted")),
		Read:   []string{"/work/evil", "/work/evildir/secret", "/tmp/mounted/payload"},
	})
	if rep.Err != "" {
		t.Error(rep.Err)
	}
	if rep.Read["/tmp/mounted/payload"] != "PAYLOAD" {
		t.Errorf("mount through the symlink did not land inside the sandbox: %q", rep.Read["/tmp/mounted/payload"])
	}
	for _, p := range []string{"/work/evil", "/work/evildir/secret"} {
		if strings.Contains(rep.Read[p], "TOPSECRET") {
			t.Errorf("%s escaped the sandbox", p)
		}
	}

	for _, c := range []struct{ m spec.Mount }{
		{bind(other, "/work/evildir/mounted")},
		{bind(other, "/work/abs/mounted")},
		{bind(other, "/work/rel/mounted")},
		{bind(file, "/work/evildir/file")},
	} {
		rep := build(t, request{Config: config(bind(src, "/work"), c.m)})
		link := filepath.Dir(c.m.Dest)
		if !strings.Contains(rep.Step, link+" is a symlink to") || rep.Errno == 0 {
			t.Errorf("%s: want a failure naming the symlink %s, got %q", c.m.Dest, link, rep.Err)
		}
	}
	// A symlink through /proc is a magic link inside the sandbox's /proc:
	// refused.
	rep = build(t, request{Config: config(bind(src, "/work"), bind(other, "/work/magic/mounted"))})
	if rep.Errno == 0 {
		t.Errorf("mount through a magic link: no error")
	}
	// A file mount point that is a planted symlink is never created.
	rep = build(t, request{Config: config(bind(src, "/work"), bind(file, "/work/evil"))})
	if rep.Step != "bind "+file+" on /work/evil: open /work/evil" || syscall.Errno(rep.Errno) != unix.ENOENT {
		t.Errorf("file mount on a planted symlink: %q", rep.Err)
	}
	es, err := os.ReadDir(secret)
	if err != nil || len(es) != 1 {
		t.Errorf("setup created something on the host beside the secret: %v %v", es, err)
	}
}

// A rootfs directory, read-only and made writable by an overlay whose
// writes stay in the sandbox: the Go code in the middle of the setup.
func TestBuildRootFS(t *testing.T) {
	root := hostDir(t)
	for _, d := range []string{"bin", "etc", "proc", "sys", "dev", "tmp"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(root, "etc", "os-release"), "ROOTFS")
	// A generated file needs its mount point in a read-only root.
	writeFile(t, filepath.Join(root, "etc", "resolv.conf"), "")
	cfg := config()
	cfg.RootLowers = []string{root}
	cfg.Files = []File{{Dest: "/etc/resolv.conf", Data: []byte("nameserver 192.0.2.1\n")}}
	rep := build(t, request{Config: cfg, Read: []string{"/etc/os-release", "/etc/resolv.conf"}, Write: []string{"/etc/new"}, Exists: []string{"/usr", "/dev/null"}})
	if rep.Err != "" {
		t.Fatal(rep.Err)
	}
	if rep.Read["/etc/os-release"] != "ROOTFS" || rep.Read["/etc/resolv.conf"] != "nameserver 192.0.2.1\n" {
		t.Errorf("rootfs content: %v", rep.Read)
	}
	if !strings.Contains(rep.Write["/etc/new"], "read-only file system") {
		t.Errorf("create /etc/new in a read-only rootfs: %q", rep.Write["/etc/new"])
	}
	if rep.Exists["/usr"] || !rep.Exists["/dev/null"] {
		t.Errorf("exists: %v", rep.Exists)
	}

	drivers := []string{"overlay"}
	if _, err := exec.LookPath("fuse-overlayfs"); err == nil {
		drivers = append(drivers, "fuse-overlayfs")
	}
	for _, d := range drivers {
		cfg.Overlay, cfg.Driver = true, d
		rep = build(t, request{Config: cfg, Read: []string{"/etc/os-release"}, Write: []string{"/etc/new"}})
		if rep.Err != "" {
			t.Fatalf("%s: %s", d, rep.Err)
		}
		if rep.Read["/etc/os-release"] != "ROOTFS" || rep.Write["/etc/new"] != "" {
			t.Errorf("%s: overlay root: %+v", d, rep)
		}
		if _, err := os.Stat(filepath.Join(root, "etc", "new")); err == nil {
			t.Errorf("%s: a write in the overlay reached the rootfs", d)
		}
	}
}

// The host view made writable: each system directory is an overlay.
func TestBuildWritableHostView(t *testing.T) {
	cfg := config()
	cfg.Overlay = true
	rep := build(t, request{Config: cfg, Write: []string{"/etc/rbox-fsetup-test"}, Exists: []string{"/usr/bin/sh"}})
	if rep.Err != "" {
		t.Fatal(rep.Err)
	}
	if rep.Write["/etc/rbox-fsetup-test"] != "" || !rep.Exists["/usr/bin/sh"] {
		t.Errorf("writable host view: %+v", rep)
	}
	if _, err := os.Stat("/etc/rbox-fsetup-test"); err == nil {
		t.Error("a write in the overlay reached the host")
	}
}

// Plan leaves custom roots to Build and refuses unknown mounts.
func TestPlanRefuses(t *testing.T) {
	cfg := config()
	cfg.RootLowers = []string{"/"}
	if err := Plan(new(sysplan.Program), &cfg); !errors.Is(err, ErrCustomRoot) {
		t.Errorf("custom root: %v", err)
	}
	cfg = config(spec.Mount{Kind: "weird", Dest: "/x"})
	if err := Plan(new(sysplan.Program), &cfg); err == nil {
		t.Error("unknown mount kind accepted")
	}
}

// Every op of a plan belongs to a step naming what it does and where, and
// the plan leaves the caller's slots alone.
func TestPlanSteps(t *testing.T) {
	cfg := config(spec.Mount{Kind: spec.MountROBind, Source: "/home/u/src", Dest: "/work"})
	cfg.Cwd = "/work"
	var p sysplan.Program
	if err := Plan(&p, &cfg); err != nil {
		t.Fatal(err)
	}
	p.Finish()
	steps := map[string]bool{}
	for i := 0; i < p.Len(); i++ {
		s := p.Describe(i, 0).Step
		if s == "setup" {
			t.Errorf("op %d has no step", i)
		}
		steps[s] = true
	}
	for _, want := range []string{
		"ro-bind /home/u/src on /work: open /home/u/src",
		"ro-bind /home/u/src on /work: mkdir /work",
		"ro-bind /home/u/src on /work: open_tree",
		"ro-bind /home/u/src on /work: mount_setattr",
		"ro-bind /home/u/src on /work: move_mount",
		"mount /proc: fsopen proc",
		"mask /proc/kcore: look up /proc/kcore",
		"make /proc/sys read-only: open_tree",
		"bind /dev/zero on /dev/zero: create /dev/zero",
		"symlink /dev/fd -> /proc/self/fd: symlinkat",
		"make / read-only: mount_setattr",
		"enter the new root: pivot_root",
		"working directory /work",
	} {
		if !steps[want] {
			t.Errorf("no step %q", want)
		}
	}
}

// Plan's ops, run as the fast path runs them, build the same root and
// leave the caller's slots as they were.
func TestPlanRun(t *testing.T) {
	dir := hostDir(t)
	writeFile(t, filepath.Join(dir, "f"), "RW")
	cfg := config(spec.Mount{Kind: spec.MountBind, Source: dir, Dest: "/work"})
	cfg.Cwd = "/work"
	rep := build(t, request{Config: cfg, ViaPlan: true, Read: []string{"f", "/proc/keys"}, Exists: []string{"/oldroot"}})
	if rep.Err != "" {
		t.Fatal(rep.Err)
	}
	if rep.Read["f"] != "RW" || rep.Read["/proc/keys"] != "" || rep.Exists["/oldroot"] || rep.Cwd != "/work" {
		t.Errorf("plan's root: %+v", rep)
	}
	for i, v := range rep.CallerSlots {
		if want := 1000 + uintptr(FirstCallerSlot) + uintptr(i); v != want {
			t.Errorf("caller's slot %d = %d, want %d", int(FirstCallerSlot)+i, v, want)
		}
	}
	if len(rep.CallerSlots) != sysplan.NumSlots-int(FirstCallerSlot) {
		t.Errorf("caller's slots: %v", rep.CallerSlots)
	}
}
