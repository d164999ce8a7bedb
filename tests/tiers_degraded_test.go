//go:build integration

package tests

// The degraded tier (docs/tiers.md): the full tier's sandbox on a host that
// refuses a namespace beside the user one (tests/hostsim's nonetns and
// nopidns) or a fresh /proc (an enclosing bubblewrap that masks parts of
// its /proc), announced, with a Landlock domain standing in for what a
// shared network or pid namespace opens.

import (
	"encoding/json"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/rbox-dev/rbox/internal/nettest"
)

// degradedLine requires exactly one degraded tier line saying why.
func degradedLine(t *testing.T, r result, why string) {
	t.Helper()
	if n := strings.Count(r.stderr, "rbox: isolation: degraded tier, not full: "); n != 1 || !strings.Contains(r.stderr, why) {
		t.Errorf("want one degraded tier line saying %q, got\n%s", why, r)
	}
}

// What needs the refused namespace is refused in one line, exit 125,
// before anything runs; --isolation full refuses the tier.
func TestTierDegradedRefusals(t *testing.T) {
	before := tmpEntries(t)
	for _, c := range []struct {
		sim  string
		args []string
		want string
	}{
		{"nonetns", []string{"--net", "user"}, "--net user needs a namespace this host refuses: no network namespace"},
		{"nonetns", []string{"-p", "8080:80"}, "-p/--publish needs a namespace this host refuses"},
		{"nonetns", []string{"--allow-net", "example.com"}, "--allow-net needs a namespace this host refuses"},
		{"nonetns", []string{"--isolation", "full"}, "--isolation full: the full tier cannot run whole: no network namespace"},
		{"nopidns", []string{"--isolation", "full"}, "--isolation full: the full tier cannot run whole: no pid namespace"},
	} {
		marker := hostDir(t)
		r := rboxCmd(t, onHost(t, c.sim), append(c.args, "--bind", marker+":"+marker, "--", "touch", marker+"/ran")...)
		if r.code != 125 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%s %v: want exit 125 and one line saying %q, got\n%s", c.sim, c.args, c.want, r)
		}
		if _, err := os.Stat(marker + "/ran"); err == nil {
			t.Errorf("%s %v: the command ran", c.sim, c.args)
		}
	}
	checkNoNewTmp(t, before)
}

// Under an enclosing bubblewrap that masks parts of its /proc, the kernel
// refuses a fresh one: rbox says so and binds the enclosing /proc, whose
// processes it lists but whose environment stays unreadable (they are in
// another user namespace).
func TestTierDegradedCoveredProc(t *testing.T) {
	bin := rboxBin
	script := `sleep 60 & S=$!; ` + bin + ` -- sh -c "test -d /proc/$S && echo listed; cat /proc/$S/environ >/dev/null && echo environ-read; echo x > /proc/self/comm && echo own-proc"; kill $S`
	cmd := exec.Command("bwrap", "--unshare-user", "--unshare-pid", "--dev-bind", "/", "/", "--proc", "/proc", "--tmpfs", "/proc/fs", "--", "sh", "-c", script)
	out, err := cmd.CombinedOutput()
	r := result{stdout: string(out), stderr: string(out)}
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	degradedLine(t, r, "no fresh /proc")
	if !strings.Contains(r.stdout, "listed") || strings.Contains(r.stdout, "environ-read") || !strings.Contains(r.stdout, "own-proc") {
		t.Errorf("want the enclosing processes listed, their environment unreadable and the sandbox's own /proc entries usable, got\n%s", out)
	}
}

// rbox check names the degraded tier and the fix.
func TestCheckShowsDegradedTier(t *testing.T) {
	for sim, detail := range map[string]string{"nonetns": "no network namespace", "nopidns": "no pid namespace"} {
		it, r := checkItem(t, sim, "isolation tier")
		if it.Status != "warn" || !strings.HasPrefix(it.Detail, "degraded tier") || !strings.Contains(it.Detail, detail) || it.Fix == "" {
			t.Errorf("host %q: isolation tier %+v, want a warning naming %q and a fix\n%s", sim, it, detail, r)
		}
	}
}

// A named sandbox in the degraded tier: rbox ps shows the tier, and a
// command joining it with rbox exec enters the same kind of Landlock
// domain (no TCP to the host's loopback) as its command.
func TestTierDegradedNamed(t *testing.T) {
	echoes := nettest.StartEchoes(t, "host:")
	ns := newNamedState(t)
	onNoNet := func(cmd *exec.Cmd) {
		ns.env(cmd)
		onHost(t, "nonetns")(cmd)
	}
	if r := rboxCmd(t, onNoNet, "run", "-d", "--name", "dg", "--", "sleep", "300"); r.code != 0 {
		t.Fatal(r)
	}
	var es []struct{ Name, Tier string }
	if err := json.Unmarshal([]byte(ns.ok("ps", "--json")), &es); err != nil || len(es) != 1 || es[0].Tier != "degraded" {
		t.Errorf("ps --json: %+v %v, want the sandbox in the degraded tier", es, err)
	}
	port := strconv.Itoa(echoes.TCPPort)
	r := rboxCmd(t, onNoNet, "exec", "dg", "--", "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/"+port+" && echo connected")
	if strings.Contains(r.stdout, "connected") || echoes.TCPHits.Load() != 0 || !strings.Contains(r.stderr, "Permission denied") {
		t.Errorf("rbox exec reached the host's TCP server from the degraded sandbox:\n%s", r)
	}
	ns.ok("stop", "-t", "1", "dg")
	ns.ok("rm", "dg")
}
