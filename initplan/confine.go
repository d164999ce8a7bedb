package initplan

import (
	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/caps"
	"github.com/rbox-dev/rbox/seccomp"
	"github.com/rbox-dev/rbox/spec"
	"github.com/rbox-dev/rbox/sysplan"
)

// Confinement is what a process of the sandbox runs under: the payload,
// and a command that rbox exec joins to the sandbox (package enter).
type Confinement struct {
	// Caps is the bounding and effective set to keep.
	Caps []string
	// UID and GID are its identity inside.
	UID, GID uint32
	// SetgroupsDenied: setgroups(2) fails in the sandbox.
	SetgroupsDenied bool
	// Filters are seccomp programs, installed in order.
	Filters []spec.SeccompFilter
}

// Confine adds to p the steps that put the process running it under c:
// its capabilities, identity, no_new_privs, and the seccomp filters last.
// They act on the calling thread only.
func Confine(p *sysplan.Program, c Confinement) error {
	p.Step("limit capabilities")
	keep := map[uintptr]bool{}
	for _, n := range caps.Numbers(c.Caps) {
		keep[n] = true
	}
	last := caps.Last()
	for n := uintptr(0); n <= uintptr(last); n++ {
		if !keep[n] {
			p.Call(unix.SYS_PRCTL, sysplan.V(unix.PR_CAPBSET_DROP), sysplan.V(n))
		}
	}
	// Root's capabilities after exec are its bounding set plus its
	// inheritable set: the inheritable set must be empty. The child of a
	// user namespace's creation holds every capability in it.
	hdr := &unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	all := new([2]unix.CapUserData)
	for n := 0; n <= last; n++ {
		all[n/32].Effective |= 1 << (n % 32)
		all[n/32].Permitted |= 1 << (n % 32)
	}
	p.Call(unix.SYS_CAPSET, sysplan.V(sysplan.Keep(p, hdr)), sysplan.V(sysplan.Keep(p, all)))
	p.Call(unix.SYS_PRCTL, sysplan.V(unix.PR_CAP_AMBIENT), sysplan.V(unix.PR_CAP_AMBIENT_CLEAR_ALL), sysplan.V(0), sysplan.V(0), sysplan.V(0))
	if c.UID != 0 || c.GID != 0 {
		// A non-root uid loses every capability at exec; what --cap-add
		// granted comes back as ambient. The permitted set must survive
		// setresuid for that (keepcaps).
		var ambient []uintptr
		if c.UID != 0 {
			ambient = caps.Numbers(caps.Added(c.Caps))
		}
		p.Step("become %d:%d", c.UID, c.GID)
		if len(ambient) > 0 {
			p.Call(unix.SYS_PRCTL, sysplan.V(unix.PR_SET_KEEPCAPS), sysplan.V(1), sysplan.V(0), sysplan.V(0), sysplan.V(0))
		}
		if !c.SetgroupsDenied {
			p.Call(unix.SYS_SETGROUPS, sysplan.V(0), sysplan.V(0))
		}
		p.Call(unix.SYS_SETRESGID, sysplan.V(uintptr(c.GID)), sysplan.V(uintptr(c.GID)), sysplan.V(uintptr(c.GID)))
		p.Call(unix.SYS_SETRESUID, sysplan.V(uintptr(c.UID)), sysplan.V(uintptr(c.UID)), sysplan.V(uintptr(c.UID)))
		if len(ambient) > 0 {
			p.Step("raise ambient capabilities")
			inh := new([2]unix.CapUserData)
			for n := 0; n <= last; n++ {
				inh[n/32].Permitted |= 1 << (n % 32)
			}
			for _, n := range ambient {
				inh[n/32].Inheritable |= 1 << (n % 32)
			}
			p.Call(unix.SYS_CAPSET, sysplan.V(sysplan.Keep(p, hdr)), sysplan.V(sysplan.Keep(p, inh)))
			for _, n := range ambient {
				p.Call(unix.SYS_PRCTL, sysplan.V(unix.PR_CAP_AMBIENT), sysplan.V(unix.PR_CAP_AMBIENT_RAISE), sysplan.V(n), sysplan.V(0), sysplan.V(0))
			}
		}
	}
	p.Step("set no_new_privs")
	p.Call(unix.SYS_PRCTL, sysplan.V(unix.PR_SET_NO_NEW_PRIVS), sysplan.V(1), sysplan.V(0), sysplan.V(0), sysplan.V(0))
	for i, f := range c.Filters {
		prog, err := seccomp.Program(f.BPF)
		if err != nil {
			return err
		}
		fprog := &unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
		if i == 0 {
			p.Step("install the seccomp filter")
		} else {
			p.Step("install seccomp program %d", i+1)
		}
		p.Call(unix.SYS_SECCOMP, sysplan.V(unix.SECCOMP_SET_MODE_FILTER), sysplan.V(uintptr(f.Flags)), sysplan.V(sysplan.Keep(p, fprog)))
	}
	return nil
}
