package limits

import (
	"fmt"

	"github.com/rbox-dev/rbox/spec"
)

// Line is one `rbox check` line about limits.
type Line struct {
	Name   string
	Good   bool // the limit holds for the whole sandbox
	Detail string
	Fix    string
}

// Report says, per limit, which mechanism holds it on h and how to get a
// stronger one, for a run in the full tier, or in the landlock tier (no
// namespaces) when landlock is set.
func Report(h *Host, landlock bool) []Line {
	all := &spec.Limits{MemoryBytes: 1, MemorySwapBytes: 2, PIDs: 1, CPUs: 1}
	p := Choose(h, all)
	detail := map[Kind]string{
		Memory: "RLIMIT_DATA per process, tmpfs sizes bounded by --memory",
		PIDs:   "RLIMIT_NPROC, per uid in the sandbox's user namespace",
	}
	if landlock {
		detail[Memory] = "RLIMIT_DATA per process (landlock tier)"
	}
	var out []Line
	for _, k := range []Kind{Memory, Swap, PIDs, CPU} {
		c := p.Choices[k]
		l := Line{Name: "limit " + string(k), Good: c.Mech >= CgroupV1}
		switch {
		case l.Good:
			l.Detail = fmt.Sprintf("%s, the whole sandbox (a leaf in %s)", c.Mech, c.Dir)
		case k == PIDs && landlock:
			l.Detail = fmt.Sprintf("refused in the landlock tier: it has no user namespace, where RLIMIT_NPROC would count all your processes on the host (%s)", c.Missing)
			l.Fix = c.Fix
		default:
			d := detail[k]
			if c.Mech == None {
				d = "not enforced"
			}
			l.Detail = fmt.Sprintf("%s: %s (%s)", c.Mech, d, c.Missing)
			l.Fix = c.Fix
		}
		out = append(out, l)
	}
	tear := Line{Name: "limit teardown", Good: p.V2Dir != ""}
	switch {
	case tear.Good:
		tear.Detail = "a cgroup v2 leaf in " + p.V2Dir + " holds the sandbox; cgroup.kill ends it"
		if landlock {
			tear.Detail += " (landlock tier: with a limit or --stats; without, what the command leaves in the background outlives it)"
		}
	case userBusAddress():
		tear.Good = true
		tear.Detail = "no delegated cgroup v2: at each run with limits, rbox asks the systemd user manager for a scope with Delegate=yes"
	default:
		_, why := h.v2Parent()
		tear.Detail = "no cgroup v2 leaf (" + why + "): the pid namespace's end kills the sandbox"
		if landlock {
			tear.Detail = "no cgroup v2 leaf (" + why + ") and no pid namespace in the landlock tier: what the command leaves in the background outlives it, unless a v1 leaf of a limit holds it"
		}
		tear.Fix = "run rbox in a cgroup v2 subtree delegated to you (docs/limits.md)"
	}
	return append(out, tear)
}
