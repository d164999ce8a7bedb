package ports

import (
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/rbox-dev/rbox/spec"
)

func TestParse(t *testing.T) {
	good := map[string]spec.Port{
		"8080:80":               mkPort("127.0.0.1", 8080, 80, "tcp"),
		"8080:80/tcp":           mkPort("127.0.0.1", 8080, 80, "tcp"),
		"127.0.0.1:5353:53/udp": mkPort("127.0.0.1", 5353, 53, "udp"),
		"0.0.0.0:65535:1":       mkPort("0.0.0.0", 65535, 1, "tcp"),
		"[::1]:8080:80/udp":     mkPort("::1", 8080, 80, "udp"),
		"192.168.1.5:1024:22":   mkPort("192.168.1.5", 1024, 22, "tcp"),
		"[0:0::0:1]:1234:4321":  mkPort("::1", 1234, 4321, "tcp"),
		"10.0.0.1:8443:443/tcp": mkPort("10.0.0.1", 8443, 443, "tcp"),
	}
	for in, want := range good {
		got, err := Parse(in)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", in, got, err, want)
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
		_, err := Parse(in)
		if err == nil {
			t.Errorf("Parse(%q) succeeded, want error with %q", in, want)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, want) || !strings.Contains(msg, Form) || strings.Contains(msg, "\n") {
			t.Errorf("Parse(%q) error %q: want one line with %q and the expected form", in, msg, want)
		}
	}
}

func TestCheck(t *testing.T) {
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

	free, err := FreeHostPort("tcp", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if err := Check([]spec.Port{mkPort("127.0.0.1", free, 80, "tcp"), mkPort("127.0.0.1", free, 80, "udp")}); err != nil {
		t.Errorf("free ports: %v", err)
	}
	for _, c := range []struct {
		ps   []spec.Port
		want string
	}{
		{[]spec.Port{mkPort("127.0.0.1", busy, 80, "tcp")}, "127.0.0.1:" + strconv.Itoa(busy) + "/tcp: it is already in use"},
		{[]spec.Port{mkPort("127.0.0.1", busyUDP, 53, "udp")}, "127.0.0.1:" + strconv.Itoa(busyUDP) + "/udp: it is already in use"},
		{[]spec.Port{mkPort("127.0.0.1", free, 80, "tcp"), mkPort("127.0.0.1", free, 81, "tcp")}, "published twice"},
		{[]spec.Port{mkPort("192.0.2.200", free, 80, "tcp")}, "192.0.2.200 is not an address of this host"},
	} {
		err := Check(c.ps)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Check(%v) = %v, want %q", c.ps, err, c.want)
		}
	}
	start := UnprivilegedPortStart()
	if start == 0 {
		t.Fatal("ip_unprivileged_port_start is 0 here: every port is unprivileged")
	}
	low := mkPort("127.0.0.1", start-1, 80, "tcp")
	want := "ports below " + strconv.Itoa(start) + " (net.ipv4.ip_unprivileged_port_start) need privilege"
	if os.Geteuid() != 0 {
		if err := Check([]spec.Port{low}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Check(privileged port) = %v, want %q", err, want)
		}
	} else {
		// root may bind it; the message for those who may not:
		if err := bindError(low, syscall.EACCES); !strings.Contains(err.Error(), want) {
			t.Errorf("bindError(EACCES) = %v", err)
		}
	}
}

func mkPort(hostIP string, hostPort, childPort int, proto string) spec.Port {
	return spec.Port{HostIP: hostIP, HostPort: hostPort, ChildPort: childPort, Proto: proto}
}
