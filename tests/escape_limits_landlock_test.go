//go:build integration

package tests

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// In the landlock tier the command runs as the caller, who owns the
// delegated cgroups: only Landlock, which shows /sys read-only, keeps it
// from writing its pid into another cgroup's cgroup.procs and so leaving
// the leaf that holds --pids-limit. Proven against a weakened setup: with
// the delegated pids directory bound read-write, it moves itself into a
// cgroup the test made there; rbox warns of that bind, and --limits strict
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
	escape := `echo $$ >` + dest + `/cgroup.procs; grep :pids: /proc/self/cgroup`
	leaf := ":pids:/rbox-" + testUser() + "/rbox-"
	r := rboxCmd(t, tierEnv("cgroup"), "--isolation", "landlock", "--pids-limit", "64", "--", "sh", "-c", escape)
	if r.code != 0 || !strings.Contains(r.stdout, leaf) || !strings.Contains(r.stderr, "Permission denied") {
		t.Errorf("the command left its pids cgroup, or was not refused:\n%s", r)
	}
	bind := []string{"--bind", parent + ":" + parent}
	weak := rboxCmd(t, tierEnv("cgroup"), append(append([]string{"--isolation", "landlock"}, bind...), "--pids-limit", "64", "--", "sh", "-c", escape)...)
	if !strings.Contains(weak.stdout, ":pids:/rbox-"+testUser()+"/"+filepath.Base(dest)) {
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
