package overlay

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// FuseProgram is the fuse-overlayfs executable looked up in PATH.
var FuseProgram = "fuse-overlayfs"

// fuseStartTimeout bounds the wait for fuse-overlayfs to mount.
const fuseStartTimeout = 20 * time.Second

// defaultPath is searched when PATH is empty (the sandbox's pid 1 runs
// with an empty environment).
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// fuseBinary finds fuse-overlayfs.
func fuseBinary() (string, error) {
	if p, err := exec.LookPath(FuseProgram); err == nil {
		return p, nil
	}
	if os.Getenv("PATH") == "" && !strings.Contains(FuseProgram, "/") {
		for _, dir := range strings.Split(defaultPath, ":") {
			p := dir + "/" + FuseProgram
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("%s not found in PATH (%w)", FuseProgram, ErrUnsupported)
}

// FuseAvailable reports why fuse-overlayfs cannot be used here, or nil.
func FuseAvailable() error {
	if _, err := fuseBinary(); err != nil {
		return err
	}
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("cannot open /dev/fuse: %w (%w)", err, ErrUnsupported)
	}
	f.Close()
	return nil
}

// mountFuse mounts a FUSE file system at target itself and starts
// fuse-overlayfs in the foreground to serve it (the daemon gets the
// /dev/fuse descriptor as its mount point, /dev/fd/3). The daemon is a
// child of the calling process, in the caller's user, mount and pid
// namespaces; it gets SIGKILL when the thread that started it dies and is
// killed anyway when the sandbox's pid namespace ends.
//
// The daemon gets a mount namespace of its own (a copy of the caller's), so
// that the sandbox's pivot_root calls, which move every process whose root
// is the old root, and the detaching of the old root do not pull its root
// and /proc from under it. root, when not empty, is a directory the daemon
// is chrooted into (lowers, upper and work are then paths inside it): it
// keeps the host's root out of the daemon's /proc/PID/root.
func mountFuse(lowers []string, upper, work, target, root string) (func() error, error) {
	prog, err := fuseBinary()
	if err != nil {
		return nil, err
	}
	if root != "" {
		// The daemon runs the binary from its root.
		if _, err := os.Stat(filepath.Join(root, prog)); err != nil {
			return nil, fmt.Errorf("fuse-overlayfs root %s lacks %s: %w", root, prog, err)
		}
	}
	for _, p := range append(append([]string{}, lowers...), upper, work) {
		if strings.ContainsAny(p, ",:") {
			return nil, fmt.Errorf("fuse-overlayfs cannot take a path with ',' or ':': %q", p)
		}
	}
	dev, err := os.OpenFile("/dev/fuse", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("cannot open /dev/fuse: %w (%w)", err, ErrUnsupported)
	}
	defer dev.Close()
	mopts := fmt.Sprintf("fd=%d,rootmode=40000,user_id=%d,group_id=%d,allow_other,default_permissions",
		dev.Fd(), os.Getuid(), os.Getgid())
	if err := unix.Mount("fuse-overlayfs", target, "fuse.fuse-overlayfs", unix.MS_NODEV|unix.MS_NOATIME, mopts); err != nil {
		return nil, fmt.Errorf("mount fuse at %s: %w (%w)", target, err, ErrUnsupported)
	}
	opts := "lowerdir=" + strings.Join(lowers, ":")
	if upper != "" {
		opts += ",upperdir=" + upper + ",workdir=" + work
	}
	errBuf := &limitedBuffer{max: 8 << 10}
	cmd := exec.Command(prog, "-f", "-o", opts, "/dev/fd/3")
	cmd.Stdout = errBuf
	cmd.Stderr = errBuf
	cmd.ExtraFiles = []*os.File{dev}
	// A mount namespace of its own: the sandbox's later pivot_root and
	// detaching of the old root leave the daemon's view (its root, its
	// /proc, which it uses for xattrs) intact.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setsid: true, Chroot: root, Cloneflags: syscall.CLONE_NEWNS}
	if root != "" {
		cmd.Dir = "/"
	}
	if err := cmd.Start(); err != nil {
		_ = unix.Unmount(target, unix.MNT_DETACH)
		return nil, fmt.Errorf("start %s: %w", FuseProgram, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	// The first access waits for the daemon's answer to FUSE_INIT, or
	// fails once the daemon is gone.
	ready := make(chan error, 1)
	go func() {
		var st unix.Stat_t
		ready <- unix.Stat(target, &st)
	}()
	fail := func(why string) (func() error, error) {
		_ = cmd.Process.Kill()
		_ = unix.Unmount(target, unix.MNT_DETACH)
		<-exited
		return nil, fmt.Errorf("%s %s: %s", FuseProgram, why, strings.TrimSpace(errBuf.String()))
	}
	select {
	case err := <-ready:
		if err != nil {
			return fail(fmt.Sprintf("did not start (%v)", err))
		}
	case err := <-exited:
		exited <- err
		return fail(fmt.Sprintf("exited before serving the mount (%v)", err))
	case <-time.After(fuseStartTimeout):
		return fail(fmt.Sprintf("did not answer within %v", fuseStartTimeout))
	}

	var once sync.Once
	var cerr error
	return func() error {
		once.Do(func() {
			if err := unix.Unmount(target, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
				cerr = fmt.Errorf("unmount fuse-overlayfs at %s: %w", target, err)
			}
			// The daemon's own mount namespace still holds the mount:
			// tell it to finish.
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
		})
		return cerr
	}, nil
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := l.max - len(l.b); room > 0 {
		if len(p) < room {
			room = len(p)
		}
		l.b = append(l.b, p[:room]...)
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}
