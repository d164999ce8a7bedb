package network

import (
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strings"

	"github.com/rbox-dev/rbox/spec"
)

// PastaKnownGood is the oldest pasta release --net user prefers over
// slirp4netns. Debian 12's build (git 2023-03-09) moved 0.35-3.0 Gbit/s
// upload through rbox where slirp4netns moved 4.7-8.2 in the same runs;
// passt's TCP path was reworked through 2023 and 2024. Older builds, and
// builds that do not say their version (Debian's print "unknown
// version"), lose to slirp4netns when it is installed; --net pasta still
// forces pasta.
const PastaKnownGood = "2024_01_01"

// pastaRelease finds a release date in pasta --version's text: an
// upstream tag (2024_08_21.1d6142f) or a Debian snapshot (0.0~git20230309).
var pastaRelease = regexp.MustCompile(`\b(\d{4})_(\d{2})_(\d{2})\b|~git(\d{4})(\d{2})(\d{2})`)

// PastaVersion is the release date (YYYY_MM_DD) pasta at bin reports, or
// "" when it reports none.
func PastaVersion(bin string) string {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return ""
	}
	first, _, _ := strings.Cut(string(out), "\n")
	m := pastaRelease.FindStringSubmatch(first)
	switch {
	case m == nil:
		return ""
	case m[1] != "":
		return m[1] + "_" + m[2] + "_" + m[3]
	}
	return m[4] + "_" + m[5] + "_" + m[6]
}

// UserHelper is the helper --net user runs here, and why: pasta when its
// release is PastaKnownGood or later or slirp4netns is missing, else
// slirp4netns.
func UserHelper() (mode, why string, err error) {
	pasta, pastaErr := exec.LookPath(spec.NetPasta)
	_, slirpErr := exec.LookPath(spec.NetSlirp4netns)
	switch {
	case pastaErr != nil && slirpErr != nil:
		return "", "", errors.New("needs pasta or slirp4netns, and neither is in PATH: install the Debian package passt (or slirp4netns)")
	case pastaErr != nil:
		return spec.NetSlirp4netns, "pasta is not installed", nil
	case slirpErr != nil:
		return spec.NetPasta, "slirp4netns is not installed", nil
	}
	v := PastaVersion(pasta)
	if v >= PastaKnownGood {
		return spec.NetPasta, "pasta " + v + " is " + PastaKnownGood + " or later", nil
	}
	if v == "" {
		v = "an unknown version"
	}
	return spec.NetSlirp4netns, fmt.Sprintf("pasta is %s, older than %s, whose builds moved data slower than slirp4netns (--net pasta forces it)", v, PastaKnownGood), nil
}
