// Command hostsim runs a program on a simulated host: it installs a
// seccomp filter that makes this kernel behave like a more restrictive one,
// then executes the program. The integration tests run rbox under it.
//
//	hostsim nouserns  PROG ARGS...  clone and unshare with CLONE_NEWUSER fail with EPERM, clone3 with
//	                                ENOSYS (its flags are out of a filter's reach): Docker's default
//	                                profile, user.max_user_namespaces=0, rbox without --allow-nested
//	hostsim maxuserns PROG ARGS...  the same with ENOSPC: user.max_user_namespaces=0 (or reached)
//	hostsim nocaps    PROG ARGS...  mount, the new mount API and pivot_root fail with EPERM: a user
//	                                namespace without capabilities (Ubuntu's AppArmor restriction)
//	hostsim nnp       PROG ARGS...  no system call refused, only no_new_privs set (which any filter
//	                                needs): a container run with no-new-privileges, where setuid
//	                                newuidmap cannot gain its privilege
//	hostsim nonetns   PROG ARGS...  clone and unshare with CLONE_NEWNET fail with EPERM, clone3 with
//	                                ENOSYS: a container whose profile refuses network namespaces (or
//	                                user.max_net_namespaces=0)
//	hostsim nopidns   PROG ARGS...  the same for CLONE_NEWPID
//	hostsim oldkernel PROG ARGS...  openat2, the new mount API, clone3, close_range and fchmodat2
//	                                fail with ENOSYS, unshare(CLONE_NEWTIME) with EINVAL: a kernel
//	                                before 5.2 (RHEL 8's 4.18)
package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rule refuses one system call with errno; when flag is not zero, only
// calls whose first argument has that bit set.
type rule struct {
	nr    uint32
	errno unix.Errno
	flag  uint32
}

var modes = map[string][]rule{
	"nouserns": {
		{nr: unix.SYS_CLONE, errno: unix.EPERM, flag: unix.CLONE_NEWUSER},
		{nr: unix.SYS_UNSHARE, errno: unix.EPERM, flag: unix.CLONE_NEWUSER},
		{nr: unix.SYS_CLONE3, errno: unix.ENOSYS},
	},
	"maxuserns": {
		{nr: unix.SYS_CLONE, errno: unix.ENOSPC, flag: unix.CLONE_NEWUSER},
		{nr: unix.SYS_UNSHARE, errno: unix.ENOSPC, flag: unix.CLONE_NEWUSER},
		{nr: unix.SYS_CLONE3, errno: unix.ENOSYS},
	},
	"nonetns": refuseFlag(unix.CLONE_NEWNET),
	"nopidns": refuseFlag(unix.CLONE_NEWPID),
	"nocaps": refuse(unix.EPERM, unix.SYS_MOUNT, unix.SYS_UMOUNT2, unix.SYS_PIVOT_ROOT, unix.SYS_OPEN_TREE,
		unix.SYS_MOVE_MOUNT, unix.SYS_FSOPEN, unix.SYS_FSCONFIG, unix.SYS_FSMOUNT, unix.SYS_FSPICK, unix.SYS_MOUNT_SETATTR),
	"nnp": {},
	"oldkernel": append(refuse(unix.ENOSYS, unix.SYS_OPENAT2, unix.SYS_OPEN_TREE, unix.SYS_MOVE_MOUNT, unix.SYS_FSOPEN,
		unix.SYS_FSCONFIG, unix.SYS_FSMOUNT, unix.SYS_FSPICK, unix.SYS_MOUNT_SETATTR, unix.SYS_CLONE3, unix.SYS_FCHMODAT2,
		unix.SYS_CLOSE_RANGE), rule{nr: unix.SYS_UNSHARE, errno: unix.EINVAL, flag: unix.CLONE_NEWTIME}),
}

// refuseFlag refuses clone and unshare with flag (EPERM) and clone3, whose
// flags a filter cannot read (ENOSYS: callers fall back to clone).
func refuseFlag(flag uint32) []rule {
	return []rule{
		{nr: unix.SYS_CLONE, errno: unix.EPERM, flag: flag},
		{nr: unix.SYS_UNSHARE, errno: unix.EPERM, flag: flag},
		{nr: unix.SYS_CLONE3, errno: unix.ENOSYS},
	}
}

func refuse(errno unix.Errno, nrs ...uint32) []rule {
	out := make([]rule, len(nrs))
	for i, nr := range nrs {
		out[i] = rule{nr: nr, errno: errno}
	}
	return out
}

// auditArch is this build's AUDIT_ARCH value.
var auditArch = map[string]uint32{"amd64": unix.AUDIT_ARCH_X86_64, "arm64": unix.AUDIT_ARCH_AARCH64}

// program assembles the filter: calls of another ABI pass; each rule's
// call is refused (with its flag set, when it has one); the rest pass.
func program(rules []rule) []unix.SockFilter {
	const (
		offNr   = 0
		offArch = 4
		offArg0 = 16 // low 32 bits on a little-endian machine
	)
	stmt := func(code uint16, k uint32) unix.SockFilter { return unix.SockFilter{Code: code, K: k} }
	jump := func(code uint16, k uint32, jt, jf uint8) unix.SockFilter {
		return unix.SockFilter{Code: code, K: k, Jt: jt, Jf: jf}
	}
	ld := uint16(unix.BPF_LD | unix.BPF_W | unix.BPF_ABS)
	jeq := uint16(unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K)
	jset := uint16(unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K)
	ret := uint16(unix.BPF_RET | unix.BPF_K)
	allow := stmt(ret, unix.SECCOMP_RET_ALLOW)

	p := []unix.SockFilter{stmt(ld, offArch), jump(jeq, auditArch[runtime.GOARCH], 1, 0), allow}
	for _, r := range rules {
		deny := stmt(ret, unix.SECCOMP_RET_ERRNO|uint32(r.errno))
		p = append(p, stmt(ld, offNr))
		if r.flag == 0 {
			p = append(p, jump(jeq, r.nr, 0, 1), deny)
			continue
		}
		p = append(p, jump(jeq, r.nr, 0, 3), stmt(ld, offArg0), jump(jset, r.flag, 0, 1), deny)
	}
	return append(p, allow)
}

func main() {
	rules, known := modes[os.Args[min(1, len(os.Args)-1)]]
	if len(os.Args) < 3 || !known || auditArch[runtime.GOARCH] == 0 {
		fmt.Fprintln(os.Stderr, "usage: hostsim nouserns|maxuserns|nocaps|nnp|oldkernel PROG ARGS... (amd64 and arm64)")
		os.Exit(2)
	}
	path, err := exec.LookPath(os.Args[2])
	if err != nil {
		fmt.Fprintf(os.Stderr, "hostsim: %v\n", err)
		os.Exit(127)
	}
	// The filter is loaded on this thread, which then executes the
	// program; no_new_privs lets an unprivileged caller load it.
	runtime.LockOSThread()
	prog := program(rules)
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	// An old kernel is not a container: where hostsim holds
	// CAP_SYS_ADMIN (scripts/run-integration gives the test user a copy
	// with that file capability, which the exec below drops), the filter
	// is loaded without no_new_privs, so the setuid newuidmap still maps
	// the caller's range, as on a real old host.
	if os.Args[1] != "oldkernel" || !hasSysAdmin() {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			fmt.Fprintf(os.Stderr, "hostsim: no_new_privs: %v\n", err)
			os.Exit(1)
		}
	}
	if _, _, errno := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&fprog))); errno != 0 {
		fmt.Fprintf(os.Stderr, "hostsim: seccomp: %v\n", errno)
		os.Exit(1)
	}
	runtime.KeepAlive(prog)
	err = unix.Exec(path, os.Args[2:], os.Environ())
	fmt.Fprintf(os.Stderr, "hostsim: exec %s: %v\n", path, err)
	os.Exit(126)
}

// hasSysAdmin reports whether CAP_SYS_ADMIN is in this thread's effective
// set.
func hasSysAdmin() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return data[0].Effective&(1<<unix.CAP_SYS_ADMIN) != 0
}
