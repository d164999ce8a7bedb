package sandbox

import (
	"fmt"
	"net/netip"

	"github.com/rbox-dev/rbox/network"
	"github.com/rbox-dev/rbox/network/bridge"
	"github.com/rbox-dev/rbox/network/egress"
	"github.com/rbox-dev/rbox/spec"
)

// sandboxNet is the sandbox's network as the parent runs it: the helper
// and port forwarding (package network) and, with an outbound policy, rbox's
// filtering proxies (package egress).
type sandboxNet struct {
	*network.Network
	egress *egress.Egress
}

// Close stops the proxies, the helper and the port forwarding.
func (n *sandboxNet) Close() error {
	n.egress.Close()
	return n.Network.Close()
}

// startEgress starts the proxies of s's outbound policy, if it has one, in
// the network namespace of pid (the sandbox's pid 1). On an rbox network
// the network's other sandboxes are its peers.
func startEgress(s *spec.Spec, pid int) (*egress.Egress, error) {
	if s.Egress == nil {
		return nil, nil
	}
	p, err := egress.ParsePolicy(s.Egress.Allow)
	if err != nil {
		return nil, err
	}
	o := egress.Options{Policy: p, AllowHostLoopback: s.Egress.AllowHostLoopback}
	if b := s.Bridge; b != nil {
		if o.Peers, err = peersOf(b); err != nil {
			return nil, err
		}
	}
	return egress.Start(pid, o)
}

// peersOf are the sandboxes of b's network, as the network's holder knows
// them.
func peersOf(b *spec.Bridge) (*egress.Peers, error) {
	n, err := bridge.Read(b.Root, b.Network)
	if err != nil {
		return nil, err
	}
	subnet, err := netip.ParsePrefix(n.Subnet)
	if err != nil {
		return nil, fmt.Errorf("network %s: %w", b.Network, err)
	}
	p := &egress.Peers{Subnet: subnet, Gateway: bridge.Gateway(subnet), Lookup: func(name string) []netip.Addr {
		addrs, _ := bridge.Lookup(b.Root, b.Network, name)
		return addrs
	}}
	if n.Subnet6 != "" {
		if p.Subnet6, err = netip.ParsePrefix(n.Subnet6); err != nil {
			return nil, fmt.Errorf("network %s: %w", b.Network, err)
		}
		p.Gateway6 = bridge.Address6(subnet, p.Subnet6, p.Gateway)
	}
	return p, nil
}
