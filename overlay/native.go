package overlay

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// mountNative mounts the kernel's overlayfs with userxattr. It uses the
// file-system context API so every lower is passed on its own ("lowerdir+",
// Linux 6.8+: no page-size limit on the option string, no escaping), and
// falls back to mount(2) with one option string on older kernels.
func mountNative(lowers []string, upper, work, target string) (func() error, error) {
	if upper == "" && len(lowers) == 1 {
		// overlayfs needs two lowers without an upper; one lower read-only
		// is a plain read-only bind.
		return bindMount(lowers[0], target, true)
	}
	err := mountNativeFsconfig(lowers, upper, work, target)
	if errors.Is(err, errNoLowerdirPlus) {
		err = mountNativeLegacy(lowers, upper, work, target)
	}
	if err != nil {
		return nil, err
	}
	return func() error {
		if err := unix.Unmount(target, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("unmount overlay at %s: %w", target, err)
		}
		return nil
	}, nil
}

var errNoLowerdirPlus = errors.New("kernel lacks lowerdir+")

func mountNativeFsconfig(lowers []string, upper, work, target string) error {
	fd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		if err == unix.ENOSYS {
			return errNoLowerdirPlus
		}
		return fmt.Errorf("overlayfs: %w (%w)", err, ErrUnsupported)
	}
	defer unix.Close(fd)
	fail := func(what string, err error) error {
		msg := fsMessages(fd)
		e := fmt.Errorf("overlayfs %s: %w%s", what, err, msg)
		if err == unix.EPERM || err == unix.EINVAL || err == unix.ENODEV || err == unix.EOPNOTSUPP {
			e = fmt.Errorf("%w (%w)", e, ErrUnsupported)
		}
		return e
	}
	for i, l := range lowers {
		if err := unix.FsconfigSetString(fd, "lowerdir+", l); err != nil {
			if i == 0 && err == unix.EINVAL {
				if m := fsMessages(fd); strings.Contains(m, "nknown parameter") {
					return errNoLowerdirPlus
				}
			}
			return fail("lowerdir "+l, err)
		}
	}
	if upper != "" {
		if err := unix.FsconfigSetString(fd, "upperdir", upper); err != nil {
			return fail("upperdir "+upper, err)
		}
		if err := unix.FsconfigSetString(fd, "workdir", work); err != nil {
			return fail("workdir "+work, err)
		}
	}
	if err := unix.FsconfigSetFlag(fd, "userxattr"); err != nil {
		return fail("userxattr", err)
	}
	if err := unix.FsconfigCreate(fd); err != nil {
		return fail("create", err)
	}
	mfd, err := unix.Fsmount(fd, unix.FSMOUNT_CLOEXEC, 0)
	if err != nil {
		return fail("fsmount", err)
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move overlay mount to %s: %w", target, err)
	}
	return nil
}

// fsMessages drains the kernel's error messages from a file-system context.
func fsMessages(fd int) string {
	var msgs []string
	buf := make([]byte, 1024)
	for {
		n, err := unix.Read(fd, buf)
		if err != nil || n <= 0 {
			break
		}
		msgs = append(msgs, strings.TrimSpace(string(buf[:n])))
	}
	if len(msgs) == 0 {
		return ""
	}
	return " [" + strings.Join(msgs, "; ") + "]"
}

func mountNativeLegacy(lowers []string, upper, work, target string) error {
	esc := make([]string, len(lowers))
	for i, l := range lowers {
		esc[i] = escapeOpt(l)
	}
	opts := "lowerdir=" + strings.Join(esc, ":")
	if upper != "" {
		opts += ",upperdir=" + escapeOpt(upper) + ",workdir=" + escapeOpt(work)
	}
	opts += ",userxattr"
	if len(opts) >= unix.Getpagesize() {
		return fmt.Errorf("overlayfs: %d lower directories do not fit in one mount option string on this kernel", len(lowers))
	}
	if err := unix.Mount("overlay", target, "overlay", 0, opts); err != nil {
		e := fmt.Errorf("mount overlayfs at %s: %w", target, err)
		if err == unix.EPERM || err == unix.EINVAL || err == unix.ENODEV {
			e = fmt.Errorf("%w (%w)", e, ErrUnsupported)
		}
		return e
	}
	return nil
}

func bindMount(src, target string, readonly bool) (func() error, error) {
	if err := unix.Mount(src, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return nil, fmt.Errorf("bind %s at %s: %w", src, target, err)
	}
	if readonly {
		// Keep the flags the kernel locked for us (nodev etc.) and add ro.
		flags := lockedFlags(target)
		if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|flags, ""); err != nil {
			_ = unix.Unmount(target, unix.MNT_DETACH)
			return nil, fmt.Errorf("make %s read-only: %w", target, err)
		}
	}
	return func() error {
		if err := unix.Unmount(target, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("unmount %s: %w", target, err)
		}
		return nil
	}, nil
}

// lockedFlags returns the mount flags of the mount at path that a remount
// inside a user namespace must keep.
// LockedFlags are the flags of the mount at path that a remount with
// mount(2) must repeat (in a user namespace the kernel locks them).
func LockedFlags(path string) uintptr { return lockedFlags(path) }

func lockedFlags(path string) uintptr {
	var st unix.Statfs_t
	if unix.Statfs(path, &st) != nil {
		return 0
	}
	var flags uintptr
	for _, f := range []struct{ st, ms uintptr }{
		{unix.ST_NOSUID, unix.MS_NOSUID},
		{unix.ST_NODEV, unix.MS_NODEV},
		{unix.ST_NOEXEC, unix.MS_NOEXEC},
		{unix.ST_NOATIME, unix.MS_NOATIME},
		{unix.ST_NODIRATIME, unix.MS_NODIRATIME},
		{unix.ST_RELATIME, unix.MS_RELATIME},
	} {
		if uintptr(st.Flags)&f.st != 0 {
			flags |= f.ms
		}
	}
	return flags
}
