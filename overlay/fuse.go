package overlay

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
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

// FuseAvailable reports why fuse-overlayfs cannot be used here, or nil.
func FuseAvailable() error {
	if _, err := exec.LookPath(FuseProgram); err != nil {
		return fmt.Errorf("%s not found in PATH (%w)", FuseProgram, ErrUnsupported)
	}
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("cannot open /dev/fuse: %w (%w)", err, ErrUnsupported)
	}
	f.Close()
	return nil
}

// mountFuse starts fuse-overlayfs in the foreground as a child of the
// calling process, so that it shares the caller's user, mount and pid
// namespaces (it must: a FUSE mount is served by its process, and the
// mount has to be made in the sandbox's mount namespace). It gets SIGKILL
// when the thread that started it dies, and it is killed anyway when the
// sandbox's pid namespace ends. The function returns once the mount is up.
func mountFuse(lowers []string, upper, work, target string) (func() error, error) {
	if err := FuseAvailable(); err != nil {
		return nil, err
	}
	for _, p := range append(append([]string{}, lowers...), upper, work) {
		if strings.ContainsAny(p, ",:") {
			return nil, fmt.Errorf("fuse-overlayfs cannot take a path with ',' or ':': %q", p)
		}
	}
	opts := "lowerdir=" + strings.Join(lowers, ":")
	if upper != "" {
		opts += ",upperdir=" + upper + ",workdir=" + work
	}
	var before unix.Stat_t
	if err := unix.Stat(target, &before); err != nil {
		return nil, fmt.Errorf("fuse-overlayfs target: %w", err)
	}
	errBuf := &limitedBuffer{max: 8 << 10}
	cmd := exec.Command(FuseProgram, "-f", "-o", opts, target)
	cmd.Stdout = errBuf
	cmd.Stderr = errBuf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", FuseProgram, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	deadline := time.Now().Add(fuseStartTimeout)
	for delay := 200 * time.Microsecond; ; {
		select {
		case err := <-exited:
			return nil, fmt.Errorf("%s exited before mounting (%v): %s", FuseProgram, err, strings.TrimSpace(errBuf.String()))
		default:
		}
		var st unix.Stat_t
		if unix.Stat(target, &st) == nil && st.Dev != before.Dev {
			var sfs unix.Statfs_t
			if unix.Statfs(target, &sfs) == nil && sfs.Type == unix.FUSE_SUPER_MAGIC {
				break
			}
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return nil, fmt.Errorf("%s did not mount %s within %v: %s", FuseProgram, target, fuseStartTimeout, strings.TrimSpace(errBuf.String()))
		}
		time.Sleep(delay)
		if delay < 5*time.Millisecond {
			delay *= 2
		}
	}

	var once sync.Once
	var cerr error
	return func() error {
		once.Do(func() {
			if err := unix.Unmount(target, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
				cerr = fmt.Errorf("unmount fuse-overlayfs at %s: %w", target, err)
			}
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
