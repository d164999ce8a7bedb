//go:build integration

package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// procsCgroup is the cgroup under each limits leaf that holds the
// sandbox's processes (limits.procsDir).
const procsCgroup = "sandbox"

// The command cannot leave the cgroup that holds its limits, nor rewrite
// them, even given CAP_SYS_ADMIN: its processes sit in a cgroup below the
// leaf that holds the limits, and pid 1 makes its cgroup namespace there
// once placed, so a pids hierarchy it mounts shows that cgroup as the root
// and neither the leaf's pids.max (which is the caller's file, and so
// writable by root inside) nor the delegated parent. With --share cgroup it
// cannot mount a cgroup hierarchy at all (the caller's cgroup namespace is
// not its user namespace's). The attempt: raise pids.max where its cgroup
// and the one above it are, move to the hierarchy's root, then fork 300
// processes. Proven against a weakened setup: the leaf's pids.max written
// from outside, where it is reachable, lets the same bomb past the limit.
func TestEscapeLimitCgroupLeaf(t *testing.T) {
	const limit = 64
	bomb := `sh -c 'i=0; while [ $i -lt 300 ]; do (exec sleep 30) & i=$((i+1)); done' 2>/dev/null
		n=0; for q in /proc/[0-9]*; do n=$((n+1)); done; echo $n`
	escape := `p=$(sed -n 's/^[0-9]*:pids://p' /proc/self/cgroup); mkdir -p /tmp/c
		mount -t cgroup -o pids none /tmp/c || exit 9
		for d in "/tmp/c$p" "/tmp/c$p/.."; do echo max 2>/dev/null >"$d/pids.max"; done; echo $$ 2>/dev/null >/tmp/c/cgroup.procs
		` + bomb
	count := func(r result) int {
		n, err := strconv.Atoi(strings.TrimSpace(r.stdout))
		if r.code != 0 || err != nil {
			t.Fatalf("the attempt did not run:\n%s", r)
		}
		return n
	}
	for name, extra := range executors {
		args := append(append([]string{}, extra...), "--cap-add", "SYS_ADMIN", "--pids-limit", strconv.Itoa(limit), "--", "sh", "-c", escape)
		if n := count(rboxCmd(t, tierEnv("cgroup"), args...)); n >= limit {
			t.Errorf("%s: %d processes under --pids-limit %d: the command undid its limit", name, n, limit)
		}
	}
	shared := rboxCmd(t, tierEnv("cgroup"), "--share", "cgroup", "--cap-add", "SYS_ADMIN", "--pids-limit", "64", "--", "sh", "-c", escape)
	if shared.code != 9 {
		t.Errorf("--share cgroup: the command mounted a cgroup hierarchy:\n%s", shared)
	}
	// Weakened: the leaf's pids.max reached (from outside).
	cmd := exec.Command(rboxBin, "--pids-limit", strconv.Itoa(limit), "--", "sh", "-c", "read x; "+bomb)
	tierEnv("cgroup")(cmd)
	stdin, _ := cmd.StdinPipe()
	var out strings.Builder
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	leaf := filepath.Join(delegated()["pids"], "rbox-"+strconv.Itoa(cmd.Process.Pid))
	waitFor(t, "the sandbox's pids leaf", 10*time.Second, func() bool {
		b, err := os.ReadFile(filepath.Join(leaf, procsCgroup, "cgroup.procs"))
		return err == nil && len(b) > 0
	})
	if err := os.WriteFile(filepath.Join(leaf, "pids.max"), []byte("max"), 0); err != nil {
		t.Fatalf("the weakened setup could not write the leaf's pids.max: %v", err)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("weakened: %v\n%s", err, out.String())
	}
	if n, _ := strconv.Atoi(strings.TrimSpace(out.String())); n < limit {
		t.Errorf("the weakened setup kept the limit (%d processes): the test proves nothing", n)
	}
	noLeaves(t, "the escape attempts")
}
