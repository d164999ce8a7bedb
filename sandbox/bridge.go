package sandbox

import (
	"github.com/rbox-dev/rbox/network/bridge"
	"github.com/rbox-dev/rbox/spec"
)

// attachBridge has the network's holder plug the network namespace of pid
// 1 (made in the network's user namespace) into the bridge, before the
// command starts; with an outbound policy, restricted to the network.
func attachBridge(s *spec.Spec, pid int) error {
	if s.Bridge == nil {
		return nil
	}
	_, err := bridge.Attach(s.Bridge.Root, s.Bridge.Network, pid, s.Bridge.Name, s.Bridge.Publish, s.Egress != nil)
	return err
}
