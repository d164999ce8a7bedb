package hostcheck

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/spec"
	"github.com/rbox-dev/rbox/userns"
)

// sleeperArg marks the process the hang probe leaves in its pid namespace.
const sleeperArg = "86421"

func TestMain(m *testing.M) {
	// A probe that never ends, with a grandchild, for the timeout test.
	probes["hang"] = func() (string, error) {
		if err := exec.Command("/bin/sleep", sleeperArg).Start(); err != nil {
			return "", err
		}
		select {}
	}
	if len(os.Args) == 2 && os.Args[0] == ProbeArg0 {
		ProbeMain(os.Args[1])
	}
	// Orphans of the probes would be reparented to this process, where
	// noChildren sees them.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}

// mustPass are the items that work on the test machine for any user: its
// kernel allows unprivileged namespaces and overlayfs, and it has the
// tools installed and /dev/fuse and /dev/net/tun usable (set below).
var mustPass = []string{
	"user namespace", "mount namespace", "pid namespace", "net namespace", "uts namespace",
	"ipc namespace", "cgroup namespace", "time namespace", "uid_map write", "newuidmap", "newgidmap",
	"full id map", "/proc mount", "overlayfs", "/dev/fuse", "/dev/net/tun", "slirp4netns", "pasta",
	"--net user", "--net pasta", "--net slirp4netns", "--allow-net on networks",
	"fuse-overlayfs", "user.max_user_namespaces", "kernel.unprivileged_userns_clone",
	"kernel.apparmor_restrict_unprivileged_userns", "seccomp", "landlock", "isolation tier",
}

// openDevices makes /dev/fuse and /dev/net/tun usable by everyone, as the
// test machine is set up, and puts their modes back afterwards.
func openDevices(t *testing.T) {
	t.Helper()
	if os.Getuid() != 0 {
		return // done by the root test that runs this one as another user
	}
	for _, dev := range []string{"/dev/fuse", "/dev/net/tun"} {
		st, err := os.Stat(dev)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dev, 0o666); err != nil {
			t.Fatal(err)
		}
		mode := st.Mode().Perm()
		t.Cleanup(func() { _ = os.Chmod(dev, mode) })
	}
}

func byName(t *testing.T, results []Result) map[string]Result {
	t.Helper()
	m := map[string]Result{}
	for _, r := range results {
		if _, dup := m[r.Name]; dup {
			t.Errorf("two results named %q", r.Name)
		}
		m[r.Name] = r
	}
	return m
}

func TestChecksPassHere(t *testing.T) {
	openDevices(t)
	t.Logf("running as uid %d", os.Getuid())
	results := Run()
	if len(results) != len(checks) {
		t.Fatalf("%d results for %d checks", len(results), len(checks))
	}
	for _, r := range results {
		t.Logf("%s  %-45s %s  [fix: %s]", r.Status, r.Name, r.Detail, r.Fix)
		if r.Name == "" || r.Detail == "" || !slices.Contains([]string{Pass, Warn, Fail}, r.Status) {
			t.Errorf("incomplete result %+v", r)
		}
		if r.Status != Pass && r.Fix == "" {
			t.Errorf("%s: %s without a fix", r.Name, r.Status)
		}
	}
	got := byName(t, results)
	for _, name := range mustPass {
		r, ok := got[name]
		if !ok {
			t.Errorf("no result for %q", name)
			continue
		}
		if r.Status != Pass {
			t.Errorf("%s: %s (%s), want pass", name, r.Status, r.Detail)
		}
	}
	if os.Getuid() != 0 {
		// The full map goes through the helpers and the caller's ranges.
		for _, name := range []string{"subordinate uids", "subordinate gids"} {
			if got[name].Status != Pass {
				t.Errorf("%s: %s, want pass", name, got[name].Status)
			}
		}
		if d := got["full id map"].Detail; !strings.Contains(d, "newuidmap and newgidmap wrote") || !strings.Contains(d, "65537 uids") {
			t.Errorf("full id map: %q, want a map written by the helpers with 65537 uids", d)
		}
	}
	// The cgroup items follow the host's layout: a warn on a hybrid host
	// like the test machine is right.
	var fs unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &fs); err != nil {
		t.Fatal(err)
	}
	wantCgroup := Warn
	if fs.Type == unix.CGROUP2_SUPER_MAGIC {
		wantCgroup = Pass
	}
	if r := got["cgroup v2"]; r.Status != wantCgroup {
		t.Errorf("cgroup v2: %s (%s), want %s", r.Status, r.Detail, wantCgroup)
	}
	if r := got["cgroup delegation"]; r.Status == Warn && !strings.Contains(r.Fix, "Delegate=yes") {
		t.Errorf("cgroup delegation fix %q lacks the systemd Delegate= hint", r.Fix)
	}
}

func TestMissingHelpersNameThePackage(t *testing.T) {
	t.Setenv("PATH", "/nonexistent")
	got := byName(t, Run())
	for _, tool := range []string{"newuidmap", "newgidmap"} {
		r := got[tool]
		if r.Status == Pass || !strings.Contains(r.Fix, "uidmap package") {
			t.Errorf("%s without PATH: %+v, want warn or fail naming the uidmap package", tool, r)
		}
	}
	for tool, pkg := range map[string]string{"slirp4netns": "slirp4netns", "pasta": "passt", "fuse-overlayfs": "fuse-overlayfs"} {
		if r := got[tool]; r.Status != Warn || r.Fix != "apt install "+pkg {
			t.Errorf("%s without PATH: %+v, want a warn to install %s", tool, r, pkg)
		}
	}
	if os.Getuid() != 0 {
		if r := got["full id map"]; r.Status != Warn || !strings.Contains(r.Detail, "not found") {
			t.Errorf("full id map without helpers: %+v, want warn", r)
		}
	}
	// The probes themselves need no PATH.
	if r := got["user namespace"]; r.Status != Pass {
		t.Errorf("user namespace without PATH: %+v", r)
	}
}

// TestHelperNotSetuid puts copies of the helpers without their setuid bit
// first on PATH.
func TestHelperNotSetuid(t *testing.T) {
	dir := t.TempDir()
	for _, tool := range []string{"newuidmap", "newgidmap"} {
		src, err := exec.LookPath(tool)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, tool), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
	got := byName(t, Run())
	want := Fail // the caller has ranges, so rbox would use the helper
	if os.Getuid() == 0 {
		want = Warn // root never needs it
	}
	for _, tool := range []string{"newuidmap", "newgidmap"} {
		r := got[tool]
		if r.Status != want || !strings.Contains(r.Detail, "not setuid root") || !strings.Contains(r.Fix, "chmod u+s") {
			t.Errorf("%s: %+v, want %s: not setuid root", tool, r, want)
		}
	}
	if r := got["full id map"]; os.Getuid() != 0 && r.Status != Fail {
		t.Errorf("full id map with unprivileged helpers: %+v, want fail", r)
	}
}

func TestSubordinateRanges(t *testing.T) {
	dir := t.TempDir()
	other := filepath.Join(dir, "other")
	if err := os.WriteFile(other, []byte("someoneelse:100000:65536\nthird:300000:1000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	oldU, oldG := userns.SubUIDPath, userns.SubGIDPath
	t.Cleanup(func() { userns.SubUIDPath, userns.SubGIDPath = oldU, oldG })
	userns.SubUIDPath, userns.SubGIDPath = other, other
	c := currentCaller()
	r := subIDCheck("uid")(c)
	if r.Status != Warn || !strings.Contains(r.Fix, "usermod --add-subuids 327680-393215 --add-subgids 327680-393215 "+c.name) {
		t.Errorf("no range: %+v, want warn with a usermod fix past the ranges in use", r)
	}
	if c.root() && !strings.Contains(r.Detail, "root may write any map itself") {
		t.Errorf("no range for root: %q does not explain root writes its own maps", r.Detail)
	}
	if r := checkFullMap(c); c.root() != (r.Status == Pass) {
		t.Errorf("full id map without ranges: %+v", r)
	}

	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("broken line\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	userns.SubUIDPath = bad
	if r := subIDCheck("uid")(currentCaller()); r.Status != Fail || !strings.Contains(r.Detail, bad+":1") {
		t.Errorf("malformed file: %+v, want fail naming the line", r)
	}
}

// A range for root, written by root itself, as a sandbox of root gets it.
func TestFullMapAsRoot(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("root's own path; the helper path is covered as the other user")
	}
	f := filepath.Join(t.TempDir(), "sub")
	if err := os.WriteFile(f, []byte("root:500000:1000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	oldU, oldG := userns.SubUIDPath, userns.SubGIDPath
	t.Cleanup(func() { userns.SubUIDPath, userns.SubGIDPath = oldU, oldG })
	userns.SubUIDPath, userns.SubGIDPath = f, f
	r := checkFullMap(currentCaller())
	if r.Status != Pass || !strings.Contains(r.Detail, "root wrote maps of 1001 uids and 1001 gids; the probe became uid 1 gid 1") {
		t.Errorf("%+v", r)
	}
}

func TestFuseOverlayFallback(t *testing.T) {
	openDevices(t)
	tool, err := exec.LookPath("fuse-overlayfs")
	if err != nil {
		t.Fatal(err)
	}
	c := currentCaller()
	p := probe{name: "fuse-overlayfs", flags: unix.CLONE_NEWUSER | unix.CLONE_NEWNS | unix.CLONE_NEWPID, caps: true,
		maps: ownMaps(c), env: []string{envFuseTool + "=" + tool}}
	out, err := p.run()
	if err != nil {
		t.Fatal(err)
	}
	t.Log(out)
	noChildren(t)
}

func TestProbeTimeout(t *testing.T) {
	old := ProbeTimeout
	t.Cleanup(func() { ProbeTimeout = old })
	ProbeTimeout = 300 * time.Millisecond
	start := time.Now()
	_, err := probe{name: "hang", flags: unix.CLONE_NEWUSER | unix.CLONE_NEWPID}.run()
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("hang probe: %v, want a timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the timeout took %v", d)
	}
	noChildren(t)
	if pids := processesWith(sleeperArg); len(pids) > 0 {
		t.Errorf("the probe's grandchild survived: pids %v", pids)
	}
}

// TestMapRefused has the kernel refuse a map (a zero count) and checks
// the probe says where and why, and is gone.
func TestMapRefused(t *testing.T) {
	bad := func(_ context.Context, pid int) error {
		return writeMaps(pid, []spec.IDMap{{Inside: 0, Outside: uint32(os.Getuid()), Count: 0}}, nil, false)
	}
	_, err := probe{name: "ids", flags: unix.CLONE_NEWUSER, maps: bad}.run()
	var pe *probeError
	if !errors.As(err, &pe) || pe.step != "id maps" || pe.errno != unix.EINVAL {
		t.Fatalf("bad map: %v, want the kernel's EINVAL from the id maps step", err)
	}
	noChildren(t)
}

// TestNothingLeftBehind runs every check and looks for what could remain:
// processes, mounts on the host, the probes' scratch directories, files in
// TMPDIR.
func TestNothingLeftBehind(t *testing.T) {
	openDevices(t)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	before := mountLines(t)
	Run()
	noChildren(t)
	for _, line := range mountLines(t) {
		if !slices.Contains(before, line) {
			t.Errorf("new mount on the host: %s", line)
		}
	}
	for _, d := range []string{lowerDir, upperDir, workDir, mergedDir} {
		if _, err := os.Lstat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s exists on the host", d)
		}
	}
	if ents, _ := os.ReadDir(tmp); len(ents) > 0 {
		t.Errorf("files left in TMPDIR: %v", ents)
	}
}

// TestAsOtherUser runs this package's tests again as rboxtest, the
// unprivileged user with subordinate ranges the test machine has.
func TestAsOtherUser(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("runs the tests as another user from root")
	}
	u, err := user.Lookup("rboxtest")
	if err != nil {
		t.Skip("no user rboxtest on this machine")
	}
	openDevices(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "hostcheck-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "hostcheck.test")
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("su", u.Username, "-c", bin+" -test.v -test.count=1 -test.skip '^(TestAsOtherUser|TestFullMapAsRoot)$'")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	t.Logf("as %s (uid %s):\n%s", u.Username, u.Uid, out)
	if err != nil {
		t.Fatalf("tests as %s: %v", u.Username, err)
	}
	if !strings.Contains(string(out), "running as uid "+u.Uid) {
		t.Errorf("the tests did not run as uid %s", u.Uid)
	}
}

func TestHelpers(t *testing.T) {
	if mp, root, ok := cgroup2Mount(); !ok || !strings.HasPrefix(mp, "/sys/fs/cgroup") || root == "" {
		t.Errorf("cgroup2Mount = %q, %q, %v; want the unified hierarchy under /sys/fs/cgroup", mp, root, ok)
	}
	for m, want := range map[string]int{
		"0 1001 1":                      -1,
		"0 1001 1, 1 100000 65536":      1,
		"0 0 4294967295":                1,
		"5 1001 1, 0 100000 5, 6 200 3": 1,
	} {
		if got := firstNonZero(m); got != want {
			t.Errorf("firstNonZero(%q) = %d, want %d", m, got, want)
		}
	}
	if got := joinFix("", "or x"); got != "x" {
		t.Errorf("joinFix: %q", got)
	}
	if got := joinFix("a", "or "); got != "a" {
		t.Errorf("joinFix: %q", got)
	}
	if got := flagNames(unix.CLONE_NEWUSER | unix.CLONE_NEWPID); got != "CLONE_NEWUSER|CLONE_NEWPID" {
		t.Errorf("flagNames: %q", got)
	}
}

func TestBlockerHints(t *testing.T) {
	results := []Result{
		fail("user namespace", "clone: operation not permitted", ""),
		fail("mount namespace", "clone: operation not permitted", "x"),
		pass("seccomp", "none"),
		fail("kernel.apparmor_restrict_unprivileged_userns", "1", "sysctl"),
	}
	pointAtBlockers(results)
	if f := results[1].Fix; !strings.HasPrefix(f, "needs a working user namespace") || !strings.Contains(f, "kernel.apparmor_restrict_unprivileged_userns") {
		t.Errorf("mount namespace fix %q", f)
	}
	if f := results[0].Fix; !strings.Contains(f, "kernel.apparmor_restrict_unprivileged_userns") || strings.Contains(f, "seccomp") {
		t.Errorf("user namespace fix %q", f)
	}
	if results[3].Fix != "sysctl" {
		t.Errorf("a blocker's own fix changed: %q", results[3].Fix)
	}
}

// noChildren fails when any process is left whose parent is this one:
// leftovers of a probe come back here, as this process is a subreaper.
func noChildren(t *testing.T) {
	t.Helper()
	me := strconv.Itoa(os.Getpid())
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 && f[1] == me {
			cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			t.Errorf("process %s left behind: %q", e.Name(), cmdline)
		}
	}
}

// processesWith lists the pids whose command line has arg.
func processesWith(arg string) []string {
	var pids []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		if slices.Contains(strings.Split(string(b), "\x00"), arg) {
			pids = append(pids, e.Name())
		}
	}
	return pids
}

func mountLines(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func writeSysctls(t *testing.T, values map[string]string) {
	t.Helper()
	dir := t.TempDir()
	for k, v := range values {
		p := filepath.Join(dir, k)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := procSys
	t.Cleanup(func() { procSys = old })
	procSys = dir
}

// TestBlockingSysctls feeds the sysctl checks the values of hosts that
// forbid unprivileged user namespaces.
func TestBlockingSysctls(t *testing.T) {
	c := currentCaller()
	writeSysctls(t, map[string]string{
		"user/max_user_namespaces":                     "0",
		"kernel/unprivileged_userns_clone":             "0",
		"kernel/apparmor_restrict_unprivileged_userns": "1",
	})
	if r := checkMaxUserNamespaces(c); r.Status != Fail || !strings.Contains(r.Fix, "sysctl -w user.max_user_namespaces=") {
		t.Errorf("max_user_namespaces 0: %+v", r)
	}
	wantPrivileged := Fail
	if c.root() {
		wantPrivileged = Warn // root keeps its capabilities
	}
	if r := checkUnprivilegedClone(c); r.Status != wantPrivileged || !strings.Contains(r.Fix, "kernel.unprivileged_userns_clone=1") {
		t.Errorf("unprivileged_userns_clone 0: %+v, want %s", r, wantPrivileged)
	}
	r := checkAppArmorUserns(c)
	if r.Status != wantPrivileged || !strings.Contains(r.Fix, "kernel.apparmor_restrict_unprivileged_userns=0") || !strings.Contains(r.Fix, "userns,") {
		t.Errorf("apparmor_restrict_unprivileged_userns 1: %+v, want %s with the sysctl and a profile", r, wantPrivileged)
	}

	writeSysctls(t, map[string]string{"user/max_user_namespaces": "100"})
	for _, r := range []Result{checkMaxUserNamespaces(c), checkUnprivilegedClone(c), checkAppArmorUserns(c)} {
		if r.Status != Pass {
			t.Errorf("%s on a permissive host: %+v", r.Name, r)
		}
	}
}

func init() {
	// Installs an allow-all seccomp filter on every thread, as a container
	// runtime would, then runs the checks that look at the process.
	probes["under-seccomp"] = func() (string, error) {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return "", err
		}
		allow := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW}}
		prog := unix.SockFprog{Len: 1, Filter: &allow[0]}
		if _, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&prog))); e != 0 {
			return "", e
		}
		c := currentCaller()
		b, err := json.Marshal([]Result{checkSeccomp(c), helperCheck("newuidmap")(c)})
		return string(b), err
	}
}

func TestUnderSeccompFilter(t *testing.T) {
	out, err := probe{name: "under-seccomp", env: []string{"PATH=" + os.Getenv("PATH")}}.run()
	if err != nil {
		t.Fatal(err)
	}
	var rs []Result
	if err := json.Unmarshal([]byte(out), &rs); err != nil {
		t.Fatalf("%q: %v", out, err)
	}
	if r := rs[0]; r.Status != Warn || !strings.Contains(r.Detail, "1 seccomp filter(s)") {
		t.Errorf("under a filter: %+v, want a warn counting it", r)
	}
	// no_new_privs, which a filter needs, keeps setuid helpers from
	// gaining root.
	r := rs[1]
	if os.Getuid() != 0 && (r.Status != Fail || !strings.Contains(r.Detail, "no_new_privs")) {
		t.Errorf("newuidmap under no_new_privs: %+v, want fail", r)
	}
	if os.Getuid() == 0 && r.Status != Pass {
		t.Errorf("newuidmap for root under no_new_privs: %+v, want pass (root does not use it)", r)
	}
}
