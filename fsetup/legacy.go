package fsetup

import (
	"strings"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/sysplan"
)

// Kernels without openat2 or the new mount API (before 5.12: RHEL 8's
// 4.18 and Ubuntu 20.04's 5.4 lack all of it, Debian 11's 5.10
// mount_setattr) get the same steps made with mount(2), as runc makes them
// (Config.Legacy):
//
//   - a path is resolved inside its root by sysplan's Resolve, a walk of
//     one component at a time with readlinkat and O_PATH|O_NOFOLLOW that
//     follows symlinks as if the root were / and refuses procfs's magic
//     links, where openat2 would be given RESOLVE_IN_ROOT|
//     RESOLVE_NO_MAGICLINKS;
//   - mount(2) reaches what the walk opened through /proc/self/fd/N of the
//     host's /proc (a magic link that lands on the descriptor's file
//     without a second lookup by name);
//   - a bind or a new filesystem is first mounted on a staging directory
//     (or file) of the setup root, which nothing else can reach, remounted
//     there with its flags (MS_REMOUNT|MS_BIND, keeping the flags the
//     kernel locks, read by statfs), then moved onto its destination with
//     MS_MOVE: the lookups by name are in the setup root;
//   - a recursive bind's submounts get the bind's flags one by one, found
//     in /proc/self/mountinfo (mount_setattr's AT_RECURSIVE has no mount(2)
//     equivalent), by their paths below the staging point.

// stageDir and stageFile are the staging mount points, relative to the
// setup root (the working directory before and after the first pivot).
const (
	stageDir  = "stage-dir"
	stageFile = "stage-file"
)

// Path buffers of sysplan.FDPath: a bind's source and a destination.
const (
	bufSrc = iota
	bufDst
)

// slotFlags holds the flags of a remount; the fsopen context slot is
// free in the legacy path.
const slotFlags = slotFS

// fdPrefixHost is /proc/self/fd/ of the host's /proc once the host's root
// is /oldroot; fdPrefixRoot the same before the first pivot.
const (
	fdPrefixHost = "/oldroot/proc/self/fd/"
	fdPrefixRoot = "/proc/self/fd/"
)

// makeStaging makes the staging directory and file in the setup root
// (the working directory).
func (g *gen) makeStaging() {
	g.step("mkdir ", stageDir)
	g.call(unix.SYS_MKDIRAT, atFDCWD, g.str(stageDir), sysplan.V(0o755))
	g.step("create ", stageFile)
	g.call(unix.SYS_MKNODAT, atFDCWD, g.str(stageFile), sysplan.V(unix.S_IFREG|0o644), sysplan.V(0))
}

// msFlags turns MOUNT_ATTR_* attributes into mount(2) flags.
func msFlags(attrs uint64) uintptr {
	var f uintptr
	for _, m := range [][2]uint64{
		{unix.MOUNT_ATTR_RDONLY, unix.MS_RDONLY}, {unix.MOUNT_ATTR_NOSUID, unix.MS_NOSUID},
		{unix.MOUNT_ATTR_NODEV, unix.MS_NODEV}, {unix.MOUNT_ATTR_NOEXEC, unix.MS_NOEXEC},
	} {
		if attrs&m[0] != 0 {
			f |= uintptr(m[1])
		}
	}
	return f
}

// fdPath is the path by which mount(2) reaches a place's file: the
// descriptor's /proc/self/fd/N (and the name in it), or the name itself
// relative to the working directory.
func (g *gen) fdPath(buf int, to place) sysplan.Arg {
	if to.dir == atFDCWD {
		return g.str(to.name)
	}
	return g.p.FDPath(buf, to.dir, g.fdPrefix, to.name)
}

// remount sets the flags of attrs on the mount at path, keeping the ones
// it has that the kernel locks.
func (g *gen) remount(path sysplan.Arg, attrs uint64) {
	g.step("statfs")
	g.call(unix.SYS_STATFS, path, g.p.StatfsBuffer())
	g.step("remount")
	g.p.MountFlags(unix.MS_REMOUNT | unix.MS_BIND | msFlags(attrs)).Into(slotFlags)
	g.call(unix.SYS_MOUNT, sysplan.V(0), path, sysplan.V(0), slotFlags.FD(), sysplan.V(0))
}

// legacyBind binds src (a path mount(2) follows to the source) on dst,
// recursively, with attrs added to the top mount, through the staging
// directory, or the staging file when the source is not a directory. The
// bind's descriptor is left in into unless into is slotMnt.
func (g *gen) legacyBind(src sysplan.Arg, dst place, attrs uint64, into sysplan.Slot) {
	file, done := g.p.NewLabel(), g.p.NewLabel()
	g.step("bind")
	g.call(unix.SYS_MOUNT, src, g.str(stageDir), sysplan.V(0), sysplan.V(unix.MS_BIND|unix.MS_REC), sysplan.V(0)).OnError(unix.ENOTDIR, file)
	g.remountBelow(stageDir, attrs)
	g.staged(stageDir, dst, attrs, into)
	g.p.Jump(done)
	g.p.Mark(file)
	g.step("bind")
	g.call(unix.SYS_MOUNT, src, g.str(stageFile), sysplan.V(0), sysplan.V(unix.MS_BIND|unix.MS_REC), sysplan.V(0))
	g.staged(stageFile, dst, attrs, into)
	g.p.Mark(done)
}

// remountBelow adds attrs to each submount of the recursive bind on the
// staging point stage, as mount_setattr's AT_RECURSIVE would: a host
// directory bound read-only stays read-only in its submounts
// (TestEscapeSysReadOnly: /sys/fs/cgroup under the host's /sys).
func (g *gen) remountBelow(stage string, attrs uint64) {
	if attrs == 0 {
		return
	}
	info, dir := "/oldroot/proc/self/mountinfo", "/"+stage
	if g.fdPrefix == fdPrefixRoot { // before the first pivot
		info, dir = "/proc/self/mountinfo", base+"/"+stage
	}
	g.step("remount the submounts")
	g.p.RemountBelow(info, dir, unix.MS_REMOUNT|unix.MS_BIND|msFlags(attrs))
}

// staged finishes a mount on the staging point stage: its flags, its
// descriptor in into (unless slotMnt) and its move onto dst. The
// descriptor follows the mount: it refers to its root, wherever the
// mount is attached.
func (g *gen) staged(stage string, dst place, attrs uint64, into sysplan.Slot) {
	if attrs != 0 {
		g.remount(g.str(stage), attrs)
	}
	if into != slotMnt {
		g.step("open ", stage)
		g.openat(atFDCWD, stage, unix.O_PATH, 0, into)
	}
	g.step("move the mount")
	g.call(unix.SYS_MOUNT, g.str(stage), g.fdPath(bufDst, dst), sysplan.V(0), sysplan.V(unix.MS_MOVE), sysplan.V(0))
}

// legacyMountNew is mountNew with mount(2): fstype mounted on the staging
// directory with opts as its data and attrs as flags, then moved onto dst.
// Only the mount itself may fail as fallback says.
func (g *gen) legacyMountNew(dst place, fstype string, opts []option, attrs uint64, fallback *orElse, into sysplan.Slot) {
	source := fstype
	var data []string
	for _, o := range opts {
		switch {
		case o.key == "source":
			source = o.value
		case o.value == "":
			data = append(data, o.key)
		default:
			data = append(data, o.key+"="+o.value)
		}
	}
	dataArg := sysplan.V(0)
	if len(data) > 0 {
		dataArg = g.str(strings.Join(data, ","))
	}
	g.step("mount ", fstype)
	op := g.call(unix.SYS_MOUNT, g.str(source), g.str(stageDir), g.str(fstype), sysplan.V(msFlags(attrs)), dataArg)
	if fallback != nil {
		fallback.on(op, fallback.to)
	}
	g.staged(stageDir, dst, 0, into)
}
