// Package limits bounds a sandbox's memory, processes and CPU, and reports
// what it used. Each limit holds through the best mechanism this host
// offers the caller, chosen per run and reported:
//
//  1. a cgroup v2 leaf of the sandbox's own, in a cgroup delegated to the
//     caller, with the controller enabled above it (cgroup2.go);
//  2. a leaf in a cgroup v1 subtree that an administrator delegated
//     (cgroup1.go);
//  3. rlimits, inherited by every process (rlimit.go): RLIMIT_NPROC
//     counts per user namespace, so it bounds the sandbox as a whole;
//     RLIMIT_DATA bounds each process; the CPU cannot be capped.
//
// The parent (package sandbox) makes the leaves before pid 1 runs, places
// pid 1 in them before releasing it, and removes them at the end, killing
// whatever is left; a leaf that a killed rbox left behind is removed by the
// next run (sweep.go).
package limits

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/rbox-dev/rbox/spec"
)

// Mechanism is how a limit holds.
type Mechanism int

// The mechanisms, weakest first.
const (
	None Mechanism = iota
	Rlimit
	CgroupV1
	CgroupV2
)

func (m Mechanism) String() string {
	return [...]string{"none", "rlimit", "cgroup v1", "cgroup v2"}[m]
}

// Kind names a limit.
type Kind string

// The limits.
const (
	Memory Kind = "memory"
	Swap   Kind = "swap"
	PIDs   Kind = "pids"
	CPU    Kind = "cpu"
)

// controller is the cgroup controller each limit needs.
var controller = map[Kind]string{Memory: "memory", Swap: "memory", PIDs: "pids", CPU: "cpu"}

// Choice is how one limit holds here.
type Choice struct {
	Mech Mechanism
	// Dir is the cgroup directory the leaf goes in (cgroup mechanisms).
	Dir string
	// Missing says why no cgroup serves it, and Fix what would.
	Missing, Fix string
}

// Plan is how a sandbox's limits hold on this host.
type Plan struct {
	Choices map[Kind]Choice
	// V2Dir is where the sandbox's cgroup v2 leaf goes ("" for none):
	// it holds pid 1 whatever the limits, for teardown and statistics.
	V2Dir string
	// V2Enable are the controllers to enable in V2Dir's subtree_control.
	V2Enable []string
	// V1Dirs maps v1 controllers to the delegated directory a leaf goes in.
	V1Dirs map[string]string
}

// asked lists the limits l asks for.
func asked(l *spec.Limits) []Kind {
	var k []Kind
	if l.MemoryBytes > 0 {
		k = append(k, Memory)
		if l.MemorySwapBytes != 0 {
			k = append(k, Swap)
		}
	}
	if l.PIDs > 0 {
		k = append(k, PIDs)
	}
	if l.CPUs > 0 {
		k = append(k, CPU)
	}
	return k
}

// Choose decides how each limit of l holds on h.
func Choose(h *Host, l *spec.Limits) *Plan {
	p := &Plan{Choices: map[Kind]Choice{}, V1Dirs: map[string]string{}}
	v2, v2Why := h.v2Parent()
	p.V2Dir = v2
	var v2Has map[string]bool
	if v2 != "" {
		v2Has = v2Controllers(v2)
	}
	kinds := asked(l)
	if l.Stats || l.StatsFile != "" {
		// Peak processes come from a pids cgroup.
		kinds = append(kinds, PIDs)
	}
	for _, k := range kinds {
		if _, done := p.Choices[k]; done {
			continue
		}
		c := controller[k]
		if v2Has[c] && (k != Swap || exists(filepath.Join(v2, "memory.swap.max"))) {
			p.Choices[k] = Choice{Mech: CgroupV2, Dir: v2}
			if !contains(p.V2Enable, c) {
				p.V2Enable = append(p.V2Enable, c)
			}
			continue
		}
		if d, _ := h.v1Parent(c); d != "" && (k != Swap || exists(filepath.Join(d, "memory.memsw.limit_in_bytes"))) {
			p.Choices[k] = Choice{Mech: CgroupV1, Dir: d}
			p.V1Dirs[c] = d
			continue
		}
		ch := Choice{Mech: Rlimit}
		ch.Missing, ch.Fix = h.missing(c, v2, v2Why)
		switch {
		case k == CPU || k == Swap:
			ch.Mech = None
		case k == PIDs && h.Root:
			// The kernel never applies RLIMIT_NPROC to the host's
			// root user, which root's sandbox runs as.
			ch.Mech = None
			ch.Missing = "RLIMIT_NPROC does not bind the host's root user; " + ch.Missing
		}
		p.Choices[k] = ch
	}
	if !contains(asked(l), PIDs) && p.Choices[PIDs].Mech < CgroupV1 {
		delete(p.Choices, PIDs) // asked only for statistics
	}
	return p
}

// missing says why no cgroup serves controller c, and the fix.
func (h *Host) missing(c, v2, v2Why string) (string, string) {
	var why []string
	if v2 != "" {
		why = append(why, "cgroup v2: "+c+" is not available to enable in "+v2)
	} else {
		why = append(why, "cgroup v2: "+v2Why)
	}
	if _, w := h.v1Parent(c); h.V1[c] != "" {
		why = append(why, "cgroup v1: "+w)
	}
	fix := "delegate a cgroup with the " + c + " controller to you (docs/limits.md: systemd-run --user --scope -p Delegate=yes rbox ..., or as root for cgroup v2 " +
		filepath.Join(orDefault(h.V2Mount, "/sys/fs/cgroup"), h.Parent)
	if mp := h.V1[c]; mp != "" {
		fix += ", for cgroup v1 " + filepath.Join(mp, h.Parent)
	}
	fix += " owned by you)"
	return strings.Join(why, "; "), fix
}

// v2Controllers are the controllers a leaf in dir can have: enabled in
// dir's subtree_control already, or available in dir and dir holds no
// process (the kernel enables a controller only where no process lives).
func v2Controllers(dir string) map[string]bool {
	has := map[string]bool{}
	avail := strings.Fields(readString(filepath.Join(dir, "cgroup.controllers")))
	enabled := strings.Fields(readString(filepath.Join(dir, "cgroup.subtree_control")))
	empty := strings.TrimSpace(readString(filepath.Join(dir, "cgroup.procs"))) == ""
	for _, c := range avail {
		if contains(enabled, c) || empty {
			has[c] = true
		}
	}
	return has
}

func readString(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func contains[T comparable](list []T, x T) bool {
	for _, y := range list {
		if y == x {
			return true
		}
	}
	return false
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// Shortfall is a limit that would not hold for the whole sandbox.
type Shortfall struct {
	Kind         Kind
	Mech         Mechanism
	Missing, Fix string
}

// Shortfalls are the asked limits that hold only per process, or not at
// all, here: what --limits strict refuses and what a warning names.
func (p *Plan) Shortfalls(l *spec.Limits) []Shortfall {
	var out []Shortfall
	for _, k := range asked(l) {
		if c := p.Choices[k]; c.Mech < CgroupV1 {
			out = append(out, Shortfall{Kind: k, Mech: c.Mech, Missing: c.Missing, Fix: c.Fix})
		}
	}
	return out
}
