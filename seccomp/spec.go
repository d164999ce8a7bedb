package seccomp

import (
	"fmt"

	"github.com/rbox-dev/rbox/spec"
)

// ForSpec is the filter s asks for, or nil for --seccomp=unconfined. The
// CLI calls it too, so a bad profile is reported before anything starts.
func ForSpec(s *spec.Spec) (*Profile, error) {
	switch s.Seccomp {
	case spec.SeccompUnconfined:
		return nil, nil
	case spec.SeccompProfile:
		p, err := ParseJSON(s.SeccompProfileJSON)
		if err != nil {
			return nil, fmt.Errorf("seccomp profile: %w", err)
		}
		return p, nil
	default:
		return Default(DefaultOptions{AllowNested: s.AllowNested}), nil
	}
}
