package main

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/rbox-dev/rbox/seccomp"
	"github.com/rbox-dev/rbox/seccomp/libseccomp"
)

var (
	buildOnce sync.Once
	helperBin string
	buildErr  string
)

// helper builds rbox-seccomp as `just build` does, with the Justfile's
// static_flags.
func helper(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		justfile, err := os.ReadFile("../../Justfile")
		if err != nil {
			buildErr = err.Error()
			return
		}
		m := regexp.MustCompile(`(?m)^static_flags := "-tags (\S+) -ldflags '([^']*)'"$`).FindSubmatch(justfile)
		if m == nil {
			buildErr = "the Justfile has no static_flags line of the form -tags T -ldflags '...'"
			return
		}
		goTool, err := exec.LookPath("go") // go test puts its own first in PATH
		if err != nil {
			buildErr = err.Error()
			return
		}
		dir, err := os.MkdirTemp("", "rbox-seccomp-test")
		if err != nil {
			buildErr = err.Error()
			return
		}
		bin := filepath.Join(dir, seccomp.HelperName)
		cmd := exec.Command(goTool, "build", "-trimpath", "-tags", string(m[1]), "-ldflags", string(m[2]), "-o", bin, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = "go build -tags " + string(m[1]) + " -ldflags '" + string(m[2]) + "': " + err.Error() + "\n" + string(out)
			return
		}
		helperBin = bin
	})
	if buildErr != "" {
		t.Fatal(buildErr)
	}
	return helperBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if helperBin != "" {
		os.RemoveAll(filepath.Dir(helperBin))
	}
	os.Exit(code)
}

// TestStaticLink checks that the helper, built with the Justfile's flags,
// needs no shared library: libseccomp and glibc are inside.
func TestStaticLink(t *testing.T) {
	f, err := elf.Open(helper(t))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) != 0 {
		t.Errorf("rbox-seccomp needs %v (%v); it should be fully static", libs, err)
	}
	if f.Section(".interp") != nil {
		t.Error("rbox-seccomp has a program interpreter; it should be fully static")
	}
}

func readProfile(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile("../../testdata/seccomp/deny-mkdir.json")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestCompileThroughHelper runs the helper as rbox does (seccomp.Compile)
// and compares its answer with the compiler run in-process.
func TestCompileThroughHelper(t *testing.T) {
	t.Setenv("RBOX_SECCOMP_HELPER", helper(t))
	data := readProfile(t)
	got, err := seccomp.Compile(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := seccomp.ParseJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	want, err := libseccomp.Compile(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.BPF, want.BPF) || got.Flags != want.Flags {
		t.Errorf("the helper's filter (%d bytes, flags %#x) differs from the in-process one (%d bytes, flags %#x)",
			len(got.BPF), got.Flags, len(want.BPF), want.Flags)
	}
	withFlags := strings.Replace(string(data), "{", `{"flags": ["SECCOMP_FILTER_FLAG_LOG"],`, 1)
	if f, err := seccomp.Compile([]byte(withFlags), nil); err != nil || f.Flags != 2 {
		t.Errorf("with SECCOMP_FILTER_FLAG_LOG: %+v, %v; want flags 2", f, err)
	}
}

// TestDefaultThroughHelper compiles the default profile the way rbox does
// on a GOARCH without embedded filters, and compares with the embedded ones.
func TestDefaultThroughHelper(t *testing.T) {
	t.Setenv("RBOX_SECCOMP_HELPER", helper(t))
	for _, nested := range []bool{false, true} {
		o := seccomp.DefaultOptions{AllowNested: nested}
		profile, err := json.Marshal(seccomp.Default(o))
		if err != nil {
			t.Fatal(err)
		}
		f, err := seccomp.Compile(profile, nil)
		if err != nil {
			t.Fatal(err)
		}
		if embedded := seccomp.EmbeddedDefault(o); !bytes.Equal(f.BPF, embedded) {
			t.Errorf("AllowNested=%v: the helper's default filter differs from the embedded one", nested)
		}
	}
}

// TestCapsReachHelper: a rule included only for a capability is in the
// filter only when the payload is given it.
func TestCapsReachHelper(t *testing.T) {
	t.Setenv("RBOX_SECCOMP_HELPER", helper(t))
	profile := []byte(`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
		{"names": ["mkdirat"], "action": "SCMP_ACT_ERRNO", "includes": {"caps": ["CAP_SYS_ADMIN"]}}]}`)
	without, err := seccomp.Compile(profile, []string{"CAP_CHOWN"})
	if err != nil {
		t.Fatal(err)
	}
	with, err := seccomp.Compile(profile, []string{"CAP_CHOWN", "CAP_SYS_ADMIN"})
	if err != nil {
		t.Fatal(err)
	}
	if len(with.BPF) <= len(without.BPF) {
		t.Errorf("the rule for CAP_SYS_ADMIN did not reach the filter: %d bytes with it, %d without", len(with.BPF), len(without.BPF))
	}
}

func TestBadProfile(t *testing.T) {
	bin := helper(t)
	t.Setenv("RBOX_SECCOMP_HELPER", bin)
	for _, c := range []struct{ profile, says string }{
		{`{"defaultAction": "SCMP_ACT_NOPE"}`, `defaultAction: unknown action "SCMP_ACT_NOPE"`},
		{`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [`, "invalid JSON"},
		{`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "includes": {"minKernel": "six"}}]}`,
			"syscalls[0].includes.minKernel"},
	} {
		_, err := seccomp.Compile([]byte(c.profile), nil)
		if err == nil || !strings.Contains(err.Error(), c.says) || strings.Contains(err.Error(), "\n") ||
			strings.HasPrefix(err.Error(), seccomp.HelperName) {
			t.Errorf("%s: error %q, want one line saying %q", c.profile, err, c.says)
		}
	}
	// The helper itself: one line on stderr, nothing on stdout, exit 1.
	cmd := exec.Command(bin)
	cmd.Stdin = strings.NewReader(`{"profile": "{\"defaultAction\": \"SCMP_ACT_NOPE\"}"}`)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if exit, ok := err.(*exec.ExitError); !ok || exit.ExitCode() != 1 {
		t.Errorf("exit: %v, want status 1", err)
	}
	if lines := strings.Split(strings.TrimRight(stderr.String(), "\n"), "\n"); len(lines) != 1 ||
		!strings.HasPrefix(lines[0], "rbox-seccomp: ") || !strings.Contains(lines[0], "SCMP_ACT_NOPE") {
		t.Errorf("stderr %q, want one rbox-seccomp: line naming SCMP_ACT_NOPE", stderr.String())
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout %q, want nothing", stdout.String())
	}
}

func TestHelperMissing(t *testing.T) {
	t.Setenv("RBOX_SECCOMP_HELPER", "")
	t.Setenv("PATH", t.TempDir())
	if _, err := seccomp.Compile(readProfile(t), nil); err == nil || !strings.Contains(err.Error(), "rbox-seccomp") {
		t.Errorf("without the helper: %v, want an error naming rbox-seccomp", err)
	}
}
