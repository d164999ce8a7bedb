package bwrapcli

import (
	"errors"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/rbox-dev/rbox/spec"
)

func parse(t *testing.T, args ...string) *Run {
	t.Helper()
	r, err := Parse(args, []string{"HOME=/home/u", "A=1", "B=2"}, "/here")
	if err != nil {
		t.Fatalf("%q: %v", args, err)
	}
	return r
}

func TestParseOrderAndModifiers(t *testing.T) {
	r := parse(t, "--ro-bind", "/usr", "/usr", "--perms", "0700", "--size", "4096", "--tmpfs", "/t", "--tmpfs", "/u",
		"--perms", "0751", "--dir", "/d", "--symlink", "usr/bin", "/bin", "--chmod", "0700", "/t", "--proc", "/proc", "true")
	var kinds []spec.MountKind
	for _, m := range r.Spec.Mounts {
		kinds = append(kinds, m.Kind)
	}
	want := []spec.MountKind{spec.MountROBind, spec.MountTmpfs, spec.MountTmpfs, spec.MountDir, spec.MountSymlink, spec.MountChmod, spec.MountProc}
	if !reflect.DeepEqual(kinds, want) {
		t.Fatalf("kinds %v, want %v", kinds, want)
	}
	m := r.Spec.Mounts
	if m[1].Mode != 0o700 || !m[1].HasMode || m[1].SizeBytes != 4096 || m[2].HasMode || m[2].SizeBytes != 0 || m[3].Mode != 0o751 {
		t.Fatalf("--perms/--size applied wrongly: %+v", m[1:4])
	}
	if !r.Spec.EmptyRoot || !r.Spec.KeepSession || r.Spec.Net != spec.NetHost || len(r.Spec.Share) != len(spec.ShareableNamespaces) {
		t.Fatalf("defaults: %+v", r.Spec)
	}
	if !reflect.DeepEqual(r.Spec.Args, []string{"true"}) || r.Spec.Cwd != "/here" || !reflect.DeepEqual(r.Spec.CwdFallbacks, []string{"/home/u", "/"}) {
		t.Fatalf("command or cwd: %+v", r.Spec)
	}
}

func TestParseNamespaces(t *testing.T) {
	r := parse(t, "--unshare-all", "--share-net", "--hostname", "h", "true")
	if r.Spec.Shares(spec.NSPID) || r.Spec.Shares(spec.NSUTS) || !r.Spec.Shares(spec.NSNet) || !r.Spec.Shares(spec.NSTime) || r.Spec.Hostname != "h" {
		t.Fatalf("%+v", r.Spec)
	}
	r = parse(t, "--unshare-net", "--", "--not-an-option")
	if r.Spec.Net != spec.NetNone || r.Spec.Args[0] != "--not-an-option" {
		t.Fatalf("%+v", r.Spec)
	}
}

func TestParseEnv(t *testing.T) {
	r := parse(t, "--setenv", "X", "1", "--unsetenv", "A", "--chdir", "/c", "true")
	env := strings.Join(r.Spec.Env, " ")
	if env != "HOME=/home/u B=2 X=1 PWD=/c" || r.Spec.Cwd != "/c" || r.Spec.CwdFallbacks != nil {
		t.Fatalf("env %q cwd %q", env, r.Spec.Cwd)
	}
	r = parse(t, "--setenv", "X", "1", "--clearenv", "--setenv", "Y", "2", "true")
	if env := strings.Join(r.Spec.Env, " "); env != "Y=2 PWD=/here" {
		t.Fatalf("--clearenv: %q", env)
	}
}

func TestParseArgsFD(t *testing.T) {
	rd, wr, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	_, _ = wr.WriteString("--unshare-pid\x00--setenv\x00K\x00v w\x00")
	wr.Close()
	r := parse(t, "--args", itoa(int(rd.Fd())), "true")
	if r.Spec.Shares(spec.NSPID) || !strings.Contains(strings.Join(r.Spec.Env, "\n"), "K=v w") {
		t.Fatalf("%+v", r.Spec)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestParseOverlayOrder(t *testing.T) {
	dir := t.TempDir()
	r := parse(t, "--overlay-src", dir+"/", "--overlay-src", "/usr", "--tmp-overlay", "/o", "true")
	m := r.Spec.Mounts[0]
	if m.Kind != spec.MountOverlay || !reflect.DeepEqual(m.Lowers, []string{"/usr", dir + "/"}) {
		t.Fatalf("%+v", m)
	}
}

func TestParseCaps(t *testing.T) {
	r := parse(t, "--uid", "1000", "--cap-add", "net_raw", "--cap-add", "CAP_CHOWN", "--cap-drop", "CAP_CHOWN", "true")
	if !reflect.DeepEqual(r.Spec.Caps, []string{"CAP_NET_RAW"}) || r.UID != 1000 {
		t.Fatalf("caps %v uid %d", r.Spec.Caps, r.UID)
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--bogus"}, "Unknown option --bogus"},
		{[]string{"--bind", "/"}, "--bind takes two arguments"},
		{[]string{"--ro-bind", "/nonexistent-rbox", "/x", "true"}, "Can't find source path /nonexistent-rbox: No such file or directory"},
		{[]string{"--uid", "x", "true"}, "Invalid uid: x"},
		{[]string{"--hostname", "h", "true"}, "Specifying --hostname requires --unshare-uts"},
		{[]string{"--perms", "0700", "--bind", "/", "/", "true"}, "--perms must be followed by an option that creates a file"},
		{[]string{"--size", "1", "--dir", "/d", "true"}, "--size must be followed by --tmpfs"},
		{[]string{"--ro-bind", "/", "/"}, "No command specified"},
		{[]string{"--overlay-src", "/usr", "--dir", "/d", "true"}, "--overlay-src must be followed"},
		{[]string{"--as-pid-1", "true"}, "Specifying --as-pid-1 requires --unshare-pid"},
		{[]string{"--userns", "99", "true"}, "Joining specified user namespace failed: Bad file descriptor"},
		{[]string{"--pidns", "99", "true"}, "Setting pidns failed: Bad file descriptor"},
		{[]string{"--userns2", "99", "true"}, "Setting userns2 failed: Bad file descriptor"},
		{[]string{"--userns-block-fd", "3", "true"}, "--userns-block-fd requires --unshare-user"},
		{[]string{"--unshare-user", "--userns-block-fd", "3", "true"}, "--userns-block-fd requires --info-fd"},
		{[]string{"--userns", "3", "--unshare-user", "true"}, "--userns not compatible --unshare-user"},
		{[]string{"--userns", "3", "--unshare-user-try", "true"}, "--userns not compatible --unshare-user-try"},
		{[]string{"--disable-userns", "true"}, "--disable-userns requires --unshare-user"},
		{[]string{"--unshare-user", "--assert-userns-disabled", "true"}, "creation of new user namespaces was not disabled as requested"},
	} {
		_, err := Parse(c.args, nil, "/")
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.args, err, c.want)
		}
	}
	if r := parse(t, "--bind-try", "/nonexistent-rbox", "/x", "true"); len(r.Spec.Mounts) != 0 {
		t.Fatalf("--bind-try kept a missing source: %+v", r.Spec.Mounts)
	}
	var u *UsageError
	if _, err := Parse([]string{"--bogus"}, nil, "/"); !errors.As(err, &u) {
		t.Fatalf("not a UsageError: %v", err)
	}
}

// A namespace descriptor is checked before anything starts: the caller's
// own user namespace cannot be entered (setns says EINVAL), nor a
// descriptor of another kind.
func TestParseNamespaceDescriptors(t *testing.T) {
	own, err := os.Open("/proc/self/ns/user")
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	file, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	const notDescendant = "Joining the specified user namespace failed, it might not be a descendant of the current user namespace."
	for _, fd := range []uintptr{own.Fd(), file.Fd()} {
		_, err := Parse([]string{"--userns", strconv.Itoa(int(fd)), "true"}, nil, "/")
		if err == nil || err.Error() != notDescendant {
			t.Errorf("--userns %d: %v", fd, err)
		}
	}
	if _, err := Parse([]string{"--pidns", strconv.Itoa(int(own.Fd())), "true"}, nil, "/"); err == nil || err.Error() != "Setting pidns failed: Invalid argument" {
		t.Errorf("--pidns of a user namespace: %v", err)
	}
}
