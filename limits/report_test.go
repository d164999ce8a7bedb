package limits

import (
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/spec"
)

// In the landlock tier, rbox check says --pids-limit needs a pids cgroup
// (RLIMIT_NPROC would count the caller's host processes), and holds when
// one is delegated.
func TestReportLandlock(t *testing.T) {
	lines := func(h *Host, landlock bool) map[string]Line {
		m := map[string]Line{}
		for _, l := range Report(h, landlock) {
			m[l.Name] = l
		}
		return m
	}
	h := fakeTree(t, "", "")
	full, ll := lines(h, false), lines(h, true)
	if p := full["limit pids"]; p.Good || !strings.Contains(p.Detail, "RLIMIT_NPROC, per uid in the sandbox's user namespace") {
		t.Errorf("full tier, no pids controller: %+v", p)
	}
	if p := ll["limit pids"]; p.Good || !strings.Contains(p.Detail, "refused in the landlock tier") || p.Fix == "" {
		t.Errorf("landlock tier, no pids controller: %+v", p)
	}
	if m := ll["limit memory"]; strings.Contains(m.Detail, "tmpfs") || !strings.Contains(m.Detail, "landlock tier") {
		t.Errorf("landlock tier memory line: %+v", m)
	}
	if tr := ll["limit teardown"]; !tr.Good || !strings.Contains(tr.Detail, "outlives it") {
		t.Errorf("landlock tier teardown line: %+v", tr)
	}
	h = fakeTree(t, "pids", "")
	if p := lines(h, true)["limit pids"]; !p.Good || !strings.Contains(p.Detail, "cgroup v2, the whole sandbox") {
		t.Errorf("landlock tier, pids controller: %+v", p)
	}
}

// The Box hands its rlimits to the landlock tier's child (TakeRlimits, so
// Attach does not set them from outside), and names its leaves and all its
// rlimits for a named sandbox's state (rbox exec).
func TestBoxForJoiners(t *testing.T) {
	h := fakeTree(t, "pids", "")
	l := &spec.Limits{MemoryBytes: 64 << 20, PIDs: 32, Ulimits: []spec.Rlimit{{Name: "core", Resource: unix.RLIMIT_CORE}}}
	b, err := setup(h, l)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Remove()
	dirs := b.ProcsDirs()
	if len(dirs) != 1 || filepath.Base(dirs[0]) != procsDir || filepath.Dir(filepath.Dir(dirs[0])) != filepath.Join(h.V2Mount, "user") {
		t.Errorf("ProcsDirs %v, want one, in a leaf in the delegated cgroup", dirs)
	}
	names := func(rs []spec.Rlimit) string {
		var n []string
		for _, r := range rs {
			n = append(n, r.Name)
		}
		return strings.Join(n, ",")
	}
	// pids by the cgroup; memory by RLIMIT_DATA.
	if got := names(b.Rlimits()); got != "core,data" {
		t.Errorf("Rlimits: %s, want core,data", got)
	}
	if got := names(b.TakeRlimits()); got != "core,data" {
		t.Errorf("TakeRlimits: %s, want core,data", got)
	}
	if got := names(b.TakeRlimits()); got != "" {
		t.Errorf("TakeRlimits twice: %s, want none", got)
	}
	if got := names(b.Rlimits()); got != "core,data" {
		t.Errorf("Rlimits after TakeRlimits: %s, want core,data", got)
	}
	var nilBox *Box
	if nilBox.ProcsDirs() != nil || nilBox.Rlimits() != nil || nilBox.TakeRlimits() != nil {
		t.Error("a nil Box has leaves or rlimits")
	}
}
