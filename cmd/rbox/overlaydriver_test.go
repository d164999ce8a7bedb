package main

import (
	"testing"

	"github.com/rbox-dev/rbox/spec"
)

// The PATH search for fuse-overlayfs is made only for the one case that
// needs it, a --rootfs tree under --overlay with unmapped owners: every
// other run would pay for it (scripts/bench-profile found it in every run's
// samples).
func TestChooseOverlayDriverSearchesOnlyWhenNeeded(t *testing.T) {
	searched := false
	fuseOK := func() bool { searched = true; return true }
	for _, s := range []*spec.Spec{
		{},
		{Overlay: &spec.Overlay{}},
		{RootFS: t.TempDir()},
		{RootFS: t.TempDir(), Overlay: &spec.Overlay{}, StorageDriver: "fuse-overlayfs"},
	} {
		chooseOverlayDriver(s, fuseOK)
		if searched {
			t.Errorf("%+v: fuse-overlayfs was looked for", s)
		}
	}
	// The host's root, owned by an id no map has: the search is made and
	// its answer used.
	m := []spec.IDMap{{Inside: 0, Outside: 4000000, Count: 65536}}
	s := &spec.Spec{RootFS: "/", Overlay: &spec.Overlay{}, UIDMap: m, GIDMap: m}
	chooseOverlayDriver(s, fuseOK)
	if !searched || s.StorageDriver != "fuse-overlayfs" {
		t.Errorf("unmapped owners: searched %v, driver %q; want fuse-overlayfs", searched, s.StorageDriver)
	}
}
