package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/alecthomas/kong"

	"github.com/rbox-dev/rbox/spec"
)

// habitFlags are docker's and podman's spellings of rbox's flags (-e, -v
// and --user are set as short names and aliases on the fields they mean),
// and the environment mode.
type habitFlags struct {
	EnvFile []string   `name:"env-file" sep:"none" placeholder:"FILE" help:"Read K=V lines (and K alone: pass K from the caller) from FILE, like docker's --env-file; # starts a comment. Repeatable; --env wins."`
	Mount   mountSpecs `placeholder:"type=bind,src=SRC,dst=DST[,ro]" help:"docker's --mount: type=bind (src, dst, ro), type=tmpfs (dst, tmpfs-size, tmpfs-mode). The way to bind a path with a ':' in it."`
	User    string     `placeholder:"UID[:GID]" help:"Run as UID (and GID) inside, like docker's --user: same as --uid UID --gid GID."`
	EnvMode string     `name:"env-mode" enum:"all,safe" default:"all" help:"Which of the caller's variables pass in: all (the default; secrets included) or safe (only PATH, HOME, TERM, LANG, LC_*, TZ, USER and a few others; for untrusted code)."`
}

// safeEnv are the caller's variables --env-mode safe passes: what programs
// need to find commands, print and talk to the terminal, nothing that
// names a credential.
var safeEnv = []string{"PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "COLORTERM", "NO_COLOR", "LANG", "LANGUAGE", "TZ", "TMPDIR", "PWD"}

// callerEnv is the part of environ the mode passes.
func (h *habitFlags) callerEnv(environ []string) []string {
	if h.EnvMode != "safe" {
		return environ
	}
	var out []string
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if contains(safeEnv, k) || strings.HasPrefix(k, "LC_") {
			out = append(out, kv)
		}
	}
	return out
}

// apply folds the habits into the run flags: --user into --uid/--gid, the
// env files and docker's -e K (the caller's K) into --env.
func (h *habitFlags) apply(r *RunCmd) error {
	if h.User != "" {
		if r.UID != nil || r.GID != nil {
			return fmt.Errorf("--user %s: give --user or --uid/--gid, not both", h.User)
		}
		u, g, hasGroup := strings.Cut(h.User, ":")
		uid, err := parseID("--user", u)
		if err != nil {
			return err
		}
		r.UID = &uid
		if hasGroup {
			gid, err := parseID("--user", g)
			if err != nil {
				return err
			}
			r.GID = &gid
		}
	}
	for flag, id := range map[string]*uint32{"--uid": r.UID, "--gid": r.GID} {
		if id != nil && *id == 1<<32-1 {
			return fmt.Errorf("%s %d: not an id: give a number from 0 to 4294967294", flag, *id)
		}
	}
	var env []string
	for _, f := range h.EnvFile {
		kvs, err := readEnvFile(f)
		if err != nil {
			return err
		}
		env = append(env, kvs...)
	}
	for _, kv := range append(env, r.Env...) {
		if strings.HasPrefix(kv, "=") || kv == "" {
			return fmt.Errorf("--env %q: expected K=V, or K to pass the caller's K", kv)
		}
	}
	r.Env = expandEnv(append(env, r.Env...), os.LookupEnv)
	return nil
}

// expandEnv turns each bare K into K=V with the caller's value, and drops
// it when the caller has no K (as docker does).
func expandEnv(list []string, lookup func(string) (string, bool)) []string {
	var out []string
	for _, kv := range list {
		if strings.Contains(kv, "=") {
			out = append(out, kv)
		} else if v, ok := lookup(kv); ok {
			out = append(out, kv+"="+v)
		}
	}
	return out
}

// readEnvFile reads docker's env file format: K=V lines taken as they are
// (no quotes removed), K alone, blank lines and # comments.
func readEnvFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--env-file: %v", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		k, _, _ := strings.Cut(strings.TrimLeft(line, " \t"), "=")
		if k == "" || strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("--env-file %s:%d: %q is not K=V or K", path, n, line)
		}
		out = append(out, strings.TrimLeft(line, " \t"))
	}
	return out, sc.Err()
}

// parseID reads a uid or gid inside: 0 to 4294967294 (4294967295 is -1,
// "no id", to the kernel).
func parseID(flag, s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 1<<32-1 {
		return 0, fmt.Errorf("%s %s: not an id: give a number from 0 to 4294967294", flag, s)
	}
	return uint32(n), nil
}

// mountSpecs decodes docker's --mount into mountOrder, in order with the
// other mount flags.
type mountSpecs struct{}

// Decode implements kong.MapperValue.
func (mountSpecs) Decode(ctx *kong.DecodeContext) error {
	var raw string
	if err := ctx.Scan.PopValueInto("value", &raw); err != nil {
		return err
	}
	m, err := parseMountSpec(raw)
	if err != nil {
		return err
	}
	mountOrder = append(mountOrder, m)
	return nil
}

// parseMountSpec reads type=bind,src=S,dst=D[,ro] and type=tmpfs,dst=D.
func parseMountSpec(raw string) (spec.Mount, error) {
	var m spec.Mount
	typ := "volume"
	for _, part := range strings.Split(raw, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "type":
			typ = v
		case "src", "source":
			m.Source = v
		case "dst", "destination", "target":
			m.Dest = v
		case "ro", "readonly":
			if v == "" || v == "true" || v == "1" {
				m.Kind = spec.MountROBind
			}
		case "tmpfs-size":
			n, err := parseSize(v)
			if err != nil {
				return m, fmt.Errorf("--mount %q: %v", raw, err)
			}
			m.SizeBytes = n
		case "tmpfs-mode":
			n, err := strconv.ParseUint(v, 8, 32)
			if err != nil || n > 0o7777 {
				return m, fmt.Errorf("--mount %q: tmpfs-mode %q is not an octal mode like 1777", raw, v)
			}
			m.Mode = uint32(n)
		default:
			return m, fmt.Errorf("--mount %q: unknown key %q (use type, src, dst, ro, tmpfs-size, tmpfs-mode)", raw, k)
		}
	}
	switch typ {
	case "bind":
		if m.Kind == "" {
			m.Kind = spec.MountBind
		}
		if m.Source == "" {
			return m, fmt.Errorf("--mount %q: a bind needs src=", raw)
		}
	case "tmpfs":
		if m.Source != "" || m.Kind != "" {
			return m, fmt.Errorf("--mount %q: a tmpfs takes dst, tmpfs-size and tmpfs-mode only", raw)
		}
		m.Kind = spec.MountTmpfs
	default:
		return m, fmt.Errorf("--mount %q: type %s is not supported (use type=bind or type=tmpfs)", raw, typ)
	}
	if !strings.HasPrefix(m.Dest, "/") {
		return m, fmt.Errorf("--mount %q: dst= must be an absolute path", raw)
	}
	checked, err := parseMount(spec.MountDir, m.Dest)
	m.Dest = checked.Dest
	return m, err
}
