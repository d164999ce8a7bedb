package initproc

import (
	"fmt"

	"github.com/rbox-dev/rbox/seccomp"
	"github.com/rbox-dev/rbox/spec"
)

// installSeccomp loads the payload's filter, compiled by the CLI, on the
// calling thread: the last step before the payload is forked.
func installSeccomp(s *spec.Spec) error {
	if s.SeccompFilter == nil {
		return nil
	}
	if err := seccomp.Load(s.SeccompFilter); err != nil {
		return fmt.Errorf("install the seccomp filter: %w", err)
	}
	for i := range s.SeccompExtra { // rbox bwrap: --add-seccomp-fd more than once
		if err := seccomp.Load(&s.SeccompExtra[i]); err != nil {
			return fmt.Errorf("install seccomp program %d: %w", i+2, err)
		}
	}
	return nil
}
