package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/rbox-dev/rbox/spec"
)

// homeFlags give the command a home directory: go, pip, npm and git keep
// caches and settings under $HOME and fail when it does not exist.
type homeFlags struct {
	Home string `placeholder:"DIR|tmpfs|none" default:"tmpfs" help:"What is mounted at $HOME inside: tmpfs (the default: an empty, writable, throw-away directory), a host directory DIR (bound read-write), or none. Only in the host view unless DIR is given."`
}

// homeDir is the sandbox's $HOME: the last HOME of env.
func homeDir(env []string) string {
	home := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "HOME="); ok {
			home = v
		}
	}
	return home
}

// homeMount is the mount that makes home exist, put before the other mounts
// so binds under $HOME land on it; nil when there is nothing to mount: no
// usable $HOME, --home none, a custom root without --home DIR (an image or
// rootfs has its own homes), or a bind already covering $HOME.
func (h *homeFlags) homeMount(home string, mounts []spec.Mount, customRoot bool, uid uint32) (*spec.Mount, error) {
	if h.Home == "none" || home == "" || !filepath.IsAbs(home) || filepath.Clean(home) == "/" {
		return nil, nil
	}
	home = filepath.Clean(home)
	for _, m := range mounts {
		if (m.Kind == spec.MountBind || m.Kind == spec.MountROBind || m.Kind == spec.MountTmpfs) && within(home, m.Dest) {
			return nil, nil
		}
	}
	if h.Home == "tmpfs" {
		if customRoot {
			return nil, nil
		}
		// The tmpfs belongs to root inside: another uid needs it open.
		mode := uint32(0o700)
		if uid != 0 {
			mode = 0o777
		}
		return &spec.Mount{Kind: spec.MountTmpfs, Dest: home, Mode: mode}, nil
	}
	src, err := filepath.Abs(h.Home)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(src)
	if err != nil || !st.IsDir() {
		return nil, fmt.Errorf("--home %s: not a directory (give an existing directory, tmpfs or none)", h.Home)
	}
	m := spec.Mount{Kind: spec.MountBind, Source: src, Dest: home}
	if err := refuseSymlinkSource(m, src); err != nil {
		return nil, err
	}
	return &m, nil
}

// within reports whether p is dir or lies under it.
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// identityFiles are /etc/passwd and /etc/group with an entry for uid and
// gid added when the host's files (which the default view shows) have
// none, so whoami, id -un, git and ssh find a name. name is the caller's
// name, home the sandbox's $HOME.
func identityFiles(etc string, uid, gid uint32, name, home string) []spec.GeneratedFile {
	var files []spec.GeneratedFile
	if data, err := os.ReadFile(filepath.Join(etc, "passwd")); err == nil && !hasID(data, 2, uid) {
		if home == "" {
			home = "/"
		}
		line := fmt.Sprintf("%s:x:%d:%d:rbox sandbox user:%s:/bin/sh\n", name, uid, gid, home)
		files = append(files, spec.GeneratedFile{Dest: "/etc/passwd", Data: appendLine(data, line)})
	}
	if data, err := os.ReadFile(filepath.Join(etc, "group")); err == nil && !hasID(data, 2, gid) {
		line := fmt.Sprintf("%s:x:%d:\n", name, gid)
		files = append(files, spec.GeneratedFile{Dest: "/etc/group", Data: appendLine(data, line)})
	}
	return files
}

// hasID reports whether a colon-separated file has id in field field.
func hasID(data []byte, field int, id uint32) bool {
	want := strconv.FormatUint(uint64(id), 10)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) > field && f[field] == want {
			return true
		}
	}
	return false
}

func appendLine(data []byte, line string) []byte {
	out := append([]byte{}, data...)
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	return append(out, line...)
}
