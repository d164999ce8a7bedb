package sandbox

import (
	"github.com/rbox-dev/rbox/network"
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
// the network namespace of pid (the sandbox's pid 1).
func startEgress(s *spec.Spec, pid int) (*egress.Egress, error) {
	if s.Egress == nil {
		return nil, nil
	}
	p, err := egress.ParsePolicy(s.Egress.Allow)
	if err != nil {
		return nil, err
	}
	return egress.Start(pid, egress.Options{Policy: p, AllowHostLoopback: s.Egress.AllowHostLoopback})
}
