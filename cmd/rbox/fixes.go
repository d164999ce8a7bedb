package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

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
	return fmt.Errorf("%s: %s is read-only in the sandbox and has no %s to mount on: add --tmpfs %s first (an empty, writable %s) or --overlay (a writable view)",
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
