package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// readFile reads args[0] and prints its first line.
func readFile(args []string) error {
	if err := need(args, 1, "PATH"); err != nil {
		return err
	}
	data, err := os.ReadFile(args[0])
	if err != nil {
		return err
	}
	fmt.Printf("data: %s\n", firstLine(data))
	return nil
}

// readCwd prints the working directory and reads args[0] relative to it.
func readCwd(args []string) error {
	if err := need(args, 1, "NAME"); err != nil {
		return err
	}
	if wd, err := os.Getwd(); err == nil {
		fmt.Printf("cwd: %s\n", wd)
	} else {
		fmt.Printf("cwd: %s\n", errnoName(err))
	}
	return readFile(args)
}

// writeFile creates args[0] and writes to it.
func writeFile(args []string) error {
	if err := need(args, 1, "PATH"); err != nil {
		return err
	}
	return os.WriteFile(args[0], []byte("written by the probe\n"), 0o644)
}

// openWrite opens args[0] for writing and closes it without writing: for
// files where a write would change the host.
func openWrite(args []string) error {
	if err := need(args, 1, "PATH"); err != nil {
		return err
	}
	fd, err := unix.Open(args[0], unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	return unix.Close(fd)
}

func mkdir(args []string) error {
	if err := need(args, 1, "PATH"); err != nil {
		return err
	}
	return unix.Mkdir(args[0], 0o755)
}

func firstLine(b []byte) []byte {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	if len(b) > 200 {
		b = b[:200]
	}
	return b
}

// fds lists the file descriptors that reached this process through exec:
// those without close-on-exec. The Go runtime opens its own files with
// close-on-exec, so they are left out. Anything beyond 0, 1 and 2 counts
// as a leak.
func fds(args []string) error {
	if err := need(args, 0, "no arguments"); err != nil {
		return err
	}
	var r report
	limit := 1024
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil && rl.Cur < 1<<16 {
		limit = int(rl.Cur)
	}
	for fd := 0; fd < limit; fd++ {
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil || flags&unix.FD_CLOEXEC != 0 {
			continue
		}
		target, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
		if err != nil {
			target = errnoName(err)
		}
		item := fmt.Sprintf("fd %d", fd)
		if fd <= 2 {
			r.note(item, target)
		} else {
			r.hit(item, target)
		}
	}
	return r.result()
}

// openPid tries what the /proc/self/exe class of escapes needs of process
// args[0]: its executable for reading and writing, its memory, its open
// files.
func openPid(args []string) error {
	if err := need(args, 1, "PID"); err != nil {
		return err
	}
	dir := "/proc/" + args[0]
	var r report
	_, err := os.Readlink(dir + "/exe")
	r.try("readlink exe", err)
	for _, m := range []struct {
		name string
		flag int
	}{{"O_RDONLY", unix.O_RDONLY}, {"O_RDWR", unix.O_RDWR}, {"O_WRONLY", unix.O_WRONLY}} {
		fd, err := unix.Open(dir+"/exe", m.flag|unix.O_CLOEXEC, 0)
		r.try("open exe "+m.name, err)
		if err == nil {
			if seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0); err == nil {
				r.note("exe seals", fmt.Sprintf("%#x", seals))
			}
			unix.Close(fd)
		}
	}
	// environ and mem: on the fast path pid 1 shares the memory of the rbox
	// parent, which holds the caller's whole environment.
	for _, f := range []string{"mem", "environ"} {
		fd, err := unix.Open(dir+"/"+f, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		r.try("open "+f, err)
		if err == nil {
			unix.Close(fd)
		}
	}
	entries, err := os.ReadDir(dir + "/fd")
	if err != nil {
		r.note("list fd", errnoName(err))
	}
	for _, e := range entries {
		fd, err := unix.Open(dir+"/fd/"+e.Name(), unix.O_PATH|unix.O_CLOEXEC, 0)
		r.try("open fd/"+e.Name(), err)
		if err == nil {
			unix.Close(fd)
		}
	}
	return r.result()
}

// mountFlags turns statfs flags into the mount(2) flags a remount must
// repeat: the kernel refuses to change the locked ones.
func mountFlags(st *unix.Statfs_t) uintptr {
	var flags uintptr
	for _, f := range []struct{ st, ms int64 }{
		{unix.ST_NOSUID, unix.MS_NOSUID}, {unix.ST_NODEV, unix.MS_NODEV}, {unix.ST_NOEXEC, unix.MS_NOEXEC},
		{unix.ST_NOATIME, unix.MS_NOATIME}, {unix.ST_NODIRATIME, unix.MS_NODIRATIME}, {unix.ST_RELATIME, unix.MS_RELATIME},
	} {
		if st.Flags&f.st != 0 {
			flags |= uintptr(f.ms)
		}
	}
	return flags
}

// remount makes the mount at args[0] writable with a bind remount that
// keeps its other flags, then writes a file in it.
func remount(args []string) error {
	if err := need(args, 1, "DIR"); err != nil {
		return err
	}
	dir := args[0]
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return err
	}
	flags := mountFlags(&st) | unix.MS_REMOUNT | unix.MS_BIND
	if err := unix.Mount("", dir, "", flags, ""); err != nil {
		return fmt.Errorf("remount read-write: %w", err)
	}
	name := filepath.Join(dir, "written-by-probe")
	if err := os.WriteFile(name, []byte("escaped\n"), 0o644); err != nil {
		return fmt.Errorf("write after remount: %w", err)
	}
	return nil
}

// nestedRemount runs remount in a new user and mount namespace, where the
// probe is root over a copy of the mount table.
func nestedRemount(args []string) error {
	if err := need(args, 1, "DIR"); err != nil {
		return err
	}
	cmd := exec.Command("/proc/self/exe", "remount", args[0])
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  unix.CLONE_NEWUSER | unix.CLONE_NEWNS,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("new user namespace: %w", err)
	}
	// The inner probe printed its own verdict.
	err := cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return exitCode(ee.ExitCode())
	}
	if err != nil {
		return err
	}
	return exitCode(0)
}

// mknod makes a node at args[0]: a character device (1:3, like /dev/null)
// for "c", a fifo for "p"; it removes it again.
func mknod(args []string) error {
	if err := need(args, 2, "PATH c|p"); err != nil {
		return err
	}
	mode := uint32(unix.S_IFIFO | 0o600)
	dev := 0
	switch args[1] {
	case "c":
		mode, dev = unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))
	case "p":
	default:
		return usage("type must be c or p")
	}
	if err := unix.Mknod(args[0], mode, dev); err != nil {
		return err
	}
	return os.Remove(args[0])
}

// devices lists every device node under /dev, without following
// symlinks. It succeeds when it finds one outside the allowed list of
// args (paths relative to /dev).
func devices(args []string) error {
	allowed := map[string]bool{}
	for _, a := range args {
		allowed[a] = true
	}
	var r report
	var found []string
	err := filepath.WalkDir("/dev", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // unreadable directories hold nothing we can use
		}
		if d.Type()&(fs.ModeDevice|fs.ModeCharDevice) == 0 {
			return nil
		}
		found = append(found, p)
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(found)
	for _, p := range found {
		var st unix.Stat_t
		desc := "?"
		if unix.Lstat(p, &st) == nil {
			desc = fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		}
		rel, _ := filepath.Rel("/dev", p)
		if allowed[rel] {
			r.note(rel, desc)
		} else {
			r.hit(rel, "unexpected "+desc)
		}
	}
	return r.result()
}

// masked reports for each path whether it is covered: a file by the null
// device, a directory by an empty read-only tmpfs. It succeeds when one
// is not.
func masked(args []string) error {
	var r report
	for _, p := range args {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			r.note(p, errnoName(err))
			continue
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFCHR:
			if unix.Major(st.Rdev) == 1 && unix.Minor(st.Rdev) == 3 {
				r.note(p, "masked")
				continue
			}
		case unix.S_IFDIR:
			var fsst unix.Statfs_t
			entries, _ := os.ReadDir(p)
			if unix.Statfs(p, &fsst) == nil && fsst.Type == unix.TMPFS_MAGIC && fsst.Flags&unix.ST_RDONLY != 0 && len(entries) == 0 {
				r.note(p, "masked")
				continue
			}
		}
		r.hit(p, "visible")
	}
	return r.result()
}

// readOnly reports for each path whether the mount it is on is read-only.
// It succeeds when one is writable.
func readOnly(args []string) error {
	var r report
	for _, p := range args {
		var st unix.Statfs_t
		if err := unix.Statfs(p, &st); err != nil {
			r.note(p, errnoName(err))
			continue
		}
		if st.Flags&unix.ST_RDONLY != 0 {
			r.note(p, "read-only")
		} else {
			r.hit(p, "writable")
		}
	}
	return r.result()
}

// pidArg reads a pid argument.
func pidArg(s string) (int, error) {
	pid, err := strconv.Atoi(s)
	if err != nil || pid <= 0 {
		return 0, usage("bad pid " + strconv.Quote(s))
	}
	return pid, nil
}
