package slirp

import (
	"fmt"
	"os/exec"
)

// Network modes, as spelled on the command line (see spec.Net*).
const (
	ModeNone        = "none"
	ModeHost        = "host"
	ModeUser        = "user"
	ModePasta       = "pasta"
	ModeSlirp4netns = "slirp4netns"
)

// helperPackage is the Debian package that ships each helper binary.
var helperPackage = map[string]string{
	ModePasta:       "passt",
	ModeSlirp4netns: "slirp4netns",
}

// Resolve turns a --net value into the mode that will run: "user" becomes
// the helper UserHelper picks; "pasta" and
// "slirp4netns" are checked for their binary; "" means "none". The error
// names the package to install.
func Resolve(mode string) (string, error) {
	switch mode {
	case "", ModeNone:
		return ModeNone, nil
	case ModeHost:
		return ModeHost, nil
	case ModeUser:
		m, _, err := UserHelper()
		return m, err
	case ModePasta, ModeSlirp4netns:
		if _, err := exec.LookPath(mode); err != nil {
			return "", fmt.Errorf("--net %s: %s is not in PATH: install the Debian package %s", mode, mode, helperPackage[mode])
		}
		return mode, nil
	default:
		return "", fmt.Errorf("--net %s: unknown network mode; want none, host, user, pasta or slirp4netns", mode)
	}
}
