package seccomp

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"unsafe"

	"github.com/moby/sys/capability"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

// Compiled is a filter ready to load: its BPF program and seccomp(2) flags.
type Compiled struct {
	Program []unix.SockFilter
	Flags   uintptr
}

// Compile builds the filter with libseccomp for a payload that holds the
// capabilities caps ("CAP_..." names), which Docker profiles may test.
func (p *Profile) Compile(caps []string) (*Compiled, error) {
	h, err := currentHost()
	if err != nil {
		return nil, err
	}
	for _, c := range caps {
		h.caps[c] = true
	}
	filter, err := p.build(h)
	if err != nil {
		return nil, err
	}
	prog, err := bpfProgram(filter)
	filter.Release()
	if err != nil {
		return nil, err
	}
	c := &Compiled{Program: prog}
	// libseccomp-golang turns TSYNC on in every filter it makes and offers
	// no way back, so the program is loaded by rbox rather than by its Load.
	if slices.Contains(p.Flags, flagLog) {
		c.Flags |= unix.SECCOMP_FILTER_FLAG_LOG
	}
	if slices.Contains(p.Flags, flagSpecAllow) {
		c.Flags |= unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW
	}
	return c, nil
}

// Install builds the filter for the calling thread's effective capabilities
// and loads it on that thread only (no TSYNC), after setting no_new_privs
// on it.
//
// It locks the calling goroutine to its thread for good: the filter belongs
// to the thread, so the goroutine must not move off it and no other
// goroutine may be scheduled onto it. Children forked from this thread
// inherit the filter; other threads of the process stay unfiltered, and Go
// starts new threads from a clean template thread while a goroutine holds
// LockOSThread, so they stay unfiltered too. After Install under the
// default profile, fork with clone, not clone3: os/exec does unless
// SysProcAttr asks for UseCgroupFD or CLONE_NEWTIME.
func (p *Profile) Install() error {
	runtime.LockOSThread()
	c, err := p.Compile(nil)
	if err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("seccomp: set no_new_privs: %w", err)
	}
	fprog := unix.SockFprog{Len: uint16(len(c.Program)), Filter: &c.Program[0]}
	_, _, errno := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, c.Flags, uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(c)
	if errno != 0 {
		return fmt.Errorf("seccomp: load filter: %w", errno)
	}
	return nil
}

// maxProgram is the kernel's limit on a filter's instructions (BPF_MAXINSNS).
const maxProgram = 4096

// bpfProgram exports the BPF program of f.
func bpfProgram(f *libseccomp.ScmpFilter) ([]unix.SockFilter, error) {
	fd, err := unix.MemfdCreate("rbox-seccomp", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("seccomp: memfd for the filter: %w", err)
	}
	file := os.NewFile(uintptr(fd), "rbox-seccomp")
	defer file.Close()
	if err := f.ExportBPF(file); err != nil {
		return nil, fmt.Errorf("seccomp: export filter: %w", err)
	}
	data, err := io.ReadAll(io.NewSectionReader(file, 0, math.MaxInt64))
	if err != nil {
		return nil, fmt.Errorf("seccomp: read exported filter: %w", err)
	}
	prog := make([]unix.SockFilter, len(data)/8)
	if err := binary.Read(bytes.NewReader(data), binary.NativeEndian, prog); err != nil {
		return nil, fmt.Errorf("seccomp: read exported filter: %w", err)
	}
	if len(prog) == 0 || len(prog) > maxProgram {
		return nil, fmt.Errorf("seccomp: filter has %d instructions; the kernel takes 1 to %d", len(prog), maxProgram)
	}
	return prog, nil
}

// host holds what Docker's includes/excludes conditions are judged on.
type host struct {
	goarch string
	kernel [2]int          // major, minor
	caps   map[string]bool // effective capabilities, by "CAP_..." name
}

// currentHost reads the facts for the calling thread. rbox installs the
// filter after limiting capabilities, so the effective set read here is the
// payload's.
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
		if v, err := parseKernelVersion(fields[0] + "." + minor); err == nil {
			h.kernel = v
		}
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return h, fmt.Errorf("seccomp: capget: %w", err)
	}
	for _, c := range capability.ListKnown() {
		if n := int(c); n < 64 && data[n/32].Effective&(1<<(n%32)) != 0 {
			h.caps["CAP_"+strings.ToUpper(c.String())] = true
		}
	}
	return h, nil
}

// appliesOn reports whether rule s is in force on h, by Docker's rules:
// every Includes condition holds and no Excludes condition does.
func (s *Syscall) appliesOn(h host) bool {
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
	v, err := parseKernelVersion(want)
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
func (p *Profile) build(h host) (*libseccomp.ScmpFilter, error) {
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("seccomp profile: %w", err)
	}
	defaultAction := scmpAction(p.DefaultAction, p.DefaultErrnoRet)
	abis, err := p.abis()
	if err != nil {
		return nil, fmt.Errorf("seccomp profile: %w", err)
	}
	var merged *libseccomp.ScmpFilter
	for _, abi := range abis {
		f, err := p.buildABI(h, abi, abis[0], defaultAction)
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
func (p *Profile) buildABI(h host, abi, native libseccomp.ScmpArch, defaultAction libseccomp.ScmpAction) (*libseccomp.ScmpFilter, error) {
	f, err := libseccomp.NewFilter(defaultAction)
	if err != nil {
		return nil, fmt.Errorf("seccomp: new filter: %w", err)
	}
	fail := func(format string, args ...any) (*libseccomp.ScmpFilter, error) {
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
	if err := f.SetBadArchAction(libseccomp.ActErrno.SetReturnCode(int16(syscall.ENOSYS))); err != nil {
		return fail("seccomp: set bad-arch action: %w", err)
	}
	// A binary tree of syscall numbers keeps the cost per call logarithmic.
	if err := f.SetOptimize(2); err != nil {
		return fail("seccomp: set optimize level: %w", err)
	}

	for i, s := range p.Syscalls {
		if !s.appliesOn(h) || slices.ContainsFunc(s.ExcludeArchitectures, func(a Arch) bool { return archByName[a] == abi }) {
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
		for _, name := range s.names() {
			nr, err := libseccomp.GetSyscallFromName(name)
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
func conditions(args []Arg) ([][]libseccomp.ScmpCondition, error) {
	var all []libseccomp.ScmpCondition
	seen := map[uint]bool{}
	repeated := false
	for _, a := range args {
		var c libseccomp.ScmpCondition
		var err error
		if a.Op == OpMaskedEqual {
			c, err = libseccomp.MakeCondition(a.Index, scmpOperator[a.Op], a.Value, a.ValueTwo)
		} else {
			c, err = libseccomp.MakeCondition(a.Index, scmpOperator[a.Op], a.Value)
		}
		if err != nil {
			return nil, err
		}
		all = append(all, c)
		repeated = repeated || seen[a.Index]
		seen[a.Index] = true
	}
	if !repeated {
		return [][]libseccomp.ScmpCondition{all}, nil
	}
	split := make([][]libseccomp.ScmpCondition, len(all))
	for i, c := range all {
		split[i] = []libseccomp.ScmpCondition{c}
	}
	return split, nil
}

var scmpOperator = map[Operator]libseccomp.ScmpCompareOp{
	OpNotEqual:     libseccomp.CompareNotEqual,
	OpLessThan:     libseccomp.CompareLess,
	OpLessEqual:    libseccomp.CompareLessOrEqual,
	OpEqualTo:      libseccomp.CompareEqual,
	OpGreaterEqual: libseccomp.CompareGreaterEqual,
	OpGreaterThan:  libseccomp.CompareGreater,
	OpMaskedEqual:  libseccomp.CompareMaskedEqual,
}

// scmpAction maps a validated action; errnoRet nil means EPERM, as in runc.
func scmpAction(a Action, errnoRet *uint) libseccomp.ScmpAction {
	ret := int16(syscall.EPERM)
	if errnoRet != nil {
		ret = int16(*errnoRet)
	}
	switch a {
	case ActErrno:
		return libseccomp.ActErrno.SetReturnCode(ret)
	case ActTrace:
		return libseccomp.ActTrace.SetReturnCode(ret)
	case ActKill, ActKillThread:
		return libseccomp.ActKillThread
	case ActKillProcess:
		return libseccomp.ActKillProcess
	case ActTrap:
		return libseccomp.ActTrap
	case ActLog:
		return libseccomp.ActLog
	}
	return libseccomp.ActAllow
}
