package initproc

import (
	"fmt"

	"github.com/rbox-dev/rbox/seccomp"
	"github.com/rbox-dev/rbox/spec"
)

// installSeccomp loads the payload's filter on the calling thread, the last
// step before the payload is forked.
func installSeccomp(s *spec.Spec) error {
	p, err := seccomp.ForSpec(s)
	if err != nil || p == nil {
		return err
	}
	if err := p.Install(); err != nil {
		return fmt.Errorf("install the seccomp filter: %w", err)
	}
	return nil
}
