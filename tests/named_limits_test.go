//go:build integration

package tests

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// namedCgroupState is a namedState whose runs use the delegated cgroups
// ("cgroup") or not ("rlimit").
func namedCgroupState(t *testing.T, cgroups string) (*namedState, func(...string) result) {
	ns := newNamedState(t)
	run := func(args ...string) result {
		t.Helper()
		return rboxCmd(t, func(cmd *exec.Cmd) {
			ns.env(cmd)
			cmd.Env = append(cmd.Env, tierEnvVar(cgroups))
		}, args...)
	}
	return ns, run
}

// tierEnvVar is tierEnv's variable.
func tierEnvVar(cgroups string) string {
	if cgroups == "rlimit" {
		return "RBOX_CGROUP_PARENT=none"
	}
	return "RBOX_CGROUP_PARENT=rbox-" + testUser()
}

// rbox exec joins the sandbox's cgroups (issue 13): a fork bomb run by
// exec stops at the sandbox's --pids-limit, /proc/self/cgroup inside shows
// the sandbox's leaves (the roots of its cgroup namespace), the host sees
// the exec'd process in the leaves' cgroup.procs, and it dies when the
// sandbox is stopped; nothing is left. ps shows the limits and the tier.
func TestNamedExecJoinsCgroups(t *testing.T) {
	const limit = 24
	for name, extra := range executors {
		ns, run := namedCgroupState(t, "cgroup")
		args := append(append([]string{"run", "--name", "lim", "-d"}, extra...), "--pids-limit", strconv.Itoa(limit), "--", "sleep", "100")
		if r := run(args...); r.code != 0 {
			t.Fatalf("%s: %s", name, r)
		}
		r := run("ps", "--json")
		var entries []struct {
			Supervisor struct{ PID int }
			Tier       string `json:"tier"`
			Limits     []struct{ Name, Value, Mechanism string }
		}
		if err := json.Unmarshal([]byte(r.stdout), &entries); err != nil || len(entries) != 1 {
			t.Fatalf("%s: ps --json: %v\n%s", name, err, r)
		}
		e := entries[0]
		if e.Tier != "full" || len(e.Limits) != 1 || e.Limits[0].Name != "pids" || e.Limits[0].Value != strconv.Itoa(limit) || e.Limits[0].Mechanism != "cgroup v1" {
			t.Errorf("%s: ps --json shows tier %q and limits %+v, want full and pids %d by cgroup v1", name, e.Tier, e.Limits, limit)
		}
		table := run("ps").stdout
		if !strings.Contains(table, "LIMITS") || !strings.Contains(table, "TIER") || !strings.Contains(table, "pids=24(cgroup v1)") || !strings.Contains(table, " full ") {
			t.Errorf("%s: ps table without the limits and tier:\n%s", name, table)
		}
		leaf := map[string]string{}
		for _, h := range []string{"pids", "unified"} {
			leaf[h] = filepath.Join(delegated()[h], "rbox-"+strconv.Itoa(e.Supervisor.PID), procsCgroup)
		}

		// An exec'd process, seen from inside and from the host.
		cmd := exec.Command(rboxBin, "exec", "lim", "--", "sh", "-c", "cat /proc/self/cgroup; echo ready; exec sleep 61.6875")
		cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+ns.xdg, tierEnvVar("cgroup"))
		out := &strings.Builder{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the exec'd process", 10*time.Second, func() bool { return strings.Contains(out.String(), "ready") })
		inside := out.String()
		if !strings.Contains(inside, ":pids:/\n") || !strings.Contains(inside, "\n0::/\n") {
			t.Errorf("%s: inside, the exec'd process is not at its cgroup namespace's root (the sandbox's leaf):\n%s", name, inside)
		}
		var sleeper []int
		waitFor(t, "the exec'd sleep", 10*time.Second, func() bool { sleeper = processesWith("sleep\x0061.6875"); return len(sleeper) == 1 })
		for h, dir := range leaf {
			procs, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
			if err != nil || !containsField(string(procs), strconv.Itoa(sleeper[0])) {
				t.Errorf("%s: from the host, the exec'd process %d is not in the sandbox's %s leaf %s (%v): %q", name, sleeper[0], h, dir, err, procs)
			}
		}

		// A fork bomb by exec stops at the sandbox's limit.
		bomb := `sh -c 'i=0; while [ $i -lt 300 ]; do (exec sleep 30 >/dev/null 2>&1) & i=$((i+1)); done'; n=0; for p in /proc/[0-9]*; do n=$((n+1)); done; echo $n`
		r = run("exec", "lim", "--", "sh", "-c", bomb)
		n, err := strconv.Atoi(strings.TrimSpace(r.stdout))
		if r.code != 0 || err != nil || !strings.Contains(r.stderr, "Cannot fork") || n >= limit || n < 3 {
			t.Errorf("%s: want the exec'd bomb's fork refused, fewer than %d processes inside:\n%s", name, limit, r)
		}

		if r := run("stop", "lim"); r.code != 0 {
			t.Fatalf("%s: stop: %s\nlog: %s", name, r, run("logs", "lim"))
		}
		_ = cmd.Wait()
		waitFor(t, "the exec'd process's end", 10*time.Second, func() bool { return len(processesWith("sleep\x0061.6875")) == 0 })
		run("rm", "lim")
		noLeaves(t, name+": stop")
	}
}

// With rlimits only, an exec'd command gets the sandbox's rlimits: its
// --ulimit values and the --memory fallback.
func TestNamedExecRlimits(t *testing.T) {
	_, run := namedCgroupState(t, "rlimit")
	if r := run("run", "--name", "rl", "-d", "--memory", "96m", "--ulimit", "nofile=512:1024", "--", "sleep", "100"); r.code != 0 {
		t.Fatalf("%s", r)
	}
	r := run("exec", "rl", "--", "grep", "-E", "Max (data size|open files)", "/proc/self/limits")
	got := mapLines(r.stdout)
	want := []string{"Max data size 100663296 100663296 bytes", "Max open files 512 1024 files"}
	if r.code != 0 || strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("exec's limits:\n%s\nwant:\n%s\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"), r)
	}
	if table := run("ps").stdout; !strings.Contains(table, "memory=96MiB(rlimit),nofile=512:1024(rlimit)") {
		t.Errorf("ps table:\n%s", table)
	}
	run("stop", "rl")
	run("rm", "rl")
}

func containsField(s, f string) bool {
	for _, x := range strings.Fields(s) {
		if x == f {
			return true
		}
	}
	return false
}
