package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/overlay"
	"github.com/rbox-dev/rbox/spec"
)

// Checks of a whole request that would otherwise fail deep in the setup
// with a system call's words, or do something other than what was meant:
// each names the problem and the flag that fixes it.

// readOnlyTops are the host view's read-only system directories: a mount
// point that does not exist under them cannot be made.
var readOnlyTops = []string{"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc", "opt"}

// checkRequest refuses mounts rbox would misapply and mount points a
// read-only root cannot get, and warns of mounts over /proc and /dev.
func checkRequest(s *spec.Spec) error {
	for i, m := range s.Mounts {
		flag := fmt.Sprintf("--%s %s", m.Kind, mountArg(m))
		switch m.Dest {
		case "/":
			return fmt.Errorf("%s: a mount cannot replace the sandbox's /: to run on a directory as the root, use --rootfs DIR (--rootfs / for the host's whole tree, read-only)", flag)
		case "/proc", "/dev":
			// Meant at times (--bind /dev:/dev gives the host's devices),
			// so said, not refused.
			slog.Warn(fmt.Sprintf("%s hides the sandbox's own %s (rbox mounts one for it); to see both, mount it elsewhere, e.g. /host%s", flag, m.Dest, m.Dest))
		}
		if s.RootFS == "" && len(s.Layers) == 0 && s.Overlay == nil {
			if err := checkHostViewDest(flag, m.Dest, s.Mounts[:i]); err != nil {
				return err
			}
		}
	}
	if s.RootFS != "" && s.Overlay == nil {
		return checkRootFS(s)
	}
	return nil
}

func mountArg(m spec.Mount) string {
	if m.Source != "" {
		return m.Source + ":" + m.Dest
	}
	return m.Dest
}

// checkHostViewDest refuses a mount point under a read-only system
// directory of the host view that the host does not have (rbox would have
// to create it there), unless an earlier mount made its parent writable.
func checkHostViewDest(flag, dest string, earlier []spec.Mount) error {
	parts := strings.Split(strings.TrimPrefix(dest, "/"), "/")
	if len(parts) < 2 || !contains(readOnlyTops, parts[0]) {
		return nil
	}
	if _, err := os.Lstat(dest); err == nil {
		return nil
	}
	for _, m := range earlier {
		if m.Kind != spec.MountSymlink && within(dest, m.Dest) && dest != m.Dest {
			return nil
		}
	}
	parent := filepath.Dir(dest)
	for {
		if _, err := os.Stat(parent); err == nil {
			break
		}
		parent = filepath.Dir(parent)
	}
	// --overlay would not do for an ordinary caller: the host's system
	// directories belong to ids the sandbox does not map.
	return fmt.Errorf("%s: %s is read-only in the sandbox and has no %s to mount on: add --tmpfs %s before it (an empty, writable %s in place of the host's), or bind an existing path",
		flag, parent, strings.TrimPrefix(dest, parent+"/"), parent, parent)
}

// checkRootFS refuses a read-only --rootfs that lacks the mount points rbox
// needs, rather than write them into the caller's directory.
func checkRootFS(s *spec.Spec) error {
	need := []string{"proc", "dev", "sys", "tmp"}
	switch {
	case s.Net == spec.NetPasta || s.Net == spec.NetSlirp4netns:
		need = append(need, "etc/hosts", "etc/resolv.conf")
	case s.DNS != "":
		need = append(need, "etc/resolv.conf")
	}
	var missing []string
	for _, p := range need {
		if _, err := os.Lstat(filepath.Join(s.RootFS, p)); err != nil {
			missing = append(missing, "/"+p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	var mk []string
	for _, m := range missing {
		if strings.HasPrefix(m, "/etc/") {
			mk = append(mk, "touch "+filepath.Join(s.RootFS, m))
		} else {
			mk = append(mk, "mkdir "+filepath.Join(s.RootFS, m))
		}
	}
	return fmt.Errorf("--rootfs %s: it has no %s to mount on, and rbox does not write to your directory: add --overlay, or create them (%s)",
		s.RootFS, strings.Join(missing, ", "), strings.Join(mk, "; "))
}

// checkRelativeCommand refuses ./x when the caller's directory is not in
// the sandbox: the command starts in / there, and ./x would not be found
// (or be another file).
func checkRelativeCommand(s *spec.Spec, chdir string) error {
	if len(s.Args) == 0 || chdir != "" || s.Cwd != "/" {
		return nil
	}
	name := s.Args[0]
	if !strings.Contains(name, "/") || filepath.IsAbs(name) {
		return nil
	}
	if cwd, err := os.Getwd(); err != nil || cwd == "/" {
		return nil
	}
	return fmt.Errorf("%s: a path relative to your current directory, which is not in the sandbox (the command starts in /): bind it, e.g. --bind .:/work, or give -w DIR", name)
}

// chooseOverlayDriver handles a --rootfs tree with files of ids the
// sandbox does not map (a root-owned tree, for an unprivileged caller)
// under --overlay: kernel overlayfs cannot copy such a file or directory up
// (it cannot give the copy its owner) and fails with EOVERFLOW, "Value
// too large for defined data type"; fuse-overlayfs can. With the driver
// left to rbox, it picks fuse-overlayfs and says so; a driver given
// explicitly gets a warning. Only the tree's top level is looked at.
// fuseOK is asked only then: its PATH search is work every other run would
// pay for nothing.
func chooseOverlayDriver(s *spec.Spec, fuseOK func() bool) {
	if s.RootFS == "" || s.Overlay == nil || (s.StorageDriver != "" && s.StorageDriver != "overlay") {
		return
	}
	owner, found := unmappedOwner(s.RootFS, s.UIDMap, s.GIDMap)
	if !found {
		return
	}
	why := fmt.Sprintf("--rootfs %s has files owned by %s, which the sandbox does not map: kernel overlayfs cannot copy them up (EOVERFLOW, \"Value too large for defined data type\")", s.RootFS, owner)
	// fuse-overlayfs gives such a copy the overflow id ("nobody"), which
	// the sandbox must map: with the subordinate range it does.
	overflowMapped := mapped(s.UIDMap, overflowID("uid")) && mapped(s.GIDMap, overflowID("gid"))
	switch {
	case !overflowMapped:
		slog.Warn(why + "; fuse-overlayfs could, with the full id map (a subordinate range: see rbox check), or run with ids that own the tree")
	case s.StorageDriver == "overlay":
		slog.Warn(why + "; --storage-driver fuse-overlayfs can")
	case fuseOK():
		s.StorageDriver = "fuse-overlayfs"
		slog.Log(context.Background(), levelNotice, why+"; using fuse-overlayfs")
	default:
		slog.Warn(why + "; fuse-overlayfs could: install it")
	}
}

// overflowID is the kernel's overflowuid or overflowgid: what an unmapped
// id shows as.
func overflowID(kind string) uint32 {
	b, err := os.ReadFile("/proc/sys/kernel/overflow" + kind)
	if err != nil {
		return 65534
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
	if err != nil {
		return 65534
	}
	return uint32(n)
}

// fuseOverlayfsFound reports whether fuse-overlayfs can be run.
func fuseOverlayfsFound() bool {
	_, err := exec.LookPath(overlay.FuseProgram)
	return err == nil
}

// unmappedOwner finds an owner among root and its entries that maps to no
// id inside, and names it.
func unmappedOwner(root string, uids, gids []spec.IDMap) (string, bool) {
	names := []string{"."}
	if entries, err := os.ReadDir(root); err == nil {
		for _, e := range entries {
			names = append(names, e.Name())
		}
	}
	for _, n := range names {
		var st unix.Stat_t
		if unix.Lstat(filepath.Join(root, n), &st) != nil {
			continue
		}
		if !mappedOutside(uids, st.Uid) {
			return fmt.Sprintf("uid %d (%s)", st.Uid, filepath.Join(root, n)), true
		}
		if !mappedOutside(gids, st.Gid) {
			return fmt.Sprintf("gid %d (%s)", st.Gid, filepath.Join(root, n)), true
		}
	}
	return "", false
}

// mappedOutside reports whether host id has an entry in m.
func mappedOutside(m []spec.IDMap, id uint32) bool {
	for _, e := range m {
		if id >= e.Outside && id-e.Outside < e.Count {
			return true
		}
	}
	return false
}

// commandIsDir reports a command path that names a directory in the
// default view, where the path's host counterpart is known (a bind's
// source, or the host's own system directories): execve would only say
// "permission denied".
func commandIsDir(s *spec.Spec) bool {
	if len(s.Args) == 0 || !strings.Contains(s.Args[0], "/") || s.RootFS != "" || len(s.Layers) > 0 {
		return false
	}
	p := s.Args[0]
	if !filepath.IsAbs(p) {
		p = filepath.Join(s.Cwd, p)
	}
	switch filepath.Clean(p) {
	case "/", "/tmp", "/proc", "/dev", "/sys":
		// The sandbox's own directories.
		return true
	}
	host := ""
	for _, m := range s.Mounts {
		switch {
		case (m.Kind == spec.MountBind || m.Kind == spec.MountROBind) && within(p, m.Dest):
			rel, _ := filepath.Rel(m.Dest, p)
			host = filepath.Join(m.Source, rel)
		case within(p, m.Dest):
			host = "" // a mount of the sandbox's own
		}
	}
	if host == "" {
		parts := strings.SplitN(strings.TrimPrefix(filepath.Clean(p), "/"), "/", 2)
		if !contains(readOnlyTops, parts[0]) || coveredByOwnMount(p, s.Mounts) {
			return false
		}
		host = p
	}
	st, err := os.Stat(host)
	return err == nil && st.IsDir()
}

func coveredByOwnMount(p string, mounts []spec.Mount) bool {
	for _, m := range mounts {
		if within(p, m.Dest) {
			return true
		}
	}
	return false
}
