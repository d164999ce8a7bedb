package limits

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/spec"
)

// fakeTree makes a cgroup v2 tree in a temporary directory: mkdir adds the
// control files a leaf gets from the kernel, rmdir drops them. The caller's
// cgroup is /user (delegated: owned by the test), with controllers and
// processes as given.
func fakeTree(t *testing.T, controllers string, procs string) *Host {
	t.Helper()
	root := t.TempDir()
	oldMkdir, oldRmdir := mkdir, rmdir
	t.Cleanup(func() { mkdir, rmdir = oldMkdir, oldRmdir })
	mkdir = func(dir string) error {
		if err := os.Mkdir(dir, 0o755); err != nil {
			return err
		}
		for _, f := range []string{"cgroup.procs", "cgroup.kill", "cgroup.controllers", "cgroup.subtree_control", "memory.max", "memory.swap.max", "pids.max", "cpu.max"} {
			if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
				return err
			}
		}
		return nil
	}
	rmdir = os.RemoveAll
	user := filepath.Join(root, "user")
	if err := mkdir(user); err != nil {
		t.Fatal(err)
	}
	write(t, user, "cgroup.controllers", controllers)
	write(t, user, "cgroup.procs", procs)
	return &Host{V2Mount: root, V2Own: "/user", V1: map[string]string{}, Parent: "rbox-test"}
}

func write(t *testing.T, dir, name, data string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A delegated cgroup v2 without processes gets the controllers enabled,
// and the leaf's control files carry the limits.
func TestCgroupV2Leaf(t *testing.T) {
	h := fakeTree(t, "cpu memory pids", "")
	l := &spec.Limits{MemoryBytes: 256 << 20, MemorySwapBytes: 384 << 20, PIDs: 100, CPUs: 1.5}
	b, err := setup(h, l)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []Kind{Memory, Swap, PIDs, CPU} {
		if c := b.Plan().Choices[k]; c.Mech != CgroupV2 {
			t.Errorf("%s holds by %s, want cgroup v2", k, c.Mech)
		}
	}
	if len(b.rlimits) != 0 {
		t.Errorf("rlimits %v beside a cgroup", b.rlimits)
	}
	leaf := b.v2
	if filepath.Dir(leaf) != filepath.Join(h.V2Mount, "user") {
		t.Fatalf("leaf %s is not in the caller's cgroup", leaf)
	}
	for f, want := range map[string]string{"memory.max": "268435456", "memory.swap.max": "134217728", "pids.max": "100", "cpu.max": "150000 100000"} {
		if got := read(t, leaf, f); got != want {
			t.Errorf("%s = %q, want %q", f, got, want)
		}
	}
	if got := read(t, filepath.Dir(leaf), "cgroup.subtree_control"); got == "" {
		t.Errorf("no controller enabled in the parent")
	}

	// pid 1 is placed by writing the procs cgroup's cgroup.procs; the statistics and the
	// OOM message come from the leaf's files.
	if err := b.Attach(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(leaf, procsDir), "cgroup.procs"); got != strconv.Itoa(os.Getpid()) {
		t.Errorf("cgroup.procs = %q", got)
	}
	write(t, leaf, "cpu.stat", "usage_usec 3000000\nuser_usec 2000000\nsystem_usec 1000000\n")
	write(t, leaf, "memory.peak", "104857600\n")
	write(t, leaf, "pids.peak", "7\n")
	write(t, leaf, "memory.events", "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n")
	st := b.stats(137)
	if st.UserSeconds != 2 || st.SystemSeconds != 1 || st.CPUSource != "cgroup v2" || st.PeakMemoryBytes != 100<<20 ||
		st.PeakMemorySource != "cgroup v2" || st.PeakTasks == nil || *st.PeakTasks != 7 {
		t.Errorf("stats %+v", st)
	}
	if msg := b.killedBy(137); msg != "the command was killed: out of memory (limit 256 MiB)" {
		t.Errorf("message %q", msg)
	}
	if msg := b.killedBy(1); !strings.HasPrefix(msg, "a process of the sandbox was killed: out of memory") {
		t.Errorf("message %q", msg)
	}
	b.Remove()
	if _, err := os.Stat(leaf); !os.IsNotExist(err) {
		t.Errorf("leaf left: %v", err)
	}
}

// The kernel enables no controller in a cgroup that holds processes: then
// the leaf only holds the sandbox (teardown, CPU time), and the limits fall
// back to rlimits, or to nothing for the CPU.
func TestCgroupV2Populated(t *testing.T) {
	h := fakeTree(t, "cpu memory pids", "4242\n")
	l := &spec.Limits{MemoryBytes: 64 << 20, PIDs: 50, CPUs: 1}
	p := Choose(h, l)
	if p.V2Dir == "" || len(p.V2Enable) != 0 {
		t.Errorf("V2Dir %q, enable %v", p.V2Dir, p.V2Enable)
	}
	want := map[Kind]Mechanism{Memory: Rlimit, PIDs: Rlimit, CPU: None}
	for k, m := range want {
		if c := p.Choices[k]; c.Mech != m || c.Fix == "" {
			t.Errorf("%s: %s (fix %q), want %s", k, c.Mech, c.Fix, m)
		}
	}
	if sf := p.Shortfalls(l); len(sf) != 3 {
		t.Errorf("shortfalls %v", sf)
	}
	rl := rlimits(l, p)
	if len(rl) != 2 || rl[0].Resource != unix.RLIMIT_NPROC || rl[0].Hard != 50 || rl[1].Resource != unix.RLIMIT_DATA || rl[1].Soft != 64<<20 {
		t.Errorf("rlimits %+v", rl)
	}
	// An explicit --ulimit nproc wins over the fallback.
	l.Ulimits = []spec.Rlimit{{Name: "nproc", Resource: unix.RLIMIT_NPROC, Soft: 9, Hard: 9}}
	if rl := rlimits(l, p); len(rl) != 2 || rl[0].Soft != 9 {
		t.Errorf("rlimits %+v", rl)
	}
}

// A leaf left by an rbox that no longer runs is removed by the next one.
func TestSweepStaleLeaf(t *testing.T) {
	h := fakeTree(t, "", "")
	parent := filepath.Join(h.V2Mount, "user")
	stale, live, other := filepath.Join(parent, "rbox-999999999"), filepath.Join(parent, "rbox-1"), filepath.Join(parent, "keep")
	for _, d := range []string{stale, live, other} {
		if err := mkdir(d); err != nil {
			t.Fatal(err)
		}
	}
	sweep(parent)
	for d, gone := range map[string]bool{stale: true, other: false} {
		if _, err := os.Stat(d); os.IsNotExist(err) != gone {
			t.Errorf("%s: removed %v, want %v", d, !gone, gone)
		}
	}
	// pid 1 (init) is no rbox: its name was reused, the leaf is stale.
	if _, err := os.Stat(live); !os.IsNotExist(err) {
		t.Errorf("%s kept: its pid runs no rbox", live)
	}
}

func TestParseUlimit(t *testing.T) {
	r, err := ParseUlimit("nofile=1024:4096")
	if err != nil || r.Resource != unix.RLIMIT_NOFILE || r.Soft != 1024 || r.Hard != 4096 {
		t.Errorf("%+v %v", r, err)
	}
	if r, err := ParseUlimit("core=0"); err != nil || r.Soft != 0 || r.Hard != 0 {
		t.Errorf("%+v %v", r, err)
	}
	if r, err := ParseUlimit("stack=unlimited"); err != nil || r.Soft != unix.RLIM_INFINITY {
		t.Errorf("%+v %v", r, err)
	}
	for raw, says := range map[string]string{
		"bogus=1": "unknown limit", "nofile": "expected NAME=SOFT[:HARD]", "nofile=5:4": "soft limit must be less than or equal",
		"nofile=x": "nofile=x", "nofile=1:2:3": "too many",
	} {
		if _, err := ParseUlimit(raw); err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("%s: %v, want %q", raw, err, says)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"512m": 512 << 20, "2g": 2 << 30, "1.5g": 3 << 29, "512MiB": 512 << 20, "4096": 4096} {
		if n, err := ParseSize(in); err != nil || n != want {
			t.Errorf("%s: %d %v, want %d", in, n, err, want)
		}
	}
	for _, in := range []string{"", "lots", "-1m", "0", "5q"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func TestDetectHybrid(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "mountinfo", strings.Join([]string{
		"30 25 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs rw",
		"31 30 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw",
		"32 30 0:28 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu",
		"33 30 0:29 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory",
		"34 30 0:30 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids",
		"35 30 0:31 /sub /mnt/other rw - cgroup cgroup rw,pids",
	}, "\n"))
	write(t, dir, "cgroup", "8:pids:/\n1:cpu:/\n0::/user.slice/x.scope\n")
	h := detect(filepath.Join(dir, "mountinfo"), filepath.Join(dir, "cgroup"))
	if h.V2Mount != "/sys/fs/cgroup/unified" || h.V2Own != "/user.slice/x.scope" ||
		h.V1["cpu"] != "/sys/fs/cgroup/cpu" || h.V1["memory"] != "/sys/fs/cgroup/memory" || h.V1["pids"] != "/sys/fs/cgroup/pids" {
		t.Errorf("%+v", h)
	}
}

// fakeManager plays the systemd user manager: it makes the scope in the
// fake tree, with the controllers delegated, and moves "rbox" there.
type fakeManager struct {
	root, cgroupFile string
	name, mode       string
	props            map[string]any
}

func (m *fakeManager) StartTransientUnitContext(_ context.Context, name, mode string, props []sdbus.Property, ch chan<- string) (int, error) {
	m.name, m.mode, m.props = name, mode, map[string]any{}
	for _, p := range props {
		m.props[p.Name] = p.Value.Value()
	}
	scope := filepath.Join(m.root, "user.slice", name)
	if err := mkdir(scope); err != nil {
		return 0, err
	}
	if err := os.WriteFile(filepath.Join(scope, "cgroup.controllers"), []byte("cpu memory pids"), 0o644); err != nil {
		return 0, err
	}
	if err := os.WriteFile(m.cgroupFile, []byte("0::/user.slice/"+name+"\n"), 0o644); err != nil {
		return 0, err
	}
	ch <- "done"
	return 1, nil
}

func (m *fakeManager) Close() {}

// Without a delegated cgroup v2, rbox asks the user manager for a scope
// with Delegate=yes holding itself, moves itself into a leaf of it, and
// puts the sandbox's leaf, with every controller, beside it.
func TestSystemdScope(t *testing.T) {
	h := fakeTree(t, "", "")
	h.V2Own = "/"
	cgroupFile := filepath.Join(t.TempDir(), "cgroup")
	write(t, filepath.Dir(cgroupFile), "cgroup", "0::/\n")
	if err := os.Mkdir(filepath.Join(h.V2Mount, "user.slice"), 0o755); err != nil {
		t.Fatal(err)
	}
	m := &fakeManager{root: h.V2Mount, cgroupFile: cgroupFile}
	oldConnect, oldSelf := connectUserManager, selfCgroup
	t.Cleanup(func() { connectUserManager, selfCgroup = oldConnect, oldSelf })
	connectUserManager = func(context.Context) (unitStarter, error) { return m, nil }
	selfCgroup = cgroupFile
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent")

	l := &spec.Limits{MemoryBytes: 128 << 20, PIDs: 64}
	if err := h.UseScope(l); err != nil {
		t.Fatal(err)
	}
	name := "rbox-" + strconv.Itoa(os.Getpid()) + ".scope"
	if m.name != name || m.mode != "fail" || m.props["Delegate"] != true ||
		!reflect.DeepEqual(m.props["PIDs"], []uint32{uint32(os.Getpid())}) {
		t.Errorf("asked for %s (%s) with %v", m.name, m.mode, m.props)
	}
	scope := filepath.Join(h.V2Mount, "user.slice", name)
	if got := read(t, filepath.Join(scope, supervisorName(os.Getpid())), "cgroup.procs"); got != strconv.Itoa(os.Getpid()) {
		t.Errorf("rbox did not move itself into the scope's supervisor leaf: %q", got)
	}
	b, err := setup(h, l)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Remove()
	if filepath.Dir(b.v2) != scope || b.Plan().Choices[Memory].Mech != CgroupV2 || b.Plan().Choices[PIDs].Mech != CgroupV2 {
		t.Errorf("leaf %s, plan %+v", b.v2, b.Plan().Choices)
	}
	if got := read(t, b.v2, "pids.max"); got != "64" {
		t.Errorf("pids.max %q", got)
	}
}

// Only root may raise a hard limit: a --ulimit above rbox's own hard limit
// is refused for anyone else before anything starts.
func TestParseUlimitAboveOwnHard(t *testing.T) {
	var own unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &own); err != nil {
		t.Fatal(err)
	}
	if own.Max == unix.RLIM_INFINITY {
		t.Fatalf("RLIMIT_NOFILE's hard limit is unlimited here")
	}
	raw := "nofile=1:" + strconv.FormatUint(own.Max+1, 10)
	_, err := ParseUlimit(raw)
	if os.Geteuid() == 0 {
		if err != nil {
			t.Errorf("root: %v", err)
		}
	} else if err == nil || !strings.Contains(err.Error(), "only root can raise it") {
		t.Errorf("%s: %v, want a refusal", raw, err)
	}
}

// Started alone in a delegated cgroup (systemd-run --user --scope -p
// Delegate=yes rbox ...), rbox moves itself into a leaf there so that the
// controllers can be enabled for the sandbox's leaf; the next sweep keeps
// that leaf while rbox runs.
func TestOwnCgroupFreed(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	h := fakeTree(t, "cpu memory pids", self+"\n")
	cgroupFile := filepath.Join(t.TempDir(), "cgroup")
	write(t, filepath.Dir(cgroupFile), "cgroup", "0::/user\n")
	oldSelf := selfCgroup
	t.Cleanup(func() { selfCgroup = oldSelf })
	selfCgroup = cgroupFile
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "")

	l := &spec.Limits{MemoryBytes: 64 << 20}
	if err := h.UseScope(l); err != nil {
		t.Fatal(err)
	}
	own := filepath.Join(h.V2Mount, "user")
	sup := filepath.Join(own, supervisorName(os.Getpid()))
	if h.Scope != own || read(t, sup, "cgroup.procs") != self {
		t.Fatalf("rbox did not move itself below its cgroup: scope %q", h.Scope)
	}
	write(t, own, "cgroup.procs", "") // as the kernel shows it now
	b, err := setup(h, l)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Remove()
	if b.Plan().Choices[Memory].Mech != CgroupV2 || filepath.Dir(b.v2) != own {
		t.Errorf("memory by %s in %s", b.Plan().Choices[Memory].Mech, b.v2)
	}
	if _, err := os.Stat(sup); err != nil {
		t.Errorf("the sweep removed rbox's own supervisor leaf: %v", err)
	}
	// Another run alone in it would not move again; nor would one
	// sharing it with another process.
	h2 := fakeTree(t, "cpu memory pids", self+"\n4242\n")
	h2.V2Own = "/user"
	if err := h2.freeOwn(l, cgroupFile); err != nil || h2.Scope != "" {
		t.Errorf("moved out of a cgroup shared with another process: %v %q", err, h2.Scope)
	}
}

// Without --memory-swap, swap is capped like memory only where the kernel
// accounts it: no memory.swap.max is no error.
func TestCgroupV2NoSwapAccounting(t *testing.T) {
	h := fakeTree(t, "memory", "")
	old := mkdir
	mkdir = func(dir string) error {
		if err := old(dir); err != nil {
			return err
		}
		return os.Remove(filepath.Join(dir, "memory.swap.max"))
	}
	b, err := setup(h, &spec.Limits{MemoryBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Remove()
	if got := read(t, b.v2, "memory.max"); got != "67108864" {
		t.Errorf("memory.max %q", got)
	}
	if err := os.Remove(filepath.Join(h.V2Mount, "user", "memory.swap.max")); err != nil {
		t.Fatal(err)
	}
	if p := Choose(h, &spec.Limits{MemoryBytes: 64 << 20, MemorySwapBytes: 128 << 20}); p.Choices[Swap].Mech != None {
		t.Errorf("--memory-swap held by %s without swap accounting", p.Choices[Swap].Mech)
	}
}
