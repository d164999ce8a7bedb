// Package caps names Linux capabilities and limits the set a sandboxed
// process can hold.
package caps

import (
	"fmt"
	"sort"
	"strings"

	"github.com/moby/sys/capability"
	"golang.org/x/sys/unix"
)

// Default is what root inside the sandbox keeps: podman's default set,
// enough to install packages and run builds as root, without CAP_SYS_ADMIN,
// CAP_NET_RAW, CAP_MKNOD or CAP_SYS_PTRACE.
var Default = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_NET_BIND_SERVICE", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP",
	"CAP_SETUID", "CAP_SYS_CHROOT",
}

// byName maps "CAP_CHOWN" to its capability, for every capability the
// running kernel knows.
func byName() map[string]capability.Cap {
	list, err := capability.ListSupported()
	if err != nil {
		list = capability.ListKnown()
	}
	m := map[string]capability.Cap{}
	for _, c := range list {
		m["CAP_"+strings.ToUpper(c.String())] = c
	}
	return m
}

// Normalize turns "net_raw", "NET_RAW" or "CAP_NET_RAW" into "CAP_NET_RAW"
// and rejects names the kernel does not know. "ALL" stays "ALL".
func Normalize(name string) (string, error) {
	n := strings.ToUpper(strings.TrimSpace(name))
	if n == "ALL" {
		return n, nil
	}
	if !strings.HasPrefix(n, "CAP_") {
		n = "CAP_" + n
	}
	if _, ok := byName()[n]; !ok {
		return "", fmt.Errorf("unknown capability %q (see capabilities(7))", name)
	}
	return n, nil
}

// Resolve applies --cap-add and --cap-drop (already normalized) to the
// default set, in the order podman uses: drops first, then adds.
func Resolve(add, drop []string) []string {
	set := map[string]bool{}
	for _, c := range Default {
		set[c] = true
	}
	for _, c := range drop {
		if c == "ALL" {
			set = map[string]bool{}
			continue
		}
		delete(set, c)
	}
	for _, c := range add {
		if c == "ALL" {
			for n := range byName() {
				set[n] = true
			}
			continue
		}
		set[c] = true
	}
	out := make([]string, 0, len(set))
	for c := range set {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// Numbers returns the capability numbers of names.
func Numbers(names []string) []uintptr {
	m := byName()
	out := make([]uintptr, 0, len(names))
	for _, n := range names {
		if c, ok := m[n]; ok {
			out = append(out, uintptr(c))
		}
	}
	return out
}

// LimitThread shrinks the calling thread's bounding set to keep and clears
// its inheritable and ambient sets, so that a root command it executes holds
// exactly keep. Only this thread changes: it must be the one that executes
// the command (lock it with runtime.LockOSThread). The landlock tier's root
// callers use it; a sandbox's pid 1 gets the same from its plan.
func LimitThread(keep []string) error {
	// prctl, not the capability library's Apply, which reads
	// /proc/self/status, which need not be there.
	keepSet := map[uintptr]bool{}
	for _, c := range Numbers(keep) {
		keepSet[c] = true
	}
	for c := 0; c <= Last(); c++ {
		if keepSet[uintptr(c)] {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && err != unix.EINVAL {
			return fmt.Errorf("limit the bounding set: %w", err)
		}
	}
	// Root's capabilities after exec are its bounding set plus its
	// inheritable set, so the inheritable set must be empty.
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	data[0].Inheritable, data[1].Inheritable = 0, 0
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("clear inheritable capabilities: %w", err)
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	return nil
}

// Added are the capabilities of set beyond Default: those only --cap-add
// puts there, which a non-root payload keeps as ambient ones.
func Added(set []string) []string {
	def := map[string]bool{}
	for _, c := range Default {
		def[c] = true
	}
	var extra []string
	for _, c := range set {
		if !def[c] {
			extra = append(extra, c)
		}
	}
	return extra
}

// Last is the highest capability number the running kernel knows (read
// from /proc/sys/kernel/cap_last_cap, once, by the library).
func Last() int {
	c, err := capability.LastCap()
	if err != nil {
		known := capability.ListKnown()
		return int(known[len(known)-1])
	}
	return int(c)
}
