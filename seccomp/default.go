package seccomp

import (
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// DefaultOptions adjusts the default profile.
type DefaultOptions struct {
	// AllowNested lets the payload create user namespaces and join
	// namespaces, so that rbox or bwrap can run inside rbox.
	AllowNested bool
}

// Denial is one system call the default profile refuses.
type Denial struct {
	Syscall string
	Errno   syscall.Errno
	// Note says when the call is refused, if not always, and why.
	Note string
	// Nested says AllowNested lifts the entry.
	Nested bool
	// NotOn are ABIs the entry is not enforced on.
	NotOn []Arch
}

// Personality values (from <linux/personality.h>) the default profile lets
// through: 32-bit uname, the 2.6-style version string, and ASLR off, which
// TSan, gdb and `setarch -R` ask for. ASLR off only weakens the caller's own
// programs, and the kernel clears it on a setuid exec.
const (
	perLinux32         = 0x0008
	uname26            = 0x0020000
	addrNoRandomize    = 0x0040000
	allowedPersonality = perLinux32 | uname26 | addrNoRandomize
	personalityQuery   = 0xffffffff // reads the persona, sets nothing
)

// denial is one entry of the default policy, the single source of both
// Default and DeniedByDefault.
type denial struct {
	names []string
	errno syscall.Errno
	note  string
	// args are alternatives: the call is refused when any one of them
	// matches (each an AND of comparisons); none means always refused.
	args [][]Arg
	// nested entries are lifted by AllowNested.
	nested bool
	// notOn are ABIs the entry is not enforced on.
	notOn []Arch
}

// socketcallABIs multiplex socket calls through socketcall(2), whose
// arguments sit in memory where seccomp cannot read them; libseccomp would
// turn an argument check on socket into a refusal of every socket.
var socketcallABIs = []Arch{ArchX86, ArchS390, ArchS390X}

func defaultDenials(goarch string) []denial {
	eperm, enosys := syscall.EPERM, syscall.ENOSYS
	newUser := []Arg{{Index: cloneFlagsArg(goarch), Op: OpMaskedEqual, Value: unix.CLONE_NEWUSER, ValueTwo: unix.CLONE_NEWUSER}}
	return []denial{
		{names: []string{"add_key", "request_key", "keyctl"}, errno: enosys,
			note: "kernel keyrings are not namespaced; ENOSYS reads as a kernel without keyrings, which runc and others accept"},
		{names: []string{"bpf"}, errno: eperm, note: "eBPF is a large kernel attack surface"},
		{names: []string{"perf_event_open"}, errno: eperm, note: "performance events see host-wide activity"},
		{names: []string{"userfaultfd"}, errno: eperm, note: "lets exploits stall the kernel mid-copy; no unprivileged use"},
		{names: []string{"io_uring_setup", "io_uring_enter", "io_uring_register"}, errno: enosys,
			note: "io_uring runs operations seccomp never sees; ENOSYS makes libraries fall back to plain calls"},
		{names: []string{"kexec_load", "kexec_file_load"}, errno: eperm, note: "loads a new kernel"},
		{names: []string{"init_module", "finit_module", "delete_module"}, errno: eperm, note: "loads or unloads kernel modules"},
		{names: []string{"open_by_handle_at", "name_to_handle_at"}, errno: eperm,
			note: "file handles open files by inode, past the sandbox's mounts"},
		{names: []string{"lookup_dcookie"}, errno: eperm, note: "kernel profiling interface"},
		{names: []string{"acct"}, errno: eperm, note: "process accounting is host-wide"},
		{names: []string{"quotactl", "quotactl_fd"}, errno: eperm, note: "disk quotas are host-wide"},
		{names: []string{"swapon", "swapoff"}, errno: eperm, note: "swap is host-wide"},
		{names: []string{"reboot"}, errno: eperm, note: "reboots the host, or ends the sandbox's pid namespace"},
		{names: []string{"settimeofday", "clock_settime", "clock_settime64", "stime"}, errno: eperm,
			note: "clocks are host-wide; the payload must not set them"},
		{names: []string{"iopl", "ioperm"}, errno: eperm, note: "raw I/O port access"},
		{names: []string{"vm86", "vm86old"}, errno: eperm, note: "virtual 8086 mode (i386)"},
		{names: []string{"syslog"}, errno: eperm, note: "the kernel log is host-wide and shows kernel addresses"},
		{names: []string{"nfsservctl", "uselib"}, errno: eperm, note: "obsolete interfaces no current program uses"},
		{names: []string{"personality"}, errno: eperm, args: personalityArgs(),
			note: "except 0, PER_LINUX32, UNAME26, ADDR_NO_RANDOMIZE and their combinations, and the query 0xffffffff: other personas switch on little-tested kernel paths"},
		{names: []string{"ioctl"}, errno: eperm, args: [][]Arg{
			{{Index: 1, Op: OpMaskedEqual, Value: 0xffffffff, ValueTwo: unix.TIOCSTI}},
			{{Index: 1, Op: OpMaskedEqual, Value: 0xffffffff, ValueTwo: unix.TIOCLINUX}},
		}, note: "requests TIOCSTI and TIOCLINUX (low 32 bits, as the kernel reads them): they type into a terminal the payload may share with the user"},
		{names: []string{"socket"}, errno: eperm, notOn: socketcallABIs, args: [][]Arg{
			{{Index: 0, Op: OpMaskedEqual, Value: 0xffffffff, ValueTwo: unix.AF_VSOCK}},
		}, note: "family AF_VSOCK: vsock reaches the hypervisor past the network namespace; not on ABIs that go through socketcall (i386), whose arguments seccomp cannot read"},
		{names: []string{"clone", "unshare"}, errno: eperm, nested: true, args: [][]Arg{newUser},
			note: "flags with CLONE_NEWUSER (AllowNested lifts this): a user namespace hands the payload capabilities over kernel code meant for root"},
		{names: []string{"clone3"}, errno: enosys, nested: true,
			note: "its flags are in memory seccomp cannot read; ENOSYS makes glibc and Go fall back to clone, whose flags are checked (AllowNested lifts this)"},
		{names: []string{"setns"}, errno: eperm, nested: true, note: "only nested sandboxes join namespaces (AllowNested lifts this)"},
	}
}

// cloneFlagsArg is the index of clone's flags: s390 swaps the first two.
func cloneFlagsArg(goarch string) uint {
	if goarch == "s390x" {
		return 1
	}
	return 0
}

// personalityArgs returns the alternatives that refuse every persona except
// the query and combinations of allowedPersonality. The filter's default is
// allow and libseccomp takes one comparison per argument in a rule, so the
// complement is spelled out as single masked comparisons on the low 32 bits
// (all the kernel reads). No allowed persona has bit 31 set, and the query
// has every bit set, so a persona is refused when
//   - bit 31 is clear and some bit outside the allowed set is set, or
//   - bit 31 is set and some other bit is clear.
func personalityArgs() [][]Arg {
	const bit31 = 1 << 31
	var alts [][]Arg
	for b := range 31 {
		if allowedPersonality&(1<<b) == 0 {
			alts = append(alts, []Arg{{Index: 0, Op: OpMaskedEqual, Value: bit31 | 1<<b, ValueTwo: 1 << b}})
		}
	}
	for b := range 31 {
		alts = append(alts, []Arg{{Index: 0, Op: OpMaskedEqual, Value: bit31 | 1<<b, ValueTwo: bit31}})
	}
	return alts
}

// Default returns rbox's own profile: allow by default, refuse the calls
// DeniedByDefault lists, on every ABI of the host (HostABIs). It depends on
// o and GOARCH alone, no condition on the host in it, which is what lets
// its filters be compiled at build time (see DefaultFilter).
func Default(o DefaultOptions) *Profile {
	return DefaultFor(o, runtime.GOARCH)
}

// DefaultFor is Default for a build for goarch: what its embedded filters
// are compiled from, on any machine.
func DefaultFor(o DefaultOptions, goarch string) *Profile {
	p := &Profile{DefaultAction: ActAllow, Architectures: ABIsOf(goarch)}
	for _, d := range defaultDenials(goarch) {
		if d.nested && o.AllowNested {
			continue
		}
		errno := uint(d.errno)
		rule := Syscall{Names: d.names, Action: ActErrno, ErrnoRet: &errno, Comment: d.note, ExcludeArchitectures: d.notOn}
		if len(d.args) == 0 {
			p.Syscalls = append(p.Syscalls, rule)
			continue
		}
		for _, args := range d.args {
			rule.Args = args
			p.Syscalls = append(p.Syscalls, rule)
		}
	}
	return p
}

// DeniedByDefault lists the syscalls the default profile refuses and the
// errno each gets, for tests and docs.
func DeniedByDefault() []Denial {
	var list []Denial
	for _, d := range defaultDenials(runtime.GOARCH) {
		for _, name := range d.names {
			list = append(list, Denial{Syscall: name, Errno: d.errno, Note: d.note, Nested: d.nested, NotOn: d.notOn})
		}
	}
	return list
}
