//go:build integration

package tests

import (
	"strings"
	"testing"
)

// Each mistake gets one line on stderr naming it, exit 125, and leaves
// nothing behind.
func TestBadInput(t *testing.T) {
	dir := hostDir(t)
	writeFile(t, dir+"/bad.json", `{"defaultAction": "SCMP_ACT_NOPE"}`)
	cases := []struct {
		name string
		args []string
		says string
	}{
		{"unknown flag", []string{"--no-such-flag", "--", "true"}, "unknown flag --no-such-flag"},
		{"missing command", []string{}, "missing command"},
		{"missing command after --", []string{"--bind", dir + ":/x", "--"}, "missing command"},
		{"bind without colon", []string{"--bind", dir, "--", "true"}, "expected SRC:DST"},
		{"bind with empty dest", []string{"--bind", dir + ":", "--", "true"}, "expected SRC:DST"},
		{"missing source", []string{"--ro-bind", "/no/such/dir:/x", "--", "true"}, "source /no/such/dir does not exist"},
		{"relative dest", []string{"--bind", dir + ":work", "--", "true"}, "must be an absolute path"},
		{"relative tmpfs", []string{"--tmpfs", "scratch", "--", "true"}, "must be an absolute path"},
		{"bad size", []string{"--tmpfs", "/s:size=lots", "--", "true"}, "not a positive size"},
		{"bad tmpfs option", []string{"--tmpfs", "/s:color=red", "--", "true"}, "unknown option"},
		{"bad mode", []string{"--tmpfs", "/s:mode=999", "--", "true"}, "octal mode"},
		{"invalid hostname", []string{"--hostname", "bad_host!", "--", "true"}, "not a valid host name"},
		{"hostname too long", []string{"--hostname", strings.Repeat("a", 70), "--", "true"}, "longer than 64"},
		{"hostname with shared uts", []string{"--hostname", "h", "--share", "uts", "--", "true"}, "needs a new uts namespace"},
		{"unknown namespace", []string{"--share", "bogus", "--", "true"}, "unknown namespace"},
		{"share user", []string{"--share", "user", "--", "true"}, "always new"},
		{"bad time offset", []string{"--time-offset", "monotonic=soon", "--", "true"}, "neither seconds nor a duration"},
		{"unknown clock", []string{"--time-offset", "realtime=5", "--", "true"}, "unknown clock"},
		{"unknown capability", []string{"--cap-add", "CAP_FLY", "--", "true"}, "unknown capability"},
		{"missing seccomp profile", []string{"--seccomp", "/no/such.json", "--", "true"}, "no such file"},
		{"bad seccomp profile", []string{"--seccomp", dir + "/bad.json", "--", "true"}, "SCMP_ACT_NOPE"},
		{"relative chdir", []string{"-w", "work", "--", "true"}, "must be an absolute path"},
		{"bad env", []string{"--env", "=V", "--", "true"}, "expected K=V"},
		{"negative uid", []string{"--uid", "-1", "--", "true"}, "from 0 to 4294967294"},
		{"uid -1 as a number", []string{"--uid", "4294967295", "--", "true"}, "from 0 to 4294967294"},
		{"bad user", []string{"--user", "nobody", "--", "true"}, "from 0 to 4294967294"},
		{"mistyped subcommand", []string{"chek"}, `did you mean "check"`},
		{"mount of a volume", []string{"--mount", "type=volume,src=v,dst=/v", "--", "true"}, "use type=bind or type=tmpfs"},
		{"missing env file", []string{"--env-file", "/no/such/env", "--", "true"}, "--env-file"},
		{"missing home", []string{"--home", "/no/such/home", "--", "true"}, "--home /no/such/home: not a directory"},
		{"bad env mode", []string{"--env-mode", "some", "--", "true"}, "--env-mode"},
		{"time offset in weeks", []string{"--time-offset", "boottime=2w", "--", "true"}, "30d"},
		{"bind on a missing dir of /usr", []string{"--bind", dir + ":/usr/no/such", "--", "true"}, "add --tmpfs /usr before it"},
		{"bind over /", []string{"--ro-bind", "/:/", "--", "true"}, "use --rootfs DIR"},
		{"rootfs without mount points", []string{"--rootfs", dir, "--", "true"}, "has no /proc, /dev, /sys, /tmp to mount on"},
		{"unknown net mode", []string{"--net", "carrier-pigeon", "--", "true"}, "--net"},
		{"unknown sandbox to share a network with", []string{"--net", "sandbox:no-such-box", "--", "true"}, "no sandbox named"},
		{"fd not open", []string{"--preserve-fds", "5", "--", "true"}, "is not open"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := tmpEntries(t)
			r := rbox(t, c.args...)
			if r.code != 125 {
				t.Fatalf("exit %d, want 125\n%s", r.code, r)
			}
			lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "rbox: ") {
				t.Fatalf("want exactly one rbox: line on stderr, got %q", r.stderr)
			}
			if !strings.Contains(lines[0], c.says) {
				t.Errorf("stderr %q does not say %q", lines[0], c.says)
			}
			if r.stdout != "" {
				t.Errorf("stdout not empty: %q", r.stdout)
			}
			for e := range tmpEntries(t) {
				if !before[e] {
					t.Errorf("left %s in /tmp", e)
				}
			}
		})
	}
}

// A failure inside the sandbox's setup is one line naming the step and
// the path, and exit 125 too, on both kinds of pid 1: the one forked
// without exec, and the re-executed one (scripts/run-integration's pass
// under RBOX_TEST_FORCE_REEXEC), with and without a terminal.
func TestSetupFailureExit125(t *testing.T) {
	dir := hostDir(t)
	for _, extra := range [][]string{nil, {"-t"}} {
		cases := []struct {
			args []string
			says []string
		}{
			{[]string{"-w", "/no/such/dir"}, []string{"working directory /no/such/dir", "no such file or directory"}},
			// A read-only bind: no mount point can be made in it. (The
			// read-only system directories are checked before the setup.)
			{[]string{"--ro-bind", dir + ":/ro", "--ro-bind", dir + ":/ro/rbox-new"}, []string{"ro-bind " + dir + " on /ro/rbox-new", "read-only file system"}},
		}
		for _, c := range cases {
			before := tmpEntries(t)
			r := rbox(t, append(append(extra, c.args...), "--", "true")...)
			var lines []string
			for _, l := range strings.Split(strings.TrimRight(r.stderr, "\n"), "\n") {
				if !strings.HasPrefix(l, "rbox: warning: ") { // root's single mapping
					lines = append(lines, l)
				}
			}
			if r.code != 125 || len(lines) != 1 {
				t.Fatalf("%v: want exit 125 and one line:\n%s", c.args, r)
			}
			for _, w := range c.says {
				if !strings.Contains(lines[0], w) {
					t.Errorf("%v %v: %q does not say %q", extra, c.args, lines[0], w)
				}
			}
			for e := range tmpEntries(t) {
				if !before[e] {
					t.Errorf("left %s in /tmp", e)
				}
			}
		}
	}
}
