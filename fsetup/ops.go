package fsetup

import (
	"path"
	"slices"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/sysplan"
)

// The Program's slots fsetup uses; FirstCallerSlot and up are the caller's.
const (
	slotHost    sysplan.Slot = iota // O_PATH fd of the host's root (/oldroot)
	slotRoot                        // O_PATH fd of the new root
	slotDevNull                     // the host's /dev/null, to mask files with
	slotDst                         // what a step mounts on
	slotSrc                         // what a step binds
	slotFS                          // a filesystem context (fsopen)
	slotMnt                         // a detached mount (fsmount, open_tree)
	slotDir                         // the parent of a file or symlink being made; /proc, /sys or /dev while they are filled
	slotWalkA                       // directories mkdirs walks through,
	slotWalkB                       // alternately

	// FirstCallerSlot is the first slot Plan leaves to its caller: slots
	// 0 to 9 are fsetup's, 10 to 15 the caller's.
	FirstCallerSlot
)

// none is no slot: nothing to close.
const none sysplan.Slot = -1

// atFDCWD is AT_FDCWD as a system call argument.
var atFDCWD = func() sysplan.Arg { fd := unix.AT_FDCWD; return sysplan.V(uintptr(fd)) }()

// gen emits ops into a Program. Every op belongs to a step named
// "what: op", what being the step of the setup ("bind /a on /b") and op the
// system call or part of it ("open_tree", "mkdir /b"): that string is the
// user's only error message. Both are kept in pieces, which the Program
// joins only to report a failure.
type gen struct {
	p    *sysplan.Program
	what sysplan.Prefix
	// empty is "", the path of the *_EMPTY_PATH calls.
	empty sysplan.Arg
	// hows and attrs are openat2's and mount_setattr's arguments by the
	// flags or attributes they carry.
	hows, attrs []cached
	// linkBuf receives readlinkat's answer, which is never read: only
	// whether it succeeds matters.
	linkBuf uintptr

	// own says the new root is a tmpfs of the setup's own that only these
	// ops have written to, and rootNames are the names they made in it.
	// Any other name cannot exist there: a mount point under it is made
	// with plain *at calls, without looking first (see newPath). own ends
	// with the first mount point made the general way, which may have
	// reached the root through a symlink of a bound directory.
	own       bool
	rootNames []string
	// rootOpen says slotRoot holds the new root already.
	rootOpen bool
	// dirMode is the mode of the directories made on the way to a
	// destination: 0755, less the group or other bits a bwrap --perms
	// clears (see parentMode).
	dirMode sysplan.Arg
	// legacy makes the ops with mount(2) and sysplan's walk, for a
	// kernel without openat2 and the new mount API (legacy.go); fdPrefix
	// is where mount(2) finds descriptors then.
	legacy   bool
	fdPrefix string
}

type cached struct {
	key uint64
	ptr uintptr
}

func newGen(p *sysplan.Program, cfg *Config) *gen {
	return &gen{p: p, empty: sysplan.V(p.Str("")), dirMode: sysplan.V(0o755), legacy: cfg.Legacy, fdPrefix: fdPrefixRoot}
}

// setWhat names the step of the setup the next ops belong to: the
// concatenation of parts.
func (g *gen) setWhat(parts ...string) { g.what = g.p.Prefix(parts...) }

// step names the ops emitted from now on: g.what, then ": " and the
// concatenation of op if there is one.
func (g *gen) step(op ...string) { g.p.StepUnder(g.what, op...) }

// str is a NUL-terminated copy of s kept by the Program.
func (g *gen) str(s string) sysplan.Arg {
	if s == "" {
		return g.empty
	}
	return sysplan.V(g.p.Str(s))
}

func (g *gen) call(nr uintptr, args ...sysplan.Arg) sysplan.Op { return g.p.Call(nr, args...) }

func (g *gen) close(s sysplan.Slot) { g.call(unix.SYS_CLOSE, s.FD()) }

// closeIf closes s unless it is none.
func (g *gen) closeIf(s sysplan.Slot) {
	if s != none {
		g.close(s)
	}
}

// openat2 opens name with flags (plus O_CLOEXEC) resolved inside dir as if
// dir were the root, following no magic link, and puts the fd in into.
func (g *gen) openat2(dir sysplan.Arg, name string, flags int, into sysplan.Slot) sysplan.Op {
	if g.legacy {
		return g.p.Resolve(dir, name, flags).Into(into)
	}
	f := uint64(flags | unix.O_CLOEXEC)
	i := slices.IndexFunc(g.hows, func(c cached) bool { return c.key == f })
	if i < 0 {
		how := sysplan.Keep(g.p, &unix.OpenHow{Flags: f, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS})
		g.hows = append(g.hows, cached{f, how})
		i = len(g.hows) - 1
	}
	return g.call(unix.SYS_OPENAT2, dir, g.str(name), sysplan.V(g.hows[i].ptr), sysplan.V(unsafe.Sizeof(unix.OpenHow{}))).Into(into)
}

// openat opens name relative to dir the classic way (the setup's own
// paths, which nobody else can reach).
func (g *gen) openat(dir sysplan.Arg, name string, flags, mode int, into sysplan.Slot) sysplan.Op {
	return g.call(unix.SYS_OPENAT, dir, g.str(name), sysplan.V(uintptr(flags|unix.O_CLOEXEC)), sysplan.V(uintptr(mode))).Into(into)
}

// mountSetattr sets attrs on the mount fd refers to (and every mount below
// it when flags has AT_RECURSIVE).
func (g *gen) mountSetattr(fd sysplan.Slot, flags int, attrs uint64) {
	if g.legacy {
		g.remount(g.p.FDPath(bufDst, fd.FD(), g.fdPrefix, ""), attrs)
		return
	}
	i := slices.IndexFunc(g.attrs, func(c cached) bool { return c.key == attrs })
	if i < 0 {
		a := sysplan.Keep(g.p, &unix.MountAttr{Attr_set: attrs})
		g.attrs = append(g.attrs, cached{attrs, a})
		i = len(g.attrs) - 1
	}
	g.call(unix.SYS_MOUNT_SETATTR, fd.FD(), g.empty, sysplan.V(uintptr(flags|unix.AT_EMPTY_PATH)), sysplan.V(g.attrs[i].ptr), sysplan.V(unsafe.Sizeof(unix.MountAttr{})))
}

// A place is where a mount is attached or a file made: the file a slot
// holds when name is empty, else name in the directory dir.
//
// A name is looked up by the kernel relative to dir without openat2's
// confinement, so it is only ever one component in a directory no symlink
// can have been planted in: one of the setup's own fresh tmpfs mounts
// (the new root, /dev) or a kernel filesystem (/proc, /sys). And move_mount
// never follows a symlink in the last component.
type place struct {
	dir  sysplan.Arg
	name string
}

// at is the place a slot holds.
func at(s sysplan.Slot) place { return place{dir: s.FD()} }

// in is the place name in the directory dir.
func in(dir sysplan.Arg, name string) place { return place{dir, name} }

// Kinds of files to make.
const (
	mkDir  = iota // a directory
	mkFile        // an empty regular file
	mkLink        // a symlink
)

// newPath returns the components of dst (a clean absolute path) when it
// cannot exist yet: its first one is not a name made in the new root,
// which is the setup's own (see gen.own); else nil.
func (g *gen) newPath(dst string) []string {
	if !g.own || dst == "/" {
		return nil
	}
	parts := strings.Split(dst[1:], "/")
	if slices.Contains(g.rootNames, parts[0]) {
		return nil
	}
	return parts
}

// made records that dst's mount point (or file) was made, parts being
// what newPath said of it: a name more in the new root, or the end of
// knowing its names.
func (g *gen) made(parts []string) {
	if parts == nil {
		g.own = false
		return
	}
	g.rootNames = append(g.rootNames, parts[0])
}

// makeNew makes dst, whose components newPath returned: the directories
// and, as kind says, a directory, an empty file or a symlink to target at
// the end, without looking for any first. It returns the place of the
// last one and the slot to close once it is used (none, for the root's).
//
// Each component is new in a directory this program made in the new
// root's own tmpfs, where nothing else writes and nothing is mounted: a
// plain *at call relative to its parent meets no symlink, and mkdirat and
// mknodat fail (EEXIST) rather than follow one.
func (g *gen) makeNew(dst string, parts []string, kind int, target string) (place, sysplan.Slot) {
	dir, end := slotRoot, 0
	for _, name := range parts[:len(parts)-1] {
		end += 1 + len(name)
		g.step("mkdir ", dst[:end])
		g.call(unix.SYS_MKDIRAT, dir.FD(), g.str(name), g.dirMode)
		next := slotWalkA
		if dir == slotWalkA {
			next = slotWalkB
		}
		g.step("open ", dst[:end])
		g.openat(dir.FD(), name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0, next)
		if dir != slotRoot {
			g.close(dir)
		}
		dir = next
	}
	name := parts[len(parts)-1]
	switch kind {
	case mkDir:
		g.step("mkdir ", dst)
		g.call(unix.SYS_MKDIRAT, dir.FD(), g.str(name), g.dirMode)
	case mkFile:
		g.step("create ", dst)
		g.call(unix.SYS_MKNODAT, dir.FD(), g.str(name), sysplan.V(unix.S_IFREG|0o644), sysplan.V(0))
	case mkLink:
		g.step("symlinkat")
		g.call(unix.SYS_SYMLINKAT, g.str(target), dir.FD(), g.str(name))
	}
	if dir == slotRoot {
		return in(slotRoot.FD(), name), none
	}
	return in(dir.FD(), name), dir
}

// mountPoint makes dst (a clean absolute path) inside the new root to
// attach a mount on, a directory or with file an empty file, unless it
// exists, and returns where it is and the slot to close once it is used.
// parts is what newPath said of dst.
func (g *gen) mountPoint(dst string, parts []string, file bool) (place, sysplan.Slot) {
	kind := mkDir
	if file {
		kind = mkFile
	}
	if parts != nil {
		return g.makeNew(dst, parts, kind, "")
	}
	if file {
		g.createFile(dst, slotDst)
	} else {
		g.mkdirs(dst, slotDst)
	}
	return at(slotDst), slotDst
}

// mkdirs makes every missing directory of dir inside the new root and puts
// an O_PATH fd of dir in into. It first tries to open dir as it is; else it
// walks down from the root, each directory opened afresh from the root
// (RESOLVE_IN_ROOT) so that a symlink met on the way resolves inside the
// new root. One that leads nowhere there is named in the error.
func (g *gen) mkdirs(dir string, into sysplan.Slot) {
	dir = path.Clean("/" + dir)
	const dirFlags = unix.O_PATH | unix.O_DIRECTORY
	p := g.p
	done, walk := p.NewLabel(), p.NewLabel()
	g.openat2(slotRoot.FD(), dir, dirFlags, into).OnAnyError(walk)
	p.Jump(done)
	p.Mark(walk)
	if dir == "/" {
		g.step("open /")
		g.openat2(slotRoot.FD(), "/", dirFlags, into)
		p.Mark(done)
		return
	}
	type failed struct {
		at, back       sysplan.Label
		parent, result sysplan.Slot
		name, path     string
	}
	var diag []failed
	parts := strings.Split(dir[1:], "/")
	parent, end := slotRoot, 0
	for i, name := range parts {
		end += 1 + len(name)
		next := dir[:end]
		result := slotWalkA
		if i%2 == 1 {
			result = slotWalkB
		}
		if i == len(parts)-1 {
			result = into
		}
		g.step("mkdir ", next)
		g.call(unix.SYS_MKDIRAT, parent.FD(), g.str(name), g.dirMode).Allow(unix.EEXIST)
		f := failed{at: p.NewLabel(), back: p.NewLabel(), parent: parent, result: result, name: name, path: next}
		g.step("open ", next)
		g.openat2(slotRoot.FD(), next, dirFlags, result).OnAnyError(f.at)
		p.Mark(f.back)
		if parent != slotRoot {
			g.close(parent)
		}
		diag = append(diag, f)
		parent = result
	}
	p.Jump(done)
	// A directory that exists (mkdir said EEXIST) and does not open is a
	// symlink to a path that is not a directory in the new root when
	// readlinkat succeeds on it. The open is tried again under the step
	// that says so, and fails again with its errno.
	if g.linkBuf == 0 {
		g.linkBuf = g.p.Bytes([]byte{0})
	}
	for _, f := range diag {
		plain := p.NewLabel()
		p.Mark(f.at)
		g.call(unix.SYS_READLINKAT, f.parent.FD(), g.str(f.name), sysplan.V(g.linkBuf), sysplan.V(1)).OnAnyError(plain)
		g.p.StepText(f.path, " is a symlink to a path that is not a directory in the sandbox")
		g.openat2(slotRoot.FD(), f.path, dirFlags, f.result)
		p.Jump(f.back)
		p.Mark(plain)
		g.step("open ", f.path)
		g.openat2(slotRoot.FD(), f.path, dirFlags, f.result)
		p.Jump(f.back)
	}
	p.Mark(done)
}

// createFile makes an empty file at file (and its parents) inside the new
// root to serve as a mount point, unless something is there already, and
// puts an O_PATH fd of it in into.
func (g *gen) createFile(file string, into sysplan.Slot) {
	file = path.Clean("/" + file)
	p := g.p
	done, create, exists := p.NewLabel(), p.NewLabel(), p.NewLabel()
	g.openat2(slotRoot.FD(), file, unix.O_PATH, into).OnAnyError(create)
	p.Jump(done)
	p.Mark(create)
	g.mkdirs(path.Dir(file), slotDir)
	g.step("create ", file)
	// O_NOFOLLOW|O_EXCL: a symlink there is left alone (EEXIST) and
	// resolved inside the new root below.
	g.openat(slotDir.FD(), path.Base(file), unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW, 0o644, slotWalkA).
		OnError(unix.EEXIST, exists)
	g.close(slotWalkA)
	p.Mark(exists)
	g.close(slotDir)
	g.step("open ", file)
	g.openat2(slotRoot.FD(), file, unix.O_PATH, into)
	p.Mark(done)
}

// symlinkIn makes the symlink link -> target inside the new root.
func (g *gen) symlinkIn(target, link string) {
	link = path.Clean("/" + link)
	g.setWhat("symlink ", link, " -> ", target)
	parts := g.newPath(link)
	if parts != nil {
		_, c := g.makeNew(link, parts, mkLink, target)
		g.closeIf(c)
		g.made(parts)
		return
	}
	g.mkdirs(path.Dir(link), slotDir)
	g.step("symlinkat")
	g.call(unix.SYS_SYMLINKAT, g.str(target), slotDir.FD(), g.str(path.Base(link)))
	g.close(slotDir)
	g.made(nil)
}

// What a bind's source is, for its mount point.
type srcKind int

const (
	srcDir  srcKind = iota // a directory: mkdirs
	srcFile                // anything else: createFile
	srcAny                 // looked at when the ops run
)

// bind clones the host's tree at src (recursively) onto dst in the new root,
// adding attrs to every mount of the clone. verb names the step ("bind",
// "ro-bind").
func (g *gen) bind(verb, src, dst string, kind srcKind, attrs uint64) {
	g.setWhat(verb, " ", src, " on ", dst)
	dst = path.Clean("/" + dst)
	parts := g.newPath(dst)
	g.step("open ", src)
	var to place
	var c sysplan.Slot
	switch kind {
	case srcDir:
		g.openat2(slotHost.FD(), src, unix.O_PATH|unix.O_DIRECTORY, slotSrc)
		to, c = g.mountPoint(dst, parts, false)
	case srcFile:
		g.openat2(slotHost.FD(), src, unix.O_PATH, slotSrc)
		to, c = g.mountPoint(dst, parts, true)
	case srcAny:
		// Both ways end with the mount point in the same place.
		file, attach := g.p.NewLabel(), g.p.NewLabel()
		g.openat2(slotHost.FD(), src, unix.O_PATH|unix.O_DIRECTORY, slotSrc).OnError(unix.ENOTDIR, file)
		to, c = g.mountPoint(dst, parts, false)
		g.p.Jump(attach)
		g.p.Mark(file)
		g.step("open ", src)
		g.openat2(slotHost.FD(), src, unix.O_PATH, slotSrc)
		g.mountPoint(dst, parts, true)
		g.p.Mark(attach)
	}
	g.attachTree(slotSrc, to, attrs, slotMnt)
	g.close(slotSrc)
	g.closeIf(c)
	g.made(parts)
}

// attachTree clones the mount tree at src (recursively) and attaches the
// clone on dst. attrs are added to every mount of the clone; locked ones
// the kernel keeps as they are. The clone's descriptor is left in into
// for the caller unless into is slotMnt, which is closed.
func (g *gen) attachTree(src sysplan.Slot, dst place, attrs uint64, into sysplan.Slot) {
	if g.legacy {
		g.legacyBind(g.p.FDPath(bufSrc, src.FD(), g.fdPrefix, ""), dst, attrs, into)
		return
	}
	g.step("open_tree")
	g.call(unix.SYS_OPEN_TREE, src.FD(), g.empty,
		sysplan.V(unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE|unix.AT_EMPTY_PATH)).Into(into)
	if attrs != 0 {
		g.step("mount_setattr")
		g.mountSetattr(into, unix.AT_RECURSIVE, attrs)
	}
	g.moveMount(into, dst)
	if into == slotMnt {
		g.close(slotMnt)
	}
}

// moveMount attaches the detached mount in from on to.
func (g *gen) moveMount(from sysplan.Slot, to place) sysplan.Op {
	g.step("move_mount")
	if to.name == "" {
		return g.call(unix.SYS_MOVE_MOUNT, from.FD(), g.empty, to.dir, g.empty,
			sysplan.V(unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH))
	}
	return g.call(unix.SYS_MOVE_MOUNT, from.FD(), g.empty, to.dir, g.str(to.name), sysplan.V(unix.MOVE_MOUNT_F_EMPTY_PATH))
}

// option is a filesystem option for fsconfig; an empty value sets a flag.
type option struct{ key, value string }

// orElse makes a fresh mount continue at to on failure instead of failing
// the setup: on errno, or on any error when errno is 0.
type orElse struct {
	errno syscall.Errno
	to    sysplan.Label
}

func (e *orElse) on(o sysplan.Op, to sysplan.Label) {
	switch {
	case e == nil:
		return
	case e.errno == 0:
		o.OnAnyError(to)
	default:
		o.OnError(e.errno, to)
	}
}

// mountNew creates a filesystem of type fstype and attaches it on dst. Its
// descriptor is left in into for the caller unless into is slotMnt, which
// is closed. With fallback, its failures continue at fallback.to, its
// descriptors closed.
func (g *gen) mountNew(dst place, fstype string, opts []option, attrs uint64, fallback *orElse, into sysplan.Slot) {
	if g.legacy {
		g.legacyMountNew(dst, fstype, opts, attrs, fallback, into)
		return
	}
	p := g.p
	var failed, closeFS, closeMnt sysplan.Label
	if fallback != nil {
		failed, closeFS, closeMnt = fallback.to, p.NewLabel(), p.NewLabel()
	}
	g.step("fsopen ", fstype)
	fallback.on(g.call(unix.SYS_FSOPEN, g.str(fstype), sysplan.V(unix.FSOPEN_CLOEXEC)).Into(slotFS), failed)
	for _, o := range opts {
		if o.value == "" {
			g.step("fsconfig ", o.key)
			fallback.on(g.call(unix.SYS_FSCONFIG, slotFS.FD(), sysplan.V(unix.FSCONFIG_SET_FLAG), g.str(o.key), sysplan.V(0), sysplan.V(0)), closeFS)
		} else {
			g.step("fsconfig ", o.key, "=", o.value)
			fallback.on(g.call(unix.SYS_FSCONFIG, slotFS.FD(), sysplan.V(unix.FSCONFIG_SET_STRING), g.str(o.key), g.str(o.value), sysplan.V(0)), closeFS)
		}
	}
	g.step("create ", fstype)
	fallback.on(g.call(unix.SYS_FSCONFIG, slotFS.FD(), sysplan.V(unix.FSCONFIG_CMD_CREATE), sysplan.V(0), sysplan.V(0), sysplan.V(0)), closeFS)
	g.step("fsmount ", fstype)
	fallback.on(g.call(unix.SYS_FSMOUNT, slotFS.FD(), sysplan.V(unix.FSMOUNT_CLOEXEC), sysplan.V(uintptr(attrs))).Into(into), closeFS)
	g.close(slotFS)
	fallback.on(g.moveMount(into, dst), closeMnt)
	if into == slotMnt {
		g.close(slotMnt)
	}
	if fallback == nil {
		return
	}
	done := p.NewLabel()
	p.Jump(done)
	p.Mark(closeFS)
	g.close(slotFS)
	p.Jump(failed)
	p.Mark(closeMnt)
	g.close(into)
	p.Jump(failed)
	p.Mark(done)
}
