package overlay

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// vfsMarker, in the work directory, records that upper already holds the
// merged copy of the lowers (a persistent upper is copied only once).
const vfsMarker = "rbox-vfs-populated"

// mountVFS copies the lowers, bottom first and honouring whiteouts and
// opaque directories, into upper and binds upper at target.
func mountVFS(lowers []string, upper, work, target string) (func() error, error) {
	if upper == "" {
		if len(lowers) == 1 {
			return bindMount(lowers[0], target, true)
		}
		return nil, errors.New("vfs: merging several lowers needs an upper directory")
	}
	marker := filepath.Join(work, vfsMarker)
	if _, err := os.Stat(marker); err != nil {
		for i := len(lowers) - 1; i >= 0; i-- {
			if err := copyLayer(lowers[i], upper); err != nil {
				return nil, fmt.Errorf("vfs: copy %s: %w", lowers[i], err)
			}
		}
		if err := os.WriteFile(marker, nil, 0o600); err != nil {
			return nil, fmt.Errorf("vfs: %w", err)
		}
	}
	return bindMount(upper, target, false)
}

// isWhiteout reports a kernel-format whiteout: a 0/0 character device.
func isWhiteout(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

// isOpaque reports whether dir hides the lower layers' contents.
func isOpaque(dir string) bool {
	buf := make([]byte, 8)
	for _, x := range []string{"user.overlay.opaque", "trusted.overlay.opaque", "user.fuseoverlayfs.opaque"} {
		if n, err := unix.Lgetxattr(dir, x, buf); err == nil && n == 1 && buf[0] == 'y' {
			return true
		}
	}
	_, err := os.Lstat(filepath.Join(dir, ".wh..wh..opq"))
	return err == nil
}

// copyLayer applies one layer directory on top of dst.
func copyLayer(src, dst string) error {
	links := map[uint64]string{} // inode -> copied path, for hard links
	type dirMeta struct {
		path string
		st   unix.Stat_t
	}
	var dirs []dirMeta
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		out := filepath.Join(dst, rel)
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			return err
		}
		name := d.Name()
		switch {
		case rel != "." && isWhiteout(&st):
			return os.RemoveAll(out)
		case name == ".wh..wh..opq":
			return nil
		case strings.HasPrefix(name, ".wh."):
			return os.RemoveAll(filepath.Join(filepath.Dir(out), strings.TrimPrefix(name, ".wh.")))
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			if rel != "." && isOpaque(path) {
				if err := os.RemoveAll(out); err != nil {
					return err
				}
			}
			if fi, err := os.Lstat(out); err == nil && !fi.IsDir() {
				if err := os.Remove(out); err != nil {
					return err
				}
			}
			if err := os.Mkdir(out, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
			dirs = append(dirs, dirMeta{out, st})
			return copyXattrs(path, out)
		case unix.S_IFREG:
			if err := os.RemoveAll(out); err != nil {
				return err
			}
			if st.Nlink > 1 {
				if first, ok := links[st.Ino]; ok {
					return os.Link(first, out)
				}
				links[st.Ino] = out
			}
			if err := copyFile(path, out); err != nil {
				return err
			}
		case unix.S_IFLNK:
			if err := os.RemoveAll(out); err != nil {
				return err
			}
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			if err := os.Symlink(target, out); err != nil {
				return err
			}
		case unix.S_IFIFO:
			if err := os.RemoveAll(out); err != nil {
				return err
			}
			if err := unix.Mkfifo(out, st.Mode&0o7777); err != nil {
				return err
			}
		case unix.S_IFCHR, unix.S_IFBLK:
			if err := os.RemoveAll(out); err != nil {
				return err
			}
			if err := unix.Mknod(out, st.Mode, int(st.Rdev)); err != nil {
				if errors.Is(err, unix.EPERM) {
					return nil // device nodes cannot be made in a user namespace
				}
				return err
			}
		default:
			return nil // sockets
		}
		return setMeta(path, out, &st)
	})
	if err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := setMetaPath(dirs[i].path, &dirs[i].st); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return copyXattrs(src, dst)
}

// setMeta copies owner, mode and times of st to dst (xattrs are copied
// separately for files and directories).
func setMeta(_ string, dst string, st *unix.Stat_t) error {
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		if err := unix.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
			return err
		}
		ts := []unix.Timespec{st.Atim, st.Mtim}
		return unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW)
	}
	return setMetaPath(dst, st)
}

func setMetaPath(dst string, st *unix.Stat_t) error {
	if err := unix.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	// chmod after chown: chown clears the set-id bits.
	if err := unix.Chmod(dst, st.Mode&0o7777); err != nil {
		return err
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	return unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW)
}

// copyXattrs copies extended attributes except overlay's own.
func copyXattrs(src, dst string) error {
	size, err := unix.Llistxattr(src, nil)
	if err != nil || size <= 0 {
		return nil
	}
	buf := make([]byte, size)
	n, err := unix.Llistxattr(src, buf)
	if err != nil {
		return nil
	}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		if name == "" || strings.HasPrefix(name, "user.overlay.") || strings.HasPrefix(name, "trusted.overlay.") || strings.HasPrefix(name, "user.fuseoverlayfs.") {
			continue
		}
		vsize, err := unix.Lgetxattr(src, name, nil)
		if err != nil {
			continue
		}
		val := make([]byte, vsize)
		vn, err := unix.Lgetxattr(src, name, val)
		if err != nil {
			continue
		}
		if err := unix.Lsetxattr(dst, name, val[:vn], 0); err != nil && !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.ENOTSUP) {
			return fmt.Errorf("copy xattr %s to %s: %w", name, dst, err)
		}
	}
	return nil
}
