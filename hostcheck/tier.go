package hostcheck

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/tier"
)

// checkIsolation says which tier `rbox` (--isolation auto) runs here, and
// for the degraded and landlock tiers, why and what they do not enforce.
func checkIsolation(*caller) Result {
	const name = "isolation tier"
	abi := tier.ABI()
	b, refused, err := tier.Assess()
	if err != nil {
		return fail(name, err.Error(), "try again: the probe's fork failed for a passing reason")
	}
	if b == nil && len(refused) > 0 {
		comp, missing, err := tier.Compensation(refused)
		if err != nil {
			return fail(name, "degraded: "+err.Error(), degradedFix(refused))
		}
		detail := strings.TrimPrefix(tier.DescribeDegraded(tier.Choice{Tier: tier.Degraded, Refused: refused}, comp, missing), "isolation: ")
		return warn(name, detail, degradedFix(refused))
	}
	if b == nil {
		fallback := fmt.Sprintf("the landlock tier is available as the fall-back (Landlock ABI %d)", abi)
		if abi < 1 {
			fallback = "no landlock tier to fall back to (" + tier.ABIProblem() + ")"
		}
		return pass(name, "full: user namespaces with capabilities; "+fallback)
	}
	fix := tierFix(b)
	if abi < 1 {
		return fail(name, fmt.Sprintf("none: %v, and Landlock is missing (%s)", b, tier.ABIProblem()), fix)
	}
	detail := fmt.Sprintf("landlock (Landlock ABI %d): %v", abi, b)
	if m := tier.Missing(abi, false); len(m) > 0 {
		detail += "; not enforced: " + strings.Join(m, ", ")
	}
	return warn(name, detail, fix)
}

// tierFix is how to get the full tier back.
func tierFix(b *tier.Blocker) string {
	switch {
	case errors.Is(b.Err, unix.ENOSPC):
		return persistHint("user.max_user_namespaces", "15000")
	case !b.NoUserNS && tier.AppArmorRestricts():
		return "install rbox's AppArmor profile (packaging/apparmor/README.md), or " + persistHint("kernel.apparmor_restrict_unprivileged_userns", "0")
	case tier.SeccompFiltered():
		return "in Docker: --security-opt seccomp=unconfined --security-opt apparmor=unconfined (or a profile allowing clone, unshare and mount); inside rbox: run the outer one with --allow-nested; see docs/tiers.md"
	}
	return "see docs/tiers.md"
}

// degradedFix is how to get the namespaces and the fresh /proc that the
// degraded tier goes without.
func degradedFix(refused []tier.Refusal) string {
	for _, r := range refused {
		if errors.Is(r.Err, unix.ENOSPC) {
			return "raise the user.max_" + r.What + "_namespaces sysctl (it is 0 or reached); see docs/tiers.md"
		}
	}
	if tier.SeccompFiltered() {
		return "in Docker or Podman: --security-opt seccomp=unconfined, and --security-opt systempaths=unconfined for a fresh /proc; inside rbox: the outer one with --allow-nested gives the namespaces; see docs/tiers.md"
	}
	return "see docs/tiers.md"
}
