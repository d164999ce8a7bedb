package limits

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Stats is what a sandbox used, from its cgroups where it has them and
// from the kernel's resource usage of rbox's children otherwise.
type Stats struct {
	WallSeconds   float64 `json:"wall_seconds"`
	UserSeconds   float64 `json:"cpu_user_seconds"`
	SystemSeconds float64 `json:"cpu_system_seconds"`
	// CPUSource is "cgroup v2" or "rusage".
	CPUSource string `json:"cpu_source"`
	// PeakMemoryBytes is the sandbox's peak memory ("cgroup v2", "cgroup
	// v1") or, from rusage, the largest peak resident set of any one of
	// its processes ("rusage (largest process)").
	PeakMemoryBytes  int64  `json:"peak_memory_bytes"`
	PeakMemorySource string `json:"peak_memory_source"`
	// PeakTasks is the most processes and threads alive at once (rbox's
	// init included), from a pids cgroup; nil when none measured it.
	PeakTasks       *int64 `json:"peak_tasks"`
	PeakTasksSource string `json:"peak_tasks_source,omitempty"`
	ExitCode        int    `json:"exit_code"`
}

func (b *Box) stats(code int) Stats {
	st := Stats{WallSeconds: time.Since(b.start).Seconds(), ExitCode: code}
	var after unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_CHILDREN, &after)
	st.UserSeconds = seconds(after.Utime) - seconds(b.before.Utime)
	st.SystemSeconds = seconds(after.Stime) - seconds(b.before.Stime)
	st.CPUSource = "rusage"
	st.PeakMemoryBytes, st.PeakMemorySource = int64(after.Maxrss)*1024, "rusage (largest process)"
	if b.v2 != "" {
		kv := keyValues(filepath.Join(b.v2, "cpu.stat"))
		if u, ok := kv["user_usec"]; ok {
			st.UserSeconds, st.SystemSeconds, st.CPUSource = float64(u)/1e6, float64(kv["system_usec"])/1e6, "cgroup v2"
		}
		if n, err := readInt(filepath.Join(b.v2, "memory.peak")); err == nil {
			st.PeakMemoryBytes, st.PeakMemorySource = n, "cgroup v2"
		}
		if n, err := readInt(filepath.Join(b.v2, "pids.peak")); err == nil {
			st.PeakTasks, st.PeakTasksSource = &n, "cgroup v2"
		}
	}
	if d := b.v1["memory"]; d != "" {
		if n, err := readInt(filepath.Join(d, "memory.max_usage_in_bytes")); err == nil {
			st.PeakMemoryBytes, st.PeakMemorySource = n, "cgroup v1"
		}
	}
	if d := b.v1["pids"]; d != "" && st.PeakTasks == nil {
		if n, err := readInt(filepath.Join(d, "pids.peak")); err == nil {
			st.PeakTasks, st.PeakTasksSource = &n, "cgroup v1"
		}
	}
	return st
}

func (st Stats) String() string {
	s := fmt.Sprintf("wall %.2fs, CPU %.2fs user + %.2fs system (%s), peak memory %s (%s)",
		st.WallSeconds, st.UserSeconds, st.SystemSeconds, st.CPUSource, sizeString(st.PeakMemoryBytes), st.PeakMemorySource)
	if st.PeakTasks != nil {
		s += fmt.Sprintf(", peak tasks %d (%s)", *st.PeakTasks, st.PeakTasksSource)
	} else {
		s += ", peak tasks not measured (no pids cgroup)"
	}
	return s
}

// WriteFile writes st as JSON to path.
func (st Stats) WriteFile(path string) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// killedBy says, in plain words, which limit killed the command, if one
// did: the memory cgroup's OOM killer, or the CPU time or file size
// rlimit's signal.
func (b *Box) killedBy(code int) string {
	var ooms int64
	if b.v2 != "" {
		ooms = keyValues(filepath.Join(b.v2, "memory.events"))["oom_kill"]
	}
	if d := b.v1["memory"]; d != "" {
		ooms += keyValues(filepath.Join(d, "memory.oom_control"))["oom_kill"]
	}
	if ooms > 0 {
		who := "the command was"
		if code != 128+int(unix.SIGKILL) {
			who = "a process of the sandbox was"
		}
		return fmt.Sprintf("%s killed: out of memory (limit %s)", who, sizeString(b.lim.MemoryBytes))
	}
	for _, r := range b.lim.Ulimits {
		switch {
		case r.Resource == unix.RLIMIT_CPU && code == 128+int(unix.SIGXCPU):
			return fmt.Sprintf("the command was killed: CPU time limit (%s s)", limitString(r.Soft))
		case r.Resource == unix.RLIMIT_FSIZE && code == 128+int(unix.SIGXFSZ):
			return fmt.Sprintf("the command was killed: file size limit (%s)", sizeString(int64(r.Soft)))
		}
	}
	return ""
}

func seconds(t unix.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

// keyValues reads a flat keyed file such as cpu.stat or memory.events.
func keyValues(path string) map[string]int64 {
	m := map[string]int64{}
	for _, line := range strings.Split(readString(path), "\n") {
		k, v, ok := strings.Cut(line, " ")
		if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); ok && err == nil {
			m[k] = n
		}
	}
	return m
}

func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

func readFields(path string) []string { return strings.Fields(readString(path)) }
