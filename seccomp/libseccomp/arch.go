package seccomp

import (
	"fmt"
	"slices"

	libseccomp "github.com/seccomp/libseccomp-golang"
)

// archByName maps the OCI architecture names to libseccomp's.
var archByName = map[Arch]libseccomp.ScmpArch{
	ArchX86:                 libseccomp.ArchX86,
	ArchX86_64:              libseccomp.ArchAMD64,
	ArchX32:                 libseccomp.ArchX32,
	ArchARM:                 libseccomp.ArchARM,
	ArchAARCH64:             libseccomp.ArchARM64,
	"SCMP_ARCH_MIPS":        libseccomp.ArchMIPS,
	"SCMP_ARCH_MIPS64":      libseccomp.ArchMIPS64,
	"SCMP_ARCH_MIPS64N32":   libseccomp.ArchMIPS64N32,
	"SCMP_ARCH_MIPSEL":      libseccomp.ArchMIPSEL,
	"SCMP_ARCH_MIPSEL64":    libseccomp.ArchMIPSEL64,
	"SCMP_ARCH_MIPSEL64N32": libseccomp.ArchMIPSEL64N32,
	"SCMP_ARCH_PPC":         libseccomp.ArchPPC,
	"SCMP_ARCH_PPC64":       libseccomp.ArchPPC64,
	"SCMP_ARCH_PPC64LE":     libseccomp.ArchPPC64LE,
	ArchS390:                libseccomp.ArchS390,
	ArchS390X:               libseccomp.ArchS390X,
	"SCMP_ARCH_PARISC":      libseccomp.ArchPARISC,
	"SCMP_ARCH_PARISC64":    libseccomp.ArchPARISC64,
	"SCMP_ARCH_RISCV64":     libseccomp.ArchRISCV64,
	"SCMP_ARCH_LOONGARCH64": libseccomp.ArchLOONGARCH64,
	"SCMP_ARCH_M68K":        libseccomp.ArchM68K,
	"SCMP_ARCH_SH":          libseccomp.ArchSH,
	"SCMP_ARCH_SHEB":        libseccomp.ArchSHEB,
}

// compatABIs are the other ABIs a kernel of the native architecture runs
// programs in. A filter must cover them too: a call through an ABI the
// filter does not name bypasses its rules (it gets the bad-arch action).
// On amd64, x32 calls arrive with the x86_64 audit arch and bit 0x40000000
// set in the number; libseccomp tells them apart once x32 is in the filter.
var compatABIs = map[libseccomp.ScmpArch][]libseccomp.ScmpArch{
	libseccomp.ArchAMD64: {libseccomp.ArchX86, libseccomp.ArchX32},
	libseccomp.ArchARM64: {libseccomp.ArchARM},
	libseccomp.ArchS390X: {libseccomp.ArchS390},
}

func scmpArch(a Arch) (libseccomp.ScmpArch, error) {
	if arch, ok := archByName[a]; ok {
		return arch, nil
	}
	return libseccomp.ArchInvalid, fmt.Errorf("unknown architecture %q", a)
}

func archName(arch libseccomp.ScmpArch) Arch {
	for name, a := range archByName {
		if a == arch {
			return name
		}
	}
	return Arch(arch.String())
}

// hostABIs are the native ABI and its compat ABIs, native first.
func hostABIs() ([]libseccomp.ScmpArch, error) {
	native, err := libseccomp.GetNativeArch()
	if err != nil {
		return nil, fmt.Errorf("seccomp: native architecture: %w", err)
	}
	return append([]libseccomp.ScmpArch{native}, compatABIs[native]...), nil
}

// abis picks the ABIs p's filter covers: those p names that this kernel can
// run, plus always the native one; with none named, all the host's ABIs.
// ABIs of other machines are dropped, as the kernel never presents them.
func (p *Profile) abis() ([]libseccomp.ScmpArch, error) {
	host, err := hostABIs()
	if err != nil {
		return nil, err
	}
	named := p.Architectures
	if len(named) == 0 {
		for _, m := range p.ArchMap {
			if a, err := scmpArch(m.Arch); err == nil && a == host[0] {
				named = append([]Arch{m.Arch}, m.SubArches...)
				break
			}
		}
	}
	if len(named) == 0 {
		return host, nil
	}
	abis := []libseccomp.ScmpArch{host[0]}
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
