package slirp

import (
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/rbox-dev/rbox/internal/nettest"
)

func TestParsePublish(t *testing.T) {
	good := map[string]PortSpec{
		"8080:80":               {"127.0.0.1", 8080, 80, "tcp"},
		"8080:80/tcp":           {"127.0.0.1", 8080, 80, "tcp"},
		"127.0.0.1:5353:53/udp": {"127.0.0.1", 5353, 53, "udp"},
		"0.0.0.0:65535:1":       {"0.0.0.0", 65535, 1, "tcp"},
		"[::1]:8080:80/udp":     {"::1", 8080, 80, "udp"},
		"192.168.1.5:1024:22":   {"192.168.1.5", 1024, 22, "tcp"},
		"[0:0::0:1]:1234:4321":  {"::1", 1234, 4321, "tcp"},
		"10.0.0.1:8443:443/tcp": {"10.0.0.1", 8443, 443, "tcp"},
	}
	for in, want := range good {
		got, err := ParsePublish(in)
		if err != nil || got != want {
			t.Errorf("ParsePublish(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	bad := map[string]string{
		"":                    "missing host port",
		"80":                  "missing host port",
		"8080:80/sctp":        `protocol "sctp"`,
		"8080:80/":            `protocol ""`,
		"8080:":               "sandbox port is empty",
		":80":                 "host port is empty",
		"x:80":                `host port "x" is not a number`,
		"8080:y":              `sandbox port "y" is not a number`,
		"0:80":                "host port 0 is out of range",
		"8080:65536":          "sandbox port 65536 is out of range",
		"foo:8080:80":         `host address "foo" is not an IP address`,
		"::1:8080:80":         "must be in brackets",
		"127.000.000.001:1:1": "is not an IP address",
		"1.2.3.4:5:6:7":       "is not an IP address",
	}
	for in, want := range bad {
		_, err := ParsePublish(in)
		if err == nil {
			t.Errorf("ParsePublish(%q) succeeded, want error with %q", in, want)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, want) || !strings.Contains(msg, publishForm) || strings.Contains(msg, "\n") {
			t.Errorf("ParsePublish(%q) error %q: want one line with %q and the expected form", in, msg, want)
		}
	}
}

func TestResolve(t *testing.T) {
	for in, want := range map[string]string{"": "none", "none": "none", "host": "host", "pasta": "pasta", "slirp4netns": "slirp4netns", "user": "slirp4netns"} {
		got, err := Resolve(in)
		if err != nil || got != want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := Resolve("bridge"); err == nil || !strings.Contains(err.Error(), "--net bridge: unknown network mode") {
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

func TestCheckPorts(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := ln.Addr().(*net.TCPAddr).Port
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	busyUDP := pc.LocalAddr().(*net.UDPAddr).Port

	free := nettest.FreePort(t, "tcp")
	if err := CheckPorts([]PortSpec{{"127.0.0.1", free, 80, "tcp"}, {"127.0.0.1", free, 80, "udp"}}); err != nil {
		t.Errorf("free ports: %v", err)
	}
	for _, c := range []struct {
		ps   []PortSpec
		want string
	}{
		{[]PortSpec{{"127.0.0.1", busy, 80, "tcp"}}, "127.0.0.1:" + strconv.Itoa(busy) + "/tcp: it is already in use"},
		{[]PortSpec{{"127.0.0.1", busyUDP, 53, "udp"}}, "127.0.0.1:" + strconv.Itoa(busyUDP) + "/udp: it is already in use"},
		{[]PortSpec{{"127.0.0.1", free, 80, "tcp"}, {"127.0.0.1", free, 81, "tcp"}}, "published twice"},
		{[]PortSpec{{"192.0.2.200", free, 80, "tcp"}}, "192.0.2.200 is not an address of this host"},
	} {
		err := CheckPorts(c.ps)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("CheckPorts(%v) = %v, want %q", c.ps, err, c.want)
		}
	}
	// A port in use also fails Start, before any helper runs.
	_, err = Start(t.Context(), os.Getpid(), Options{Mode: ModeSlirp4netns, Publish: []PortSpec{{"127.0.0.1", busy, 80, "tcp"}}})
	if err == nil || !strings.Contains(err.Error(), "already in use") {
		t.Errorf("Start with a port in use: %v", err)
	}

	start := UnprivilegedPortStart()
	if start == 0 {
		t.Fatal("ip_unprivileged_port_start is 0 here: every port is unprivileged")
	}
	low := PortSpec{"127.0.0.1", start - 1, 80, "tcp"}
	want := "ports below " + strconv.Itoa(start) + " (net.ipv4.ip_unprivileged_port_start) need privilege"
	if os.Geteuid() != 0 {
		if err := CheckPorts([]PortSpec{low}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckPorts(privileged port) = %v, want %q", err, want)
		}
	} else {
		// root may bind it; the message for those who may not:
		if err := bindError(low, syscall.EACCES); !strings.Contains(err.Error(), want) {
			t.Errorf("bindError(EACCES) = %v", err)
		}
	}
}

func TestResolvConfAndHosts(t *testing.T) {
	c := ChildConfig{Mode: ModeSlirp4netns, IP: SandboxIP, DNS: DNSIP, Search: []string{"example.org"}}
	if got, want := string(c.ResolvConf()), "# written by rbox\nsearch example.org\nnameserver 10.0.2.3\n"; got != want {
		t.Errorf("ResolvConf = %q, want %q", got, want)
	}
	if got := string(c.Hosts("box")); !strings.Contains(got, "127.0.0.1\tlocalhost\n") || !strings.Contains(got, "10.0.2.100\tbox\n") {
		t.Errorf("Hosts = %q", got)
	}
	none := ChildConfig{Mode: ModeNone}
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
	for _, mode := range []string{ModePasta, ModeSlirp4netns} {
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
	if _, err := Start(t.Context(), os.Getpid(), Options{Mode: ModeSlirp4netns}); err == nil || !strings.Contains(err.Error(), "v0.4.0") {
		t.Errorf("old slirp4netns: %v", err)
	}
	if left := leftovers(os.Getpid()); len(left) != 0 {
		t.Errorf("left running: %v", left)
	}
}

// --net user prefers pasta only from a release known to be fast; Debian
// 12's pasta (no version printed) loses to slirp4netns.
func TestUserHelperChoice(t *testing.T) {
	real, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for version, want := range map[string]string{
		"pasta 2024_08_21.1d6142f":                 ModePasta,
		"pasta 0.0~git20240220.1e6f92b-1":          ModePasta,
		"pasta 0.0~git20230309.7c7625d-1":          ModeSlirp4netns,
		"pasta unknown version\nCopyright Red Hat": ModeSlirp4netns,
	} {
		dir := t.TempDir()
		script := "#!/bin/sh\nprintf '%s\\n' '" + strings.ReplaceAll(version, "\n", "' '") + "'\n"
		if err := os.WriteFile(dir+"/pasta", []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(real, dir+"/slirp4netns"); err != nil {
			t.Fatal(err)
		}
		t.Setenv("PATH", dir)
		got, why, err := UserHelper()
		if err != nil || got != want || why == "" {
			t.Errorf("%q: %s (%s), %v; want %s", version, got, why, err, want)
		}
	}
}
