package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	units "github.com/docker/go-units"

	"github.com/rbox-dev/rbox/spec"
)

// parseMount reads one mount flag's value; sources stay as given until
// resolveSources makes them absolute and checks they exist.
func parseMount(kind spec.MountKind, raw string) (spec.Mount, error) {
	m := spec.Mount{Kind: kind}
	flag := "--" + string(kind)
	if raw == "" {
		return m, fmt.Errorf("%s needs a value", flag)
	}
	switch kind {
	case spec.MountBind, spec.MountROBind, spec.MountDevBind, spec.MountSymlink:
		src, dst, ok := strings.Cut(raw, ":")
		if !ok || src == "" || dst == "" {
			what := "SRC:DST"
			if kind == spec.MountSymlink {
				what = "TARGET:LINK"
			}
			return m, fmt.Errorf("%q: expected %s", raw, what)
		}
		m.Source, m.Dest = src, dst
		if kind != spec.MountSymlink {
			// docker's -v SRC:DST:ro and :rw.
			if d, ok := strings.CutSuffix(dst, ":ro"); ok {
				m.Kind, m.Dest = spec.MountROBind, d
			} else if d, ok := strings.CutSuffix(dst, ":rw"); ok {
				m.Dest = d
			}
		}
	case spec.MountTmpfs:
		dst, opts, _ := strings.Cut(raw, ":")
		m.Dest = dst
		if opts != "" {
			for _, o := range strings.Split(opts, ",") {
				k, v, _ := strings.Cut(o, "=")
				switch k {
				case "size":
					n, err := parseSize(v)
					if err != nil {
						return m, fmt.Errorf("%q: %v", raw, err)
					}
					m.SizeBytes = n
				case "mode":
					n, err := strconv.ParseUint(v, 8, 32)
					if err != nil || n > 0o7777 {
						return m, fmt.Errorf("%q: mode %q is not an octal mode like 1777", raw, v)
					}
					m.Mode = uint32(n)
				default:
					return m, fmt.Errorf("%q: unknown option %q (use size= and mode=)", raw, k)
				}
			}
		}
	case spec.MountDir:
		m.Dest = raw
	}
	if !filepath.IsAbs(m.Dest) {
		return m, fmt.Errorf("%q: destination %q must be an absolute path", raw, m.Dest)
	}
	m.Dest = filepath.Clean(m.Dest)
	return m, nil
}

// parseSize reads 64m, 64MiB, 64mb, 1G, 4096 and the like, all in powers
// of 1024 as mount(8)'s size= is, with docker/go-units (docker's and
// podman's parser, so their habits work).
func parseSize(s string) (int64, error) {
	n, err := units.RAMInBytes(s)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("size %q is not a positive size like 64m, 64MiB or 1g", s)
	}
	return n, nil
}

// resolveSources makes bind sources absolute (relative to the caller's cwd)
// and checks they exist, so a typo fails before anything is created, and
// that none is a symlink (see refuseSymlinkSource).
func resolveSources(ms []spec.Mount) ([]spec.Mount, error) {
	out := make([]spec.Mount, 0, len(ms))
	for _, m := range ms {
		if m.Kind == spec.MountBind || m.Kind == spec.MountROBind || m.Kind == spec.MountDevBind {
			abs, err := filepath.Abs(m.Source)
			if err != nil {
				return nil, err
			}
			if _, err := os.Stat(abs); err != nil {
				if m.Optional { // --bind-try, --ro-bind-try
					continue
				}
				return nil, fmt.Errorf("--%s %s:%s: source %s does not exist", m.Kind, m.Source, m.Dest, m.Source)
			}
			if err := refuseSymlinkSource(m, abs); err != nil {
				return nil, err
			}
			m.Source = abs
		}
		out = append(out, m)
	}
	return out, nil
}

func parseShare(list []string) ([]string, error) {
	var out []string
	for _, n := range list {
		n = strings.TrimSpace(n)
		switch {
		case n == spec.NSUser || n == spec.NSMount:
			return nil, fmt.Errorf("--share %s: the %s namespace is always new (rbox needs it to build the sandbox)", n, n)
		case !contains(spec.ShareableNamespaces, n):
			return nil, fmt.Errorf("--share %s: unknown namespace (use %s)", n, strings.Join(spec.ShareableNamespaces, ", "))
		}
		if !contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// validLabel reports whether label is a host name label: letters, digits
// and hyphens, not starting or ending with a hyphen. (A regexp here would
// be compiled at every start-up.)
func validLabel(label string) bool {
	if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
		return false
	}
	for _, c := range []byte(label) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// checkHostname accepts RFC 1123 host names the kernel can hold.
func checkHostname(h string) error {
	if len(h) > hostNameMax {
		return fmt.Errorf("--hostname %q: longer than %d characters", h, hostNameMax)
	}
	for _, label := range strings.Split(h, ".") {
		if !validLabel(label) {
			return fmt.Errorf("--hostname %q: not a valid host name (letters, digits and inner hyphens, dot-separated)", h)
		}
	}
	return nil
}

// parseTimeOffsets reads "monotonic=D,boottime=D" with D in seconds, in
// days (30d) or as a Go duration; whole seconds only, as the namespace is
// about clocks, not precision.
func parseTimeOffsets(raw string) (spec.TimeOffsets, error) {
	var o spec.TimeOffsets
	if raw == "" {
		return o, nil
	}
	for _, part := range strings.Split(raw, ",") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return o, fmt.Errorf("--time-offset %q: expected monotonic=D,boottime=D", raw)
		}
		secs, err := parseOffset(v)
		if err != nil {
			return o, fmt.Errorf("--time-offset %q: %q is neither seconds nor a duration like 90s, 2h or 30d", raw, v)
		}
		switch k {
		case "monotonic":
			o.Monotonic = secs
		case "boottime":
			o.Boottime = secs
		default:
			return o, fmt.Errorf("--time-offset %q: unknown clock %q (use monotonic or boottime)", raw, k)
		}
	}
	return o, nil
}

// parseOffset reads seconds, days (30d, -1d) or a Go duration.
func parseOffset(v string) (int64, error) {
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		return secs, nil
	}
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 64)
		if err == nil && n > -(1<<40) && n < 1<<40 {
			return n * 86400, nil
		}
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, err
	}
	return int64(d / time.Second), nil
}

// buildEnv is the caller's environment, emptied by --clear-env, less
// --unset-env, plus --env.
func buildEnv(inherited []string, clear bool, unset, set []string) []string {
	env := map[string]string{}
	var order []string
	put := func(kv string) {
		k, v, _ := strings.Cut(kv, "=")
		if _, ok := env[k]; !ok {
			order = append(order, k)
		}
		env[k] = v
	}
	if !clear {
		for _, kv := range inherited {
			put(kv)
		}
	}
	for _, k := range unset {
		delete(env, k)
	}
	for _, kv := range set {
		put(kv)
	}
	out := make([]string, 0, len(env))
	for _, k := range order {
		if v, ok := env[k]; ok {
			out = append(out, k+"="+v)
		}
	}
	return out
}

// hostNameMax is the kernel's limit on a host name (HOST_NAME_MAX).
const hostNameMax = 64

// refuseSymlinkSource refuses a bind source whose last component is a
// symlink. A sandbox given a writable directory can leave a link there
// (data -> ~/.ssh) that a later run binding dir/data would follow on the
// host, handing the caller's files to the sandbox (the class of Flatpak's
// CVE-2024-42472). Binding the link's target by its own name is the way
// to bind it on purpose.
func refuseSymlinkSource(m spec.Mount, abs string) error {
	st, err := os.Lstat(abs)
	if err != nil || st.Mode()&os.ModeSymlink == 0 {
		return nil
	}
	target, err := filepath.EvalSymlinks(abs)
	if err != nil {
		target, _ = os.Readlink(abs)
	}
	return fmt.Errorf("--%s %s:%s: source %s is a symlink to %s; rbox does not follow it (a sandbox may have planted it): bind the target on purpose with --%s %s:%s",
		m.Kind, m.Source, m.Dest, m.Source, target, m.Kind, target, m.Dest)
}
