package fsetup

import (
	"fmt"
	"path"
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
	slotDir                         // the parent of a file or symlink being made
	slotWalkA                       // directories mkdirs walks through,
	slotWalkB                       // alternately

	// FirstCallerSlot is the first slot Plan leaves to its caller: slots
	// 0 to 9 are fsetup's, 10 to 15 the caller's.
	FirstCallerSlot
)

// atFDCWD is AT_FDCWD as a system call argument.
var atFDCWD = func() sysplan.Arg { fd := unix.AT_FDCWD; return sysplan.V(uintptr(fd)) }()

// gen emits ops into a Program. Every op belongs to a step named
// "what: op", what being the step of the setup ("bind /a on /b") and op the
// system call or part of it ("open_tree", "mkdir /b"): that string is the
// user's only error message.
type gen struct {
	p    *sysplan.Program
	what string
	strs map[string]uintptr
	hows map[uint64]uintptr
	// attrs are mount_setattr arguments by the attributes they set.
	attrs map[uint64]uintptr
	// linkBuf receives readlinkat's answer, which is never read: only
	// whether it succeeds matters.
	linkBuf uintptr
}

func newGen(p *sysplan.Program) *gen {
	return &gen{p: p, strs: map[string]uintptr{}, hows: map[uint64]uintptr{}, attrs: map[uint64]uintptr{}}
}

// step names the ops emitted from now on: g.what, then op if not empty.
func (g *gen) step(op string) {
	if op == "" {
		g.p.Step("%s", g.what)
	} else {
		g.p.Step("%s: %s", g.what, op)
	}
}

// str is a NUL-terminated copy of s kept by the Program (one per string).
func (g *gen) str(s string) sysplan.Arg {
	a, ok := g.strs[s]
	if !ok {
		a = g.p.Str(s)
		g.strs[s] = a
	}
	return sysplan.V(a)
}

func (g *gen) call(nr uintptr, args ...sysplan.Arg) sysplan.Op { return g.p.Call(nr, args...) }

func (g *gen) close(s sysplan.Slot) { g.call(unix.SYS_CLOSE, s.FD()) }

// openat2 opens name with flags (plus O_CLOEXEC) resolved inside dir as if
// dir were the root, following no magic link, and puts the fd in into.
func (g *gen) openat2(dir sysplan.Arg, name string, flags int, into sysplan.Slot) sysplan.Op {
	f := uint64(flags | unix.O_CLOEXEC)
	how, ok := g.hows[f]
	if !ok {
		how = sysplan.Keep(g.p, &unix.OpenHow{Flags: f, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS})
		g.hows[f] = how
	}
	return g.call(unix.SYS_OPENAT2, dir, g.str(name), sysplan.V(how), sysplan.V(unsafe.Sizeof(unix.OpenHow{}))).Into(into)
}

// openat opens name relative to dir the classic way (the setup's own
// paths, which nobody else can reach).
func (g *gen) openat(dir sysplan.Arg, name string, flags, mode int, into sysplan.Slot) sysplan.Op {
	return g.call(unix.SYS_OPENAT, dir, g.str(name), sysplan.V(uintptr(flags|unix.O_CLOEXEC)), sysplan.V(uintptr(mode))).Into(into)
}

// mountSetattr sets attrs on the mount fd refers to (and every mount below
// it when flags has AT_RECURSIVE).
func (g *gen) mountSetattr(fd sysplan.Slot, flags int, attrs uint64) {
	a, ok := g.attrs[attrs]
	if !ok {
		a = sysplan.Keep(g.p, &unix.MountAttr{Attr_set: attrs})
		g.attrs[attrs] = a
	}
	g.call(unix.SYS_MOUNT_SETATTR, fd.FD(), g.str(""), sysplan.V(uintptr(flags|unix.AT_EMPTY_PATH)), sysplan.V(a), sysplan.V(unsafe.Sizeof(unix.MountAttr{})))
}

// openIn opens p inside the new root into slot into; a missing p continues
// at skip.
func (g *gen) openIn(p string, flags int, into sysplan.Slot, skip sysplan.Label) {
	g.step("open " + p)
	g.openat2(slotRoot.FD(), p, unix.O_PATH|flags, into).OnError(unix.ENOENT, skip)
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
	parent, cur := slotRoot, "/"
	for i, name := range parts {
		next := path.Join(cur, name)
		result := slotWalkA
		if i%2 == 1 {
			result = slotWalkB
		}
		if i == len(parts)-1 {
			result = into
		}
		g.step("mkdir " + next)
		g.call(unix.SYS_MKDIRAT, parent.FD(), g.str(name), sysplan.V(0o755)).Allow(unix.EEXIST)
		f := failed{at: p.NewLabel(), back: p.NewLabel(), parent: parent, result: result, name: name, path: next}
		g.step("open " + next)
		g.openat2(slotRoot.FD(), next, dirFlags, result).OnAnyError(f.at)
		p.Mark(f.back)
		if parent != slotRoot {
			g.close(parent)
		}
		diag = append(diag, f)
		parent, cur = result, next
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
		g.step(f.path + " is a symlink to a path that is not a directory in the sandbox")
		g.openat2(slotRoot.FD(), f.path, dirFlags, f.result)
		p.Jump(f.back)
		p.Mark(plain)
		g.step("open " + f.path)
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
	g.step("create " + file)
	// O_NOFOLLOW|O_EXCL: a symlink there is left alone (EEXIST) and
	// resolved inside the new root below.
	g.openat(slotDir.FD(), path.Base(file), unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW, 0o644, slotWalkA).
		OnError(unix.EEXIST, exists)
	g.close(slotWalkA)
	p.Mark(exists)
	g.close(slotDir)
	g.step("open " + file)
	g.openat2(slotRoot.FD(), file, unix.O_PATH, into)
	p.Mark(done)
}

// symlinkIn makes the symlink link -> target inside the new root.
func (g *gen) symlinkIn(target, link string) {
	link = path.Clean("/" + link)
	g.what = "symlink " + link + " -> " + target
	g.mkdirs(path.Dir(link), slotDir)
	g.step("symlinkat")
	g.call(unix.SYS_SYMLINKAT, g.str(target), slotDir.FD(), g.str(path.Base(link)))
	g.close(slotDir)
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
	g.what = fmt.Sprintf("%s %s on %s", verb, src, dst)
	g.step("open " + src)
	switch kind {
	case srcDir:
		g.openat2(slotHost.FD(), src, unix.O_PATH|unix.O_DIRECTORY, slotSrc)
		g.mkdirs(dst, slotDst)
	case srcFile:
		g.openat2(slotHost.FD(), src, unix.O_PATH, slotSrc)
		g.createFile(dst, slotDst)
	case srcAny:
		file, attach := g.p.NewLabel(), g.p.NewLabel()
		g.openat2(slotHost.FD(), src, unix.O_PATH|unix.O_DIRECTORY, slotSrc).OnError(unix.ENOTDIR, file)
		g.mkdirs(dst, slotDst)
		g.p.Jump(attach)
		g.p.Mark(file)
		g.step("open " + src)
		g.openat2(slotHost.FD(), src, unix.O_PATH, slotSrc)
		g.createFile(dst, slotDst)
		g.p.Mark(attach)
	}
	g.attachTree(slotSrc, slotDst, attrs)
	g.close(slotSrc)
	g.close(slotDst)
}

// attachTree clones the mount tree at src (recursively) and attaches the
// clone on dst. attrs are added to every mount of the clone; locked ones
// the kernel keeps as they are.
func (g *gen) attachTree(src, dst sysplan.Slot, attrs uint64) {
	g.step("open_tree")
	g.call(unix.SYS_OPEN_TREE, src.FD(), g.str(""),
		sysplan.V(unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE|unix.AT_EMPTY_PATH)).Into(slotMnt)
	if attrs != 0 {
		g.step("mount_setattr")
		g.mountSetattr(slotMnt, unix.AT_RECURSIVE, attrs)
	}
	g.moveMount(slotMnt, dst)
	g.close(slotMnt)
}

func (g *gen) moveMount(from, to sysplan.Slot) sysplan.Op {
	g.step("move_mount")
	return g.call(unix.SYS_MOVE_MOUNT, from.FD(), g.str(""), to.FD(), g.str(""),
		sysplan.V(unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH))
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

// mountNew creates a filesystem of type fstype and attaches it on dst. With
// fallback, its failures continue at fallback.to, its descriptors closed.
func (g *gen) mountNew(dst sysplan.Slot, fstype string, opts []option, attrs uint64, fallback *orElse) {
	p := g.p
	var failed, closeFS, closeMnt sysplan.Label
	if fallback != nil {
		failed, closeFS, closeMnt = fallback.to, p.NewLabel(), p.NewLabel()
	}
	g.step("fsopen " + fstype)
	fallback.on(g.call(unix.SYS_FSOPEN, g.str(fstype), sysplan.V(unix.FSOPEN_CLOEXEC)).Into(slotFS), failed)
	for _, o := range opts {
		if o.value == "" {
			g.step("fsconfig " + o.key)
			fallback.on(g.call(unix.SYS_FSCONFIG, slotFS.FD(), sysplan.V(unix.FSCONFIG_SET_FLAG), g.str(o.key), sysplan.V(0), sysplan.V(0)), closeFS)
		} else {
			g.step("fsconfig " + o.key + "=" + o.value)
			fallback.on(g.call(unix.SYS_FSCONFIG, slotFS.FD(), sysplan.V(unix.FSCONFIG_SET_STRING), g.str(o.key), g.str(o.value), sysplan.V(0)), closeFS)
		}
	}
	g.step("create " + fstype)
	fallback.on(g.call(unix.SYS_FSCONFIG, slotFS.FD(), sysplan.V(unix.FSCONFIG_CMD_CREATE), sysplan.V(0), sysplan.V(0), sysplan.V(0)), closeFS)
	g.step("fsmount " + fstype)
	fallback.on(g.call(unix.SYS_FSMOUNT, slotFS.FD(), sysplan.V(unix.FSMOUNT_CLOEXEC), sysplan.V(uintptr(attrs))).Into(slotMnt), closeFS)
	g.close(slotFS)
	fallback.on(g.moveMount(slotMnt, dst), closeMnt)
	g.close(slotMnt)
	if fallback == nil {
		return
	}
	done := p.NewLabel()
	p.Jump(done)
	p.Mark(closeFS)
	g.close(slotFS)
	p.Jump(failed)
	p.Mark(closeMnt)
	g.close(slotMnt)
	p.Jump(failed)
	p.Mark(done)
}
