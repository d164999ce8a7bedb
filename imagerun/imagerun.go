// Package imagerun is what the sandbox's run path needs from the image
// store without linking it: the resolved image description, applying an
// image's config to a command line, and asking the rbox-image helper to
// resolve an image (see Resolve). containers/storage and
// go-containerregistry live only in package image and the rbox-image
// executable, because their package initialisation alone costs several
// milliseconds per process.
package imagerun

import (
	"os"
	"path/filepath"
	"strings"
)

// Config is the part of an image's config a run uses.
type Config struct {
	Env        []string `json:"env,omitempty"`
	WorkingDir string   `json:"working_dir,omitempty"`
	User       string   `json:"user,omitempty"`
	Entrypoint []string `json:"entrypoint,omitempty"`
	Cmd        []string `json:"cmd,omitempty"`
}

// Resolved describes an image ready to be mounted.
type Resolved struct {
	// ID is the image ID (hex of the config digest).
	ID    string   `json:"id"`
	Names []string `json:"names,omitempty"`
	// Layers are the lower directories, top first.
	Layers []string `json:"layers"`
	Config Config   `json:"config"`
	// UID and GID are the image's User as numbers (0 when it names none).
	UID uint32 `json:"uid"`
	GID uint32 `json:"gid"`
	// AUFSWhiteouts is set when the store's layers mark deletions with
	// .wh. files (a store written through fuse-overlayfs): only the
	// fuse-overlayfs and vfs drivers understand those.
	AUFSWhiteouts bool `json:"aufs_whiteouts,omitempty"`
}

// Argv returns the command to run, like podman run: the image's Entrypoint
// followed by the user's arguments, or by the image's Cmd when the user gave
// none.
func (c Config) Argv(userArgs []string) []string {
	rest := userArgs
	if len(rest) == 0 {
		rest = c.Cmd
	}
	return append(append([]string{}, c.Entrypoint...), rest...)
}

// MergeEnv returns the image's environment overridden by the user's
// entries (KEY=VALUE; later entries win).
func MergeEnv(image, user []string) []string {
	idx := map[string]int{}
	var out []string
	for _, list := range [][]string{image, user} {
		for _, kv := range list {
			k, _, _ := strings.Cut(kv, "=")
			if i, ok := idx[k]; ok {
				out[i] = kv
				continue
			}
			idx[k] = len(out)
			out = append(out, kv)
		}
	}
	return out
}

// DefaultStorageRoot is $XDG_DATA_HOME/rbox/storage (or
// ~/.local/share/rbox/storage).
func DefaultStorageRoot() string {
	if d := os.Getenv("XDG_DATA_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "rbox", "storage")
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		home = "/"
	}
	return filepath.Join(home, ".local", "share", "rbox", "storage")
}
