package forkinit

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// childRoots are where the forked children start: the assembly that
// clones them and the Go entry points it calls.
var childRoots = []string{
	"github.com/rbox-dev/rbox/forkinit.cloneInit.abi0",
	"github.com/rbox-dev/rbox/forkinit.clonePayload.abi0",
	"github.com/rbox-dev/rbox/forkinit.childEntry",
	"github.com/rbox-dev/rbox/forkinit.payloadEntry",
	"github.com/rbox-dev/rbox/forkinit.cloneOuter.abi0",
	"github.com/rbox-dev/rbox/forkinit.cloneInner.abi0",
	"github.com/rbox-dev/rbox/forkinit.outerEntry",
	"github.com/rbox-dev/rbox/forkinit.innerEntry",
	"github.com/rbox-dev/rbox/forkinit.cloneJoin.abi0",
	"github.com/rbox-dev/rbox/forkinit.joinEntry",
}

// childCallees are the functions outside rbox the children may call: raw
// system calls, and the runtime's hook for a forked child, which package
// syscall's ForkExec calls in the same state (hooks_test.go watches its
// declaration). Whatever else the compiled children call fails the test:
// runtime.panicIndex or panicBounds (a bounds check left in), morestack
// (a function that is not nosplit), the allocator, the scheduler.
var childCallees = []string{
	"syscall.RawSyscall",
	"syscall.RawSyscall6",
	"internal/runtime/syscall/linux.Syscall6",
	"internal/runtime/syscall/linux.Syscall6.abi0",
	"syscall.runtime_AfterForkInChild", // a leaf: the runtime's own
}

// TestChildCode reads the machine code of what the forked children run,
// for each architecture with the fast path, in rbox as `just build` builds
// it: starting from the clone trampolines, every call must be to rbox's
// own code or to childCallees, never an indirect call. So no bounds check,
// stack growth or other entry into Go's runtime is reachable in a child,
// whatever the compiler's inlining and bounds-check elimination did.
func TestChildCode(t *testing.T) {
	for _, goarch := range []string{"amd64", "arm64"} {
		t.Run(goarch, func(t *testing.T) {
			bin := filepath.Join(t.TempDir(), "rbox")
			build := exec.Command("go", "build", "-trimpath", "-o", bin, "github.com/rbox-dev/rbox/cmd/rbox")
			build.Env = append(os.Environ(), "GOARCH="+goarch, "CGO_ENABLED=0")
			if out, err := build.CombinedOutput(); err != nil {
				t.Fatalf("go build for %s: %v\n%s", goarch, err, out)
			}
			checkChildCode(t, bin)
		})
	}
}

var (
	textLine  = regexp.MustCompile(`^TEXT (\S+)\(SB\)`)
	callLine  = regexp.MustCompile(`\s(CALL|JMP|B|BL)\s+(\S+)\s*$`)
	directSym = regexp.MustCompile(`^(\S+)\(SB\)$`)
)

func checkChildCode(t *testing.T, bin string) {
	// from[f] is the function that first called f, for the report.
	from := map[string]string{}
	for _, r := range childRoots {
		from[r] = ""
	}
	level := slices.Clone(childRoots)
	seen := map[string]bool{}
	for len(level) > 0 {
		var pattern []string
		for _, f := range level {
			seen[f] = true
			pattern = append(pattern, regexp.QuoteMeta(f))
		}
		out, err := exec.Command("go", "tool", "objdump", "-s", "^("+strings.Join(pattern, "|")+")$", bin).Output()
		if err != nil {
			t.Fatalf("go tool objdump: %v", err)
		}
		found := map[string]bool{}
		var next []string
		fn := ""
		for _, line := range strings.Split(string(out), "\n") {
			if m := textLine.FindStringSubmatch(line); m != nil {
				fn = m[1]
				found[fn] = true
				continue
			}
			m := callLine.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			s := directSym.FindStringSubmatch(m[2])
			if s == nil {
				if m[1] == "CALL" || m[1] == "BL" {
					t.Errorf("%s makes an indirect call: %s", fn, strings.TrimSpace(line))
				}
				continue // a jump within the function
			}
			callee := s[1]
			if seen[callee] || slices.Contains(next, callee) {
				continue
			}
			switch {
			case callee == "syscall.runtime_AfterForkInChild":
				seen[callee] = true
			case strings.HasPrefix(callee, "github.com/rbox-dev/rbox/") || slices.Contains(childCallees, callee):
				from[callee] = fn
				next = append(next, callee)
			default:
				t.Errorf("code run in the forked child calls %s: %s", callee, chain(from, fn))
			}
		}
		for _, f := range level {
			if !found[f] {
				t.Errorf("%s is not in the binary (%s)", f, chain(from, f))
			}
		}
		level = next
	}
	if !seen["github.com/rbox-dev/rbox/sysplan.(*Program).Exec"] {
		t.Errorf("the walk never reached sysplan's Exec: %v", seen)
	}
}

// chain is the call path from a root to f.
func chain(from map[string]string, f string) string {
	path := []string{f}
	for from[f] != "" && len(path) < 32 {
		f = from[f]
		path = append([]string{f}, path...)
	}
	return strings.Join(path, " → ")
}

// TestTrampolineNumbers checks the system call numbers written in the
// clone trampolines ("$56, AX; /* SYS_clone */") against x/sys/unix's
// tables for their architecture.
func TestTrampolineNumbers(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "golang.org/x/sys").Output()
	if err != nil {
		t.Fatalf("go list golang.org/x/sys: %v", err)
	}
	xsys := strings.TrimSpace(string(out))
	numbered := regexp.MustCompile(`\$(\d+), \w+; /\* (SYS_\w+) \*/`)
	for _, goarch := range []string{"amd64", "arm64"} {
		asm, err := os.ReadFile("clone_" + goarch + ".s")
		if err != nil {
			t.Fatal(err)
		}
		table, err := os.ReadFile(filepath.Join(xsys, "unix", "zsysnum_linux_"+goarch+".go"))
		if err != nil {
			t.Fatal(err)
		}
		uses := numbered.FindAllStringSubmatch(string(asm), -1)
		if len(uses) < 2 {
			t.Errorf("clone_%s.s: found %d numbered system calls, want clone and exit_group", goarch, len(uses))
		}
		for _, u := range uses {
			want := regexp.MustCompile(`\b` + strings.ToUpper(u[2]) + `\s*=\s*(\d+)`).FindStringSubmatch(string(table))
			if want == nil || want[1] != u[1] {
				t.Errorf("clone_%s.s: %s is %s, x/sys/unix says %v", goarch, u[2], u[1], want)
			}
		}
	}
}
