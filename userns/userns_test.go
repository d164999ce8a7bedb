package userns

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/rbox-dev/rbox/spec"
	"github.com/rbox-dev/rbox/subid"
)

func TestLayout(t *testing.T) {
	for _, c := range []struct {
		name   string
		self   uint32
		at     uint32
		ranges []subid.Range
		want   []spec.IDMap
	}{
		{"root inside", 1001, 0, []subid.Range{{Start: 100000, Count: 65536}},
			[]spec.IDMap{{Inside: 0, Outside: 1001, Count: 1}, {Inside: 1, Outside: 100000, Count: 65536}}},
		{"keep-id 1000", 1001, 1000, []subid.Range{{Start: 100000, Count: 65536}},
			[]spec.IDMap{{Inside: 1000, Outside: 1001, Count: 1}, {Inside: 0, Outside: 100000, Count: 1000}, {Inside: 1001, Outside: 101000, Count: 64536}}},
		{"two ranges", 1001, 0, []subid.Range{{Start: 100000, Count: 10}, {Start: 200000, Count: 5}},
			[]spec.IDMap{{Inside: 0, Outside: 1001, Count: 1}, {Inside: 1, Outside: 100000, Count: 10}, {Inside: 11, Outside: 200000, Count: 5}}},
		{"hole inside the second range", 1001, 12, []subid.Range{{Start: 100000, Count: 10}, {Start: 200000, Count: 5}},
			[]spec.IDMap{{Inside: 12, Outside: 1001, Count: 1}, {Inside: 0, Outside: 100000, Count: 10}, {Inside: 10, Outside: 200000, Count: 2}, {Inside: 13, Outside: 200002, Count: 3}}},
		{"no range", 1001, 0, nil, []spec.IDMap{{Inside: 0, Outside: 1001, Count: 1}}},
	} {
		if got := Layout(c.self, c.at, c.ranges); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: Layout = %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestFormat(t *testing.T) {
	got := string(Format([]spec.IDMap{{Inside: 0, Outside: 1001, Count: 1}, {Inside: 1, Outside: 100000, Count: 65536}}))
	if got != "0 1001 1\n1 100000 65536\n" {
		t.Errorf("Format = %q", got)
	}
}

// NewPlan falls back to the caller alone, with a warning that says why and
// how to fix it, when the caller has no range.
func TestNewPlanFallback(t *testing.T) {
	dir := t.TempDir()
	SubUIDPath, SubGIDPath = filepath.Join(dir, "subuid"), filepath.Join(dir, "subgid")
	t.Cleanup(func() { SubUIDPath, SubGIDPath = subid.SubUIDPath, subid.SubGIDPath })
	if err := os.WriteFile(SubUIDPath, []byte("other:100000:65536\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(SubGIDPath, []byte("alice:100000:65536\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := NewPlan(Caller{Name: "alice", UID: 1001, GID: 1001}, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if p.Helpers || !p.SetgroupsDenied || len(p.UIDMap) != 1 || len(p.GIDMap) != 1 {
		t.Fatalf("plan = %+v, want a single mapping written directly", p)
	}
	if !strings.Contains(p.Warning, "no subordinate uid range for alice") || !strings.Contains(p.Warning, "usermod --add-subuids") {
		t.Errorf("warning = %q", p.Warning)
	}
	// A malformed file is an error naming file:line.
	if err := os.WriteFile(SubUIDPath, []byte("alice:x:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := NewPlan(Caller{Name: "alice", UID: 1001, GID: 1001}, 0, 0); err == nil || !strings.Contains(err.Error(), SubUIDPath+":1:") {
		t.Errorf("malformed subuid: err = %v", err)
	}
}

// Root with no subordinate range maps every id its own user namespace has,
// itself written directly: real root all 2^32-1, root in a pod its 65536.
func TestNewPlanRootMapsOwnNamespace(t *testing.T) {
	dir := t.TempDir()
	SubUIDPath, SubGIDPath = filepath.Join(dir, "subuid"), filepath.Join(dir, "subgid")
	OwnUIDMapPath, OwnGIDMapPath = filepath.Join(dir, "uid_map"), filepath.Join(dir, "gid_map")
	t.Cleanup(func() {
		SubUIDPath, SubGIDPath = subid.SubUIDPath, subid.SubGIDPath
		OwnUIDMapPath, OwnGIDMapPath = "/proc/self/uid_map", "/proc/self/gid_map"
	})
	for _, c := range []struct {
		name, own string
		at        uint32
		want      string
	}{
		{"real root", "         0          0 4294967295\n", 0, "0 0 1\n1 1 4294967294\n"},
		{"pod", "0 100000 65536\n", 0, "0 0 1\n1 1 65535\n"},
		{"pod, --uid 1000", "0 100000 65536\n", 1000, "1000 0 1\n0 1 1000\n1001 1001 64535\n"},
		{"nested in rbox", "0 1001 1\n1 100000 65536\n", 0, "0 0 1\n1 1 65536\n"},
	} {
		for _, p := range []string{OwnUIDMapPath, OwnGIDMapPath} {
			if err := os.WriteFile(p, []byte(c.own), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		p, err := NewPlan(Caller{Name: "root"}, c.at, c.at)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(Format(p.UIDMap)); got != c.want || string(Format(p.GIDMap)) != c.want {
			t.Errorf("%s: uid_map %q, want %q", c.name, got, c.want)
		}
		if p.Helpers || p.SetgroupsDenied || p.Warning != "" {
			t.Errorf("%s: plan %+v, want maps written directly, no warning", c.name, p)
		}
	}
}

// Under no_new_privs the setuid helpers are useless: the caller alone,
// with a warning saying why.
func TestNewPlanNoNewPrivs(t *testing.T) {
	dir := t.TempDir()
	SubUIDPath, SubGIDPath, StatusPath = filepath.Join(dir, "subuid"), filepath.Join(dir, "subgid"), filepath.Join(dir, "status")
	t.Cleanup(func() {
		SubUIDPath, SubGIDPath, StatusPath = subid.SubUIDPath, subid.SubGIDPath, "/proc/self/status"
	})
	for _, p := range []string{SubUIDPath, SubGIDPath} {
		if err := os.WriteFile(p, []byte("alice:100000:65536\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(StatusPath, []byte("Name:\trbox\nNoNewPrivs:\t1\nSeccomp:\t2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("newuidmap"); err != nil {
		t.Fatal("newuidmap must be installed (scripts/test-setup)")
	}
	p, err := NewPlan(Caller{Name: "alice", UID: 1001, GID: 1001}, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if p.Helpers || len(p.UIDMap) != 1 || !strings.Contains(p.Warning, "no_new_privs") {
		t.Errorf("plan %+v, want the caller alone and a warning naming no_new_privs", p)
	}
}
