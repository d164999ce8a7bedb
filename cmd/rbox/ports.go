package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"

	"github.com/rbox-dev/rbox/network/ports"
)

// maxPublishRange bounds the ports one -p range may forward: each is a
// forward of its own.
const maxPublishRange = 1000

// expandPublish turns one -p value with docker's extra forms into the
// single-port HOSTIP:HOSTPORT:PORT/PROTO values the network code takes:
// ranges (8000-8010:8000-8010), and no host port (-p 80, -p 127.0.0.1::80),
// for which pick chooses a free one. picked describes the chosen ports.
func expandPublish(raw string, pick func(proto, ip string) (int, error)) (out, picked []string, err error) {
	bad := func(why string) ([]string, []string, error) {
		return nil, nil, fmt.Errorf("invalid -p/--publish %q: %s; want [HOSTIP:][HOSTPORT[-END]:]PORT[-END][/tcp|/udp]", raw, why)
	}
	rest, proto := raw, "tcp"
	if i := strings.LastIndexByte(rest, '/'); i >= 0 {
		rest, proto = rest[:i], rest[i+1:]
	}
	hostPart, childPart := "", rest
	if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		hostPart, childPart = rest[:i], rest[i+1:]
	}
	ip, hostPorts := "", hostPart
	switch {
	case strings.HasPrefix(hostPart, "["):
		end := strings.Index(hostPart, "]:")
		if end < 0 {
			return bad("an IPv6 host address must be in brackets and followed by ':'")
		}
		ip, hostPorts = hostPart[:end+1], hostPart[end+2:]
	case strings.Contains(hostPart, ":"):
		j := strings.LastIndexByte(hostPart, ':')
		ip, hostPorts = hostPart[:j], hostPart[j+1:]
	}
	child, err := portRange(childPart)
	if err != nil {
		return bad("sandbox port " + err.Error())
	}
	var host []int
	if hostPorts != "" {
		if host, err = portRange(hostPorts); err != nil {
			return bad("host port " + err.Error())
		}
		if len(host) != len(child) {
			return bad(fmt.Sprintf("%d host ports for %d sandbox ports", len(host), len(child)))
		}
	}
	prefix := ""
	if ip != "" {
		prefix = ip + ":"
	}
	for i, c := range child {
		h := 0
		if host != nil {
			h = host[i]
		} else {
			bind := strings.Trim(ip, "[]")
			if bind == "" {
				bind = "127.0.0.1"
			}
			if h, err = pick(proto, bind); err != nil {
				return bad("no free host port: " + err.Error())
			}
			picked = append(picked, fmt.Sprintf("%s -> %d/%s", net.JoinHostPort(bind, strconv.Itoa(h)), c, proto))
		}
		out = append(out, fmt.Sprintf("%s%d:%d/%s", prefix, h, c, proto))
	}
	return out, picked, nil
}

// portRange reads PORT or FIRST-LAST.
func portRange(s string) ([]int, error) {
	first, last, isRange := strings.Cut(s, "-")
	a, err := strconv.Atoi(first)
	if err != nil || a < 1 || a > 65535 {
		return nil, fmt.Errorf("%q is not a port (1 to 65535)", s)
	}
	b := a
	if isRange {
		if b, err = strconv.Atoi(last); err != nil || b < a || b > 65535 {
			return nil, fmt.Errorf("%q is not a range FIRST-LAST of ports", s)
		}
		if b-a+1 > maxPublishRange {
			return nil, fmt.Errorf("%q has more than %d ports", s, maxPublishRange)
		}
	}
	ports := make([]int, 0, b-a+1)
	for p := a; p <= b; p++ {
		ports = append(ports, p)
	}
	return ports, nil
}

// freePort picks a port free on ip now (see ports.FreeHostPort).
func freePort(proto, ip string) (int, error) { return ports.FreeHostPort(proto, ip) }

// publishSpecs expands every -p value (see expandPublish) and says which
// host ports were chosen.
func publishSpecs(raws []string) ([]string, error) {
	var out []string
	for _, raw := range raws {
		specs, picked, err := expandPublish(raw, freePort)
		if err != nil {
			return nil, err
		}
		for _, p := range picked {
			slog.Log(context.Background(), levelNotice, "publishing "+p)
		}
		out = append(out, specs...)
	}
	return out, nil
}
