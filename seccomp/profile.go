package seccomp

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Profile is a seccomp policy in the Docker/OCI JSON model. ParseJSON reads
// Docker's and OCI's profile files into it, and Default builds rbox's own.
type Profile struct {
	DefaultAction Action `json:"defaultAction"`
	// DefaultErrnoRet is the errno of an SCMP_ACT_ERRNO default action;
	// nil means EPERM, as in runc.
	DefaultErrnoRet *uint `json:"defaultErrnoRet,omitempty"`
	// Architectures are the ABIs the filter covers (OCI form). Empty means
	// the entry of ArchMap for the native architecture, or without one the
	// native ABI plus the compat ABIs its kernel runs (see HostABIs).
	Architectures []Arch `json:"architectures,omitempty"`
	// ArchMap is Docker's form: only the entry for the native architecture
	// counts, with its sub-architectures.
	ArchMap []ArchMapEntry `json:"archMap,omitempty"`
	// Flags are SECCOMP_FILTER_FLAG_* names; LOG and SPEC_ALLOW are honoured
	// (see LoadFlags).
	Flags    []string  `json:"flags,omitempty"`
	Syscalls []Syscall `json:"syscalls"`
}

// ArchMapEntry is one element of Docker's archMap.
type ArchMapEntry struct {
	Arch      Arch   `json:"architecture"`
	SubArches []Arch `json:"subArchitectures"`
}

// Syscall is one rule: every named system call whose arguments match all of
// Args gets Action.
type Syscall struct {
	Names []string `json:"names,omitempty"`
	// Name is the single-name form of old Docker profiles.
	Name   string `json:"name,omitempty"`
	Action Action `json:"action"`
	// ErrnoRet is the errno for SCMP_ACT_ERRNO (nil means EPERM) or the
	// message for SCMP_ACT_TRACE.
	ErrnoRet *uint  `json:"errnoRet,omitempty"`
	Args     []Arg  `json:"args,omitempty"`
	Comment  string `json:"comment,omitempty"`
	// Includes and Excludes are Docker's conditions on the host: the rule
	// applies only if everything in Includes holds and nothing in Excludes.
	Includes *Condition `json:"includes,omitempty"`
	Excludes *Condition `json:"excludes,omitempty"`
	// ExcludeArchitectures is an rbox extension: ABIs the rule is not added
	// for. Docker and runc ignore the field.
	ExcludeArchitectures []Arch `json:"excludeArchitectures,omitempty"`
}

// Arg compares one system call argument. For SCMP_CMP_MASKED_EQ, Value is
// the mask and ValueTwo the value the masked argument must equal.
type Arg struct {
	Index    uint     `json:"index"`
	Value    uint64   `json:"value"`
	ValueTwo uint64   `json:"valueTwo,omitempty"`
	Op       Operator `json:"op"`
}

// Condition is Docker's includes/excludes filter. Caps are capability names
// ("CAP_SYS_ADMIN"), Arches are Go architecture names ("amd64") compared
// with the architecture rbox was built for, MinKernel is "major.minor".
type Condition struct {
	Caps      []string `json:"caps,omitempty"`
	Arches    []string `json:"arches,omitempty"`
	MinKernel string   `json:"minKernel,omitempty"`
}

// Action is an SCMP_ACT_* name.
type Action string

// The actions a profile may use. SCMP_ACT_NOTIFY is refused: rbox runs no
// agent to answer notifications.
const (
	ActAllow       Action = "SCMP_ACT_ALLOW"
	ActErrno       Action = "SCMP_ACT_ERRNO"
	ActKill        Action = "SCMP_ACT_KILL" // kills the thread, as in libseccomp
	ActKillThread  Action = "SCMP_ACT_KILL_THREAD"
	ActKillProcess Action = "SCMP_ACT_KILL_PROCESS"
	ActTrap        Action = "SCMP_ACT_TRAP"
	ActTrace       Action = "SCMP_ACT_TRACE"
	ActLog         Action = "SCMP_ACT_LOG"
)

var knownActions = []Action{ActAllow, ActErrno, ActKill, ActKillThread, ActKillProcess, ActTrap, ActTrace, ActLog}

// Operator is an SCMP_CMP_* name.
type Operator string

// The argument comparisons.
const (
	OpNotEqual     Operator = "SCMP_CMP_NE"
	OpLessThan     Operator = "SCMP_CMP_LT"
	OpLessEqual    Operator = "SCMP_CMP_LE"
	OpEqualTo      Operator = "SCMP_CMP_EQ"
	OpGreaterEqual Operator = "SCMP_CMP_GE"
	OpGreaterThan  Operator = "SCMP_CMP_GT"
	OpMaskedEqual  Operator = "SCMP_CMP_MASKED_EQ"
)

var knownOperators = []Operator{OpNotEqual, OpLessThan, OpLessEqual, OpEqualTo, OpGreaterEqual, OpGreaterThan, OpMaskedEqual}

// Arch is an SCMP_ARCH_* name.
type Arch string

// The architectures rbox names itself; ParseJSON accepts every SCMP_ARCH_*
// name libseccomp knows.
const (
	ArchX86     Arch = "SCMP_ARCH_X86"
	ArchX86_64  Arch = "SCMP_ARCH_X86_64"
	ArchX32     Arch = "SCMP_ARCH_X32"
	ArchARM     Arch = "SCMP_ARCH_ARM"
	ArchAARCH64 Arch = "SCMP_ARCH_AARCH64"
	ArchS390    Arch = "SCMP_ARCH_S390"
	ArchS390X   Arch = "SCMP_ARCH_S390X"
)

// Filter flags a profile may name.
const (
	flagLog       = "SECCOMP_FILTER_FLAG_LOG"
	flagSpecAllow = "SECCOMP_FILTER_FLAG_SPEC_ALLOW"
)

// LoadFlags are the seccomp(2) flags p's Flags ask for.
func (p *Profile) LoadFlags() uint {
	var flags uint
	if slices.Contains(p.Flags, flagLog) {
		flags |= unix.SECCOMP_FILTER_FLAG_LOG
	}
	if slices.Contains(p.Flags, flagSpecAllow) {
		flags |= unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW
	}
	return flags
}

// maxErrno is the largest value the kernel reports as an errno; a larger
// SECCOMP_RET_ERRNO datum would look like a successful return.
const maxErrno = 4095

// ParseJSON reads a Docker or OCI seccomp profile. Unknown actions,
// operators, architectures and flags are errors naming the field; unknown
// system call names are accepted and skipped when the filter is built, since
// profiles list calls of kernels newer than the one at hand.
func ParseJSON(data []byte) (*Profile, error) {
	var p Profile
	if err := json.Unmarshal(data, &p); err != nil {
		var syntax *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syntax):
			return nil, fmt.Errorf("seccomp profile: invalid JSON at byte %d: %v", syntax.Offset, err)
		case errors.As(err, &typ):
			return nil, fmt.Errorf("seccomp profile: %s: cannot hold JSON %s", typ.Field, typ.Value)
		}
		return nil, fmt.Errorf("seccomp profile: %v", err)
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("seccomp profile: %w", err)
	}
	return &p, nil
}

// Validate checks every name in p against what can be compiled, so a bad
// profile fails when it is read rather than inside the sandbox.
func (p *Profile) Validate() error {
	if err := checkAction("defaultAction", p.DefaultAction, p.DefaultErrnoRet); err != nil {
		return err
	}
	for i, a := range p.Architectures {
		if err := checkArch(a); err != nil {
			return fmt.Errorf("architectures[%d]: %w", i, err)
		}
	}
	for i, m := range p.ArchMap {
		if err := checkArch(m.Arch); err != nil {
			return fmt.Errorf("archMap[%d].architecture: %w", i, err)
		}
		for j, a := range m.SubArches {
			if err := checkArch(a); err != nil {
				return fmt.Errorf("archMap[%d].subArchitectures[%d]: %w", i, j, err)
			}
		}
	}
	for i, f := range p.Flags {
		switch f {
		case flagLog, flagSpecAllow:
		case "SECCOMP_FILTER_FLAG_TSYNC":
			return fmt.Errorf("flags[%d]: %s is not supported: rbox filters the payload's thread only, not its own", i, f)
		default:
			return fmt.Errorf("flags[%d]: unsupported filter flag %q", i, f)
		}
	}
	for i, s := range p.Syscalls {
		field := fmt.Sprintf("syscalls[%d]", i)
		if s.Name != "" && len(s.Names) > 0 {
			return fmt.Errorf("%s: has both name and names", field)
		}
		if s.Name == "" && len(s.Names) == 0 {
			return fmt.Errorf("%s: names is empty", field)
		}
		if err := checkAction(field+".action", s.Action, s.ErrnoRet); err != nil {
			return err
		}
		for j, a := range s.Args {
			if a.Index > 5 {
				return fmt.Errorf("%s.args[%d].index: %d is not an argument index (0-5)", field, j, a.Index)
			}
			if !slices.Contains(knownOperators, a.Op) {
				return fmt.Errorf("%s.args[%d].op: unknown operator %q", field, j, a.Op)
			}
		}
		for j, a := range s.ExcludeArchitectures {
			if err := checkArch(a); err != nil {
				return fmt.Errorf("%s.excludeArchitectures[%d]: %w", field, j, err)
			}
		}
		for _, c := range []struct {
			name string
			cond *Condition
		}{{"includes", s.Includes}, {"excludes", s.Excludes}} {
			if c.cond == nil || c.cond.MinKernel == "" {
				continue
			}
			if _, err := ParseKernelVersion(c.cond.MinKernel); err != nil {
				return fmt.Errorf("%s.%s.minKernel: %w", field, c.name, err)
			}
		}
	}
	return nil
}

func checkArch(a Arch) error {
	if !knownArch(a) {
		return fmt.Errorf("unknown architecture %q", a)
	}
	return nil
}

func checkAction(field string, a Action, errnoRet *uint) error {
	switch {
	case a == "SCMP_ACT_NOTIFY":
		return fmt.Errorf("%s: %s is not supported: rbox runs no seccomp agent", field, a)
	case !slices.Contains(knownActions, a):
		return fmt.Errorf("%s: unknown action %q", field, a)
	case errnoRet == nil:
		return nil
	case a == ActErrno && *errnoRet > maxErrno:
		return fmt.Errorf("%s: errnoRet %d is above the largest errno (%d)", field, *errnoRet, maxErrno)
	case a == ActTrace && *errnoRet > math.MaxInt16:
		return fmt.Errorf("%s: errnoRet %d does not fit libseccomp's trace message (at most %d)", field, *errnoRet, math.MaxInt16)
	}
	return nil
}

// CallNames returns the system calls s applies to, in either of its forms.
func (s *Syscall) CallNames() []string {
	if s.Name != "" {
		return append([]string{s.Name}, s.Names...)
	}
	return s.Names
}

// ParseKernelVersion reads Docker's "major.minor" minKernel form.
func ParseKernelVersion(v string) ([2]int, error) {
	major, minor, ok := strings.Cut(v, ".")
	if !ok {
		return [2]int{}, fmt.Errorf("%q is not major.minor", v)
	}
	maj, err1 := strconv.Atoi(major)
	mnr, err2 := strconv.Atoi(minor)
	if err1 != nil || err2 != nil || maj < 0 || mnr < 0 {
		return [2]int{}, fmt.Errorf("%q is not major.minor", v)
	}
	return [2]int{maj, mnr}, nil
}
