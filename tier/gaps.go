package tier

import (
	"fmt"
	"runtime"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/spec"
)

// filterGaps are the system calls that reach past what the degraded tier's
// Landlock domain closes, which its seccomp program refuses.
//
// net (TCP restricted by Landlock): an MPTCP socket, which Landlock's TCP
// rights do not cover, and TCP Fast Open's sendto/sendmsg, which connect
// without connect(2). pid (the host's pid namespace shared): the calls
// that act on another process with no more than a uid check, which
// Landlock does not scope: prlimit64 setting another process's limits,
// setpriority and ioprio_set on another process, a process group or a
// user, and the sched_set* calls on another process. The sandbox's own
// processes are "another process" too: with the pid namespace shared, a
// payload can renice only itself.
type filterGaps struct{ net, pid bool }

// The landlock tier loads the same program (landlock.go): it always shares
// the host's pid namespace, and its network unless --net host.

// Errno values the program returns: those a caller falls back from where
// one exists (plain TCP for MPTCP, connect for Fast Open).
const (
	msgFastOpen   = 0x20000000 // MSG_FASTOPEN
	ipprotoMPTCP  = 262
	prioProcess   = 0 // PRIO_PROCESS
	ioprioWhoProc = 1 // IOPRIO_WHO_PROCESS
)

// program assembles the seccomp program: a call of another ABI (or x32)
// fails with ENOSYS, as the landlock tier's unix socket filter does
// (socketcall(2) puts their arguments out of a filter's reach); each
// rule's call goes to its block; the rest pass.
func (g filterGaps) program() ([]byte, error) {
	p, err := g.filter()
	if err != nil {
		return nil, err
	}
	out := make([]byte, len(p)*int(unsafe.Sizeof(p[0])))
	copy(out, unsafe.Slice((*byte)(unsafe.Pointer(&p[0])), len(out)))
	return out, nil
}

// filter is program's instructions.
func (g filterGaps) filter() ([]unix.SockFilter, error) {
	arch, ok := unixSocketArch[runtime.GOARCH]
	audit := arch.audit
	if !ok {
		return nil, fmt.Errorf("the degraded tier's seccomp program is written for amd64 and arm64, not %s", runtime.GOARCH)
	}
	type rule struct {
		nr    uint32
		block []unix.SockFilter
	}
	var rules []rule
	if g.net {
		rules = append(rules,
			rule{unix.SYS_SOCKET, argEquals(2, ipprotoMPTCP, unix.EPROTONOSUPPORT)},
			rule{unix.SYS_SENDTO, argHasBits(3, msgFastOpen, unix.EOPNOTSUPP)},
			rule{unix.SYS_SENDMSG, argHasBits(2, msgFastOpen, unix.EOPNOTSUPP)},
			rule{unix.SYS_SENDMMSG, argHasBits(3, msgFastOpen, unix.EOPNOTSUPP)},
		)
	}
	if g.pid {
		rules = append(rules,
			rule{unix.SYS_PRLIMIT64, otherPIDWithPointer()},
			rule{unix.SYS_SETPRIORITY, whichWho(prioProcess)},
			rule{unix.SYS_IOPRIO_SET, whichWho(ioprioWhoProc)},
			rule{unix.SYS_SCHED_SETAFFINITY, argNonZero(0, unix.EPERM)},
			rule{unix.SYS_SCHED_SETSCHEDULER, argNonZero(0, unix.EPERM)},
			rule{unix.SYS_SCHED_SETPARAM, argNonZero(0, unix.EPERM)},
			rule{unix.SYS_SCHED_SETATTR, argNonZero(0, unix.EPERM)},
		)
	}
	p := []unix.SockFilter{
		stmt(bpfLd, offArch),
		jump(unix.BPF_JEQ, audit, 1, 0),
		refuse(unix.ENOSYS),
		stmt(bpfLd, offNr),
	}
	if runtime.GOARCH == "amd64" {
		p = append(p, jump(unix.BPF_JGE, 0x40000000, 0, 1), refuse(unix.ENOSYS))
	}
	// The dispatch: rule i's jump lands on its block, past the other
	// jumps, the final allow and the blocks before it.
	at := len(rules) + 1
	for i, r := range rules {
		off := at - i - 1
		if off > 255 {
			return nil, fmt.Errorf("the degraded tier's seccomp program is too long")
		}
		p = append(p, jump(unix.BPF_JEQ, r.nr, uint8(off), 0))
		at += len(r.block)
	}
	p = append(p, allow)
	for _, r := range rules {
		p = append(p, r.block...)
	}
	return p, nil
}

// text names what the program refuses, for the tier line.
func (g filterGaps) text() string {
	var parts []string
	if g.net {
		parts = append(parts, "MPTCP sockets and TCP Fast Open")
	}
	if g.pid {
		parts = append(parts, "prlimit, setpriority, ioprio_set and sched_set* on other processes")
	}
	return strings.Join(parts, ", ")
}

// gapsOf is what Compensation put in comp's filter for refused.
func gapsOf(refused []Refusal, comp *spec.Compensation) filterGaps {
	var g filterGaps
	for _, r := range refused {
		switch r.What {
		case spec.NSNet:
			g.net = comp.Landlock != nil && comp.Landlock.HandledNet != 0
		case spec.NSPID:
			g.pid = true
		}
	}
	return g
}

const (
	bpfLd   = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
	bpfRet  = unix.BPF_RET | unix.BPF_K
	offNr   = 0
	offArch = 4
)

// argLow and argHigh are the offsets of the halves of argument i in
// struct seccomp_data on a little-endian machine.
func argLow(i int) uint32  { return uint32(16 + 8*i) }
func argHigh(i int) uint32 { return argLow(i) + 4 }

func stmt(code uint16, k uint32) unix.SockFilter { return unix.SockFilter{Code: code, K: k} }

func jump(op uint16, k uint32, jt, jf uint8) unix.SockFilter {
	return unix.SockFilter{Code: unix.BPF_JMP | op | unix.BPF_K, K: k, Jt: jt, Jf: jf}
}

func refuse(errno unix.Errno) unix.SockFilter {
	return stmt(bpfRet, unix.SECCOMP_RET_ERRNO|uint32(errno))
}

var allow = stmt(bpfRet, unix.SECCOMP_RET_ALLOW)

// argEquals refuses the call when argument i (an int) is v.
func argEquals(i int, v uint32, errno unix.Errno) []unix.SockFilter {
	return []unix.SockFilter{stmt(bpfLd, argLow(i)), jump(unix.BPF_JEQ, v, 0, 1), refuse(errno), allow}
}

// argHasBits refuses the call when argument i (an int) has one of bits.
func argHasBits(i int, bits uint32, errno unix.Errno) []unix.SockFilter {
	return []unix.SockFilter{stmt(bpfLd, argLow(i)), jump(unix.BPF_JSET, bits, 0, 1), refuse(errno), allow}
}

// argNonZero refuses the call when argument i (a pid_t) is not 0, the
// caller itself.
func argNonZero(i int, errno unix.Errno) []unix.SockFilter {
	return []unix.SockFilter{stmt(bpfLd, argLow(i)), jump(unix.BPF_JEQ, 0, 1, 0), refuse(errno), allow}
}

// whichWho refuses setpriority(which, who, ...) and ioprio_set(which,
// who, ...) unless which is self (the process kind) and who is 0.
func whichWho(self uint32) []unix.SockFilter {
	return []unix.SockFilter{
		stmt(bpfLd, argLow(0)),
		jump(unix.BPF_JEQ, self, 0, 3),
		stmt(bpfLd, argLow(1)),
		jump(unix.BPF_JEQ, 0, 0, 1),
		allow,
		refuse(unix.EPERM),
	}
}

// otherPIDWithPointer refuses prlimit64(pid, resource, new, old) that sets
// (new is not NULL) the limits of another process (pid is not 0).
func otherPIDWithPointer() []unix.SockFilter {
	return []unix.SockFilter{
		stmt(bpfLd, argLow(0)),
		jump(unix.BPF_JEQ, 0, 5, 0),
		stmt(bpfLd, argLow(2)),
		jump(unix.BPF_JEQ, 0, 0, 2),
		stmt(bpfLd, argHigh(2)),
		jump(unix.BPF_JEQ, 0, 1, 0),
		refuse(unix.EPERM),
		allow,
	}
}
