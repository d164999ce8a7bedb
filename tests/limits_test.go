//go:build integration

package tests

import (
	"encoding/json"
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
)

// The limits tests run against the cgroups scripts/test-setup delegates to
// the test user (rbox-USER at the root of the v1 pids and cpu hierarchies
// and of the cgroup2 mount, scripts/run-integration placing the test user's
// run in the latter). Root is pointed at the same directories with
// RBOX_CGROUP_PARENT; RBOX_CGROUP_PARENT=none leaves only rlimits.

// testUser is the unprivileged test user test-setup delegated cgroups to.
func testUser() string {
	if u := os.Getenv("RBOX_TEST_USER"); u != "" {
		return u
	}
	return "rboxtest"
}

// delegated are the delegated cgroup directories, by hierarchy.
func delegated() map[string]string {
	m := map[string]string{}
	for _, h := range []string{"pids", "cpu", "unified"} {
		m[h] = filepath.Join("/sys/fs/cgroup", h, "rbox-"+testUser())
	}
	return m
}

// tierEnv selects the tier: "cgroup" (the delegated cgroups) or "rlimit".
func tierEnv(tier string) func(*exec.Cmd) {
	return func(c *exec.Cmd) {
		c.Env = os.Environ()
		switch tier {
		case "rlimit":
			c.Env = append(c.Env, "RBOX_CGROUP_PARENT=none")
		case "cgroup":
			c.Env = append(c.Env, "RBOX_CGROUP_PARENT=rbox-"+testUser())
		}
	}
}

// executors are the two kinds of pid 1: forked without exec (a plain run)
// and re-executed rbox (what --cap-add SYS_PTRACE needs).
var executors = map[string][]string{"forked": nil, "re-executed": {"--cap-add", "SYS_PTRACE"}}

// leftLeaves lists sandbox leaves (rbox-PID) in the delegated cgroups.
func leftLeaves(t *testing.T) []string {
	t.Helper()
	var left []string
	for _, d := range delegated() {
		entries, err := os.ReadDir(d)
		if err != nil {
			t.Fatalf("the delegated cgroup %s is missing (scripts/test-setup makes it): %v", d, err)
		}
		for _, e := range entries {
			if n, ok := strings.CutPrefix(e.Name(), "rbox-"); ok && e.IsDir() {
				if pid, err := strconv.Atoi(n); err == nil && !othersRbox(pid) {
					left = append(left, filepath.Join(d, e.Name()))
				}
			}
		}
	}
	return left
}

// othersRbox reports whether pid runs, and runs another binary than the
// rbox under test: a leaf named after it is a live sandbox of another test
// run sharing the delegated cgroups (several checkouts on one machine),
// not one this run left.
func othersRbox(pid int) bool {
	exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	if err != nil {
		// Gone (a leaf left behind), or another user's process.
		return errors.Is(err, os.ErrPermission)
	}
	return exe != rboxBin
}

func noLeaves(t *testing.T, after string) {
	t.Helper()
	if left := leftLeaves(t); len(left) > 0 {
		t.Errorf("after %s, cgroups left: %v", after, left)
	}
}

// stderrLines are rbox's stderr lines less warnings.
func stderrLines(r result) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimRight(r.stderr, "\n"), "\n") {
		if l != "" && !strings.HasPrefix(l, "rbox: warning: ") {
			out = append(out, l)
		}
	}
	return out
}

// A fork bomb stops at --pids-limit on each tier and both kinds of pid 1:
// the shell's fork fails, the processes in the sandbox (counted inside
// with shell builtins, no fork) stay under the limit, and the cgroup tier
// shows the peak at the limit.
func TestLimitForkBomb(t *testing.T) {
	const limit = 32
	bomb := `sh -c 'i=0; while [ $i -lt 300 ]; do (exec sleep 30) & i=$((i+1)); done'; n=0; for p in /proc/[0-9]*; do n=$((n+1)); done; echo $n`
	for _, tier := range []string{"cgroup", "rlimit"} {
		for name, extra := range executors {
			args := append(append([]string{}, extra...), "--pids-limit", strconv.Itoa(limit), "--stats", "--", "sh", "-c", bomb)
			r := rboxCmd(t, tierEnv(tier), args...)
			if tier == "rlimit" && os.Getuid() == 0 {
				// The kernel exempts the host's root user from
				// RLIMIT_NPROC: rbox says the limit does not hold.
				if !strings.Contains(r.stderr, "rbox: warning: limits: --pids-limit not enforced") {
					t.Errorf("root, %s: no warning that --pids-limit is not enforced:\n%s", name, r)
				}
				continue
			}
			n, err := strconv.Atoi(strings.TrimSpace(r.stdout))
			if r.code != 0 || err != nil || !strings.Contains(r.stderr, "Cannot fork") {
				t.Fatalf("%s, %s: want the bomb's fork refused and a count:\n%s", tier, name, r)
			}
			if n >= limit || n < 4 {
				t.Errorf("%s, %s: %d processes in the sandbox, want fewer than %d (and a few)", tier, name, n, limit)
			}
			switch tier {
			case "cgroup":
				if !strings.Contains(r.stderr, fmt.Sprintf("peak tasks %d (cgroup v1)", limit)) {
					t.Errorf("%s, %s: the pids cgroup's peak is not the limit:\n%s", tier, name, r)
				}
			case "rlimit":
				if !strings.Contains(r.stderr, "rbox: warning: limits: --pids-limit per process only (rlimit") {
					t.Errorf("%s, %s: no warning about the weaker limit:\n%s", tier, name, r)
				}
			}
		}
	}
	noLeaves(t, "the fork bombs")
}

// --pids-limit on the cgroup tier is the leaf's pids.max, seen from the
// host while the sandbox runs, and the sandbox sits in its leaves.
func TestLimitCgroupFilesFromHost(t *testing.T) {
	cmd := exec.Command(rboxBin, "--pids-limit", "40", "--cpus", "0.5", "--", "sh", "-c", "cat /proc/self/cgroup; read x; true")
	tierEnv("cgroup")(cmd)
	stdin, _ := cmd.StdinPipe()
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	leaf := func(h string) string { return filepath.Join(delegated()[h], "rbox-"+strconv.Itoa(cmd.Process.Pid)) }
	waitFor(t, "the sandbox's cgroup output", 10*time.Second, func() bool { return strings.Contains(out.String(), "pids:") })
	read := func(h, f string) string {
		b, err := os.ReadFile(filepath.Join(leaf(h), f))
		if err != nil {
			t.Errorf("%v", err)
		}
		return strings.TrimSpace(string(b))
	}
	if v := read("pids", "pids.max"); v != "40" {
		t.Errorf("pids.max is %q, want 40", v)
	}
	if q, p := read("cpu", "cpu.cfs_quota_us"), read("cpu", "cpu.cfs_period_us"); q != "50000" || p != "100000" {
		t.Errorf("cpu quota/period are %s/%s, want 50000/100000", q, p)
	}
	// The processes are in the leaf's "sandbox" cgroup, below its limits
	// (see TestEscapeLimitCgroupLeaf).
	for _, h := range []string{"unified", "pids", "cpu"} {
		if procs := read(h, procsCgroup+"/cgroup.procs"); procs == "" {
			t.Errorf("the sandbox's %s leaf holds no process", h)
		}
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// pid 1 makes its cgroup namespace once placed (initplan): every
	// hierarchy's root inside is the sandbox's leaf, on both executors.
	inside := out.String()
	for _, h := range []string{"pids", "cpu"} {
		if !strings.Contains(inside, ":"+h+":/\n") {
			t.Errorf("inside, /proc/self/cgroup does not show the %s leaf as its root:\n%s", h, inside)
		}
	}
	if !strings.Contains(inside, "\n0::/\n") {
		t.Errorf("inside, /proc/self/cgroup does not show the cgroup v2 leaf as its root:\n%s", inside)
	}
	noLeaves(t, "a normal exit")
}

// A CPU-bound loop under --cpus 0.5 gets about half a CPU (generous
// bounds: the machine is shared).
func TestLimitCPUQuota(t *testing.T) {
	stats := filepath.Join(hostDir(t), "stats.json")
	r := rboxCmd(t, tierEnv("cgroup"), "--cpus", "0.5", "--stats-file", stats, "--", "timeout", "2", "sh", "-c", "while :; do :; done")
	if r.code != 124 {
		t.Fatalf("want the loop ended by timeout (124):\n%s", r)
	}
	st := readStats(t, stats)
	used := st.UserSeconds + st.SystemSeconds
	if used > 0.5*st.WallSeconds*1.3+0.1 {
		t.Errorf("the loop used %.2fs of CPU in %.2fs under --cpus 0.5", used, st.WallSeconds)
	}
	if used < 0.01 { // (the machine may be that loaded)
		t.Errorf("the loop used only %.2fs of CPU in %.2fs: did it run?", used, st.WallSeconds)
	}
}

type stats struct {
	WallSeconds      float64 `json:"wall_seconds"`
	UserSeconds      float64 `json:"cpu_user_seconds"`
	SystemSeconds    float64 `json:"cpu_system_seconds"`
	CPUSource        string  `json:"cpu_source"`
	PeakMemoryBytes  int64   `json:"peak_memory_bytes"`
	PeakMemorySource string  `json:"peak_memory_source"`
	PeakTasks        *int64  `json:"peak_tasks"`
	ExitCode         int     `json:"exit_code"`
}

func readStats(t *testing.T, path string) stats {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var st stats
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("%v:\n%s", err, b)
	}
	return st
}

// --stats against a known workload: 64 MiB touched, half a second of CPU,
// four sleeps at once, on both tiers.
func TestStatsKnownWorkload(t *testing.T) {
	probe := probeBin(t)
	work := `/probe alloc 64; sleep 0.3 & sleep 0.3 & sleep 0.3 & sleep 0.3 & wait; timeout 0.5 sh -c 'while :; do :; done'; exit 3`
	for _, tier := range []string{"cgroup", "rlimit"} {
		file := filepath.Join(hostDir(t), "stats.json")
		r := rboxCmd(t, tierEnv(tier), "--stats", "--stats-file", file, "--ro-bind", probe+":/probe", "--", "sh", "-c", work)
		if r.code != 3 || !strings.Contains(r.stderr, "rbox: stats: wall ") {
			t.Fatalf("%s: want exit 3 and the stats line:\n%s", tier, r)
		}
		st := readStats(t, file)
		if st.ExitCode != 3 || st.WallSeconds < 0.8 || st.WallSeconds > 30 {
			t.Errorf("%s: exit %d, wall %.2fs", tier, st.ExitCode, st.WallSeconds)
		}
		if cpu := st.UserSeconds + st.SystemSeconds; cpu < 0.01 || cpu > st.WallSeconds*2 {
			t.Errorf("%s: CPU %.2fs in a wall of %.2fs", tier, cpu, st.WallSeconds)
		}
		if st.PeakMemoryBytes < 64<<20 || st.PeakMemoryBytes > 1<<30 {
			t.Errorf("%s: peak memory %d (%s), want about 64 MiB", tier, st.PeakMemoryBytes, st.PeakMemorySource)
		}
		switch {
		case tier == "cgroup" && (st.PeakTasks == nil || *st.PeakTasks < 6 || *st.PeakTasks > 50):
			t.Errorf("%s: peak tasks %v, want the shell, four sleeps and pid 1", tier, st.PeakTasks)
		case tier == "cgroup" && st.CPUSource != "cgroup v2":
			t.Errorf("%s: CPU from %s, want the cgroup v2 leaf", tier, st.CPUSource)
		case tier == "rlimit" && st.PeakTasks != nil:
			// (The CPU time may come from a cgroup v2 leaf: the test
			// user runs in a delegated cgroup v2 subtree.)
			t.Errorf("%s: peak tasks %v without a pids cgroup", tier, *st.PeakTasks)
		}
	}
	noLeaves(t, "--stats runs")
}

// An allocation beyond --memory fails (rlimits here: the memory cgroup is
// not delegated), one within it works, on both kinds of pid 1; a /tmp fill
// stops at the tmpfs size --memory bounds.
func TestLimitMemory(t *testing.T) {
	probe := probeBin(t)
	for name, extra := range executors {
		// The probe is a Go program, whose runtime alone holds 70-80 MiB
		// of data mappings: the limit leaves it room for 32 MiB more.
		args := append(append([]string{}, extra...), "--memory", "256m", "--ro-bind", probe+":/probe", "--", "sh", "-c",
			"/probe alloc 32 && /probe alloc 512; grep 'Max data size' /proc/self/limits")
		r := rbox(t, args...)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "succeeded\nrefused: ENOMEM") || !strings.Contains(r.stdout, "268435456") {
			t.Errorf("%s: want 32 MiB given, 512 MiB refused, RLIMIT_DATA 256 MiB:\n%s", name, r)
		}
		if !strings.Contains(r.stderr, "rbox: warning: limits: --memory per process only (rlimit") {
			t.Errorf("%s: no warning about the weaker limit:\n%s", name, r)
		}
		fill := append(append([]string{}, extra...), "--memory", "32m", "--tmpfs", "/scratch", "--", "sh", "-c",
			"for d in /tmp /dev/shm /scratch; do dd if=/dev/zero of=$d/f bs=1M count=64 2>&1 | grep -o 'No space left'; stat -c %s $d/f; done")
		r = rbox(t, fill...)
		lines := strings.Fields(strings.ReplaceAll(r.stdout, "No space left", "full"))
		if len(lines) != 6 {
			t.Fatalf("%s: %s", name, r)
		}
		for i := 0; i < 6; i += 2 {
			size, _ := strconv.Atoi(lines[i+1])
			if lines[i] != "full" || size > 32<<20 {
				t.Errorf("%s: a tmpfs took %d bytes under --memory 32m:\n%s", name, size, r)
			}
		}
	}
}

// --ulimit values are what the command sees in /proc/self/limits, on both
// kinds of pid 1.
func TestUlimitValues(t *testing.T) {
	for name, extra := range executors {
		args := append(append([]string{}, extra...), "--ulimit", "nofile=1024:2048", "--ulimit", "core=0", "--ulimit", "cpu=100",
			"--", "grep", "-E", "Max (open files|core file size|cpu time)", "/proc/self/limits")
		r := rbox(t, args...)
		got := mapLines(r.stdout)
		want := []string{"Max cpu time 100 100 seconds", "Max core file size 0 0 bytes", "Max open files 1024 2048 files"}
		if r.code != 0 || strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s: limits inside:\n%s\nwant:\n%s\n%s", name, strings.Join(got, "\n"), strings.Join(want, "\n"), r)
		}
	}
	// A CPU time limit that kills the command is said in plain words.
	r := rbox(t, "--ulimit", "cpu=1:2", "--", "sh", "-c", "while :; do :; done")
	if r.code != 128+int(syscall.SIGXCPU) || !strings.Contains(r.stderr, "rbox: the command was killed: CPU time limit (1 s)") {
		t.Errorf("want the command killed by its CPU time limit, said so:\n%s", r)
	}
}

// --limits strict refuses, in one line naming the missing delegation and
// the fix, a limit that would hold per process only; it runs when the
// cgroups hold them.
func TestLimitStrict(t *testing.T) {
	r := rboxCmd(t, tierEnv("cgroup"), "--limits", "strict", "--memory", "64m", "--", "true")
	lines := stderrLines(r)
	if r.code != 125 || len(lines) != 1 || !strings.Contains(lines[0], "--limits strict: --memory cannot hold for the whole sandbox") ||
		!strings.Contains(lines[0], "fix: ") || !strings.Contains(lines[0], "memory") {
		t.Errorf("want one line refusing --memory and naming the fix, exit 125:\n%s", r)
	}
	r = rboxCmd(t, tierEnv("rlimit"), "--limits", "strict", "--pids-limit", "64", "--", "true")
	if r.code != 125 || len(stderrLines(r)) != 1 || !strings.Contains(r.stderr, "--pids-limit cannot hold") {
		t.Errorf("want --pids-limit refused without a pids cgroup:\n%s", r)
	}
	r = rboxCmd(t, tierEnv("cgroup"), "--limits", "strict", "--pids-limit", "64", "--cpus", "1", "--", "true")
	if r.code != 0 || r.stderr != "" && !strings.HasPrefix(r.stderr, "rbox: warning: no subordinate") {
		t.Errorf("want the cgroup tier accepted by --limits strict:\n%s", r)
	}
	noLeaves(t, "--limits strict")
}

// Bad limits: one line, exit 125, nothing left.
func TestLimitBadInput(t *testing.T) {
	cases := []struct {
		args []string
		says string
	}{
		{[]string{"--memory", "lots"}, "--memory: \"lots\" is not a size"},
		{[]string{"--memory=-5m"}, "is not a size"},
		{[]string{"--memory", "1k"}, "too small for the sandbox to start"},
		{[]string{"--memory-swap", "1g"}, "--memory-swap needs --memory"},
		{[]string{"--memory", "1g", "--memory-swap", "512m"}, "is below --memory"},
		{[]string{"--cpus", "0"}, "--cpus 0: give a number of CPUs from 0.01"},
		{[]string{"--cpus", "NaN"}, "give a number of CPUs"},
		{[]string{"--pids-limit", "0"}, "too small for the sandbox to start"},
		{[]string{"--limits", "strict"}, "--limits strict: give the limits"},
		{[]string{"--cpus=-1"}, "--cpus -1: give a number of CPUs"},
		{[]string{"--cpus", "0.001"}, "give a number of CPUs"},
		{[]string{"--cpus", "1000"}, "give a number of CPUs"},
		{[]string{"--pids-limit", "1"}, "too small for the sandbox to start"},
		{[]string{"--pids-limit=-3"}, "too small"},
		{[]string{"--ulimit", "bogus=1"}, "unknown limit \"bogus\""},
		{[]string{"--ulimit", "nofile"}, "expected NAME=SOFT[:HARD]"},
		{[]string{"--ulimit", "nofile=2048:1024"}, "soft limit must be less than or equal to hard limit"},
		{[]string{"--ulimit", "nofile=ten"}, "nofile=ten"},
		{[]string{"--limits", "loose"}, "--limits"},
		{[]string{"--stats-file", "/no/such/dir/s.json"}, "--stats-file"},
	}
	for _, c := range cases {
		args := c.args
		before := tmpEntries(t)
		r := rboxCmd(t, tierEnv("cgroup"), append(args, "--", "true")...)
		lines := stderrLines(r)
		if r.code != 125 || len(lines) != 1 || !strings.Contains(lines[0], c.says) {
			t.Errorf("%v: want exit 125 and one line saying %q:\n%s", c.args, c.says, r)
		}
		for e := range tmpEntries(t) {
			if !before[e] {
				t.Errorf("%v: left %s in /tmp", c.args, e)
			}
		}
	}
	noLeaves(t, "bad input")
}

// After kill -9 of rbox the sandbox dies with it (its pid 1's parent-death
// signal), and the leaves it could not remove are removed by the next run.
func TestLimitKill9LeavesNothing(t *testing.T) {
	cmd := exec.Command(rboxBin, "--pids-limit", "64", "--stats", "--", "sh", "-c", "echo up; exec sleep 61.25")
	tierEnv("cgroup")(cmd)
	out := &strings.Builder{}
	cmd.Stdout = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the sandbox", 10*time.Second, func() bool { return strings.Contains(out.String(), "up") })
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	waitFor(t, "the sandbox's end", 10*time.Second, func() bool { return len(processesWith("sleep\x0061.25")) == 0 })
	stale := filepath.Join(delegated()["pids"], "rbox-"+strconv.Itoa(cmd.Process.Pid))
	if _, err := os.Stat(stale); err != nil {
		t.Fatalf("no leaf left by the killed rbox (%v): the next run's sweep is not shown", err)
	}
	if r := rboxCmd(t, tierEnv("cgroup"), "--pids-limit", "64", "--", "true"); r.code != 0 {
		t.Fatalf("the next run: %s", r)
	}
	noLeaves(t, "kill -9 of rbox and a next run")
}

// rbox check says which mechanism holds each limit here.
func TestCheckLimitLines(t *testing.T) {
	r := rboxCmd(t, tierEnv("cgroup"), "check")
	want := map[string][]string{
		"limit pids":     {"pass", "cgroup v1, the whole sandbox", delegated()["pids"]},
		"limit cpu":      {"pass", "cgroup v1", delegated()["cpu"]},
		"limit memory":   {"warn", "rlimit: RLIMIT_DATA per process", "-> fix: "},
		"limit swap":     {"warn", "none: not enforced"},
		"limit teardown": {"pass", "cgroup v2 leaf in " + delegated()["unified"], "cgroup.kill"},
	}
	for name, says := range want {
		var line string
		for _, l := range strings.Split(r.stdout, "\n") {
			if strings.Contains(l, name+" ") {
				line = l
			}
		}
		for _, s := range says {
			if !strings.Contains(line, s) {
				t.Errorf("rbox check: line %q does not say %q\n%s", line, s, r.stdout)
			}
		}
	}
	r = rboxCmd(t, tierEnv("rlimit"), "check")
	if !strings.Contains(r.stdout, "limit pids") || !strings.Contains(r.stdout, "RLIMIT_NPROC") {
		t.Errorf("rbox check without delegation: %s", r.stdout)
	}
}
