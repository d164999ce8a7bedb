// Package hostcheck finds out whether this host can run rbox's sandboxes,
// and how to fix what keeps it from doing so.
//
// Every check tries the real thing: user and other namespaces are created,
// id maps written (by the caller or by newuidmap and newgidmap), /proc and
// overlayfs mounted in a new mount namespace, a tap device made in a new
// network namespace. The probes that need code inside new namespaces run in
// a re-execution of the program under ProbeArg0 (see ProbeMain); they mount
// only in their own mount namespace, on a tmpfs of their own, and are killed
// at their timeout, so a check leaves no process, mount or file behind.
//
// The package knows nothing of the command line: Run returns the results
// and the caller formats them.
package hostcheck

import (
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/imagerun"
	"github.com/rbox-dev/rbox/seccomp"
	"github.com/rbox-dev/rbox/spec"
	"github.com/rbox-dev/rbox/subid"
	"github.com/rbox-dev/rbox/userns"
)

// Result is the outcome of one check.
type Result struct {
	// Name is short and stable, e.g. "user namespace" or "newuidmap".
	Name string `json:"name"`
	// Status is Pass, Warn or Fail.
	Status string `json:"status"`
	// Detail says what the check saw, or what the kernel said.
	Detail string `json:"detail"`
	// Fix says what to do about a warn or fail; empty on pass.
	Fix string `json:"fix"`
}

// Statuses. Fail means rbox's default sandbox cannot run (or not as
// configured, e.g. a broken newuidmap it would use); Warn means it runs
// without something: the caller's full id range, the overlay fallback,
// user-mode networking, cgroup limits, Landlock.
const (
	Pass = "pass"
	Warn = "warn"
	Fail = "fail"
)

// caller is who runs the checks and what the host grants them.
type caller struct {
	uid, gid         int
	name             string
	subUIDs, subGIDs []subid.Range
	subUIDErr        error
	subGIDErr        error
}

func (c *caller) root() bool { return c.uid == 0 }

func currentCaller() *caller {
	c := &caller{uid: os.Getuid(), gid: os.Getgid(), name: strconv.Itoa(os.Getuid())}
	if u, err := user.LookupId(c.name); err == nil {
		c.name = u.Username
	}
	// The same files, and the same lookup by name or number, as the
	// sandbox's own plan.
	c.subUIDs, c.subUIDErr = subid.Lookup(userns.SubUIDPath, c.name, uint32(c.uid))
	c.subGIDs, c.subGIDErr = subid.Lookup(userns.SubGIDPath, c.name, uint32(c.gid))
	return c
}

// check computes one result.
type check func(*caller) Result

// checks is the report, in order.
var checks = []check{
	checkUserNS,
	nsCheck("mount namespace", "mnt", unix.CLONE_NEWNS),
	nsCheck("pid namespace", "pid", unix.CLONE_NEWPID),
	nsCheck("net namespace", "net", unix.CLONE_NEWNET),
	nsCheck("uts namespace", "uts", unix.CLONE_NEWUTS),
	nsCheck("ipc namespace", "ipc", unix.CLONE_NEWIPC),
	nsCheck("cgroup namespace", "cgroup", unix.CLONE_NEWCGROUP),
	checkTimeNS,
	checkUIDMapWrite,
	helperCheck("newuidmap"),
	helperCheck("newgidmap"),
	subIDCheck("uid"),
	subIDCheck("gid"),
	checkFullMap,
	checkProcMount,
	checkOverlay,
	checkDevFuse,
	checkTun,
	toolCheck("slirp4netns", "slirp4netns", "it gives a sandbox user-mode networking"),
	toolCheck("pasta", "passt", "it gives a sandbox user-mode networking"),
	netModeCheck(spec.NetUser),
	netModeCheck(spec.NetPasta),
	netModeCheck(spec.NetSlirp4netns),
	checkNftables,
	toolCheck("fuse-overlayfs", "fuse-overlayfs", "it is the overlay fallback when the kernel refuses overlayfs in a user namespace"),
	checkImageHelper,
	checkSeccompHelper,
	checkCgroupV2,
	checkCgroupDelegation,
	checkLandlock,
	checkMaxUserNamespaces,
	checkUnprivilegedClone,
	checkAppArmorUserns,
	checkSeccomp,
	checkContainer,
	checkKernelAPI,
	checkIsolation,
}

// Run runs every check, probes in parallel, and returns one result per
// item in a fixed order. The program must dispatch ProbeArg0 to ProbeMain,
// as the probes re-execute /proc/self/exe.
func Run() []Result {
	c := currentCaller()
	results := make([]Result, len(checks))
	var wg sync.WaitGroup
	for i, chk := range checks {
		wg.Go(func() { results[i] = chk(c) })
	}
	wg.Wait()
	pointAtBlockers(results)
	return results
}

// blockerNames are the items that explain a namespace probe's failure.
var blockerNames = []string{"user.max_user_namespaces", "kernel.unprivileged_userns_clone", "kernel.apparmor_restrict_unprivileged_userns", "seccomp", "container"}

// probeBased are the checks that fail with the user namespace.
var probeBased = []string{"mount namespace", "pid namespace", "net namespace", "uts namespace", "ipc namespace",
	"cgroup namespace", "time namespace", "uid_map write", "full id map", "/proc mount"}

// pointAtBlockers adds to each failed probe the likely cause: a broken
// user namespace, and the known blockers this host has.
func pointAtBlockers(results []Result) {
	for _, r := range results {
		if r.Name == "user namespace" && r.Status == Fail {
			for i, r := range results {
				if r.Status == Fail && slices.Contains(probeBased, r.Name) {
					results[i].Fix = joinFix("needs a working user namespace (see above)", "or "+r.Fix)
				}
			}
		}
	}
	var found []string
	for _, r := range results {
		for _, b := range blockerNames {
			if r.Name == b && r.Status != Pass {
				found = append(found, b)
			}
		}
	}
	if len(found) == 0 {
		return
	}
	hint := "may be caused by " + strings.Join(found, ", ") + " (see below)"
	for i, r := range results {
		if r.Status == Fail && !slices.Contains(blockerNames, r.Name) {
			if results[i].Fix == "" {
				results[i].Fix = hint
			} else {
				results[i].Fix += "; " + hint
			}
		}
	}
}

func pass(name, detail string) Result { return Result{Name: name, Status: Pass, Detail: detail} }
func warn(name, detail, fix string) Result {
	return Result{Name: name, Status: Warn, Detail: detail, Fix: fix}
}
func fail(name, detail, fix string) Result {
	return Result{Name: name, Status: Fail, Detail: detail, Fix: fix}
}

// checkImageHelper looks for rbox-image, which carries out `rbox image`
// and resolves --image.
func checkImageHelper(*caller) Result {
	const name = "rbox-image"
	p, err := imagerun.HelperPath()
	if err != nil {
		return warn(name, err.Error()+"; rbox image and --image need it", "install rbox-image next to rbox (`just build` makes bin/rbox-image)")
	}
	return pass(name, p)
}

// checkSeccompHelper looks for rbox-seccomp, which compiles the profiles
// given with --seccomp FILE (rbox's default filter is built in).
func checkSeccompHelper(*caller) Result {
	const name = seccomp.HelperName
	p, err := seccomp.HelperPath()
	if err != nil {
		return warn(name, err.Error()+"; --seccomp FILE needs it", "install rbox-seccomp next to rbox (`just build` makes bin/rbox-seccomp)")
	}
	return pass(name, p)
}
