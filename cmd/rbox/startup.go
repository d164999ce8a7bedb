package main

import (
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/spec"
)

// callerEnviron is the caller's environment as rbox found it: the
// sandbox's starts from it, not from rbox's own PATH (see findHelpers).
var callerEnviron []string

// probedFDs is how many of the caller's fds from 3 up recordCaller looks
// at; callerFDs[i] says whether fd 3+i was the caller's when rbox started.
const probedFDs = 128

var callerFDs [probedFDs]bool

// recordCaller notes what the caller handed rbox, first thing in main.
func recordCaller() {
	callerEnviron = os.Environ()
	for i := range callerFDs {
		// An fd that survived the exec has no close-on-exec flag; the Go
		// runtime's own (it keeps its cgroup CPU limit files open) have it.
		flags, err := unix.FcntlInt(uintptr(3+i), unix.F_GETFD, 0)
		callerFDs[i] = err == nil && flags&unix.FD_CLOEXEC == 0
	}
	findHelpers()
}

// callerFD reports whether the caller passed fd open.
func callerFD(fd int) bool {
	if fd >= 3 && fd-3 < probedFDs {
		return callerFDs[fd-3]
	}
	// Beyond the probed fds, rbox's own are unlikely.
	_, err := os.Stat(filepath.Join("/proc/self/fd", strconv.Itoa(fd)))
	return err == nil
}

// findHelpers gives rbox's own process the standard system directories as
// its PATH when the caller has none (`env -i rbox ...`): newuidmap, pasta,
// slirp4netns and fuse-overlayfs are found there. A PATH the caller set is
// kept as it is, so it still says which helpers rbox may run. The sandbox's
// environment is the caller's, without this PATH.
func findHelpers() {
	if os.Getenv("PATH") == "" {
		os.Setenv("PATH", spec.DefaultPath)
	}
}
