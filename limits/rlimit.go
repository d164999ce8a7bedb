package limits

import (
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"syscall"

	units "github.com/docker/go-units"
	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/spec"
)

// rlimitNames are the --ulimit names, as docker and podman take them.
var rlimitNames = map[string]int{
	"as": unix.RLIMIT_AS, "core": unix.RLIMIT_CORE, "cpu": unix.RLIMIT_CPU, "data": unix.RLIMIT_DATA,
	"fsize": unix.RLIMIT_FSIZE, "locks": unix.RLIMIT_LOCKS, "memlock": unix.RLIMIT_MEMLOCK,
	"msgqueue": unix.RLIMIT_MSGQUEUE, "nice": unix.RLIMIT_NICE, "nofile": unix.RLIMIT_NOFILE,
	"nproc": unix.RLIMIT_NPROC, "rss": unix.RLIMIT_RSS, "rtprio": unix.RLIMIT_RTPRIO,
	"rttime": unix.RLIMIT_RTTIME, "sigpending": unix.RLIMIT_SIGPENDING, "stack": unix.RLIMIT_STACK,
}

// UlimitNames lists the names ParseUlimit takes.
func UlimitNames() []string {
	var n []string
	for k := range rlimitNames {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// ParseUlimit reads NAME=SOFT[:HARD] (a value of -1 or "unlimited" is no
// limit; HARD defaults to SOFT). The hard limit may not exceed rbox's own
// unless the caller is root: only root may raise a hard limit.
func ParseUlimit(raw string) (spec.Rlimit, error) {
	name, val, ok := strings.Cut(raw, "=")
	res, known := rlimitNames[name]
	switch {
	case !ok:
		return spec.Rlimit{}, fmt.Errorf("%q: expected NAME=SOFT[:HARD]", raw)
	case !known:
		return spec.Rlimit{}, fmt.Errorf("%q: unknown limit %q (use one of %s)", raw, name, strings.Join(UlimitNames(), ", "))
	}
	// go-units reads the numbers and checks soft <= hard.
	u, err := units.ParseUlimit(name + "=" + strings.ReplaceAll(val, "unlimited", "-1"))
	if err != nil {
		return spec.Rlimit{}, fmt.Errorf("%q: %v", raw, strings.TrimPrefix(err.Error(), "ulimit "))
	}
	r := spec.Rlimit{Name: name, Resource: res, Soft: infinity(u.Soft), Hard: infinity(u.Hard)}
	var own unix.Rlimit
	if err := unix.Getrlimit(res, &own); err == nil && r.Hard > own.Max && os.Geteuid() != 0 {
		return r, fmt.Errorf("%q: hard limit %s is above your own (%s); only root can raise it", raw, limitString(r.Hard), limitString(own.Max))
	}
	return r, nil
}

// infinity maps go-units' -1 to RLIM_INFINITY.
func infinity(v int64) uint64 {
	if v < 0 {
		return unix.RLIM_INFINITY
	}
	return uint64(v)
}

func limitString(v uint64) string {
	if v == unix.RLIM_INFINITY {
		return "unlimited"
	}
	return fmt.Sprint(v)
}

// rlimits are the rlimits pid 1 gets: the --ulimit values, and the
// fallback for memory and processes when no cgroup bounds them. An
// explicit --ulimit data or nproc wins.
func rlimits(l *spec.Limits, p *Plan) []spec.Rlimit {
	out := append([]spec.Rlimit{}, l.Ulimits...)
	given := func(res int) bool {
		for _, r := range l.Ulimits {
			if r.Resource == res {
				return true
			}
		}
		return false
	}
	if p.Choices[PIDs].Mech == Rlimit && !given(unix.RLIMIT_NPROC) {
		n := uint64(l.PIDs)
		out = append(out, spec.Rlimit{Name: "nproc", Resource: unix.RLIMIT_NPROC, Soft: n, Hard: n})
	}
	if p.Choices[Memory].Mech == Rlimit && !given(unix.RLIMIT_DATA) {
		n := uint64(l.MemoryBytes)
		out = append(out, spec.Rlimit{Name: "data", Resource: unix.RLIMIT_DATA, Soft: n, Hard: n})
	}
	return out
}

// ApplyInit sets l's Rlimits on the calling process, through package
// syscall, whose fork would otherwise restore this process's start-up
// RLIMIT_NOFILE in the command. Only the re-executed pid 1 calls it, and
// only where it cannot start the payload with forkinit.StartPayload (no
// clone trampoline for this architecture): it then forks the payload
// itself, under the limits.
func ApplyInit(l *spec.Limits) error {
	if l == nil {
		return nil
	}
	return SetOwn(l.Rlimits)
}

// SetOwn sets rs on the calling process (the landlock tier's child calls
// it just before it confines itself for good and executes the command).
func SetOwn(rs []spec.Rlimit) error {
	for _, r := range rs {
		lim := syscall.Rlimit{Cur: r.Soft, Max: r.Hard}
		// syscall's Setrlimit, which the runtime watches for RLIMIT_NOFILE.
		if err := syscall.Setrlimit(r.Resource, &lim); err != nil {
			return fmt.Errorf("set the %s limit: %w", r.Name, err)
		}
	}
	return nil
}

// sizeString prints a byte count as "256 MiB".
func sizeString(n int64) string {
	return units.CustomSize("%.4g %s", float64(n), 1024, []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"})
}

// ParseSize reads a size like 512m, 1.5g or 512MiB (binary units).
func ParseSize(s string) (int64, error) {
	n, err := units.RAMInBytes(s)
	if err != nil || n <= 0 || n > math.MaxInt64/2 {
		return 0, fmt.Errorf("%q is not a size like 512m, 1.5g or 512MiB", s)
	}
	return n, nil
}
