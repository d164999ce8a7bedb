package sysplan

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Ops for kernels without openat2 and the new mount API (before 5.2 and
// 5.6; RHEL 8's 4.18): a walk that resolves a path inside a directory as
// openat2's RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS does, one component at a
// time; the /proc/self/fd/N path of a descriptor, by which mount(2) reaches
// what the walk opened (as runc does); and the mount flags a bind must keep
// when mount(2) remounts it. They run in the executor, like opJump, with no
// call into Go's runtime.

const (
	// opResolve resolves texts[args[1]] inside the directory args[0]
	// and opens it with the flags args[2] (see resolver.resolve).
	opResolve = opStore + 1 + iota
	// opFDPath writes texts[args[2]], the number args[0] and, unless
	// args[3] is 0, "/" and texts[args[3]-1] into path buffer args[1].
	opFDPath
	// opMountFlags returns the MS_* flags of the statfs(2) answer in the
	// Program's buffer that a remount must keep, with args[0] added.
	opMountFlags
	// opRemountBelow remounts every mount below the mount point
	// texts[args[1]] that the mountinfo file texts[args[0]] lists, with
	// args[2] added to the flags each keeps (see RemountBelow).
	opRemountBelow
	// opReadInfo reads the file texts[args[0]] into info, for
	// opRemountBelow.
	opReadInfo
	// opCloseRange is close_range(args[0], args[1], args[2]) done by
	// hand, for a kernel without it (see CloseRange).
	opCloseRange
)

// opLast is the highest pseudo system call number.
const opLast = opCloseRange

const (
	restMax   = 8192 // the path still to walk, with the symlinks spliced in
	linkMax   = 4096 // PATH_MAX
	nameMax   = 255  // NAME_MAX
	maxDepth  = 128  // directories open at once in a walk
	maxLinks  = 40   // symlinks one walk follows, as the kernel's
	fdPathMax = 512  // "/oldroot/proc/self/fd/N/name"

	procSuperMagic = 0x9fa0
	// oPath is O_PATH on every Linux architecture but alpha, parisc and
	// sparc (syscall lacks it).
	oPath = 0x200000

	// PathBuffers is how many path buffers FDPath has.
	PathBuffers = 4
)

// legacyState is the memory the ops above use, allocated with the first
// of them and kept by the Program.
type legacyState struct {
	rest  [restMax]byte
	link  [linkMax]byte
	name  [nameMax + 1]byte
	dot   [2]byte
	fds   [maxDepth]uintptr
	open  uint // fds[:open] are the walk's, for closeWalk
	pos   uint // rest[pos:] is the path still to walk
	links int  // symlinks followed
	st    syscall.Statfs_t
	paths [PathBuffers][fdPathMax]byte
	// info holds a mountinfo file, mpath one of its mount points.
	info    []byte
	infoLen uint
	// dents and rlim are CloseRange's.
	dents []byte
	rlim  [2]uint64
	cr    [5]uintptr
	mpath [linkMax + 1]byte
}

// infoMax bounds the mountinfo file RemountBelow reads (a host with a few
// thousand mounts).
const infoMax = 1 << 20

// pathBuffer is a path buffer as Format shows it.
type pathBuffer int

func (p *Program) legacyMem() *legacyState {
	if p.legacy == nil {
		p.legacy = &legacyState{dot: [2]byte{'.', 0}}
		for i := range p.legacy.paths {
			p.memory = append(p.memory, region{at: uintptr(unsafe.Pointer(&p.legacy.paths[i][0])), obj: pathBuffer(i)})
		}
		p.memory = append(p.memory, region{at: uintptr(unsafe.Pointer(&p.legacy.st)), obj: statfsBuffer{}})
	}
	return p.legacy
}

// statfsBuffer is the statfs buffer as Format shows it.
type statfsBuffer struct{}

// text keeps s for the ops above and returns its index.
func (p *Program) text(s string) uintptr {
	p.texts = append(p.texts, []byte(s))
	return uintptr(len(p.texts) - 1)
}

// Resolve adds an op that opens path (flags, plus O_CLOEXEC) resolved
// inside the directory root as if it were the root, as openat2 with
// RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS does, on a kernel without openat2:
// each component is looked up with readlinkat and opened with
// O_PATH|O_NOFOLLOW relative to the one before; a symlink's target is
// walked in its place (an absolute one from root), ".." goes back to the
// directory the walk came from and never above root, and a symlink of
// procfs that is a magic link (its target absolute or naming an object
// such as "pipe:[N]") fails with ELOOP.
func (p *Program) Resolve(root Arg, path string, flags int) Op {
	p.legacyMem()
	return p.Call(opResolve, root, V(p.text(path)), V(uintptr(flags)))
}

// FDPath adds an op that writes prefix, the number in fd and, when name
// is not empty, "/" and name into path buffer i (below PathBuffers), and
// returns the buffer's address for later ops: /proc/self/fd/N, by which
// mount(2) reaches the file a descriptor holds.
func (p *Program) FDPath(i int, fd Arg, prefix, name string) Arg {
	m := p.legacyMem()
	suffix := uintptr(0)
	if name != "" {
		suffix = p.text(name) + 1
	}
	p.Call(opFDPath, fd, V(uintptr(i%PathBuffers)), V(p.text(prefix)), V(suffix))
	return V(uintptr(unsafe.Pointer(&m.paths[i%PathBuffers][0])))
}

// StatfsBuffer is the address of the buffer MountFlags reads, for a
// statfs(2) op to fill.
func (p *Program) StatfsBuffer() Arg {
	return V(uintptr(unsafe.Pointer(&p.legacyMem().st)))
}

// MountFlags adds an op whose result, for Into, is extra with the flags
// of the last statfs(2) answer in StatfsBuffer that a remount of that
// mount must repeat: read-only, nosuid, nodev, noexec and the atime
// flags. In a user namespace the kernel refuses to clear those of them
// that a more privileged one set (EPERM), so every remount keeps them.
func (p *Program) MountFlags(extra uintptr) Op {
	p.legacyMem()
	return p.Call(opMountFlags, V(extra))
}

// RemountBelow adds an op that remounts (MS_REMOUNT|MS_BIND) each mount
// that mountinfo (this process's /proc/self/mountinfo) lists below the
// mount point dir, with extra added to the flags it keeps (as MountFlags):
// what mount_setattr's AT_RECURSIVE does for a recursive bind's
// submounts, done by path. The paths are in the setup's staging point,
// which nothing else reaches, but below it they go through the bound
// source's directories.
func (p *Program) RemountBelow(mountinfo, dir string, extra uintptr) Op {
	m := p.legacyMem()
	if m.info == nil {
		m.info = make([]byte, infoMax)
	}
	p.Call(opReadInfo, V(p.text(mountinfo)))
	return p.Call(opRemountBelow, V(0), V(p.text(dir+"/")), V(extra))
}

//go:nosplit
func (p *Program) remountBelow(dir, extra uintptr) syscall.Errno {
	m, texts := p.legacy, p.texts
	if m == nil || dir >= uintptr(len(texts)) {
		return syscall.EFAULT
	}
	n := m.infoLen
	prefix := texts[dir]
	for at := uint(0); at < n; {
		// The fifth field of the line at at is its mount point.
		end := at
		for end < n && end < uint(len(m.info)) && m.info[end] != '\n' {
			end++
		}
		f, fields := at, 0
		for f < end && fields < 4 {
			if f < uint(len(m.info)) && m.info[f] == ' ' {
				fields++
			}
			f++
		}
		if m.unescape(f, end) && m.under(prefix) {
			mp := uintptr(unsafe.Pointer(&m.mpath[0]))
			if _, _, e := syscall.RawSyscall6(syscall.SYS_STATFS, mp, uintptr(unsafe.Pointer(&m.st)), 0, 0, 0, 0); e != 0 {
				return e
			}
			flags, _ := p.mountFlags(extra)
			if _, _, e := syscall.RawSyscall6(syscall.SYS_MOUNT, 0, mp, 0, flags, 0, 0); e != 0 {
				return e
			}
		}
		at = end + 1
	}
	return 0
}

// readInfo is opReadInfo: it reads the file texts[path] into info and
// sets infoLen. (One function: a call more would not fit the fast path's
// stack on arm64.)
//
//go:nosplit
func (p *Program) readInfo(text uintptr) syscall.Errno {
	m, texts := p.legacy, p.texts
	if m == nil || text >= uintptr(len(texts)) {
		return syscall.EFAULT
	}
	path := texts[text]
	if len(path) >= len(m.mpath) || len(m.info) == 0 {
		return syscall.ENAMETOOLONG
	}
	for i, c := range path {
		if i < len(m.mpath) {
			m.mpath[i] = c
		}
	}
	m.mpath[uint(len(path))%uint(len(m.mpath))] = 0
	fd, _, e := syscall.RawSyscall6(syscall.SYS_OPENAT, ^uintptr(99), uintptr(unsafe.Pointer(&m.mpath[0])), syscall.O_RDONLY|syscall.O_CLOEXEC, 0, 0, 0)
	if e != 0 {
		return e
	}
	m.infoLen = 0
	for m.infoLen < uint(len(m.info)) {
		r, _, e := syscall.RawSyscall6(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&m.info[m.infoLen])), uintptr(uint(len(m.info))-m.infoLen), 0, 0, 0)
		if e != 0 || r == 0 {
			syscall.RawSyscall6(syscall.SYS_CLOSE, fd, 0, 0, 0, 0, 0)
			return e
		}
		m.infoLen += uint(r)
	}
	syscall.RawSyscall6(syscall.SYS_CLOSE, fd, 0, 0, 0, 0, 0)
	return syscall.E2BIG
}

// unescape copies the mount point that starts at info[from] (up to a
// space or to) into mpath, NUL-terminated, with its octal escapes
// (\040) decoded; false when it does not fit.
//
//go:nosplit
func (m *legacyState) unescape(from, to uint) bool {
	j := uint(0)
	for i := from; i < to && i < uint(len(m.info)); i++ {
		c := m.info[i]
		if c == ' ' {
			break
		}
		if c == '\\' && i+3 < to && i+3 < uint(len(m.info)) {
			c = (m.infoAt(i+1)-'0')<<6 | (m.infoAt(i+2)-'0')<<3 | (m.infoAt(i+3) - '0')
			i += 3
		}
		if j >= linkMax {
			return false
		}
		m.mpath[j] = c
		j++
	}
	m.mpath[j%(linkMax+1)] = 0
	return true
}

// infoAt is byte i of info, 0 out of range.
//
//go:nosplit
func (m *legacyState) infoAt(i uint) byte {
	if i < uint(len(m.info)) {
		return m.info[i]
	}
	return 0
}

// under reports whether the path in mpath starts with prefix (which ends
// in a slash).
//
//go:nosplit
func (m *legacyState) under(prefix []byte) bool {
	for i, c := range prefix {
		if i >= linkMax || m.mpath[i] != c {
			return false
		}
	}
	return true
}

// CloseRange adds ops that close the descriptors first to last (or,
// with flags CLOSE_RANGE_CLOEXEC, mark them close-on-exec), as
// close_range(2) does; on a kernel without it (before 5.9, or before 5.11
// for CLOSE_RANGE_CLOEXEC) the second lists /proc/self/fd and closes (or
// marks) each of them, or where that cannot be opened, every number up to
// the RLIMIT_NOFILE limit.
func (p *Program) CloseRange(first, last uintptr, flags uintptr) {
	m := p.legacyMem()
	if m.dents == nil {
		m.dents = make([]byte, 8192)
	}
	byHand, done := p.NewLabel(), p.NewLabel()
	p.Call(sysCloseRange, V(first), V(last), V(flags)).OnAnyError(byHand)
	p.Jump(done)
	p.Mark(byHand)
	p.Call(opCloseRange, V(first), V(last), V(flags))
	p.Mark(done)
}

const (
	sysCloseRange     = unix.SYS_CLOSE_RANGE
	closeRangeCloexec = 1 << 2 // CLOSE_RANGE_CLOEXEC
	fdCloexec         = 1      // FD_CLOEXEC
	fSetfd            = 2      // F_SETFD
	rlimitNofile      = 7
	maxBruteForce     = 1 << 20
)

// closeRange is opCloseRange: close_range(2) by hand.
//
//go:nosplit
func (p *Program) closeRange(first, last, flags uintptr) syscall.Errno {
	m := p.legacy
	if m == nil || len(m.dents) == 0 {
		return syscall.EFAULT
	}
	// close(fd), or fcntl(fd, F_SETFD, FD_CLOEXEC).
	m.cr = [5]uintptr{first, last, syscall.SYS_CLOSE, 0, 0}
	if flags&closeRangeCloexec != 0 {
		m.cr[2], m.cr[3], m.cr[4] = syscall.SYS_FCNTL, fSetfd, fdCloexec
	}
	return 0
}

// closeListed closes (or marks) the descriptors cr[0] to cr[1] that
// /proc/self/fd lists, with the call cr[2] and arguments cr[3:]; its state
// is in m, for the fast path's small stacks.
//
//go:nosplit
func (m *legacyState) closeListed() syscall.Errno {
	for i, c := range [...]byte{'/', 'p', 'r', 'o', 'c', '/', 's', 'e', 'l', 'f', '/', 'f', 'd', 0} {
		m.mpath[i%len(m.mpath)] = c
	}
	dir, _, e := syscall.RawSyscall6(syscall.SYS_OPENAT, ^uintptr(99), uintptr(unsafe.Pointer(&m.mpath[0])), syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0, 0, 0)
	if e != 0 {
		// No /proc here: every number up to the limit.
		if _, _, e := syscall.RawSyscall6(unix.SYS_PRLIMIT64, 0, rlimitNofile, 0, uintptr(unsafe.Pointer(&m.rlim)), 0, 0); e != 0 {
			return e
		}
		for fd := m.cr[0]; fd < uintptr(m.rlim[0]) && fd < maxBruteForce && fd <= m.cr[1]; fd++ {
			syscall.RawSyscall6(m.cr[2], fd, m.cr[3], m.cr[4], 0, 0, 0)
		}
		return 0
	}
	for {
		n, _, e := syscall.RawSyscall6(unix.SYS_GETDENTS64, dir, uintptr(unsafe.Pointer(unsafe.SliceData(m.dents))), uintptr(len(m.dents)), 0, 0, 0)
		if e != 0 || n == 0 {
			syscall.RawSyscall6(syscall.SYS_CLOSE, dir, 0, 0, 0, 0, 0)
			return e
		}
		// linux_dirent64: ino (8), off (8), reclen (2), type (1), name.
		for at := uint(0); at+19 < uint(n); {
			reclen := uint(m.dentAt(at+16)) | uint(m.dentAt(at+17))<<8
			if reclen < 19 {
				break
			}
			fd := uintptr(0)
			i := at + 19
			for ; i < at+reclen && m.dentAt(i) >= '0' && m.dentAt(i) <= '9'; i++ {
				fd = fd*10 + uintptr(m.dentAt(i)-'0')
			}
			if i > at+19 && fd != dir && fd >= m.cr[0] && fd <= m.cr[1] {
				syscall.RawSyscall6(m.cr[2], fd, m.cr[3], m.cr[4], 0, 0, 0)
			}
			at += reclen
		}
	}
}

// dentAt is byte i of dents, 0 out of range.
//
//go:nosplit
func (m *legacyState) dentAt(i uint) byte {
	if i < uint(len(m.dents)) {
		return m.dents[i]
	}
	return 0
}

// ms_* are mount(2) flags and st_* statfs(2) flags (not every
// architecture's syscall package has the latter).
const (
	msRdonly     = 0x1
	msNosuid     = 0x2
	msNodev      = 0x4
	msNoexec     = 0x8
	msNoatime    = 0x400
	msNodiratime = 0x800
	msRelatime   = 0x200000
	stRelatime   = 0x1000
)

//go:nosplit
func (p *Program) mountFlags(extra uintptr) (uintptr, syscall.Errno) {
	m := p.legacy
	if m == nil {
		return 0, syscall.EFAULT
	}
	f := uintptr(m.st.Flags)
	out := extra | f&(msRdonly|msNosuid|msNodev|msNoexec|msNoatime|msNodiratime)
	if f&stRelatime != 0 {
		out |= msRelatime
	}
	return out, 0
}

//go:nosplit
func (p *Program) fdPath(fd, buf, prefix, suffix uintptr) syscall.Errno {
	m, texts := p.legacy, p.texts
	if m == nil || prefix >= uintptr(len(texts)) || suffix > uintptr(len(texts)) {
		return syscall.EFAULT
	}
	b := &m.paths[buf%PathBuffers]
	i := uint(0)
	for _, c := range texts[prefix] {
		if i >= fdPathMax {
			return syscall.ENAMETOOLONG
		}
		b[i] = c
		i++
	}
	digits := uint(1)
	for v := fd / 10; v != 0; v /= 10 {
		digits++
	}
	for j, v := digits, fd; j > 0; j-- {
		if k := i + j - 1; k < fdPathMax {
			b[k] = byte('0' + v%10)
		}
		v /= 10
	}
	i += digits
	if suffix > 0 {
		if i < fdPathMax {
			b[i] = '/'
		}
		i++
		for _, c := range texts[suffix-1] {
			if i >= fdPathMax {
				return syscall.ENAMETOOLONG
			}
			b[i] = c
			i++
		}
	}
	if i >= fdPathMax {
		return syscall.ENAMETOOLONG
	}
	b[i] = 0
	return 0
}

// at is byte i of the path still to walk, 0 out of range.
//
//go:nosplit
func (m *legacyState) at(i uint) byte {
	if i < restMax {
		return m.rest[i]
	}
	return 0
}

// close closes fd.
//
//go:nosplit
func (m *legacyState) close(fd uintptr) {
	syscall.RawSyscall6(syscall.SYS_CLOSE, fd, 0, 0, 0, 0, 0)
}

// closeWalk closes the walk's directories fds[0] to fds[depth], once
// resolve has returned (a call from it would add a frame to its deep
// stack).
//
//go:nosplit
func (m *legacyState) closeWalk() {
	if m == nil {
		return
	}
	for i := uint(0); i < m.open && i < maxDepth; i++ {
		m.close(m.fds[i])
	}
	m.open = 0
}

// resolve is opResolve (see Resolve): root is the directory, path the
// index of the text, flags the final open's. The directories it opens stay
// in fds[:open] for closeWalk. Its state lives in m, not on the stack: it
// runs on the fast path's small stacks.
//
//go:nosplit
func (p *Program) resolve(root, path, flags uintptr) (uintptr, syscall.Errno) {
	m, texts := p.legacy, p.texts
	if m == nil || path >= uintptr(len(texts)) {
		return 0, syscall.EFAULT
	}
	text := texts[path]
	if len(text) > restMax {
		return 0, syscall.ENAMETOOLONG
	}
	m.pos = restMax - uint(len(text))
	for i, c := range text {
		if j := m.pos + uint(i); j < restMax {
			m.rest[j] = c
		}
	}
	m.links = 0
	dot := uintptr(unsafe.Pointer(&m.dot[0]))
	fd, _, e := syscall.RawSyscall6(syscall.SYS_OPENAT, root, dot, oPath|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	m.fds[0], m.open = fd, 1
	for {
		for m.pos < restMax && m.rest[m.pos] == '/' {
			m.pos++
		}
		cur := m.fds[(m.open-1)%maxDepth]
		if m.pos >= restMax {
			// The path ends at a directory of the walk.
			fd, _, e := syscall.RawSyscall6(syscall.SYS_OPENAT, cur, dot, flags|syscall.O_CLOEXEC, 0, 0, 0)
			return fd, e
		}
		q := m.pos
		for q < restMax && m.rest[q] != '/' {
			q++
		}
		n := q - m.pos
		if n == 1 && m.at(m.pos) == '.' {
			m.pos = q
			continue
		}
		if n == 2 && m.at(m.pos) == '.' && m.at(m.pos+1) == '.' {
			if m.open > 1 {
				m.close(cur)
				m.open--
			}
			m.pos = q
			continue
		}
		if n > nameMax {
			return 0, syscall.ENAMETOOLONG
		}
		for i := uint(0); i < n && i < nameMax; i++ {
			m.name[i] = m.at(m.pos + i)
		}
		m.name[n%(nameMax+1)] = 0
		name := uintptr(unsafe.Pointer(&m.name[0]))
		last := q >= restMax
		ln, _, e := syscall.RawSyscall6(syscall.SYS_READLINKAT, cur, name, uintptr(unsafe.Pointer(&m.link[0])), linkMax, 0, 0)
		switch {
		case e == 0 && !(last && flags&syscall.O_NOFOLLOW != 0):
			// A symlink: its target is walked in its place.
			if _, _, e := syscall.RawSyscall6(syscall.SYS_FSTATFS, cur, uintptr(unsafe.Pointer(&m.st)), 0, 0, 0, 0); e != 0 {
				return 0, e
			}
			if e := m.follow(q, uint(ln), last); e != 0 {
				return 0, e
			}
			if m.link[0] == '/' {
				for ; m.open > 1; m.open-- {
					m.close(m.fds[(m.open-1)%maxDepth])
				}
			}
			continue
		case e == 0, e == syscall.EINVAL:
			// Not a symlink (or one the final open does not follow).
		default:
			return 0, e
		}
		if last {
			fd, _, e := syscall.RawSyscall6(syscall.SYS_OPENAT, cur, name, flags|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0, 0, 0)
			return fd, e
		}
		if m.open >= maxDepth {
			return 0, syscall.ENAMETOOLONG
		}
		fd, _, e := syscall.RawSyscall6(syscall.SYS_OPENAT, cur, name, oPath|syscall.O_DIRECTORY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0, 0, 0)
		if e != 0 {
			return 0, e
		}
		m.fds[m.open%maxDepth] = fd
		m.open++
		m.pos = q
	}
}

// follow puts the target of the symlink just read (ln bytes in link), in
// a directory whose statfs(2) answer is in st, in place of the component
// that ends at q. It makes no call: it runs on resolve's stack.
//
//go:nosplit
func (m *legacyState) follow(q, ln uint, last bool) syscall.Errno {
	m.links++
	if m.links > maxLinks || ln == 0 {
		return syscall.ELOOP
	}
	if ln >= linkMax {
		return syscall.ENAMETOOLONG
	}
	if uint64(m.st.Type) == procSuperMagic && m.magic(ln) {
		return syscall.ELOOP
	}
	need := ln
	if !last {
		need++
	}
	if need > q {
		return syscall.ENAMETOOLONG
	}
	m.pos = q - need
	for i := uint(0); i < ln && i < linkMax; i++ {
		if j := m.pos + i; j < restMax {
			m.rest[j] = m.link[i]
		}
	}
	if !last {
		if j := m.pos + ln; j < restMax {
			m.rest[j] = '/'
		}
	}
	return 0
}

// magic reports whether the symlink target of length n in link, met in
// procfs, is a magic link's: an absolute path (/proc/PID/root, cwd, exe,
// fd/N of a file) or an object's name (pipe:[N], socket:[N],
// anon_inode:..., mnt:[N]). procfs's ordinary symlinks (self, thread-self,
// mounts, net) are relative.
//
//go:nosplit
func (m *legacyState) magic(n uint) bool {
	if m.link[0] == '/' {
		return true
	}
	for i := uint(0); i < n && i < linkMax; i++ {
		if m.link[i] == ':' {
			return true
		}
	}
	return false
}
