// Package ports parses, checks and forwards a sandbox's published ports
// (spec.Port): the host's HOSTIP:HOSTPORT reaching the sandbox's PORT.
package ports

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/rbox-dev/rbox/spec"
)

// DefaultHostIP is where a published port listens when its text names no
// address:
// the host's loopback, so that publishing never opens a port to the network
// by accident. Pass 0.0.0.0 explicitly for that.
const DefaultHostIP = "127.0.0.1"

// Form is how a published port is written.
const Form = "[HOSTIP:]HOSTPORT:PORT[/tcp|/udp]"

// hostAddr is "HOSTIP:HOSTPORT/proto", as used in messages.
func hostAddr(p spec.Port) string {
	return net.JoinHostPort(p.HostIP, strconv.Itoa(p.HostPort)) + "/" + p.Proto
}

// Parse parses "[HOSTIP:]HOSTPORT:PORT[/tcp|/udp]". An IPv6 HOSTIP is
// written in brackets: "[::1]:8080:80".
func Parse(s string) (spec.Port, error) {
	bad := func(why string) (spec.Port, error) {
		return spec.Port{}, fmt.Errorf("invalid published port %q: %s; want %s", s, why, Form)
	}
	rest := s
	p := spec.Port{Proto: "tcp"}
	if i := strings.LastIndexByte(rest, '/'); i >= 0 {
		switch proto := rest[i+1:]; proto {
		case "tcp", "udp":
			p.Proto = proto
		default:
			return bad(fmt.Sprintf("protocol %q is neither tcp nor udp", proto))
		}
		rest = rest[:i]
	}
	// The container port is after the last colon; what is before it is
	// [HOSTIP:]HOSTPORT, where HOSTIP may be a bracketed IPv6 address.
	i := strings.LastIndexByte(rest, ':')
	if i < 0 {
		return bad("missing host port")
	}
	hostPart, childPart := rest[:i], rest[i+1:]
	var err error
	if p.ChildPort, err = parsePort(childPart); err != nil {
		return bad("sandbox port " + err.Error())
	}
	p.HostIP = DefaultHostIP
	portPart := hostPart
	if j := strings.LastIndexByte(hostPart, ':'); j >= 0 {
		ip := hostPart[:j]
		portPart = hostPart[j+1:]
		if strings.HasPrefix(ip, "[") && strings.HasSuffix(ip, "]") {
			ip = ip[1 : len(ip)-1]
		} else if strings.Contains(ip, ":") && net.ParseIP(ip) != nil {
			return bad("an IPv6 host address must be in brackets, as in [::1]:8080:80")
		}
		parsed := net.ParseIP(ip)
		if parsed == nil {
			return bad(fmt.Sprintf("host address %q is not an IP address", ip))
		}
		p.HostIP = parsed.String()
	}
	if p.HostPort, err = parsePort(portPart); err != nil {
		return bad("host port " + err.Error())
	}
	return p, nil
}

func parsePort(s string) (int, error) {
	if s == "" {
		return 0, errors.New("is empty")
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	if n < 1 || n > 65535 {
		return 0, fmt.Errorf("%d is out of range 1-65535", n)
	}
	return n, nil
}

// UnprivilegedPortStart reads net.ipv4.ip_unprivileged_port_start, the
// lowest port an unprivileged user may bind (1024 when it cannot be read).
func UnprivilegedPortStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start")
	if err != nil {
		return 1024
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 1024
	}
	return n
}

// Check tells, before anything is started, whether every published
// host port can be bound: a duplicate entry, a port already in use, or a
// port below net.ipv4.ip_unprivileged_port_start that the caller may not
// bind each fail with a message naming the port.
func Check(ps []spec.Port) error {
	seen := map[string]bool{}
	for _, p := range ps {
		key := hostAddr(p)
		if seen[key] {
			return fmt.Errorf("host port %s is published twice", key)
		}
		seen[key] = true
		if _, err := probe(p.Proto, net.JoinHostPort(p.HostIP, strconv.Itoa(p.HostPort))); err != nil {
			return bindError(p, err)
		}
	}
	return nil
}

func bindError(p spec.Port, err error) error {
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Errorf("cannot publish host port %s: it is already in use", hostAddr(p))
	case errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM):
		if start := UnprivilegedPortStart(); p.HostPort < start {
			return fmt.Errorf("cannot publish host port %s: ports below %d (net.ipv4.ip_unprivileged_port_start) need privilege; pick a port >= %d",
				hostAddr(p), start, start)
		}
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return fmt.Errorf("cannot publish host port %s: %s is not an address of this host", hostAddr(p), p.HostIP)
	}
	return fmt.Errorf("cannot publish host port %s: %w", hostAddr(p), err)
}
