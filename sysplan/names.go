package sysplan

import (
	"strconv"

	"golang.org/x/sys/unix"
)

// syscallNames are the names Format shows: the system calls plans make.
var syscallNames = map[uintptr]string{
	unix.SYS_BIND:          "bind",
	unix.SYS_CAPSET:        "capset",
	unix.SYS_CHDIR:         "chdir",
	unix.SYS_CLOSE:         "close",
	unix.SYS_CLOSE_RANGE:   "close_range",
	unix.SYS_EXECVE:        "execve",
	unix.SYS_FACCESSAT:     "faccessat",
	unix.SYS_FCHDIR:        "fchdir",
	unix.SYS_FCHMODAT:      "fchmodat",
	unix.SYS_FCHOWNAT:      "fchownat",
	unix.SYS_DUP3:          "dup3",
	unix.SYS_FSCONFIG:      "fsconfig",
	unix.SYS_FSMOUNT:       "fsmount",
	unix.SYS_FSOPEN:        "fsopen",
	unix.SYS_IOCTL:         "ioctl",
	unix.SYS_KEYCTL:        "keyctl",
	unix.SYS_MKDIRAT:       "mkdirat",
	unix.SYS_MKNODAT:       "mknodat",
	unix.SYS_MOUNT:         "mount",
	unix.SYS_MOUNT_SETATTR: "mount_setattr",
	unix.SYS_MOVE_MOUNT:    "move_mount",
	unix.SYS_OPENAT:        "openat",
	unix.SYS_OPENAT2:       "openat2",
	unix.SYS_OPEN_TREE:     "open_tree",
	unix.SYS_PIVOT_ROOT:    "pivot_root",
	unix.SYS_PRCTL:         "prctl",
	unix.SYS_READ:          "read",
	unix.SYS_READLINKAT:    "readlinkat",
	unix.SYS_RECVFROM:      "recvfrom",
	unix.SYS_SECCOMP:       "seccomp",
	unix.SYS_SENDTO:        "sendto",
	unix.SYS_SETGROUPS:     "setgroups",
	unix.SYS_SETHOSTNAME:   "sethostname",
	unix.SYS_SETRESGID:     "setresgid",
	unix.SYS_SETRESUID:     "setresuid",
	unix.SYS_SETSID:        "setsid",
	unix.SYS_SIGNALFD4:     "signalfd4",
	unix.SYS_SOCKET:        "socket",
	unix.SYS_SYMLINKAT:     "symlinkat",
	unix.SYS_UMOUNT2:       "umount2",
	unix.SYS_UNSHARE:       "unshare",
	unix.SYS_WRITE:         "write",
}

// syscallName is the name of system call nr, or its number.
func syscallName(nr uintptr) string {
	if n, ok := syscallNames[nr]; ok {
		return n
	}
	return "syscall" + strconv.FormatUint(uint64(nr), 10)
}
