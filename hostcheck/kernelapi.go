package hostcheck

import (
	"github.com/rbox-dev/rbox/kernelapi"
)

// checkKernelAPI says whether the sandbox's filesystem is built with
// openat2 and the new mount API or, on an older kernel, with mount(2) and
// rbox's own walk (docs/tiers.md, "Older kernels"); and whether pid 1 is
// born in its cgroup (clone3) or placed there after.
func checkKernelAPI(*caller) Result {
	const name = "mount API"
	clone := "clone3: pid 1 is born in its cgroup v2 leaf"
	if !kernelapi.Clone3() {
		clone = "no clone3: pid 1 is moved into its cgroups once made"
	}
	if m := kernelapi.MountAPIMissing(); m != "" {
		return warn(name, "fallback in use: the kernel lacks "+m+"; the filesystem is built with mount(2), paths resolved by rbox's own walk (symlinks inside the sandbox's root, no magic links), a bind's submounts keep their own flags; "+clone,
			"Linux 5.12 or later gives openat2, the new mount API and mount_setattr (see docs/tiers.md, Older kernels)")
	}
	return pass(name, "openat2 and the new mount API (open_tree, move_mount, fsopen, mount_setattr); "+clone)
}
