package fsetup

import (
	"fmt"
	"path"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/spec"
	"github.com/rbox-dev/rbox/sysplan"
)

// A root built as bubblewrap builds it (Config.EmptyRoot): an empty,
// writable tmpfs, filled only by the Mounts, in their order. Nothing of the
// default view is made: no host system directories, /proc, /sys, /dev or
// /tmp unless a Mount asks, and / stays writable. A Mount on / (bwrap's
// --ro-bind / /) covers the tmpfs; the new root's descriptor is then opened
// again, so the later Mounts land on top of it.

// emptyRootSize is about how many ops planEmpty makes for cfg.
func emptyRootSize(cfg *Config) int {
	n := 100
	for _, m := range cfg.Mounts {
		n += 40 + 12*strings.Count(m.Dest, "/")
		if m.Kind == spec.MountDev {
			n += 80
		}
	}
	return n
}

// coveredProcDirs are bound read-only over themselves in a fresh /proc
// when the sandbox maps the host's root.
var coveredProcDirs = []string{"sys", "sysrq-trigger", "irq", "bus"}

// planEmpty is Plan for an EmptyRoot: the setup root entered, the Mounts
// applied in order, then the new root entered.
func (g *gen) planEmpty(cfg *Config) error {
	g.setWhat("pivot into the setup root")
	g.step("pivot_root")
	g.call(unix.SYS_PIVOT_ROOT, g.str("."), g.str("oldroot"))
	g.fdPrefix = fdPrefixHost
	g.step("open /oldroot")
	g.openat(atFDCWD, "/oldroot", unix.O_PATH|unix.O_DIRECTORY, 0, slotHost)
	g.setWhat("open the host's /dev/null")
	g.step()
	g.openat2(slotHost.FD(), "/dev/null", unix.O_PATH, slotDevNull)
	if cfg.DisableUserns {
		g.disableUserns()
	}
	for i, m := range cfg.Mounts {
		if err := g.emptyRootMount(cfg, i, m); err != nil {
			return err
		}
		if path.Clean("/"+m.Dest) == "/" && m.Kind != spec.MountChmod && m.Kind != spec.MountRemountRO {
			// A mount on / covers the tmpfs slotRoot holds: the path
			// leads to the top of the stack.
			g.setWhat("enter the new root")
			g.step("open /newroot")
			g.close(slotRoot)
			g.openat(atFDCWD, "/newroot", unix.O_PATH|unix.O_DIRECTORY, 0, slotRoot)
		}
	}
	g.enterEmpty(cfg)
	return nil
}

// emptyRootMount applies one Mount; i numbers the setup's own files.
func (g *gen) emptyRootMount(cfg *Config, i int, m spec.Mount) error {
	const nosuidNodev = unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV
	if m.HasMode && m.Kind != spec.MountChmod {
		g.dirMode = sysplan.V(uintptr(parentMode(m.Mode)))
		defer func() { g.dirMode = sysplan.V(0o755) }()
	}
	switch m.Kind {
	case spec.MountBind:
		g.bind("bind", m.Source, m.Dest, srcAny, nosuidNodev)
	case spec.MountROBind:
		g.bind("ro-bind", m.Source, m.Dest, srcAny, unix.MOUNT_ATTR_RDONLY|nosuidNodev)
	case spec.MountDevBind:
		g.bind("dev-bind", m.Source, m.Dest, srcAny, unix.MOUNT_ATTR_NOSUID)
	case spec.MountTmpfs:
		opts := []option{{"mode", "0755"}, {"source", "tmpfs"}}
		if m.HasMode || m.Mode != 0 {
			opts[0].value = "0" + strconv.FormatUint(uint64(m.Mode), 8)
		}
		if m.SizeBytes > 0 {
			opts = append(opts, option{"size", strconv.FormatInt(m.SizeBytes, 10)})
		}
		g.newMount(m.Dest, "tmpfs", opts, nosuidNodev, slotMnt)
	case spec.MountDir:
		g.setWhat("dir ", m.Dest)
		dst := path.Clean("/" + m.Dest)
		g.mkdirs(dst, slotDst)
		if m.HasMode {
			g.chmodSlot(slotDst, m.Mode)
		}
		g.close(slotDst)
		g.made(nil)
	case spec.MountSymlink:
		g.symlinkIn(m.Source, m.Dest)
	case spec.MountProc:
		g.bwrapProc(m.Dest, cfg.MaskProc)
	case spec.MountDev:
		g.bwrapDev(m.Dest)
	case spec.MountMqueue:
		g.newMount(m.Dest, "mqueue", []option{{"source", "mqueue"}}, nosuidNodev|unix.MOUNT_ATTR_NOEXEC, slotMnt)
	case spec.MountRemountRO:
		g.setWhat("remount ", m.Dest, " read-only")
		g.step("open ", m.Dest)
		g.openat2(slotRoot.FD(), m.Dest, unix.O_PATH, slotDst)
		g.step("mount_setattr")
		g.mountSetattr(slotDst, 0, unix.MOUNT_ATTR_RDONLY)
		g.close(slotDst)
	case spec.MountChmod:
		g.setWhat("chmod ", m.Dest)
		g.step("open ", m.Dest)
		g.openat2(slotRoot.FD(), m.Dest, unix.O_PATH, slotDst)
		g.chmodSlot(slotDst, m.Mode)
		g.close(slotDst)
	case spec.MountFile:
		g.writeFile(m)
	case spec.MountBindData, spec.MountROBindData:
		attrs := uint64(nosuidNodev)
		if m.Kind == spec.MountROBindData {
			attrs |= unix.MOUNT_ATTR_RDONLY
		}
		g.bindData(i, m, attrs)
	case spec.MountOverlay:
		g.overlayMount(i, m)
	default:
		return fmt.Errorf("%s: unknown mount kind %q", m.Dest, m.Kind)
	}
	return nil
}

// parentMode is the mode of the missing parents of a destination given
// perms (bwrap(1)): 0755, with the group or other bits cleared when perms
// clears them.
func parentMode(perms uint32) uint32 {
	mode := uint32(0o755)
	if perms&0o070 == 0 {
		mode &^= 0o070
	}
	if perms&0o007 == 0 {
		mode &^= 0o007
	}
	return mode
}

// chmodSlot sets mode on the file the O_PATH descriptor in s refers to
// (fchmodat2, Linux 6.6: chmod by descriptor, no path looked up again).
//
// Before Linux 6.6 (and always on the legacy path) fchmodat reaches the
// file through its /proc/self/fd/N, which it follows to the descriptor's
// file.
func (g *gen) chmodSlot(s sysplan.Slot, mode uint32) {
	g.step("chmod ", "0"+strconv.FormatUint(uint64(mode), 8))
	done, byPath := g.p.NewLabel(), g.p.NewLabel()
	if !g.legacy {
		g.call(unix.SYS_FCHMODAT2, s.FD(), g.empty, sysplan.V(uintptr(mode)), sysplan.V(unix.AT_EMPTY_PATH)).OnError(unix.ENOSYS, byPath)
		g.p.Jump(done)
	}
	g.p.Mark(byPath)
	g.call(unix.SYS_FCHMODAT, atFDCWD, g.p.FDPath(bufDst, s.FD(), g.fdPrefix, ""), sysplan.V(uintptr(mode)))
	g.p.Mark(done)
}

// fileMode is a generated file's mode: the one given, else def (bwrap's
// 0666 for --file, 0600 for the data it binds).
func fileMode(m spec.Mount, def uint32) uint32 {
	if m.HasMode {
		return m.Mode
	}
	return def
}

// writeFile creates m.Dest in the sandbox (its parents made) holding
// m.Data: bwrap's --file, which writes where the path leads, unlike
// --bind-data.
func (g *gen) writeFile(m spec.Mount) {
	dst := path.Clean("/" + m.Dest)
	g.setWhat("file ", dst)
	g.mkdirs(path.Dir(dst), slotDir)
	g.step("create ", dst)
	g.openat(slotDir.FD(), path.Base(dst), unix.O_CREAT|unix.O_TRUNC|unix.O_WRONLY|unix.O_NOFOLLOW, int(fileMode(m, 0o666)), slotSrc)
	g.close(slotDir)
	g.writeData(slotSrc, dst, m.Data)
	g.chmodSlot(slotSrc, fileMode(m, 0o666))
	g.close(slotSrc)
	g.made(nil)
}

// writeData writes data to the file in s. Small files go whole in one
// write on a tmpfs; a short write is not retried (the op fails instead).
func (g *gen) writeData(s sysplan.Slot, name string, data []byte) {
	for off := 0; off < len(data); {
		n := min(len(data)-off, 1<<20)
		g.step("write ", name)
		g.call(unix.SYS_WRITE, s.FD(), sysplan.V(g.p.Bytes(data[off:off+n])), sysplan.V(uintptr(n)))
		off += n
	}
}

// bindData writes m.Data to a file of the setup root and binds it on
// m.Dest with attrs.
func (g *gen) bindData(i int, m spec.Mount, attrs uint64) {
	dst := path.Clean("/" + m.Dest)
	g.setWhat(string(m.Kind), " ", dst)
	tmp := "/data" + strconv.Itoa(i)
	g.step("create ", tmp)
	g.openat(atFDCWD, tmp, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, 0o600, slotSrc)
	g.writeData(slotSrc, tmp, m.Data)
	g.chmodSlot(slotSrc, fileMode(m, 0o600))
	to, c := g.mountPoint(dst, nil, true)
	g.attachTree(slotSrc, to, attrs, slotMnt)
	g.close(slotSrc)
	g.closeIf(c)
	g.made(nil)
}

// bwrapProc mounts a procfs of the sandbox's pid namespace on dest, or
// binds the host's /proc when the kernel refuses one (EPERM: the pid
// namespace is not the sandbox's, or an outer /proc has mounts over it).
// Like bwrap in a user namespace, nothing in it is covered: the
// kernel-tuning files belong to the host's root, which the sandbox's user
// namespace cannot act as, unless it maps the host's root (cover): those
// are bound read-only over themselves, as bwrap run by root does (and, unlike
// it, /proc/sys too).
func (g *gen) bwrapProc(dest string, cover bool) {
	dst := path.Clean("/" + dest)
	g.setWhat("proc ", dst)
	to, c := g.mountPoint(dst, nil, false)
	bindHost, filled := g.p.NewLabel(), g.p.NewLabel()
	const attrs = unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC
	g.mountNew(to, "proc", []option{{"source", "proc"}}, attrs, &orElse{errno: unix.EPERM, to: bindHost}, slotDir)
	g.p.Jump(filled)
	g.p.Mark(bindHost)
	g.setWhat("bind the host's /proc on ", dst)
	g.step("open /proc")
	g.openat2(slotHost.FD(), "/proc", unix.O_PATH|unix.O_DIRECTORY, slotSrc)
	g.attachTree(slotSrc, to, attrs, slotDir)
	g.close(slotSrc)
	g.p.Mark(filled)
	if cover {
		for _, n := range coveredProcDirs {
			g.rebindReadOnly(dst+"/", n)
		}
	}
	g.close(slotDir)
	g.closeIf(c)
	g.made(nil)
}

// bwrapDev makes bwrap's minimal /dev at dest: a tmpfs with the host's
// null, zero, full, random, urandom and tty bound in (device nodes usable
// there, unlike the tmpfs itself), a private devpts, an empty shm
// directory and the usual symlinks. Everything in the fresh tmpfs is made
// relative to its descriptor (see dev).
func (g *gen) bwrapDev(dest string) {
	dst := path.Clean("/" + dest)
	g.setWhat("dev ", dst)
	to, c := g.mountPoint(dst, nil, false)
	g.mountNew(to, "tmpfs", []option{{"mode", "0755"}, {"source", "tmpfs"}}, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV, nil, slotDir)
	g.closeIf(c)
	dev := slotDir.FD()
	for _, d := range hostDevices {
		g.setWhat("bind /dev/", d, " on ", dst, "/", d)
		src := slotDevNull
		if d != "null" {
			src = slotSrc
			g.step("open /dev/", d)
			g.openat2(slotHost.FD(), "/dev/"+d, unix.O_PATH, slotSrc)
		}
		g.step("create ", dst, "/", d)
		g.call(unix.SYS_MKNODAT, dev, g.str(d), sysplan.V(unix.S_IFREG|0o644), sysplan.V(0))
		g.attachTree(src, in(dev, d), unix.MOUNT_ATTR_NOSUID, slotMnt)
		if src == slotSrc {
			g.close(slotSrc)
		}
	}
	g.setWhat("mount devpts on ", dst, "/pts")
	g.step("mkdir ", dst, "/pts")
	g.call(unix.SYS_MKDIRAT, dev, g.str("pts"), sysplan.V(0o755))
	g.mountNew(in(dev, "pts"), "devpts", []option{{"ptmxmode", "0666"}, {"mode", "620"}, {"source", "devpts"}}, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NOEXEC, nil, slotMnt)
	g.setWhat("mkdir ", dst, "/shm")
	g.step()
	g.call(unix.SYS_MKDIRAT, dev, g.str("shm"), sysplan.V(0o755))
	links := [][2]string{
		{"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"},
		{"/proc/self/fd/2", "stderr"}, {"/proc/kcore", "core"}, {"pts/ptmx", "ptmx"},
	}
	for _, l := range links {
		g.setWhat("symlink ", dst, "/", l[1], " -> ", l[0])
		g.step("symlinkat")
		g.call(unix.SYS_SYMLINKAT, g.str(l[0]), dev, g.str(l[1]))
	}
	g.close(slotDir)
	g.made(nil)
}

// overlayMount mounts an overlay of m.Lowers (host paths, top first) on
// m.Dest: read-only without an upper, its writes in m.Source (beside the
// work directory m.Work), or in a tmpfs of the setup root when m.Source is
// empty. The host paths are given to the kernel as text under /oldroot,
// as bwrap gives them.
func (g *gen) overlayMount(i int, m spec.Mount) {
	dst := path.Clean("/" + m.Dest)
	g.setWhat("overlay on ", dst)
	esc := func(p string) string {
		return strings.NewReplacer(`\`, `\\`, ",", `\,`, ":", `\:`).Replace("/oldroot" + p)
	}
	lowers := make([]string, len(m.Lowers))
	for j, l := range m.Lowers {
		lowers[j] = esc(l)
	}
	opts := []option{{"lowerdir", strings.Join(lowers, ":")}}
	switch {
	case m.ReadOnly:
	case m.Source != "":
		opts = append(opts, option{"upperdir", esc(m.Source)}, option{"workdir", esc(m.Work)})
	default:
		scratch := "/overlay" + strconv.Itoa(i)
		g.step("mkdir ", scratch)
		g.call(unix.SYS_MKDIRAT, atFDCWD, g.str(scratch), sysplan.V(0o755))
		g.mountNew(in(atFDCWD, scratch), "tmpfs", []option{{"mode", "0755"}}, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV, nil, slotMnt)
		for _, d := range []string{"upper", "work"} {
			g.step("mkdir ", scratch, "/", d)
			g.call(unix.SYS_MKDIRAT, atFDCWD, g.str(scratch+"/"+d), sysplan.V(0o755))
		}
		opts = append(opts, option{"upperdir", scratch + "/upper"}, option{"workdir", scratch + "/work"})
	}
	opts = append(opts, option{"userxattr", ""}, option{"source", "overlay"})
	to, c := g.mountPoint(dst, nil, false)
	g.mountNew(to, "overlay", opts, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV, nil, slotMnt)
	g.closeIf(c)
	g.made(nil)
}

// enterEmpty enters the new root and the first of the working directories
// that opens, else stays at /.
func (g *gen) enterEmpty(cfg *Config) {
	g.pivot("")
	g.lockFiles(cfg.LockFiles)
	tries := append([]string{cfg.Cwd}, cfg.CwdFallbacks...)
	done := g.p.NewLabel()
	for _, dir := range tries {
		if dir == "" || dir == "/" {
			continue
		}
		next := g.p.NewLabel()
		g.setWhat("working directory ", dir)
		g.step()
		op := g.openat2(atFDCWD, dir, unix.O_PATH|unix.O_DIRECTORY, slotDst)
		if len(cfg.CwdFallbacks) > 0 {
			// Only a directory asked for by name must exist.
			op.OnAnyError(next)
		}
		g.step("fchdir")
		g.call(unix.SYS_FCHDIR, slotDst.FD())
		g.close(slotDst)
		g.p.Jump(done)
		g.p.Mark(next)
	}
	g.p.Mark(done)
}

// lockFiles takes a read lock (fcntl F_SETLK, F_RDLCK, the whole file) on
// each file, opened inside the new root (the working directory is its
// root now). The descriptors are left open on purpose: a POSIX lock lasts
// as long as its process keeps a descriptor of the file, and this process
// is pid 1. They are close-on-exec, so the command does not get them (and
// its closing them would not release pid 1's locks anyway).
func (g *gen) lockFiles(files []string) {
	if len(files) == 0 {
		return
	}
	lock := sysplan.Keep(g.p, &unix.Flock_t{Type: unix.F_RDLCK, Whence: 0})
	for _, f := range files {
		g.setWhat("lock ", f)
		g.step("open")
		g.openat2(atFDCWD, f, unix.O_RDONLY, slotDst)
		g.step("fcntl F_SETLK")
		g.call(unix.SYS_FCNTL, slotDst.FD(), sysplan.V(unix.F_SETLK), sysplan.V(lock))
	}
}

// disableUserns sets user.max_user_namespaces to 0 through the host's
// /proc (the limit written is the one of the writer's user namespace, the
// sandbox's, and binds the namespaces made in it). Changing it back needs
// CAP_SYS_RESOURCE in the sandbox's user namespace, which the command holds
// only if given it with --cap-add.
func (g *gen) disableUserns() {
	const path = "/proc/sys/user/max_user_namespaces"
	g.setWhat("disable user namespaces: ", path)
	g.step("open")
	g.openat2(slotHost.FD(), path, unix.O_WRONLY, slotSrc)
	g.step("write 0")
	g.call(unix.SYS_WRITE, slotSrc.FD(), g.str("0"), sysplan.V(1))
	g.close(slotSrc)
}
