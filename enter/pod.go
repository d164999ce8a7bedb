package enter

import (
	"fmt"
	"os"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/caps"
	"github.com/rbox-dev/rbox/forkinit"
	"github.com/rbox-dev/rbox/sysplan"
)

// InitRequest starts a new sandbox's pid 1 (the re-executed rbox) inside a
// running sandbox's user and network namespaces (rbox run --net
// sandbox:NAME): the two then share one network, as the containers of a
// podman pod do. Joining the network needs CAP_SYS_ADMIN in the user
// namespace that owns it, so the new sandbox is made in that user
// namespace, whose id maps are already written; its other namespaces
// (mount, pid, uts, ipc, cgroup, and time, which pid 1 makes) are its own.
type InitRequest struct {
	// Target is a pidfd of the running sandbox's command.
	Target int
	// Path, Args: what to execute (rbox, as pid 1).
	Path string
	Args []string
	// Files become descriptors 3, 4, ... of pid 1, in order.
	Files []int
	// Flags are the new namespaces' clone flags.
	Flags uintptr
}

// StartInit starts r's pid 1 and returns its pid, a child of the caller
// (which waits for it as for a child it started). It must be called on a
// locked thread.
func StartInit(r *InitRequest) (int, error) {
	sp, err := forkinit.NewSpawn()
	if err != nil {
		return 0, err
	}
	o := &sp.Outer
	o.Step("join the sandbox's user and network namespaces (setns)")
	o.Call(unix.SYS_SETNS, sysplan.V(uintptr(r.Target)), sysplan.V(unix.CLONE_NEWUSER|unix.CLONE_NEWNET))
	o.Call(unix.SYS_CLOSE, sysplan.V(uintptr(r.Target)))
	o.Finish()
	sp.InnerFlags = r.Flags

	p := &sp.Inner
	p.Step("set the parent-death signal")
	p.Call(unix.SYS_PRCTL, sysplan.V(unix.PR_SET_PDEATHSIG), sysplan.V(uintptr(unix.SIGKILL)))
	// The files to 3, 4, ...: first above every one of them, so that none
	// is overwritten before it is moved.
	high := max(3+len(r.Files), sp.ReportFD()+1)
	for _, fd := range r.Files {
		high = max(high, fd+1)
	}
	p.Step("pass the descriptors")
	for i, fd := range r.Files {
		p.Call(unix.SYS_DUP3, sysplan.V(uintptr(fd)), sysplan.V(uintptr(high+i)), sysplan.V(unix.O_CLOEXEC))
	}
	for i := range r.Files {
		p.Call(unix.SYS_DUP3, sysplan.V(uintptr(high+i)), sysplan.V(uintptr(3+i)), sysplan.V(0))
	}
	p.CloseRange(uintptr(3+len(r.Files)), ^uintptr(0), unix.CLOSE_RANGE_CLOEXEC)
	// Every capability kept across the exec, whatever the caller's id is
	// in that namespace (as the child of a new user namespace keeps them
	// through ambient capabilities in package sandbox).
	p.Step("keep capabilities")
	hdr := &unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := new([2]unix.CapUserData)
	last := caps.Last()
	for c := 0; c <= last; c++ {
		data[c/32].Effective |= 1 << (c % 32)
		data[c/32].Permitted |= 1 << (c % 32)
		data[c/32].Inheritable |= 1 << (c % 32)
	}
	p.Call(unix.SYS_CAPSET, sysplan.V(sysplan.Keep(p, hdr)), sysplan.V(sysplan.Keep(p, data)))
	for c := 0; c <= last; c++ {
		p.Call(unix.SYS_PRCTL, sysplan.V(unix.PR_CAP_AMBIENT), sysplan.V(unix.PR_CAP_AMBIENT_RAISE), sysplan.V(uintptr(c)), sysplan.V(0), sysplan.V(0))
	}
	p.Step("restore the signal mask")
	p.Call(unix.SYS_RT_SIGPROCMASK, sysplan.V(unix.SIG_SETMASK), sysplan.V(sp.OldMask()), sysplan.V(0), sysplan.V(8))
	argv := make([]uintptr, 0, len(r.Args)+1)
	for _, a := range r.Args {
		argv = append(argv, p.Str(a))
	}
	argv = append(argv, 0)
	envv := []uintptr{0}
	sysplan.Keep(p, &argv)
	sysplan.Keep(p, &envv)
	p.Step("execute %s", r.Path)
	p.Call(unix.SYS_EXECVE, sysplan.V(p.Str(r.Path)), sysplan.V(uintptr(unsafe.Pointer(&argv[0]))), sysplan.V(uintptr(unsafe.Pointer(&envv[0]))))
	p.Finish()

	pid, failure, err := sp.Run()
	if err != nil {
		return 0, err
	}
	if failure != nil {
		prog := &sp.Inner
		if failure.Kind == forkinit.SpawnOuterFailed {
			prog = &sp.Outer
		}
		return 0, prog.Describe(failure.At, failure.Errno)
	}
	return pid, nil
}

// Maps reads a process's id maps and whether setgroups is denied in its
// user namespace, as /proc shows them.
func Maps(pid int) (uidMap, gidMap string, setgroupsDenied bool, err error) {
	read := func(f string) (string, error) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, f))
		return string(b), err
	}
	if uidMap, err = read("uid_map"); err != nil {
		return
	}
	if gidMap, err = read("gid_map"); err != nil {
		return
	}
	sg, err := read("setgroups")
	return uidMap, gidMap, strings.TrimSpace(sg) == "deny", err
}
