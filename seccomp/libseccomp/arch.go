package libseccomp

import (
	"fmt"
	"runtime"
	"slices"

	scmp "github.com/seccomp/libseccomp-golang"

	"github.com/rbox-dev/rbox/seccomp"
)

// archByName maps the OCI architecture names to libseccomp's.
var archByName = map[seccomp.Arch]scmp.ScmpArch{
	seccomp.ArchX86:         scmp.ArchX86,
	seccomp.ArchX86_64:      scmp.ArchAMD64,
	seccomp.ArchX32:         scmp.ArchX32,
	seccomp.ArchARM:         scmp.ArchARM,
	seccomp.ArchAARCH64:     scmp.ArchARM64,
	"SCMP_ARCH_MIPS":        scmp.ArchMIPS,
	"SCMP_ARCH_MIPS64":      scmp.ArchMIPS64,
	"SCMP_ARCH_MIPS64N32":   scmp.ArchMIPS64N32,
	"SCMP_ARCH_MIPSEL":      scmp.ArchMIPSEL,
	"SCMP_ARCH_MIPSEL64":    scmp.ArchMIPSEL64,
	"SCMP_ARCH_MIPSEL64N32": scmp.ArchMIPSEL64N32,
	"SCMP_ARCH_PPC":         scmp.ArchPPC,
	"SCMP_ARCH_PPC64":       scmp.ArchPPC64,
	"SCMP_ARCH_PPC64LE":     scmp.ArchPPC64LE,
	seccomp.ArchS390:        scmp.ArchS390,
	seccomp.ArchS390X:       scmp.ArchS390X,
	"SCMP_ARCH_PARISC":      scmp.ArchPARISC,
	"SCMP_ARCH_PARISC64":    scmp.ArchPARISC64,
	"SCMP_ARCH_RISCV64":     scmp.ArchRISCV64,
	"SCMP_ARCH_LOONGARCH64": scmp.ArchLOONGARCH64,
	"SCMP_ARCH_M68K":        scmp.ArchM68K,
	"SCMP_ARCH_SH":          scmp.ArchSH,
	"SCMP_ARCH_SHEB":        scmp.ArchSHEB,
}

func scmpArch(a seccomp.Arch) (scmp.ScmpArch, error) {
	if arch, ok := archByName[a]; ok {
		return arch, nil
	}
	return scmp.ArchInvalid, fmt.Errorf("unknown architecture %q", a)
}

func archName(arch scmp.ScmpArch) seccomp.Arch {
	for name, a := range archByName {
		if a == arch {
			return name
		}
	}
	return seccomp.Arch(arch.String())
}

// hostABIs are the native ABI and its compat ABIs, native first, of a
// kernel for goarch: those of seccomp.ABIsOf, or, for rbox's own GOARCH
// when that list does not know it, libseccomp's native one alone.
func hostABIs(goarch string) ([]scmp.ScmpArch, error) {
	var abis []scmp.ScmpArch
	for _, name := range seccomp.ABIsOf(goarch) {
		a, err := scmpArch(name)
		if err != nil {
			return nil, fmt.Errorf("seccomp: host ABI: %w", err)
		}
		abis = append(abis, a)
	}
	if len(abis) > 0 {
		return abis, nil
	}
	if goarch != runtime.GOARCH {
		return nil, fmt.Errorf("seccomp: the ABIs of %s are unknown", goarch)
	}
	native, err := scmp.GetNativeArch()
	if err != nil {
		return nil, fmt.Errorf("seccomp: native architecture: %w", err)
	}
	return []scmp.ScmpArch{native}, nil
}

// profileABIs picks the ABIs p's filter covers: those p names that this kernel can
// run, plus always the native one; with none named, all the host's ABIs.
// ABIs of other machines are dropped, as the kernel never presents them.
func profileABIs(p *seccomp.Profile, goarch string) ([]scmp.ScmpArch, error) {
	host, err := hostABIs(goarch)
	if err != nil {
		return nil, err
	}
	named := p.Architectures
	if len(named) == 0 {
		for _, m := range p.ArchMap {
			if a, err := scmpArch(m.Arch); err == nil && a == host[0] {
				named = append([]seccomp.Arch{m.Arch}, m.SubArches...)
				break
			}
		}
	}
	if len(named) == 0 {
		return host, nil
	}
	abis := []scmp.ScmpArch{host[0]}
	for _, name := range named {
		a, err := scmpArch(name)
		if err != nil {
			return nil, err
		}
		if slices.Contains(host, a) && !slices.Contains(abis, a) {
			abis = append(abis, a)
		}
	}
	return abis, nil
}
