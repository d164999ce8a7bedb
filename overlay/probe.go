package overlay

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Result is what probing one driver found.
type Result struct {
	Driver Driver
	Err    error // nil when the driver works here
}

// Probe tells which driver Auto would use here: Native if the kernel
// mounts overlayfs with userxattr in this user namespace, else Fuse if
// fuse-overlayfs works, else VFS (with the reasons as the error). It must
// run inside the sandbox's user and mount namespaces, as root there.
func Probe() (Driver, error) {
	nerr := probeOne(Native)
	if nerr == nil {
		return Native, nil
	}
	ferr := probeOne(Fuse)
	if ferr == nil {
		return Fuse, nil
	}
	return VFS, fmt.Errorf("native overlay: %v; fuse-overlayfs: %v", nerr, ferr)
}

// ProbeAll tries every driver (for `rbox check`).
func ProbeAll() []Result {
	var res []Result
	for _, d := range Drivers {
		res = append(res, Result{d, probeOne(d)})
	}
	return res
}

// probeOne mounts a two-layer overlay with a whiteout and an opaque
// directory on a scratch tmpfs and checks what the merged view shows.
func probeOne(d Driver) (err error) {
	dir, err := os.MkdirTemp("", "rbox-overlay-probe-")
	if err != nil {
		return err
	}
	defer os.Remove(dir)
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "mode=0700"); err != nil {
		return fmt.Errorf("scratch tmpfs: %w", err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	p := func(s ...string) string { return filepath.Join(append([]string{dir}, s...)...) }
	for _, s := range []string{"l1/gone", "l1/opq/hidden", "l2/opq", "upper", "work", "merged"} {
		if err := os.MkdirAll(p(s), 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(p("l2", "keep"), []byte("x"), 0o644); err != nil {
		return err
	}
	if err := unix.Mknod(p("l2", "gone"), unix.S_IFCHR, 0); err != nil {
		return fmt.Errorf("make a whiteout: %w", err)
	}
	if err := unix.Setxattr(p("l2", "opq"), "user.overlay.opaque", []byte("y"), 0); err != nil {
		return fmt.Errorf("mark an opaque directory: %w", err)
	}
	cleanup, err := Mount(d, []string{p("l2"), p("l1")}, p("upper"), p("work"), p("merged"))
	if err != nil {
		return err
	}
	defer func() {
		if cerr := cleanup(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	if _, err := os.Stat(p("merged", "keep")); err != nil {
		return fmt.Errorf("merged view lacks a lower file: %w", err)
	}
	if _, err := os.Lstat(p("merged", "gone")); !errors.Is(err, os.ErrNotExist) {
		return errors.New("whiteout not honoured")
	}
	if _, err := os.Lstat(p("merged", "opq", "hidden")); !errors.Is(err, os.ErrNotExist) {
		return errors.New("opaque directory not honoured")
	}
	if err := os.WriteFile(p("merged", "new"), []byte("y"), 0o644); err != nil {
		return fmt.Errorf("write to the merged view: %w", err)
	}
	if err := os.Remove(p("merged", "keep")); err != nil {
		return fmt.Errorf("delete a lower file: %w", err)
	}
	return nil
}

// Scratch mounts a fresh tmpfs at dir and makes upper and work directories
// in it, for a throw-away overlay whose writes vanish with the sandbox's
// mount namespace. size is in bytes (0: the kernel default, half of RAM).
func Scratch(dir string, size int64) (upper, work string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", err
	}
	opts := "mode=0755"
	if size > 0 {
		opts += fmt.Sprintf(",size=%d", size)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, opts); err != nil {
		return "", "", fmt.Errorf("scratch tmpfs at %s: %w", dir, err)
	}
	upper, work = filepath.Join(dir, "upper"), filepath.Join(dir, "work")
	for _, p := range []string{upper, work} {
		if err := os.Mkdir(p, 0o755); err != nil {
			return "", "", err
		}
	}
	return upper, work, nil
}
