package hostcheck

// The checks that read the host's configuration: cgroups, Landlock,
// sysctls, the process's own seccomp state, container markers.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

const cgroupRoot = "/sys/fs/cgroup"

const unifiedFix = "boot with systemd.unified_cgroup_hierarchy=1 (and cgroup_no_v1=all) for a cgroup v2 only host"

// cgroup2Mount is where the unified hierarchy is mounted and which cgroup
// is its root, preferring /sys/fs/cgroup.
func cgroup2Mount() (mountPoint, root string, ok bool) {
	mounts, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("cgroup2"))
	if err != nil {
		return "", "", false
	}
	for _, m := range mounts {
		if !ok || m.Mountpoint == cgroupRoot {
			mountPoint, root, ok = m.Mountpoint, m.Root, true
		}
	}
	return mountPoint, root, ok
}

func checkCgroupV2(*caller) Result {
	const name = "cgroup v2"
	var fs unix.Statfs_t
	if err := unix.Statfs(cgroupRoot, &fs); err == nil && fs.Type == unix.CGROUP2_SUPER_MAGIC {
		return pass(name, "unified hierarchy at "+cgroupRoot+controllersOf(cgroupRoot))
	}
	if mp, _, ok := cgroup2Mount(); ok {
		return warn(name, "hybrid layout: cgroup v1 controllers at "+cgroupRoot+", the unified hierarchy only at "+mp+controllersOf(mp)+"; limits then need delegated cgroup v1 directories or fall back to rlimits (see the limit lines)", unifiedFix)
	}
	return warn(name, "no cgroup v2 hierarchy mounted (cgroup v1 only); limits then need delegated cgroup v1 directories or fall back to rlimits (see the limit lines)", unifiedFix)
}

func controllersOf(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	if err != nil {
		return ""
	}
	c := strings.Join(strings.Fields(string(b)), " ")
	if c == "" {
		return " (no controllers enabled)"
	}
	return " (controllers: " + c + ")"
}

// ownCgroup is the caller's cgroup v2 path, from /proc/self/cgroup.
func ownCgroup() (string, bool) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return p, true
		}
	}
	return "", false
}

func checkCgroupDelegation(*caller) Result {
	const name = "cgroup delegation"
	fix := "run rbox in a delegated cgroup, e.g. systemd-run --user --scope -p Delegate=yes rbox ..., or delegate to user sessions: systemctl edit user@.service, add [Service] Delegate=yes"
	mp, root, ok := cgroup2Mount()
	if !ok {
		return warn(name, "no cgroup v2 hierarchy to delegate", unifiedFix)
	}
	cg, ok := ownCgroup()
	if !ok {
		return warn(name, "no cgroup v2 entry in /proc/self/cgroup", unifiedFix)
	}
	rel := cg
	if root != "/" {
		rel = strings.TrimPrefix(cg, root)
	}
	dir := filepath.Join(mp, rel)
	for _, f := range []string{"cgroup.procs", "cgroup.subtree_control"} {
		if err := unix.Faccessat(unix.AT_FDCWD, filepath.Join(dir, f), unix.W_OK, unix.AT_EACCESS); err != nil {
			return warn(name, fmt.Sprintf("your cgroup %s is not delegated to you: %s/%s: %v", cg, dir, f, err), fix)
		}
	}
	return pass(name, fmt.Sprintf("your cgroup %s (%s) is writable by you%s", cg, dir, controllersOf(dir)))
}

func checkLandlock(*caller) Result {
	const name = "landlock"
	abi, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	switch {
	case errno == 0:
		return pass(name, fmt.Sprintf("ABI version %d", abi))
	case errno == unix.EOPNOTSUPP:
		return warn(name, "built into the kernel but not enabled at boot", "add landlock to the lsm= kernel parameter (keep the modules already listed in /sys/kernel/security/lsm)")
	case errno == unix.ENOSYS:
		return warn(name, "the kernel has no Landlock", "use a kernel of 5.13 or later built with CONFIG_SECURITY_LANDLOCK=y")
	}
	return warn(name, "landlock_create_ruleset: "+errno.Error(), "")
}

// procSys is where the sysctls are read; tests point it elsewhere.
var procSys = "/proc/sys"

// readSysctl reads a sysctl (key with slashes); ok is false when the
// kernel has no such setting.
func readSysctl(key string) (string, bool) {
	b, err := os.ReadFile(filepath.Join(procSys, key))
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(b)), true
}

func persistHint(key, value string) string {
	return fmt.Sprintf("sysctl -w %s=%s, and persist it in /etc/sysctl.d/", key, value)
}

func checkMaxUserNamespaces(*caller) Result {
	const name = "user.max_user_namespaces"
	v, ok := readSysctl("user/max_user_namespaces")
	switch {
	case !ok:
		return fail(name, "not present: the kernel has no user namespaces", "use a kernel built with CONFIG_USER_NS=y")
	case v == "0":
		return fail(name, "0: user namespaces are disabled", persistHint(name, "15000"))
	}
	return pass(name, v)
}

func checkUnprivilegedClone(c *caller) Result {
	const name = "kernel.unprivileged_userns_clone"
	v, ok := readSysctl("kernel/unprivileged_userns_clone")
	switch {
	case !ok:
		return pass(name, "not present on this kernel (no such restriction)")
	case v != "0":
		return pass(name, v)
	case c.root():
		return warn(name, "0: only privileged users may create user namespaces; root is not affected, other users are", persistHint(name, "1"))
	}
	return fail(name, "0: only privileged users may create user namespaces", persistHint(name, "1"))
}

func checkAppArmorUserns(c *caller) Result {
	const name = "kernel.apparmor_restrict_unprivileged_userns"
	v, ok := readSysctl("kernel/apparmor_restrict_unprivileged_userns")
	switch {
	case !ok:
		return pass(name, "not present on this kernel (no such restriction)")
	case v == "0":
		return pass(name, v)
	}
	exe, err := os.Executable()
	if err != nil {
		exe = "/usr/local/bin/rbox"
	}
	fix := persistHint(name, "0") + ", or allow rbox in an AppArmor profile (rbox ships one: packaging/apparmor/README.md): write /etc/apparmor.d/rbox with" +
		" `abi <abi/4.0>, include <tunables/global> profile rbox " + exe + " flags=(unconfined) { userns, }`" +
		" and load it with apparmor_parser -r /etc/apparmor.d/rbox; without either, rbox runs in its landlock tier"
	detail := v + ": AppArmor takes every capability away inside user namespaces made by unconfined programs"
	if c.root() {
		return warn(name, detail+"; root is not affected, other users are", fix)
	}
	return fail(name, detail, fix)
}

// procStatus returns a field of /proc/self/status.
func procStatus(key string) string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func checkSeccomp(*caller) Result {
	const name = "seccomp"
	switch mode := procStatus("Seccomp"); mode {
	case "", "0":
		return pass(name, "no seccomp filter on this process")
	case "1":
		return fail(name, "strict seccomp mode", "run rbox outside strict seccomp")
	default:
		n := procStatus("Seccomp_filters")
		if n == "" {
			n = "a"
		}
		return warn(name, n+" seccomp filter(s) already apply to this process, as container runtimes install; such filters often refuse unshare, clone with namespace flags and mount",
			"if probes above fail, allow those calls in the runtime's profile (e.g. --security-opt seccomp=unconfined) or run rbox on the host")
	}
}

// containerMarker names the container this process runs in, or "".
func containerMarker() string {
	for _, m := range []struct{ path, what string }{
		{"/.dockerenv", "docker"}, {"/run/.containerenv", "podman"},
	} {
		if _, err := os.Stat(m.path); err == nil {
			return m.what + " (" + m.path + ")"
		}
	}
	if b, err := os.ReadFile("/run/systemd/container"); err == nil {
		if v := strings.TrimSpace(string(b)); v != "" {
			return v + " (/run/systemd/container)"
		}
	}
	// Readable for root, or for the owner of pid 1.
	if b, err := os.ReadFile("/proc/1/environ"); err == nil {
		for _, kv := range strings.Split(string(b), "\x00") {
			if v, ok := strings.CutPrefix(kv, "container="); ok && v != "" {
				return v + " (container= in pid 1's environment)"
			}
		}
	}
	if b, err := os.ReadFile("/proc/self/cgroup"); err == nil {
		for _, hint := range []string{"docker", "kubepods", "libpod", "containerd", "/lxc/", "lxc.payload"} {
			if strings.Contains(string(b), hint) {
				return strings.Trim(hint, "/.") + " (cgroup path)"
			}
		}
	}
	return ""
}

func checkContainer(*caller) Result {
	const name = "container"
	m := containerMarker()
	if m == "" {
		return pass(name, "not inside a container, as far as the usual markers tell")
	}
	return warn(name, "container marker found: "+m+"; a container runtime may block namespaces with seccomp, AppArmor, masked /proc paths or dropped capabilities",
		"if probes above fail, run the container with --security-opt seccomp=unconfined --security-opt apparmor=unconfined --security-opt systempaths=unconfined, or run rbox on the host")
}
