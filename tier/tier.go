// Package tier decides how strongly a run can be isolated on this host,
// and runs the landlock tier: the command as the caller, under Landlock,
// the default seccomp filter and no_new_privs, without any namespace.
//
// The full tier (package sandbox) needs a user namespace in which the
// sandbox holds capabilities: it mounts. Hosts refuse that in three ways
// that Probe tells apart: clone(CLONE_NEWUSER) fails (a seccomp filter, as
// Docker's default profile or rbox's own; user.max_user_namespaces=0;
// kernel.unprivileged_userns_clone=0); or the namespace is made but holds
// no capability (Ubuntu's kernel.apparmor_restrict_unprivileged_userns=1).
// Where the user namespace works but another namespace or a fresh /proc
// is refused, the run is the degraded tier (degraded.go).
//
// The package knows nothing of the command line.
package tier

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/spec"
)

// Tiers, as --isolation names them.
const (
	Auto     = "auto"
	Full     = "full"
	Landlock = "landlock"
)

// Names lists the values --isolation accepts.
var Names = []string{Auto, Full, Landlock}

// Blocker says why the full tier cannot run here.
type Blocker struct {
	// NoUserNS is true when the kernel refused the user namespace itself.
	NoUserNS bool
	// Otherwise the kernel made a user namespace without capabilities.
	// Err is what the kernel said.
	Err error
}

func (b *Blocker) Error() string {
	if b.NoUserNS {
		return fmt.Sprintf("user namespaces are refused here (clone with CLONE_NEWUSER: %v)%s", b.Err, userNSCause(b.Err))
	}
	return fmt.Sprintf("the user namespace holds no capabilities (a mount in it: %v)%s", b.Err, noCapsCause())
}

// userNSCause names the likely reason a user namespace was refused.
func userNSCause(err error) string {
	if errors.Is(err, unix.ENOSPC) {
		return ": user.max_user_namespaces is 0 or reached"
	}
	if v, _ := readSysctl("kernel/unprivileged_userns_clone"); v == "0" && os.Getuid() != 0 {
		return ": kernel.unprivileged_userns_clone is 0"
	}
	if SeccompFiltered() {
		return ": a seccomp filter refuses it (a container's default profile, or rbox without --allow-nested)"
	}
	return ""
}

// noCapsCause names the likely reason a user namespace holds no
// capabilities.
func noCapsCause() string {
	if AppArmorRestricts() {
		return ": kernel.apparmor_restrict_unprivileged_userns is 1"
	}
	if SeccompFiltered() {
		return ": a seccomp filter refuses mounting"
	}
	return ""
}

// AppArmorRestricts reports whether Ubuntu's AppArmor restriction of
// unprivileged user namespaces applies to the caller.
func AppArmorRestricts() bool {
	v, _ := readSysctl("kernel/apparmor_restrict_unprivileged_userns")
	return v == "1" && os.Getuid() != 0
}

// SeccompFiltered reports whether this process runs under a seccomp
// filter (a container's profile, a sandbox's).
func SeccompFiltered() bool {
	return procStatus("Seccomp") == "2"
}

// Probe tries what the full tier needs, at the cost of one fork and no
// exec where it all works (see tryNamespaces). A nil Blocker with no
// refusals means the full tier can start; a Blocker that the user
// namespace cannot be made or holds no capabilities; refusals the
// namespaces the host refuses in one that works (the degraded tier). An
// error is a fork that failed for another reason (EAGAIN, ENOMEM), which
// tells nothing about the host.
func Probe() (*Blocker, []Refusal, error) {
	var clone, unshare uintptr
	for _, o := range optionalNamespaces {
		if o.ns != spec.NSTime || hasTimeNS() {
			clone, unshare = clone|o.clone, unshare|o.unshare
		}
	}
	if tryNamespaces(clone, unshare) == nil {
		return nil, nil, nil
	}
	// Which step failed: the clone, the mount work in the namespace, or
	// one of the other namespaces.
	err := tryNamespaces(0, 0)
	if err == nil {
		refused, err := refusedNamespaces()
		return nil, refused, err
	}
	if !isRefusal(err) {
		return nil, nil, fmt.Errorf("probe the user namespace: %w", err)
	}
	attr := &syscall.ProcAttr{Sys: &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWUSER}}
	if _, cloneErr := syscall.ForkExec("/", []string{"rbox-tier-probe"}, attr); !errors.Is(cloneErr, unix.EACCES) {
		return &Blocker{NoUserNS: true, Err: cloneErr}, nil, nil
	}
	return &Blocker{Err: err}, nil, nil
}

// Choice is the tier a run gets.
type Choice struct {
	Tier string
	// Blocker, for the landlock tier chosen by auto, is why.
	Blocker *Blocker
	// Refused, for the degraded tier, is what the host refuses.
	Refused []Refusal
}

// Choose resolves the requested tier (Auto, Full or Landlock) on this
// host, for a run that shares the namespaces in shared anyway. Full fails
// where the full tier cannot run whole; Auto falls to the degraded tier
// where only namespaces beside the user one or a fresh /proc are refused,
// to the landlock tier where the user namespace is, and fails when
// Landlock is missing too.
func Choose(requested string, shared []string) (Choice, error) {
	switch requested {
	case Landlock:
		if abi := ABI(); abi < 1 {
			return Choice{}, fmt.Errorf("the landlock tier needs Landlock, which this kernel does not offer (%s)", ABIProblem())
		}
		return Choice{Tier: Landlock}, nil
	case Full, Auto, "":
	default:
		return Choice{}, fmt.Errorf("unknown isolation %q (use %s)", requested, strings.Join(Names, ", "))
	}
	b, refused, err := assess(Suspect(), shared)
	if err != nil {
		return Choice{}, err
	}
	switch {
	case b == nil && len(refused) == 0:
		return Choice{Tier: Full}, nil
	case b == nil && requested == Full:
		var parts []string
		for _, r := range refused {
			parts = append(parts, r.String())
		}
		return Choice{}, fmt.Errorf("the full tier cannot run whole: %s", strings.Join(parts, "; "))
	case b == nil:
		return Choice{Tier: Degraded, Refused: refused}, nil
	case requested == Full:
		return Choice{}, fmt.Errorf("the full tier cannot run: %v", b)
	}
	if ABI() < 1 {
		return Choice{}, fmt.Errorf("no tier can run: %v, and Landlock is missing (%s)", b, ABIProblem())
	}
	return Choice{Tier: Landlock, Blocker: b}, nil
}

// Assess is what keeps the full tier from running whole here, probing
// whatever the signs say (for rbox check): the Blocker, or the refusals
// that make a run the degraded tier.
func Assess() (*Blocker, []Refusal, error) { return assess(true, nil) }

// assess probes the namespaces when probe is set (see Probe), and looks
// at /proc, for a run that shares the namespaces in shared anyway.
func assess(probe bool, shared []string) (*Blocker, []Refusal, error) {
	var b *Blocker
	var refused []Refusal
	if probe {
		var probed []Refusal
		var err error
		if b, probed, err = Probe(); err != nil {
			return nil, nil, err
		}
		for _, r := range probed {
			if !slices.Contains(shared, r.What) {
				refused = append(refused, r)
			}
		}
	}
	// Not only where the host looks suspect: a container or an outer
	// sandbox without a seccomp filter masks /proc too. A shared pid
	// namespace gets the host's /proc anyway.
	if b == nil && !slices.Contains(shared, spec.NSPID) && ProcCovered() {
		refused = append(refused, Refusal{What: Proc})
	}
	return b, refused, nil
}

// Suspect reports whether this host shows a sign that user namespaces
// may be refused or powerless, or other namespaces refused: a seccomp filter on this process (Docker's
// and containerd's default profiles, a sandbox's), an AppArmor profile
// confining it (docker-default denies mount), or a sysctl that restricts
// them. Probe costs a fork (about a millisecond), so a run probes only
// then; elsewhere the full tier starts and reports its own failure.
func Suspect() bool {
	if SeccompFiltered() || AppArmorRestricts() || AppArmorConfined() {
		return true
	}
	for _, ns := range []string{"user", "mnt", "net", "pid", "ipc", "uts", "cgroup", "time"} {
		if v, _ := readSysctl("user/max_" + ns + "_namespaces"); v == "0" {
			return true
		}
	}
	v, _ := readSysctl("kernel/unprivileged_userns_clone")
	return v == "0" && os.Getuid() != 0
}

// AppArmorConfined reports whether an AppArmor profile confines this
// process.
func AppArmorConfined() bool {
	b, err := os.ReadFile("/proc/self/attr/apparmor/current")
	if err != nil {
		return false
	}
	label := strings.TrimSpace(strings.TrimRight(string(b), "\x00"))
	return label != "" && label != "unconfined"
}

// procSys is where sysctls are read; tests point it elsewhere.
var procSys = "/proc/sys"

// readSysctl reads a sysctl under procSys (key with slashes).
func readSysctl(key string) (string, bool) {
	b, err := os.ReadFile(procSys + "/" + key)
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(b)), true
}

// procStatus returns a field of /proc/self/status.
func procStatus(key string) string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
