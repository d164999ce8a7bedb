//go:build integration

package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The limits in the landlock tier (docs/limits.md, docs/tiers.md): the
// sandbox's cgroups where delegated, its rlimits otherwise, asked for with
// --isolation landlock and reached on a host without user namespaces.

// landlockEnv runs rbox on tests/hostsim's host sim ("" for this one)
// with the delegated cgroups ("cgroup") or without ("rlimit").
func landlockEnv(t *testing.T, sim, cgroups string) func(*exec.Cmd) {
	return func(cmd *exec.Cmd) {
		tierEnv(cgroups)(cmd)
		if p := onHost(t, sim); p != nil {
			p(cmd)
		}
	}
}

// A fork bomb stops at --pids-limit, held by the delegated pids cgroup in
// which rbox placed the tier's child before releasing it: the fork fails
// inside, /proc/self/cgroup inside names the leaf, the host sees the
// limit in the leaf while it runs, the peak is the limit, and what the
// command left in the background dies with the run.
func TestLimitLandlockPids(t *testing.T) {
	const limit = 24
	for _, sim := range []string{"", "nouserns"} {
		flags := []string{"--isolation", "landlock"}
		if sim != "" {
			flags = nil // auto falls to the landlock tier there
		}
		bomb := `grep -E ':pids:|^0::' /proc/self/cgroup; (exec sleep 61.5625) & sh -c 'i=0; while [ $i -lt 100 ]; do (exec sleep 30) & i=$((i+1)); done'; echo spawned; read x || true`
		cmd := exec.Command(rboxBin, append(flags, "--pids-limit", strconv.Itoa(limit), "--stats", "--", "sh", "-c", bomb)...)
		landlockEnv(t, sim, "cgroup")(cmd)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// rbox's pid names the leaf (hostsim executes rbox in place).
		leaf := filepath.Join(delegated()["pids"], "rbox-"+strconv.Itoa(cmd.Process.Pid))
		var seen, procs []byte
		waitFor(t, "the sandbox's pids leaf, holding the bomb", 20*time.Second, func() bool {
			seen, _ = os.ReadFile(filepath.Join(leaf, "pids.max"))
			procs, _ = os.ReadFile(filepath.Join(leaf, procsCgroup, "cgroup.procs"))
			return len(strings.Fields(string(procs))) >= 2
		})
		stdin.Close()
		err = cmd.Wait()
		r := result{stdout: stdout.String(), stderr: stderr.String()}
		if err != nil {
			t.Fatalf("host %q: %v\n%s", sim, err, r)
		}
		if strings.TrimSpace(string(seen)) != strconv.Itoa(limit) {
			t.Errorf("host %q: the leaf's pids.max was %q from the host, want %d", sim, seen, limit)
		}
		inLeaf := ":pids:/rbox-" + testUser() + "/rbox-" + strconv.Itoa(cmd.Process.Pid) + "/" + procsCgroup + "\n"
		if !strings.Contains(r.stdout, inLeaf) || !strings.Contains(r.stdout, "\n0::/rbox-"+testUser()+"/rbox-") {
			t.Errorf("host %q: inside, /proc/self/cgroup does not name the sandbox's leaves (%q):\n%s", sim, inLeaf, r)
		}
		if !strings.Contains(r.stderr, "Cannot fork") || !strings.Contains(r.stderr, fmt.Sprintf("peak tasks %d (cgroup v1)", limit)) {
			t.Errorf("host %q: want the bomb's fork refused at the limit, and the peak at it:\n%s", sim, r)
		}
		if strings.Count(r.stderr, "rbox: isolation: landlock tier") != 1 {
			t.Errorf("host %q: want the tier line once:\n%s", sim, r)
		}
		waitFor(t, "the background processes' end", 5*time.Second, func() bool { return len(processesWith("sleep\x0061.5625")) == 0 })
	}
	noLeaves(t, "the landlock fork bombs")
}

// Without a pids cgroup, --pids-limit is refused in the landlock tier: with
// no user namespace, RLIMIT_NPROC would count every process of the caller
// on the host. One line naming the fix, exit 125, nothing left.
func TestLimitLandlockPidsRefused(t *testing.T) {
	before := tmpEntries(t)
	for _, sim := range []string{"", "nouserns"} {
		flags := []string{"--isolation", "landlock"}
		if sim != "" {
			flags = nil
		}
		r := rboxCmd(t, landlockEnv(t, sim, "rlimit"), append(flags, "--pids-limit", "64", "--", "true")...)
		lines := stderrLines(r)
		if r.code != 125 || len(lines) != 1 || !strings.Contains(lines[0], "RLIMIT_NPROC would count all your processes on the host") ||
			!strings.Contains(lines[0], "fix: delegate a cgroup with the pids controller") {
			t.Errorf("host %q: want one line refusing --pids-limit, naming the fix, exit 125:\n%s", sim, r)
		}
	}
	checkNoNewTmp(t, before)
	noLeaves(t, "the refusals")
}

// --memory holds per process through RLIMIT_DATA (no memory cgroup is
// delegated here), said in the warning line; --ulimit values are what the
// command sees, RLIMIT_NOFILE included (the child sets them through package
// syscall, so Go's exec does not restore its own); --stats prints; --limits
// strict refuses the per-process memory limit.
func TestLimitLandlockRlimits(t *testing.T) {
	probe := probeBin(t)
	for _, cgroups := range []string{"cgroup", "rlimit"} {
		r := rboxCmd(t, landlockEnv(t, "", cgroups), "--isolation", "landlock", "--memory", "128m", "--ulimit", "nofile=1024:2048", "--ulimit", "core=0",
			"--stats", "--ro-bind", probe+":"+probe, "--", "sh", "-c",
			probe+" alloc 32 && "+probe+" alloc 256; grep -E 'Max (data size|open files|core file size)' /proc/self/limits")
		got := mapLines(r.stdout)
		if len(got) > 1 && strings.HasPrefix(got[1], "refused: ENOMEM") {
			got[1] = "refused: ENOMEM"
		}
		want := []string{"succeeded", "refused: ENOMEM", "Max data size 134217728 134217728 bytes", "Max core file size 0 0 bytes", "Max open files 1024 2048 files"}
		if r.code != 0 || strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s: inside:\n%s\nwant:\n%s\n%s", cgroups, strings.Join(got, "\n"), strings.Join(want, "\n"), r)
		}
		if !strings.Contains(r.stderr, "rbox: warning: limits: --memory per process only (rlimit") || !strings.Contains(r.stderr, "rbox: stats: wall ") {
			t.Errorf("%s: want the warning line and the stats line:\n%s", cgroups, r)
		}
	}
	r := rboxCmd(t, landlockEnv(t, "", "cgroup"), "--isolation", "landlock", "--limits", "strict", "--memory", "64m", "--", "true")
	if lines := stderrLines(r); r.code != 125 || len(lines) != 1 || !strings.Contains(lines[0], "--limits strict: --memory cannot hold for the whole sandbox") {
		t.Errorf("want --limits strict to refuse --memory in one line:\n%s", r)
	}
	r = rboxCmd(t, landlockEnv(t, "", "cgroup"), "--isolation", "landlock", "--limits", "strict", "--pids-limit", "64", "--cpus", "1", "--", "true")
	if r.code != 0 || strings.Contains(r.stderr, "warning") {
		t.Errorf("want the cgroup limits accepted by --limits strict:\n%s", r)
	}
	noLeaves(t, "the landlock rlimit runs")
}

// rbox check's limit lines follow the tier auto picks: on a host without
// user namespaces, --pids-limit is refused without a pids cgroup.
func TestCheckLimitLinesLandlock(t *testing.T) {
	r := rboxCmd(t, landlockEnv(t, "nouserns", "rlimit"), "check")
	var line string
	for _, l := range strings.Split(r.stdout, "\n") {
		if strings.Contains(l, "limit pids ") {
			line = l
		}
	}
	if !strings.HasPrefix(line, "warn") || !strings.Contains(line, "refused in the landlock tier") || !strings.Contains(line, "-> fix: ") {
		t.Errorf("rbox check on a host without user namespaces: limit pids line %q\n%s", line, r.stdout)
	}
	r = rboxCmd(t, landlockEnv(t, "nouserns", "rlimit"), "check", "--json")
	var report struct {
		Items []struct{ Name, Status, Detail, Fix string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &report); err != nil {
		t.Fatalf("check --json: %v\n%s", err, r)
	}
	found := false
	for _, it := range report.Items {
		if it.Name == "limit pids" {
			found = it.Status == "warn" && strings.Contains(it.Detail, "refused in the landlock tier") && it.Fix != ""
		}
	}
	if !found {
		t.Errorf("rbox check --json on a host without user namespaces: no warning limit pids item refusing it:\n%s", r.stdout)
	}
	r = rboxCmd(t, landlockEnv(t, "nouserns", "cgroup"), "check")
	if !strings.Contains(r.stdout, "cgroup v1, the whole sandbox (a leaf in "+delegated()["pids"]) {
		t.Errorf("rbox check with a pids cgroup on a host without user namespaces:\n%s", r.stdout)
	}
}
