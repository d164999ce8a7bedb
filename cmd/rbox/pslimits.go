package main

import (
	"fmt"
	"strconv"
	"strings"

	units "github.com/docker/go-units"
	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/limits"
	"github.com/rbox-dev/rbox/spec"
	"github.com/rbox-dev/rbox/state"
)

// limitsOf lists a named sandbox's limits for ps, each with the mechanism
// that holds it on this host (as the run chose it).
func limitsOf(l *spec.Limits) []state.Limit {
	if !l.Any() {
		return nil
	}
	plan := limits.Choose(limits.Detect(), l)
	mech := func(k limits.Kind) string { return plan.Choices[k].Mech.String() }
	var out []state.Limit
	if l.MemoryBytes > 0 {
		out = append(out, state.Limit{Name: "memory", Value: units.BytesSize(float64(l.MemoryBytes)), Mechanism: mech(limits.Memory)})
		switch {
		case l.MemorySwapBytes < 0:
			out = append(out, state.Limit{Name: "swap", Value: "unlimited", Mechanism: mech(limits.Swap)})
		case l.MemorySwapBytes > 0:
			out = append(out, state.Limit{Name: "swap", Value: units.BytesSize(float64(l.MemorySwapBytes)), Mechanism: mech(limits.Swap)})
		}
	}
	if l.PIDs > 0 {
		out = append(out, state.Limit{Name: "pids", Value: strconv.FormatInt(l.PIDs, 10), Mechanism: mech(limits.PIDs)})
	}
	if l.CPUs > 0 {
		out = append(out, state.Limit{Name: "cpus", Value: strconv.FormatFloat(l.CPUs, 'g', -1, 64), Mechanism: mech(limits.CPU)})
	}
	for _, r := range l.Ulimits {
		out = append(out, state.Limit{Name: r.Name, Value: rlimitValue(r.Soft) + ":" + rlimitValue(r.Hard), Mechanism: limits.Rlimit.String()})
	}
	return out
}

func rlimitValue(v uint64) string {
	if v == unix.RLIM_INFINITY {
		return "unlimited"
	}
	return strconv.FormatUint(v, 10)
}

// limitsColumn is ps's LIMITS: name=value(mechanism), comma-separated.
func limitsColumn(ls []state.Limit) string {
	if len(ls) == 0 {
		return "-"
	}
	parts := make([]string, len(ls))
	for i, l := range ls {
		parts[i] = fmt.Sprintf("%s=%s(%s)", l.Name, l.Value, l.Mechanism)
	}
	return strings.Join(parts, ",")
}
