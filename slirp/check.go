package slirp

import (
	"fmt"
	"os"
	"os/exec"

	rkslirp "github.com/rootless-containers/rootlesskit/v2/pkg/network/slirp4netns"
)

// ModeCheck tells whether one --net mode can work on this host.
type ModeCheck struct {
	Mode   string `json:"mode"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// Check reports, for rbox check, which network modes can work here: the
// helper binaries, their features, and /dev/net/tun, which both helpers
// open from inside the sandbox's user namespace. It starts no sandbox.
func Check() []ModeCheck {
	tunErr := checkTun()
	pasta := checkHelper(ModePasta, tunErr, func(bin string) error {
		if out, err := exec.Command(bin, "--version").CombinedOutput(); err != nil {
			return fmt.Errorf("%s --version failed: %v: %s", bin, err, out)
		}
		return nil
	})
	slirp := checkHelper(ModeSlirp4netns, tunErr, func(bin string) error {
		f, err := rkslirp.DetectFeatures(bin)
		if err != nil {
			return err
		}
		if !f.SupportsEnableSandbox || !f.SupportsEnableSeccomp || !f.SupportsDisableHostLoopback {
			return fmt.Errorf("%s is too old (needs --enable-sandbox, --enable-seccomp, --disable-host-loopback)", bin)
		}
		if !f.KernelSupportsEnableSeccomp {
			return fmt.Errorf("the kernel lacks seccomp filters, which slirp4netns --enable-seccomp needs")
		}
		return nil
	})
	user := ModeCheck{Mode: ModeUser}
	switch {
	case pasta.OK:
		user.OK, user.Detail = true, "uses pasta"
	case slirp.OK:
		user.OK, user.Detail = true, "uses slirp4netns (pasta: "+pasta.Detail+")"
	default:
		user.Detail = "neither pasta nor slirp4netns works: " + pasta.Detail + "; " + slirp.Detail
	}
	return []ModeCheck{
		{Mode: ModeNone, OK: true, Detail: "loopback only"},
		{Mode: ModeHost, OK: true, Detail: "the host's network namespace"},
		user, pasta, slirp,
	}
}

func checkTun() error {
	f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("cannot open /dev/net/tun (%v): it should be mode 0666, as distros ship it", err)
	}
	f.Close()
	return nil
}

func checkHelper(mode string, tunErr error, probe func(bin string) error) ModeCheck {
	c := ModeCheck{Mode: mode}
	bin, err := exec.LookPath(mode)
	if err != nil {
		c.Detail = fmt.Sprintf("%s is not in PATH: install the Debian package %s", mode, helperPackage[mode])
		return c
	}
	if err := probe(bin); err != nil {
		c.Detail = err.Error()
		return c
	}
	if tunErr != nil {
		c.Detail = tunErr.Error()
		return c
	}
	c.OK, c.Detail = true, bin
	return c
}
