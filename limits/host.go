package limits

import (
	"bufio"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/spec"
)

// ParentEnv names the environment variable that tells rbox where an
// administrator delegated cgroups to the caller: a path relative to the
// root of each hierarchy (default rbox-USER, see DefaultParent).
const ParentEnv = "RBOX_CGROUP_PARENT"

// v1Controllers are the cgroup v1 controllers rbox uses, each in its own
// hierarchy or co-mounted.
var v1Controllers = []string{"memory", "pids", "cpu"}

// Host is what this machine offers for limits.
type Host struct {
	// V2Mount is where the cgroup2 hierarchy is mounted ("" if nowhere);
	// V2Own is the caller's cgroup in it, from /proc/self/cgroup.
	V2Mount, V2Own string
	// V1 maps each v1 controller rbox uses to its hierarchy's mount point.
	V1 map[string]string
	// Parent is the delegated path relative to each hierarchy's root.
	Parent string
	// Scope is rbox's transient systemd scope, when it asked for one.
	Scope string
	// Root reports whether the caller is root (who may use any cgroup
	// and move any process, but is never given the caller's own).
	Root bool
}

var (
	detectOnce sync.Once
	detected   *Host
)

// Detect looks at this host once per process.
func Detect() *Host {
	detectOnce.Do(func() { detected = detect("/proc/self/mountinfo", selfCgroup) })
	return detected
}

func detect(mountinfo, cgroupFile string) *Host {
	h := &Host{V1: map[string]string{}, Parent: DefaultParent(), Root: os.Geteuid() == 0}
	if f, err := os.Open(mountinfo); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			h.addMount(sc.Text())
		}
		f.Close()
	}
	h.V2Own = ownV2Cgroup(cgroupFile)
	return h
}

// selfCgroup is rbox's own /proc/PID/cgroup (a fake one in unit tests).
var selfCgroup = "/proc/self/cgroup"

// ownV2Cgroup is the cgroup v2 line of a /proc/PID/cgroup file.
func ownV2Cgroup(cgroupFile string) string {
	b, _ := os.ReadFile(cgroupFile)
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return p
		}
	}
	return ""
}

// UseScope readies a cgroup v2 for l's limits (see scope.go): rbox's own
// delegated cgroup, when rbox is alone in it and moves itself into a leaf
// so that controllers can be enabled there; else, when no delegated
// cgroup v2 serves them and a session bus is there, a transient scope from
// the systemd user manager. It changes rbox's own cgroup, so
// only a run calls it, before Choose. A failure is reported and leaves the
// other tiers.
func (h *Host) UseScope(l *spec.Limits) error {
	if len(asked(l)) == 0 || h.V2Mount == "" || h.Scope != "" {
		return nil
	}
	if err := h.freeOwn(l, selfCgroup); err != nil || h.Scope != "" {
		return err
	}
	if d, _ := h.v2Parent(); d != "" || !userBusAddress() {
		return nil
	}
	scope, err := h.requestScope(selfCgroup)
	if err != nil {
		return err
	}
	h.Scope = scope
	return nil
}

// DefaultParent is $RBOX_CGROUP_PARENT, else rbox-USER (the caller's
// name).
func DefaultParent() string {
	if p := strings.Trim(os.Getenv(ParentEnv), "/"); p != "" {
		return filepath.Clean(p)
	}
	name := strconv.Itoa(os.Geteuid())
	if u, err := user.LookupId(name); err == nil {
		name = u.Username
	}
	return "rbox-" + name
}

// addMount notes one line of mountinfo if it is a cgroup hierarchy seen
// from its root.
func (h *Host) addMount(line string) {
	pre, post, ok := strings.Cut(line, " - ")
	if !ok {
		return
	}
	f, g := strings.Fields(pre), strings.Fields(post)
	if len(f) < 5 || len(g) < 3 || f[3] != "/" {
		return
	}
	switch g[0] {
	case "cgroup2":
		if h.V2Mount == "" || f[4] == "/sys/fs/cgroup" {
			h.V2Mount = f[4]
		}
	case "cgroup":
		for _, opt := range strings.Split(g[2], ",") {
			for _, c := range v1Controllers {
				if opt == c && h.V1[c] == "" {
					h.V1[c] = f[4]
				}
			}
		}
	}
}

// ownedDir reports whether dir is a cgroup the caller may create children
// in and move processes into.
func ownedDir(dir string) bool {
	for _, p := range []string{dir, filepath.Join(dir, "cgroup.procs")} {
		if unix.Faccessat(unix.AT_FDCWD, p, unix.W_OK, unix.AT_EACCESS) != nil {
			return false
		}
	}
	return true
}

// v2Parent is the cgroup v2 directory the sandbox's leaf goes in, or ""
// and why there is none. A caller other than root uses its own cgroup when
// it was delegated to it (a systemd scope or service with Delegate=yes, a
// CI job's cgroup), else the delegated Parent when it already runs inside
// it (the kernel moves a process only within a subtree the mover owns).
// Root uses only the delegated Parent, never a cgroup of its own.
func (h *Host) v2Parent() (string, string) {
	if h.V2Mount == "" {
		return "", "no cgroup v2 hierarchy is mounted"
	}
	if h.Scope != "" {
		return h.Scope, ""
	}
	if !h.Root && h.V2Own != "" && h.V2Own != "/" {
		if own := filepath.Join(h.V2Mount, h.V2Own); ownedDir(own) {
			return own, ""
		}
	}
	d := filepath.Join(h.V2Mount, h.Parent)
	if !ownedDir(d) {
		return "", "neither your cgroup " + h.V2Own + " nor " + d + " is yours"
	}
	if !h.Root && !within(h.V2Own, "/"+h.Parent) {
		return "", d + " is delegated to you but rbox runs outside it (in " + h.V2Own + "), and the kernel moves a process only within a subtree you own"
	}
	return d, ""
}

// v1Parent is the delegated directory of controller c's v1 hierarchy, or
// "" and why there is none.
func (h *Host) v1Parent(c string) (string, string) {
	mp := h.V1[c]
	if mp == "" {
		return "", "no cgroup v1 " + c + " hierarchy"
	}
	d := filepath.Join(mp, h.Parent)
	if !ownedDir(d) {
		return "", d + " is missing or not yours"
	}
	return d, ""
}

func within(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }
