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
	// KeepUID and KeepGID leave the id the process has in place of UID
	// or GID (a namespace whose maps rbox did not write).
	KeepUID, KeepGID bool
	// SetgroupsDenied: setgroups(2) fails in the sandbox.
	SetgroupsDenied bool
	// Filters are seccomp programs, installed in order.
	Filters []spec.SeccompFilter
	// Compensation, when set, is entered before the filters.
	Compensation *spec.Compensation
}

// slotLandlock holds the Landlock ruleset's descriptor for a moment: the
// last slot, which no caller of Confine uses.
const slotLandlock sysplan.Slot = sysplan.NumSlots - 1

// Confine adds to p the steps that put the process running it under c:
// its capabilities, identity, no_new_privs, the degraded tier's
// compensation, and the seccomp filters last.
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
	if c.UID != 0 || c.GID != 0 || c.KeepUID || c.KeepGID {
		// A non-root uid loses every capability at exec; what --cap-add
		// granted comes back as ambient. The permitted set must survive
		// setresuid for that (keepcaps). A kept uid may be anyone's.
		var ambient []uintptr
		if c.UID != 0 || c.KeepUID {
			ambient = caps.Numbers(caps.Added(c.Caps))
		}
		keep := c.KeepUID || c.KeepGID
		if keep {
			// A kept id stays; another is switched to, failing in
			// bwrap's words.
			p.Step("keep capabilities")
		} else {
			p.Step("become %d:%d", c.UID, c.GID)
		}
		if len(ambient) > 0 {
			p.Call(unix.SYS_PRCTL, sysplan.V(unix.PR_SET_KEEPCAPS), sysplan.V(1), sysplan.V(0), sysplan.V(0), sysplan.V(0))
		}
		if !c.SetgroupsDenied {
			p.Call(unix.SYS_SETGROUPS, sysplan.V(0), sysplan.V(0))
		}
		if !c.KeepGID {
			if keep {
				p.Step("unable to switch to gid %d", c.GID)
			}
			p.Call(unix.SYS_SETRESGID, sysplan.V(uintptr(c.GID)), sysplan.V(uintptr(c.GID)), sysplan.V(uintptr(c.GID)))
		}
		if !c.KeepUID {
			if keep {
				p.Step("unable to switch to uid %d", c.UID)
			}
			p.Call(unix.SYS_SETRESUID, sysplan.V(uintptr(c.UID)), sysplan.V(uintptr(c.UID)), sysplan.V(uintptr(c.UID)))
		}
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
	if c.Compensation != nil {
		if err := compensate(p, c.Compensation); err != nil {
			return err
		}
	}
	for i, f := range c.Filters {
		var err error
		if i == 0 {
			err = installFilter(p, f, "install the seccomp filter")
		} else {
			err = installFilter(p, f, "install seccomp program %d", i+1)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// installFilter adds the step that loads f, named as p.Step names it.
func installFilter(p *sysplan.Program, f spec.SeccompFilter, format string, a ...any) error {
	prog, err := seccomp.Program(f.BPF)
	if err != nil {
		return err
	}
	fprog := &unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	p.Step(format, a...)
	p.Call(unix.SYS_SECCOMP, sysplan.V(unix.SECCOMP_SET_MODE_FILTER), sysplan.V(uintptr(f.Flags)), sysplan.V(sysplan.Keep(p, fprog)))
	return nil
}

// compensate enters the degraded tier's Landlock domain and loads its
// seccomp program: after no_new_privs, which lets a process without
// CAP_SYS_ADMIN restrict itself, before the other filters, which may refuse
// the calls.
func compensate(p *sysplan.Program, c *spec.Compensation) error {
	if l := c.Landlock; l != nil {
		p.Step("enter the degraded tier's Landlock domain")
		attr := &[3]uint64{l.HandledFS, l.HandledNet, l.Scoped}
		p.Call(unix.SYS_LANDLOCK_CREATE_RULESET, sysplan.V(sysplan.Keep(p, attr)), sysplan.V(uintptr(l.AttrSize)), sysplan.V(0)).Into(slotLandlock)
		p.Call(unix.SYS_LANDLOCK_RESTRICT_SELF, slotLandlock.FD(), sysplan.V(0))
		p.Call(unix.SYS_CLOSE, slotLandlock.FD())
	}
	if c.Filter != nil {
		return installFilter(p, *c.Filter, "install the degraded tier's seccomp program")
	}
	return nil
}
