//go:build integration

package tests

// Older kernels (docs/tiers.md): without openat2, the new mount API and
// clone3 the full tier builds its filesystem with mount(2) and rbox's own
// walk. scripts/run-integration runs the filesystem and escape tests a
// second time with RBOX_TEST_HOSTSIM=oldkernel, every rbox under
// tests/hostsim's oldkernel filter; the tests here check the fallback
// itself.

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// simulatedHostEnv names a tests/hostsim mode every rbox of the run is
// started under (scripts/run-integration's old-kernel pass).
const simulatedHostEnv = "RBOX_TEST_HOSTSIM"

// onSimulatedHost starts cmd under tests/hostsim when the run asks for a
// simulated host and the test did not choose one itself.
func onSimulatedHost(t *testing.T, cmd *exec.Cmd) {
	sim := os.Getenv(simulatedHostEnv)
	if sim == "" || cmd.Path != rboxBin {
		return
	}
	bin := hostsimBin(t)
	cmd.Path = bin
	cmd.Args = append([]string{bin, sim, rboxBin}, cmd.Args[1:]...)
}

// On an old kernel the full tier runs, silently, with the fallback: the
// new calls are refused (the filter works), the sandbox is the full one
// (its own user namespace, a read-only root, the binds), and rbox check
// says the fallback is in use.
func TestOldKernelFullTier(t *testing.T) {
	dir := hostDir(t)
	writeFile(t, dir+"/f", "DATA\n")
	r := rboxCmd(t, onHost(t, "oldkernel"), "--ro-bind", dir+":/data", "--",
		"sh", "-c", `readlink /proc/self/ns/user; cat /data/f; touch /data/x 2>/dev/null && echo wrote; touch /x 2>/dev/null && echo root-writable; true`)
	if r.code != 0 || strings.Contains(r.stderr, "isolation") || strings.TrimSpace(strings.Split(r.stdout, "\n")[0]) == hostUserNS(t) ||
		!strings.Contains(r.stdout, "DATA") || strings.Contains(r.stdout, "wrote") || strings.Contains(r.stdout, "root-writable") {
		t.Fatalf("want the full tier with a read-only bind and root, no tier line, got\n%s", r)
	}
	r = rboxCmd(t, onHost(t, "oldkernel"), "check")
	if !strings.Contains(r.stdout, "fallback in use: the kernel lacks openat2") {
		t.Errorf("rbox check does not say the fallback is in use:\n%s", r)
	}
	if r := rbox(t, "check"); os.Getenv(simulatedHostEnv) == "" && strings.Contains(r.stdout, "fallback in use") {
		t.Errorf("rbox check says the fallback is in use on this kernel:\n%s", r)
	}
}

// Rootless overlayfs needs Linux 5.11: on an older kernel --overlay takes
// fuse-overlayfs without trying the kernel's; here the kernel's.
func TestOldKernelOverlayUsesFuse(t *testing.T) {
	script := `grep " /etc " /proc/self/mounts; echo x > /etc/rbox-old-kernel && cat /etc/rbox-old-kernel`
	r := rboxCmd(t, onHost(t, "oldkernel"), "--overlay", "--", "sh", "-c", script)
	if r.code != 0 || !strings.Contains(r.stdout, "fuse.fuse-overlayfs") || !strings.Contains(r.stdout, "\nx\n") {
		t.Errorf("old kernel: want /etc on fuse-overlayfs and writable, got\n%s", r)
	}
	if os.Getenv(simulatedHostEnv) != "" {
		return
	}
	if r := rbox(t, "--overlay", "--", "sh", "-c", script); r.code != 0 || !strings.Contains(r.stdout, " overlay ") {
		t.Errorf("this kernel: want /etc on the kernel's overlayfs, got\n%s", r)
	}
	if _, err := os.Stat("/etc/rbox-old-kernel"); err == nil {
		t.Error("a write under --overlay reached the host")
	}
}
