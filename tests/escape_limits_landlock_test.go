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

// In the landlock tier the command runs as the caller, who owns the
// delegated cgroups: only Landlock, which shows /sys read-only, keeps it
// from raising its leaf's pids.max or writing its pid into another
// cgroup's cgroup.procs and so leaving the leaf that holds --pids-limit.
// Proven against a weakened setup: with
// the delegated pids directory bound read-write, it raises the limit and
// moves itself into a cgroup the test made there; rbox warns of that bind, and --limits strict
// refuses it.
func TestEscapeLandlockLimitCgroup(t *testing.T) {
	parent := delegated()["pids"]
	dest := filepath.Join(parent, "escape-"+strconv.Itoa(os.Getpid()))
	if err := os.Mkdir(dest, 0o755); err != nil {
		t.Fatal(err)
	}
	defer func() {
		waitFor(t, "the escape cgroup to empty", 5*time.Second, func() bool { return os.Remove(dest) == nil })
	}()
	// Raise the leaf's pids.max (the caller's file), then move out.
	escape := `l=/sys/fs/cgroup/pids$(sed -n 's/^[0-9]*:pids://p' /proc/self/cgroup)/..; echo 100000 >$l/pids.max; echo "max=$(cat $l/pids.max)";
		echo $$ >` + dest + `/cgroup.procs; grep :pids: /proc/self/cgroup`
	leaf := ":pids:/rbox-" + testUser() + "/rbox-"
	r := rboxCmd(t, tierEnv("cgroup"), "--isolation", "landlock", "--pids-limit", "64", "--", "sh", "-c", escape)
	if r.code != 0 || !strings.Contains(r.stdout, leaf) || !strings.Contains(r.stdout, "max=64\n") || strings.Count(r.stderr, "Permission denied") != 2 {
		t.Errorf("the command left its pids cgroup or raised its limit, or was not refused:\n%s", r)
	}
	bind := []string{"--bind", parent + ":" + parent}
	weak := rboxCmd(t, tierEnv("cgroup"), append(append([]string{"--isolation", "landlock"}, bind...), "--pids-limit", "64", "--", "sh", "-c", escape)...)
	if !strings.Contains(weak.stdout, ":pids:/rbox-"+testUser()+"/"+filepath.Base(dest)) || !strings.Contains(weak.stdout, "max=100000\n") {
		t.Errorf("the weakened setup did not let the command leave its cgroup: the test proves nothing:\n%s", weak)
	}
	if !strings.Contains(weak.stderr, "rbox: warning: limits: the command can leave its cgroup through --bind "+parent) {
		t.Errorf("no warning for a limit the command can leave:\n%s", weak)
	}
	strict := rboxCmd(t, tierEnv("cgroup"), append(append([]string{"--isolation", "landlock", "--limits", "strict"}, bind...), "--pids-limit", "64", "--", "true")...)
	if strict.code != 125 || !strings.Contains(strict.stderr, "fix: drop that bind") {
		t.Errorf("--limits strict accepted a limit the command can leave:\n%s", strict)
	}
	noLeaves(t, "the landlock escape attempts")
}

// A command run by rbox exec cannot be outside the sandbox's cgroups: it
// is placed in the leaves before it joins the sandbox's cgroup namespace,
// whose root is the leaf, so even with CAP_SYS_ADMIN a cgroup hierarchy it
// mounts is rooted there and names no cgroup outside; the host sees it in
// the leaf. Proven against a weakened setup: with the sandbox's state
// stripped of its cgroups, exec leaves the joining process where rbox exec
// was, which the same checks see.
func TestEscapeExecCgroup(t *testing.T) {
	// With CAP_SYS_ADMIN it can mount the pids hierarchy: its root there
	// is the leaf (the only cgroup.procs above the leaf's children it can
	// name is the leaf's own).
	escape := `mkdir -p /tmp/c; mount -t cgroup -o pids none /tmp/c && ls /tmp/c/cgroup.procs >/dev/null && echo mounted; grep :pids: /proc/self/cgroup; echo ready; exec sleep 61.3125`
	for _, weakened := range []bool{false, true} {
		ns, run := namedCgroupState(t, "cgroup")
		if r := run("run", "--name", "esc", "-d", "--cap-add", "SYS_ADMIN", "--pids-limit", "64", "--", "sleep", "100"); r.code != 0 {
			t.Fatalf("%s", r)
		}
		var sup int
		for _, e := range ns.ps(false) {
			sup = e.Supervisor.PID
		}
		if weakened {
			file := filepath.Join(ns.xdg, "rbox", "sandboxes", "esc", "state.json")
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var st map[string]any
			if err := json.Unmarshal(b, &st); err != nil {
				t.Fatal(err)
			}
			delete(st["exec"].(map[string]any), "cgroups")
			if b, err = json.Marshal(st); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(file, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		cmd := exec.Command(rboxBin, "exec", "esc", "--", "sh", "-c", escape)
		cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+ns.xdg, tierEnvVar("cgroup"))
		out := &strings.Builder{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the exec'd process", 10*time.Second, func() bool { return strings.Contains(out.String(), "ready") })
		var sleeper []int
		waitFor(t, "the exec'd sleep", 10*time.Second, func() bool { sleeper = processesWith("sleep\x0061.3125"); return len(sleeper) == 1 })
		procs, _ := os.ReadFile(filepath.Join(delegated()["pids"], "rbox-"+strconv.Itoa(sup), procsCgroup, "cgroup.procs"))
		inLeaf := containsField(string(procs), strconv.Itoa(sleeper[0])) && strings.Contains(out.String(), ":pids:/\n")
		if !strings.Contains(out.String(), "mounted") {
			t.Errorf("the exec'd command could not mount the pids hierarchy with CAP_SYS_ADMIN:\n%s", out)
		}
		switch {
		case !weakened && !inLeaf:
			t.Errorf("the exec'd command is out of the sandbox's pids leaf (%q):\n%s", procs, out)
		case weakened && inLeaf:
			t.Errorf("the weakened setup left the exec'd command in the leaf: the test proves nothing:\n%s", out)
		}
		run("stop", "esc")
		_ = cmd.Wait()
		run("rm", "esc")
	}
	noLeaves(t, "the exec escape attempts")
}
