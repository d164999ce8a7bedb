// Package overlay assembles a root filesystem from read-only lower
// directories (a rootfs directory, or an image's layers) and an upper
// directory that takes the writes, from inside the sandbox's user and
// mount namespaces, before pivot_root.
//
// Three drivers exist:
//
//   - Native ("overlay"): the kernel's overlayfs, mounted with the userxattr
//     option, which unprivileged user namespaces may use since Linux 5.11.
//   - Fuse ("fuse-overlayfs"): the fuse-overlayfs program, started by the
//     calling process (the sandbox's pid 1) inside the sandbox's namespaces
//     with -f and a parent-death signal, so it lives exactly as long as the
//     sandbox: it is killed with the sandbox's pid namespace, or by its
//     parent-death signal when pid is shared, and its mount goes away with
//     the mount namespace.
//   - VFS ("vfs"): no overlay at all; the lowers are copied into the upper
//     directory, which is then bound at the target. Slow, but it works
//     everywhere.
//
// Whiteouts and opaque directories in the lowers are understood in the
// kernel's format (0/0 character devices, user.overlay.opaque or
// trusted.overlay.opaque) and in the AUFS format (.wh.NAME, .wh..wh..opq),
// the latter only by the fuse and vfs drivers.
//
// This package links no container libraries: it is on the sandbox's hot
// path.
package overlay

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/rbox-dev/rbox/kernelapi"
)

// Driver names a way of assembling the root filesystem.
type Driver string

const (
	// Auto tries Native and falls back to Fuse when the kernel refuses.
	Auto   Driver = ""
	Native Driver = "overlay"
	Fuse   Driver = "fuse-overlayfs"
	VFS    Driver = "vfs"
)

// Drivers lists the explicit drivers in order of preference.
var Drivers = []Driver{Native, Fuse, VFS}

// ParseDriver accepts the names used by --storage-driver ("" or "auto" for
// Auto).
func ParseDriver(s string) (Driver, error) {
	switch s {
	case "", "auto":
		return Auto, nil
	case string(Native), "native":
		return Native, nil
	case string(Fuse), "fuse":
		return Fuse, nil
	case string(VFS):
		return VFS, nil
	}
	return Auto, fmt.Errorf("unknown storage driver %q (want overlay, fuse-overlayfs or vfs)", s)
}

func (d Driver) String() string {
	if d == Auto {
		return "auto"
	}
	return string(d)
}

// ErrUnsupported wraps the reason a driver cannot work here.
var ErrUnsupported = errors.New("not supported here")

// Mount assembles lowers (top first) with upper and work at target and
// returns a function that undoes it. It must run inside the sandbox's user
// and mount namespaces, as root there.
//
// An empty upper makes a read-only overlay (work is then ignored). upper
// and work must be on the same file system; for a throw-away root, put them
// on a tmpfs of the sandbox (see Scratch); for a persistent one use a host
// directory and WorkDirFor.
//
// With Auto, Native is tried first and Fuse used if the kernel refuses;
// Used reports what was chosen.
func Mount(d Driver, lowers []string, upper, work, target string) (cleanup func() error, err error) {
	c, _, err := MountUsed(d, lowers, upper, work, target)
	return c, err
}

// MountUsed is Mount that also reports which driver was used.
func MountUsed(d Driver, lowers []string, upper, work, target string) (cleanup func() error, used Driver, err error) {
	return MountWith(d, lowers, upper, work, target, Options{})
}

// Options tune MountWith.
type Options struct {
	// FuseRoot, if set, is called when fuse-overlayfs is about to be used
	// and returns a directory to chroot the daemon into, with the lowers,
	// upper and work directories at the same paths below it (see
	// mountFuse). It returns "" to run the daemon in the caller's root.
	FuseRoot func() (string, error)
}

// MountWith is MountUsed with options.
func MountWith(d Driver, lowers []string, upper, work, target string, o Options) (cleanup func() error, used Driver, err error) {
	fuse := func() (func() error, error) {
		root := ""
		if o.FuseRoot != nil {
			if root, err = o.FuseRoot(); err != nil {
				return nil, err
			}
		}
		in := func(p string) string {
			if root == "" || p == "" {
				return p
			}
			return strings.TrimPrefix(p, strings.TrimSuffix(root, "/"))
		}
		var ls []string
		for _, l := range lowers {
			if root != "" && !strings.HasPrefix(l, root+"/") {
				return nil, fmt.Errorf("fuse-overlayfs: %s is not below its root %s", l, root)
			}
			ls = append(ls, in(l))
		}
		return mountFuse(ls, in(upper), in(work), target, root)
	}
	if len(lowers) == 0 {
		return nil, d, errors.New("overlay: no lower directories")
	}
	for _, l := range lowers {
		if err := checkDir(l); err != nil {
			return nil, d, fmt.Errorf("overlay lower: %w", err)
		}
	}
	if upper != "" {
		if work == "" {
			return nil, d, errors.New("overlay: an upper directory needs a work directory")
		}
		for _, p := range []string{upper, work} {
			if err := os.MkdirAll(p, 0o755); err != nil {
				return nil, d, fmt.Errorf("overlay: %w", err)
			}
		}
	}
	switch d {
	case Native:
		c, err := mountNative(lowers, upper, work, target)
		return c, Native, err
	case Fuse:
		c, err := fuse()
		return c, Fuse, err
	case VFS:
		c, err := mountVFS(lowers, upper, work, target)
		return c, VFS, err
	case Auto:
		if !kernelapi.RootlessOverlay() {
			// Before Linux 5.11 overlayfs refuses a user namespace.
			c, err := fuse()
			return c, Fuse, err
		}
		c, err := mountNative(lowers, upper, work, target)
		if err == nil {
			return c, Native, nil
		}
		if !errors.Is(err, ErrUnsupported) {
			return nil, Native, err
		}
		c, ferr := fuse()
		if ferr != nil {
			return nil, Fuse, fmt.Errorf("%v; and %w", err, ferr)
		}
		return c, Fuse, nil
	}
	return nil, d, fmt.Errorf("overlay: unknown driver %q", d)
}

func checkDir(p string) error {
	if !filepath.IsAbs(p) {
		return fmt.Errorf("%q is not an absolute path", p)
	}
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", p)
	}
	return nil
}

// WorkDirFor returns the work directory used with a persistent upper
// directory: a hidden sibling, so that upper holds exactly the changes and
// both are on the same file system.
func WorkDirFor(upper string) string {
	upper = filepath.Clean(upper)
	return filepath.Join(filepath.Dir(upper), "."+filepath.Base(upper)+".rbox-work")
}

// escapeOpt escapes a path for the comma-separated mount option string of
// mount(2) and fuse-overlayfs.
func escapeOpt(p string) string {
	r := strings.NewReplacer(`\`, `\\`, `,`, `\,`, `:`, `\:`)
	return r.Replace(p)
}
