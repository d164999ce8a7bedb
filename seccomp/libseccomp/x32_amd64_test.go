package libseccomp

import (
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	scmp "github.com/seccomp/libseccomp-golang"
)

// TestDefaultRefusesThroughX32 makes real calls through the x32 ABI with
// testdata/seccomp/x32-probe.c. Kernels without x32 (most, this one too)
// answer ENOSYS after the filter has run, so an EPERM can only come from
// the filter; the ENOSYS entries cannot be told apart that way and are
// covered by TestDefaultFilterOnEveryABI.
func TestDefaultRefusesThroughX32(t *testing.T) {
	probeBin := filepath.Join(t.TempDir(), "x32-probe")
	if out, err := exec.Command("cc", "-O1", "-Wall", "-o", probeBin, "../../testdata/seccomp/x32-probe.c").CombinedOutput(); err != nil {
		t.Fatalf("cc x32-probe.c: %v\n%s", err, out)
	}
	byName := denialsByName()
	type x32Call struct {
		probe
		refused bool
	}
	var calls []x32Call
	for _, p := range refusedProbes() {
		if byName[p.name].Errno != syscall.ENOSYS {
			calls = append(calls, x32Call{p, true})
		}
	}
	for _, p := range allowedProbes() {
		calls = append(calls, x32Call{p, false})
	}
	var argv []string
	var probed []x32Call
	for _, c := range calls {
		nr, err := scmp.GetSyscallFromNameByArch(c.name, scmp.ArchX32)
		if err != nil || nr < 0 {
			continue // no such call on x32
		}
		argv = append(argv, strconv.Itoa(int(nr)))
		for _, a := range c.args {
			argv = append(argv, strconv.FormatUint(a, 10))
		}
		probed = append(probed, c)
	}
	parse := func(out string) []string {
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != len(probed) {
			t.Fatalf("x32-probe printed %q for %d calls", out, len(probed))
		}
		return lines
	}
	out, err := exec.Command(probeBin, argv...).Output()
	if err != nil {
		t.Fatalf("x32-probe without a filter: %v", err)
	}
	before := parse(string(out))
	rep := runHelper(t, helperPlan{Profile: "default", Commands: [][]string{append([]string{probeBin}, argv...)}})
	if c := rep.Commands[0]; c.ExitCode != 0 {
		t.Fatalf("x32-probe under the filter: exit %d: %s", c.ExitCode, c.Output)
	}
	after := parse(rep.Commands[0].Output)
	eperm := strconv.Itoa(int(syscall.EPERM))
	refused := 0
	for i, c := range probed {
		switch {
		case before[i] == eperm:
			t.Errorf("%s (%s) through x32: EPERM without a filter, so the probe shows nothing", c.name, c.what)
		case c.refused && after[i] != eperm:
			t.Errorf("%s (%s) through x32: got %s under the filter, want EPERM (%s without)", c.name, c.what, after[i], before[i])
		case !c.refused && after[i] != before[i]:
			t.Errorf("%s (%s) through x32 must pass the filter: got %s, without it %s", c.name, c.what, after[i], before[i])
		}
		if c.refused {
			refused++
		}
	}
	if refused == 0 {
		t.Fatal("no refused call was probed through x32")
	}
}
