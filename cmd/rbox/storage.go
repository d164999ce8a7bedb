package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/rbox-dev/rbox/imagerun"
	"github.com/rbox-dev/rbox/internal/nsexec"
	"github.com/rbox-dev/rbox/overlay"
	"github.com/rbox-dev/rbox/spec"
)

// ImageCmd hands `rbox image ...` to rbox-image, the executable that links
// the image store (too heavy to link into rbox itself).
type ImageCmd struct {
	Args []string `arg:"" optional:"" help:"import TARBALL NAME | load ARCHIVE [NAME] | pull REF | ls | rm NAME... (see rbox image --help)."`
}

// Run replaces rbox with rbox-image.
func (c *ImageCmd) Run() error {
	helper, err := imagerun.HelperPath()
	if err != nil {
		return err
	}
	return syscall.Exec(helper, append([]string{"rbox image"}, c.Args...), os.Environ())
}

// startInUserNS starts cmd as root in a user namespace with the caller's
// maps: rbox-image then needs no second exec to get there.
func startInUserNS(cmd *exec.Cmd) error { return nsexec.Start(cmd, 0) }

// storageFlags are the run flags about the root filesystem.
type storageFlags struct {
	RootFS        string `name:"rootfs" placeholder:"DIR" help:"Use the directory DIR as / (read-only unless --overlay or --overlay-dir)."`
	Image         string `placeholder:"NAME" help:"Run an image of rbox's store as / (writable, changes thrown away); its Env, WorkingDir, User and Entrypoint/Cmd apply unless given here."`
	Overlay       bool   `help:"Make / writable through an overlay, changes thrown away at exit (without --rootfs or --image: the host view)."`
	OverlayDir    string `name:"overlay-dir" placeholder:"DIR" help:"Like --overlay, but keep the changes in DIR, where the next run finds them."`
	StorageDriver string `name:"storage-driver" default:"auto" enum:"auto,overlay,fuse-overlayfs,vfs" help:"How overlays are made: auto (native overlayfs, else fuse-overlayfs), overlay, fuse-overlayfs or vfs (copies)."`
	StorageRoot   string `name:"storage-root" placeholder:"DIR" env:"RBOX_STORAGE_ROOT" help:"Image store for --image (default $XDG_DATA_HOME/rbox/storage; podman's store works too)."`
}

// canonicalDir returns the absolute, symlink-free path of an existing
// directory: the sandbox mounts it before it leaves the host's root.
func canonicalDir(flag, p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", flag, p, err)
	}
	st, err := os.Stat(real)
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", flag, p, err)
	}
	if !st.IsDir() {
		return "", fmt.Errorf("%s %s: not a directory", flag, p)
	}
	return real, nil
}

// applyStorage fills the root-filesystem part of s from the flags. For an
// image it returns the resolved image and its in-use lock.
func (f *storageFlags) applyStorage(s *spec.Spec) (*imagerun.Resolved, *os.File, error) {
	if f.RootFS != "" && f.Image != "" {
		return nil, nil, errors.New("--rootfs and --image exclude each other")
	}
	if f.Overlay && f.OverlayDir != "" {
		return nil, nil, errors.New("give --overlay (throw-away) or --overlay-dir DIR (kept), not both")
	}
	if f.StorageDriver != "auto" {
		s.StorageDriver = f.StorageDriver
	}
	if f.Overlay {
		s.Overlay = &spec.Overlay{}
	}
	if f.OverlayDir != "" {
		if err := os.MkdirAll(f.OverlayDir, 0o755); err != nil {
			return nil, nil, fmt.Errorf("--overlay-dir: %w", err)
		}
		upper, err := canonicalDir("--overlay-dir", f.OverlayDir)
		if err != nil {
			return nil, nil, err
		}
		work := overlay.WorkDirFor(upper)
		if err := os.MkdirAll(work, 0o700); err != nil {
			return nil, nil, fmt.Errorf("--overlay-dir: work directory: %w", err)
		}
		s.Overlay = &spec.Overlay{UpperDir: upper, WorkDir: work}
	}
	if f.RootFS != "" {
		dir, err := canonicalDir("--rootfs", f.RootFS)
		if err != nil {
			return nil, nil, err
		}
		s.RootFS = dir
		return nil, nil, nil
	}
	if f.Image == "" {
		return nil, nil, nil
	}
	storeRoot := f.StorageRoot
	if storeRoot == "" {
		storeRoot = imagerun.DefaultStorageRoot()
	}
	if storeRoot, err := filepath.Abs(storeRoot); err == nil {
		f.StorageRoot = storeRoot
	}
	res, lock, ok := imagerun.ResolveCached(f.StorageRoot, f.Image)
	if !ok {
		helper, err := imagerun.HelperPath()
		if err != nil {
			return nil, nil, err
		}
		res, lock, err = imagerun.Resolve(helper, f.StorageRoot, f.Image, startInUserNS)
		if err != nil {
			return nil, nil, fmt.Errorf("--image %s: %s", f.Image, strings.TrimPrefix(err.Error(), "rbox image: "))
		}
	}
	for _, l := range res.Layers {
		real, err := filepath.EvalSymlinks(l)
		if err != nil {
			lock.Close()
			return nil, nil, fmt.Errorf("--image %s: layer %s: %w", f.Image, l, err)
		}
		s.Layers = append(s.Layers, real)
	}
	if res.AUFSWhiteouts {
		switch s.StorageDriver {
		case "":
			s.StorageDriver = string(overlay.Fuse)
		case string(overlay.Native):
			lock.Close()
			return nil, nil, fmt.Errorf("--image %s: the store's layers use .wh. whiteouts, which only fuse-overlayfs and vfs understand", f.Image)
		}
	}
	if s.Overlay == nil {
		s.Overlay = &spec.Overlay{} // an image's root is writable, throw-away
	}
	return res, lock, nil
}

// imageEnv is an image's environment plus TERM and HOME when it lacks them.
func imageEnv(cfg imagerun.Config, uid uint32) []string {
	env := append([]string{}, cfg.Env...)
	has := func(k string) bool {
		for _, kv := range env {
			if strings.HasPrefix(kv, k+"=") {
				return true
			}
		}
		return false
	}
	if !has("PATH") {
		env = append(env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	if t := os.Getenv("TERM"); t != "" && !has("TERM") {
		env = append(env, "TERM="+t)
	}
	if !has("HOME") {
		home := "/"
		if uid == 0 {
			home = "/root"
		}
		env = append(env, "HOME="+home)
	}
	return env
}
