package hostcheck

// The checks that create namespaces and write id maps.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/spec"
	"github.com/rbox-dev/rbox/subid"
	"github.com/rbox-dev/rbox/userns"
)

// maxNSSysctl names the per-user limit on each kind of namespace.
var maxNSSysctl = map[string]string{
	"user": "max_user_namespaces", "mnt": "max_mnt_namespaces", "pid": "max_pid_namespaces",
	"net": "max_net_namespaces", "uts": "max_uts_namespaces", "ipc": "max_ipc_namespaces",
	"cgroup": "max_cgroup_namespaces", "time": "max_time_namespaces",
}

// shareName is the --share name of each namespace rbox can keep.
var shareName = map[string]string{
	"pid": spec.NSPID, "net": spec.NSNet, "uts": spec.NSUTS, "ipc": spec.NSIPC,
	"cgroup": spec.NSCgroup, "time": spec.NSTime,
}

func checkUserNS(*caller) Result {
	const name = "user namespace"
	p := probe{name: "ns", flags: unix.CLONE_NEWUSER, env: []string{envNS + "=user"}}
	out, err := p.run()
	if err != nil {
		return fail(name, err.Error(), nsFix("user", err))
	}
	return sameNS(name, "user", out)
}

// nsCheck creates a user namespace and the namespace of the given kind
// (as named under /proc/self/ns) with it.
func nsCheck(name, kind string, flag uintptr) check {
	return func(*caller) Result {
		p := probe{name: "ns", flags: unix.CLONE_NEWUSER | flag, env: []string{envNS + "=" + kind}}
		out, err := p.run()
		if err != nil {
			return fail(name, err.Error(), nsFix(kind, err))
		}
		return sameNS(name, kind, out)
	}
}

// sameNS fails when the probe reports being in this process's namespace.
func sameNS(name, kind, childNS string) Result {
	own, err := os.Readlink("/proc/self/ns/" + kind)
	if err == nil && own == childNS {
		return fail(name, "the probe stayed in the caller's namespace "+own, "")
	}
	return pass(name, "created "+childNS)
}

// nsFix says what to do about a namespace the kernel refused.
func nsFix(kind string, err error) string {
	var pe *probeError
	errors.As(err, &pe)
	var fix string
	switch {
	case pe != nil && pe.errno == unix.ENOSPC:
		key := maxNSSysctl[kind]
		cur, _ := readSysctl("user/" + key)
		fix = fmt.Sprintf("the per-user limit is reached (user.%s = %s): sysctl -w user.%s=15000, and persist it in /etc/sysctl.d/", key, cur, key)
	case pe != nil && pe.errno == unix.EINVAL:
		fix = fmt.Sprintf("the kernel lacks %s namespaces: use a kernel built with them", kind)
	case pe != nil && (pe.errno == unix.EPERM || pe.errno == unix.EACCES):
		fix = "the kernel refused: unprivileged namespaces are disabled or filtered here"
	}
	if n, ok := shareName[kind]; ok {
		alt := "or run with --share " + n + " to keep the host's"
		if fix == "" {
			return alt
		}
		return fix + "; " + alt
	}
	return fix
}

// ownMaps writes the single-id maps that need no helper: the caller as 0
// inside. The kernel lets an unprivileged process write its own id only
// after setgroups is denied.
func ownMaps(c *caller) func(context.Context, int) error {
	return func(_ context.Context, pid int) error {
		return writeMaps(pid,
			[]spec.IDMap{{Inside: 0, Outside: uint32(c.uid), Count: 1}},
			[]spec.IDMap{{Inside: 0, Outside: uint32(c.gid), Count: 1}}, !c.root())
	}
}

// writeMaps writes a child's maps through /proc.
func writeMaps(pid int, uidMap, gidMap []spec.IDMap, denySetgroups bool) error {
	proc := "/proc/" + strconv.Itoa(pid)
	if err := os.WriteFile(proc+"/uid_map", userns.Format(uidMap), 0); err != nil {
		return fmt.Errorf("write uid_map: %w", err)
	}
	if denySetgroups {
		if err := os.WriteFile(proc+"/setgroups", []byte("deny"), 0); err != nil {
			return fmt.Errorf("write setgroups: %w", err)
		}
	}
	if err := os.WriteFile(proc+"/gid_map", userns.Format(gidMap), 0); err != nil {
		return fmt.Errorf("write gid_map: %w", err)
	}
	return nil
}

// helperMaps has newuidmap and newgidmap write a child's maps.
func helperMaps(uidMap, gidMap []spec.IDMap) func(context.Context, int) error {
	return func(ctx context.Context, pid int) error {
		for _, h := range []struct {
			tool string
			m    []spec.IDMap
		}{{"newuidmap", uidMap}, {"newgidmap", gidMap}} {
			args := []string{strconv.Itoa(pid)}
			for _, e := range h.m {
				args = append(args, fmt.Sprint(e.Inside), fmt.Sprint(e.Outside), fmt.Sprint(e.Count))
			}
			var stderr bytes.Buffer
			cmd := exec.CommandContext(ctx, h.tool, args...)
			cmd.Stderr = &stderr
			if err := cmd.Run(); err != nil {
				if s := strings.TrimSpace(stderr.String()); s != "" {
					return fmt.Errorf("%s %s: %s", h.tool, strings.Join(args, " "), firstLine(s))
				}
				return fmt.Errorf("%s %s: %w", h.tool, strings.Join(args, " "), err)
			}
		}
		return nil
	}
}

// runIDs runs the ids probe with the given map writer.
func runIDs(maps func(context.Context, int) error, switchIDs bool) (*idReport, error) {
	p := probe{name: "ids", flags: unix.CLONE_NEWUSER, maps: maps}
	if switchIDs {
		p.caps = true
		p.env = []string{envSwitchIDs + "=1"}
	}
	out, err := p.run()
	if err != nil {
		return nil, err
	}
	var r idReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		return nil, fmt.Errorf("ids probe: %q: %w", out, err)
	}
	return &r, nil
}

func checkUIDMapWrite(c *caller) Result {
	const name = "uid_map write"
	r, err := runIDs(ownMaps(c), false)
	if err != nil {
		return fail(name, err.Error(), mapWriteFix(err))
	}
	if r.UID != 0 || r.GID != 0 || r.UIDCount != 1 || r.GIDCount != 1 {
		return fail(name, fmt.Sprintf("after writing the maps the probe has uid %d gid %d (uid_map %q, gid_map %q), not 0 and 0", r.UID, r.GID, r.UIDMap, r.GIDMap), "")
	}
	how := "wrote"
	if !c.root() {
		how = "denied setgroups and wrote"
	}
	return pass(name, fmt.Sprintf("%s single-id maps %q and %q; the probe ran as uid 0 gid 0 inside", how, r.UIDMap, r.GIDMap))
}

func mapWriteFix(err error) string {
	var pe *probeError
	if errors.As(err, &pe) && pe.step == "id maps" {
		return "the kernel refused the caller's own map (a Linux security module or a container runtime may forbid it)"
	}
	return ""
}

// helperCheck looks at newuidmap or newgidmap: on PATH, and able to act
// as root (setuid root or file capabilities, on a mount that honours them,
// for a process without no_new_privs).
func helperCheck(tool string) check {
	return func(c *caller) Result {
		const fix = "install the uidmap package (apt install uidmap; shadow-utils on Fedora)"
		path, err := exec.LookPath(tool)
		if err != nil {
			detail := "not found on PATH: sandboxes get only your own id"
			if c.root() {
				detail = "not found on PATH: root writes its maps itself, but other users need it for their subordinate ranges"
			}
			return warn(tool, detail, fix)
		}
		// Without a range rbox never runs the helper.
		broken := warn
		if !c.root() && len(c.subUIDs) > 0 && len(c.subGIDs) > 0 {
			broken = fail
		}
		var st unix.Stat_t
		if err := unix.Stat(path, &st); err != nil {
			return broken(tool, err.Error(), fix)
		}
		var how string
		switch {
		case st.Uid == 0 && st.Mode&unix.S_ISUID != 0:
			how = "setuid root"
		case hasFileCaps(path):
			how = "has file capabilities"
		default:
			return broken(tool, fmt.Sprintf("%s is not setuid root (mode %04o, owner uid %d)", path, st.Mode&0o7777, st.Uid),
				fmt.Sprintf("chown root:root %s && chmod u+s %s, or reinstall the uidmap package", path, path))
		}
		var fs unix.Statfs_t
		if err := unix.Statfs(path, &fs); err == nil && fs.Flags&unix.ST_NOSUID != 0 {
			return broken(tool, path+" is "+how+" but on a nosuid mount, so it runs unprivileged",
				"install uidmap on a filesystem mounted without nosuid")
		}
		if !c.root() && procStatus("NoNewPrivs") == "1" {
			return broken(tool, path+" is "+how+", but this process has no_new_privs set, so the helper runs unprivileged",
				"run rbox from a session without no_new_privs (e.g. not under NoNewPrivileges=yes or a no-new-privileges container)")
		}
		return pass(tool, path+" is "+how)
	}
}

// hasFileCaps reports a security.capability attribute, which some
// distributions give the helpers instead of the setuid bit.
func hasFileCaps(path string) bool {
	sz, err := unix.Getxattr(path, "security.capability", nil)
	return err == nil && sz > 0
}

// subIDCheck reports the caller's subordinate uids or gids.
func subIDCheck(kind string) check {
	return func(c *caller) Result {
		name, path, ranges, err := "subordinate uids", userns.SubUIDPath, c.subUIDs, c.subUIDErr
		if kind == "gid" {
			name, path, ranges, err = "subordinate gids", userns.SubGIDPath, c.subGIDs, c.subGIDErr
		}
		if err != nil {
			return fail(name, err.Error(), "correct "+path+": one owner:start:count per line")
		}
		if len(ranges) == 0 {
			detail := fmt.Sprintf("no range for %s in %s: sandboxes map only your own %s, other %ss show as nobody", c.name, path, kind, kind)
			if c.root() {
				detail = fmt.Sprintf("no range for root in %s: root may write any map itself and needs no newuidmap, but rbox maps only root's own %s unless a range is listed", path, kind)
			}
			return warn(name, detail, usermodFix(c.name))
		}
		detail := fmt.Sprintf("%d ids in %d range(s) for %s in %s", subid.Total(ranges), len(ranges), c.name, path)
		if c.root() {
			detail += "; root writes the map itself, no helper needed"
		}
		return pass(name, detail)
	}
}

// usermodFix suggests a range past every range already given out.
func usermodFix(user string) string {
	free := subid.FreeRange(65536, userns.SubUIDPath, userns.SubGIDPath)
	r := fmt.Sprintf("%d-%d", free.Start, free.Start+free.Count-1)
	return fmt.Sprintf("as root: usermod --add-subuids %s --add-subgids %s %s", r, r, user)
}

// checkFullMap maps a child with the caller's subordinate ranges, the way
// a sandbox is mapped, and has it switch to a subordinate id.
func checkFullMap(c *caller) Result {
	const name = "full id map"
	if c.subUIDErr != nil || c.subGIDErr != nil {
		return fail(name, "not tried: the subordinate id files do not parse (see above)", "")
	}
	if len(c.subUIDs) == 0 || len(c.subGIDs) == 0 {
		if c.root() {
			return pass(name, "not needed: root writes its own maps (see uid_map write) and has no subordinate range to add")
		}
		return warn(name, "not tried: no subordinate uid and gid ranges (see above)", usermodFix(c.name))
	}
	uidMap := userns.Layout(uint32(c.uid), 0, c.subUIDs)
	gidMap := userns.Layout(uint32(c.gid), 0, c.subGIDs)
	var maps func(context.Context, int) error
	how := "root wrote"
	if c.root() {
		maps = func(_ context.Context, pid int) error { return writeMaps(pid, uidMap, gidMap, false) }
	} else {
		for _, t := range []string{"newuidmap", "newgidmap"} {
			if _, err := exec.LookPath(t); err != nil {
				return warn(name, "not tried: "+t+" not found", "install the uidmap package (apt install uidmap; shadow-utils on Fedora)")
			}
		}
		maps = helperMaps(uidMap, gidMap)
		how = "newuidmap and newgidmap wrote"
	}
	r, err := runIDs(maps, true)
	if err != nil {
		fix := fmt.Sprintf("check that newuidmap and newgidmap are setuid root and that %s and %s list %s's ranges", userns.SubUIDPath, userns.SubGIDPath, c.name)
		if c.root() {
			fix = ""
		}
		return fail(name, err.Error(), fix)
	}
	wantU, wantG := 1+subid.Total(c.subUIDs), 1+subid.Total(c.subGIDs)
	if r.UIDCount != wantU || r.GIDCount != wantG || r.SwitchedUID < 1 || r.SwitchedGID < 1 {
		return fail(name, fmt.Sprintf("the probe saw uid_map %q and gid_map %q (%d and %d ids, want %d and %d)", r.UIDMap, r.GIDMap, r.UIDCount, r.GIDCount, wantU, wantG), "")
	}
	return pass(name, fmt.Sprintf("%s maps of %d uids and %d gids; the probe became uid %d gid %d inside", how, r.UIDCount, r.GIDCount, r.SwitchedUID, r.SwitchedGID))
}

func checkTimeNS(c *caller) Result {
	const name = "time namespace"
	p := probe{name: "timens", flags: unix.CLONE_NEWUSER, caps: true, maps: ownMaps(c)}
	out, err := p.run()
	if err != nil {
		return fail(name, err.Error(), nsFix("time", err))
	}
	return pass(name, out)
}

func checkProcMount(c *caller) Result {
	const name = "/proc mount"
	p := probe{name: "proc", flags: unix.CLONE_NEWUSER | unix.CLONE_NEWNS | unix.CLONE_NEWPID, caps: true, maps: ownMaps(c)}
	out, err := p.run()
	if err != nil {
		fix := ""
		var pe *probeError
		if errors.As(err, &pe) && pe.errno == unix.EPERM && strings.Contains(pe.msg, "mount proc") {
			fix = "the kernel refuses a fresh /proc while parts of the host's /proc are covered (as containers mask them): run rbox on the host or in a container with an unmasked /proc (e.g. --security-opt systempaths=unconfined)"
		}
		return fail(name, err.Error(), joinFix(fix, "or run with --share pid"))
	}
	return pass(name, out)
}

// checkOverlay tries the kernel's overlayfs, then fuse-overlayfs.
func checkOverlay(c *caller) Result {
	const name = "overlayfs"
	kernel := probe{name: "overlay", flags: unix.CLONE_NEWUSER | unix.CLONE_NEWNS, caps: true, maps: ownMaps(c)}
	out, kerr := kernel.run()
	if kerr == nil {
		return pass(name, out+"; --overlay and --image use it")
	}
	kernelFix := "use a kernel of 5.11 or later with overlayfs (modprobe overlay)"
	tool, err := exec.LookPath("fuse-overlayfs")
	if err != nil {
		return warn(name, "kernel overlayfs refused in a user namespace ("+kerr.Error()+") and fuse-overlayfs is not installed",
			kernelFix+", or apt install fuse-overlayfs")
	}
	fuse := probe{name: "fuse-overlayfs", flags: unix.CLONE_NEWUSER | unix.CLONE_NEWNS | unix.CLONE_NEWPID, caps: true, maps: ownMaps(c),
		env: []string{envFuseTool + "=" + tool}}
	if _, ferr := fuse.run(); ferr != nil {
		return warn(name, "kernel overlayfs refused in a user namespace ("+kerr.Error()+"), and so did fuse-overlayfs ("+ferr.Error()+")",
			kernelFix+", or make /dev/fuse usable for fuse-overlayfs")
	}
	return warn(name, "kernel overlayfs refused in a user namespace ("+kerr.Error()+"); the fuse-overlayfs fallback works, more slowly: --overlay and --image use it", kernelFix)
}

func checkTun(c *caller) Result {
	const name = "/dev/net/tun"
	p := probe{name: "tun", flags: unix.CLONE_NEWUSER | unix.CLONE_NEWNET, caps: true, maps: ownMaps(c)}
	out, err := p.run()
	if err == nil {
		return pass(name, out)
	}
	var pe *probeError
	errors.As(err, &pe)
	fix := ""
	switch {
	case pe != nil && (pe.errno == unix.ENOENT || pe.errno == unix.ENODEV || pe.errno == unix.ENXIO):
		fix = "modprobe tun, and create the node if missing: mknod -m 0666 /dev/net/tun c 10 200"
	case pe != nil && (pe.errno == unix.EACCES || pe.errno == unix.EPERM) && strings.Contains(pe.msg, "open /dev/net/tun"):
		fix = "chmod 0666 /dev/net/tun"
	}
	return warn(name, err.Error()+" (slirp4netns and pasta need it for the sandbox's network)", fix)
}

// checkNftables tells whether --allow-net works on rbox networks (package
// network/bridge, restrict.go). Networks work without it.
func checkNftables(c *caller) Result {
	const name = "--allow-net on networks"
	p := probe{name: "nftables", flags: unix.CLONE_NEWUSER | unix.CLONE_NEWNET, caps: true, maps: ownMaps(c)}
	out, err := p.run()
	if err == nil {
		return pass(name, out)
	}
	return warn(name, err.Error()+" (rbox networks work, without --allow-net on them)", "a kernel with nf_tables and its bridge family (CONFIG_NF_TABLES, CONFIG_NF_TABLES_BRIDGE)")
}

// checkDevFuse opens /dev/fuse as fuse-overlayfs does.
func checkDevFuse(*caller) Result {
	const name = "/dev/fuse"
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err == nil {
		unix.Close(fd)
		return pass(name, "opened read-write")
	}
	detail := "open read-write: " + err.Error() + " (fuse-overlayfs needs it)"
	switch err {
	case unix.ENOENT, unix.ENODEV, unix.ENXIO:
		return warn(name, detail, "modprobe fuse")
	case unix.EACCES, unix.EPERM:
		return warn(name, detail, "chmod 0666 /dev/fuse")
	}
	return warn(name, detail, "chmod 0666 /dev/fuse or modprobe fuse")
}

// toolCheck looks for a helper program on PATH.
func toolCheck(bin, pkg, purpose string) check {
	return func(*caller) Result {
		path, err := exec.LookPath(bin)
		if err != nil {
			return warn(bin, "not found on PATH; "+purpose, "apt install "+pkg)
		}
		return pass(bin, path)
	}
}

// joinFix joins two fixes; b may start with "or ", dropped when it comes
// first.
func joinFix(a, b string) string {
	if strings.TrimPrefix(b, "or ") == "" {
		return a
	}
	if a == "" {
		return strings.TrimPrefix(b, "or ")
	}
	return a + "; " + b
}
