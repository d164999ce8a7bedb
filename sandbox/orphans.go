package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// With --share pid the sandbox's pid 1 is not the init of a pid namespace:
// its end does not take the payload's background processes with it. pid 1
// adopts them while it runs (the plan makes it a child subreaper), and rbox
// is one too, so they come to rbox when pid 1 ends; rbox then kills and
// reaps them. One orphan killer, in the parent, for both executors.

// adoptOrphans makes rbox a child subreaper: the sandbox's orphans come to
// it when pid 1 ends.
func adoptOrphans() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("become a child subreaper: %w", err)
	}
	return nil
}

// killOrphans kills and reaps every child of rbox but those in keep (the
// network's helpers), until none is left: an orphan's own children come to
// rbox when it dies.
func killOrphans(keep []int) {
	for {
		var orphans []int
		for _, pid := range children() {
			if !slices.Contains(keep, pid) {
				orphans = append(orphans, pid)
			}
		}
		if len(orphans) == 0 {
			return
		}
		for _, pid := range orphans {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		for _, pid := range orphans {
			var ws unix.WaitStatus
			for {
				if _, err := unix.Wait4(pid, &ws, 0, nil); err != unix.EINTR {
					break
				}
			}
		}
	}
}

// children lists the children of every thread of rbox: orphans may be
// handed to any thread of a subreaper.
func children() []int {
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", os.Getpid()))
	var out []int
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, field := range strings.Fields(string(data)) {
			if n, err := strconv.Atoi(field); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}
