package fsetup

import (
	"testing"

	"github.com/rbox-dev/rbox/spec"
)

// --memory bounds /tmp, /dev/shm and every --tmpfs without a smaller size,
// and leaves the Spec's own mounts as they were.
func TestConfigForMemoryBoundsTmpfs(t *testing.T) {
	s := &spec.Spec{
		Mounts: []spec.Mount{
			{Kind: spec.MountTmpfs, Dest: "/a"},
			{Kind: spec.MountTmpfs, Dest: "/b", SizeBytes: 1 << 20},
			{Kind: spec.MountTmpfs, Dest: "/c", SizeBytes: 1 << 40},
		},
		Limits: &spec.Limits{MemoryBytes: 64 << 20},
	}
	cfg := ConfigFor(s)
	if cfg.TmpfsSize != 64<<20 {
		t.Errorf("TmpfsSize %d", cfg.TmpfsSize)
	}
	for i, want := range []int64{64 << 20, 1 << 20, 64 << 20} {
		if got := cfg.Mounts[i].SizeBytes; got != want {
			t.Errorf("%s: size %d, want %d", cfg.Mounts[i].Dest, got, want)
		}
	}
	if s.Mounts[0].SizeBytes != 0 {
		t.Errorf("the Spec's mounts changed")
	}
	if cfg := ConfigFor(&spec.Spec{}); cfg.TmpfsSize != 0 {
		t.Errorf("TmpfsSize %d without --memory", cfg.TmpfsSize)
	}
}
