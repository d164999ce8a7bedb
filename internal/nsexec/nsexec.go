// Package nsexec starts a program in new user and mount namespaces where the
// caller is root and its subordinate ids fill the other ids: the same maps
// the sandbox gets (package userns plans and writes them), so that what the
// image commands unpack shows with the right owners inside a sandbox.
//
// The sandbox's own parent/child hand-shake lives in package sandbox and
// initproc; this is the small general form used by rbox-image and tests.
package nsexec

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/userns"
)

// envSync names the environment variable that tells a re-executed child
// which descriptor to wait on for its id maps.
const envSync = "RBOX_NSEXEC_SYNC_FD"

// Plan returns the caller's id maps with the caller as root inside, exactly
// as a sandbox run without --uid/--gid maps them.
func Plan() (*userns.Plan, error) {
	c := userns.Caller{UID: uint32(os.Getuid()), GID: uint32(os.Getgid())}
	if u, err := user.LookupId(strconv.Itoa(os.Getuid())); err == nil {
		c.Name = u.Username
	} else {
		c.Name = strconv.Itoa(os.Getuid())
	}
	return userns.NewPlan(c, 0, 0)
}

// allCaps lists every capability the running kernel knows, so the child
// keeps them across its execve as ambient capabilities (it execs before its
// maps exist, as an unmapped user, which would otherwise drop them).
func allCaps() []uintptr {
	last := 40
	if b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			last = n
		}
	}
	caps := make([]uintptr, 0, last+1)
	for c := 0; c <= last; c++ {
		caps = append(caps, uintptr(c))
	}
	return caps
}

// Start starts cmd in new user and mount namespaces (plus extraFlags, e.g.
// unix.CLONE_NEWPID) and writes the caller's maps for it. The child must
// call Child early. The child gets SIGKILL if the calling thread dies.
func Start(cmd *exec.Cmd, extraFlags uintptr) error {
	plan, err := Plan()
	if err != nil {
		return err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer w.Close()
	fd := 3 + len(cmd.ExtraFiles)
	cmd.ExtraFiles = append(cmd.ExtraFiles, r)
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, envSync+"="+strconv.Itoa(fd))
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Cloneflags |= unix.CLONE_NEWUSER | unix.CLONE_NEWNS | extraFlags
	cmd.SysProcAttr.AmbientCaps = allCaps()
	if cmd.SysProcAttr.Pdeathsig == 0 {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	err = cmd.Start()
	r.Close()
	if err != nil {
		return err
	}
	if err := plan.Write(cmd.Process.Pid); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return err
	}
	msg := byte('1')
	if plan.SetgroupsDenied {
		msg = '2'
	}
	if _, err := w.Write([]byte{msg}); err != nil {
		return fmt.Errorf("release namespaced child: %w", err)
	}
	return nil
}

// Child must be called early by a program that may have been started by
// Start. It reports false if this process was not. Otherwise it waits for
// the maps, checks that it is root in its namespace and makes every mount
// private so nothing propagates back to the host.
func Child() (bool, error) {
	v, ok := os.LookupEnv(envSync)
	if !ok {
		return false, nil
	}
	os.Unsetenv(envSync)
	fd, err := strconv.Atoi(v)
	if err != nil {
		return true, fmt.Errorf("bad %s=%q", envSync, v)
	}
	f := os.NewFile(uintptr(fd), "nsexec-sync")
	var b [1]byte
	n, _ := f.Read(b[:])
	f.Close()
	if n != 1 || (b[0] != '1' && b[0] != '2') {
		return true, errors.New("parent failed to set up the user namespace id maps")
	}
	if os.Getuid() != 0 || os.Getgid() != 0 {
		return true, fmt.Errorf("not root in the new user namespace (uid %d gid %d)", os.Getuid(), os.Getgid())
	}
	if b[0] == '1' {
		// The caller's supplementary groups are unmapped here.
		if err := unix.Setgroups(nil); err != nil {
			return true, fmt.Errorf("setgroups: %w", err)
		}
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return true, fmt.Errorf("make mounts private: %w", err)
	}
	return true, nil
}

// InUserNS reports whether this process runs in a user namespace other
// than the initial one.
func InUserNS() bool {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/user", &st); err != nil {
		return false
	}
	return st.Ino != 0xEFFFFFFD // PROC_USER_INIT_INO
}

// Reexec runs this program again with the same arguments inside new user
// and mount namespaces (see Start), waits for it and returns its exit code.
// extraFiles are passed on as descriptors 3, 4, ... SIGINT, SIGTERM and
// SIGHUP are passed on to the child.
func Reexec(extraFlags uintptr, extraFiles ...*os.File) (int, error) {
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Args[0] = os.Args[0]
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.ExtraFiles = extraFiles
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	if err := Start(cmd, extraFlags); err != nil {
		return 125, err
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				_ = cmd.Process.Signal(s)
			case <-done:
				return
			}
		}
	}()
	err := cmd.Wait()
	close(done)
	if err == nil {
		return 0, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	return 125, err
}

// FullMapping reports whether this process's user namespace maps more than
// one uid (the caller has subordinate ids).
func FullMapping() bool {
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return false
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 1 {
		return true
	}
	f := strings.Fields(lines[0])
	return len(f) == 3 && f[2] != "1"
}
