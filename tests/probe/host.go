package main

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// kill sends signal args[1] (a number, default 15) to pid args[0].
func kill(args []string) error {
	if len(args) < 1 || len(args) > 2 {
		return usage("expected PID [SIGNAL]")
	}
	pid, err := pidArg(args[0])
	if err != nil {
		return err
	}
	sig := unix.SIGTERM
	if len(args) == 2 {
		n, err := strconv.Atoi(args[1])
		if err != nil {
			return usage("bad signal " + strconv.Quote(args[1]))
		}
		sig = unix.Signal(n)
	}
	return unix.Kill(pid, sig)
}

// ptrace seizes pid args[0] without stopping it; the kernel detaches when
// the probe exits.
func ptrace(args []string) error {
	if err := need(args, 1, "PID"); err != nil {
		return err
	}
	pid, err := pidArg(args[0])
	if err != nil {
		return err
	}
	runtime.LockOSThread()
	return unix.PtraceSeize(pid)
}

// connectAbstract connects to the abstract unix socket args[0] and
// prints the first line it sends.
func connectAbstract(args []string) error {
	if err := need(args, 1, "NAME"); err != nil {
		return err
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: "@" + args[0]}); err != nil {
		return err
	}
	buf := make([]byte, 256)
	n, _ := unix.Read(fd, buf)
	fmt.Printf("data: %s\n", firstLine(buf[:max(n, 0)]))
	return nil
}

// connectUnix connects to the pathname unix socket args[0] and prints the
// first line it sends.
func connectUnix(args []string) error {
	if err := need(args, 1, "PATH"); err != nil {
		return err
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: args[0]}); err != nil {
		return err
	}
	buf := make([]byte, 256)
	n, _ := unix.Read(fd, buf)
	fmt.Printf("data: %s\n", firstLine(buf[:max(n, 0)]))
	return nil
}

// connectTCP connects to args[0] (HOST:PORT) and prints the first line
// the service sends.
func connectTCP(args []string) error {
	if err := need(args, 1, "HOST:PORT"); err != nil {
		return err
	}
	c, err := net.DialTimeout("tcp", args[0], 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 256)
	n, _ := c.Read(buf)
	fmt.Printf("data: %s\n", firstLine(buf[:n]))
	return nil
}

// ipc looks up the host's IPC objects: SysV shared memory and message
// queue with key args[0], POSIX message queue and shared memory named
// args[1].
func ipc(args []string) error {
	if err := need(args, 2, "KEY NAME"); err != nil {
		return err
	}
	key, err := strconv.ParseInt(args[0], 0, 32)
	if err != nil {
		return usage("bad key " + strconv.Quote(args[0]))
	}
	var r report
	_, _, errno := unix.Syscall(unix.SYS_SHMGET, uintptr(key), 0, 0)
	r.try("sysv shm", errnoErr(errno))
	_, _, errno = unix.Syscall(unix.SYS_MSGGET, uintptr(key), 0, 0)
	r.try("sysv msg", errnoErr(errno))
	name, err := unix.BytePtrFromString(args[1])
	if err != nil {
		return err
	}
	mq, _, errno := unix.Syscall6(unix.SYS_MQ_OPEN, uintptr(unsafe.Pointer(name)), unix.O_RDONLY|unix.O_CLOEXEC, 0, 0, 0, 0)
	r.try("posix mq", errnoErr(errno))
	if errno == 0 {
		unix.Close(int(mq))
	}
	data, err := os.ReadFile("/dev/shm/" + args[1])
	r.try("posix shm", err)
	if err == nil {
		r.note("posix shm data", string(firstLine(data)))
	}
	return r.result()
}

func errnoErr(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// keyring looks for the user key described args[1] in the session
// keyring, and reads key args[0] by its serial number.
func keyring(args []string) error {
	if err := need(args, 2, "SERIAL DESCRIPTION"); err != nil {
		return err
	}
	serial, err := strconv.Atoi(args[0])
	if err != nil {
		return usage("bad serial " + strconv.Quote(args[0]))
	}
	var r report
	found, err := unix.KeyctlSearch(unix.KEY_SPEC_SESSION_KEYRING, "user", args[1], 0)
	r.try("search session keyring", err)
	if err == nil {
		r.note("found", strconv.Itoa(found))
	}
	buf := make([]byte, 256)
	n, err := unix.KeyctlBuffer(unix.KEYCTL_READ, serial, buf, 0)
	r.try("read key", err)
	if err == nil {
		r.note("data", string(buf[:min(n, len(buf))]))
	}
	return r.result()
}

// sethostname sets the host name to args[0].
func sethostname(args []string) error {
	if err := need(args, 1, "NAME"); err != nil {
		return err
	}
	return unix.Sethostname([]byte(args[0]))
}

// settime sets the real-time clock to the time it reads just before, with
// both clock_settime and settimeofday: the clock moves by no more than the
// few microseconds in between.
func settime(args []string) error {
	if err := need(args, 0, "no arguments"); err != nil {
		return err
	}
	var r report
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_REALTIME, &ts); err != nil {
		return err
	}
	_, _, errno := unix.Syscall(unix.SYS_CLOCK_SETTIME, unix.CLOCK_REALTIME, uintptr(unsafe.Pointer(&ts)), 0)
	r.try("clock_settime", errnoErr(errno))
	var tv unix.Timeval
	if err := unix.Gettimeofday(&tv); err != nil {
		return err
	}
	_, _, errno = unix.Syscall(unix.SYS_SETTIMEOFDAY, uintptr(unsafe.Pointer(&tv)), 0, 0)
	r.try("settimeofday", errnoErr(errno))
	return r.result()
}

// euid prints the real and effective uid; it succeeds when they differ,
// that is when a setuid bit took effect.
func euid(args []string) error {
	if err := need(args, 0, "no arguments"); err != nil {
		return err
	}
	uid, e := unix.Getuid(), unix.Geteuid()
	fmt.Printf("uid: %d\neuid: %d\n", uid, e)
	if uid == e {
		return fmt.Errorf("effective uid unchanged")
	}
	return nil
}

// getpidLoop makes args[0] getpid system calls, for the seccomp benchmark.
func getpidLoop(args []string) error {
	if err := need(args, 1, "N"); err != nil {
		return err
	}
	n, err := strconv.ParseFloat(args[0], 64) // accepts 1e6
	if err != nil || n < 0 {
		return usage("bad count " + strconv.Quote(args[0]))
	}
	for i := int64(0); i < int64(n); i++ {
		unix.Syscall(unix.SYS_GETPID, 0, 0, 0)
	}
	return nil
}
