package image

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/imagerun"
	"go.podman.io/storage"
)

// List returns the stored images, newest first.
func (st *Store) List() ([]Info, error) {
	imgs, err := st.s.Images()
	if err != nil {
		return nil, err
	}
	out := make([]Info, 0, len(imgs))
	for _, img := range imgs {
		size, _ := st.s.ImageSize(img.ID)
		out = append(out, Info{ID: img.ID, Names: img.Names, Created: img.Created, Size: size})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out, nil
}

// Remove removes the name from its image; the image itself, and the
// layers only it uses, go when that was its last name or name is its ID.
// Deleting fails with ErrInUse while a sandbox runs the image.
func (st *Store) Remove(name string) error {
	unlock, err := st.writeLock()
	if err != nil {
		return err
	}
	defer unlock()
	img, err := st.lookup(name)
	if err != nil {
		return err
	}
	// Like podman rmi: a name of an image that has others is untagged;
	// the image goes with its last name (or when named by its ID).
	if tag := matchedName(img.Names, name); tag != "" && len(img.Names) > 1 {
		if err := st.s.RemoveNames(img.ID, []string{tag}); err != nil {
			return fmt.Errorf("untag %s: %w", name, err)
		}
		return nil
	}
	f, err := st.tryExclusive(img.ID)
	if err != nil {
		if errors.Is(err, ErrInUse) {
			return fmt.Errorf("cannot remove %s: %w", name, err)
		}
		return err
	}
	defer f.Close()
	if _, err := st.s.DeleteImage(img.ID, true); err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	removeLocked(f, st.inUsePath(img.ID))
	return nil
}

// matchedName is the name of names that n stands for ("" when n is an ID).
func matchedName(names []string, n string) string {
	for _, c := range candidates(n) {
		for _, have := range names {
			if have == c {
				return have
			}
		}
	}
	return ""
}

// Resolve finds an image for a run: its layer directories (top first) and
// config. It marks the image in use until release is called (or the
// process holding the returned lock dies); Remove is refused meanwhile.
func (st *Store) Resolve(name string) (res *imagerun.Resolved, release func(), err error) {
	res, lock, err := st.ResolveLocked(name)
	if err != nil {
		return nil, nil, err
	}
	return res, func() { lock.Close() }, nil
}

// ResolveLocked is Resolve returning the held in-use lock itself, so it
// can be handed to another process.
func (st *Store) ResolveLocked(name string) (*imagerun.Resolved, *os.File, error) {
	for attempt := 0; attempt < 10; attempt++ {
		img, err := st.lookup(name)
		if err != nil {
			return nil, nil, err
		}
		lock, err := st.lockInUse(img.ID)
		if err != nil {
			return nil, nil, err
		}
		// The image may have been removed between lookup and lock.
		img, err = st.s.Image(img.ID)
		if errors.Is(err, storage.ErrImageUnknown) {
			lock.Close()
			continue
		}
		if err != nil {
			lock.Close()
			return nil, nil, err
		}
		res, err := st.describe(img)
		if err != nil {
			lock.Close()
			return nil, nil, err
		}
		return res, lock, nil
	}
	return nil, nil, fmt.Errorf("%w: %s (removed while resolving)", ErrUnknownImage, name)
}

func (st *Store) describe(img *storage.Image) (*imagerun.Resolved, error) {
	res := &imagerun.Resolved{ID: img.ID, Names: img.Names}
	driver := st.s.GraphDriverName()
	for id := img.TopLayer; id != ""; {
		l, err := st.s.Layer(id)
		if err != nil {
			return nil, fmt.Errorf("image %s: layer %s: %w", img.ID[:12], id, err)
		}
		var dir string
		switch driver {
		case "overlay":
			dir = filepath.Join(st.root, "overlay", id, "diff")
		case "vfs":
			dir = filepath.Join(st.root, "vfs", "dir", id)
		default:
			return nil, fmt.Errorf("storage driver %q is not supported by rbox", driver)
		}
		if _, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("image %s: layer %s: %w", img.ID[:12], id, err)
		}
		res.Layers = append(res.Layers, dir)
		if driver == "vfs" {
			break // a vfs layer is a full copy of the tree
		}
		id = l.Parent
	}
	if driver == "overlay" {
		if b, err := os.ReadFile(filepath.Join(st.root, "overlay", ".has-mount-program")); err == nil && string(b) == "true" {
			res.AUFSWhiteouts = true
		}
	}
	cfg, err := st.config(img)
	if err != nil {
		return nil, err
	}
	res.Config = cfg
	uid, gid, err := imagerun.LookupUser(func(p string) ([]byte, error) { return readInLayers(res.Layers, p) }, cfg.User)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", img.ID[:12], err)
	}
	res.UID, res.GID = uid, gid
	return res, nil
}

// config reads the image config through the stored manifest (the layout
// podman uses too), falling back to the key named by the image ID.
func (st *Store) config(img *storage.Image) (ImageConfig, error) {
	key := "sha256:" + img.ID
	if m, err := st.s.ImageBigData(img.ID, storage.ImageDigestBigDataKey); err == nil {
		var man struct {
			Config struct {
				Digest string `json:"digest"`
			} `json:"config"`
		}
		if json.Unmarshal(m, &man) == nil && man.Config.Digest != "" {
			key = man.Config.Digest
		}
	}
	b, err := st.s.ImageBigData(img.ID, key)
	if err != nil {
		return ImageConfig{}, fmt.Errorf("image %s has no readable config: %w", img.ID[:12], err)
	}
	var cf struct {
		Config struct {
			Env        []string `json:"Env"`
			WorkingDir string   `json:"WorkingDir"`
			User       string   `json:"User"`
			Entrypoint []string `json:"Entrypoint"`
			Cmd        []string `json:"Cmd"`
		} `json:"config"`
	}
	if err := json.Unmarshal(b, &cf); err != nil {
		return ImageConfig{}, fmt.Errorf("image %s config: %w", img.ID[:12], err)
	}
	c := cf.Config
	return ImageConfig{Env: c.Env, WorkingDir: c.WorkingDir, User: c.User, Entrypoint: c.Entrypoint, Cmd: c.Cmd}, nil
}

// readInLayers reads path from the merged view of layers (top first),
// honouring whiteouts and opaque directories, without following symlinks.
func readInLayers(layers []string, path string) ([]byte, error) {
	rel := strings.TrimPrefix(filepath.Clean("/"+path), "/")
	parts := strings.Split(rel, "/")
	for _, l := range layers {
		// A whiteout of the file or of a parent hides the lower layers.
		cur := l
		hidden, opaque := false, false
		for i, p := range parts {
			if fi, err := os.Lstat(filepath.Join(cur, ".wh."+p)); err == nil && fi.Mode().IsRegular() {
				hidden = true
				break
			}
			next := filepath.Join(cur, p)
			fi, err := os.Lstat(next)
			if err != nil {
				break
			}
			if fi.Mode()&os.ModeCharDevice != 0 && fi.Sys().(*syscall.Stat_t).Rdev == 0 {
				hidden = true
				break
			}
			if i < len(parts)-1 {
				if !fi.IsDir() {
					break
				}
				if dirOpaque(next) {
					opaque = true
				}
			} else if fi.Mode().IsRegular() {
				return os.ReadFile(next)
			}
			cur = next
		}
		if hidden || opaque {
			break
		}
	}
	return nil, fs.ErrNotExist
}

func dirOpaque(dir string) bool {
	buf := make([]byte, 4)
	for _, x := range []string{"user.overlay.opaque", "trusted.overlay.opaque"} {
		if n, err := unix.Lgetxattr(dir, x, buf); err == nil && n == 1 && buf[0] == 'y' {
			return true
		}
	}
	_, err := os.Lstat(filepath.Join(dir, ".wh..wh..opq"))
	return err == nil
}
