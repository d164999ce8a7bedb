//go:build integration

package tests

import (
	"strings"
	"testing"
)

// The command cannot leave the cgroup that holds its limits: without
// CAP_SYS_ADMIN it cannot mount a cgroup hierarchy, and /sys/fs/cgroup in
// its fresh sysfs is empty. Proven against a weakened setup: given
// CAP_SYS_ADMIN, it mounts the pids hierarchy (whose root in its cgroup
// namespace is where rbox started) and moves itself to the delegated
// parent (or, for root, to the root), out from under --pids-limit; rbox warns of that, and --limits
// strict refuses it.
func TestEscapeLimitCgroupLeaf(t *testing.T) {
	parent := "rbox-" + testUser()
	escape := `mkdir -p /tmp/c; ls /sys/fs/cgroup; mount -t cgroup -o pids none /tmp/c 2>/dev/null &&
		for d in /tmp/c/` + parent + ` /tmp/c; do echo $$ 2>/dev/null >$d/cgroup.procs && break; done; grep :pids: /proc/self/cgroup`
	r := rboxCmd(t, tierEnv("cgroup"), "--pids-limit", "64", "--", "sh", "-c", escape)
	if r.code != 0 || !strings.Contains(r.stdout, ":pids:/"+parent+"/rbox-") {
		t.Errorf("the command left its pids cgroup:\n%s", r)
	}
	weak := rboxCmd(t, tierEnv("cgroup"), "--cap-add", "SYS_ADMIN", "--pids-limit", "64", "--", "sh", "-c", escape)
	// (Root's command, host root itself, may even move to the hierarchy's root.)
	if strings.Contains(weak.stdout, ":pids:/"+parent+"/rbox-") || !strings.Contains(weak.stdout, ":pids:/") {
		t.Errorf("the weakened setup did not let the command leave its cgroup: the test proves nothing:\n%s", weak)
	}
	if !strings.Contains(weak.stderr, "rbox: warning: limits: the command holds CAP_SYS_ADMIN and can leave its cgroup") {
		t.Errorf("no warning for a limit the command can leave:\n%s", weak)
	}
	strict := rboxCmd(t, tierEnv("cgroup"), "--limits", "strict", "--cap-add", "SYS_ADMIN", "--pids-limit", "64", "--", "true")
	if strict.code != 125 || !strings.Contains(strict.stderr, "fix: drop --cap-add SYS_ADMIN") {
		t.Errorf("--limits strict accepted a limit the command can leave:\n%s", strict)
	}
	noLeaves(t, "the escape attempts")
}
