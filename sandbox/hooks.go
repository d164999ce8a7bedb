package sandbox

import (
	"fmt"

	"github.com/rbox-dev/rbox/contract"
)

// Hooks let the caller act at the moments bwrap reports on (rbox bwrap's
// --info-fd, --json-status-fd and --block-fd, and the same native options).
type Hooks struct {
	// Started is called once pid 1 exists in its namespaces with its id
	// maps written, before it builds the sandbox; an error ends the
	// sandbox.
	Started func(pid int) error
	// Failed reports a failure of rbox's own (the parent's, or the setup
	// or exec pid 1 reported back) and returns the exit code; nil means
	// "rbox: msg" and rbox's code.
	Failed func(msg string, code int) int
}

func (h *Hooks) started(pid int) error {
	if h == nil || h.Started == nil {
		return nil
	}
	return h.Started(pid)
}

// failer is failf, or h.Failed when given.
func (h *Hooks) failer() func(format string, a ...any) int {
	if h == nil || h.Failed == nil {
		return failf
	}
	return func(format string, a ...any) int {
		return h.Failed(fmt.Sprintf(format, a...), contract.ExitSetupFailed)
	}
}
