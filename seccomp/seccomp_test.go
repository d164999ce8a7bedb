package seccomp

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/spec"
)

// update is seccomp/libseccomp's flag (see TestEmbedded there), accepted
// here too so that `go test ./seccomp/... -update` runs.
var _ = flag.Bool("update", false, "rewrite the embedded default filters (a flag of seccomp/libseccomp's tests)")

const high32 = uint64(1) << 32 // a bit above the 32 the kernel reads of an int

// loadEnv makes the test binary a child that loads the embedded default
// filter and reports on itself: a filter cannot be taken off a thread.
const loadEnv = "RBOX_SECCOMP_LOAD_TEST"

func TestMain(m *testing.M) {
	if os.Getenv(loadEnv) != "" {
		runtime.LockOSThread()
		os.Exit(loadChild())
	}
	os.Exit(m.Run())
}

func TestParseJSONErrors(t *testing.T) {
	for _, c := range []struct{ json, want string }{
		{`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [`, "invalid JSON"},
		{`{"defaultAction": "SCMP_ACT_NOPE", "syscalls": []}`, `defaultAction: unknown action "SCMP_ACT_NOPE"`},
		{`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_EXPLODE"}]}`,
			`syscalls[0].action: unknown action "SCMP_ACT_EXPLODE"`},
		{`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"},
			{"names": ["ioctl"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 1, "value": 1, "op": "SCMP_CMP_SIMILAR"}]}]}`,
			`syscalls[1].args[0].op: unknown operator "SCMP_CMP_SIMILAR"`},
		{`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["ioctl"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}`,
			`syscalls[0].args[0].index: 6`},
		{`{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_Z80"], "syscalls": []}`,
			`architectures[1]: unknown architecture "SCMP_ARCH_Z80"`},
		{`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}`,
			`syscalls[0].action: SCMP_ACT_NOTIFY is not supported`},
		{`{"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_TSYNC"], "syscalls": []}`,
			`flags[0]: SECCOMP_FILTER_FLAG_TSYNC is not supported`},
		{`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5000}]}`,
			`syscalls[0].action: errnoRet 5000`},
		{`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": "one"}]}`,
			`syscalls.errnoRet`},
		{`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_ERRNO"}]}`, `syscalls[0]: names is empty`},
		{`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "includes": {"minKernel": "six"}}]}`,
			`syscalls[0].includes.minKernel`},
	} {
		_, err := ParseJSON([]byte(c.json))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseJSON(%s):\n got error %v\nwant one containing %q", c.json, err, c.want)
		}
	}
}

func TestDefaultRoundTripsThroughJSON(t *testing.T) {
	for _, nested := range []bool{false, true} {
		p := Default(DefaultOptions{AllowNested: nested})
		data, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseJSON(data)
		if err != nil {
			t.Fatalf("ParseJSON of the default profile: %v", err)
		}
		if !reflect.DeepEqual(p, back) {
			t.Errorf("default profile changed through JSON:\n%s", data)
		}
	}
}

// TestPersonalityArgs compares the personality alternatives with the rule
// they spell out, on the values around every bit.
func TestPersonalityArgs(t *testing.T) {
	allowed := func(v uint64) bool {
		low := uint32(v)
		return low == personalityQuery || low&^allowedPersonality == 0
	}
	refused := func(v uint64) bool {
		for _, alt := range personalityArgs() {
			a := alt[0]
			if v&a.Value == a.ValueTwo {
				return true
			}
		}
		return false
	}
	values := []uint64{0, personalityQuery, high32 | personalityQuery, 0xfffffffe, 0x7fffffff, 0x80000000}
	for b := range 32 {
		values = append(values, 1<<b, 1<<b|perLinux32|addrNoRandomize, personalityQuery&^(1<<b), high32|1<<b)
	}
	for combo := range uint64(8) {
		var v uint64
		for i, flag := range []uint64{perLinux32, uname26, addrNoRandomize} {
			if combo&(1<<i) != 0 {
				v |= flag
			}
		}
		values = append(values, v, v|0x80000000)
	}
	for _, v := range values {
		if refused(v) == allowed(v) {
			t.Errorf("personality(%#x): refused %v, want %v", v, refused(v), !allowed(v))
		}
	}
}

func TestHostABIs(t *testing.T) {
	for goarch, want := range map[string][]Arch{
		"amd64":   {ArchX86_64, ArchX86, ArchX32},
		"arm64":   {ArchAARCH64, ArchARM},
		"s390x":   {ArchS390X, ArchS390},
		"riscv64": {"SCMP_ARCH_RISCV64"},
		"wasm":    nil,
	} {
		if got := ABIsOf(goarch); !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", goarch, got, want)
		}
	}
	for _, a := range nativeArch {
		if !knownArch(a) {
			t.Errorf("native ABI %s is not a known architecture", a)
		}
	}
}

func TestLoadFlags(t *testing.T) {
	p := &Profile{Flags: []string{"SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"}}
	if got, want := p.LoadFlags(), uint(unix.SECCOMP_FILTER_FLAG_LOG|unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW); got != want {
		t.Errorf("LoadFlags = %#x, want %#x", got, want)
	}
}

func TestProgramLength(t *testing.T) {
	for _, n := range []int{0, 7, 9, 8 * (MaxProgram + 1)} {
		if _, err := Program(make([]byte, n)); err == nil {
			t.Errorf("a program of %d bytes was accepted", n)
		}
	}
	ret := binary.NativeEndian.AppendUint16(nil, unix.BPF_RET|unix.BPF_K)
	ret = binary.NativeEndian.AppendUint32(append(ret, 0, 0), unix.SECCOMP_RET_ALLOW)
	prog, err := Program(ret)
	if err != nil || len(prog) != 1 || prog[0].Code != unix.BPF_RET|unix.BPF_K || prog[0].K != unix.SECCOMP_RET_ALLOW {
		t.Errorf("one instruction: %+v, %v", prog, err)
	}
}

// TestLoadEmbeddedDefault loads the embedded default filter in a child,
// which makes the calls rbox's pid 1 and payload would.
func TestLoadEmbeddedDefault(t *testing.T) {
	if EmbeddedDefault(DefaultOptions{}) == nil {
		t.Fatalf("no embedded default filter for %s: run go test ./seccomp/... -run TestEmbedded -update", runtime.GOARCH)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), loadEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var rep loadReport
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("child's report %q: %v", out, err)
	}
	if rep.BPF != "operation not permitted" {
		t.Errorf("bpf(2) under the filter: %s, want EPERM", rep.BPF)
	}
	if rep.Clone3 != "function not implemented" {
		t.Errorf("clone3(2) under the filter: %s, want ENOSYS", rep.Clone3)
	}
	if rep.Getpid != cmd.Process.Pid {
		t.Errorf("getpid under the filter: %d, want %d", rep.Getpid, cmd.Process.Pid)
	}
	if rep.Seccomp != "2" || rep.NoNewPrivs != "1" {
		t.Errorf("calling thread: Seccomp %q NoNewPrivs %q, want 2 and 1", rep.Seccomp, rep.NoNewPrivs)
	}
	if len(rep.Others) == 0 || slices.ContainsFunc(rep.Others, func(s string) bool { return s != "0" }) {
		t.Errorf("other threads' Seccomp: %q, want all 0 (the filter is on the calling thread only)", rep.Others)
	}
}

type loadReport struct {
	BPF, Clone3         string
	Getpid              int
	Seccomp, NoNewPrivs string
	Others              []string
}

func loadChild() int {
	if err := Load(&spec.SeccompFilter{BPF: EmbeddedDefault(DefaultOptions{})}); err != nil {
		fmt.Println(err)
		return 2
	}
	var rep loadReport
	_, _, e := unix.Syscall(unix.SYS_BPF, 0xffff, 0, 0)
	rep.BPF = e.Error()
	_, _, e = unix.Syscall(unix.SYS_CLONE3, 0, 0, 0)
	rep.Clone3 = e.Error()
	pid, _, _ := unix.RawSyscall(unix.SYS_GETPID, 0, 0, 0)
	rep.Getpid = int(pid)
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		fmt.Println(err)
		return 2
	}
	self := fmt.Sprint(unix.Gettid())
	for _, task := range tasks {
		status := procStatus("/proc/self/task/" + task.Name() + "/status")
		if task.Name() == self {
			rep.Seccomp, rep.NoNewPrivs = status["Seccomp"], status["NoNewPrivs"]
		} else {
			rep.Others = append(rep.Others, status["Seccomp"])
		}
	}
	if err := json.NewEncoder(os.Stdout).Encode(rep); err != nil {
		return 2
	}
	return 0
}

func procStatus(path string) map[string]string {
	m := map[string]string{}
	f, err := os.Open(path)
	if err != nil {
		return m
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		m[k] = strings.TrimSpace(v)
	}
	return m
}
