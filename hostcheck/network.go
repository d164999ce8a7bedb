package hostcheck

import (
	"sync"

	"github.com/rbox-dev/rbox/network"
)

// netModes is computed once for the three network-mode items.
var netModes = sync.OnceValue(network.Check)

// netModeCheck tells whether a user-mode --net value works here. A mode
// that does not is a warning: sandboxes still run, without that network.
func netModeCheck(mode string) check {
	return func(*caller) Result {
		name := "--net " + mode
		for _, m := range netModes() {
			if m.Mode == mode {
				if m.OK {
					return pass(name, m.Detail)
				}
				return warn(name, m.Detail, m.Fix)
			}
		}
		return warn(name, "not checked", "")
	}
}
