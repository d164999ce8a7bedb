package main

import (
	"reflect"
	"strings"
	"testing"

	"github.com/rbox-dev/rbox/spec"
)

func TestParseMount(t *testing.T) {
	good := []struct {
		kind spec.MountKind
		raw  string
		want spec.Mount
	}{
		{spec.MountBind, "./src:/work", spec.Mount{Kind: spec.MountBind, Source: "./src", Dest: "/work"}},
		{spec.MountROBind, "/a:/b/../c/", spec.Mount{Kind: spec.MountROBind, Source: "/a", Dest: "/c"}},
		{spec.MountTmpfs, "/s:size=64m,mode=1777", spec.Mount{Kind: spec.MountTmpfs, Dest: "/s", SizeBytes: 64 << 20, Mode: 0o1777}},
		{spec.MountTmpfs, "/s", spec.Mount{Kind: spec.MountTmpfs, Dest: "/s"}},
		{spec.MountDir, "/d/e", spec.Mount{Kind: spec.MountDir, Dest: "/d/e"}},
		{spec.MountSymlink, "usr/bin:/bin2", spec.Mount{Kind: spec.MountSymlink, Source: "usr/bin", Dest: "/bin2"}},
	}
	for _, c := range good {
		got, err := parseMount(c.kind, c.raw)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("parseMount(%s, %q) = %+v, %v; want %+v", c.kind, c.raw, got, err, c.want)
		}
	}
	bad := []struct {
		kind spec.MountKind
		raw  string
		says string
	}{
		{spec.MountBind, "/a", "expected SRC:DST"},
		{spec.MountBind, ":/a", "expected SRC:DST"},
		{spec.MountBind, "/a:rel", "must be an absolute path"},
		{spec.MountTmpfs, "/s:size=0", "positive size"},
		{spec.MountTmpfs, "/s:size=1x", "positive size"},
		{spec.MountTmpfs, "/s:mode=8", "octal mode"},
		{spec.MountTmpfs, "/s:uid=0", "unknown option"},
		{spec.MountSymlink, "target", "expected TARGET:LINK"},
		{spec.MountDir, "", "needs a value"},
	}
	for _, c := range bad {
		if _, err := parseMount(c.kind, c.raw); err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("parseMount(%s, %q) error = %v, want one saying %q", c.kind, c.raw, err, c.says)
		}
	}
}

func TestParseTimeOffsets(t *testing.T) {
	o, err := parseTimeOffsets("monotonic=90,boottime=2h")
	if err != nil || o != (spec.TimeOffsets{Monotonic: 90, Boottime: 7200}) {
		t.Errorf("got %+v, %v", o, err)
	}
	if o, err := parseTimeOffsets("boottime=-1h"); err != nil || o.Boottime != -3600 {
		t.Errorf("negative offset: %+v, %v", o, err)
	}
	for _, bad := range []string{"monotonic", "realtime=1", "boottime=soon"} {
		if _, err := parseTimeOffsets(bad); err == nil {
			t.Errorf("parseTimeOffsets(%q) accepted", bad)
		}
	}
}

func TestCheckHostname(t *testing.T) {
	for _, h := range []string{"a", "build-1", "x.example.org"} {
		if err := checkHostname(h); err != nil {
			t.Errorf("%q rejected: %v", h, err)
		}
	}
	for _, h := range []string{"", "-a", "a-", "a_b", "a..b", strings.Repeat("a", 65), strings.Repeat("a", 64) + ".b"} {
		if err := checkHostname(h); err == nil {
			t.Errorf("%q accepted", h)
		}
	}
}

func TestBuildEnv(t *testing.T) {
	got := buildEnv([]string{"A=1", "B=2", "C=3"}, false, []string{"B"}, []string{"C=x", "D=y=z"})
	if want := []string{"A=1", "C=x", "D=y=z"}; !reflect.DeepEqual(got, want) {
		t.Errorf("buildEnv = %q, want %q", got, want)
	}
	if got := buildEnv([]string{"A=1"}, true, nil, []string{"B=2"}); !reflect.DeepEqual(got, []string{"B=2"}) {
		t.Errorf("--clear-env: %q", got)
	}
}

func TestParseShare(t *testing.T) {
	got, err := parseShare([]string{"net", "ipc", "net"})
	if err != nil || !reflect.DeepEqual(got, []string{"net", "ipc"}) {
		t.Errorf("parseShare = %q, %v", got, err)
	}
	for _, bad := range []string{"user", "mount", "bogus"} {
		if _, err := parseShare([]string{bad}); err == nil {
			t.Errorf("--share %s accepted", bad)
		}
	}
}
