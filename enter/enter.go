// Package enter starts a command inside a running sandbox (rbox exec): in
// its namespaces, at its root, under its rules — capabilities, uid and gid,
// no_new_privs, seccomp filter, environment — as its own command runs.
//
// Joining a user namespace needs a single-threaded process, which Go code
// never is, so the work is done by forkinit's clone trampoline running two
// sysplan Programs prepared here (see forkinit.Spawn): the outer child
// joins every namespace in one setns(2) call through a pidfd of the
// sandbox's command, user namespace included, and clones the inner child in
// the sandbox's pid namespace; the inner one takes the sandbox's rules and
// executes the command.
//
// The joining processes are out of the sandbox's reach until the command
// executes (the runc CVE-2016-9962 class): they are not dumpable and their
// memory belongs to the host's user namespace, so nothing inside may ptrace
// them or open their /proc/PID/mem, fd, exe or cwd; they carry no host
// descriptor but stdio in (every other one is closed first); joining the
// mount namespace puts their root and working directory at the sandbox's
// root, and the host's is not reachable from there.
package enter

import (
	"fmt"
	"path/filepath"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/contract"
	"github.com/rbox-dev/rbox/forkinit"
	"github.com/rbox-dev/rbox/initplan"
	"github.com/rbox-dev/rbox/spec"
	"github.com/rbox-dev/rbox/sysplan"
)

// Request is one command to start in a sandbox.
type Request struct {
	// Target is a pidfd of the sandbox's command, whose namespaces are
	// joined (the sandbox's pid 1 is out of reach: not dumpable).
	Target int
	// Namespaces are those the sandbox made (spec.NS* names); the others
	// are the host's, which the caller is in already.
	Namespaces []string
	Args       []string
	Env        []string
	Cwd        string
	UID, GID   uint32
	// SetgroupsDenied: setgroups(2) fails in the sandbox.
	SetgroupsDenied bool
	Caps            []string
	// Compensation is the sandbox's degraded-tier confinement, if any.
	Compensation *spec.Compensation
	// SeccompBPF and SeccompFlags are the sandbox's filter, if any.
	SeccompBPF   []byte
	SeccompFlags uint
	// Cgroups are the sandbox's cgroup directories (one per hierarchy):
	// the command is moved into each before it joins anything.
	Cgroups []string
	// Rlimits are the sandbox's rlimits, set on the command's process
	// before it takes the sandbox's rules.
	Rlimits []spec.Rlimit
	// Console, when not -1, is a unix socket on which the command's
	// process sends the master side of a pseudo-terminal it opens in the
	// sandbox's devpts and takes as its controlling terminal.
	Console int
}

// Slots of the programs.
const (
	slotFile   sysplan.Slot = 0
	slotMaster sysplan.Slot = 1
	slotSlave  sysplan.Slot = 2
)

// consoleFD is where the pty's master is put before it is sent: the
// message naming it is written in advance.
const consoleFD = 100

var nsFlags = map[string]uintptr{
	spec.NSMount: unix.CLONE_NEWNS, spec.NSPID: unix.CLONE_NEWPID, spec.NSNet: unix.CLONE_NEWNET,
	spec.NSUTS: unix.CLONE_NEWUTS, spec.NSIPC: unix.CLONE_NEWIPC, spec.NSCgroup: unix.CLONE_NEWCGROUP,
	spec.NSTime: unix.CLONE_NEWTIME,
}

// Start starts r's command and returns its pid, a child of the caller. It
// must be called on a locked thread. The error of a command that could not
// be executed carries rbox's exit code for it (see ExitCode).
func Start(r *Request) (int, error) {
	sp, err := forkinit.NewSpawn()
	if err != nil {
		return 0, err
	}
	if err := planOuter(sp, r); err != nil {
		return 0, err
	}
	name, err := planInner(sp, r)
	if err != nil {
		return 0, err
	}
	pid, failure, err := sp.Run()
	if err != nil {
		return 0, err
	}
	if failure != nil {
		return 0, describe(sp, failure, name)
	}
	return pid, nil
}

// Error is a failure to start the command, with rbox's exit code.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

func describe(sp *forkinit.Spawn, f *forkinit.SpawnFailure, name string) error {
	if f.Kind == forkinit.SpawnOuterFailed {
		return &Error{contract.ExitSetupFailed, sp.Outer.Describe(f.At, f.Errno)}
	}
	d := sp.Inner.Describe(f.At, f.Errno)
	if d.Step == execStep {
		code, err := contract.ExecFailure(name, f.Errno, false)
		return &Error{code, err}
	}
	return &Error{contract.ExitSetupFailed, d}
}

// planOuter: into the sandbox's cgroup, then its namespaces, then nothing
// of the host's open.
func planOuter(sp *forkinit.Spawn, r *Request) error {
	p := &sp.Outer
	p.Step("set non-dumpable")
	p.Call(unix.SYS_PRCTL, sysplan.V(unix.PR_SET_DUMPABLE), sysplan.V(0))
	for _, dir := range r.Cgroups {
		// The sandbox's limits: the joining process enters its cgroups
		// while it still sees the host's cgroup tree ("0" is the writer).
		procs := filepath.Join(dir, "cgroup.procs")
		p.Step("join cgroup %s", dir)
		p.Call(unix.SYS_OPENAT, sysplan.Int(unix.AT_FDCWD), sysplan.V(p.Str(procs)), sysplan.V(unix.O_WRONLY|unix.O_CLOEXEC)).Into(slotFile)
		p.Call(unix.SYS_WRITE, slotFile.FD(), sysplan.V(p.Str("0")), sysplan.V(1))
		p.Call(unix.SYS_CLOSE, slotFile.FD())
	}
	flags := uintptr(unix.CLONE_NEWUSER)
	for _, ns := range r.Namespaces {
		f, ok := nsFlags[ns]
		if !ok {
			return fmt.Errorf("unknown namespace %q", ns)
		}
		flags |= f
	}
	p.Step("join the sandbox's namespaces (setns)")
	p.Call(unix.SYS_SETNS, sysplan.V(uintptr(r.Target)), sysplan.V(flags))
	// Only stdio, the report pipe and the console socket stay open.
	p.Step("close inherited file descriptors")
	keep := []int{sp.ReportFD()}
	if r.Console >= 0 {
		keep = append(keep, r.Console)
	}
	from := 3
	for _, k := range sorted(keep) {
		if k > from {
			p.CloseRange(uintptr(from), uintptr(k-1), 0)
		}
		if k >= from {
			from = k + 1
		}
	}
	p.CloseRange(uintptr(from), ^uintptr(0), 0)
	// The caller's session keyring stays out, as for the sandbox's
	// command (ENOSYS: an outer filter keeps keyrings out of reach).
	p.Step("new session keyring")
	p.Call(unix.SYS_KEYCTL, sysplan.V(unix.KEYCTL_JOIN_SESSION_KEYRING), sysplan.V(0)).Allow(unix.ENOSYS)
	p.Step("chdir %s", r.Cwd)
	p.Call(unix.SYS_CHDIR, sysplan.V(p.Str(r.Cwd)))
	p.Finish()
	return nil
}

func sorted(a []int) []int {
	if len(a) == 2 && a[0] > a[1] {
		a[0], a[1] = a[1], a[0]
	}
	return a
}

// execStep names the execve ops.
const execStep = "execute the command"

// planInner: a session (and terminal) of its own, the sandbox's
// capabilities, identity, no_new_privs and filter, the caller's signal mask,
// then execve along the sandbox's PATH.
func planInner(sp *forkinit.Spawn, r *Request) (string, error) {
	p := &sp.Inner
	// It goes with rbox exec, as a sandbox goes with its rbox.
	p.Step("set the parent-death signal")
	p.Call(unix.SYS_PRCTL, sysplan.V(unix.PR_SET_PDEATHSIG), sysplan.V(uintptr(unix.SIGKILL)))
	p.Step("setsid")
	p.Call(unix.SYS_SETSID)
	if r.Console >= 0 {
		planConsole(p, r.Console)
	}
	// After the console, which puts a descriptor at consoleFD (a low
	// RLIMIT_NOFILE would refuse it); before the filter, which may refuse
	// prlimit.
	for _, r := range r.Rlimits {
		p.Step("set the %s limit", r.Name)
		lim := &unix.Rlimit{Cur: r.Soft, Max: r.Hard}
		p.Call(unix.SYS_PRLIMIT64, sysplan.V(0), sysplan.V(uintptr(r.Resource)), sysplan.V(sysplan.Keep(p, lim)), sysplan.V(0))
	}
	if !r.SetgroupsDenied {
		// The caller's supplementary groups, unmapped inside, go (pid 1
		// dropped its own the same way).
		p.Step("setgroups")
		p.Call(unix.SYS_SETGROUPS, sysplan.V(0), sysplan.V(0))
	}
	// The payload's confinement, by the planner's own steps.
	c := initplan.Confinement{Caps: r.Caps, UID: r.UID, GID: r.GID, SetgroupsDenied: r.SetgroupsDenied, Compensation: r.Compensation}
	if len(r.SeccompBPF) > 0 {
		c.Filters = []spec.SeccompFilter{{BPF: r.SeccompBPF, Flags: r.SeccompFlags}}
	}
	if err := initplan.Confine(p, c); err != nil {
		return "", err
	}
	p.Step("restore the signal mask")
	p.Call(unix.SYS_RT_SIGPROCMASK, sysplan.V(unix.SIG_SETMASK), sysplan.V(sp.OldMask()), sysplan.V(0), sysplan.V(8))
	name := planExec(p, r)
	p.Finish()
	return name, nil
}

// planConsole opens a pseudo-terminal in the sandbox's devpts, sends its
// master on the socket and makes the slave the controlling terminal and
// stdio.
func planConsole(p *sysplan.Program, sock int) {
	p.Step("open a terminal in the sandbox")
	p.Call(unix.SYS_OPENAT, sysplan.Int(unix.AT_FDCWD), sysplan.V(p.Str("/dev/ptmx")), sysplan.V(unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)).Into(slotMaster)
	unlock := new(int32)
	p.Call(unix.SYS_IOCTL, slotMaster.FD(), sysplan.V(unix.TIOCSPTLCK), sysplan.V(sysplan.Keep(p, unlock)))
	p.Call(unix.SYS_IOCTL, slotMaster.FD(), sysplan.V(unix.TIOCGPTPEER), sysplan.V(unix.O_RDWR|unix.O_NOCTTY)).Into(slotSlave)
	p.Call(unix.SYS_DUP3, slotMaster.FD(), sysplan.V(consoleFD), sysplan.V(unix.O_CLOEXEC))
	p.Call(unix.SYS_CLOSE, slotMaster.FD())
	// The message carrying consoleFD, built now.
	oob := unix.UnixRights(consoleFD)
	sysplan.Keep(p, &oob)
	data := new([1]byte)
	data[0] = 'T'
	iov := &unix.Iovec{Base: &data[0]}
	iov.SetLen(1)
	msg := &unix.Msghdr{Iov: iov, Iovlen: 1, Control: &oob[0]}
	msg.SetControllen(len(oob))
	sysplan.Keep(p, data)
	sysplan.Keep(p, iov)
	p.Step("send the terminal")
	p.Call(unix.SYS_SENDMSG, sysplan.V(uintptr(sock)), sysplan.V(sysplan.Keep(p, msg)), sysplan.V(0))
	p.Call(unix.SYS_CLOSE, sysplan.V(consoleFD))
	p.Call(unix.SYS_CLOSE, sysplan.V(uintptr(sock)))
	p.Step("take the terminal")
	p.Call(unix.SYS_IOCTL, slotSlave.FD(), sysplan.V(unix.TIOCSCTTY), sysplan.V(0))
	for fd := uintptr(0); fd < 3; fd++ {
		p.Call(unix.SYS_DUP3, slotSlave.FD(), sysplan.V(fd), sysplan.V(0))
	}
	p.Call(unix.SYS_CLOSE, slotSlave.FD())
}

// planExec adds execve of each candidate path of the command in turn (as
// execvp: a missing file moves on to the next PATH entry; any other error
// stops) and returns the command's name.
func planExec(p *sysplan.Program, r *Request) string {
	argv := make([]uintptr, 0, len(r.Args)+1)
	for _, a := range r.Args {
		argv = append(argv, p.Str(a))
	}
	argv = append(argv, 0)
	envv := make([]uintptr, 0, len(r.Env)+1)
	for _, e := range r.Env {
		envv = append(envv, p.Str(e))
	}
	envv = append(envv, 0)
	sysplan.Keep(p, &argv)
	sysplan.Keep(p, &envv)
	name := r.Args[0]
	var paths []string
	if strings.Contains(name, "/") {
		paths = []string{name}
	} else {
		s := spec.Spec{Env: r.Env}
		for _, dir := range filepath.SplitList(s.SearchPath()) {
			if dir == "" {
				dir = "."
			}
			paths = append(paths, filepath.Join(dir, name))
		}
	}
	p.Step(execStep)
	for i, path := range paths {
		op := p.Call(unix.SYS_EXECVE, sysplan.V(p.Str(path)), sysplan.V(uintptr(unsafe.Pointer(&argv[0]))), sysplan.V(uintptr(unsafe.Pointer(&envv[0]))))
		if i < len(paths)-1 {
			next := p.NewLabel()
			op.OnError(unix.ENOENT, next)
			p.Mark(next)
		}
	}
	return name
}

// ExitCode is rbox's exit code for a wait status of the command.
func ExitCode(ws unix.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}
