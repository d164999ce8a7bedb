package tier

// The degraded tier: the full tier's sandbox on a host that lets rbox make
// a user namespace with capabilities but refuses some of the namespaces
// beside it (a container's seccomp profile, user.max_net_namespaces=0) or
// a fresh /proc (a container's masked /proc). The run shares what is
// refused, says so, and its payload enters a Landlock domain that stands
// in for what a shared network or pid namespace opens, where the kernel's
// Landlock ABI can.

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/spec"
)

// Degraded is the tier auto picks where the full tier lacks a namespace or
// a fresh /proc. It is not a value of --isolation.
const Degraded = "degraded"

// Proc is Refusal.What for a fresh /proc the kernel would refuse.
const Proc = "proc"

// Refusal is one part of the full tier that the host refuses.
type Refusal struct {
	// What is a namespace (spec.NSNet, spec.NSPID, ...) or Proc.
	What string
	// Err is what the kernel said, for a namespace.
	Err error
}

func (r Refusal) String() string {
	if r.What == Proc {
		return "no fresh /proc (parts of the /proc rbox runs under are covered, as containers mask them, and the kernel then refuses a new one)"
	}
	return fmt.Sprintf("no %s namespace (%v)", nsWords[r.What], r.Err)
}

// consequence is what a run in the degraded tier gets instead.
func (r Refusal) consequence() string {
	if r.What == Proc {
		return "the enclosing /proc is bound, listing its processes (their memory, environment and descriptors stay out of reach: they are in other user namespaces)"
	}
	return "the host's is shared"
}

// nsWords names the namespaces in messages.
var nsWords = map[string]string{
	spec.NSNet: "network", spec.NSPID: "pid", spec.NSIPC: "IPC", spec.NSUTS: "UTS",
	spec.NSCgroup: "cgroup", spec.NSTime: "time",
}

// optionalNamespaces are the namespaces the full tier makes beside the
// user and mount ones, as a probe asks for them: the time namespace only
// by unshare.
var optionalNamespaces = []struct {
	ns             string
	clone, unshare uintptr
	flag           string
}{
	{spec.NSNet, unix.CLONE_NEWNET, 0, "CLONE_NEWNET"},
	{spec.NSPID, unix.CLONE_NEWPID, 0, "CLONE_NEWPID"},
	{spec.NSIPC, unix.CLONE_NEWIPC, 0, "CLONE_NEWIPC"},
	{spec.NSUTS, unix.CLONE_NEWUTS, 0, "CLONE_NEWUTS"},
	{spec.NSCgroup, unix.CLONE_NEWCGROUP, 0, "CLONE_NEWCGROUP"},
	{spec.NSTime, 0, unix.CLONE_NEWTIME, "CLONE_NEWTIME"},
}

// hasTimeNS reports whether the kernel has time namespaces (5.6 and
// later). Without them the full tier goes without one, so a probe does not
// ask for it: it would fail with EINVAL at every run.
func hasTimeNS() bool {
	_, err := os.Stat("/proc/self/ns/time")
	return err == nil
}

// tryNamespaces forks a child into a new user namespace with the clone
// flags clone, that unshares a mount namespace (and mounts: the Go runtime
// makes / private there) and unshare, then fails to execute "/". EACCES is
// the success; any other error is the step that failed.
func tryNamespaces(clone, unshare uintptr) error {
	attr := &syscall.ProcAttr{Sys: &syscall.SysProcAttr{
		Cloneflags:   unix.CLONE_NEWUSER | clone,
		Unshareflags: unix.CLONE_NEWNS | unshare,
	}}
	_, err := syscall.ForkExec("/", []string{"rbox-tier-probe"}, attr)
	if errors.Is(err, unix.EACCES) {
		return nil
	}
	return err
}

// isRefusal tells a host's refusal (a filter's EPERM, a namespace limit's
// ENOSPC, a kernel without the kind's EINVAL) from a passing failure to
// fork (EAGAIN, ENOMEM), which says nothing about the namespace.
func isRefusal(err error) bool {
	return errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) || errors.Is(err, unix.ENOSPC) ||
		errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EUSERS)
}

// refusedNamespaces asks for each optional namespace alone, in a user
// namespace known to work.
func refusedNamespaces() ([]Refusal, error) {
	var out []Refusal
	for _, o := range optionalNamespaces {
		if o.ns == spec.NSTime && !hasTimeNS() {
			continue
		}
		err := tryNamespaces(o.clone, o.unshare)
		if err == nil || o.ns == spec.NSTime && errors.Is(err, unix.EINVAL) {
			// EINVAL for a time namespace is a kernel before 5.6 (or
			// one that says so): the full tier goes without one.
			continue
		}
		verb := "clone with "
		if o.unshare != 0 {
			verb = "unshare "
		}
		if !isRefusal(err) {
			return nil, fmt.Errorf("probe the %s namespace (%s%s): %w", nsWords[o.ns], verb, o.flag, err)
		}
		out = append(out, Refusal{What: o.ns, Err: fmt.Errorf("%s%s: %w", verb, o.flag, err)})
	}
	return out, nil
}

// mountinfo is the file ProcCovered reads; tests point it elsewhere.
var mountinfo = "/proc/self/mountinfo"

// ProcCovered reports whether something is mounted over a part of /proc:
// the masks of a container, of bubblewrap or of an enclosing rbox. The
// kernel then refuses a fresh /proc in a new user namespace, as it would
// uncover what they hide. binfmt_misc, mounted on an empty directory,
// does not count.
func ProcCovered() bool {
	f, err := os.Open(mountinfo)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		point := fields[4]
		if strings.HasPrefix(point, "/proc/") && point != "/proc/sys/fs/binfmt_misc" {
			return true
		}
	}
	return false
}

// Compensation is what the degraded tier's payload enters for what
// refused lists (nil when nothing calls for it), and what stays
// unenforced.
//
// The user namespace still keeps ptrace, and with it the /proc files that
// need ptrace access (environ, mem, fd...), away from every process
// outside the sandbox: they all live in other user namespaces. What a
// shared network or pid namespace opens, Landlock closes where its ABI
// can (TCP from ABI 4, UDP from ABI 10, abstract unix sockets and signals
// from ABI 6), and a seccomp program the calls Landlock does not see:
// MPTCP sockets and TCP Fast Open, which connect without connect(2), and
// the calls that act on another process by pid with no more than a uid
// check (prlimit, setpriority, the scheduler's and I/O priority's).
func Compensation(refused []Refusal) (*spec.Compensation, []string, error) {
	abi := ABI()
	var missing []string
	d := &spec.LandlockDomain{}
	var gaps filterGaps
	for _, r := range refused {
		switch r.What {
		case spec.NSNet:
			switch {
			case abi >= 10:
				d.HandledNet = ll.AccessNetBindTCP | ll.AccessNetConnectTCP | ll.AccessNetBindUDP | ll.AccessNetConnectSendUDP
				missing = append(missing, "raw and other non-TCP/UDP sockets reach the host's network")
			case abi >= 4:
				d.HandledNet = ll.AccessNetBindTCP | ll.AccessNetConnectTCP
				missing = append(missing, "UDP and other protocols reach the host's network (Landlock restricts UDP from ABI 10)")
			default:
				missing = append(missing, "the host's network is reachable (Landlock restricts TCP from ABI 4)")
			}
			gaps.net = d.HandledNet != 0
			if abi >= 6 {
				d.Scoped |= ll.ScopeAbstractUnixSocket
			} else {
				missing = append(missing, "the host's abstract unix sockets are reachable (Landlock ABI 6)")
			}
		case spec.NSPID:
			gaps.pid = true
			if abi >= 6 {
				d.Scoped |= ll.ScopeSignal
			} else {
				missing = append(missing, "signals reach the caller's other processes (Landlock ABI 6)")
			}
		case spec.NSIPC:
			missing = append(missing, "the caller's System V IPC objects and POSIX message queues are reachable")
		}
	}
	c := &spec.Compensation{}
	switch {
	case abi < 1:
	case d.Scoped != 0:
		d.AttrSize = 24
	case d.HandledNet != 0:
		d.AttrSize = 16
	}
	if d.AttrSize != 0 {
		c.Landlock = d
	}
	if gaps.net || gaps.pid {
		prog, err := gaps.program()
		if err != nil {
			return nil, nil, err
		}
		c.Filter = &spec.SeccompFilter{BPF: prog}
	}
	if c.Landlock == nil && c.Filter == nil {
		return nil, missing, nil
	}
	return c, missing, nil
}

// DescribeDegraded is the one line rbox prints on stderr for a run in the
// degraded tier.
func DescribeDegraded(c Choice, comp *spec.Compensation, missing []string) string {
	var parts []string
	for _, r := range c.Refused {
		parts = append(parts, r.String()+": "+r.consequence())
	}
	line := "isolation: degraded tier, not full: " + strings.Join(parts, "; ")
	var refuses []string
	if comp != nil && comp.Landlock != nil {
		d := comp.Landlock
		if d.HandledNet&ll.AccessNetConnectSendUDP != 0 {
			refuses = append(refuses, "TCP and UDP bind, connect and send")
		} else if d.HandledNet != 0 {
			refuses = append(refuses, "TCP bind and connect")
		}
		if d.Scoped&ll.ScopeAbstractUnixSocket != 0 {
			refuses = append(refuses, "abstract unix sockets outside it")
		}
		if d.Scoped&ll.ScopeSignal != 0 {
			refuses = append(refuses, "signals outside it")
		}
		line += fmt.Sprintf("; the command enters a Landlock domain (ABI %d) that refuses %s", ABI(), strings.Join(refuses, ", "))
	}
	if comp != nil && comp.Filter != nil {
		line += "; a seccomp program refuses " + gapsOf(c.Refused, comp).text()
	}
	if len(missing) > 0 {
		line += "; not enforced: " + strings.Join(missing, ", ")
	}
	return line + " (see docs/tiers.md)"
}
