package fsetup

import (
	"strings"
	"testing"

	"github.com/rbox-dev/rbox/spec"
	"github.com/rbox-dev/rbox/sysplan"
)

// Every kind of an empty root's Mounts makes ops, within emptyRootSize,
// and an unknown kind is refused.
func TestPlanEmptyRoot(t *testing.T) {
	mounts := []spec.Mount{
		{Kind: spec.MountROBind, Source: "/usr", Dest: "/usr"},
		{Kind: spec.MountBind, Source: "/tmp", Dest: "/w/x"},
		{Kind: spec.MountDevBind, Source: "/dev/null", Dest: "/n"},
		{Kind: spec.MountProc, Dest: "/proc"},
		{Kind: spec.MountDev, Dest: "/dev"},
		{Kind: spec.MountMqueue, Dest: "/dev/mqueue"},
		{Kind: spec.MountTmpfs, Dest: "/t", Mode: 0o700, HasMode: true, SizeBytes: 1 << 20},
		{Kind: spec.MountDir, Dest: "/t/d", Mode: 0o751, HasMode: true},
		{Kind: spec.MountFile, Dest: "/t/f", Data: []byte("x")},
		{Kind: spec.MountBindData, Dest: "/t/b", Data: []byte("y")},
		{Kind: spec.MountROBindData, Dest: "/t/r", Data: []byte("z")},
		{Kind: spec.MountSymlink, Source: "usr/bin", Dest: "/bin"},
		{Kind: spec.MountChmod, Dest: "/t", Mode: 0o755, HasMode: true},
		{Kind: spec.MountRemountRO, Dest: "/t"},
		{Kind: spec.MountOverlay, Dest: "/o", Lowers: []string{"/usr"}},
		{Kind: spec.MountROBind, Source: "/", Dest: "/"},
	}
	cfg := &Config{EmptyRoot: true, Mounts: mounts, Cwd: "/w", CwdFallbacks: []string{"/"}}
	var p sysplan.Program
	if err := Plan(&p, cfg); err != nil {
		t.Fatal(err)
	}
	if p.Len() > emptyRootSize(cfg) {
		t.Errorf("%d ops, more than emptyRootSize's %d", p.Len(), emptyRootSize(cfg))
	}
	cfg.Mounts = []spec.Mount{{Kind: "bogus", Dest: "/x"}}
	if err := Plan(new(sysplan.Program), cfg); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Fatalf("unknown kind: %v", err)
	}
}
