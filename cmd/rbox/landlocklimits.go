package main

import (
	"fmt"
	"strings"

	"github.com/rbox-dev/rbox/limits"
	"github.com/rbox-dev/rbox/spec"
	"github.com/rbox-dev/rbox/tier"
)

// landlockLimits readies the limits of a landlock-tier run (see
// docs/limits.md): the sandbox's cgroups where the host delegates them,
// the tier's child placed in them before it is released, and rlimits,
// which the child sets on itself, for the rest. It returns the Box (nil
// when no limit is asked for) and the warning to print, as the full tier
// does.
//
// The tier has no user namespace, so RLIMIT_NPROC would count every
// process of the caller's uid on the host, not the sandbox's: --pids-limit
// needs a pids cgroup here.
func (r *RunCmd) landlockLimits(o *tier.Options) (*limits.Box, string, error) {
	if !r.Limits.asked() {
		return nil, "", nil
	}
	s := &spec.Spec{}
	warning, err := r.Limits.applyLimits(s)
	if err != nil || s.Limits == nil {
		return nil, "", err
	}
	l := s.Limits
	host := limits.Detect()
	plan := limits.Choose(host, l)
	if c := plan.Choices[limits.PIDs]; l.PIDs > 0 && c.Mech < limits.CgroupV1 {
		return nil, "", fmt.Errorf("--pids-limit: no pids cgroup serves it here (%s), and the landlock tier has no user namespace, so RLIMIT_NPROC would count all your processes on the host; fix: %s, or drop --pids-limit", c.Missing, c.Fix)
	}
	if k, bind, ok := leavableByBind(host, plan, o.ReadWrite); ok {
		// The command runs as the caller, who owns the delegated cgroups:
		// only Landlock (/sys read-only) keeps it from moving itself out.
		if l.Strict {
			return nil, "", fmt.Errorf("--limits strict: %s cannot hold for the whole sandbox with --bind %s, through which the command could move itself out of its cgroup; fix: drop that bind", flagOf[k], bind)
		}
		leave := "the command can leave its cgroup through --bind " + bind
		if warning == "" {
			warning = "limits: " + leave + " (see rbox check, docs/limits.md)"
		} else {
			warning = strings.Replace(warning, "limits: ", "limits: "+leave+", ", 1)
		}
	}
	box, err := limits.Setup(l)
	if err != nil {
		return nil, "", err
	}
	o.Rlimits = box.TakeRlimits()
	o.Placed = box.Attach
	return box, warning, nil
}

// leavableByBind finds a read-write bind at, above or below a cgroup
// hierarchy that holds one of plan's limits: through it the command could
// write another cgroup's cgroup.procs.
func leavableByBind(h *limits.Host, plan *limits.Plan, rw []string) (limits.Kind, string, bool) {
	var kind limits.Kind
	for _, k := range []limits.Kind{limits.PIDs, limits.Memory, limits.Swap, limits.CPU} {
		if c, ok := plan.Choices[k]; ok && c.Mech >= limits.CgroupV1 {
			kind = k
			break
		}
	}
	if kind == "" {
		return "", "", false
	}
	mounts := []string{h.V2Mount}
	for _, m := range h.V1 {
		mounts = append(mounts, m)
	}
	for _, p := range rw {
		for _, m := range mounts {
			if m != "" && (within(p, m) || within(m, p)) {
				return kind, p, true
			}
		}
	}
	return "", "", false
}
