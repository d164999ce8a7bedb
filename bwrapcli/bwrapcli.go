// Package bwrapcli reads bubblewrap's command line (bwrap(1), version 0.11)
// into a sandbox Spec, plus what the parent must do around the run that
// the Spec does not carry: descriptors to report on, wait for or keep.
//
// The options are read in order, as bwrap reads them: the filesystem
// options become the Spec's Mounts in that order, --perms and --size apply
// to the next one, --args FD splices NUL-separated arguments in where it
// stands. What bwrap reads from descriptors (--file, --bind-data,
// --seccomp, --args) is read here, before anything starts.
//
// rbox's own additions come only through options bwrap does not have, all
// spelt --rbox-*, so that a bwrap command line keeps its meaning.
package bwrapcli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/caps"
	"github.com/rbox-dev/rbox/spec"
)

// Version is the bubblewrap version whose command line is understood.
const Version = "0.11.0"

// Run is one parsed bwrap command line.
type Run struct {
	Spec *spec.Spec

	// UID and GID are the ids inside (the caller's unless --uid/--gid).
	UID, GID uint32
	// MapSubIDs maps the caller's subordinate ranges too (--rbox-map-subids).
	MapSubIDs bool
	// InfoFD and JSONStatusFD are the descriptors to report on, or -1.
	InfoFD, JSONStatusFD int
	// BlockFD is read until it has data before the command starts, or -1.
	BlockFD int
	// SyncFD is kept open for the sandbox's life, or -1.
	SyncFD int
	// UsernsBlockFD is read until it has data, once the sandbox's user
	// namespace exists and before it is used: the caller writes its id
	// maps meanwhile (--userns-block-fd); -1 for none.
	UsernsBlockFD int
	// DieWithParent ends the sandbox when rbox's parent dies.
	DieWithParent bool
	// LevelPrefix puts syslog levels (<3>) before rbox's messages.
	LevelPrefix bool
	// Help and ShowVersion ask for the usage or the version only.
	Help, ShowVersion bool
	// Consumed are the descriptors whose content was read; they are
	// closed, as bwrap closes them.
	Consumed []int
}

// UsageError is a mistake on the command line or a missing source, in
// bwrap's words (capitalised as bwrap writes them): bwrap exits 1 with it.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

func usagef(format string, a ...any) error { return &UsageError{fmt.Sprintf(format, a...)} }

// Unsupported is a bwrap option rbox does not implement.
type Unsupported struct{ Option, Why string }

func (e *Unsupported) Error() string {
	return fmt.Sprintf("%s is not supported by rbox: %s", e.Option, e.Why)
}

// parser is the state of one parse.
type parser struct {
	r                       *Run
	args                    []string
	perms                   int64 // -1: none pending
	size                    int64 // 0: none pending
	overlaySrcs             []string
	unshare                 map[string]bool
	shareNet, all           bool
	hostname                string
	chdir                   string
	clearEnv                bool
	envOps                  [][2]string // {"set"/"unset", "K=V"/"K"}
	newSession              bool
	capAdd, capDrop         []string
	seccomp                 [][]byte
	argsDepth               int
	assertUsernsDisabled    bool
	seccompFD, addSeccompFD bool
	ns                      nsOptions
}

// Parse reads bwrap's argv (without the program name). environ is the
// caller's environment, cwd its working directory.
func Parse(argv, environ []string, cwd string) (*Run, error) {
	p := &parser{
		r: &Run{
			Spec:   &spec.Spec{},
			UID:    uint32(os.Getuid()),
			GID:    uint32(os.Getgid()),
			InfoFD: -1, JSONStatusFD: -1, BlockFD: -1, SyncFD: -1, UsernsBlockFD: -1,
		},
		args:    argv,
		perms:   -1,
		unshare: map[string]bool{},
		ns:      nsOptions{userns: -1, userns2: -1, pidns: -1, usernsBlock: -1},
	}
	cmd, err := p.options()
	if err != nil {
		return nil, err
	}
	r := p.r
	if r.Help || r.ShowVersion {
		return r, nil
	}
	if err := p.checkNamespaceOptions(); err != nil {
		return nil, err
	}
	if len(cmd) == 0 {
		return nil, usagef("No command specified")
	}
	if p.perms >= 0 {
		return nil, usagef("--perms must be followed by an option that creates a file")
	}
	if p.size != 0 {
		return nil, usagef("--size must be followed by --tmpfs")
	}
	if len(p.overlaySrcs) > 0 {
		return nil, usagef("--overlay-src must be followed by another --overlay-src option or one of --overlay, --ro-overlay or --tmp-overlay")
	}
	s := r.Spec
	if err := p.applyNamespaces(); err != nil {
		return nil, err
	}
	if p.assertUsernsDisabled && !s.DisableUserns {
		if s.JoinUserNS == 0 && s.SwitchUserNS == 0 && r.UsernsBlockFD == -1 {
			// A user namespace rbox makes and leaves as it is:
			// nothing can have disabled them.
			return nil, usagef("%s", usernsNotDisabled)
		}
		// The namespace is the caller's: pid 1 checks it.
		s.AssertUsernsDisabled = true
	}
	s.Args = cmd
	s.EmptyRoot = true
	s.BwrapErrors = true
	s.KeepSession = !p.newSession
	if p.all {
		for _, ns := range []string{spec.NSIPC, spec.NSPID, spec.NSNet, spec.NSUTS, spec.NSCgroup} {
			p.unshare[ns] = true
		}
	}
	if p.shareNet {
		p.unshare[spec.NSNet] = false
	}
	for _, ns := range spec.ShareableNamespaces {
		if !p.unshare[ns] {
			s.Share = append(s.Share, ns)
		}
	}
	s.Net = spec.NetHost
	if p.unshare[spec.NSNet] {
		s.Net = spec.NetNone
	}
	if s.AsPID1 && !p.unshare[spec.NSPID] {
		return nil, usagef("Specifying --as-pid-1 requires --unshare-pid")
	}
	if p.hostname != "" {
		if !p.unshare[spec.NSUTS] {
			return nil, usagef("Specifying --hostname requires --unshare-uts")
		}
		s.Hostname = p.hostname
	}
	s.Env = buildEnv(environ, p.clearEnv, p.envOps)
	if p.chdir != "" {
		s.Cwd = p.chdir
	} else {
		// bwrap stays in the caller's directory when the sandbox has it,
		// else goes to $HOME.
		s.Cwd = cwd
		s.CwdFallbacks = []string{"/"}
		if home, ok := lookupEnv(environ, "HOME"); ok && home != "" {
			s.CwdFallbacks = []string{home, "/"}
		}
	}
	s.Env = setEnv(s.Env, "PWD", s.Cwd)
	// bwrap run by root keeps root's capabilities for a command that
	// runs as root inside; anyone else's command gets only --cap-add.
	rootDefault := os.Getuid() == 0 && r.UID == 0
	if s.Caps, err = resolveCaps(p.capAdd, p.capDrop, rootDefault); err != nil {
		return nil, err
	}
	for i, bpf := range p.seccomp {
		if i == 0 {
			s.SeccompFilter = &spec.SeccompFilter{BPF: bpf}
			continue
		}
		s.SeccompExtra = append(s.SeccompExtra, spec.SeccompFilter{BPF: bpf})
	}
	return r, nil
}

// options reads options up to the command, which it returns.
func (p *parser) options() ([]string, error) {
	for len(p.args) > 0 {
		a := p.args[0]
		if a == "--" {
			return p.args[1:], nil
		}
		if !strings.HasPrefix(a, "--") {
			return p.args, nil
		}
		p.args = p.args[1:]
		if err := p.option(a); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// take returns the n arguments of option name.
func (p *parser) take(name string, n int) ([]string, error) {
	if len(p.args) < n {
		switch n {
		case 1:
			return nil, usagef("%s takes an argument", name)
		case 2:
			return nil, usagef("%s takes two arguments", name)
		default:
			return nil, usagef("%s takes %d arguments", name, n)
		}
	}
	out := p.args[:n]
	p.args = p.args[n:]
	for _, v := range out {
		if v == "" && pathOption[name] {
			return nil, usagef("%s: empty path is not valid", name)
		}
	}
	return out, nil
}

// pathOption are the options whose arguments are all paths.
var pathOption = map[string]bool{
	"--bind": true, "--bind-try": true, "--dev-bind": true, "--dev-bind-try": true, "--ro-bind": true,
	"--ro-bind-try": true, "--remount-ro": true, "--proc": true, "--dev": true, "--tmpfs": true,
	"--mqueue": true, "--dir": true, "--overlay-src": true, "--tmp-overlay": true, "--ro-overlay": true,
	"--overlay": true, "--lock-file": true, "--chdir": true,
}

// fdArg reads a descriptor number as bwrap does.
func fdArg(name, v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, usagef("Invalid fd: %s", v)
	}
	return n, nil
}

// idArg reads a uid or gid.
func idArg(what, v string) (uint32, error) {
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return 0, usagef("Invalid %s: %s", what, v)
	}
	return uint32(n), nil
}

// readFD reads all of fd and notes it consumed.
func (p *parser) readFD(fd int) ([]byte, error) {
	f := os.NewFile(uintptr(fd), "fd"+strconv.Itoa(fd))
	if f == nil {
		return nil, usagef("Invalid fd: %d", fd)
	}
	data, err := io.ReadAll(f)
	f.Close()
	if err != nil {
		return nil, usagef("Can't read from fd %d: %s", fd, errText(err))
	}
	p.r.Consumed = append(p.r.Consumed, fd)
	return data, nil
}

// errText is err's errno text as strerror writes it ("No such file or
// directory").
func errText(err error) string {
	var errno unix.Errno
	if errors.As(err, &errno) {
		s := errno.Error()
		return strings.ToUpper(s[:1]) + s[1:]
	}
	return err.Error()
}

// mount appends a filesystem operation, taking the pending --perms and
// --size when allowed.
func (p *parser) mount(m spec.Mount, takesPerms, takesSize bool) {
	if takesPerms && p.perms >= 0 {
		m.Mode, m.HasMode = uint32(p.perms), true
		p.perms = -1
	}
	if takesSize && p.size != 0 {
		m.SizeBytes = p.size
		p.size = 0
	}
	m.Dest = filepath.Clean(m.Dest)
	p.r.Spec.Mounts = append(p.r.Spec.Mounts, m)
}

// bindSource resolves a bind source as bwrap does before it starts: a
// missing one is an error unless try.
func bindSource(src string, try bool) (string, bool, error) {
	abs := src
	if !filepath.IsAbs(abs) {
		if wd, err := os.Getwd(); err == nil {
			abs = filepath.Join(wd, src)
		}
	}
	if _, err := os.Stat(abs); err != nil {
		if try && errors.Is(err, os.ErrNotExist) {
			return "", false, nil
		}
		return "", false, usagef("Can't find source path %s: %s", src, errText(err))
	}
	return abs, true, nil
}

// option reads one option and its arguments.
func (p *parser) option(name string) error {
	if p.perms >= 0 && !permsTaker[name] {
		return usagef("--perms must be followed by an option that creates a file")
	}
	if p.size != 0 && name != "--tmpfs" && name != "--perms" {
		return usagef("--size must be followed by --tmpfs")
	}
	if len(p.overlaySrcs) > 0 && !overlayOption[name] {
		return usagef("--overlay-src must be followed by another --overlay-src option or one of --overlay, --ro-overlay or --tmp-overlay")
	}
	r := p.r
	one := func() (string, error) {
		v, err := p.take(name, 1)
		if err != nil {
			return "", err
		}
		return v[0], nil
	}
	// oneFD is one argument that names a descriptor.
	oneFD := func() (int, error) {
		v, err := one()
		if err != nil {
			return 0, err
		}
		return fdArg(name, v)
	}
	switch name {
	case "--help":
		r.Help = true
	case "--version":
		r.ShowVersion = true
	case "--args":
		fd, err := oneFD()
		if err != nil {
			return err
		}
		if p.argsDepth++; p.argsDepth > 16 {
			return usagef("Exceeded maximum number of nested --args")
		}
		data, err := p.readFD(fd)
		if err != nil {
			return err
		}
		extra := strings.Split(string(data), "\x00")
		if n := len(extra); n > 0 && extra[n-1] == "" {
			extra = extra[:n-1]
		}
		p.args = append(extra, p.args...)
	case "--argv0":
		v, err := one()
		if err != nil {
			return err
		}
		r.Spec.Argv0 = v
	case "--level-prefix":
		r.LevelPrefix = true
	case "--unshare-all":
		p.all = true
	case "--share-net":
		p.shareNet = true
	case "--unshare-user", "--unshare-user-try":
		// rbox always makes a user namespace (unless --userns): it is
		// how an ordinary user gets to build a sandbox, as bwrap when it
		// is not setuid.
		if name == "--unshare-user" {
			p.ns.unshareUser = true
		} else {
			p.ns.unshareUserTry = true
		}
	case "--unshare-ipc":
		p.unshare[spec.NSIPC] = true
	case "--unshare-pid":
		p.unshare[spec.NSPID] = true
	case "--unshare-net":
		p.unshare[spec.NSNet] = true
	case "--unshare-uts":
		p.unshare[spec.NSUTS] = true
	case "--unshare-cgroup", "--unshare-cgroup-try":
		p.unshare[spec.NSCgroup] = true
	case "--userns", "--userns2", "--pidns", "--userns-block-fd":
		fd, err := oneFD()
		if err != nil {
			return err
		}
		*map[string]*int{"--userns": &p.ns.userns, "--userns2": &p.ns.userns2, "--pidns": &p.ns.pidns, "--userns-block-fd": &p.ns.usernsBlock}[name] = fd
	case "--disable-userns":
		r.Spec.DisableUserns = true
	case "--assert-userns-disabled":
		p.assertUsernsDisabled = true
	case "--uid", "--gid":
		v, err := one()
		if err != nil {
			return err
		}
		id, err := idArg(name[2:], v)
		if err != nil {
			return err
		}
		if name == "--uid" {
			r.UID, p.ns.uidGiven = id, true
		} else {
			r.GID, p.ns.gidGiven = id, true
		}
	case "--hostname":
		v, err := one()
		if err != nil {
			return err
		}
		p.hostname = v
	case "--chdir":
		v, err := one()
		if err != nil {
			return err
		}
		p.chdir = v
	case "--clearenv":
		p.clearEnv = true
		p.envOps = nil
	case "--setenv":
		v, err := p.take(name, 2)
		if err != nil {
			return err
		}
		p.envOps = append(p.envOps, [2]string{"set", v[0] + "=" + v[1]})
	case "--unsetenv":
		v, err := one()
		if err != nil {
			return err
		}
		p.envOps = append(p.envOps, [2]string{"unset", v})
	case "--lock-file":
		v, err := one()
		if err != nil {
			return err
		}
		r.Spec.LockFiles = append(r.Spec.LockFiles, v)
	case "--sync-fd", "--block-fd", "--info-fd", "--json-status-fd":
		v, err := one()
		if err != nil {
			return err
		}
		fd, err := fdArg(name, v)
		if err != nil {
			return err
		}
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			return usagef("Invalid fd: %s", v)
		}
		switch name {
		case "--sync-fd":
			r.SyncFD = fd
		case "--block-fd":
			r.BlockFD = fd
		case "--info-fd":
			r.InfoFD = fd
		default:
			r.JSONStatusFD = fd
		}
	case "--perms":
		v, err := one()
		if err != nil {
			return err
		}
		n, err := strconv.ParseUint(v, 8, 32)
		if err != nil || n > 0o7777 {
			return usagef("--perms takes an octal argument")
		}
		p.perms = int64(n)
	case "--size":
		v, err := one()
		if err != nil {
			return err
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return usagef("--size takes a non-zero number of bytes")
		}
		p.size = n
	case "--bind", "--bind-try", "--dev-bind", "--dev-bind-try", "--ro-bind", "--ro-bind-try":
		v, err := p.take(name, 2)
		if err != nil {
			return err
		}
		src, ok, err := bindSource(v[0], strings.HasSuffix(name, "-try"))
		if err != nil || !ok {
			return err
		}
		kind := spec.MountBind
		switch strings.TrimSuffix(name, "-try") {
		case "--dev-bind":
			kind = spec.MountDevBind
		case "--ro-bind":
			kind = spec.MountROBind
		}
		p.mount(spec.Mount{Kind: kind, Source: src, Dest: v[1]}, false, false)
	case "--bind-fd", "--ro-bind-fd":
		v, err := p.take(name, 2)
		if err != nil {
			return err
		}
		fd, err := fdArg(name, v[0])
		if err != nil {
			return err
		}
		// The descriptor's path, as the kernel names it now: the bind is
		// made from that path when the sandbox starts.
		src, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
		if err != nil || !filepath.IsAbs(src) {
			return usagef("Invalid fd: %s", v[0])
		}
		kind := spec.MountBind
		if name == "--ro-bind-fd" {
			kind = spec.MountROBind
		}
		p.mount(spec.Mount{Kind: kind, Source: src, Dest: v[1]}, false, false)
	case "--remount-ro", "--proc", "--dev", "--mqueue":
		v, err := one()
		if err != nil {
			return err
		}
		kind := map[string]spec.MountKind{"--remount-ro": spec.MountRemountRO, "--proc": spec.MountProc, "--dev": spec.MountDev, "--mqueue": spec.MountMqueue}[name]
		p.mount(spec.Mount{Kind: kind, Dest: v}, false, false)
	case "--tmpfs":
		v, err := one()
		if err != nil {
			return err
		}
		p.mount(spec.Mount{Kind: spec.MountTmpfs, Dest: v}, true, true)
	case "--dir":
		v, err := one()
		if err != nil {
			return err
		}
		p.mount(spec.Mount{Kind: spec.MountDir, Dest: v}, true, false)
	case "--file", "--bind-data", "--ro-bind-data":
		v, err := p.take(name, 2)
		if err != nil {
			return err
		}
		fd, err := fdArg(name, v[0])
		if err != nil {
			return err
		}
		data, err := p.readFD(fd)
		if err != nil {
			return err
		}
		kind := map[string]spec.MountKind{"--file": spec.MountFile, "--bind-data": spec.MountBindData, "--ro-bind-data": spec.MountROBindData}[name]
		p.mount(spec.Mount{Kind: kind, Dest: v[1], Data: data}, true, false)
	case "--symlink":
		v, err := p.take(name, 2)
		if err != nil {
			return err
		}
		p.mount(spec.Mount{Kind: spec.MountSymlink, Source: v[0], Dest: v[1]}, false, false)
	case "--chmod":
		v, err := p.take(name, 2)
		if err != nil {
			return err
		}
		n, err := strconv.ParseUint(v[0], 8, 32)
		if err != nil || n > 0o7777 {
			return usagef("--chmod takes an octal argument")
		}
		p.mount(spec.Mount{Kind: spec.MountChmod, Dest: v[1], Mode: uint32(n), HasMode: true}, false, false)
	case "--overlay-src":
		v, err := one()
		if err != nil {
			return err
		}
		src, _, err := bindSource(v, false)
		if err != nil {
			return err
		}
		p.overlaySrcs = append(p.overlaySrcs, src)
	case "--overlay", "--tmp-overlay", "--ro-overlay":
		n := map[string]int{"--overlay": 3, "--tmp-overlay": 1, "--ro-overlay": 1}[name]
		v, err := p.take(name, n)
		if err != nil {
			return err
		}
		m := spec.Mount{Kind: spec.MountOverlay, Dest: v[n-1]}
		// bwrap lists the sources bottom first; the kernel wants the top
		// first.
		for i := len(p.overlaySrcs) - 1; i >= 0; i-- {
			m.Lowers = append(m.Lowers, p.overlaySrcs[i])
		}
		p.overlaySrcs = nil
		switch name {
		case "--overlay":
			if len(m.Lowers) == 0 {
				return usagef("--overlay requires at least one --overlay-src")
			}
			if m.Source, _, err = bindSource(v[0], false); err != nil {
				return err
			}
			if m.Work, _, err = bindSource(v[1], false); err != nil {
				return err
			}
		case "--tmp-overlay":
			if len(m.Lowers) == 0 {
				return usagef("--tmp-overlay requires at least one --overlay-src")
			}
		case "--ro-overlay":
			if len(m.Lowers) < 2 {
				return usagef("--ro-overlay requires at least two --overlay-src")
			}
			m.ReadOnly = true
		}
		p.mount(m, false, false)
	case "--exec-label", "--file-label":
		if _, err := one(); err != nil {
			return err
		}
		// bwrap refuses a label where SELinux is off, rbox everywhere:
		// it sets none.
		if !selinuxEnabled() {
			return usagef("labeling not supported on this system")
		}
		return &Unsupported{name, "rbox sets no SELinux labels"}
	case "--seccomp", "--add-seccomp-fd":
		fd, err := oneFD()
		if err != nil {
			return err
		}
		data, err := p.readFD(fd)
		if err != nil {
			return err
		}
		if len(data) == 0 || len(data)%8 != 0 {
			return usagef("Invalid seccomp data, must be multiple of 8")
		}
		if name == "--seccomp" {
			// Only the last --seccomp counts.
			p.seccomp = append(p.seccomp[:0:0], data)
			p.seccompFD = true
		} else {
			p.seccomp = append(p.seccomp, data)
			p.addSeccompFD = true
		}
		if p.seccompFD && p.addSeccompFD {
			return usagef("--seccomp cannot be combined with --add-seccomp-fd")
		}
	case "--new-session":
		p.newSession = true
	case "--die-with-parent":
		r.DieWithParent = true
	case "--as-pid-1":
		r.Spec.AsPID1 = true
	case "--cap-add", "--cap-drop":
		v, err := one()
		if err != nil {
			return err
		}
		if name == "--cap-add" {
			p.capAdd = append(p.capAdd, v)
		} else {
			p.capDrop = append(p.capDrop, v)
		}
	case "--rbox-map-subids":
		r.MapSubIDs = true
	default:
		return usagef("Unknown option %s", name)
	}
	return nil
}

// permsTaker are the options --perms may precede.
var permsTaker = map[string]bool{
	"--tmpfs": true, "--dir": true, "--file": true, "--bind-data": true, "--ro-bind-data": true, "--size": true,
}

// overlayOption are the options --overlay-src may precede.
var overlayOption = map[string]bool{
	"--overlay-src": true, "--overlay": true, "--tmp-overlay": true, "--ro-overlay": true,
}

// selinuxEnabled reports whether SELinux is active on this host.
func selinuxEnabled() bool {
	_, err := os.Stat("/sys/fs/selinux/enforce")
	return err == nil
}

// resolveCaps is the capability set of the command: none, as bwrap gives
// an unprivileged caller, or all with all, plus --cap-add, less
// --cap-drop.
func resolveCaps(add, drop []string, all bool) ([]string, error) {
	norm := func(list []string) ([]string, error) {
		var out []string
		for _, c := range list {
			if strings.EqualFold(c, "ALL") {
				out = append(out, "ALL")
				continue
			}
			n, err := caps.Normalize(c)
			if err != nil {
				return nil, usagef("Unknown cap: %s", c)
			}
			out = append(out, n)
		}
		return out, nil
	}
	a, err := norm(add)
	if err != nil {
		return nil, err
	}
	d, err := norm(drop)
	if err != nil {
		return nil, err
	}
	if all {
		a = append(a, "ALL")
	}
	out := []string{}
	for _, c := range caps.Resolve(a, []string{"ALL"}) {
		dropped := false
		for _, x := range d {
			if x == "ALL" || x == c {
				dropped = true
			}
		}
		if !dropped {
			out = append(out, c)
		}
	}
	return out, nil
}

// buildEnv applies --clearenv, --setenv and --unsetenv in order to the
// caller's environment.
func buildEnv(environ []string, clear bool, ops [][2]string) []string {
	var env []string
	if !clear {
		env = append(env, environ...)
	}
	for _, op := range ops {
		if op[0] == "set" {
			k, v, _ := strings.Cut(op[1], "=")
			env = setEnv(env, k, v)
		} else {
			env = unsetEnv(env, op[1])
		}
	}
	return env
}

func setEnv(env []string, k, v string) []string {
	env = unsetEnv(env, k)
	return append(env, k+"="+v)
}

func unsetEnv(env []string, k string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if name, _, _ := strings.Cut(kv, "="); name != k {
			out = append(out, kv)
		}
	}
	return out
}

func lookupEnv(env []string, k string) (string, bool) {
	for _, kv := range env {
		if name, v, ok := strings.Cut(kv, "="); ok && name == k {
			return v, true
		}
	}
	return "", false
}
