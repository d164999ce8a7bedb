package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/alecthomas/kong"

	"github.com/rbox-dev/rbox/spec"
)

func TestHelpArgs(t *testing.T) {
	if got, ok := helpArgs([]string{"help", "check"}); !ok || !reflect.DeepEqual(got, []string{"check", "--help"}) {
		t.Errorf("help check = %q, %v", got, ok)
	}
	if _, ok := helpArgs([]string{"--", "help"}); ok {
		t.Error("rbox -- help taken as rbox help")
	}
}

func TestMistypedCommand(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	cmds := []string{"run", "check", "image", "version", "completion", "man"}
	for word, want := range map[string]string{"chek": "check", "imgae": "image", "verison": "version", "rnu": "run", "completoin": "completion", "verson": "version"} {
		if got, ok := mistypedCommand([]string{word}, cmds); !ok || got != want {
			t.Errorf("%s: got %q, %v; want %q", word, got, ok, want)
		}
	}
	for _, args := range [][]string{{"check"}, {"--", "chek"}, {"sh"}, {"make"}, {"./chek"}, {"-w", "/"}} {
		if got, ok := mistypedCommand(args, cmds); ok {
			t.Errorf("%q taken as a typo of %s", args, got)
		}
	}
	// A program of that name on PATH runs.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "chek"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	if got, ok := mistypedCommand([]string{"chek"}, cmds); ok {
		t.Errorf("chek on PATH taken as a typo of %s", got)
	}
}

func TestParseOffsetDays(t *testing.T) {
	for in, want := range map[string]int64{"30d": 30 * 86400, "-1d": -86400, "90": 90, "2h": 7200} {
		if got, err := parseOffset(in); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("parseOffset(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}

func TestParseSizeUnits(t *testing.T) {
	for in, want := range map[string]int64{"64m": 64 << 20, "64MiB": 64 << 20, "64mb": 64 << 20, "1G": 1 << 30, "4096": 4096, "2k": 2048} {
		if got, err := parseSize(in); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"0", "-1m", "lots", ""} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q) accepted", bad)
		}
	}
}

func TestDockerVolumeSuffix(t *testing.T) {
	m, err := parseMount(spec.MountBind, "./a:/b:ro")
	if err != nil || !reflect.DeepEqual(m, spec.Mount{Kind: spec.MountROBind, Source: "./a", Dest: "/b"}) {
		t.Errorf(":ro = %+v, %v", m, err)
	}
	m, err = parseMount(spec.MountBind, "./a:/b:rw")
	if err != nil || !reflect.DeepEqual(m, spec.Mount{Kind: spec.MountBind, Source: "./a", Dest: "/b"}) {
		t.Errorf(":rw = %+v, %v", m, err)
	}
}

func TestParseMountSpec(t *testing.T) {
	good := map[string]spec.Mount{
		"type=bind,src=/a:b,dst=/c":              {Kind: spec.MountBind, Source: "/a:b", Dest: "/c"},
		"type=bind,source=/a,target=/c,readonly": {Kind: spec.MountROBind, Source: "/a", Dest: "/c"},
		"type=bind,src=/a,dst=/c,ro=true":        {Kind: spec.MountROBind, Source: "/a", Dest: "/c"},
		"type=tmpfs,dst=/t,tmpfs-size=1m":        {Kind: spec.MountTmpfs, Dest: "/t", SizeBytes: 1 << 20},
	}
	for raw, want := range good {
		if got, err := parseMountSpec(raw); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %+v, %v; want %+v", raw, got, err, want)
		}
	}
	for _, bad := range []string{"type=volume,src=x,dst=/y", "type=bind,dst=/y", "type=bind,src=/x,dst=y", "type=bind,src=/x,dst=/y,z=1", "type=tmpfs,src=/x,dst=/y"} {
		if _, err := parseMountSpec(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func TestEnvHabits(t *testing.T) {
	lookup := func(k string) (string, bool) { v, ok := map[string]string{"K": "caller"}[k]; return v, ok }
	if got := expandEnv([]string{"A=1", "K", "MISSING"}, lookup); !reflect.DeepEqual(got, []string{"A=1", "K=caller"}) {
		t.Errorf("expandEnv = %q", got)
	}
	f := filepath.Join(t.TempDir(), "env")
	os.WriteFile(f, []byte("# comment\n\nA=1\r\n  B=two words\nC\n"), 0o644)
	if got, err := readEnvFile(f); err != nil || !reflect.DeepEqual(got, []string{"A=1", "B=two words", "C"}) {
		t.Errorf("readEnvFile = %q, %v", got, err)
	}
	os.WriteFile(f, []byte("BAD KEY=1\n"), 0o644)
	if _, err := readEnvFile(f); err == nil || !strings.Contains(err.Error(), ":1:") {
		t.Errorf("bad line: %v", err)
	}
	safe := (&habitFlags{EnvMode: "safe"}).callerEnv([]string{"PATH=/bin", "GITHUB_TOKEN=s", "LC_ALL=C", "AWS_SECRET_ACCESS_KEY=s", "HOME=/h"})
	if !reflect.DeepEqual(safe, []string{"PATH=/bin", "LC_ALL=C", "HOME=/h"}) {
		t.Errorf("safe mode passes %q", safe)
	}
}

func TestParseID(t *testing.T) {
	for _, bad := range []string{"-1", "4294967295", "4294967296", "root", ""} {
		if _, err := parseID("--user", bad); err == nil || !strings.Contains(err.Error(), "0 to 4294967294") {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if n, err := parseID("--user", "4294967294"); err != nil || n != 4294967294 {
		t.Errorf("max id: %d, %v", n, err)
	}
}

func TestHomeMount(t *testing.T) {
	tmpfs := &homeFlags{Home: "tmpfs"}
	m, _ := tmpfs.homeMount("/home/u", nil, false, 0)
	if m == nil || !reflect.DeepEqual(*m, spec.Mount{Kind: spec.MountTmpfs, Dest: "/home/u", Mode: 0o700}) {
		t.Errorf("default home: %+v", m)
	}
	if m, _ := tmpfs.homeMount("/home/u", nil, false, 1000); m == nil || m.Mode != 0o777 {
		t.Errorf("home for uid 1000: %+v", m)
	}
	for _, c := range []struct {
		home   string
		mounts []spec.Mount
		custom bool
	}{
		{"", nil, false},
		{"/", nil, false},
		{"rel", nil, false},
		{"/home/u", []spec.Mount{{Kind: spec.MountBind, Source: "/x", Dest: "/home"}}, false},
		{"/home/u", []spec.Mount{{Kind: spec.MountTmpfs, Dest: "/home/u"}}, false},
		{"/home/u", nil, true},
	} {
		if m, _ := tmpfs.homeMount(c.home, c.mounts, c.custom, 0); m != nil {
			t.Errorf("%+v: mounted %+v", c, m)
		}
	}
	if m, _ := (&homeFlags{Home: "none"}).homeMount("/home/u", nil, false, 0); m != nil {
		t.Errorf("--home none mounted %+v", m)
	}
	dir := t.TempDir()
	if m, err := (&homeFlags{Home: dir}).homeMount("/home/u", nil, true, 0); err != nil || m == nil || !reflect.DeepEqual(*m, spec.Mount{Kind: spec.MountBind, Source: dir, Dest: "/home/u"}) {
		t.Errorf("--home DIR: %+v, %v", m, err)
	}
	if _, err := (&homeFlags{Home: filepath.Join(dir, "missing")}).homeMount("/home/u", nil, false, 0); err == nil {
		t.Error("--home of a missing directory accepted")
	}
}

func TestIdentityFiles(t *testing.T) {
	etc := t.TempDir()
	os.WriteFile(filepath.Join(etc, "passwd"), []byte("root:x:0:0:root:/root:/bin/sh"), 0o644)
	os.WriteFile(filepath.Join(etc, "group"), []byte("root:x:0:\n"), 0o644)
	if files := identityFiles(etc, 0, 0, "me", "/home/me"); len(files) != 0 {
		t.Errorf("root has entries, yet %+v", files)
	}
	files := identityFiles(etc, 1234, 99, "me", "/home/me")
	want := []spec.GeneratedFile{
		{Dest: "/etc/passwd", Data: []byte("root:x:0:0:root:/root:/bin/sh\nme:x:1234:99:rbox sandbox user:/home/me:/bin/sh\n")},
		{Dest: "/etc/group", Data: []byte("root:x:0:\nme:x:99:\n")},
	}
	if !reflect.DeepEqual(files, want) {
		t.Errorf("got %q", files)
	}
}

// parse parses args as rbox would, with the config file at path.
func parse(t *testing.T, config string, args ...string) (*CLI, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.toml")
	if config != "" {
		if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("RBOX_CONFIG", path)
	t.Setenv("RBOX_PROFILE", "")
	var cli CLI
	p, err := newParser(&cli, args)
	if err != nil {
		return nil, err
	}
	_, err = p.Parse(args)
	return &cli, err
}

func TestConfigProfiles(t *testing.T) {
	const config = `
[defaults]
net = "user"
hostname = "box"

[profiles.untrusted]
env-mode = "safe"
cap-drop = ["ALL"]
env = ["A=1", "B=2"]
tmpfs = ["/scratch:size=1m"]
mount = ["type=bind,src=/x:y,dst=/m"]
preserve-fds = 0
allow-nested = true
`
	cli, err := parse(t, config, "--", "true")
	if err != nil {
		t.Fatal(err)
	}
	if cli.Run.Net != "user" || cli.Run.Hostname != "box" || cli.Run.Habits.EnvMode != "all" {
		t.Errorf("defaults not applied: net %q hostname %q env-mode %q", cli.Run.Net, cli.Run.Hostname, cli.Run.Habits.EnvMode)
	}
	cli, err = parse(t, config, "--profile", "untrusted", "--hostname", "cmdline", "--bind", "/a:/b", "--", "true")
	if err != nil {
		t.Fatal(err)
	}
	r := cli.Run
	if r.Habits.EnvMode != "safe" || !reflect.DeepEqual(r.CapDrop, []string{"ALL"}) || !reflect.DeepEqual(r.Env, []string{"A=1", "B=2"}) || !r.AllowNested || r.Hostname != "cmdline" || r.Net != "user" {
		t.Errorf("profile not applied, or over the command line: %+v", r)
	}
	wantMounts := []spec.Mount{{Kind: spec.MountTmpfs, Dest: "/scratch", SizeBytes: 1 << 20}, {Kind: spec.MountBind, Source: "/x:y", Dest: "/m"}, {Kind: spec.MountBind, Source: "/a", Dest: "/b"}}
	if !reflect.DeepEqual(mountOrder, wantMounts) {
		t.Errorf("mounts %+v, want the profile's then the command line's %+v", mountOrder, wantMounts)
	}
	for _, c := range []struct{ config, profile, says string }{
		{config, "nope", "no such profile"},
		{"", "nope", "no config file"},
		{"[defaults]\nbogus = 1\n", "", `"bogus" is not a run flag`},
		{"[defaults\n", "", "config file"},
	} {
		args := []string{"--", "true"}
		if c.profile != "" {
			args = append([]string{"--profile", c.profile}, args...)
		}
		if _, err := parse(t, c.config, args...); err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("config %q: %v, want one saying %q", c.config, err, c.says)
		}
	}
}

func TestLogLevels(t *testing.T) {
	for _, c := range []struct {
		conv  conventions
		level slog.Level
	}{
		{conventions{LogLevel: "notice"}, levelNotice},
		{conventions{LogLevel: "warn"}, slog.LevelWarn},
		{conventions{LogLevel: "info"}, slog.LevelInfo},
		{conventions{LogLevel: "warn", Debug: true}, slog.LevelDebug},
		{conventions{LogLevel: "warn", Quiet: true}, slog.LevelError},
	} {
		if got := c.conv.level(); got != c.level {
			t.Errorf("%+v: level %v, want %v", c.conv, got, c.level)
		}
	}
	var b bytes.Buffer
	setupLogging(&b, slog.LevelWarn)
	slog.Info("hidden")
	slog.Warn("no range", "user", "u")
	setupLogging(&b, levelNotice)
	slog.Log(context.Background(), levelNotice, "publishing x")
	if b.String() != "rbox: warning: no range user=u\nrbox: publishing x\n" {
		t.Errorf("log line %q", b.String())
	}
}

func TestCompletionAndMan(t *testing.T) {
	var cli CLI
	p, err := newParser(&cli, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	p.Stdout = &out
	for _, shell := range []string{"bash", "zsh", "fish"} {
		out.Reset()
		if err := (CompletionCmd{Shell: shell}).Run(p); err != nil {
			t.Fatal(err)
		}
		for _, word := range []string{"--bind", "--ro-bind", "check", "--json", "--env-mode"} {
			if !strings.Contains(out.String(), strings.TrimPrefix(word, "--")) {
				t.Errorf("%s completion lacks %s", shell, word)
			}
		}
	}
	out.Reset()
	if err := (ManCmd{}).Run(p); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{".TH RBOX 1", "ro-bind", "time-offset", "check"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("man page lacks %q", want)
		}
	}
}

var _ = kong.Name
