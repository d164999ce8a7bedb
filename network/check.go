package network

import (
	"fmt"
	"os"
	"os/exec"

	"github.com/rbox-dev/rbox/network/pasta"
	"github.com/rbox-dev/rbox/network/slirp4netns"
	"github.com/rbox-dev/rbox/spec"
)

// ModeCheck tells whether one user-mode network mode can work on this host.
type ModeCheck struct {
	Mode   string `json:"mode"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
	// Fix says what to do when it cannot; empty when OK.
	Fix string `json:"fix,omitempty"`
}

// Check reports, for rbox check, whether the modes user, pasta and
// slirp4netns can work here: the helper binary, its features, and /dev/net/tun, which
// both helpers open from inside the sandbox's user namespace. It starts no
// sandbox.
func Check() []ModeCheck {
	tunErr := checkTun()
	pasta := checkHelper(spec.NetPasta, tunErr, pasta.Check)
	slirp := checkHelper(spec.NetSlirp4netns, tunErr, func(string) error { return slirp4netns.Check() })
	user := ModeCheck{Mode: spec.NetUser}
	switch {
	case pasta.OK:
		user.OK, user.Detail = true, "uses pasta"
	case slirp.OK:
		user.OK, user.Detail = true, "uses slirp4netns (pasta: "+pasta.Detail+")"
	default:
		user.Detail = "neither pasta nor slirp4netns works (pasta: " + pasta.Detail + "; slirp4netns: " + slirp.Detail + ")"
		user.Fix = pasta.Fix
	}
	return []ModeCheck{user, pasta, slirp}
}

func checkTun() error {
	f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0)
	if err != nil {
		return err
	}
	f.Close()
	return nil
}

func checkHelper(mode string, tunErr error, probe func(bin string) error) ModeCheck {
	c := ModeCheck{Mode: mode}
	bin, err := exec.LookPath(mode)
	if err != nil {
		c.Detail = mode + " is not in PATH"
		c.Fix = "apt install " + helperPackage[mode]
		return c
	}
	if err := probe(bin); err != nil {
		c.Detail = err.Error()
		c.Fix = "install a current " + helperPackage[mode] + " package"
		return c
	}
	if tunErr != nil {
		c.Detail = fmt.Sprintf("cannot open /dev/net/tun: %v", tunErr)
		c.Fix = "make /dev/net/tun mode 0666, as distributions ship it (as root: chmod 0666 /dev/net/tun)"
		return c
	}
	c.OK, c.Detail = true, "works with "+bin
	return c
}
