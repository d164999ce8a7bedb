// Package fsetup builds the sandbox's filesystem inside its own mount
// namespace and enters it.
//
// The order follows bubblewrap's: stop mount propagation, mount a private
// tmpfs and pivot into it so the host stays reachable at /oldroot, assemble
// the new root from there, then pivot into the new root and detach
// everything else. Every path inside the new root is resolved with openat2
// and RESOLVE_IN_ROOT, and every mount is attached by file descriptor with
// the new mount API (open_tree, fsmount, move_mount, mount_setattr), so a
// symlink planted in a bound directory cannot redirect a mount outside the
// sandbox, and nothing is ever looked up through /proc/self/fd.
package fsetup

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/spec"
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

// builder holds the open roots while the sandbox is assembled.
type builder struct {
	cfg     *Config
	sources *rootSources // host directories of a custom root
	// keptUpper and keptWork are the bound --overlay-dir directories.
	keptUpper, keptWork string
	helperReady         bool // helperRoot is filled
	host                int  // O_PATH fd of the host's root (/oldroot)
	root                int  // O_PATH fd of the new root
	dev                 int  // O_PATH fd of /dev/null of the host, used to mask files
}

// Build assembles the sandbox's root from the host's and pivots into it. It
// must run in a new mount namespace with CAP_SYS_ADMIN in its user namespace.
func Build(cfg *Config) error {
	b := &builder{cfg: cfg, host: -1, root: -1, dev: -1}
	defer b.close()
	steps := []struct {
		name string
		fn   func() error
	}{
		{"enter setup root", b.enterSetupRoot},
		{"bind host system directories", b.hostView},
		{"mount /tmp", b.tmp},
		{"mount /proc", b.proc},
		{"mount /sys", b.sys},
		{"populate /dev", b.dev_},
		{"apply user mounts", b.userMounts},
		{"place generated files", b.files},
		{"make / read-only", b.sealRoot},
		{"pivot into the new root", b.pivot},
	}
	for _, s := range steps {
		if err := s.fn(); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return nil
}

func (b *builder) close() {
	for _, fd := range []int{b.host, b.root, b.dev} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}

// enterSetupRoot makes mounts private to the sandbox, pivots into a fresh
// tmpfs (the host's root moving to /oldroot) and mounts the new root's own
// tmpfs at /newroot.
func (b *builder) enterSetupRoot() error {
	// Slave, not private: unmounts on the host still reach us, so the
	// sandbox never keeps a host filesystem busy.
	if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make / a slave mount: %w", err)
	}
	if b.cfg.customRoot() {
		if err := b.openRootSources(); err != nil {
			return err
		}
	}
	if err := unix.Mount("tmpfs", base, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", base, err)
	}
	if err := unix.Chdir(base); err != nil {
		return err
	}
	for _, d := range []string{"newroot", "oldroot"} {
		if err := unix.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	if b.cfg.customRoot() {
		if err := b.prepareRoot(); err != nil {
			return err
		}
	}
	if err := unix.PivotRoot(".", "oldroot"); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	var err error
	if b.host, err = unix.Open("/oldroot", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
		return err
	}
	if b.dev, err = b.openHost("/dev/null", unix.O_PATH); err != nil {
		return err
	}
	newroot, err := unix.Open("/newroot", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(newroot)
	if !b.cfg.customRoot() {
		if err := mountNew(newroot, "tmpfs", map[string]string{"mode": "0755"}, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV); err != nil {
			return fmt.Errorf("mount the new root's tmpfs: %w", err)
		}
	}
	b.root, err = unix.Open("/newroot", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	return err
}

// hostView binds the host's system directories read-only and recreates the
// merged-/usr symlinks as they are on the host.
func (b *builder) hostView() error {
	if b.cfg.customRoot() {
		return nil // prepareRoot made the root
	}
	for _, name := range hostSystemDirs {
		var st unix.Stat_t
		if err := unix.Fstatat(b.host, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			return fmt.Errorf("stat /%s: %w", name, err)
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			target, err := readlinkat(b.host, name)
			if err != nil {
				return err
			}
			if err := unix.Symlinkat(target, b.root, name); err != nil {
				return fmt.Errorf("symlink /%s: %w", name, err)
			}
		case unix.S_IFDIR:
			if err := b.bind("/"+name, "/"+name, true, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV); err != nil {
				return err
			}
		}
	}
	return nil
}

func (b *builder) tmp() error {
	fd, err := b.mkdirIn("/tmp")
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return mountNew(fd, "tmpfs", map[string]string{"mode": "1777"}, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV)
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
func (b *builder) proc() error {
	fd, err := b.mkdirIn("/proc")
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	fresh := false
	if b.cfg.NewPID {
		err := mountNew(fd, "proc", nil, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC)
		if err != nil && !errors.Is(err, unix.EPERM) {
			return err
		}
		fresh = err == nil
	}
	if !fresh {
		if err := b.bind("/proc", "/proc", false, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC); err != nil {
			return err
		}
	}
	if !b.cfg.MaskProc {
		return nil
	}
	if err := each("/proc/", maskedProcFiles, b.maskFile); err != nil {
		return err
	}
	if err := each("/proc/", maskedProcDirs, b.maskDir); err != nil {
		return err
	}
	return each("/proc/", readOnlyProc, b.rebindReadOnly)
}

// each applies fn to dir+name for every name, stopping at the first error.
func each(dir string, names []string, fn func(string) error) error {
	for _, n := range names {
		if err := fn(dir + n); err != nil {
			return err
		}
	}
	return nil
}

// sys mounts a read-only sysfs of the sandbox's network namespace (so
// /sys/class/net lists only its interfaces), else binds the host's
// read-only.
func (b *builder) sys() error {
	fd, err := b.mkdirIn("/sys")
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	attrs := uint64(unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC)
	fresh := false
	if b.cfg.NewNet {
		// A nested sandbox may be refused a fresh sysfs; the bind below
		// then gives the same files, read-only.
		fresh = mountNew(fd, "sysfs", nil, attrs) == nil
	}
	if !fresh {
		if err := b.bind("/sys", "/sys", true, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC); err != nil {
			return err
		}
	}
	if !b.cfg.MaskProc {
		return nil
	}
	return each("/sys/", maskedSysDirs, b.maskDir)
}

// dev_ builds a minimal /dev: a tmpfs with the host's harmless device nodes,
// a private devpts instance, /dev/shm, /dev/mqueue and the usual links.
func (b *builder) dev_() error {
	fd, err := b.mkdirIn("/dev")
	if err != nil {
		return err
	}
	err = mountNew(fd, "tmpfs", map[string]string{"mode": "0755"}, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NOEXEC)
	unix.Close(fd)
	if err != nil {
		return err
	}
	for _, d := range hostDevices {
		if err := b.bind("/dev/"+d, "/dev/"+d, false, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NOEXEC); err != nil {
			return err
		}
	}
	pts, err := b.mkdirIn("/dev/pts")
	if err != nil {
		return err
	}
	opts := map[string]string{"newinstance": "", "ptmxmode": "0666", "mode": "0620"}
	if b.cfg.TTYGID >= 0 {
		opts["gid"] = fmt.Sprint(b.cfg.TTYGID)
	}
	err = mountNew(pts, "devpts", opts, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NOEXEC)
	unix.Close(pts)
	if err != nil {
		return err
	}
	shm, err := b.mkdirIn("/dev/shm")
	if err != nil {
		return err
	}
	defer unix.Close(shm)
	if b.cfg.NewIPC {
		if err := mountNew(shm, "tmpfs", map[string]string{"mode": "1777"}, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV); err != nil {
			return err
		}
		mq, err := b.mkdirIn("/dev/mqueue")
		if err != nil {
			return err
		}
		err = mountNew(mq, "mqueue", nil, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC)
		unix.Close(mq)
		if err != nil {
			return err
		}
	} else if err := b.bind("/dev/shm", "/dev/shm", false, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV); err != nil {
		return err
	}
	links := [][2]string{
		{"pts/ptmx", "/dev/ptmx"}, {"/proc/self/fd", "/dev/fd"}, {"/proc/self/fd/0", "/dev/stdin"},
		{"/proc/self/fd/1", "/dev/stdout"}, {"/proc/self/fd/2", "/dev/stderr"}, {"/proc/kcore", "/dev/core"},
	}
	for _, l := range links {
		if err := b.symlinkIn(l[0], l[1]); err != nil {
			return err
		}
	}
	if b.cfg.Console {
		fd, err := b.createFileIn("/dev/console")
		if err != nil {
			return err
		}
		unix.Close(fd)
	}
	return nil
}

// userMounts applies --bind, --ro-bind, --tmpfs, --dir and --symlink in the
// order given, so a later entry may sit inside an earlier one.
func (b *builder) userMounts() error {
	for _, m := range b.cfg.Mounts {
		var err error
		switch m.Kind {
		case spec.MountBind, spec.MountROBind:
			err = b.bind(m.Source, m.Dest, m.Kind == spec.MountROBind, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV)
		case spec.MountTmpfs:
			err = b.userTmpfs(m)
		case spec.MountDir:
			var fd int
			if fd, err = b.mkdirIn(m.Dest); err == nil {
				unix.Close(fd)
			}
		case spec.MountSymlink:
			err = b.symlinkIn(m.Source, m.Dest)
		default:
			err = fmt.Errorf("unknown mount kind %q", m.Kind)
		}
		if err != nil {
			return fmt.Errorf("%s %s: %w", m.Kind, m.Dest, err)
		}
	}
	return nil
}

func (b *builder) userTmpfs(m spec.Mount) error {
	fd, err := b.mkdirIn(m.Dest)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	opts := map[string]string{"mode": "0755"}
	if m.Mode != 0 {
		opts["mode"] = fmt.Sprintf("%o", m.Mode)
	}
	if m.SizeBytes > 0 {
		opts["size"] = fmt.Sprint(m.SizeBytes)
	}
	return mountNew(fd, "tmpfs", opts, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV)
}

// files writes each generated file into a tmpfs of its own and binds it
// read-only over its destination.
func (b *builder) files() error {
	for i, f := range b.cfg.Files {
		tmp := fmt.Sprintf("/file%d", i)
		if err := os.WriteFile(tmp, f.Data, 0o644); err != nil {
			return err
		}
		src, err := unix.Open(tmp, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		dst, err := b.createFileIn(f.Dest)
		if err == nil {
			err = attachTree(src, "", dst, true, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV)
			unix.Close(dst)
		}
		unix.Close(src)
		if err != nil {
			return fmt.Errorf("%s: %w", f.Dest, err)
		}
	}
	return nil
}

// sealRoot makes the new root's own tmpfs read-only: only the mounts the
// sandbox was given are writable.
func (b *builder) sealRoot() error {
	if b.cfg.Overlay {
		return nil // a writable root was asked for
	}
	return unix.MountSetattr(b.root, "", unix.AT_EMPTY_PATH, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY})
}

// pivot enters the new root and detaches the setup root with the host's
// root under it, so nothing of the host stays reachable.
func (b *builder) pivot() error {
	if err := unix.Fchdir(b.root); err != nil {
		return err
	}
	// pivot_root(".", ".") stacks the old root on top of the new one; the
	// lazy unmount then removes it without needing a directory for it.
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach the old root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	return EnterDir(b.cfg.Cwd)
}

// EnterDir changes to dir inside the current root without following magic
// links, so /proc/self/fd/N or /proc/1/cwd cannot lead out of the sandbox.
func EnterDir(dir string) error {
	if dir == "" || dir == "/" {
		return nil
	}
	fd, err := unix.Openat2(unix.AT_FDCWD, dir, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return fmt.Errorf("working directory %s: %w", dir, err)
	}
	defer unix.Close(fd)
	return unix.Fchdir(fd)
}

// bind clones the host tree at src (recursively) onto dst in the new root.
func (b *builder) bind(src, dst string, readOnly bool, attrs uint64) error {
	sfd, err := b.openHost(src, unix.O_PATH)
	if err != nil {
		return err
	}
	defer unix.Close(sfd)
	var st unix.Stat_t
	if err := unix.Fstat(sfd, &st); err != nil {
		return err
	}
	var dfd int
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		dfd, err = b.mkdirIn(dst)
	} else {
		dfd, err = b.createFileIn(dst)
	}
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	if err := attachTree(sfd, "", dfd, readOnly, attrs); err != nil {
		return fmt.Errorf("bind %s on %s: %w", src, dst, err)
	}
	return nil
}

// rebindReadOnly stacks a read-only copy of a new-root path over itself.
func (b *builder) rebindReadOnly(p string) error {
	fd, err := b.openIn(p, unix.O_PATH)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return attachTree(fd, "", fd, true, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV)
}

func (b *builder) maskFile(p string) error {
	fd, err := b.openIn(p, unix.O_PATH)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return attachTree(b.dev, "", fd, true, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NOEXEC)
}

func (b *builder) maskDir(p string) error {
	fd, err := b.openIn(p, unix.O_PATH|unix.O_DIRECTORY)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return mountNew(fd, "tmpfs", map[string]string{"size": "0", "mode": "0555"},
		unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC)
}

// attachTree clones the mount tree at (dirfd, name) and attaches the clone
// on the object dst refers to. The attributes are added to every mount of
// the clone; locked ones the kernel keeps as they are.
func attachTree(dirfd int, name string, dst int, readOnly bool, attrs uint64) error {
	tree, err := unix.OpenTree(dirfd, name, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE|unix.AT_EMPTY_PATH)
	if err != nil {
		return fmt.Errorf("open_tree: %w", err)
	}
	defer unix.Close(tree)
	if readOnly {
		attrs |= unix.MOUNT_ATTR_RDONLY
	}
	if attrs != 0 {
		if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &unix.MountAttr{Attr_set: attrs}); err != nil {
			return fmt.Errorf("mount_setattr: %w", err)
		}
	}
	if err := unix.MoveMount(tree, "", dst, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount: %w", err)
	}
	return nil
}

// mountNew creates a filesystem of type fstype and attaches it on dst.
func mountNew(dst int, fstype string, opts map[string]string, attrs uint64) error {
	fsfd, err := unix.Fsopen(fstype, unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("fsopen %s: %w", fstype, err)
	}
	defer unix.Close(fsfd)
	for k, v := range opts {
		if v == "" {
			err = unix.FsconfigSetFlag(fsfd, k)
		} else {
			err = unix.FsconfigSetString(fsfd, k, v)
		}
		if err != nil {
			return fmt.Errorf("%s option %s=%s: %w", fstype, k, v, err)
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return fmt.Errorf("create %s: %w", fstype, err)
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, int(attrs))
	if err != nil {
		return fmt.Errorf("fsmount %s: %w", fstype, err)
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", dst, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return fmt.Errorf("attach %s: %w", fstype, err)
	}
	return nil
}

// openHost opens a host path, resolving symlinks as the host would.
func (b *builder) openHost(p string, flags int) (int, error) {
	fd, err := unix.Openat2(b.host, p, &unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS})
	if err != nil {
		return -1, fmt.Errorf("%s: %w", p, err)
	}
	return fd, nil
}

// openIn opens p inside the new root; symlinks resolve as if the new root
// were /, so they cannot point out of it.
func (b *builder) openIn(p string, flags int) (int, error) {
	return unix.Openat2(b.root, p, &unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS})
}

// mkdirIn makes every missing directory of p inside the new root and returns
// an O_PATH fd of the last one.
func (b *builder) mkdirIn(p string) (int, error) {
	p = path.Clean("/" + p)
	if fd, err := b.openIn(p, unix.O_PATH|unix.O_DIRECTORY); err == nil {
		return fd, nil
	}
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	cur := "/"
	for _, part := range parts {
		parent, err := b.openIn(cur, unix.O_PATH|unix.O_DIRECTORY)
		if err != nil {
			if target, lerr := b.linkTarget(cur); lerr == nil {
				return -1, fmt.Errorf("%s is a symlink to %s, which is not a directory in the sandbox: %w", cur, target, err)
			}
			return -1, fmt.Errorf("%s: %w", cur, err)
		}
		next := path.Join(cur, part)
		if err := unix.Mkdirat(parent, part, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
			unix.Close(parent)
			return -1, fmt.Errorf("mkdir %s: %w", next, err)
		}
		unix.Close(parent)
		cur = next
	}
	fd, err := b.openIn(p, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return -1, fmt.Errorf("%s: %w", p, err)
	}
	return fd, nil
}

// createFileIn makes an empty file at p (and its parents) inside the new root
// to serve as a mount point, and returns an O_PATH fd of it.
func (b *builder) createFileIn(p string) (int, error) {
	p = path.Clean("/" + p)
	if fd, err := b.openIn(p, unix.O_PATH); err == nil {
		return fd, nil
	}
	dir, err := b.mkdirIn(path.Dir(p))
	if err != nil {
		return -1, err
	}
	defer unix.Close(dir)
	fd, err := unix.Openat(dir, path.Base(p), unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return -1, fmt.Errorf("create %s: %w", p, err)
	}
	if err == nil {
		unix.Close(fd)
	}
	fd, err = b.openIn(p, unix.O_PATH)
	if err != nil {
		return -1, fmt.Errorf("%s: %w", p, err)
	}
	return fd, nil
}

func (b *builder) symlinkIn(target, link string) error {
	link = path.Clean("/" + link)
	dir, err := b.mkdirIn(path.Dir(link))
	if err != nil {
		return err
	}
	defer unix.Close(dir)
	if err := unix.Symlinkat(target, dir, path.Base(link)); err != nil {
		return fmt.Errorf("symlink %s -> %s: %w", link, target, err)
	}
	return nil
}

// linkTarget reads p inside the new root when it is a symlink.
func (b *builder) linkTarget(p string) (string, error) {
	dir, err := b.openIn(path.Dir(p), unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return "", err
	}
	defer unix.Close(dir)
	return readlinkat(dir, path.Base(p))
}

func readlinkat(dirfd int, name string) (string, error) {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(dirfd, name, buf)
	if err != nil {
		return "", fmt.Errorf("readlink %s: %w", name, err)
	}
	return string(buf[:n]), nil
}
