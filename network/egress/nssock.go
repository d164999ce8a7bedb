package egress

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The proxy's listening sockets must be in the sandbox's network namespace
// (so the sandbox reaches them on its own 127.0.0.1, and needs no interface
// to the outside), while the proxy that serves them runs here, in the
// host's. A socket belongs to the namespace its creator was in when it made
// it, and keeps it; so a short-lived child of this process enters the
// sandbox's namespaces, creates the sockets and sends them back over a
// socket pair (SCM_RIGHTS), then exits.
//
// Why a child and not a thread of this process: setns(2) into a network
// namespace needs CAP_SYS_ADMIN both over the namespace (which the owner of
// the sandbox's user namespace has) and in the caller's own user namespace
// (which an unprivileged caller has not), so the child must first join the
// sandbox's user namespace, and a process may do that only while it has a
// single thread and shares no memory: a Go process never has one thread,
// but a child made by fork(2) has, until it exits. It runs nothing but
// system calls on the memory prepared here (see forkAndListen), as the
// child of syscall.ForkExec does between fork and exec.

// Listen is a socket to create in the sandbox: TCP (listening) or UDP,
// bound to 127.0.0.1:Port; or, Unbound, a TCP socket (IPv6 with V6)
// neither bound nor listening, for this process to connect from the
// sandbox's namespace.
type Listen struct {
	UDP     bool
	Port    int
	Unbound bool
	V6      bool
}

// sockJob is everything the forked child reads: prepared before the fork,
// so that the child allocates nothing.
type sockJob struct {
	userNS, netNS int // descriptors of the sandbox's namespaces
	sock          int // this process's end of the socket pair (the child writes to it)
	listens       []Listen
	addrs         []unix.RawSockaddrInet4
	fds           []int32 // filled by the child, sent as SCM_RIGHTS
	one           int32
	msg           unix.Msghdr
	iov           unix.Iovec
	oob           []byte
	payload       [8]byte
	// report is what a failing child writes: the step and the errno.
	report [2]int32
}

// Steps of the child, for its failure report.
const (
	stepJoinUser = iota + 1
	stepJoinNet
	stepSocket
	stepFreebind
	stepBind
	stepListen
	stepSend
)

var stepNames = map[int32]string{
	stepJoinUser: "join the sandbox's user namespace",
	stepJoinNet:  "join the sandbox's network namespace",
	stepSocket:   "socket",
	stepFreebind: "setsockopt IP_FREEBIND",
	stepBind:     "bind",
	stepListen:   "listen",
	stepSend:     "send the sockets",
}

// ListenIn creates the sockets ls in the network namespace of process pid
// (the sandbox's pid 1, a child of this process whose user namespace this
// process's user owns) and returns them in the same order.
//
// The addresses are bound with IP_FREEBIND: the sandbox's loopback may not
// be up yet (its pid 1 brings it up before the command starts).
func ListenIn(pid int, ls []Listen) ([]*os.File, error) {
	userNS, err := unix.Open(fmt.Sprintf("/proc/%d/ns/user", pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open the sandbox's user namespace: %w", err)
	}
	defer unix.Close(userNS)
	netNS, err := unix.Open(fmt.Sprintf("/proc/%d/ns/net", pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open the sandbox's network namespace: %w", err)
	}
	defer unix.Close(netNS)
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	defer unix.Close(pair[0])

	j := &sockJob{userNS: userNS, netNS: netNS, sock: pair[1], listens: ls, one: 1}
	j.addrs = make([]unix.RawSockaddrInet4, len(ls))
	for i, l := range ls {
		a := &j.addrs[i]
		a.Family = unix.AF_INET
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&a.Port))[:], uint16(l.Port))
		a.Addr = [4]byte{127, 0, 0, 1}
	}
	j.fds = make([]int32, len(ls))
	j.oob = make([]byte, unix.CmsgSpace(4*len(ls)))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&j.oob[0]))
	h.Level, h.Type = unix.SOL_SOCKET, unix.SCM_RIGHTS
	h.SetLen(unix.CmsgLen(4 * len(ls)))
	copy(j.payload[:], "sockets!")
	j.iov.Base = &j.payload[0]
	j.iov.SetLen(len(j.payload))
	j.msg.Iov = &j.iov
	j.msg.Iovlen = 1
	j.msg.Control = &j.oob[0]
	j.msg.SetControllen(len(j.oob))

	pid2, err := j.fork()
	// The child has its copy; without this one, a child that dies before
	// writing gives EOF.
	unix.Close(pair[1])
	if err != nil {
		return nil, fmt.Errorf("fork: %w", err)
	}
	files, recvErr := j.receive(pair[0])
	var ws unix.WaitStatus
	for {
		if _, err := unix.Wait4(pid2, &ws, 0, nil); err != unix.EINTR {
			break
		}
	}
	if recvErr != nil {
		return nil, recvErr
	}
	return files, nil
}

// receive reads the child's one message: the sockets, or a failure report.
func (j *sockJob) receive(fd int) ([]*os.File, error) {
	buf := make([]byte, 16)
	oob := make([]byte, unix.CmsgSpace(4*len(j.listens)))
	n, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("receive the sockets: %w", err)
	}
	if oobn > 0 {
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(msgs) != 1 {
			return nil, errors.New("receive the sockets: bad control message")
		}
		fds, err := unix.ParseUnixRights(&msgs[0])
		if err != nil {
			return nil, fmt.Errorf("receive the sockets: %w", err)
		}
		if len(fds) != len(j.listens) {
			for _, f := range fds {
				unix.Close(f)
			}
			return nil, errors.New("receive the sockets: wrong number of descriptors")
		}
		files := make([]*os.File, len(fds))
		for i, f := range fds {
			files[i] = os.NewFile(uintptr(f), fmt.Sprintf("egress-%d", j.listens[i].Port))
		}
		return files, nil
	}
	if n != 8 {
		return nil, errors.New("the helper that creates the proxy's sockets in the sandbox ended without them")
	}
	step := int32(binary.NativeEndian.Uint32(buf[0:]))
	errno := syscall.Errno(binary.NativeEndian.Uint32(buf[4:]))
	return nil, fmt.Errorf("create the proxy's sockets in the sandbox: %s: %w", stepNames[step], errno)
}

// The runtime's hooks around a fork without exec (see package forkinit).
//
//go:linkname beforeFork syscall.runtime_BeforeFork
func beforeFork()

//go:linkname afterFork syscall.runtime_AfterFork
func afterFork()

func (j *sockJob) fork() (int, error) {
	// The child must not inherit a descriptor half made by another
	// goroutine's ForkExec.
	syscall.ForkLock.Lock()
	beforeFork()
	pid, errno := j.forkAndListen()
	afterFork()
	syscall.ForkLock.Unlock()
	if errno != 0 {
		return 0, errno
	}
	return int(pid), nil
}

// forkAndListen forks; the child, with a copy of this memory, one thread
// and no Go runtime to call on, makes the sockets and exits.
//
//go:noinline
//go:nosplit
//go:norace
func (j *sockJob) forkAndListen() (uintptr, syscall.Errno) {
	pid, _, errno := syscall.RawSyscall6(unix.SYS_CLONE, uintptr(unix.SIGCHLD), 0, 0, 0, 0, 0)
	if errno != 0 || pid != 0 {
		return pid, errno
	}
	j.child()
	return 0, 0
}

//go:nosplit
//go:norace
func (j *sockJob) child() {
	if _, _, e := syscall.RawSyscall(unix.SYS_SETNS, uintptr(j.userNS), unix.CLONE_NEWUSER, 0); e != 0 {
		j.fail(stepJoinUser, e)
	}
	if _, _, e := syscall.RawSyscall(unix.SYS_SETNS, uintptr(j.netNS), unix.CLONE_NEWNET, 0); e != 0 {
		j.fail(stepJoinNet, e)
	}
	for i := 0; i < len(j.listens); i++ {
		typ := uintptr(unix.SOCK_STREAM)
		if j.listens[i].UDP {
			typ = unix.SOCK_DGRAM
		}
		family := uintptr(unix.AF_INET)
		if j.listens[i].V6 {
			family = unix.AF_INET6
		}
		fd, _, e := syscall.RawSyscall(unix.SYS_SOCKET, family, typ|unix.SOCK_CLOEXEC, 0)
		if e != 0 {
			j.fail(stepSocket, e)
		}
		j.fds[i] = int32(fd)
		if j.listens[i].Unbound {
			continue
		}
		if _, _, e := syscall.RawSyscall6(unix.SYS_SETSOCKOPT, fd, unix.SOL_IP, unix.IP_FREEBIND, uintptr(unsafe.Pointer(&j.one)), 4, 0); e != 0 {
			j.fail(stepFreebind, e)
		}
		if _, _, e := syscall.RawSyscall(unix.SYS_BIND, fd, uintptr(unsafe.Pointer(&j.addrs[i])), unix.SizeofSockaddrInet4); e != 0 {
			j.fail(stepBind, e)
		}
		if !j.listens[i].UDP {
			if _, _, e := syscall.RawSyscall(unix.SYS_LISTEN, fd, unix.SOMAXCONN, 0); e != 0 {
				j.fail(stepListen, e)
			}
		}
	}
	// The descriptors go into the control message prepared by the parent.
	data := j.oob[unix.SizeofCmsghdr:]
	for i := 0; i < len(j.fds); i++ {
		*(*int32)(unsafe.Pointer(&data[4*i])) = j.fds[i]
	}
	if _, _, e := syscall.RawSyscall(unix.SYS_SENDMSG, uintptr(j.sock), uintptr(unsafe.Pointer(&j.msg)), 0); e != 0 {
		j.fail(stepSend, e)
	}
	syscall.RawSyscall(unix.SYS_EXIT_GROUP, 0, 0, 0)
}

// fail reports the failed step to the parent and exits.
//
//go:nosplit
//go:norace
func (j *sockJob) fail(step int32, errno syscall.Errno) {
	j.report[0], j.report[1] = step, int32(errno)
	syscall.RawSyscall(unix.SYS_WRITE, uintptr(j.sock), uintptr(unsafe.Pointer(&j.report[0])), 8)
	syscall.RawSyscall(unix.SYS_EXIT_GROUP, 1, 0, 0)
}

// dialPeer connects to a, a sandbox on the same rbox network, from the
// sandbox's network namespace: the socket is made there (ListenIn), so the
// connection leaves through the sandbox's own eth0, as the sandbox's.
func (e *Egress) dialPeer(a netip.AddrPort) (net.Conn, error) {
	files, err := ListenIn(e.pid, []Listen{{Unbound: true, V6: a.Addr().Is6()}})
	if err != nil {
		return nil, err
	}
	f := files[0]
	defer f.Close()
	fd := int(f.Fd())
	tv := unix.NsecToTimeval(int64(peerDialTimeout))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
		return nil, err
	}
	var sa unix.Sockaddr = &unix.SockaddrInet6{Port: int(a.Port()), Addr: a.Addr().As16()}
	if a.Addr().Is4() {
		sa = &unix.SockaddrInet4{Port: int(a.Port()), Addr: a.Addr().As4()}
	}
	if err := unix.Connect(fd, sa); err != nil {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(a), Err: os.NewSyscallError("connect", err)}
	}
	return net.FileConn(f)
}

// peerDialTimeout bounds a connection to a peer (an address of the
// subnet where no sandbox answers ARP fails after about 3 s anyway).
const peerDialTimeout = 10 * time.Second
