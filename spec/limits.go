package spec

// Limits are a sandbox's resource limits (--memory, --pids-limit, --cpus,
// --ulimit, --limits, --stats). Package limits decides per host how each
// holds: a cgroup v2 leaf, a delegated cgroup v1 subtree, or rlimits.
type Limits struct {
	// MemoryBytes caps the sandbox's memory; 0 means no cap.
	MemoryBytes int64 `json:"memory_bytes,omitempty"`
	// MemorySwapBytes caps memory plus swap (at least MemoryBytes); -1
	// means unlimited swap, 0 the default (as much swap as memory, like
	// docker).
	MemorySwapBytes int64 `json:"memory_swap_bytes,omitempty"`
	// PIDs caps the number of tasks (processes and threads), rbox's own
	// init included; 0 means no cap.
	PIDs int64 `json:"pids,omitempty"`
	// CPUs caps CPU time to this many CPUs' worth; 0 means no cap.
	CPUs float64 `json:"cpus,omitempty"`
	// Ulimits are the --ulimit values, applied to pid 1 before the
	// command starts, and inherited by it.
	Ulimits []Rlimit `json:"ulimits,omitempty"`
	// Strict refuses to run when a limit cannot hold for the whole
	// sandbox (only rlimits, or nothing, are available for it).
	Strict bool `json:"strict,omitempty"`
	// Stats prints what the sandbox used at the end; StatsFile writes it
	// as JSON to this host path instead.
	Stats     bool   `json:"stats,omitempty"`
	StatsFile string `json:"stats_file,omitempty"`

	// Rlimits are the rlimits the payload's process sets on itself before
	// it executes the command (a step of initplan's plan, on both
	// executors; pid 1 stays out of them: a Go pid 1 could not live under
	// the payload's RLIMIT_DATA). Package limits fills them in.
	Rlimits []Rlimit `json:"rlimits,omitempty"`
}

// Rlimit is one resource limit: Resource is the RLIMIT_* number.
type Rlimit struct {
	Name     string `json:"name"`
	Resource int    `json:"resource"`
	Soft     uint64 `json:"soft"`
	Hard     uint64 `json:"hard"`
}

// Any reports whether l asks for anything.
func (l *Limits) Any() bool {
	return l != nil && (l.MemoryBytes != 0 || l.PIDs != 0 || l.CPUs != 0 || len(l.Ulimits) > 0 || l.Stats || l.StatsFile != "")
}
