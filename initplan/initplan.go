// Package initplan is rbox's one planner for the sandbox's pid 1: it turns
// a Spec, and what the parent learned while pid 1 waited (whether
// setgroups(2) is denied, the network the helper left), into the sysplan
// Programs that pid 1 and the payload's process run. It is the only place
// that decides what pid 1 does and in which order: host name, loopback,
// the network's last steps, the filesystem (fsetup.Plan), the time
// namespace, the keyring, non-dumpable; then for the payload the bounding
// set, capabilities, uid/gid, no_new_privs, the seccomp filter, and the
// paths of its command's search.
//
// Two executors run a Plan. forkinit, the fast one, runs every Program
// with raw system calls in a clone that shares the parent's memory;
// initproc, the re-executed rbox, runs the same Programs in-process
// (sysplan.Program.Run) and does the Hooks, the work that needs Go inside
// the sandbox, where the Plan puts them. A Spec whose plan has a Hook can
// only run on initproc (see Hooks).
package initplan

import (
	"encoding/binary"
	"fmt"
	"net"
	"slices"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/contract"
	"github.com/rbox-dev/rbox/fsetup"
	"github.com/rbox-dev/rbox/network"
	"github.com/rbox-dev/rbox/spec"
	"github.com/rbox-dev/rbox/sysplan"
)

// Learned is what the parent knows only once pid 1 exists.
type Learned struct {
	// SetgroupsDenied mirrors the id-map plan: setgroups(2) fails then.
	SetgroupsDenied bool
	// Net is the network as the helper (pasta, slirp4netns) leaves it.
	Net network.ChildConfig
	// ConsoleSocket is pid 1's end of the socket on which it sends the
	// master side of the payload's terminal to the parent (with TTY).
	ConsoleSocket int
}

// Hook is work of pid 1 that needs Go, done by initproc where the Plan
// puts it.
type Hook uint8

const (
	// HookPorts starts rootlesskit's port agent for the published ports
	// pasta does not forward itself (network.NeedsPortAgent): goroutines
	// of pid 1 (ports.StartAgent). Before the filesystem: the agent
	// is set up through the host's /proc.
	HookPorts Hook = iota + 1
	// HookRoot builds a custom root (--rootfs, an image, --overlay) with
	// fsetup.Build: overlays and fuse-overlayfs are mounted by Go code
	// in the middle of the filesystem's setup.
	HookRoot
)

var hookNames = map[Hook]string{HookPorts: "published ports", HookRoot: "custom root"}

func (h Hook) String() string { return hookNames[h] }

// Hooks lists, in the order pid 1 meets them, the Go work s needs inside
// the sandbox; none means both executors can run it. New puts these and
// no others in the plan.
func Hooks(s *spec.Spec) []Hook {
	var hs []Hook
	if !s.Shares(spec.NSNet) && network.NeedsPortAgent(s.Net, s.Publish) {
		hs = append(hs, HookPorts)
	}
	if s.RootFS != "" || len(s.Layers) > 0 || s.Overlay != nil {
		hs = append(hs, HookRoot)
	}
	return hs
}

// Stage is one part of pid 1's setup: a Program, or a Hook.
type Stage struct {
	Program *sysplan.Program
	Hook    Hook
}

// Plan is what pid 1 and the payload's process run.
type Plan struct {
	// Init is pid 1's setup, in order. Every Program is finished.
	Init []Stage
	// Session is what the payload's process does first: a new session
	// (unless KeepSession), with the terminal as its controlling one, and
	// pid 1's death as its own (DieWithParent). initproc, whose payload
	// Go forks, asks for the same with SysProcAttr (Setsid, Pdeathsig,
	// Setctty, Ctty: Terminal).
	Session *sysplan.Program
	// Terminal is the payload's controlling terminal, one of its stdio
	// descriptors, or -1.
	Terminal int
	// Payload is what the payload's process runs before its exec: its
	// rlimits, then the limits it runs under, the seccomp filter last. It
	// holds the command's strings too.
	Payload *sysplan.Program
	// Command is the payload's command.
	Command Command
	// Root is the filesystem's configuration, which HookRoot builds.
	Root *fsetup.Config
}

// Command is what the payload executes.
type Command struct {
	// Name is the command as given (Args[0]), which the search looks
	// for and messages name; Arg0 is the argv[0] it gets (Spec.Argv0
	// when set, else Name).
	Name, Arg0 string
	// Candidates are the paths its search tries, in order: the name
	// itself when it holds a slash, else the name in each directory of
	// the search path (see contract.Search).
	Candidates []string
	// Argv, Envv and Paths are Args, Env and Candidates as
	// NUL-terminated strings in the Payload's memory; Argv and Envv end
	// with a 0.
	Argv, Envv, Paths []uintptr
}

// Slots of pid 1's Programs beyond fsetup's.
const (
	slotSock sysplan.Slot = fsetup.FirstCallerSlot + iota
	slotFile
)

// New makes the Plan for s. It looks at the host's system directories now,
// in this mount namespace, which pid 1's is a copy of.
func New(s *spec.Spec, l Learned) (*Plan, error) {
	pl := &Plan{Payload: new(sysplan.Program), Session: new(sysplan.Program), Terminal: -1}
	pid1 := new(sysplan.Program)
	if err := pl.identityAndNetwork(pid1, s, l); err != nil {
		return nil, err
	}
	hooks := Hooks(s)
	if slices.Contains(hooks, HookPorts) {
		pl.cut(&pid1, HookPorts)
	}
	cfg := fsetup.ConfigFor(s)
	cfg.Files = fsetup.NetworkFiles(s, l.Net.EtcFiles)
	pl.Root = cfg
	if slices.Contains(hooks, HookRoot) {
		pl.cut(&pid1, HookRoot)
	} else if err := fsetup.Plan(pid1, cfg); err != nil {
		return nil, err
	}
	if s.TTY {
		pl.terminal(pid1, s, cfg.TTYGID, l.ConsoleSocket)
	}
	switchUserns(pid1, s)
	pl.session(s)
	pl.payloadInheritance(pid1, s)
	pl.cut(&pid1, 0)
	if err := pl.limits(s, l); err != nil {
		return nil, err
	}
	pl.command(s)
	pl.Payload.Finish()
	return pl, nil
}

// cut ends the Program being built as a Stage, adds a Stage for hook (when
// not 0) and starts a new Program.
func (pl *Plan) cut(p **sysplan.Program, hook Hook) {
	if (*p).Len() > 0 {
		(*p).Finish()
		pl.Init = append(pl.Init, Stage{Program: *p})
		*p = new(sysplan.Program)
	}
	if hook != 0 {
		pl.Init = append(pl.Init, Stage{Hook: hook})
	}
}

// identityAndNetwork: pid 1's name and groups, the host name, loopback and the
// network's last steps.
func (pl *Plan) identityAndNetwork(p *sysplan.Program, s *spec.Spec, l Learned) error {
	// ps shows pid 1 by the name of its main thread; "exe" (from
	// /proc/self/exe) or rbox would say nothing.
	p.Step("name pid 1")
	p.Call(unix.SYS_PRCTL, sysplan.V(unix.PR_SET_NAME), sysplan.V(p.Str(contract.Arg0)))
	if !s.Shares(spec.NSCgroup) {
		// Not at the clone: the parent places pid 1 in the sandbox's
		// cgroups (limits.Box.Attach) between the clone and this step,
		// and a cgroup namespace made now is rooted in them.
		p.Step("unshare the cgroup namespace")
		p.Call(unix.SYS_UNSHARE, sysplan.V(unix.CLONE_NEWCGROUP))
	}
	if s.Shares(spec.NSPID) {
		// Not the init of a pid namespace: the payload's orphans come
		// to pid 1, which reaps them, and when it ends to rbox, which
		// kills them (sandbox/orphans.go).
		p.Step("become a child subreaper")
		p.Call(unix.SYS_PRCTL, sysplan.V(unix.PR_SET_CHILD_SUBREAPER), sysplan.V(1))
	}
	if !l.SetgroupsDenied {
		// The caller's supplementary groups are unmapped here and would
		// show as nogroup.
		p.Step("setgroups")
		p.Call(unix.SYS_SETGROUPS, sysplan.V(0), sysplan.V(0))
	}
	if !s.Shares(spec.NSUTS) && s.Hostname != "" {
		p.Step("sethostname %s", s.Hostname)
		p.Call(unix.SYS_SETHOSTNAME, sysplan.V(p.Str(s.Hostname)), sysplan.V(uintptr(len(s.Hostname))))
	}
	if s.Shares(spec.NSNet) {
		return nil
	}
	n := l.Net
	p.Step("bring lo up")
	ifr := new([unix.IFNAMSIZ + 24]byte)
	copy(ifr[:], "lo")
	binary.NativeEndian.PutUint16(ifr[unix.IFNAMSIZ:], unix.IFF_UP|unix.IFF_LOOPBACK|unix.IFF_RUNNING)
	p.Call(unix.SYS_SOCKET, sysplan.V(unix.AF_INET), sysplan.V(unix.SOCK_DGRAM|unix.SOCK_CLOEXEC), sysplan.V(0)).Into(slotSock)
	p.Call(unix.SYS_IOCTL, slotSock.FD(), sysplan.V(unix.SIOCSIFFLAGS), sysplan.V(sysplan.Keep(p, ifr)))
	if n.Device != "" {
		p.Step("configure network: %s did not create %s", n.Mode, n.Device)
		dev := new([unix.IFNAMSIZ + 24]byte)
		copy(dev[:], n.Device)
		p.Call(unix.SYS_IOCTL, slotSock.FD(), sysplan.V(unix.SIOCGIFINDEX), sysplan.V(sysplan.Keep(p, dev)))
	}
	p.Call(unix.SYS_CLOSE, slotSock.FD())
	if n.BlockGateway && n.Gateway != "" {
		return blockGateway(p, n.Gateway)
	}
	return nil
}

// netlinkAck is room for rtnetlink's answer to one request: a header, the
// error (0 for success, else a negative errno), then the request echoed.
type netlinkAck struct {
	_     [unix.SizeofNlMsghdr]byte
	errno int32
	_     [1024]byte
}

// blockGateway makes the gateway unreachable from inside: pasta, unlike
// slirp4netns, would pass traffic for it on to the host's network (see
// network.ChildConfig.BlockGateway).
func blockGateway(p *sysplan.Program, gateway string) error {
	gw := net.ParseIP(gateway).To4()
	if gw == nil {
		return fmt.Errorf("configure network: bad gateway %q", gateway)
	}
	req := network.UnreachableRouteRequest(gw)
	addr := &unix.RawSockaddrNetlink{Family: unix.AF_NETLINK}
	ack := new(netlinkAck)
	p.Step("configure network: block gateway %s", gateway)
	p.Call(unix.SYS_SOCKET, sysplan.V(unix.AF_NETLINK), sysplan.V(unix.SOCK_RAW|unix.SOCK_CLOEXEC), sysplan.V(unix.NETLINK_ROUTE)).Into(slotSock)
	p.Call(unix.SYS_BIND, slotSock.FD(), sysplan.V(sysplan.Keep(p, addr)), sysplan.V(unix.SizeofSockaddrNetlink))
	p.Call(unix.SYS_SENDTO, slotSock.FD(), sysplan.V(p.Bytes(req)), sysplan.V(uintptr(len(req))), sysplan.V(0), sysplan.V(sysplan.Keep(p, addr)), sysplan.V(unix.SizeofSockaddrNetlink))
	p.Call(unix.SYS_RECVFROM, slotSock.FD(), sysplan.V(sysplan.Keep(p, ack)), sysplan.V(unsafe.Sizeof(*ack)), sysplan.V(0), sysplan.V(0), sysplan.V(0))
	p.FailOnNegative(&ack.errno)
	p.Call(unix.SYS_CLOSE, slotSock.FD())
	return nil
}

// cmsgRights is a control message passing one descriptor (SCM_RIGHTS)
// and the message around it, with one byte of data.
type cmsgRights struct {
	cmsg [64]byte // first: the descriptor in it is 4-byte aligned
	msg  unix.Msghdr
	iov  unix.Iovec
	data [1]byte
}

// terminal: a pseudo-terminal from the sandbox's own devpts (after the
// pivot, so ttyname works inside and nothing done to it reaches the
// caller's), its master sent to the parent over the console socket, its
// slave in place of each of stdio that is a terminal (of all three when
// none is), and bound at /dev/console.
func (pl *Plan) terminal(p *sysplan.Program, s *spec.Spec, ttyGID, socket int) {
	const master, slave, tree = slotSock, slotFile, slotFile + 1
	p.Step("allocate the terminal")
	p.Call(unix.SYS_OPENAT, sysplan.Int(unix.AT_FDCWD), sysplan.V(p.Str("/dev/pts/ptmx")), sysplan.V(unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)).Into(master)
	p.Call(unix.SYS_IOCTL, master.FD(), sysplan.V(unix.TIOCSPTLCK), sysplan.V(sysplan.Keep(p, new(int32))))
	p.Call(unix.SYS_IOCTL, master.FD(), sysplan.V(unix.TIOCGPTPEER), sysplan.V(unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)).Into(slave)
	p.Step("chown the terminal to %d:%d", s.UID, ttyGID)
	p.Call(unix.SYS_FCHOWN, slave.FD(), sysplan.V(uintptr(s.UID)), sysplan.Int(ttyGID))
	p.Step("bind the terminal at /dev/console")
	if s.LegacyMount {
		// mount(2) reaches the terminal through the sandbox's /proc.
		src := p.FDPath(0, slave.FD(), "/proc/self/fd/", "")
		p.Call(unix.SYS_MOUNT, src, sysplan.V(p.Str("/dev/console")), sysplan.V(0), sysplan.V(unix.MS_BIND), sysplan.V(0))
	} else {
		p.Call(unix.SYS_OPEN_TREE, slave.FD(), sysplan.V(p.Str("")), sysplan.V(unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH)).Into(tree)
		p.Call(unix.SYS_MOVE_MOUNT, tree.FD(), sysplan.V(p.Str("")), sysplan.Int(unix.AT_FDCWD), sysplan.V(p.Str("/dev/console")), sysplan.V(unix.MOVE_MOUNT_F_EMPTY_PATH))
		p.Call(unix.SYS_CLOSE, tree.FD())
	}
	p.Step("send the terminal to rbox")
	m := new(cmsgRights)
	rights := unix.UnixRights(0)
	copy(m.cmsg[:], rights)
	m.iov.Base, m.iov.Len = &m.data[0], 1
	m.msg.Iov, m.msg.Iovlen = &m.iov, 1
	m.msg.Control = &m.cmsg[0]
	m.msg.SetControllen(len(rights))
	sysplan.Keep(p, m)
	p.Store(master, (*int32)(unsafe.Pointer(&m.cmsg[unix.CmsgLen(0)])))
	p.Call(unix.SYS_SENDMSG, sysplan.V(uintptr(socket)), sysplan.V(sysplan.Keep(p, &m.msg)), sysplan.V(0))
	p.Call(unix.SYS_CLOSE, sysplan.V(uintptr(socket)))
	p.Call(unix.SYS_CLOSE, master.FD())
	p.Step("make the terminal the command's stdio")
	fds := terminalStdio()
	if len(fds) == 0 {
		fds = []int{0, 1, 2}
	}
	for _, fd := range fds {
		p.Call(unix.SYS_DUP3, slave.FD(), sysplan.V(uintptr(fd)), sysplan.V(0))
	}
	p.Call(unix.SYS_CLOSE, slave.FD())
	pl.Terminal = fds[0]
}

// terminalStdio lists which of fds 0 to 2 are terminals: those the
// payload's terminal takes the place of. Both executors plan with the
// caller's stdio as their own.
var terminalStdio = func() []int {
	var fds []int
	for fd := 0; fd < 3; fd++ {
		if _, err := unix.IoctlGetTermios(fd, unix.TCGETS); err == nil {
			fds = append(fds, fd)
		}
	}
	return fds
}

// Step names of switchUserns: bwrap's words for its failures.
const (
	StepSwitchUserNS  = "Setting userns2 failed"
	UsernsNotDisabled = "creation of new user namespaces was not disabled as requested"
)

// switchUserns: once the filesystem is built, pid 1 enters the user
// namespace the command is to run in (bwrap's --userns2), and, when asked,
// checks there that no user namespace can be made: unshare(2) must fail
// (were it to succeed, pid 1 fails the run anyway). Both need a pid 1
// alone in its thread group: forkinit's (see forkinit.Required).
func switchUserns(p *sysplan.Program, s *spec.Spec) {
	if s.SwitchUserNS > 0 {
		p.Step(StepSwitchUserNS)
		p.Call(unix.SYS_SETNS, sysplan.V(uintptr(s.SwitchUserNS)), sysplan.V(unix.CLONE_NEWUSER))
	}
	if s.AssertUsernsDisabled {
		disabled := p.NewLabel()
		p.Step("check that user namespaces are disabled")
		p.Call(unix.SYS_UNSHARE, sysplan.V(unix.CLONE_NEWUSER)).OnAnyError(disabled)
		p.Step(UsernsNotDisabled)
		// A cell holding -EPERM: the op always fails.
		notDisabled := &[1]int32{-int32(unix.EPERM)}
		sysplan.Keep(p, notDisabled)
		p.FailOnNegative(&notDisabled[0])
		p.Mark(disabled)
	}
}

// session: the payload's own session, and its controlling terminal.
func (pl *Plan) session(s *spec.Spec) {
	p := pl.Session
	if !s.KeepSession {
		p.Step("setsid")
		p.Call(unix.SYS_SETSID)
	}
	if s.DieWithParent {
		// For a shared pid namespace, where pid 1's end ends no other
		// process.
		p.Step("die with pid 1")
		p.Call(unix.SYS_PRCTL, sysplan.V(unix.PR_SET_PDEATHSIG), sysplan.V(uintptr(unix.SIGKILL)))
	}
	if pl.Terminal >= 0 {
		p.Step("take the terminal as the controlling one")
		p.Call(unix.SYS_IOCTL, sysplan.V(uintptr(pl.Terminal)), sysplan.V(unix.TIOCSCTTY), sysplan.V(0))
	}
	p.Finish()
}

// payloadInheritance: what pid 1 sets up for the payload to inherit when
// it is forked, and keeps from it.
func (pl *Plan) payloadInheritance(p *sysplan.Program, s *spec.Spec) {
	if !s.Shares(spec.NSTime) {
		// The payload, forked next, is the namespace's first member: its
		// offsets can be written only until then.
		p.Step("unshare the time namespace")
		op := p.Call(unix.SYS_UNSHARE, sysplan.V(unix.CLONE_NEWTIME))
		o := s.TimeOffsets
		if o.Monotonic == 0 && o.Boottime == 0 {
			// Before Linux 5.6 there is no time namespace (EINVAL):
			// without offsets, one would show the same clocks.
			op.Allow(unix.EINVAL)
		}
		if o.Monotonic != 0 || o.Boottime != 0 {
			text := fmt.Sprintf("monotonic %d 0\nboottime %d 0\n", o.Monotonic, o.Boottime)
			p.Step("set time offsets")
			p.Call(unix.SYS_OPENAT, sysplan.Int(unix.AT_FDCWD), sysplan.V(p.Str("/proc/self/timens_offsets")), sysplan.V(unix.O_WRONLY|unix.O_CLOEXEC)).Into(slotFile)
			p.Call(unix.SYS_WRITE, slotFile.FD(), sysplan.V(p.Str(text)), sysplan.V(uintptr(len(text))))
			p.Call(unix.SYS_CLOSE, slotFile.FD())
		}
	}
	// A fresh anonymous session keyring: keys of the caller's session stay
	// out of reach. ENOSYS means an outer filter (rbox's own, when nested)
	// already keeps keyrings out of reach.
	p.Step("new session keyring")
	p.Call(unix.SYS_KEYCTL, sysplan.V(unix.KEYCTL_JOIN_SESSION_KEYRING), sysplan.V(0)).Allow(unix.ENOSYS)
	// Non-dumpable: the payload cannot open /proc/1/exe, /proc/1/fd or
	// /proc/1/mem of its init.
	p.Step("set non-dumpable")
	p.Call(unix.SYS_PRCTL, sysplan.V(unix.PR_SET_DUMPABLE), sysplan.V(0))
}

// limits: the payload's rlimits, identity and the limits it runs under,
// the seccomp filters last (see Confine).
func (pl *Plan) limits(s *spec.Spec, l Learned) error {
	if s.Limits != nil {
		// Set here, in the payload's process, not on pid 1: its
		// children inherit them.
		for _, r := range s.Limits.Rlimits {
			pl.Payload.Step("set the %s limit", r.Name)
			lim := &unix.Rlimit{Cur: r.Soft, Max: r.Hard}
			pl.Payload.Call(unix.SYS_PRLIMIT64, sysplan.V(0), sysplan.V(uintptr(r.Resource)), sysplan.V(sysplan.Keep(pl.Payload, lim)), sysplan.V(0))
		}
	}
	c := Confinement{Caps: s.Caps, UID: s.UID, GID: s.GID, KeepUID: s.KeepUID, KeepGID: s.KeepGID, SetgroupsDenied: l.SetgroupsDenied, Compensation: s.Compensation}
	if s.SeccompFilter != nil {
		c.Filters = append(c.Filters, *s.SeccompFilter)
	}
	// bwrap's --add-seccomp-fd, given more than once: in order, after.
	c.Filters = append(c.Filters, s.SeccompExtra...)
	return Confine(pl.Payload, c)
}

// command prepares argv, envp and the paths the search tries.
func (pl *Plan) command(s *spec.Spec) {
	p, c := pl.Payload, &pl.Command
	for _, a := range s.Argv() {
		c.Argv = append(c.Argv, p.Str(a))
	}
	c.Argv = append(c.Argv, 0)
	for _, e := range s.Env {
		c.Envv = append(c.Envv, p.Str(e))
	}
	c.Envv = append(c.Envv, 0)
	c.Name, c.Arg0 = s.Args[0], s.Argv()[0]
	c.Candidates = contract.Candidates(c.Name, s.SearchPath())
	for _, path := range c.Candidates {
		c.Paths = append(c.Paths, p.Str(path))
	}
}
