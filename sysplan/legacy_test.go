package sysplan

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// resolveIn runs one Resolve op on root (a host directory) and returns the
// path the descriptor it opened refers to.
func resolveIn(t *testing.T, root, path string, flags int) (string, error) {
	t.Helper()
	dir, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dir)
	p := new(Program)
	p.Resolve(Int(dir), path, flags).Into(0)
	p.Finish()
	if err := p.Run(); err != nil {
		return "", err
	}
	fd := int(p.Slots[0])
	defer unix.Close(fd)
	return os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
}

// The walk resolves symlinks inside the root, as RESOLVE_IN_ROOT does:
// absolute targets and ".." stay in it; procfs's magic links are refused.
func TestResolve(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	for _, d := range []string{"a/b", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "a/b/f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	links := map[string]string{
		"abs": "/a", "rel": "a/b", "up": "../../../../..", "tmplink": "/tmp", "out": outside,
		"a/b/back": "../../tmp", "loop": "loop", "file": "/a/b/f",
	}
	for l, target := range links {
		if err := os.Symlink(target, filepath.Join(root, l)); err != nil {
			t.Fatal(err)
		}
	}
	dirFlags := unix.O_PATH | unix.O_DIRECTORY
	for path, want := range map[string]string{
		"/":             root,
		"a/b":           root + "/a/b",
		"/abs/b":        root + "/a/b",
		"rel/../b/.":    root + "/a/b",
		"up":            root,
		"up/a":          root + "/a",
		"/../../a":      root + "/a",
		"tmplink":       root + "/tmp",
		"a/b/back":      root + "/tmp",
		"abs/b/back/..": root,
	} {
		got, err := resolveIn(t, root, path, dirFlags)
		if err != nil || got != want {
			t.Errorf("resolve %q: got %q, %v; want %q", path, got, err, want)
		}
	}
	if got, err := resolveIn(t, root, "file", unix.O_PATH); err != nil || got != root+"/a/b/f" {
		t.Errorf("resolve file: got %q, %v", got, err)
	}
	for path, want := range map[string]error{
		"out/x":  unix.ENOENT, // outside's path does not exist inside
		"loop":   unix.ELOOP,
		"file/x": unix.ENOTDIR,
		"nope":   unix.ENOENT,
	} {
		if _, err := resolveIn(t, root, path, dirFlags); !errors.Is(err, want) {
			t.Errorf("resolve %q: got %v, want %v", path, err, want)
		}
	}
	// Magic links of procfs are refused; its ordinary symlinks work.
	for path, want := range map[string]error{
		"self/fd/0": unix.ELOOP, "self/cwd": unix.ELOOP, "self/root": unix.ELOOP, "self/root/etc": unix.ELOOP,
		"self/fdinfo": nil, "mounts": nil,
	} {
		flags := dirFlags
		if path == "mounts" {
			flags = unix.O_PATH
		}
		if _, err := resolveIn(t, "/proc", path, flags); !errors.Is(err, want) && !(want == nil && err == nil) {
			t.Errorf("resolve /proc/%s: got %v, want %v", path, err, want)
		}
	}
}

// FDPath writes a descriptor's /proc path.
func TestFDPath(t *testing.T) {
	p := new(Program)
	p.Slots[3] = 1234
	buf := p.FDPath(1, Slot(3).FD(), "/oldroot/proc/self/fd/", "sys")
	p.Finish()
	if err := p.Run(); err != nil {
		t.Fatal(err)
	}
	b := p.legacy.paths[1][:]
	n := 0
	for b[n] != 0 {
		n++
	}
	if got := string(b[:n]); got != "/oldroot/proc/self/fd/1234/sys" {
		t.Errorf("got %q", got)
	}
	if buf.v != uintptr(unsafeAddr(&p.legacy.paths[1][0])) {
		t.Error("FDPath returned another buffer")
	}
}

func unsafeAddr(b *byte) uintptr { return uintptr(unsafe.Pointer(b)) }

// close_range by hand (a kernel before 5.9): the descriptors in the range
// that /proc/self/fd lists are closed, or marked close-on-exec, and no
// other.
func TestCloseRangeByHand(t *testing.T) {
	for _, flags := range []uintptr{0, unix.CLOSE_RANGE_CLOEXEC} {
		var fds []int
		for i := 0; i < 4; i++ {
			fd, err := unix.Open("/dev/null", unix.O_RDONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			fds = append(fds, fd)
		}
		p := new(Program)
		p.CloseRange(0, 0, 0) // allocates the buffers; closes nothing
		p.ops = p.ops[:0]
		p.Call(opCloseRange, V(uintptr(fds[1])), V(uintptr(fds[2])), V(flags))
		p.Finish()
		if err := p.Run(); err != nil {
			t.Fatal(err)
		}
		for i, fd := range fds {
			f, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
			inRange := i == 1 || i == 2
			switch {
			case flags == 0 && inRange && err == nil:
				t.Errorf("fd %d not closed", fd)
			case flags != 0 && inRange && (err != nil || f&unix.FD_CLOEXEC == 0):
				t.Errorf("fd %d not marked close-on-exec: %v", fd, err)
			case !inRange && (err != nil || f&unix.FD_CLOEXEC != 0):
				t.Errorf("fd %d outside the range changed: %#x %v", fd, f, err)
			}
			unix.Close(fd)
		}
	}
}
