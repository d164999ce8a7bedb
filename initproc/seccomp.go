package initproc

import (
	"fmt"

	"github.com/rbox-dev/rbox/seccomp"
	"github.com/rbox-dev/rbox/spec"
)

// installSeccomp loads the payload's filter on the calling thread, the last
// step before the payload is forked.
func installSeccomp(s *spec.Spec) error {
	p, err := Profile(s)
	if err != nil || p == nil {
		return err
	}
	if err := p.Install(); err != nil {
		return fmt.Errorf("install the seccomp filter: %w", err)
	}
	return nil
}

// Profile is the filter s asks for, or nil for --seccomp=unconfined. The CLI
// calls it too, so a bad profile is reported before anything starts.
func Profile(s *spec.Spec) (*seccomp.Profile, error) {
	switch s.Seccomp {
	case spec.SeccompUnconfined:
		return nil, nil
	case spec.SeccompProfile:
		p, err := seccomp.ParseJSON(s.SeccompProfileJSON)
		if err != nil {
			return nil, fmt.Errorf("seccomp profile: %w", err)
		}
		return p, nil
	default:
		return seccomp.Default(seccomp.DefaultOptions{AllowNested: s.AllowNested}), nil
	}
}
