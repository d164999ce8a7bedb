// Package fsetup builds the sandbox's filesystem inside its own mount
// namespace and enters it.
//
// The order follows bubblewrap's: stop mount propagation, mount a private
// tmpfs and pivot into it so the host stays reachable at /oldroot, assemble
// the new root from there, then pivot into the new root and detach
// everything else. Every path a symlink could have been planted on — in
// the host's root, a bound directory, a custom root — is resolved with
// openat2 and RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS, and every mount is
// attached by file descriptor with the new mount API (open_tree,
// fsopen/fsmount, move_mount, mount_setattr), so a symlink planted in a
// bound directory cannot redirect a mount outside the sandbox, and nothing
// is ever looked up through /proc/self/fd.
//
// The rest is made with fewer system calls, one name at a time with plain
// *at calls relative to a descriptor of its directory: names in the
// setup's own fresh tmpfs mounts, which nothing else writes to (the new
// root of the default view until a mount point is made the general way,
// /dev), and the masked names of /proc and /sys, kernel filesystems where
// nobody plants symlinks. Such a name is one component, and neither
// mkdirat, mknodat nor move_mount follows a symlink in the last one.
//
// The setup is not executed directly but emitted as a sysplan.Program (see
// Plan): a list of system calls that runs in a child forked without exec,
// where Go's runtime cannot be used, or in an ordinary Go process (Build).
// Everything decided by looking at the host (which system directories are
// symlinks) is decided when the Program is made; everything that depends on
// what the setup finds is an op that jumps on an expected error (a mount
// point that exists, a fresh /proc the kernel refuses, a /proc file to
// mask that this kernel lacks).
//
// The Program's slots 0 to 9 are fsetup's; slots FirstCallerSlot (10) to
// 15 are left to the caller, and keep their values across fsetup's ops.
// fsetup's descriptors are all closed by the time its ops end.
package fsetup

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/spec"
	"github.com/rbox-dev/rbox/sysplan"
)

// Config is what the child knows when it builds the root.
type Config struct {
	Mounts []spec.Mount
	// NewPID, NewNet and NewIPC say which namespaces are the sandbox's own:
	// they decide between a fresh /proc, /sys, /dev/mqueue and the host's.
	NewPID, NewNet, NewIPC bool
	// MaskProc hides the sensitive /proc files and makes the kernel-tuning
	// trees read-only. The caller turns it off for nested use when it can:
	// the kernel refuses a fresh /proc in a nested sandbox while the outer
	// one has locked mounts over /proc (the nested one then gets the outer
	// /proc, see proc).
	MaskProc bool
	// Console makes an empty /dev/console for the payload's terminal to be
	// bound on once it exists.
	Console bool
	// TTYGID is the group of devpts' terminals, or -1 when it is not mapped.
	TTYGID int
	// Files are small generated files bound read-only at their Dest.
	Files []File
	// Cwd is the working directory to enter after the pivot.
	Cwd string

	// RootLowers replace the host view: the root is these host
	// directories (top first), read-only unless Overlay.
	RootLowers []string
	// Overlay makes the root writable: RootLowers, or each directory of
	// the host view.
	Overlay bool
	// UpperDir and WorkDir keep the overlay's writes on the host; empty
	// means a tmpfs of the sandbox.
	UpperDir, WorkDir string
	// Driver is the overlay driver: "", "overlay", "fuse-overlayfs", "vfs".
	Driver string
	// TmpfsSize bounds /tmp and /dev/shm (bytes; 0: tmpfs's default, half
	// the RAM).
	TmpfsSize int64

	// EmptyRoot builds the root as bwrap does (see empty.go): only Mounts,
	// in order, on an empty writable tmpfs. CwdFallbacks are tried when Cwd
	// cannot be entered (none: Cwd must exist).
	EmptyRoot    bool
	CwdFallbacks []string
	// LockFiles are opened in the new root and read-locked; the
	// descriptors stay open in the process that ran the ops (pid 1), so
	// the locks last as long as it does.
	LockFiles []string
	// DisableUserns sets user.max_user_namespaces to 0 in the sandbox's
	// user namespace.
	DisableUserns bool
	// Legacy builds the root with mount(2) and a walk of its own, for a
	// kernel without openat2 and the new mount API (see legacy.go).
	Legacy bool
}

// File is generated content placed in the sandbox (resolv.conf, hosts).
type File struct {
	Dest string
	Data []byte
}

// hostSystemDirs are bound read-only in the default view when the host has
// them; symlinks among them (merged /usr) are recreated as symlinks.
var hostSystemDirs = []string{"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc", "opt"}

// The sandbox gets these device nodes of the host; everything else in /dev is
// ours.
var hostDevices = []string{"null", "zero", "full", "random", "urandom", "tty"}

// maskedProcFiles are covered with an empty file, maskedProcDirs with an
// empty read-only tmpfs, readOnlyProc bound read-only over themselves: the
// lists runc and bubblewrap settled on.
var (
	maskedProcFiles = []string{"kcore", "keys", "latency_stats", "timer_list", "timer_stats", "sched_debug", "kallsyms"}
	maskedProcDirs  = []string{"acpi", "asound", "scsi"}
	readOnlyProc    = []string{"sys", "sysrq-trigger", "irq", "bus", "fs"}
	maskedSysDirs   = []string{"firmware", "devices/virtual/powercap"}
)

// base is where the setup tmpfs is mounted in the sandbox's private mount
// namespace. Any existing directory works; /tmp exists everywhere.
const base = "/tmp"

// ErrCustomRoot is Plan's answer for a root other than the host view
// (RootLowers or Overlay): mounting it needs Go code in the middle of the
// setup (overlays, fuse-overlayfs), so only Build makes it.
var ErrCustomRoot = errors.New("fsetup: a custom root (rootfs, image, overlay) is built by Build, not by a plan")

// Plan appends to p the ops that build the sandbox's root from the host's
// view (the default root) and enter it, ending in the new root's working
// directory. The ops must run in a new mount namespace with CAP_SYS_ADMIN in
// its user namespace, and start with the host's root as / (Plan looks at
// the host's system directories in the calling process's root now).
//
// A failing op is reported as a sysplan.Failure whose step names the setup
// step, the path and the system call: "bind /src on /work: open_tree".
func Plan(p *sysplan.Program, cfg *Config) error {
	if cfg.customRoot() {
		return ErrCustomRoot
	}
	if cfg.EmptyRoot {
		p.Grow(emptyRootSize(cfg))
		g := newGen(p, cfg)
		g.enterSetupRoot(cfg, true)
		g.rootOpen = true
		return g.planEmpty(cfg)
	}
	entries, err := hostEntries(hostSystemDirs)
	if err != nil {
		return err
	}
	p.Grow(planSize(cfg))
	g := newGen(p, cfg)
	g.enterSetupRoot(cfg, true)
	// The new root is the setup's own tmpfs, empty until these ops fill
	// it.
	g.own = true
	return g.afterSetupRoot(cfg, entries)
}

// planSize is about how many ops Plan makes for cfg, a little more rather
// than less (see TestPlanSize), with room for a few of the caller's.
func planSize(cfg *Config) int {
	n := 300 + 40*len(cfg.Files)
	for _, m := range cfg.Mounts {
		n += 25 + 12*strings.Count(m.Dest, "/")
	}
	return n
}

// Build assembles the sandbox's root and pivots into it, running the ops of
// Plan in this process; for a custom root, the Go code that mounts it runs
// between the ops that make the setup root and the rest. It must run in a
// new mount namespace with CAP_SYS_ADMIN in its user namespace.
func Build(cfg *Config) error {
	if !cfg.customRoot() {
		return run(func(p *sysplan.Program) error { return Plan(p, cfg) })
	}
	b := &builder{cfg: cfg}
	defer func() { b.sources.close() }() // prepareRoot closes them as soon as it can
	if err := b.openRootSources(); err != nil {
		return fmt.Errorf("open the root's directories: %w", err)
	}
	if err := run(func(p *sysplan.Program) error { newGen(p, cfg).enterSetupRoot(cfg, false); return nil }); err != nil {
		return err
	}
	if err := b.prepareRoot(); err != nil {
		return fmt.Errorf("mount the root: %w", err)
	}
	return run(func(p *sysplan.Program) error { return newGen(p, cfg).afterSetupRoot(cfg, nil) })
}

// run makes a Program with plan and runs it in this process.
func run(plan func(*sysplan.Program) error) error {
	p := new(sysplan.Program)
	if err := plan(p); err != nil {
		return err
	}
	p.Finish()
	return p.Run()
}

// hostEntry is a host system directory, or the symlink standing for it
// when link is set.
type hostEntry struct{ name, link string }

// hostEntries looks at /name for each name as this process sees the host:
// directories and symlinks are kept, missing ones and others left out. The
// types come from one read of /, not a system call per name.
func hostEntries(names []string) ([]hostEntry, error) {
	const missing = 0xff
	types := make([]uint8, len(names))
	for i := range types {
		types[i] = missing
	}
	fd, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: "/", Err: err}
	}
	// maxDirent is the size of a linux_dirent64 with the longest name: a
	// read that leaves that much room reached the end.
	const maxDirent = 19 + 256 + 5
	var buf [8192]byte
	for {
		n, err := unix.Getdents(fd, buf[:])
		if err != nil {
			unix.Close(fd)
			return nil, &fs.PathError{Op: "getdents", Path: "/", Err: err}
		}
		for b := buf[:max(n, 0)]; len(b) >= 19; {
			// linux_dirent64: ino, off, reclen, type, name.
			reclen := int(binary.NativeEndian.Uint16(b[16:18]))
			if reclen < 19 || reclen > len(b) {
				break
			}
			name := b[19:reclen]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			for i, want := range names {
				if string(name) == want {
					types[i] = b[18]
				}
			}
			b = b[reclen:]
		}
		if n <= 0 || len(buf)-n >= maxDirent {
			break
		}
	}
	unix.Close(fd)
	out := make([]hostEntry, 0, len(names))
	var st unix.Stat_t
	var link [256]byte
	for i, name := range names {
		t := types[i]
		if t == unix.DT_UNKNOWN { // the filesystem does not say
			p := "/" + name
			if err := unix.Lstat(p, &st); err != nil {
				return nil, &fs.PathError{Op: "lstat", Path: p, Err: err}
			}
			switch st.Mode & unix.S_IFMT {
			case unix.S_IFDIR:
				t = unix.DT_DIR
			case unix.S_IFLNK:
				t = unix.DT_LNK
			}
		}
		switch t {
		case unix.DT_DIR:
			out = append(out, hostEntry{name: name})
		case unix.DT_LNK:
			p := "/" + name
			n, err := unix.Readlink(p, link[:])
			if err != nil {
				return nil, &fs.PathError{Op: "readlink", Path: p, Err: err}
			}
			target := string(link[:n])
			if n == len(link) { // maybe cut short: os grows its buffer
				if target, err = os.Readlink(p); err != nil {
					return nil, err
				}
			}
			out = append(out, hostEntry{name, target})
		}
	}
	return out, nil
}

// enterSetupRoot makes mounts slaves of the host's, mounts the setup tmpfs
// on base and enters it, and makes newroot and oldroot there. A root that
// is a tmpfs of its own (every root but RootLowers) is mounted on newroot;
// with keepRoot, its descriptor stays in slotRoot for afterSetupRoot.
func (g *gen) enterSetupRoot(cfg *Config, keepRoot bool) {
	// Slave, not private: unmounts on the host still reach us, so the
	// sandbox never keeps a host filesystem busy.
	g.setWhat("make / a slave mount")
	g.step()
	g.call(unix.SYS_MOUNT, sysplan.V(0), g.str("/"), sysplan.V(0), sysplan.V(unix.MS_SLAVE|unix.MS_REC), sysplan.V(0))
	g.setWhat("mount the setup tmpfs on ", base)
	g.step()
	g.call(unix.SYS_MOUNT, g.str("tmpfs"), g.str(base), g.str("tmpfs"), sysplan.V(unix.MS_NOSUID|unix.MS_NODEV), g.str("mode=0755"))
	g.step("chdir")
	g.call(unix.SYS_CHDIR, g.str(base))
	for _, d := range []string{"newroot", "oldroot"} {
		g.step("mkdir ", d)
		g.call(unix.SYS_MKDIRAT, atFDCWD, g.str(d), sysplan.V(0o755))
	}
	if g.legacy {
		g.makeStaging()
	}
	if len(cfg.RootLowers) == 0 {
		g.setWhat("mount the new root's tmpfs")
		// newroot is a directory just made in the setup tmpfs, which
		// nothing else can reach: no symlink there.
		g.mountNew(in(atFDCWD, "newroot"), "tmpfs", []option{{"mode", "0755"}}, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV, nil, slotRoot)
		if !keepRoot {
			g.close(slotRoot)
		}
		g.rootOpen = keepRoot
	}
}

// afterSetupRoot pivots into the setup root (the host's moving to
// /oldroot), fills the new root at /newroot, and enters it. entries are
// the host system directories of the default view (nil for a custom root,
// which prepareRoot filled).
func (g *gen) afterSetupRoot(cfg *Config, entries []hostEntry) error {
	g.setWhat("pivot into the setup root")
	g.step("pivot_root")
	// The working directory stays the setup root, now /; the paths below
	// are absolute anyway.
	g.call(unix.SYS_PIVOT_ROOT, g.str("."), g.str("oldroot"))
	g.fdPrefix = fdPrefixHost
	g.step("open /oldroot")
	g.openat(atFDCWD, "/oldroot", unix.O_PATH|unix.O_DIRECTORY, 0, slotHost)
	if !g.rootOpen {
		g.step("open /newroot")
		g.openat(atFDCWD, "/newroot", unix.O_PATH|unix.O_DIRECTORY, 0, slotRoot)
	}
	g.setWhat("open the host's /dev/null")
	g.step()
	g.openat2(slotHost.FD(), "/dev/null", unix.O_PATH, slotDevNull)

	g.hostView(entries)
	g.tmp(cfg.TmpfsSize)
	g.proc(cfg.NewPID, cfg.MaskProc)
	g.sys(cfg.NewNet, cfg.MaskProc)
	g.dev(cfg)
	if err := g.userMounts(cfg.Mounts); err != nil {
		return err
	}
	g.files(cfg.Files)
	if !cfg.Overlay { // else a writable root was asked for
		g.setWhat("make / read-only")
		g.step("mount_setattr")
		g.mountSetattr(slotRoot, 0, unix.MOUNT_ATTR_RDONLY)
	}
	g.pivot(cfg.Cwd)
	return nil
}

// hostView binds the host's system directories read-only and recreates the
// merged-/usr symlinks as they are on the host.
func (g *gen) hostView(entries []hostEntry) {
	for _, e := range entries {
		if e.link == "" {
			g.bind("bind", "/"+e.name, "/"+e.name, srcDir, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV)
			continue
		}
		g.setWhat("symlink /", e.name, " -> ", e.link)
		g.step()
		g.call(unix.SYS_SYMLINKAT, g.str(e.link), slotRoot.FD(), g.str(e.name))
		g.rootNames = append(g.rootNames, e.name)
	}
}

// tmp mounts the sandbox's /tmp: a tmpfs with tmpfs's default mode, 1777,
// of size bytes when not 0.
func (g *gen) tmp(size int64) {
	g.newMount("/tmp", "tmpfs", sizeOption(size), unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV, slotMnt)
}

// sizeOption is a tmpfs's size option, none for 0.
func sizeOption(size int64) []option {
	if size == 0 {
		return nil
	}
	return []option{{"size", strconv.FormatInt(size, 10)}}
}

// proc mounts a /proc of the sandbox's pid namespace, or binds the host's
// when the pid namespace is shared (the kernel allows no fresh one then).
//
// The kernel also refuses a fresh /proc (EPERM) when the /proc rbox runs
// under has mounts over parts of it that a fresh one would uncover: the
// masks of an enclosing rbox, bubblewrap or container. That /proc is bound
// instead, masks and all. It lists the enclosing pid namespace's processes,
// but the sandbox's own processes still live in their own pid namespace,
// from which the others cannot be signalled or traced.
//
// The masks are made relative to the descriptor of the mount just
// attached, one component at a time: procfs holds no symlink but the
// kernel's own (self, mounts, net...), none of which is masked.
func (g *gen) proc(newPID, mask bool) {
	const attrs = unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC
	if !mask {
		g.fresh("/proc", "proc", newPID, &orElse{errno: unix.EPERM}, attrs, attrs, slotMnt)
		return
	}
	g.fresh("/proc", "proc", newPID, &orElse{errno: unix.EPERM}, attrs, attrs, slotDir)
	for _, n := range maskedProcFiles {
		g.maskFile("/proc/", n)
	}
	for _, n := range maskedProcDirs {
		g.maskDir("/proc/", n)
	}
	for _, n := range readOnlyProc {
		g.rebindReadOnly("/proc/", n)
	}
	g.close(slotDir)
}

// sys mounts a read-only sysfs of the sandbox's network namespace (so
// /sys/class/net lists only its interfaces), else binds the host's
// read-only. A nested sandbox may be refused a fresh sysfs; the bind then
// gives the same files, read-only.
func (g *gen) sys(newNet, mask bool) {
	const attrs = unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC
	if !mask {
		g.fresh("/sys", "sysfs", newNet, &orElse{}, attrs, attrs, slotMnt)
		return
	}
	g.fresh("/sys", "sysfs", newNet, &orElse{}, attrs, attrs, slotDir)
	for _, n := range maskedSysDirs {
		g.maskDir("/sys/", n)
	}
	g.close(slotDir)
}

// fresh mounts a new fstype on dir when own, else or when that fails as
// orElse says, binds the host's dir there. attrs are the new mount's,
// bindAttrs the bind's. The mount's descriptor is left in into for the
// caller unless into is slotMnt.
func (g *gen) fresh(dir, fstype string, own bool, fallback *orElse, attrs, bindAttrs uint64, into sysplan.Slot) {
	g.setWhat("mount ", dir)
	parts := g.newPath(dir)
	to, c := g.mountPoint(dir, parts, false)
	bindHost, done := g.p.NewLabel(), g.p.NewLabel()
	if own {
		fallback.to = bindHost
		g.mountNew(to, fstype, nil, attrs, fallback, into)
		g.p.Jump(done)
	}
	g.p.Mark(bindHost)
	g.setWhat("bind the host's ", dir, " on ", dir)
	g.step("open ", dir)
	g.openat2(slotHost.FD(), dir, unix.O_PATH|unix.O_DIRECTORY, slotSrc)
	g.attachTree(slotSrc, to, bindAttrs, into)
	g.close(slotSrc)
	g.p.Mark(done)
	g.closeIf(c)
	g.made(parts)
}

// dev builds a minimal /dev: a tmpfs with the host's harmless device nodes,
// a private devpts instance, /dev/shm, /dev/mqueue and the usual links.
//
// Everything in it is made relative to the descriptor of the new tmpfs,
// one name at a time with plain *at calls: it is the setup's own, just
// made and empty, and nothing but these ops writes to it, so no symlink
// can be met there.
func (g *gen) dev(cfg *Config) {
	g.newMount("/dev", "tmpfs", []option{{"mode", "0755"}}, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NOEXEC, slotDir)
	dev := slotDir.FD()
	for _, d := range hostDevices {
		g.setWhat("bind /dev/", d, " on /dev/", d)
		src := slotDevNull // open already
		if d != "null" {
			src = slotSrc
			g.step("open /dev/", d)
			g.openat2(slotHost.FD(), "/dev/"+d, unix.O_PATH, slotSrc)
		}
		g.step("create /dev/", d)
		g.call(unix.SYS_MKNODAT, dev, g.str(d), sysplan.V(unix.S_IFREG|0o644), sysplan.V(0))
		g.attachTree(src, in(dev, d), unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NOEXEC, slotMnt)
		if src == slotSrc {
			g.close(slotSrc)
		}
	}
	// devpts makes a new instance at each mount (Linux 4.7 and later):
	// no newinstance option.
	opts := []option{{"ptmxmode", "0666"}, {"mode", "0620"}}
	if cfg.TTYGID >= 0 {
		opts = append(opts, option{"gid", strconv.Itoa(cfg.TTYGID)})
	}
	g.devMount("pts", "devpts", opts, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NOEXEC)
	if cfg.NewIPC {
		// tmpfs's default mode is 1777.
		g.devMount("shm", "tmpfs", sizeOption(cfg.TmpfsSize), unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV)
		g.devMount("mqueue", "mqueue", nil, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC)
	} else {
		g.setWhat("bind /dev/shm on /dev/shm")
		g.step("open /dev/shm")
		g.openat2(slotHost.FD(), "/dev/shm", unix.O_PATH|unix.O_DIRECTORY, slotSrc)
		g.step("mkdir /dev/shm")
		g.call(unix.SYS_MKDIRAT, dev, g.str("shm"), sysplan.V(0o755))
		g.attachTree(slotSrc, in(dev, "shm"), unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV, slotMnt)
		g.close(slotSrc)
	}
	links := [][2]string{
		{"pts/ptmx", "ptmx"}, {"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"},
		{"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"}, {"/proc/kcore", "core"},
	}
	for _, l := range links {
		g.setWhat("symlink /dev/", l[1], " -> ", l[0])
		g.step("symlinkat")
		g.call(unix.SYS_SYMLINKAT, g.str(l[0]), dev, g.str(l[1]))
	}
	if cfg.Console {
		g.setWhat("create /dev/console")
		g.step()
		g.call(unix.SYS_MKNODAT, dev, g.str("console"), sysplan.V(unix.S_IFREG|0o644), sysplan.V(0))
	}
	g.close(slotDir)
}

// devMount mounts a new fstype on /dev/name, made in the new /dev (in
// slotDir).
func (g *gen) devMount(name, fstype string, opts []option, attrs uint64) {
	g.setWhat("mount ", fstype, " on /dev/", name)
	g.step("mkdir /dev/", name)
	g.call(unix.SYS_MKDIRAT, slotDir.FD(), g.str(name), sysplan.V(0o755))
	g.mountNew(in(slotDir.FD(), name), fstype, opts, attrs, nil, slotMnt)
}

// newMount mounts a new fstype on dir (made if missing) in the new root.
// Its descriptor is left in into unless into is slotMnt.
func (g *gen) newMount(dir, fstype string, opts []option, attrs uint64, into sysplan.Slot) {
	g.setWhat("mount ", fstype, " on ", dir)
	dir = path.Clean("/" + dir)
	parts := g.newPath(dir)
	to, c := g.mountPoint(dir, parts, false)
	g.mountNew(to, fstype, opts, attrs, nil, into)
	g.closeIf(c)
	g.made(parts)
}

// userMounts applies --bind, --ro-bind, --tmpfs, --dir and --symlink in the
// order given, so a later entry may sit inside an earlier one. A bind's
// source is looked at when the ops run: a directory gets a directory as
// mount point, anything else a file.
func (g *gen) userMounts(mounts []spec.Mount) error {
	for _, m := range mounts {
		switch m.Kind {
		case spec.MountBind:
			g.bind(string(m.Kind), m.Source, m.Dest, srcAny, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV)
		case spec.MountROBind:
			g.bind(string(m.Kind), m.Source, m.Dest, srcAny, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV)
		case spec.MountDevBind: // device nodes usable: no nodev
			g.bind(string(m.Kind), m.Source, m.Dest, srcAny, unix.MOUNT_ATTR_NOSUID)
		case spec.MountTmpfs:
			opts := []option{{"mode", "0755"}}
			if m.Mode != 0 {
				opts[0].value = strconv.FormatUint(uint64(m.Mode), 8)
			}
			if m.SizeBytes > 0 {
				opts = append(opts, option{"size", strconv.FormatInt(int64(m.SizeBytes), 10)})
			}
			g.newMount(m.Dest, "tmpfs", opts, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV, slotMnt)
		case spec.MountDir:
			g.setWhat("dir ", m.Dest)
			dst := path.Clean("/" + m.Dest)
			parts := g.newPath(dst)
			_, c := g.mountPoint(dst, parts, false)
			g.closeIf(c)
			g.made(parts)
		case spec.MountSymlink:
			g.symlinkIn(m.Source, m.Dest)
		default:
			return fmt.Errorf("%s: unknown mount kind %q", m.Dest, m.Kind)
		}
	}
	return nil
}

// files writes each generated file into the setup tmpfs and binds it
// read-only over its destination.
func (g *gen) files(files []File) {
	for i, f := range files {
		g.setWhat("generated file ", f.Dest)
		tmp := "/file" + strconv.Itoa(i)
		g.step("create ", tmp)
		g.openat(atFDCWD, tmp, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, 0o644, slotSrc)
		if len(f.Data) > 0 {
			// A tmpfs writes a small file whole or fails (ENOSPC).
			g.step("write ", tmp)
			g.call(unix.SYS_WRITE, slotSrc.FD(), sysplan.V(g.p.Bytes(f.Data)), sysplan.V(uintptr(len(f.Data))))
		}
		dst := path.Clean("/" + f.Dest)
		parts := g.newPath(dst)
		to, c := g.mountPoint(dst, parts, true)
		g.attachTree(slotSrc, to, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV, slotMnt)
		g.close(slotSrc)
		g.closeIf(c)
		g.made(parts)
	}
}

// pivot enters the new root and detaches the setup root with the host's
// root under it, so nothing of the host stays reachable, then enters cwd.
func (g *gen) pivot(cwd string) {
	g.setWhat("enter the new root")
	g.step()
	g.close(slotHost)
	g.close(slotDevNull)
	g.step("fchdir")
	g.call(unix.SYS_FCHDIR, slotRoot.FD())
	g.close(slotRoot)
	// pivot_root(".", ".") stacks the old root on top of the new one; the
	// lazy unmount then removes it without needing a directory for it.
	g.step("pivot_root")
	g.call(unix.SYS_PIVOT_ROOT, g.str("."), g.str("."))
	g.step("detach the old root")
	g.call(unix.SYS_UMOUNT2, g.str("."), sysplan.V(unix.MNT_DETACH))
	g.step("chdir /")
	g.call(unix.SYS_CHDIR, g.str("/"))
	if cwd == "" || cwd == "/" {
		return
	}
	// Resolved inside the root, following no magic link, so -w
	// /proc/self/fd/N or /proc/1/cwd cannot lead out of the sandbox.
	g.setWhat("working directory ", cwd)
	g.step()
	g.openat2(atFDCWD, cwd, unix.O_PATH|unix.O_DIRECTORY, slotDst)
	g.step("fchdir")
	g.call(unix.SYS_FCHDIR, slotDst.FD())
	g.close(slotDst)
}

// The masks below are made in the mount in slotDir (/proc or /sys, dir
// being its path with a slash), name relative to it. A name of one
// component is looked for with faccessat and the mount attached on it
// by name (see place): both stay in that kernel filesystem. A longer one
// is opened with openat2, confined to the mount.

// maskFile binds the host's /dev/null read-only over dir+name, if it
// exists.
func (g *gen) maskFile(dir, name string) {
	g.setWhat("mask ", dir, name)
	skip := g.p.NewLabel()
	to, c := g.probe(dir, name, 0, skip)
	g.attachTree(slotDevNull, to, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NOEXEC, slotMnt)
	g.closeIf(c)
	g.p.Mark(skip)
}

// maskDir mounts an empty read-only tmpfs over the directory dir+name, if
// it exists.
func (g *gen) maskDir(dir, name string) {
	g.setWhat("mask ", dir, name)
	skip := g.p.NewLabel()
	to, c := g.probe(dir, name, unix.O_DIRECTORY, skip)
	g.mountNew(to, "tmpfs", []option{{"size", "0"}, {"mode", "0555"}},
		unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC, nil, slotMnt)
	g.closeIf(c)
	g.p.Mark(skip)
}

// probe continues at skip unless name exists in the mount in slotDir, and
// returns its place and the slot to close once it is used.
func (g *gen) probe(dir, name string, flags int, skip sysplan.Label) (place, sysplan.Slot) {
	if !strings.Contains(name, "/") {
		g.step("look up ", dir, name)
		g.call(unix.SYS_FACCESSAT, slotDir.FD(), g.str(name), sysplan.V(unix.F_OK)).OnError(unix.ENOENT, skip)
		return in(slotDir.FD(), name), none
	}
	g.step("open ", dir, name)
	g.openat2(slotDir.FD(), name, unix.O_PATH|flags, slotDst).OnError(unix.ENOENT, skip)
	return at(slotDst), slotDst
}

// rebindReadOnly stacks a read-only copy of dir+name (a name in the mount
// in slotDir) over itself, if it exists.
func (g *gen) rebindReadOnly(dir, name string) {
	g.setWhat("make ", dir, name, " read-only")
	skip := g.p.NewLabel()
	if g.legacy {
		g.step("look up ", dir, name)
		g.call(unix.SYS_FACCESSAT, slotDir.FD(), g.str(name), sysplan.V(unix.F_OK)).OnError(unix.ENOENT, skip)
		g.legacyBind(g.p.FDPath(bufSrc, slotDir.FD(), g.fdPrefix, name), in(slotDir.FD(), name),
			unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV, slotMnt)
		g.p.Mark(skip)
		return
	}
	g.step("open_tree")
	g.call(unix.SYS_OPEN_TREE, slotDir.FD(), g.str(name),
		sysplan.V(unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE|unix.AT_SYMLINK_NOFOLLOW)).Into(slotMnt).OnError(unix.ENOENT, skip)
	g.step("mount_setattr")
	g.mountSetattr(slotMnt, unix.AT_RECURSIVE, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV)
	g.moveMount(slotMnt, in(slotDir.FD(), name))
	g.close(slotMnt)
	g.p.Mark(skip)
}
