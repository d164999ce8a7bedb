package network

import (
	"errors"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/rbox-dev/rbox/spec"
)

func TestResolve(t *testing.T) {
	for in, want := range map[string]string{"": "none", "none": "none", "host": "host", "pasta": "pasta", "slirp4netns": "slirp4netns", "user": "pasta"} {
		got, err := Resolve(in)
		if err != nil || got != want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := Resolve("bridge"); err == nil || !errors.Is(err, ErrUnknownMode) {
		t.Errorf("Resolve(bridge): %v", err)
	}

	// Only slirp4netns installed: user falls back to it.
	dir := t.TempDir()
	real, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, dir+"/slirp4netns"); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	if got, err := Resolve("user"); err != nil || got != "slirp4netns" {
		t.Errorf("user with only slirp4netns: %q, %v", got, err)
	}
	if _, err := Resolve("pasta"); err == nil || !strings.Contains(err.Error(), "install the Debian package passt") {
		t.Errorf("pasta missing: %v", err)
	}

	// Nothing installed.
	t.Setenv("PATH", t.TempDir())
	for mode, pkg := range map[string]string{"user": "passt", "pasta": "passt", "slirp4netns": "slirp4netns"} {
		_, err := Resolve(mode)
		if err == nil || !strings.Contains(err.Error(), "install the Debian package "+pkg) || strings.Contains(err.Error(), "\n") {
			t.Errorf("Resolve(%q) without helpers: %v", mode, err)
		}
	}
	// And Start reports the same before doing anything.
	if _, err := Start(t.Context(), os.Getpid(), Options{Mode: "user"}); err == nil || !strings.Contains(err.Error(), "install the Debian package") {
		t.Errorf("Start without helpers: %v", err)
	}
}

func TestResolvConfAndHosts(t *testing.T) {
	c := ChildConfig{Mode: spec.NetSlirp4netns, IP: SandboxIP, DNS: DNSIP, Search: []string{"example.org"}}
	if got, want := string(c.ResolvConf()), "# written by rbox\nsearch example.org\nnameserver 10.0.2.3\n"; got != want {
		t.Errorf("ResolvConf = %q, want %q", got, want)
	}
	if got := string(c.Hosts("box")); !strings.Contains(got, "127.0.0.1\tlocalhost\n") || !strings.Contains(got, "10.0.2.100\tbox\n") {
		t.Errorf("Hosts = %q", got)
	}
	none := ChildConfig{Mode: spec.NetNone}
	if none.ResolvConf() != nil {
		t.Errorf("none: ResolvConf = %q, want nil", none.ResolvConf())
	}
	if got := string(none.Hosts("box")); !strings.Contains(got, "127.0.1.1\tbox\n") {
		t.Errorf("none: Hosts = %q", got)
	}
}

// A helper that exits before it is ready fails Start with its own words,
// and leaves nothing running.
func TestHelperFailsEarly(t *testing.T) {
	dir := t.TempDir()
	script := `#!/bin/sh
case "$1" in --help) echo "--netns-type --enable-sandbox --enable-seccomp --disable-host-loopback";; --version) echo fake;; *) echo "$0: cannot attach: boom" >&2; exit 1;; esac
`
	for _, name := range []string{"pasta", "slirp4netns"} {
		if err := os.WriteFile(dir+"/"+name, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", dir)
	for _, mode := range []string{spec.NetPasta, spec.NetSlirp4netns} {
		// Our own pid stands in for the sandbox: its maps exist, and the
		// fake helper never touches it.
		n, err := Start(t.Context(), os.Getpid(), Options{Mode: mode})
		if err == nil {
			n.Close()
			t.Errorf("%s: Start succeeded with a failing helper", mode)
			continue
		}
		if !strings.Contains(err.Error(), mode+": cannot attach: boom") || !strings.Contains(err.Error(), "exited early") {
			t.Errorf("%s: error %q does not carry the helper's message", mode, err)
		}
	}
	// An old slirp4netns is named as such.
	old := "#!/bin/sh\necho 'Usage: slirp4netns [OPTION]... PID TAPNAME'; exit 1\n"
	if err := os.WriteFile(dir+"/slirp4netns", []byte(old), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Start(t.Context(), os.Getpid(), Options{Mode: spec.NetSlirp4netns}); err == nil || !strings.Contains(err.Error(), "v0.4.0") {
		t.Errorf("old slirp4netns: %v", err)
	}
	if left := leftovers(os.Getpid()); len(left) != 0 {
		t.Errorf("left running: %v", left)
	}
}

// A port in use fails Start, before any helper runs, with either helper.
func TestStartPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := spec.Port{HostIP: "127.0.0.1", HostPort: ln.Addr().(*net.TCPAddr).Port, ChildPort: 80, Proto: "tcp"}
	for _, mode := range []string{spec.NetPasta, spec.NetSlirp4netns} {
		_, err := Start(t.Context(), os.Getpid(), Options{Mode: mode, Publish: []spec.Port{busy}})
		if err == nil || !strings.Contains(err.Error(), "already in use") {
			t.Errorf("%s: Start with a port in use: %v", mode, err)
		}
	}
	if left := leftovers(os.Getpid()); len(left) != 0 {
		t.Errorf("left running: %v", left)
	}
}

func TestNeedsPortAgent(t *testing.T) {
	tcp := spec.Port{HostIP: "127.0.0.1", HostPort: 8080, ChildPort: 80, Proto: "tcp"}
	udpSame := spec.Port{HostIP: "0.0.0.0", HostPort: 5353, ChildPort: 5353, Proto: "udp"}
	udpOther := spec.Port{HostIP: "127.0.0.1", HostPort: 5353, ChildPort: 53, Proto: "udp"}
	ipv6 := spec.Port{HostIP: "::1", HostPort: 8080, ChildPort: 80, Proto: "tcp"}
	for _, c := range []struct {
		mode string
		ps   []spec.Port
		want bool
	}{
		{spec.NetPasta, nil, false},
		{spec.NetPasta, []spec.Port{tcp, udpSame}, false},
		{spec.NetPasta, []spec.Port{tcp, udpOther}, true},
		{spec.NetPasta, []spec.Port{ipv6}, true},
		{spec.NetSlirp4netns, nil, false},
		{spec.NetSlirp4netns, []spec.Port{tcp}, true},
	} {
		if got := NeedsPortAgent(c.mode, c.ps); got != c.want {
			t.Errorf("NeedsPortAgent(%s, %v) = %v, want %v", c.mode, c.ps, got, c.want)
		}
	}
}
