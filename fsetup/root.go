package fsetup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/overlay"
	"github.com/rbox-dev/rbox/sysplan"
)

// A root other than the default host view — a rootfs directory, an image's
// layers, or the host view made writable — is mounted while the host's
// root is still /, so that fuse-overlayfs, which is dynamically linked,
// starts from the host's files. It happens between making the setup tmpfs
// and pivoting into it; the mounts land under setupNewRoot, which becomes
// /newroot. The host directories are opened before the setup tmpfs covers
// base (they may lie under it) and bound back under sourcesDir.

// setupNewRoot is /newroot as seen before the first pivot.
const setupNewRoot = base + "/newroot"

// helperRoot is the root fuse-overlayfs runs in: the host's system
// directories read-only (for its program and libraries), a /proc, and the
// directories it stacks, below sources and scratch. A root of its own keeps
// it out of the pivots, and the host's root out of its /proc/PID/root.
const helperRoot = base + "/helper"

// scratchDir holds the throw-away upper and work directories, in the setup
// tmpfs: they vanish with the sandbox's mount namespace.
const scratchDir = helperRoot + "/overlay"

// sourcesDir holds binds of the host directories an overlay is made of.
const sourcesDir = helperRoot + "/sources"

// builder holds what the Go code that mounts a custom root keeps between
// its steps.
type builder struct {
	cfg     *Config
	sources *rootSources // host directories of the root
	// keptUpper and keptWork are the bound --overlay-dir directories.
	keptUpper, keptWork string
	helperReady         bool // helperRoot is filled
}

// rootSources are O_PATH descriptors of the host directories of the root,
// opened before the setup tmpfs hides base.
type rootSources struct {
	lowers      []int
	upperParent int // parent of the kept upper and work directories, or -1
}

// close closes the descriptors (once: it may be called again).
func (r *rootSources) close() {
	if r == nil {
		return
	}
	for _, fd := range append(r.lowers, r.upperParent) {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	r.lowers, r.upperParent = nil, -1
}

// openRootSources opens the host directories of a custom root.
func (b *builder) openRootSources() error {
	c := b.cfg
	b.sources = &rootSources{upperParent: -1}
	open := func(p string) (int, error) {
		fd, err := unix.Open(p, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, fmt.Errorf("%s: %w", p, err)
		}
		return fd, nil
	}
	for _, l := range c.RootLowers {
		fd, err := open(l)
		if err != nil {
			return err
		}
		b.sources.lowers = append(b.sources.lowers, fd)
	}
	if c.UpperDir != "" {
		if filepath.Dir(c.UpperDir) != filepath.Dir(c.WorkDir) {
			return fmt.Errorf("overlay work directory %s is not beside the upper directory %s", c.WorkDir, c.UpperDir)
		}
		fd, err := open(filepath.Dir(c.UpperDir))
		if err != nil {
			return err
		}
		b.sources.upperParent = fd
	}
	return nil
}

// attachSource binds the directory fd at sourcesDir/name and returns that
// path.
func attachSource(cfg *Config, fd int, name string) (string, error) {
	p := filepath.Join(sourcesDir, name)
	if err := os.MkdirAll(p, 0o755); err != nil {
		return "", err
	}
	dst, err := unix.Open(p, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	defer unix.Close(dst)
	if err := attachTree(cfg, fd, dst, 0); err != nil {
		return "", fmt.Errorf("bind an overlay directory: %w", err)
	}
	return p, nil
}

// customRoot reports whether the root is not the plain host view.
func (c *Config) customRoot() bool { return len(c.RootLowers) > 0 || c.Overlay }

// prepareRoot mounts the custom root at setupNewRoot (called with the host
// root as / and the setup tmpfs at base).
func (b *builder) prepareRoot() error {
	c := b.cfg
	defer b.sources.close()
	d, err := overlay.ParseDriver(c.Driver)
	if err != nil {
		return err
	}
	if len(c.RootLowers) > 0 {
		lowers := make([]string, len(b.sources.lowers))
		for i, fd := range b.sources.lowers {
			if lowers[i], err = attachSource(c, fd, fmt.Sprintf("lower%d", i)); err != nil {
				return err
			}
		}
		if !c.Overlay {
			if len(c.RootLowers) != 1 {
				return errors.New("several layers need an overlay")
			}
			// A read-only rootfs is a read-only bind.
			_, err := overlay.Mount(overlay.Native, lowers, "", "", setupNewRoot)
			return err
		}
		upper, work, err := b.upperFor("")
		if err != nil {
			return err
		}
		if _, _, err := overlay.MountWith(d, lowers, upper, work, setupNewRoot, b.overlayOptions()); err != nil {
			return fmt.Errorf("mount the root overlay: %w", err)
		}
		return nil
	}
	// The host view made writable: an overlay on each host system
	// directory in the new root's tmpfs (enterSetupRoot mounted it), the
	// merged-/usr symlinks as on the host.
	entries, err := hostEntries(hostSystemDirs)
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.name
		target := filepath.Join(setupNewRoot, name)
		if e.link != "" {
			if err := os.Symlink(e.link, target); err != nil {
				return err
			}
			continue
		}
		if err := os.Mkdir(target, 0o755); err != nil {
			return err
		}
		fd, err := unix.Open("/"+name, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		lower, err := attachSource(c, fd, "host-"+name)
		unix.Close(fd)
		if err != nil {
			return err
		}
		upper, work, err := b.upperFor(name)
		if err != nil {
			return err
		}
		if _, _, err := overlay.MountWith(d, []string{lower}, upper, work, target, b.overlayOptions()); err != nil {
			return fmt.Errorf("overlay on /%s: %w", name, err)
		}
		// As for the read-only host view: no set-id programs of the host.
		if err := noSetID(c, target); err != nil {
			return fmt.Errorf("/%s: mount_setattr: %w", name, err)
		}
	}
	return nil
}

// upperFor returns the upper and work directories of the overlay for sub
// ("" for the root): under Config.UpperDir/WorkDir when the writes are to
// be kept, else in the setup tmpfs.
func (b *builder) upperFor(sub string) (string, string, error) {
	c := b.cfg
	var upper, work string
	if c.UpperDir != "" {
		if b.keptUpper == "" {
			// Upper and work must be on one mount: bind their parent.
			parent, err := attachSource(c, b.sources.upperParent, "upper-parent")
			if err != nil {
				return "", "", err
			}
			b.keptUpper = filepath.Join(parent, filepath.Base(c.UpperDir))
			b.keptWork = filepath.Join(parent, filepath.Base(c.WorkDir))
		}
		upper, work = filepath.Join(b.keptUpper, sub), filepath.Join(b.keptWork, sub)
	} else {
		upper, work = filepath.Join(scratchDir, sub, "upper"), filepath.Join(scratchDir, sub, "work")
	}
	for _, d := range []string{upper, work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", "", fmt.Errorf("overlay directory: %w", err)
		}
	}
	return upper, work, nil
}

// overlayOptions gives fuse-overlayfs its own root (made once, when it is
// first needed).
func (b *builder) overlayOptions() overlay.Options {
	return overlay.Options{FuseRoot: func() (string, error) {
		if !b.helperReady {
			if err := b.makeHelperRoot(); err != nil {
				return "", fmt.Errorf("fuse-overlayfs root: %w", err)
			}
			b.helperReady = true
		}
		return helperRoot, nil
	}}
}

// helperSystemDirs are the host directories fuse-overlayfs needs.
var helperSystemDirs = []string{"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"}

// makeHelperRoot fills helperRoot (called with the host's root as /): the
// ops of the default view's system directories and /proc, with the host's
// root and helperRoot in their slots.
func (b *builder) makeHelperRoot() error {
	entries, err := hostEntries(helperSystemDirs)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(helperRoot, 0o755); err != nil {
		return err
	}
	host, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(host)
	root, err := unix.Open(helperRoot, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(root)
	return run(func(p *sysplan.Program) error {
		p.Slots[slotHost], p.Slots[slotRoot] = uintptr(host), uintptr(root)
		g := newGen(p, b.cfg)
		g.hostView(entries)
		// fuse-overlayfs reaches its directories through /proc/self/fd.
		g.proc(b.cfg.NewPID, false)
		return nil
	})
}

// attachTree clones the mount tree at the descriptor src (recursively) and
// attaches the clone on dst, with the attributes attrs added: gen's
// attachTree run on its own, with src and dst in their slots.
func attachTree(cfg *Config, src, dst int, attrs uint64) error {
	return run(func(p *sysplan.Program) error {
		p.Slots[slotSrc], p.Slots[slotDst] = uintptr(src), uintptr(dst)
		g := newGen(p, cfg)
		g.setWhat("bind")
		g.attachTree(slotSrc, at(slotDst), attrs, slotMnt)
		return nil
	})
}

// noSetID makes the mount at target nosuid and nodev: with mount_setattr,
// or on a kernel without it with a remount that keeps the locked flags.
func noSetID(c *Config, target string) error {
	if c.Legacy {
		flags := uintptr(unix.MS_REMOUNT|unix.MS_BIND|unix.MS_NOSUID|unix.MS_NODEV) | overlay.LockedFlags(target)
		return unix.Mount("", target, "", flags, "")
	}
	return unix.MountSetattr(unix.AT_FDCWD, target, 0, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV})
}
