package network

import (
	"errors"
	"fmt"
	"net"
	"os/exec"

	"github.com/rbox-dev/rbox/spec"
)

// helperPackage is the Debian package that ships each helper binary.
var helperPackage = map[string]string{
	spec.NetPasta:       "passt",
	spec.NetSlirp4netns: "slirp4netns",
}

// ErrUnknownMode is returned by Resolve for a mode that is none of spec's.
var ErrUnknownMode = errors.New("unknown network mode; want none, host, user, pasta or slirp4netns")

// IsUserMode reports whether a resolved mode runs a helper: pasta or
// slirp4netns.
func IsUserMode(mode string) bool {
	return mode == spec.NetPasta || mode == spec.NetSlirp4netns
}

// Resolve turns a mode (one of spec.Net*) into the mode that will run:
// "user" becomes "pasta" when pasta is installed, else "slirp4netns";
// "pasta" and "slirp4netns" are checked for their binary; "" means "none".
// The error names the package to install.
func Resolve(mode string) (string, error) {
	switch mode {
	case "", spec.NetNone:
		return spec.NetNone, nil
	case spec.NetHost:
		return spec.NetHost, nil
	case spec.NetUser:
		for _, m := range []string{spec.NetPasta, spec.NetSlirp4netns} {
			if _, err := exec.LookPath(m); err == nil {
				return m, nil
			}
		}
		return "", errors.New("needs pasta or slirp4netns, and neither is in PATH: install the Debian package passt (or slirp4netns)")
	case spec.NetPasta, spec.NetSlirp4netns:
		if _, err := exec.LookPath(mode); err != nil {
			return "", fmt.Errorf("%s is not in PATH: install the Debian package %s", mode, helperPackage[mode])
		}
		return mode, nil
	default:
		return "", ErrUnknownMode
	}
}

// Mistakes Validate finds, for callers that explain them in their own
// words (each is wrapped with the details).
var (
	ErrPublishNeedsUserMode  = errors.New("published ports need a user-mode network (user, pasta or slirp4netns)")
	ErrLoopbackNeedsUserMode = errors.New("reaching the host's loopback needs a user-mode network (user, pasta or slirp4netns)")
	ErrBadDNS                = errors.New("the nameserver is not an IP address")
	ErrBadMTU                = errors.New("the MTU is negative")
)

// Validate checks o, whose Mode is resolved (see Resolve): the one place
// that decides which options go with which mode. The published ports
// themselves are checked by ports.Check.
func Validate(o Options) error {
	if o.DNS != "" && net.ParseIP(o.DNS) == nil {
		return fmt.Errorf("%w: %q", ErrBadDNS, o.DNS)
	}
	if IsUserMode(o.Mode) {
		if o.MTU < 0 {
			return fmt.Errorf("%w: %d", ErrBadMTU, o.MTU)
		}
		return nil
	}
	if len(o.Publish) > 0 {
		return fmt.Errorf("%w, not %s", ErrPublishNeedsUserMode, o.Mode)
	}
	if o.AllowHostLoopback {
		return fmt.Errorf("%w, not %s", ErrLoopbackNeedsUserMode, o.Mode)
	}
	return nil
}

// NeedsPortAgent reports whether the published ports ps of a sandbox in
// mode need rootlesskit's port agent in the sandbox's pid 1 (see
// ports.StartAgent), which only the re-executed pid 1 can run. pasta
// forwards ports itself, except UDP to another port number (the pasta of
// Debian 12, 2023-03, forwards the datagrams but loses the replies then)
// and IPv6 host addresses (pasta runs with --ipv4-only).
func NeedsPortAgent(mode string, ps []spec.Port) bool {
	for _, p := range ps {
		if mode != spec.NetPasta || !pastaForwards(p) {
			return true
		}
	}
	return false
}

// pastaForwards reports whether pasta forwards p itself.
func pastaForwards(p spec.Port) bool {
	if ip := net.ParseIP(p.HostIP); ip == nil || ip.To4() == nil {
		return false
	}
	return p.Proto == "tcp" || p.HostPort == p.ChildPort
}
