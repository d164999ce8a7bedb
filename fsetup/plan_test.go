package fsetup

import (
	"io/fs"
	"os"
	"slices"
	"testing"

	"github.com/rbox-dev/rbox/spec"
	"github.com/rbox-dev/rbox/sysplan"
)

// defaultConfig is what a plain `rbox -- cmd` asks of fsetup.
func defaultConfig() Config {
	c := config()
	c.TTYGID = 5
	c.Cwd = "/"
	return c
}

// BenchmarkPlan measures building the Program of a default run, which the
// fast path does while the id maps are written.
func BenchmarkPlan(b *testing.B) {
	cfg := defaultConfig()
	b.ReportAllocs()
	for b.Loop() {
		p := new(sysplan.Program)
		if err := Plan(p, &cfg); err != nil {
			b.Fatal(err)
		}
		p.Finish()
	}
}

// maxDefaultOps bounds the ops of a default plan (588 before the setup's
// own tmpfs mounts were filled relative to their descriptors), so that
// they do not creep back up.
const maxDefaultOps = 280

func TestPlanOpCount(t *testing.T) {
	cfg := defaultConfig()
	var p sysplan.Program
	if err := Plan(&p, &cfg); err != nil {
		t.Fatal(err)
	}
	t.Logf("default plan: %d ops", p.Len())
	if p.Len() > maxDefaultOps {
		t.Errorf("a default plan has %d ops, more than %d", p.Len(), maxDefaultOps)
	}
}

// planSize, which Plan grows the Program by, covers the ops Plan makes.
func TestPlanSize(t *testing.T) {
	bind := func(dst string) spec.Mount { return spec.Mount{Kind: spec.MountBind, Source: "/src", Dest: dst} }
	for _, mounts := range [][]spec.Mount{
		nil,
		{bind("/work")},
		{bind("/work"), bind("/work/sub"), bind("/data")},
		{bind("/a/b/c"), {Kind: spec.MountTmpfs, Dest: "/a/b/c/d"}, {Kind: spec.MountSymlink, Source: "/a", Dest: "/l"}},
		{bind("/usr/local/x/y"), {Kind: spec.MountDir, Dest: "/etc/x/y"}},
	} {
		cfg := defaultConfig()
		cfg.Mounts = mounts
		var p sysplan.Program
		if err := Plan(&p, &cfg); err != nil {
			t.Fatal(err)
		}
		if n := planSize(&cfg); p.Len() > n-10 {
			t.Errorf("%v: %d ops, planSize says %d", mounts, p.Len(), n)
		}
	}
}

// hostEntries, which reads / once, sees what lstat sees.
func TestHostEntries(t *testing.T) {
	names := append([]string{"proc", "no-such-entry", "dev", "tmp"}, hostSystemDirs...)
	if es, err := os.ReadDir("/"); err == nil {
		for _, e := range es {
			names = append(names, e.Name()) // regular files too
		}
	}
	got, err := hostEntries(names)
	if err != nil {
		t.Fatal(err)
	}
	var want []hostEntry
	for _, n := range names {
		fi, err := os.Lstat("/" + n)
		switch {
		case err != nil:
		case fi.Mode()&fs.ModeSymlink != 0:
			link, _ := os.Readlink("/" + n)
			want = append(want, hostEntry{n, link})
		case fi.IsDir():
			want = append(want, hostEntry{name: n})
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("hostEntries:\n%v\nlstat:\n%v", got, want)
	}
}
