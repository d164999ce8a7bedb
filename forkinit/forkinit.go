// Package forkinit is the sandbox's pid 1 on rbox's fast path: a child
// that the parent clones into the new namespaces and that never execs, so a
// run pays for one Go start-up, not two.
//
// The child shares the parent's memory (CLONE_VM) and runs on a stack of
// its own; Go's runtime cannot run there (no allocation, no stack growth,
// no scheduler). So the parent prepares everything as sysplan Programs —
// the filesystem (fsetup.Plan), host name, loopback, time namespace,
// capability limits, no_new_privs — while the child waits for its id maps,
// and the child only executes them, then starts the payload and serves as
// init with raw system calls: a signalfd for the signals to forward and for
// SIGCHLD, wait4 to reap.
//
// What needs Go inside the sandbox — the port forwarder's agent for
// published ports, overlays and fuse-overlayfs, a terminal, a shared pid
// namespace — and what initproc already guards otherwise (a payload with
// CAP_SYS_PTRACE, a non-root payload with added capabilities) go through
// initproc, the re-executed pid 1 (see Eligible).
//
// The handover: the child blocks on the start pipe until the parent has
// written its id maps; a failure in the child is written to the report
// pipe as (kind, op index, errno), which the parent turns into a message
// naming the step. The seccomp program comes compiled in the Spec (the
// default one is embedded in rbox): Prepare only puts it where the
// payload's seccomp(2) call reads it.
package forkinit

import (
	"encoding/binary"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/caps"
	"github.com/rbox-dev/rbox/fsetup"
	"github.com/rbox-dev/rbox/initproc"
	"github.com/rbox-dev/rbox/network"
	"github.com/rbox-dev/rbox/seccomp"
	"github.com/rbox-dev/rbox/spec"
	"github.com/rbox-dev/rbox/sysplan"
)

// Exit codes, as documented in docs/reference.md.
const (
	exitSetupFailed   = initproc.ExitSetupFailed
	exitCannotExecute = initproc.ExitCannotExecute
	exitNotFound      = initproc.ExitNotFound
)

// Eligible reports whether s can run on the fast path: everything its pid 1
// does can be prepared as system calls in advance.
func Eligible(s *spec.Spec) bool {
	if !sharesMemory {
		return false // see clone_other.go
	}
	if network.NeedsPortAgent(s.Net, s.Publish) {
		return false // the port forwarder's agent runs in Go inside
	}
	if s.RootFS != "" || len(s.Layers) > 0 || s.Overlay != nil {
		return false // overlays and fuse-overlayfs are set up in Go
	}
	if s.TTY || s.Shares(spec.NSPID) {
		return false // the terminal relay and the orphan killer are Go
	}
	for _, c := range s.Caps {
		if c == "CAP_SYS_PTRACE" {
			return false // pid 1 must run from a sealed copy (sandbox/exe.go)
		}
	}
	// A non-root payload keeps added capabilities as ambient ones, which
	// initproc's exec sets up.
	return s.UID == 0 && s.GID == 0 || len(caps.Added(s.Caps)) == 0
}

// Report kinds written on the report pipe.
const (
	reportInit    = 1 // an op of Init.setup failed
	reportPayload = 2 // an op of Init.payload failed
	reportExec    = 3 // no candidate could be executed
)

// Init is pid 1: its programs and the memory they use, which it shares
// with the parent.
type Init struct {
	setup   sysplan.Program // run by pid 1 before the payload starts
	payload sysplan.Program // run by the payload's process before exec

	startR, startW   int // the start pipe: the parent writes, the child reads
	reportR, reportW int // the report pipe: the child writes
	// startClosed and reportClosed are the parent's: it closes its ends
	// without touching the fds above, which pid 1 may read in shared memory.
	startClosed, reportClosed bool

	exe  []uintptr // candidate paths of the command, NUL-terminated
	argv []uintptr // NUL-terminated pointers
	envv []uintptr
	name string

	fprog  unix.SockFprog    // the payload's seccomp program, if any
	filter []unix.SockFilter // its instructions

	// stack and payloadStack are pid 1's and the payload process's
	// stacks (both run in the parent's memory).
	stack, payloadStack []byte

	sigs    uint64 // forwarded signals and SIGCHLD, as a kernel sigset
	oldMask uint64 // the signal mask the payload gets back
	sigbuf  [128]byte
	status  int32
	report  [3]int32
	buf     [1]byte
	// asPID1: the command is pid 1 itself (rbox bwrap --as-pid-1).
	asPID1 bool
	// extraFprogs are Spec.SeccompExtra's programs (rbox bwrap).
	extraFprogs []*unix.SockFprog
}

// New makes a pid 1 to be started with Start: its pipes and stacks.
func New() (*Init, error) {
	in := &Init{stack: make([]byte, childStack), payloadStack: make([]byte, childStack)}
	if err := in.pipes(); err != nil {
		return nil, err
	}
	return in, nil
}

// Prepare fills in what pid 1 runs for s, after Start: pid 1 shares this
// memory and reads it only once Send has let it go on, so the programs are
// built while the id-map helpers run. setgroupsDenied mirrors the id-map
// plan: setgroups(2) fails then. Host paths are looked at now, in this
// mount namespace, which pid 1's is a copy of.
//
// n is the network as the helper (pasta, slirp4netns) leaves it: pid 1
// checks the interface is there and adds what the helper left to the
// inside, and the sandbox gets its own resolv.conf and hosts.
func (in *Init) Prepare(s *spec.Spec, setgroupsDenied bool, n network.ChildConfig) error {
	for _, sig := range append(initproc.Forwarded, unix.SIGCHLD) {
		in.sigs |= 1 << (uint(sig.(unix.Signal)) - 1)
	}
	if f := s.SeccompFilter; f != nil {
		prog, err := seccomp.Program(f.BPF)
		if err != nil {
			return err
		}
		in.filter = prog
		in.fprog = unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	}
	for _, f := range s.SeccompExtra { // rbox bwrap: --add-seccomp-fd more than once
		prog, err := seccomp.Program(f.BPF)
		if err != nil {
			return err
		}
		in.extraFprogs = append(in.extraFprogs, &unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]})
	}
	in.command(s)
	in.asPID1 = s.AsPID1
	if err := in.planSetup(s, setgroupsDenied, n); err != nil {
		return err
	}
	in.planPayload(s, setgroupsDenied)
	return nil
}

// command prepares argv, envp and the paths execvp would try.
func (in *Init) command(s *spec.Spec) {
	p := &in.payload
	for _, a := range s.Argv() {
		in.argv = append(in.argv, p.Str(a))
	}
	in.argv = append(in.argv, 0)
	for _, e := range s.Env {
		in.envv = append(in.envv, p.Str(e))
	}
	in.envv = append(in.envv, 0)
	in.name = s.Args[0]
	if strings.Contains(in.name, "/") {
		in.exe = []uintptr{p.Str(in.name)}
		return
	}
	for _, dir := range filepath.SplitList(s.SearchPath()) {
		if dir == "" {
			dir = "."
		}
		in.exe = append(in.exe, p.Str(filepath.Join(dir, in.name)))
	}
}

// Slots of the setup program beyond fsetup's 0–9.
const (
	slotSock     sysplan.Slot = 10
	slotFile     sysplan.Slot = 11
	slotSignalFD sysplan.Slot = 12
)

// planSetup prepares what pid 1 does before the payload starts, in the
// order initproc does it: identity, host name, loopback, filesystem, then
// the time namespace and keyring the payload inherits.
func (in *Init) planSetup(s *spec.Spec, setgroupsDenied bool, n network.ChildConfig) error {
	p := &in.setup
	// Nothing the parent had open reaches the sandbox but stdio, the
	// preserved fds and the report pipe (close-on-exec: the payload's
	// exec closes it).
	p.Step("close inherited file descriptors")
	from := 3 + s.PreserveFDs
	for _, keep := range []int{min(in.reportW, in.startR), max(in.reportW, in.startR)} {
		if keep > from {
			p.Call(unix.SYS_CLOSE_RANGE, sysplan.V(uintptr(from)), sysplan.V(uintptr(keep-1)), sysplan.V(0))
		}
		if keep >= from {
			from = keep + 1
		}
	}
	p.Call(unix.SYS_CLOSE_RANGE, sysplan.V(uintptr(from)), sysplan.V(^uintptr(0)), sysplan.V(0))
	// ps shows pid 1 as the re-executed init would be shown.
	p.Step("name pid 1")
	p.Call(unix.SYS_PRCTL, sysplan.V(unix.PR_SET_NAME), sysplan.V(p.Str("rbox-init")))
	if !setgroupsDenied {
		// The caller's supplementary groups are unmapped here and would
		// show as nogroup.
		p.Step("setgroups")
		p.Call(unix.SYS_SETGROUPS, sysplan.V(0), sysplan.V(0))
	}
	if !s.Shares(spec.NSUTS) && s.Hostname != "" {
		p.Step("sethostname %s", s.Hostname)
		p.Call(unix.SYS_SETHOSTNAME, sysplan.V(p.Str(s.Hostname)), sysplan.V(uintptr(len(s.Hostname))))
	}
	if !s.Shares(spec.NSNet) {
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
			if err := in.planBlockGateway(n.Gateway); err != nil {
				return err
			}
		}
	}
	cfg := fsetup.ConfigFor(s)
	cfg.Files = fsetup.NetworkFiles(s, n.EtcFiles)
	if err := fsetup.Plan(p, cfg); err != nil {
		return err
	}
	if !s.Shares(spec.NSTime) {
		// The payload, forked next, is the namespace's first member: its
		// offsets can be written only until then.
		p.Step("unshare the time namespace")
		p.Call(unix.SYS_UNSHARE, sysplan.V(unix.CLONE_NEWTIME))
		if o := s.TimeOffsets; o.Monotonic != 0 || o.Boottime != 0 {
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
	// Non-dumpable: the payload cannot open /proc/1/fd or /proc/1/mem of
	// its init.
	p.Step("set non-dumpable")
	p.Call(unix.SYS_PRCTL, sysplan.V(unix.PR_SET_DUMPABLE), sysplan.V(0))
	p.Step("signalfd")
	p.Call(unix.SYS_SIGNALFD4, sysplan.V(^uintptr(0)), sysplan.V(uintptr(unsafe.Pointer(&in.sigs))), sysplan.V(8), sysplan.V(unix.SFD_CLOEXEC)).Into(slotSignalFD)
	p.Finish()
	return nil
}

// netlinkAck is room for rtnetlink's answer to one request: a header, the
// error (0 for success, else a negative errno), then the request echoed.
type netlinkAck struct {
	_     [unix.SizeofNlMsghdr]byte
	errno int32
	_     [1024]byte
}

// planBlockGateway makes the gateway unreachable from inside: pasta, unlike
// slirp4netns, would pass traffic for it on to the host's network (see
// network.ChildConfig.BlockGateway).
func (in *Init) planBlockGateway(gateway string) error {
	gw := net.ParseIP(gateway).To4()
	if gw == nil {
		return fmt.Errorf("configure network: bad gateway %q", gateway)
	}
	p := &in.setup
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

// planPayload prepares what the payload's process does between fork and
// exec: its own session, its identity, and the limits it runs under, the
// seccomp filter last.
func (in *Init) planPayload(s *spec.Spec, setgroupsDenied bool) {
	p := &in.payload
	if !s.KeepSession { // KeepSession: bwrap without --new-session
		p.Step("setsid")
		p.Call(unix.SYS_SETSID)
	}
	p.Step("limit capabilities")
	keep := map[uintptr]bool{}
	for _, c := range caps.Numbers(s.Caps) {
		keep[c] = true
	}
	last := caps.Last()
	for c := uintptr(0); c <= uintptr(last); c++ {
		if !keep[c] {
			p.Call(unix.SYS_PRCTL, sysplan.V(unix.PR_CAPBSET_DROP), sysplan.V(c))
		}
	}
	// Root's capabilities after exec are its bounding set plus its
	// inheritable set: the inheritable set must be empty. The child of a
	// user namespace's creation holds every capability in it.
	hdr := &unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := new([2]unix.CapUserData)
	for c := 0; c <= last; c++ {
		data[c/32].Effective |= 1 << (c % 32)
		data[c/32].Permitted |= 1 << (c % 32)
	}
	p.Call(unix.SYS_CAPSET, sysplan.V(sysplan.Keep(p, hdr)), sysplan.V(sysplan.Keep(p, data)))
	p.Call(unix.SYS_PRCTL, sysplan.V(unix.PR_CAP_AMBIENT), sysplan.V(unix.PR_CAP_AMBIENT_CLEAR_ALL), sysplan.V(0), sysplan.V(0), sysplan.V(0))
	if s.UID != 0 || s.GID != 0 {
		p.Step("become %d:%d", s.UID, s.GID)
		if !setgroupsDenied {
			p.Call(unix.SYS_SETGROUPS, sysplan.V(0), sysplan.V(0))
		}
		p.Call(unix.SYS_SETRESGID, sysplan.V(uintptr(s.GID)), sysplan.V(uintptr(s.GID)), sysplan.V(uintptr(s.GID)))
		p.Call(unix.SYS_SETRESUID, sysplan.V(uintptr(s.UID)), sysplan.V(uintptr(s.UID)), sysplan.V(uintptr(s.UID)))
	}
	p.Step("set no_new_privs")
	p.Call(unix.SYS_PRCTL, sysplan.V(unix.PR_SET_NO_NEW_PRIVS), sysplan.V(1), sysplan.V(0), sysplan.V(0), sysplan.V(0))
	if f := s.SeccompFilter; f != nil {
		p.Step("install the seccomp filter")
		p.Call(unix.SYS_SECCOMP, sysplan.V(unix.SECCOMP_SET_MODE_FILTER), sysplan.V(uintptr(f.Flags)), sysplan.V(uintptr(unsafe.Pointer(&in.fprog))))
	}
	for i, f := range s.SeccompExtra { // rbox bwrap: --add-seccomp-fd more than once
		p.Step("install seccomp program %d", i+2)
		p.Call(unix.SYS_SECCOMP, sysplan.V(unix.SECCOMP_SET_MODE_FILTER), sysplan.V(uintptr(f.Flags)), sysplan.V(uintptr(unsafe.Pointer(in.extraFprogs[i]))))
	}
	p.Finish()
}

// Close releases the parent's ends of the pipes.
func (in *Init) Close() {
	in.closeStart()
	if !in.reportClosed {
		unix.Close(in.reportR)
		in.reportClosed = true
	}
}

func (in *Init) closeStart() {
	if !in.startClosed {
		unix.Close(in.startW)
		in.startClosed = true
	}
}

// Describe turns a report from the child into rbox's message and exit code;
// ok is false when the child reported nothing.
func (in *Init) Describe() (msg string, code int, ok bool) {
	var b [12]byte
	n, _ := unix.Read(in.reportR, b[:])
	if n != len(b) {
		return "", 0, false
	}
	kind := int32(binary.NativeEndian.Uint32(b[0:]))
	at := int(int32(binary.NativeEndian.Uint32(b[4:])))
	errno := syscall.Errno(binary.NativeEndian.Uint32(b[8:]))
	switch kind {
	case reportInit:
		return in.setup.Describe(at, errno).Error(), exitSetupFailed, true
	case reportPayload:
		return in.payload.Describe(at, errno).Error(), exitSetupFailed, true
	}
	code, err := initproc.ExecFailure(in.name, errno)
	return err.Error(), code, true
}
