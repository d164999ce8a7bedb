package sysplan

import (
	"strconv"

	"golang.org/x/sys/unix"
)

// A syscallInfo is a system call's name and its number of arguments, as
// Format shows it.
type syscallInfo struct {
	name  string
	nargs int
}

// syscalls are the system calls plans make.
var syscalls = map[uintptr]syscallInfo{
	unix.SYS_BIND:          {"bind", 3},
	unix.SYS_CAPSET:        {"capset", 2},
	unix.SYS_CHDIR:         {"chdir", 1},
	unix.SYS_CLOSE:         {"close", 1},
	unix.SYS_CLOSE_RANGE:   {"close_range", 3},
	unix.SYS_DUP3:          {"dup3", 3},
	unix.SYS_EXECVE:        {"execve", 3},
	unix.SYS_FACCESSAT:     {"faccessat", 3},
	unix.SYS_FCHDIR:        {"fchdir", 1},
	unix.SYS_FCHOWN:        {"fchown", 3},
	unix.SYS_FCHOWNAT:      {"fchownat", 5},
	unix.SYS_FCHMODAT:      {"fchmodat", 3},
	unix.SYS_FSCONFIG:      {"fsconfig", 5},
	unix.SYS_FSMOUNT:       {"fsmount", 3},
	unix.SYS_FSOPEN:        {"fsopen", 2},
	unix.SYS_IOCTL:         {"ioctl", 3},
	unix.SYS_KEYCTL:        {"keyctl", 2},
	unix.SYS_MKDIRAT:       {"mkdirat", 3},
	unix.SYS_MKNODAT:       {"mknodat", 4},
	unix.SYS_MOUNT:         {"mount", 5},
	unix.SYS_MOUNT_SETATTR: {"mount_setattr", 5},
	unix.SYS_MOVE_MOUNT:    {"move_mount", 5},
	unix.SYS_OPENAT:        {"openat", 4},
	unix.SYS_OPENAT2:       {"openat2", 4},
	unix.SYS_OPEN_TREE:     {"open_tree", 3},
	unix.SYS_PIVOT_ROOT:    {"pivot_root", 2},
	unix.SYS_PRCTL:         {"prctl", 5},
	unix.SYS_READ:          {"read", 3},
	unix.SYS_READLINKAT:    {"readlinkat", 4},
	unix.SYS_RECVFROM:      {"recvfrom", 6},
	unix.SYS_SECCOMP:       {"seccomp", 3},
	unix.SYS_SENDMSG:       {"sendmsg", 3},
	unix.SYS_SENDTO:        {"sendto", 6},
	unix.SYS_SETGROUPS:     {"setgroups", 2},
	unix.SYS_SETHOSTNAME:   {"sethostname", 2},
	unix.SYS_SETRESGID:     {"setresgid", 3},
	unix.SYS_SETRESUID:     {"setresuid", 3},
	unix.SYS_SETSID:        {"setsid", 0},
	unix.SYS_SIGNALFD4:     {"signalfd4", 4},
	unix.SYS_SOCKET:        {"socket", 3},
	unix.SYS_STATFS:        {"statfs", 2},
	unix.SYS_SYMLINKAT:     {"symlinkat", 3},
	unix.SYS_UMOUNT2:       {"umount2", 2},
	unix.SYS_UNSHARE:       {"unshare", 1},
	unix.SYS_WRITE:         {"write", 3},
}

// syscallName is the name of system call nr, or its number.
func syscallName(nr uintptr) string {
	if s, ok := syscalls[nr]; ok {
		return s.name
	}
	return "syscall" + strconv.FormatUint(uint64(nr), 10)
}
