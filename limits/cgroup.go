package limits

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/spec"
)

// mkdir and rmdir make and remove cgroup directories; the unit tests
// fake cgroup tree swaps in ones that add and drop control files as the
// kernel does.
var (
	mkdir = func(dir string) error { return os.Mkdir(dir, 0o755) }
	rmdir = unix.Rmdir
)

// leafName is the sandbox's leaf in each parent: rbox-PID, PID being the
// rbox process that made it, so a leaf whose maker is gone is known stale.
func leafName(pid int) string { return "rbox-" + strconv.Itoa(pid) }

// procsDir is the cgroup inside each leaf that holds the sandbox's
// processes. The limits are written on the leaf, above it: pid 1 makes its
// cgroup namespace once placed here, so a command given CAP_SYS_ADMIN that
// mounts a cgroup hierarchy sees this cgroup as the root and can reach
// neither the leaf's limit files (which are the caller's, and so its own)
// nor the delegated parent. Limits and statistics are hierarchical.
const procsDir = "sandbox"

// writeFile writes one cgroup control file, which must exist.
func writeFile(dir, name, val string) error {
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(val)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %q to %s: %w", val, filepath.Join(dir, name), err)
	}
	return nil
}

// v2Files are the control files of a cgroup v2 leaf for l.
func v2Files(l *spec.Limits, p *Plan) [][2]string {
	var f [][2]string
	if p.Choices[Memory].Mech == CgroupV2 {
		f = append(f, [2]string{"memory.max", strconv.FormatInt(l.MemoryBytes, 10)})
		swap := "max"
		switch {
		case l.MemorySwapBytes > 0:
			swap = strconv.FormatInt(l.MemorySwapBytes-l.MemoryBytes, 10)
		case l.MemorySwapBytes == 0:
			swap = strconv.FormatInt(l.MemoryBytes, 10) // docker's default: as much swap as memory
		}
		name := "memory.swap.max"
		if l.MemorySwapBytes == 0 {
			name = "?" + name // the default, where the kernel accounts swap
		}
		f = append(f, [2]string{name, swap})
	}
	if p.Choices[PIDs].Mech == CgroupV2 && l.PIDs > 0 {
		f = append(f, [2]string{"pids.max", strconv.FormatInt(l.PIDs, 10)})
	}
	if p.Choices[CPU].Mech == CgroupV2 {
		f = append(f, [2]string{"cpu.max", fmt.Sprintf("%d %d", cpuQuota(l.CPUs), cpuPeriod)})
	}
	return f
}

// v1Files are the control files of the leaf in controller c's v1
// hierarchy for l.
func v1Files(c string, l *spec.Limits, p *Plan) [][2]string {
	var f [][2]string
	switch c {
	case "memory":
		if p.Choices[Memory].Mech == CgroupV1 {
			f = append(f, [2]string{"memory.limit_in_bytes", strconv.FormatInt(l.MemoryBytes, 10)})
			if p.Choices[Swap].Mech == CgroupV1 {
				sw := l.MemorySwapBytes
				if sw < 0 {
					sw = -1
				}
				f = append(f, [2]string{"memory.memsw.limit_in_bytes", strconv.FormatInt(sw, 10)})
			}
		}
	case "pids":
		if p.Choices[PIDs].Mech == CgroupV1 && l.PIDs > 0 {
			f = append(f, [2]string{"pids.max", strconv.FormatInt(l.PIDs, 10)})
		}
	case "cpu":
		if p.Choices[CPU].Mech == CgroupV1 {
			f = append(f, [2]string{"cpu.cfs_period_us", strconv.Itoa(cpuPeriod)}, [2]string{"cpu.cfs_quota_us", strconv.Itoa(cpuQuota(l.CPUs))})
		}
	}
	return f
}

// cpuPeriod is the CFS period in microseconds (the kernel's default).
const cpuPeriod = 100000

func cpuQuota(cpus float64) int { return int(cpus*cpuPeriod + 0.5) }

// makeLeaf creates the leaf dir and writes its files (a name starting
// with ? only if the kernel has that file); on failure nothing is left.
func makeLeaf(dir string, files [][2]string) error {
	if err := mkdir(dir); err != nil {
		if errors.Is(err, os.ErrExist) {
			// rbox's own pid: a leaf of a dead rbox that had it.
			if err = removeLeaf(dir); err == nil {
				err = mkdir(dir)
			}
		}
		if err != nil {
			return fmt.Errorf("create cgroup %s: %w", dir, err)
		}
	}
	for _, kv := range files {
		name, optional := strings.CutPrefix(kv[0], "?")
		if optional && !exists(filepath.Join(dir, name)) {
			continue
		}
		if err := writeFile(dir, name, kv[1]); err != nil {
			_ = removeLeaf(dir)
			return err
		}
	}
	if err := mkdir(filepath.Join(dir, procsDir)); err != nil {
		_ = removeLeaf(dir)
		return fmt.Errorf("create cgroup %s: %w", filepath.Join(dir, procsDir), err)
	}
	return nil
}

// removeLeaf kills whatever still runs in the leaf dir (with cgroup.kill
// where the kernel has it) and removes it.
func removeLeaf(dir string) error {
	killed := writeFile(dir, "cgroup.kill", "1") == nil
	if err := removeChildren(dir); err != nil {
		return err
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		err := rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			return fmt.Errorf("remove cgroup %s: %w", dir, err)
		}
		if !killed {
			for _, f := range strings.Fields(readString(filepath.Join(dir, "cgroup.procs"))) {
				if pid, err := strconv.Atoi(f); err == nil {
					_ = unix.Kill(pid, unix.SIGKILL)
				}
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// removeChildren removes the cgroups under dir (the leaf's procsDir) with
// removeLeaf: a cgroup with children cannot be removed.
func removeChildren(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeLeaf(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// sweep removes the leaves in parent that an rbox no longer running left
// behind (killed with SIGKILL, it could not remove them).
func sweep(parent string) {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	for _, e := range entries {
		n, ok := strings.CutPrefix(e.Name(), "rbox-")
		n, sup := strings.CutSuffix(n, ".supervisor")
		pid, err := strconv.Atoi(n)
		if !ok || err != nil || !e.IsDir() || pid <= 0 {
			continue
		}
		// A sandbox's leaf named after rbox's own pid is stale (this
		// rbox has made none yet); its supervisor leaf holds rbox.
		own := pid == os.Getpid()
		if own && !sup || !own && (unix.Kill(pid, 0) == unix.ESRCH || !isRbox(pid)) {
			_ = removeLeaf(filepath.Join(parent, e.Name()))
		}
	}
}

// isRbox reports whether pid still runs an rbox (its pid may have been
// reused by another program since).
func isRbox(pid int) bool {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		// Gone, or another user's: not the maker of a leaf in a
		// cgroup delegated to us.
		return false
	}
	self, _ := os.Readlink("/proc/self/exe")
	return exe == self || filepath.Base(exe) == "rbox"
}
