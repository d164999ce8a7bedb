// Package libseccomp compiles seccomp profiles into BPF with libseccomp
// (through cgo). rbox itself is pure Go and never links it: the default
// profile's filters are compiled at build time and embedded in package
// seccomp (see TestEmbedded), and the rbox-seccomp helper compiles the
// profiles given with --seccomp FILE.
package libseccomp

import (
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"syscall"

	scmp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/seccomp"
	"github.com/rbox-dev/rbox/spec"
)

// Compile builds p's filter for a payload given the capabilities caps
// ("CAP_..." names), on which Docker's includes/excludes conditions are
// judged, with the running kernel's version.
func Compile(p *seccomp.Profile, caps []string) (*spec.SeccompFilter, error) {
	h, err := currentHost()
	if err != nil {
		return nil, err
	}
	for _, c := range caps {
		h.caps[c] = true
	}
	return compileFor(p, h)
}

// compileFor builds p's filter for the rules in force on h.
func compileFor(p *seccomp.Profile, h host) (*spec.SeccompFilter, error) {
	filter, err := build(p, h)
	if err != nil {
		return nil, err
	}
	bpf, err := bpfProgram(filter)
	filter.Release()
	if err != nil {
		return nil, err
	}
	// libseccomp-golang turns TSYNC on in every filter it makes and offers
	// no way back, so the program is loaded by rbox rather than by its Load.
	return &spec.SeccompFilter{BPF: bpf, Flags: p.LoadFlags()}, nil
}

// bpfProgram exports the BPF program of f.
func bpfProgram(f *scmp.ScmpFilter) ([]byte, error) {
	fd, err := unix.MemfdCreate("rbox-seccomp", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("seccomp: memfd for the filter: %w", err)
	}
	file := os.NewFile(uintptr(fd), "rbox-seccomp")
	defer file.Close()
	if err := f.ExportBPF(file); err != nil {
		return nil, fmt.Errorf("seccomp: export filter: %w", err)
	}
	bpf, err := io.ReadAll(io.NewSectionReader(file, 0, math.MaxInt64))
	if err != nil {
		return nil, fmt.Errorf("seccomp: read exported filter: %w", err)
	}
	if _, err := seccomp.Program(bpf); err != nil {
		return nil, err
	}
	return bpf, nil
}

// host holds what Docker's includes/excludes conditions are judged on.
type host struct {
	goarch string
	kernel [2]int          // major, minor
	caps   map[string]bool // the payload's capabilities, by "CAP_..." name
}

// currentHost reads the kernel's version; it holds no capabilities.
func currentHost() (host, error) {
	h := host{goarch: runtime.GOARCH, caps: map[string]bool{}}
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return h, fmt.Errorf("seccomp: uname: %w", err)
	}
	release := unix.ByteSliceToString(uts.Release[:])
	// "6.18.0-rc1" and "6.18-foo" both start with major.minor.
	fields := strings.SplitN(release, ".", 3)
	if len(fields) >= 2 {
		minor, _, _ := strings.Cut(fields[1], "-")
		if v, err := seccomp.ParseKernelVersion(fields[0] + "." + minor); err == nil {
			h.kernel = v
		}
	}
	return h, nil
}

// appliesOn reports whether rule s is in force on h, by Docker's rules:
// every Includes condition holds and no Excludes condition does.
func appliesOn(s *seccomp.Syscall, h host) bool {
	if x := s.Excludes; x != nil {
		if slices.Contains(x.Arches, h.goarch) {
			return false
		}
		for _, c := range x.Caps {
			if h.caps[c] {
				return false
			}
		}
		if x.MinKernel != "" && kernelAtLeast(h.kernel, x.MinKernel) {
			return false
		}
	}
	if in := s.Includes; in != nil {
		if len(in.Arches) > 0 && !slices.Contains(in.Arches, h.goarch) {
			return false
		}
		for _, c := range in.Caps {
			if !h.caps[c] {
				return false
			}
		}
		if in.MinKernel != "" && !kernelAtLeast(h.kernel, in.MinKernel) {
			return false
		}
	}
	return true
}

func kernelAtLeast(have [2]int, want string) bool {
	v, err := seccomp.ParseKernelVersion(want)
	if err != nil {
		return false
	}
	return have[0] > v[0] || have[0] == v[0] && have[1] >= v[1]
}

// build turns p into a libseccomp filter for the rules in force on h.
//
// Each ABI gets a filter of its own, merged into one at the end, so that a
// rule can leave out ABIs (ExcludeArchitectures); libseccomp adds a rule to
// every ABI of a filter.
func build(p *seccomp.Profile, h host) (*scmp.ScmpFilter, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("seccomp profile: %w", err)
	}
	defaultAction := scmpAction(p.DefaultAction, p.DefaultErrnoRet)
	abis, err := profileABIs(p, h.goarch)
	if err != nil {
		return nil, fmt.Errorf("seccomp profile: %w", err)
	}
	// libseccomp's native ABI (the machine's, which need not be h's):
	// a new filter has it, to be swapped for the ABI wanted.
	native, err := scmp.GetNativeArch()
	if err != nil {
		return nil, fmt.Errorf("seccomp: native architecture: %w", err)
	}
	var merged *scmp.ScmpFilter
	for _, abi := range abis {
		f, err := buildABI(p, h, abi, native, defaultAction)
		if err != nil {
			if merged != nil {
				merged.Release()
			}
			return nil, err
		}
		if merged == nil {
			merged = f
			continue
		}
		if err := merged.Merge(f); err != nil {
			merged.Release()
			f.Release()
			return nil, fmt.Errorf("seccomp: merge %s filter: %w", abi, err)
		}
	}
	return merged, nil
}

// buildABI makes the filter for one ABI.
func buildABI(p *seccomp.Profile, h host, abi, native scmp.ScmpArch, defaultAction scmp.ScmpAction) (*scmp.ScmpFilter, error) {
	f, err := scmp.NewFilter(defaultAction)
	if err != nil {
		return nil, fmt.Errorf("seccomp: new filter: %w", err)
	}
	fail := func(format string, args ...any) (*scmp.ScmpFilter, error) {
		f.Release()
		return nil, fmt.Errorf(format, args...)
	}
	if abi != native {
		if err := f.AddArch(abi); err != nil {
			return fail("seccomp: add architecture %s: %w", abi, err)
		}
		if err := f.RemoveArch(native); err != nil {
			return fail("seccomp: remove architecture %s: %w", native, err)
		}
	}
	// Merging needs equal attributes on every part.
	// A call through an ABI the filter leaves out looks like a kernel
	// without that ABI, never a killed build.
	if err := f.SetBadArchAction(scmp.ActErrno.SetReturnCode(int16(syscall.ENOSYS))); err != nil {
		return fail("seccomp: set bad-arch action: %w", err)
	}
	// A binary tree of syscall numbers keeps the cost per call logarithmic.
	if err := f.SetOptimize(2); err != nil {
		return fail("seccomp: set optimize level: %w", err)
	}

	for i, s := range p.Syscalls {
		if !appliesOn(&s, h) || slices.ContainsFunc(s.ExcludeArchitectures, func(a seccomp.Arch) bool { return archByName[a] == abi }) {
			continue
		}
		action := scmpAction(s.Action, s.ErrnoRet)
		if action == defaultAction {
			// libseccomp refuses such rules, and they would change nothing.
			continue
		}
		conds, err := conditions(s.Args)
		if err != nil {
			return fail("seccomp profile: syscalls[%d]: %w", i, err)
		}
		for _, name := range s.CallNames() {
			nr, err := scmp.GetSyscallFromName(name)
			if err != nil {
				continue // unknown to libseccomp: a call of a newer kernel
			}
			// A name missing from this ABI (newfstatat on i386) adds nothing.
			for _, c := range conds {
				if err := f.AddRuleConditional(nr, action, c); err != nil {
					return fail("seccomp profile: syscalls[%d]: %s on %s: %w", i, name, abi, err)
				}
			}
		}
	}
	return f, nil
}

// conditions turns a rule's arguments into the condition sets to add, one
// rule each. libseccomp allows one comparison per argument in a rule; like
// runc, a rule comparing one argument twice becomes one rule per comparison.
func conditions(args []seccomp.Arg) ([][]scmp.ScmpCondition, error) {
	var all []scmp.ScmpCondition
	seen := map[uint]bool{}
	repeated := false
	for _, a := range args {
		var c scmp.ScmpCondition
		var err error
		if a.Op == seccomp.OpMaskedEqual {
			c, err = scmp.MakeCondition(a.Index, scmpOperator[a.Op], a.Value, a.ValueTwo)
		} else {
			c, err = scmp.MakeCondition(a.Index, scmpOperator[a.Op], a.Value)
		}
		if err != nil {
			return nil, err
		}
		all = append(all, c)
		repeated = repeated || seen[a.Index]
		seen[a.Index] = true
	}
	if !repeated {
		return [][]scmp.ScmpCondition{all}, nil
	}
	split := make([][]scmp.ScmpCondition, len(all))
	for i, c := range all {
		split[i] = []scmp.ScmpCondition{c}
	}
	return split, nil
}

var scmpOperator = map[seccomp.Operator]scmp.ScmpCompareOp{
	seccomp.OpNotEqual:     scmp.CompareNotEqual,
	seccomp.OpLessThan:     scmp.CompareLess,
	seccomp.OpLessEqual:    scmp.CompareLessOrEqual,
	seccomp.OpEqualTo:      scmp.CompareEqual,
	seccomp.OpGreaterEqual: scmp.CompareGreaterEqual,
	seccomp.OpGreaterThan:  scmp.CompareGreater,
	seccomp.OpMaskedEqual:  scmp.CompareMaskedEqual,
}

// scmpAction maps a validated action; errnoRet nil means EPERM, as in runc.
func scmpAction(a seccomp.Action, errnoRet *uint) scmp.ScmpAction {
	ret := int16(syscall.EPERM)
	if errnoRet != nil {
		ret = int16(*errnoRet)
	}
	switch a {
	case seccomp.ActErrno:
		return scmp.ActErrno.SetReturnCode(ret)
	case seccomp.ActTrace:
		return scmp.ActTrace.SetReturnCode(ret)
	case seccomp.ActKill, seccomp.ActKillThread:
		return scmp.ActKillThread
	case seccomp.ActKillProcess:
		return scmp.ActKillProcess
	case seccomp.ActTrap:
		return scmp.ActTrap
	case seccomp.ActLog:
		return scmp.ActLog
	}
	return scmp.ActAllow
}
