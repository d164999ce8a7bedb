package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/rbox-dev/rbox/limits"
	"github.com/rbox-dev/rbox/spec"
)

// limitFlags are the run flags about resource limits (docs/limits.md).
type limitFlags struct {
	Memory     string   `placeholder:"SIZE" help:"Cap the sandbox's memory (512m, 2g, 1.5g, 512MiB): a memory cgroup where one is delegated, else per process (RLIMIT_DATA); tmpfs mounts are bounded by it too."`
	MemorySwap string   `name:"memory-swap" placeholder:"SIZE" help:"Cap memory plus swap (at least --memory; -1: unlimited swap; default: as much swap as memory). Needs a memory cgroup."`
	PidsLimit  *int64   `name:"pids-limit" placeholder:"N" help:"Cap the tasks (processes and threads, rbox's init included) in the sandbox: a pids cgroup, else RLIMIT_NPROC in the sandbox's user namespace."`
	CPUs       *float64 `name:"cpus" placeholder:"N" help:"Cap CPU time to N CPUs' worth (e.g. 1.5). Needs a cpu cgroup."`
	Ulimit     []string `sep:"none" placeholder:"NAME=SOFT[:HARD]" help:"Set an rlimit for the command, e.g. nofile=1024:4096 or core=0. Repeatable."`
	Limits     string   `default:"best-effort" enum:"best-effort,strict" help:"best-effort: hold each limit as well as the host allows, saying when it is per process only; strict: refuse to run unless each holds for the whole sandbox."`
	Stats      bool     `help:"Print what the sandbox used at the end: wall and CPU time, peak memory, peak tasks."`
	StatsFile  string   `name:"stats-file" placeholder:"FILE" help:"Write those statistics to FILE as JSON."`
}

// minMemory and minPIDs are the least the sandbox starts with: rbox's own
// init needs some of each (up to ten threads when it is re-executed rbox).
const (
	minMemory = 8 << 20
	minPIDs   = 16
)

// flagOf names the flag of each limit, for messages.
var flagOf = map[limits.Kind]string{limits.Memory: "--memory", limits.Swap: "--memory-swap", limits.PIDs: "--pids-limit", limits.CPU: "--cpus"}

// applyLimits fills s.Limits from the flags, and under --limits strict
// refuses limits this host cannot hold for the whole sandbox. It returns a
// warning naming the limits that hold per process only, or not at all.
func (f *limitFlags) applyLimits(s *spec.Spec) (string, error) {
	l := &spec.Limits{Stats: f.Stats, Strict: f.Limits == "strict"}
	var err error
	if f.Memory != "" {
		if l.MemoryBytes, err = limits.ParseSize(f.Memory); err != nil {
			return "", fmt.Errorf("--memory: %v", err)
		}
		if l.MemoryBytes < minMemory {
			return "", fmt.Errorf("--memory %s: too small for the sandbox to start (at least 8m)", f.Memory)
		}
	}
	switch {
	case f.MemorySwap == "":
	case f.Memory == "":
		return "", fmt.Errorf("--memory-swap needs --memory")
	case f.MemorySwap == "-1":
		l.MemorySwapBytes = -1
	default:
		if l.MemorySwapBytes, err = limits.ParseSize(f.MemorySwap); err != nil {
			return "", fmt.Errorf("--memory-swap: %v", err)
		}
		if l.MemorySwapBytes < l.MemoryBytes {
			return "", fmt.Errorf("--memory-swap %s is below --memory %s: it caps memory plus swap", f.MemorySwap, f.Memory)
		}
	}
	if n := f.PidsLimit; n != nil {
		if *n < minPIDs {
			return "", fmt.Errorf("--pids-limit %d: too small for the sandbox to start (at least %d: rbox's init counts too)", *n, minPIDs)
		}
		l.PIDs = *n
	}
	if c := f.CPUs; c != nil {
		// (NaN fails both comparisons.)
		if !(*c >= 0.01 && *c <= float64(runtime.NumCPU())) {
			return "", fmt.Errorf("--cpus %g: give a number of CPUs from 0.01 to %d", *c, runtime.NumCPU())
		}
		l.CPUs = *c
	}
	for _, u := range f.Ulimit {
		r, err := limits.ParseUlimit(u)
		if err != nil {
			return "", fmt.Errorf("--ulimit %v", err)
		}
		l.Ulimits = append(l.Ulimits, r)
	}
	if f.StatsFile != "" {
		abs, err := filepath.Abs(f.StatsFile)
		if err == nil {
			_, err = os.Stat(filepath.Dir(abs))
		}
		if err != nil {
			return "", fmt.Errorf("--stats-file %s: %v", f.StatsFile, err)
		}
		l.StatsFile = abs
	}
	if !l.Any() {
		if l.Strict {
			return "", fmt.Errorf("--limits strict: give the limits to hold (--memory, --pids-limit, --cpus)")
		}
		return "", nil
	}
	s.Limits = l
	host := limits.Detect()
	scopeErr := host.UseScope(l)
	plan := limits.Choose(host, l)
	short := plan.Shortfalls(l)
	var weak []string
	if len(short) == 0 && len(weak) == 0 {
		return "", nil
	}
	if l.Strict && len(short) > 0 {
		sf := short[0]
		return "", fmt.Errorf("--limits strict: %s cannot hold for the whole sandbox here: %s; fix: %s", flagOf[sf.Kind], sf.Missing, sf.Fix)
	}
	for _, sf := range short {
		switch sf.Mech {
		case limits.Rlimit:
			weak = append(weak, flagOf[sf.Kind]+" per process only (rlimit, no delegated cgroup)")
		default:
			weak = append(weak, flagOf[sf.Kind]+" not enforced (no delegated cgroup)")
		}
	}
	if scopeErr != nil {
		weak = append(weak, "no systemd scope: "+scopeErr.Error())
	}
	return "limits: " + strings.Join(weak, ", ") + " (see rbox check, docs/limits.md)", nil
}

// asked says whether any limit or statistic was asked for.
func (f *limitFlags) asked() bool {
	return f.Memory != "" || f.MemorySwap != "" || f.PidsLimit != nil || f.CPUs != nil || len(f.Ulimit) > 0 || f.Stats || f.StatsFile != ""
}
