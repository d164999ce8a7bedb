package libseccomp

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	scmp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/seccomp"
	"github.com/rbox-dev/rbox/spec"
)

// The tests that load a filter do it in a child: the test binary started
// again with helperEnv holding a helperPlan. A filter cannot be taken off a
// thread, and the child's main thread is the one Load filters.
const helperEnv = "RBOX_SECCOMP_TEST_HELPER"

func TestMain(m *testing.M) {
	if plan := os.Getenv(helperEnv); plan != "" {
		// Keep main on the thread the raw calls, Load and the forks use.
		runtime.LockOSThread()
		os.Exit(helperMain(plan))
	}
	os.Exit(m.Run())
}

// A probe is one raw system call with harmless arguments: when no filter
// refuses it, the kernel fails it on its arguments or it changes nothing
// that lasts, so making it as root on the test machine is safe.
type probe struct {
	name string
	args [6]uint64
	what string // what the arguments ask for, for failure messages
}

const (
	badFD           = ^uint64(0)      // -1
	high32          = uint64(1) << 32 // a bit above the 32 the kernel reads of an int
	readImpliesExec = 0x0400000
	// Personas the default profile lets through (see seccomp/default.go).
	perLinux32       = 0x0008
	uname26          = 0x0020000
	addrNoRandomize  = 0x0040000
	personalityQuery = 0xffffffff
)

func args(a ...uint64) [6]uint64 {
	var r [6]uint64
	copy(r[:], a)
	return r
}

// cloneArgs puts clone's flags where the ABI reads them: s390 swaps the
// first two arguments.
func cloneArgs(flags uint64) [6]uint64 {
	var r [6]uint64
	if runtime.GOARCH == "s390x" {
		r[1] = flags
	} else {
		r[0] = flags
	}
	return r
}

// refusedProbes call every syscall of DeniedByDefault in a way the default
// profile refuses.
func refusedProbes() []probe {
	return []probe{
		{"add_key", args(), "NULL type"},
		{"request_key", args(), "NULL type"},
		{"keyctl", args(0xffff), "unknown operation"},
		{"bpf", args(0xffff), "unknown command"},
		{"perf_event_open", args(0, 0, badFD, badFD), "NULL attributes"},
		{"userfaultfd", args(0xffffffff), "unknown flags"},
		{"io_uring_setup", args(), "no entries"},
		{"io_uring_enter", args(badFD), "bad fd"},
		{"io_uring_register", args(badFD), "bad fd"},
		{"kexec_load", args(0, 0, 0, 0xffffffff), "unknown flags"},
		{"kexec_file_load", args(badFD, badFD, 0, 0, 0xffffffff), "bad fds"},
		{"init_module", args(), "NULL image"},
		{"finit_module", args(badFD), "bad fd"},
		{"delete_module", args(), "NULL name"},
		{"open_by_handle_at", args(badFD), "bad fd, NULL handle"},
		{"name_to_handle_at", args(badFD), "NULL path"},
		{"lookup_dcookie", args(), "nothing"},
		{"acct", args(1), "path at address 1"},
		{"quotactl", args(0xffffffff), "unknown quota type"},
		{"quotactl_fd", args(badFD, 0xffffffff), "bad fd"},
		{"swapon", args(0, 0xffffffff), "unknown flags"},
		{"swapoff", args(), "NULL path"},
		{"reboot", args(), "wrong magic"},
		{"settimeofday", args(0, 1), "time zone at address 1"},
		{"clock_settime", args(unix.CLOCK_MONOTONIC), "NULL time"},
		{"clock_settime64", args(unix.CLOCK_MONOTONIC), "NULL time"},
		{"stime", args(), "NULL time"},
		{"iopl", args(4), "level above 3"},
		{"ioperm", args(0x10000, 1), "ports past the end"},
		{"vm86", args(), "nothing"},
		{"vm86old", args(), "nothing"},
		{"syslog", args(0xffff), "unknown action"},
		{"nfsservctl", args(), "nothing"},
		{"uselib", args(), "NULL path"},
		{"personality", args(readImpliesExec), "READ_IMPLIES_EXEC"},
		{"personality", args(high32 | readImpliesExec), "READ_IMPLIES_EXEC, high bits set"},
		{"personality", args(0x80000000), "bit 31 alone"},
		{"personality", args(0xfffffffe), "every bit but bit 0"},
		{"ioctl", args(badFD, unix.TIOCSTI), "TIOCSTI on a bad fd"},
		{"ioctl", args(badFD, high32|unix.TIOCSTI), "TIOCSTI, high bits set"},
		{"ioctl", args(badFD, unix.TIOCLINUX), "TIOCLINUX on a bad fd"},
		{"socket", args(unix.AF_VSOCK, 0xff), "AF_VSOCK, unknown type"},
		{"socket", args(high32|unix.AF_VSOCK, 0xff), "AF_VSOCK, high bits set"},
		{"clone", cloneArgs(unix.CLONE_NEWUSER | unix.CLONE_FS), "CLONE_NEWUSER|CLONE_FS, which the kernel rejects"},
		{"unshare", args(unix.CLONE_NEWUSER), "CLONE_NEWUSER, EINVAL in a threaded process"},
		{"clone3", args(), "NULL arguments"},
		{"setns", args(badFD), "bad fd"},
	}
}

// allowedProbes must pass the default profile as if it were not there.
func allowedProbes() []probe {
	return []probe{
		{"ioctl", args(badFD, unix.TIOCGWINSZ), "TIOCGWINSZ on a bad fd"},
		{"personality", args(personalityQuery), "query"},
		{"personality", args(perLinux32 | uname26 | addrNoRandomize), "every allowed flag"},
		{"personality", args(high32 | perLinux32), "PER_LINUX32, high bits set"},
		{"socket", args(unix.AF_UNIX, 0xff), "AF_UNIX, unknown type"},
		{"clone", cloneArgs(unix.CLONE_NEWNS | unix.CLONE_FS), "CLONE_NEWNS|CLONE_FS, which the kernel rejects"},
		{"unshare", args(0), "nothing"},
		{"getpid", args(), "nothing"},
		// i386 socket calls: the family sits in memory, so the AF_VSOCK
		// rule must not turn into a refusal of every socket.
		{"socketcall", args(1, 0), "SYS_SOCKET"},
	}
}

// denialsByName indexes the default policy's entries.
func denialsByName() map[string]seccomp.Denial {
	m := map[string]seccomp.Denial{}
	for _, d := range seccomp.DeniedByDefault() {
		m[d.Syscall] = d
	}
	return m
}

func TestProbesCoverDeniedByDefault(t *testing.T) {
	probed := map[string]bool{}
	for _, p := range refusedProbes() {
		probed[p.name] = true
	}
	listed := map[string]bool{}
	for _, d := range seccomp.DeniedByDefault() {
		listed[d.Syscall] = true
		if !probed[d.Syscall] {
			t.Errorf("%s is denied by default but has no probe", d.Syscall)
		}
		if d.Errno != syscall.EPERM && d.Errno != syscall.ENOSYS {
			t.Errorf("%s: errno %v, want EPERM or ENOSYS", d.Syscall, d.Errno)
		}
		if _, err := scmp.GetSyscallFromName(d.Syscall); err != nil {
			t.Errorf("%s is unknown to libseccomp, so the default profile cannot refuse it", d.Syscall)
		}
	}
	for name := range probed {
		if !listed[name] {
			t.Errorf("probe for %s, which DeniedByDefault does not list", name)
		}
	}
	// The native numbers come from libseccomp; check them against Go's.
	for name, want := range map[string]uintptr{"keyctl": unix.SYS_KEYCTL, "bpf": unix.SYS_BPF, "ioctl": unix.SYS_IOCTL,
		"personality": unix.SYS_PERSONALITY, "unshare": unix.SYS_UNSHARE, "setns": unix.SYS_SETNS} {
		if got, ok := nativeNumber(name); !ok || got != want {
			t.Errorf("libseccomp numbers %s %d, Go %d", name, got, want)
		}
	}
}

func nativeNumber(name string) (uintptr, bool) {
	nr, err := scmp.GetSyscallFromName(name)
	if err != nil || nr < 0 {
		return 0, false // not a call of the native ABI
	}
	return uintptr(nr), true
}

// TestDefaultRefusesOnRealKernel makes every probe the native ABI has
// before and after installing the default profile.
func TestDefaultRefusesOnRealKernel(t *testing.T) {
	byName := denialsByName()
	for _, nested := range []bool{false, true} {
		t.Run(fmt.Sprintf("AllowNested=%v", nested), func(t *testing.T) {
			var calls []rawCall
			var refused, allowed []probe
			for _, p := range refusedProbes() {
				if nr, ok := nativeNumber(p.name); ok {
					calls = append(calls, rawCall{Nr: nr, Args: p.args})
					refused = append(refused, p)
				}
			}
			for _, p := range allowedProbes() {
				nr, _ := nativeNumber(p.name)
				calls = append(calls, rawCall{Nr: nr, Args: p.args})
				allowed = append(allowed, p)
			}
			profile := "default"
			if nested {
				profile = "nested"
			}
			rep := runHelper(t, helperPlan{Profile: profile, Calls: calls})
			for i, p := range refused {
				d := byName[p.name]
				before, after := rep.Before[i], rep.After[i]
				if before == d.Errno {
					t.Errorf("%s (%s): the kernel itself answers %v, so the probe cannot show the filter's answer", p.name, p.what, before)
				}
				want := d.Errno
				if nested && d.Nested {
					want = before // AllowNested lifts the entry
				}
				if after != want {
					t.Errorf("%s (%s): got %v under the filter (%v without), want %v", p.name, p.what, errnoName(after), errnoName(before), errnoName(want))
				}
			}
			for j, p := range allowed {
				before, after := rep.Before[len(refused)+j], rep.After[len(refused)+j]
				if after != before {
					t.Errorf("%s (%s) must pass the filter: got %v, without it %v", p.name, p.what, errnoName(after), errnoName(before))
				}
			}
		})
	}
}

func errnoName(e syscall.Errno) string {
	if e == 0 {
		return "success"
	}
	return unix.ErrnoName(e)
}

// TestDefaultFilterOnEveryABI runs the exported BPF program on every ABI
// the host kernel has, for every probe. It is how the i386 ABI gets
// checked: this machine's hypervisor gives no int $0x80 to make real calls
// with (the x32 test makes real ones). So are the filters of the other
// embeddedArches (arm64's aarch64 and arm ABIs), which this machine cannot
// run, each call by its number on that ABI.
func TestDefaultFilterOnEveryABI(t *testing.T) {
	goarches := embeddedArches
	if !slices.Contains(goarches, runtime.GOARCH) {
		goarches = append(goarches, runtime.GOARCH)
	}
	for _, goarch := range goarches {
		t.Run(goarch, func(t *testing.T) { testDefaultFilterOnEveryABI(t, goarch) })
	}
}

func testDefaultFilterOnEveryABI(t *testing.T, goarch string) {
	abis, err := hostABIs(goarch)
	if err != nil {
		t.Fatal(err)
	}
	byName := denialsByName()
	h, err := currentHost()
	if err != nil {
		t.Fatal(err)
	}
	h.goarch = goarch
	for _, nested := range []bool{false, true} {
		prog := exportBPF(t, seccomp.DefaultFor(seccomp.DefaultOptions{AllowNested: nested}, goarch), h)
		for _, abi := range abis {
			token, wide := auditArch(t, abi)
			check := func(p probe, want uint32) {
				nr, err := scmp.GetSyscallFromNameByArch(p.name, abi)
				if err != nil || nr < 0 {
					return // no such call on this ABI
				}
				got, err := runBPF(prog, seccompData(int32(nr), token, p.args, wide))
				if err != nil {
					t.Fatalf("%s on %s: %v", p.name, abi, err)
				}
				if got != want {
					t.Errorf("AllowNested=%v, %s (%s) through %s: filter returns %#x, want %#x", nested, p.name, p.what, abi, got, want)
				}
			}
			for _, p := range refusedProbes() {
				d := byName[p.name]
				want := retErrno | uint32(d.Errno)
				if nested && d.Nested || slices.Contains(d.NotOn, archName(abi)) {
					want = retAllow
				}
				check(p, want)
			}
			for _, p := range allowedProbes() {
				check(p, retAllow)
			}
		}
		// An ABI the filter does not name is answered as a kernel without it.
		got, err := runBPF(prog, seccompData(0, 0x12345678, [6]uint64{}, true))
		if err != nil || got != retErrno|uint32(syscall.ENOSYS) {
			t.Errorf("call through an unknown ABI: filter returns %#x, %v; want ENOSYS", got, err)
		}
	}
}

// TestDefaultFilterNamesEveryHostABI checks libseccomp's own rendering of
// the filter for a section per ABI.
func TestDefaultFilterNamesEveryHostABI(t *testing.T) {
	want := map[string][]string{
		"amd64": {"x86_64", "x86", "x32"},
		"arm64": {"aarch64", "arm"},
		"s390x": {"s390x", "s390"},
	}[runtime.GOARCH]
	if want == nil {
		native, _ := scmp.GetNativeArch()
		want = []string{native.String()}
	}
	pfc := exportPFC(t, seccomp.Default(seccomp.DefaultOptions{}))
	for _, arch := range want {
		if !strings.Contains(pfc, "# filter for arch "+arch+" (") {
			t.Errorf("filter has no section for %s:\n%s", arch, pfc)
		}
	}
}

func TestOrdinaryCallsUnderDefault(t *testing.T) {
	dir := t.TempDir()
	rep := runHelper(t, helperPlan{Profile: "default", Dir: dir, Commands: [][]string{{"/bin/true"}}})
	if rep.Getpid != rep.pid {
		t.Errorf("getpid under the filter: %d, want %d", rep.Getpid, rep.pid)
	}
	for _, call := range []string{"openat", "mkdir", "mkdirat"} {
		if e, ok := rep.Files[call]; !ok || e != 0 {
			t.Errorf("%s in a temp dir under the filter: %v", call, errnoName(e))
		}
	}
	if c := rep.Commands[0]; c.ExitCode != 0 {
		t.Errorf("fork/exec of /bin/true under the filter: exit %d: %s", c.ExitCode, c.Output)
	}
	// Only the calling thread is filtered (no TSYNC), with no_new_privs.
	if rep.Thread.Seccomp != "2" || rep.Thread.NoNewPrivs != "1" {
		t.Errorf("calling thread: Seccomp %q NoNewPrivs %q, want 2 and 1", rep.Thread.Seccomp, rep.Thread.NoNewPrivs)
	}
	if len(rep.OtherThreads) == 0 {
		t.Fatal("helper has no other threads to check")
	}
	for _, th := range rep.OtherThreads {
		if th.Seccomp != "0" {
			t.Errorf("another thread of the process is filtered too (Seccomp %q)", th.Seccomp)
		}
	}
}

// TestNestedUserNamespaces uses unshare(1), which creates its user
// namespace in a single-threaded process: a Go process cannot.
func TestNestedUserNamespaces(t *testing.T) {
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Fatalf("unshare(1) from util-linux is needed: %v", err)
	}
	cmd := []string{unshare, "--user", "true"}
	rep := runHelper(t, helperPlan{Profile: "default", Commands: [][]string{cmd}})
	if c := rep.Commands[0]; c.ExitCode == 0 || !strings.Contains(c.Output, "Operation not permitted") {
		t.Errorf("unshare --user under the default profile: exit %d, %q; want EPERM", c.ExitCode, c.Output)
	}
	rep = runHelper(t, helperPlan{Profile: "nested", Commands: [][]string{cmd}})
	if c := rep.Commands[0]; c.ExitCode != 0 {
		t.Errorf("unshare --user with AllowNested: exit %d, %q; want success", c.ExitCode, c.Output)
	}
}

func TestParseJSONDenyMkdir(t *testing.T) {
	path, err := filepath.Abs("../../testdata/seccomp/deny-mkdir.json")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := seccomp.ParseJSON(data); err != nil {
		t.Fatal(err)
	}
	rep := runHelper(t, helperPlan{Profile: path, Dir: t.TempDir()})
	want := map[string]syscall.Errno{"openat": 0, "mkdirat": syscall.EPERM}
	if _, ok := nativeNumber("mkdir"); ok {
		want["mkdir"] = syscall.EPERM
	}
	for call, errno := range want {
		if got, ok := rep.Files[call]; !ok || got != errno {
			t.Errorf("%s under deny-mkdir.json: %v, want %v", call, errnoName(got), errnoName(errno))
		}
	}
}

func TestUnknownSyscallNamesAreIgnored(t *testing.T) {
	p, err := seccomp.ParseJSON([]byte(`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
		{"names": ["rbox_no_such_call", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if pfc := exportPFC(t, p); !strings.Contains(pfc, `"mkdirat"`) {
		t.Errorf("the known name next to an unknown one is missing from the filter:\n%s", pfc)
	}
}

func TestLegacyNameField(t *testing.T) {
	p, err := seccomp.ParseJSON([]byte(`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"name": "mkdirat", "action": "SCMP_ACT_ERRNO"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if pfc := exportPFC(t, p); !strings.Contains(pfc, `"mkdirat"`) {
		t.Errorf("a rule given by name is missing from the filter:\n%s", pfc)
	}
	if _, err := seccomp.ParseJSON([]byte(`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"name": "a", "names": ["b"], "action": "SCMP_ACT_ERRNO"}]}`)); err == nil {
		t.Error("a rule with both name and names was accepted")
	}
}

func TestIncludesExcludes(t *testing.T) {
	h := host{goarch: "amd64", kernel: [2]int{6, 18}, caps: map[string]bool{"CAP_CHOWN": true}}
	for _, c := range []struct {
		rule seccomp.Syscall
		want bool
	}{
		{seccomp.Syscall{}, true},
		{seccomp.Syscall{Includes: &seccomp.Condition{Caps: []string{"CAP_CHOWN"}}}, true},
		{seccomp.Syscall{Includes: &seccomp.Condition{Caps: []string{"CAP_CHOWN", "CAP_SYS_ADMIN"}}}, false},
		{seccomp.Syscall{Excludes: &seccomp.Condition{Caps: []string{"CAP_SYS_ADMIN"}}}, true},
		{seccomp.Syscall{Excludes: &seccomp.Condition{Caps: []string{"CAP_CHOWN"}}}, false},
		{seccomp.Syscall{Includes: &seccomp.Condition{Arches: []string{"arm64", "amd64"}}}, true},
		{seccomp.Syscall{Includes: &seccomp.Condition{Arches: []string{"arm64"}}}, false},
		{seccomp.Syscall{Excludes: &seccomp.Condition{Arches: []string{"amd64"}}}, false},
		{seccomp.Syscall{Includes: &seccomp.Condition{MinKernel: "6.18"}}, true},
		{seccomp.Syscall{Includes: &seccomp.Condition{MinKernel: "6.19"}}, false},
		{seccomp.Syscall{Includes: &seccomp.Condition{MinKernel: "4.8"}}, true},
		{seccomp.Syscall{Excludes: &seccomp.Condition{MinKernel: "5.0"}}, false},
		{seccomp.Syscall{Excludes: &seccomp.Condition{MinKernel: "7.0"}}, true},
	} {
		if got := appliesOn(&c.rule, h); got != c.want {
			t.Errorf("includes %+v excludes %+v: applies %v, want %v", c.rule.Includes, c.rule.Excludes, got, c.want)
		}
	}
}

// ---- The helper child ----

type helperPlan struct {
	Profile  string     // "default", "nested", or the path of a JSON profile
	Calls    []rawCall  // made before and after Load
	Commands [][]string // run after Load, forked from the filtered thread
	Dir      string     // where the file checks create things, if set
}

type rawCall struct {
	Nr   uintptr
	Args [6]uint64
}

type helperReport struct {
	Before, After []syscall.Errno
	Getpid        int
	Files         map[string]syscall.Errno // errno of each file call under the filter
	Commands      []commandResult
	Thread        threadStatus // the calling thread, after Load
	OtherThreads  []threadStatus

	pid int // of the helper, filled in by runHelper
}

type commandResult struct {
	ExitCode int
	Output   string
}

type threadStatus struct{ Seccomp, NoNewPrivs string }

func runHelper(t *testing.T, plan helperPlan) helperReport {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(plan)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), helperEnv+"="+string(data))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, stderr.Bytes())
	}
	var rep helperReport
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("helper report %q: %v\n%s", out, err, stderr.Bytes())
	}
	if len(rep.Before) != len(plan.Calls) || len(rep.After) != len(plan.Calls) || len(rep.Commands) != len(plan.Commands) {
		t.Fatalf("helper report incomplete: %s", out)
	}
	rep.pid = cmd.Process.Pid
	return rep
}

func helperMain(planJSON string) int {
	var plan helperPlan
	if err := json.Unmarshal([]byte(planJSON), &plan); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	f, err := helperFilter(plan.Profile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var rep helperReport
	rep.Before = makeCalls(plan.Calls)
	if err := seccomp.Load(f); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	rep.After = makeCalls(plan.Calls)
	pid, _, _ := unix.RawSyscall(unix.SYS_GETPID, 0, 0, 0)
	rep.Getpid = int(pid)
	if plan.Dir != "" {
		rep.Files = fileCalls(plan.Dir)
	}
	for _, argv := range plan.Commands {
		out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		res := commandResult{Output: string(out)}
		var exit *exec.ExitError
		switch {
		case errors.As(err, &exit):
			res.ExitCode = exit.ExitCode()
		case err != nil:
			res.ExitCode, res.Output = -1, err.Error()
		}
		rep.Commands = append(rep.Commands, res)
	}
	if rep.Thread, rep.OtherThreads, err = threadStatuses(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := json.NewEncoder(os.Stdout).Encode(rep); err != nil {
		return 2
	}
	return 0
}

// helperFilter is the filter the helper loads: for "default" and "nested"
// the embedded one rbox loads (TestEmbedded keeps it equal to what the
// deny-list compiles to), for a path the JSON profile there compiled.
func helperFilter(profile string) (*spec.SeccompFilter, error) {
	var p *seccomp.Profile
	switch profile {
	case "default", "nested":
		o := seccomp.DefaultOptions{AllowNested: profile == "nested"}
		if bpf := seccomp.EmbeddedDefault(o); bpf != nil {
			return &spec.SeccompFilter{BPF: bpf}, nil
		}
		p = seccomp.Default(o)
	default:
		data, err := os.ReadFile(profile)
		if err != nil {
			return nil, err
		}
		if p, err = seccomp.ParseJSON(data); err != nil {
			return nil, err
		}
	}
	return Compile(p, nil)
}

// makeCalls makes each call on the current (locked) thread and returns its
// errno, 0 for success. A persona a call set is put back at once.
func makeCalls(calls []rawCall) []syscall.Errno {
	errnos := make([]syscall.Errno, len(calls))
	for i, c := range calls {
		a := c.Args
		_, _, errnos[i] = unix.Syscall6(c.Nr, uintptr(a[0]), uintptr(a[1]), uintptr(a[2]), uintptr(a[3]), uintptr(a[4]), uintptr(a[5]))
		if c.Nr == unix.SYS_PERSONALITY && errnos[i] == 0 {
			unix.Syscall(unix.SYS_PERSONALITY, 0, 0, 0)
		}
	}
	return errnos
}

// fileCalls creates a file and directories in dir with raw calls, so that
// each system call is the one named (Go's os.Mkdir uses mkdirat).
func fileCalls(dir string) map[string]syscall.Errno {
	res := map[string]syscall.Errno{}
	path := func(name string) *byte {
		p, _ := unix.BytePtrFromString(filepath.Join(dir, name))
		return p
	}
	fdcwd := unix.AT_FDCWD
	atFDCWD := uintptr(fdcwd)
	file := path("file")
	fd, _, e := unix.Syscall6(unix.SYS_OPENAT, atFDCWD, uintptr(unsafe.Pointer(file)), unix.O_CREAT|unix.O_WRONLY, 0o600, 0, 0)
	res["openat"] = e
	if e == 0 {
		unix.Close(int(fd))
	}
	if nr, ok := nativeNumber("mkdir"); ok {
		d := path("by-mkdir")
		_, _, res["mkdir"] = unix.Syscall(nr, uintptr(unsafe.Pointer(d)), 0o700, 0)
	}
	d := path("by-mkdirat")
	_, _, res["mkdirat"] = unix.Syscall(unix.SYS_MKDIRAT, atFDCWD, uintptr(unsafe.Pointer(d)), 0o700)
	return res
}

// threadStatuses reads the seccomp mode and no_new_privs of every thread.
func threadStatuses() (self threadStatus, others []threadStatus, err error) {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return self, nil, err
	}
	tid := strconv.Itoa(unix.Gettid())
	for _, task := range tasks {
		f, err := os.Open(filepath.Join("/proc/self/task", task.Name(), "status"))
		if err != nil {
			continue // the thread has exited
		}
		var st threadStatus
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			key, value, _ := strings.Cut(sc.Text(), ":")
			switch key {
			case "Seccomp":
				st.Seccomp = strings.TrimSpace(value)
			case "NoNewPrivs":
				st.NoNewPrivs = strings.TrimSpace(value)
			}
		}
		f.Close()
		if task.Name() == tid {
			self = st
		} else {
			others = append(others, st)
		}
	}
	return self, others, nil
}

// ---- Running the exported filter ----

func exportPFC(t *testing.T, p *seccomp.Profile) string {
	t.Helper()
	h, err := currentHost()
	if err != nil {
		t.Fatal(err)
	}
	f, err := build(p, h)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Release()
	out, err := os.CreateTemp(t.TempDir(), "pfc")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if err := f.ExportPFC(out); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out.Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func exportBPF(t *testing.T, p *seccomp.Profile, h host) []unix.SockFilter {
	t.Helper()
	f, err := compileFor(p, h)
	if err != nil {
		t.Fatal(err)
	}
	prog, err := seccomp.Program(f.BPF)
	if err != nil {
		t.Fatal(err)
	}
	return prog
}

// Seccomp return values.
const (
	retAllow = 0x7fff0000
	retErrno = 0x00050000
)

// auditArch gives the AUDIT_ARCH_* value the kernel reports for calls
// through abi, and whether its arguments are 64 bits wide.
func auditArch(t *testing.T, abi scmp.ScmpArch) (uint32, bool) {
	switch abi {
	case scmp.ArchAMD64, scmp.ArchX32: // x32 numbers carry bit 30
		return 0xc000003e, true
	case scmp.ArchX86:
		return 0x40000003, false
	case scmp.ArchARM64:
		return 0xc00000b7, true
	case scmp.ArchARM:
		return 0x40000028, false
	case scmp.ArchS390X:
		return 0x80000016, true
	case scmp.ArchS390:
		return 0x00000016, false
	}
	t.Fatalf("no audit arch known for %s", abi)
	return 0, false
}

// seccompData lays out struct seccomp_data as the kernel hands it to the
// filter; a 32-bit ABI's arguments arrive zero-extended.
func seccompData(nr int32, arch uint32, a [6]uint64, wide bool) []byte {
	data := make([]byte, 64)
	binary.NativeEndian.PutUint32(data[0:], uint32(nr))
	binary.NativeEndian.PutUint32(data[4:], arch)
	for i, v := range a {
		if !wide {
			v = uint64(uint32(v))
		}
		binary.NativeEndian.PutUint64(data[16+8*i:], v)
	}
	return data
}

// runBPF interprets a classic BPF program the way the kernel's seccomp
// does, over one seccomp_data.
func runBPF(prog []unix.SockFilter, data []byte) (uint32, error) {
	var a, x uint32
	var mem [16]uint32
	for pc := 0; pc < len(prog); pc++ {
		ins := prog[pc]
		src := ins.K
		if ins.Code&0x08 != 0 { // BPF_X
			src = x
		}
		switch ins.Code & 0x07 {
		case 0x00, 0x01: // BPF_LD, BPF_LDX
			var v uint32
			switch ins.Code & 0xe0 {
			case 0x00: // BPF_IMM
				v = ins.K
			case 0x20: // BPF_ABS, 32-bit loads only in seccomp
				if int(ins.K)+4 > len(data) || ins.Code&0x18 != 0 {
					return 0, fmt.Errorf("pc %d: bad load %#x", pc, ins.Code)
				}
				v = binary.NativeEndian.Uint32(data[ins.K:])
			case 0x60: // BPF_MEM
				v = mem[ins.K&15]
			case 0x80: // BPF_LEN
				v = uint32(len(data))
			default:
				return 0, fmt.Errorf("pc %d: unknown load %#x", pc, ins.Code)
			}
			if ins.Code&0x07 == 0x00 {
				a = v
			} else {
				x = v
			}
		case 0x02: // BPF_ST
			mem[ins.K&15] = a
		case 0x03: // BPF_STX
			mem[ins.K&15] = x
		case 0x04: // BPF_ALU
			switch ins.Code & 0xf0 {
			case 0x00:
				a += src
			case 0x10:
				a -= src
			case 0x20:
				a *= src
			case 0x30:
				if src == 0 {
					return 0, nil
				}
				a /= src
			case 0x40:
				a |= src
			case 0x50:
				a &= src
			case 0x60:
				a <<= src
			case 0x70:
				a >>= src
			case 0x80:
				a = -a
			case 0xa0:
				a ^= src
			default:
				return 0, fmt.Errorf("pc %d: unknown ALU op %#x", pc, ins.Code)
			}
		case 0x05: // BPF_JMP
			var cond bool
			switch ins.Code & 0xf0 {
			case 0x00: // BPF_JA
				pc += int(ins.K)
				continue
			case 0x10:
				cond = a == src
			case 0x20:
				cond = a > src
			case 0x30:
				cond = a >= src
			case 0x40:
				cond = a&src != 0
			default:
				return 0, fmt.Errorf("pc %d: unknown jump %#x", pc, ins.Code)
			}
			if cond {
				pc += int(ins.Jt)
			} else {
				pc += int(ins.Jf)
			}
		case 0x06: // BPF_RET
			if ins.Code&0x18 == 0x10 { // BPF_A
				return a, nil
			}
			return ins.K, nil
		case 0x07: // BPF_MISC
			if ins.Code&0xf8 == 0x80 { // TXA
				a = x
			} else { // TAX
				x = a
			}
		}
	}
	return 0, errors.New("program ran off its end")
}
