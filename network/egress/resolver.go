package egress

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// resolver finds the addresses of an allowed name, from the host's point
// of view.
type resolver interface {
	lookup(ctx context.Context, name string) ([]netip.Addr, error)
}

// newResolver is the host's resolver, or, when testHosts (the value of
// TestHostsEnv) is set, a fixed table that never asks a DNS server.
func newResolver(testHosts string) (resolver, error) {
	if testHosts == "" {
		return hostResolver{}, nil
	}
	t := tableResolver{}
	for _, kv := range strings.Split(testHosts, ",") {
		name, ip, ok := strings.Cut(kv, "=")
		a, err := netip.ParseAddr(ip)
		if !ok || err != nil {
			return nil, fmt.Errorf("%s: %q is not NAME=IP", TestHostsEnv, kv)
		}
		name = NormalizeName(name)
		t[name] = append(t[name], a)
	}
	return t, nil
}

type hostResolver struct{}

func (hostResolver) lookup(ctx context.Context, name string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip", name)
}

type tableResolver map[string][]netip.Addr

func (t tableResolver) lookup(_ context.Context, name string) ([]netip.Addr, error) {
	if a := t[NormalizeName(name)]; len(a) > 0 {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}
