package seccomp

import (
	"runtime"
	"slices"
)

// KnownArches are the SCMP_ARCH_* names a profile may use: every
// architecture libseccomp knows (seccomp/libseccomp maps each of them, and
// its tests check the two lists agree).
var KnownArches = []Arch{
	ArchX86, ArchX86_64, ArchX32, ArchARM, ArchAARCH64,
	"SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32",
	"SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32",
	"SCMP_ARCH_PPC", "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE",
	ArchS390, ArchS390X,
	"SCMP_ARCH_PARISC", "SCMP_ARCH_PARISC64",
	"SCMP_ARCH_RISCV64", "SCMP_ARCH_LOONGARCH64", "SCMP_ARCH_M68K",
	"SCMP_ARCH_SH", "SCMP_ARCH_SHEB",
}

func knownArch(a Arch) bool { return slices.Contains(KnownArches, a) }

// nativeArch is the ABI of rbox's own build, by GOARCH: the one libseccomp
// calls native when linked into a build for the same GOARCH.
var nativeArch = map[string]Arch{
	"386":      ArchX86,
	"amd64":    ArchX86_64,
	"arm":      ArchARM,
	"arm64":    ArchAARCH64,
	"loong64":  "SCMP_ARCH_LOONGARCH64",
	"mips":     "SCMP_ARCH_MIPS",
	"mipsle":   "SCMP_ARCH_MIPSEL",
	"mips64":   "SCMP_ARCH_MIPS64",
	"mips64le": "SCMP_ARCH_MIPSEL64",
	"ppc64":    "SCMP_ARCH_PPC64",
	"ppc64le":  "SCMP_ARCH_PPC64LE",
	"riscv64":  "SCMP_ARCH_RISCV64",
	"s390x":    ArchS390X,
}

// compatABIs are the other ABIs a kernel of the native architecture runs
// programs in. A filter must cover them too: a call through an ABI the
// filter does not name bypasses its rules (it gets the bad-arch action).
// On amd64, x32 calls arrive with the x86_64 audit arch and bit 0x40000000
// set in the number; libseccomp tells them apart once x32 is in the filter.
var compatABIs = map[Arch][]Arch{
	ArchX86_64:  {ArchX86, ArchX32},
	ArchAARCH64: {ArchARM},
	ArchS390X:   {ArchS390},
}

// HostABIs are the ABIs a kernel of rbox's build architecture runs programs
// in, native first; none for a GOARCH this list does not know. They depend
// on GOARCH alone, so a filter covering them can be compiled at build time.
func HostABIs() []Arch {
	return ABIsOf(runtime.GOARCH)
}

// ABIsOf are HostABIs for a build for goarch.
func ABIsOf(goarch string) []Arch {
	native, ok := nativeArch[goarch]
	if !ok {
		return nil
	}
	return append([]Arch{native}, compatABIs[native]...)
}
