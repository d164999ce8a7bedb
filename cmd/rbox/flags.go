package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

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

// parseSize reads 64m, 1G, 4096 and the like.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	num := strings.ToLower(s)
	for suffix, m := range map[string]int64{"k": 1 << 10, "m": 1 << 20, "g": 1 << 30} {
		if strings.HasSuffix(num, suffix) {
			mult, num = m, strings.TrimSuffix(num, suffix)
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q is not a positive size like 64m or 1g", s)
	}
	return n * mult, nil
}

// resolveSources makes bind sources absolute (relative to the caller's cwd)
// and checks they exist, so a typo fails before anything is created.
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

// parseTimeOffsets reads "monotonic=D,boottime=D" with D in seconds or as a
// Go duration; whole seconds only, as the namespace is about clocks, not
// precision.
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
		secs, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			d, derr := time.ParseDuration(v)
			if derr != nil {
				return o, fmt.Errorf("--time-offset %q: %q is neither seconds nor a duration like 90s or 2h", raw, v)
			}
			secs = int64(d / time.Second)
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
