package nsexec

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

const envHelper = "RBOX_NSEXEC_TEST_HELPER"

func TestMain(m *testing.M) {
	in, err := Child()
	if err != nil {
		fmt.Fprintln(os.Stderr, "nsexec child:", err)
		os.Exit(125)
	}
	if in {
		os.Exit(helper(os.Getenv(envHelper)))
	}
	os.Exit(m.Run())
}

// helper runs inside the namespaces: it reports its ids and chowns the
// file named by the second argument to 1000:1000.
func helper(name string) int {
	switch name {
	case "whoami":
		m, _ := os.ReadFile("/proc/self/uid_map")
		fmt.Printf("uid=%d gid=%d inns=%v\n%s", os.Getuid(), os.Getgid(), InUserNS(), m)
		if !FullMapping() {
			return 0
		}
		if err := os.Chown(os.Args[len(os.Args)-1], 1000, 1000); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		// A mount must be possible (private mount namespace, CAP_SYS_ADMIN).
		dir := filepath.Dir(os.Args[len(os.Args)-1])
		if err := unix.Mount("tmpfs", dir, "tmpfs", 0, ""); err != nil {
			fmt.Fprintln(os.Stderr, "mount:", err)
			return 1
		}
		return 0
	}
	fmt.Fprintln(os.Stderr, "unknown helper", name)
	return 2
}

func TestStartMapsCallerToRoot(t *testing.T) {
	plan, err := Plan()
	if err != nil {
		t.Fatal(err)
	}
	uids := plan.UIDMap
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], file)
	cmd.Env = append(os.Environ(), envHelper+"=whoami")
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := Start(cmd, 0); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v: %s", err, errb.String())
	}
	if !strings.HasPrefix(out.String(), "uid=0 gid=0 inns=true\n") {
		t.Fatalf("helper output %q", out.String())
	}
	for _, m := range uids {
		want := fmt.Sprintf("%d %d %d", m.Inside, m.Outside, m.Count)
		if !strings.Contains(strings.Join(strings.Fields(out.String()), " "), want) {
			t.Errorf("uid_map %q lacks %q", out.String(), want)
		}
	}
	var st syscall.Stat_t
	if err := syscall.Stat(file, &st); err != nil {
		t.Fatal(err)
	}
	// Inside uid 1000 is the subordinate start + 999.
	want := uint32(os.Getuid())
	if len(uids) > 1 {
		want = uids[1].Outside + 1000 - uids[1].Inside
	}
	if st.Uid != want {
		t.Errorf("file owner outside = %d, want %d", st.Uid, want)
	}
	// The tmpfs mounted inside must not be visible here.
	if _, err := os.Stat(file); err != nil {
		t.Errorf("mount leaked to the host view: %v", err)
	}
}
