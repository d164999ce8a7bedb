package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/alecthomas/kong"

	"github.com/rbox-dev/rbox/spec"
)

// configFile is rbox's config file: defaults for every run, and named
// profiles. Keys are run flags' long names, values what the flag takes
// (a list for a repeatable flag):
//
//	[defaults]
//	net = "user"
//
//	[profiles.untrusted]
//	env-mode = "safe"
//	cap-drop = ["ALL"]
//	bind = ["./src:/work"]
type configFile struct {
	Defaults map[string]any            `toml:"defaults"`
	Profiles map[string]map[string]any `toml:"profiles"`
}

// configPath is $RBOX_CONFIG, else $XDG_CONFIG_HOME/rbox/config.toml, else
// ~/.config/rbox/config.toml.
func configPath() string {
	if p := os.Getenv("RBOX_CONFIG"); p != "" {
		return p
	}
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "rbox", "config.toml")
}

// profileArg is the value of --profile before any "--", else $RBOX_PROFILE.
func profileArg(args []string) string {
	for i, a := range args {
		if a == "--" {
			break
		}
		if v, ok := strings.CutPrefix(a, "--profile="); ok {
			return v
		}
		if a == "--profile" && i+1 < len(args) {
			return args[i+1]
		}
	}
	return os.Getenv("RBOX_PROFILE")
}

// settings are the flag values the config file gives one command line:
// the defaults, overridden by the profile.
type settings struct {
	path   string
	values map[string]any
	err    error
	// mountsAdded: the profile's mount flags are added once, before the
	// command line's.
	mountsAdded bool
}

// loadSettings reads the config file (none is fine) and picks profile.
func loadSettings(path, profile string) *settings {
	s := &settings{path: path, values: map[string]any{}}
	var cf configFile
	_, err := toml.DecodeFile(path, &cf)
	switch {
	case path == "" || errors.Is(err, fs.ErrNotExist):
		if profile != "" {
			s.err = fmt.Errorf("--profile %s: no config file (write one at %s)", profile, path)
		}
		return s
	case err != nil:
		s.err = fmt.Errorf("config file %s: %v", path, err)
		return s
	}
	for k, v := range cf.Defaults {
		s.values[k] = v
	}
	if profile != "" {
		p, ok := cf.Profiles[profile]
		if !ok {
			var names []string
			for n := range cf.Profiles {
				names = append(names, n)
			}
			sort.Strings(names)
			s.err = fmt.Errorf("--profile %s: no such profile in %s (it has: %s)", profile, path, strings.Join(names, ", "))
			return s
		}
		for k, v := range p {
			s.values[k] = v
		}
	}
	return s
}

// configResolver gives kong the config file's values for the flags the
// command line does not set.
func configResolver(args []string) kong.Resolver {
	return loadSettings(configPath(), profileArg(args))
}

// Validate refuses keys that are not flags, naming the file.
func (s *settings) Validate(app *kong.Application) error {
	if s.err != nil {
		return s.err
	}
	known := map[string]bool{}
	var walk func(n *kong.Node)
	walk = func(n *kong.Node) {
		for _, f := range n.Flags {
			known[f.Name] = true
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	walk(app.Node)
	for k := range s.values {
		if !known[k] || k == "profile" {
			return fmt.Errorf("config file %s: %q is not a run flag", s.path, k)
		}
	}
	return nil
}

// Resolve returns the value for flag, if the config file has one.
func (s *settings) Resolve(_ *kong.Context, _ *kong.Path, flag *kong.Flag) (any, error) {
	if !s.mountsAdded {
		s.mountsAdded = true
		if err := s.addMounts(); err != nil {
			return nil, err
		}
	}
	switch flag.Target.Interface().(type) {
	case mountFlag, mountSpecs:
		return nil, nil
	}
	v, ok := s.values[flag.Name]
	if !ok {
		return nil, nil
	}
	switch v := v.(type) {
	case []any:
		return v, nil
	case bool, string:
		return v, nil
	default:
		return fmt.Sprint(v), nil
	}
}

// addMounts puts the config file's mount flags (and docker's --mount)
// before the command line's.
func (s *settings) addMounts() error {
	var ms []spec.Mount
	for _, kind := range []spec.MountKind{spec.MountBind, spec.MountROBind, spec.MountTmpfs, spec.MountDir, spec.MountSymlink, "mount"} {
		v, ok := s.values[string(kind)]
		if !ok {
			continue
		}
		list, ok := v.([]any)
		if !ok {
			list = []any{v}
		}
		for _, raw := range list {
			str, ok := raw.(string)
			if !ok {
				return fmt.Errorf("config file %s: %s: expected strings", s.path, kind)
			}
			parse := func(raw string) (spec.Mount, error) { return parseMount(kind, raw) }
			if kind == "mount" {
				parse = parseMountSpec
			}
			m, err := parse(str)
			if err != nil {
				return fmt.Errorf("config file %s: --%s %w", s.path, kind, err)
			}
			ms = append(ms, m)
		}
	}
	mountOrder = append(ms, mountOrder...)
	return nil
}
