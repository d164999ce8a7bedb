package main

import (
	"golang.org/x/sys/unix"
)

// badPtr is an address in the never-mapped first page: the kernel answers
// EFAULT when it reads from it.
const badPtr = 8

const (
	perBSD        = 0x0006     // a persona the default profile refuses
	uffdUserOnly  = 1          // UFFD_USER_MODE_ONLY: allowed to unprivileged users
	uffdBadFlag   = 1 << 30    // no such userfaultfd flag
	sockBadFlag   = 0x100      // a type bit that is neither SOCK_CLOEXEC nor SOCK_NONBLOCK
	quotaBadType  = 0xff       // quotactl's type (low byte) beyond MAXQUOTAS
	unshareBadBit = 0x00000001 // an exit-signal bit, which unshare refuses
	clockBad      = 1000       // no such clock
	syslogSize    = 10         // SYSLOG_ACTION_SIZE_BUFFER, which only reads
	allBits       = ^uintptr(0)
	minusOne      = ^uintptr(0)
)

// syscallTable holds the x86_64 numbers and harmless arguments of the
// calls rbox's default profile refuses. Calls the x86_64 ABI lacks
// (stime, vm86, vm86old, clock_settime64) are absent.
var syscallTable = map[string]call{
	"add_key":           {nr: unix.SYS_ADD_KEY},                                                                  // EFAULT: type is NULL
	"request_key":       {nr: unix.SYS_REQUEST_KEY},                                                              // EFAULT: type is NULL
	"keyctl":            {nr: unix.SYS_KEYCTL, args: [6]uintptr{0xffff}},                                         // EOPNOTSUPP: no such command
	"bpf":               {nr: unix.SYS_BPF, args: [6]uintptr{0xffff, 0, 0}},                                      // no such command
	"perf_event_open":   {nr: unix.SYS_PERF_EVENT_OPEN, args: [6]uintptr{0, 0, minusOne, minusOne, allBits}},     // EINVAL: flags
	"userfaultfd":       {nr: unix.SYS_USERFAULTFD, args: [6]uintptr{uffdUserOnly | uffdBadFlag}, undo: closeFD}, // EINVAL: flags
	"io_uring_setup":    {nr: unix.SYS_IO_URING_SETUP, args: [6]uintptr{1, 0}},                                   // EFAULT: params is NULL
	"io_uring_enter":    {nr: unix.SYS_IO_URING_ENTER, args: [6]uintptr{minusOne}},                               // EBADF
	"io_uring_register": {nr: unix.SYS_IO_URING_REGISTER, args: [6]uintptr{minusOne}},                            // EBADF
	"kexec_load":        {nr: unix.SYS_KEXEC_LOAD},
	"kexec_file_load":   {nr: unix.SYS_KEXEC_FILE_LOAD, args: [6]uintptr{minusOne, minusOne}},
	"init_module":       {nr: unix.SYS_INIT_MODULE},
	"finit_module":      {nr: unix.SYS_FINIT_MODULE, args: [6]uintptr{minusOne}},
	"delete_module":     {nr: unix.SYS_DELETE_MODULE},
	"open_by_handle_at": {nr: unix.SYS_OPEN_BY_HANDLE_AT, args: [6]uintptr{minusOne, 0, 0}},
	"name_to_handle_at": {nr: unix.SYS_NAME_TO_HANDLE_AT, args: [6]uintptr{minusOne, 0, 0, 0, allBits}}, // EINVAL: flags
	"lookup_dcookie":    {nr: unix.SYS_LOOKUP_DCOOKIE},
	"acct":              {nr: unix.SYS_ACCT},
	"quotactl":          {nr: unix.SYS_QUOTACTL, args: [6]uintptr{quotaBadType}},              // EINVAL: type
	"quotactl_fd":       {nr: unix.SYS_QUOTACTL_FD, args: [6]uintptr{minusOne, quotaBadType}}, // EINVAL or EBADF
	"swapon":            {nr: unix.SYS_SWAPON, args: [6]uintptr{0, allBits}},                  // EINVAL: flags
	"swapoff":           {nr: unix.SYS_SWAPOFF},
	"reboot":            {nr: unix.SYS_REBOOT},                                       // EINVAL past the capability check: bad magic
	"settimeofday":      {nr: unix.SYS_SETTIMEOFDAY, args: [6]uintptr{badPtr}},       // EFAULT
	"clock_settime":     {nr: unix.SYS_CLOCK_SETTIME, args: [6]uintptr{clockBad, 0}}, // EINVAL: clock
	"iopl":              {nr: unix.SYS_IOPL, args: [6]uintptr{4}},                    // EINVAL: level
	"ioperm":            {nr: unix.SYS_IOPERM, args: [6]uintptr{0, 0, 1}},            // EINVAL: empty range
	"syslog":            {nr: unix.SYS_SYSLOG, args: [6]uintptr{syslogSize, 0, 0}},
	"nfsservctl":        {nr: unix.SYS_NFSSERVCTL},
	"uselib":            {nr: unix.SYS_USELIB},
	"personality":       {nr: unix.SYS_PERSONALITY, args: [6]uintptr{perBSD}, undo: restorePersonality},
	"ioctl":             {nr: unix.SYS_IOCTL, args: [6]uintptr{minusOne, unix.TIOCSTI, 0}},                         // EBADF
	"socket":            {nr: unix.SYS_SOCKET, args: [6]uintptr{unix.AF_VSOCK, unix.SOCK_STREAM | sockBadFlag, 0}}, // EINVAL: type
	"clone":             {nr: unix.SYS_CLONE, args: [6]uintptr{unix.CLONE_NEWUSER | unix.CLONE_FS}},                // EINVAL: the pair is refused
	"unshare":           {nr: unix.SYS_UNSHARE, args: [6]uintptr{unix.CLONE_NEWUSER | unshareBadBit}},              // EINVAL: flags
	"clone3":            {nr: unix.SYS_CLONE3, args: [6]uintptr{0, 0}},                                             // EINVAL: size
	"setns":             {nr: unix.SYS_SETNS, args: [6]uintptr{minusOne, 0}},                                       // EBADF
}

func closeFD(fd uintptr) { unix.Close(int(fd)) }

// restorePersonality puts back the persona a successful call replaced.
func restorePersonality(old uintptr) {
	unix.Syscall(unix.SYS_PERSONALITY, old, 0, 0)
}
