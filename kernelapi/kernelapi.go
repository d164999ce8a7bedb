// Package kernelapi tells whether the kernel has the newer system calls
// rbox uses: openat2 (Linux 5.6) and the new mount API (open_tree,
// move_mount, fsopen, fsmount: 5.2; mount_setattr: 5.12), without which
// the filesystem's setup falls back to mount(2) and a walk of its own
// (fsetup's legacy.go); and clone3 (5.3), without which pid 1 is placed
// in its cgroup after it is made instead of being born there.
package kernelapi

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

var (
	once     sync.Once
	missing  string
	clone3   bool
	clone3Do sync.Once
)

// Clone3 reports whether the kernel has clone3, probed once per process
// with a size it refuses (EINVAL where the call exists).
func Clone3() bool {
	clone3Do.Do(func() {
		_, _, e := unix.RawSyscall(unix.SYS_CLONE3, 0, 0, 0)
		clone3 = e != unix.ENOSYS
	})
	return clone3
}

// MountAPIMissing names the first of the filesystem's calls the kernel lacks (ENOSYS), or is
// empty when it has them all. It probes once per process, without
// privilege and without side effects: an O_PATH open of / through openat2,
// an open_tree of / without a clone, a mount_setattr with an invalid
// size (EINVAL where it exists), and an fsopen of no filesystem (ENODEV or
// EINVAL where it exists).
func MountAPIMissing() string {
	once.Do(func() { missing = probe() })
	return missing
}

func probe() string {
	fd, err := unix.Openat2(unix.AT_FDCWD, "/", &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC})
	if errors.Is(err, unix.ENOSYS) {
		return "openat2"
	}
	if err == nil {
		unix.Close(fd)
	}
	fd, err = unix.OpenTree(unix.AT_FDCWD, "/", unix.OPEN_TREE_CLOEXEC)
	if errors.Is(err, unix.ENOSYS) {
		return "open_tree"
	}
	if err == nil {
		unix.Close(fd)
	}
	if _, _, e := unix.Syscall6(unix.SYS_MOUNT_SETATTR, ^uintptr(0), 0, 0, 0, 0, 0); e == unix.ENOSYS {
		return "mount_setattr"
	}
	if _, _, e := unix.Syscall(unix.SYS_FSOPEN, 0, 0xffffffff, 0); e == unix.ENOSYS {
		return "fsopen"
	}
	return ""
}

// RootlessOverlay reports whether the kernel mounts overlayfs in a user
// namespace (Linux 5.11): its release says 5.11 or later, and it has
// openat2 and the new mount API but perhaps mount_setattr (5.12), the
// calls a kernel that old must have. rbox then prefers the kernel's
// overlayfs to fuse-overlayfs.
func RootlessOverlay() bool {
	if m := MountAPIMissing(); m != "" && m != "mount_setattr" {
		return false
	}
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return true
	}
	return releaseAtLeast(unix.ByteSliceToString(u.Release[:]), 5, 11)
}

// releaseAtLeast reports whether a kernel release ("5.10.0-28-amd64")
// is major.minor or later.
func releaseAtLeast(release string, major, minor int) bool {
	var ma, mi int
	if _, err := fmt.Sscanf(release, "%d.%d", &ma, &mi); err != nil {
		return true
	}
	return ma > major || ma == major && mi >= minor
}

// CloexecFrom marks every descriptor from first on close-on-exec:
// close_range(CLOSE_RANGE_CLOEXEC) (Linux 5.11), else one fcntl per
// descriptor that /proc/self/fd lists.
func CloexecFrom(first int) error {
	err := unix.CloseRange(uint(first), ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	if err != unix.ENOSYS && err != unix.EINVAL {
		return err
	}
	entries, rerr := os.ReadDir("/proc/self/fd")
	if rerr != nil {
		return fmt.Errorf("close_range: %w; and %w", err, rerr)
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd >= first {
			unix.CloseOnExec(fd)
		}
	}
	return nil
}
