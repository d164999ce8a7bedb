package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// watchJoiners (watch-joiners SECONDS JOINCOMM EXECCOMM) watches the
// sandbox's /proc for processes rbox exec brings in. While one still has
// the name of the joining process (JOINCOMM: it has not executed yet), it
// tries to reach it through /proc (fd, exe, cwd, mem) and ptrace; it tries
// the same on processes already running the exec'd command (EXECCOMM),
// which must work, so that a refusal is known to come from rbox. It prints
// how many of each it saw and what succeeded.
func watchJoiners(args []string) error {
	if len(args) != 3 {
		return usage("watch-joiners SECONDS JOINCOMM EXECCOMM")
	}
	secs, err := strconv.Atoi(args[0])
	if err != nil {
		return usage("watch-joiners: SECONDS")
	}
	join, exe := args[1], args[2]
	// ptrace requests come from the thread that attached.
	runtime.LockOSThread()
	counts := map[string]int{}
	deadline := time.Now().Add(time.Duration(secs) * time.Second)
	self := os.Getpid()
	for time.Now().Before(deadline) {
		d, err := os.Open("/proc")
		if err != nil {
			return err
		}
		names, _ := d.Readdirnames(-1)
		d.Close()
		for _, n := range names {
			pid, err := strconv.Atoi(n)
			if err != nil || pid == self || pid == 1 {
				continue
			}
			comm, err := os.ReadFile("/proc/" + n + "/comm")
			if err != nil {
				continue
			}
			kind := ""
			switch strings.TrimSpace(string(comm)) {
			case join:
				kind = "joining"
			case exe:
				kind = "exec"
			default:
				continue
			}
			counts[kind+"-seen"]++
			for what, ok := range reach(pid) {
				// Only while it still is what it was when seen.
				if c, _ := os.ReadFile("/proc/" + n + "/comm"); ok && string(c) == string(comm) {
					counts[kind+"-"+what]++
				}
			}
		}
	}
	for _, k := range []string{"joining-seen", "exec-seen"} {
		fmt.Printf("%s: %d\n", k, counts[k])
	}
	for _, kind := range []string{"joining", "exec"} {
		for _, what := range []string{"fd", "exe", "cwd", "mem", "ptrace"} {
			fmt.Printf("%s-%s: %d\n", kind, what, counts[kind+"-"+what])
		}
	}
	return nil
}

// reach tries each way into pid and says which worked.
func reach(pid int) map[string]bool {
	p := "/proc/" + strconv.Itoa(pid)
	got := map[string]bool{}
	// An fd reached: its link read. (The numbers alone may be listed when
	// the sandbox's root is the host's, as for a caller that is root.)
	if d, err := os.Open(p + "/fd"); err == nil {
		names, _ := d.Readdirnames(-1)
		d.Close()
		for _, n := range names {
			if _, err := os.Readlink(p + "/fd/" + n); err == nil {
				got["fd"] = true
				break
			}
		}
	}
	if _, err := os.Readlink(p + "/exe"); err == nil {
		got["exe"] = true
	}
	if _, err := os.Readlink(p + "/cwd"); err == nil {
		got["cwd"] = true
	}
	if fd, err := unix.Open(p+"/mem", unix.O_RDONLY, 0); err == nil {
		got["mem"] = true
		unix.Close(fd)
	}
	if err := unix.PtraceSeize(pid); err == nil {
		got["ptrace"] = true
		// Let it go at once: stopped, then detached (a tracee's end
		// would otherwise be reported to this tracer, not its parent).
		_ = unix.PtraceInterrupt(pid)
		var ws unix.WaitStatus
		_, _ = unix.Wait4(pid, &ws, unix.WALL, nil)
		_ = unix.PtraceDetach(pid)
	}
	return got
}
