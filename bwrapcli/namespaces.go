package bwrapcli

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/spec"
)

// Caller-given namespaces: --userns, --pidns, --userns2 and
// --userns-block-fd, checked in bwrap's order and with its words. What the
// kernel decides when they are entered (is the namespace a descendant of
// the caller's, does the caller own it) is left to setns(2), whose failure
// is reported as bwrap reports it; what can be known before anything starts
// is refused here, before anything starts.

// nsOptions are the descriptors given (-1: none) and --unshare-user's.
type nsOptions struct {
	userns, userns2, pidns, usernsBlock int
	unshareUser, unshareUserTry         bool
	uidGiven, gidGiven                  bool
}

// checkNamespaceOptions refuses what bwrap refuses before it starts, in its order.
func (p *parser) checkNamespaceOptions() error {
	n := &p.ns
	switch {
	case n.usernsBlock != -1 && !n.unshareUser:
		return usagef("--userns-block-fd requires --unshare-user")
	case n.usernsBlock != -1 && p.r.InfoFD == -1:
		return usagef("--userns-block-fd requires --info-fd")
	case n.userns != -1 && n.unshareUser:
		return usagef("--userns not compatible --unshare-user")
	case n.userns != -1 && n.unshareUserTry:
		return usagef("--userns not compatible --unshare-user-try")
	case p.r.Spec.DisableUserns && !n.unshareUser:
		return usagef("--disable-userns requires --unshare-user")
	case p.r.Spec.DisableUserns && n.usernsBlock != -1:
		return usagef("--disable-userns is not compatible with  --userns-block-fd")
	}
	return nil
}

// nsType is the type (CLONE_NEW*) of the namespace open on fd, or the
// errno that asking for it failed with.
func nsType(fd int) (int, error) {
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
		return 0, unix.EBADF
	}
	t, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE)
	if err != nil {
		// Not a namespace: setns(2) says EINVAL.
		return 0, unix.EINVAL
	}
	return t, nil
}

// sameNS reports whether fd is the namespace at path (/proc/self/ns/...).
func sameNS(fd int, path string) bool {
	var a, b unix.Stat_t
	return unix.Fstat(fd, &a) == nil && unix.Stat(path, &b) == nil && a.Dev == b.Dev && a.Ino == b.Ino
}

// applyNamespaces checks the descriptors and puts them in the Spec, with
// the ids the command keeps: those the caller has in a namespace whose
// maps rbox does not write, unless --uid or --gid names another (bwrap
// switches to it with --userns, never with --userns-block-fd).
func (p *parser) applyNamespaces() error {
	n, s, r := &p.ns, p.r.Spec, p.r
	root := os.Getuid() == 0
	if n.userns == 0 && !root {
		// bwrap takes descriptor 0 as "no namespace to enter" but makes
		// no user namespace either; the kernel refuses the rest.
		return usagef("Creating new namespace failed: Operation not permitted")
	}
	if n.userns > 0 {
		t, err := nsType(n.userns)
		switch {
		case err == unix.EBADF:
			return usagef("Joining specified user namespace failed: %s", errText(err))
		case err != nil || t != unix.CLONE_NEWUSER || sameNS(n.userns, "/proc/self/ns/user"):
			return usagef("Joining the specified user namespace failed, it might not be a descendant of the current user namespace.")
		}
		s.JoinUserNS = n.userns
	}
	if n.pidns == 0 {
		// bwrap neither enters descriptor 0 nor makes a pid namespace.
		p.unshare[spec.NSPID] = false
	}
	if n.pidns > 0 {
		t, err := nsType(n.pidns)
		switch {
		case err != nil:
			return usagef("Setting pidns failed: %s", errText(err))
		case t != unix.CLONE_NEWPID:
			return usagef("Setting pidns failed: %s", errText(unix.EINVAL))
		case s.JoinUserNS == 0:
			return noUserns("--pidns", root)
		}
		s.JoinPIDNS = n.pidns
	}
	if n.userns2 > 0 {
		t, err := nsType(n.userns2)
		switch {
		case err != nil:
			return usagef("Setting userns2 failed: %s", errText(err))
		case t != unix.CLONE_NEWUSER || (s.JoinUserNS > 0 && sameNS(n.userns2, "/proc/self/fd/"+strconv.Itoa(s.JoinUserNS))):
			return usagef("Setting userns2 failed: %s", errText(unix.EINVAL))
		case s.JoinUserNS == 0:
			return noUserns("--userns2", root)
		}
		s.SwitchUserNS = n.userns2
	}
	switch {
	case n.usernsBlock != -1:
		r.UsernsBlockFD = n.usernsBlock
		s.KeepUID, s.KeepGID = true, true
	case s.JoinUserNS > 0:
		s.KeepUID = !n.uidGiven || r.UID == uint32(os.Getuid())
		s.KeepGID = !n.gidGiven || r.GID == uint32(os.Getgid())
	}
	return nil
}

// noUserns refuses entering a namespace of the host's from the user
// namespace rbox makes: the kernel says EPERM, as to bwrap run without
// privileges; bwrap run by root stays in the host's user namespace, where
// rbox never runs a sandbox.
func noUserns(option string, root bool) error {
	if root {
		return &Unsupported{option, "rbox always makes a user namespace, also for root, and a namespace of the host's cannot be entered from it: pass --userns"}
	}
	what := map[string]string{"--pidns": "Setting pidns failed", "--userns2": "Setting userns2 failed"}[option]
	return usagef("%s: %s", what, errText(unix.EPERM))
}

// usernsNotDisabled is bwrap's message when --assert-userns-disabled does
// not hold (initplan.UsernsNotDisabled, rbox's pid 1 checking).
const usernsNotDisabled = "creation of new user namespaces was not disabled as requested"
