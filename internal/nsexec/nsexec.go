// Package nsexec starts a program in new user and mount namespaces where the
// caller is root and its subordinate ids are mapped to 1..N, the way the
// image commands and the storage tests need it.
//
// INTEGRATION NOTE: this is a deliberately small stand-in for main's userns
// and subid packages (the parent/child map hand-shake of the sandbox core).
// When the image branch is merged, Start and Child should be replaced by
// calls into those packages; the only contract the image and overlay code
// relies on is "run with uid/gid 0 in a user namespace whose maps are
// CallerMaps(), in a private mount namespace, with full capabilities".
package nsexec

import (
	"bufio"
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
)

// envSync names the environment variable that tells a re-executed child
// which descriptor to wait on for its id maps.
const envSync = "RBOX_NSEXEC_SYNC_FD"

// MaxSubordinate is the largest subordinate range mapped (inside ids
// 1..MaxSubordinate), matching the sandbox core.
const MaxSubordinate = 65536

// IDMap is one line of a uid_map or gid_map.
type IDMap struct {
	Inside, Outside, Count uint32
}

// CallerMaps returns the uid and gid maps for the calling user: the caller
// as 0 and its first subordinate range as 1..N. Real root (which usually
// has no /etc/subuid entry) gets the identity map of 0..MaxSubordinate.
func CallerMaps() (uids, gids []IDMap, err error) {
	uid, gid := os.Getuid(), os.Getgid()
	if uid == 0 {
		id := []IDMap{{0, 0, MaxSubordinate + 1}}
		return id, id, nil
	}
	u, err := user.LookupId(strconv.Itoa(uid))
	name := ""
	if err == nil {
		name = u.Username
	}
	su, err := subordinate("/etc/subuid", name, uid)
	if err != nil {
		return nil, nil, err
	}
	sg, err := subordinate("/etc/subgid", name, uid)
	if err != nil {
		return nil, nil, err
	}
	return []IDMap{{0, uint32(uid), 1}, su}, []IDMap{{0, uint32(gid), 1}, sg}, nil
}

// subordinate finds the first range of user name (or numeric uid) in file.
func subordinate(file, name string, uid int) (IDMap, error) {
	f, err := os.Open(file)
	if err != nil {
		return IDMap{}, fmt.Errorf("no subordinate ids for uid %d: %w", uid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(strings.TrimSpace(sc.Text()), ":")
		if len(fields) != 3 || (fields[0] != name && fields[0] != strconv.Itoa(uid)) {
			continue
		}
		start, err1 := strconv.ParseUint(fields[1], 10, 32)
		count, err2 := strconv.ParseUint(fields[2], 10, 32)
		if err1 != nil || err2 != nil || count == 0 {
			continue
		}
		if count > MaxSubordinate {
			count = MaxSubordinate
		}
		return IDMap{1, uint32(start), uint32(count)}, nil
	}
	return IDMap{}, fmt.Errorf("no subordinate ids for user %q (uid %d) in %s", name, uid, file)
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
	uids, gids, err := CallerMaps()
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
	if err := writeMaps(cmd.Process.Pid, uids, gids); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return err
	}
	if _, err := w.Write([]byte{'1'}); err != nil {
		return fmt.Errorf("release namespaced child: %w", err)
	}
	return nil
}

func writeMaps(pid int, uids, gids []IDMap) error {
	if os.Geteuid() == 0 {
		for _, m := range []struct {
			file string
			maps []IDMap
		}{{"uid_map", uids}, {"gid_map", gids}} {
			var b strings.Builder
			for _, l := range m.maps {
				fmt.Fprintf(&b, "%d %d %d\n", l.Inside, l.Outside, l.Count)
			}
			if err := os.WriteFile(fmt.Sprintf("/proc/%d/%s", pid, m.file), []byte(b.String()), 0); err != nil {
				return fmt.Errorf("write %s: %w", m.file, err)
			}
		}
		return nil
	}
	for _, m := range []struct {
		prog string
		maps []IDMap
	}{{"newuidmap", uids}, {"newgidmap", gids}} {
		args := []string{strconv.Itoa(pid)}
		for _, l := range m.maps {
			args = append(args, strconv.FormatUint(uint64(l.Inside), 10),
				strconv.FormatUint(uint64(l.Outside), 10), strconv.FormatUint(uint64(l.Count), 10))
		}
		out, err := exec.Command(m.prog, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s %s: %v: %s", m.prog, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
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
	if n != 1 || b[0] != '1' {
		return true, errors.New("parent failed to set up the user namespace id maps")
	}
	if os.Getuid() != 0 || os.Getgid() != 0 {
		return true, fmt.Errorf("not root in the new user namespace (uid %d gid %d)", os.Getuid(), os.Getgid())
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
