package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/hostcheck"
)

func TestFormatResults(t *testing.T) {
	got := formatResults([]hostcheck.Result{
		{Name: "user namespace", Status: "pass", Detail: "created", Fix: ""},
		{Name: "newuidmap", Status: "fail", Detail: "not setuid root", Fix: "chmod u+s /usr/bin/newuidmap"},
		{Name: "pasta", Status: "warn", Detail: "not found", Fix: "apt install passt"},
	})
	want := "pass  user namespace  created\n" +
		"fail  newuidmap       not setuid root  -> fix: chmod u+s /usr/bin/newuidmap\n" +
		"warn  pasta           not found  -> fix: apt install passt\n"
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

// buildRbox builds the command into a directory everyone may read, so
// other users can run it too.
func buildRbox(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "rbox-check-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "rbox")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// runCheck runs `rbox check` with args, as user (empty: this process's
// user), with PATH set to path, and returns its output and exit code.
func runCheck(t *testing.T, bin, asUser, path string, args ...string) (string, int) {
	t.Helper()
	line := "PATH=" + path + " " + bin + " check " + strings.Join(args, " ")
	cmd := exec.Command("/bin/sh", "-c", line)
	if asUser != "" {
		cmd = exec.Command("su", asUser, "-c", line)
	}
	cmd.Dir = filepath.Dir(bin)
	var stdout strings.Builder
	cmd.Stdout = &stdout
	cmd.Stderr = os.Stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return stdout.String(), cmd.ProcessState.ExitCode()
}

// decode parses --json output: schema_version 1 and one object per item
// with exactly the four fields.
func decode(t *testing.T, out string) []hostcheck.Result {
	t.Helper()
	var report struct {
		SchemaVersion *int             `json:"schema_version"`
		Items         []map[string]any `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &report); err != nil {
		t.Fatalf("--json output does not parse: %v\n%s", err, out)
	}
	if report.SchemaVersion == nil || *report.SchemaVersion != 1 {
		t.Errorf("--json: schema_version missing or not 1:\n%s", out)
	}
	raw := report.Items
	var results []hostcheck.Result
	for _, obj := range raw {
		var keys []string
		for k, v := range obj {
			keys = append(keys, k)
			if _, ok := v.(string); !ok {
				t.Errorf("%v: %s is not a string", obj, k)
			}
		}
		slices.Sort(keys)
		if !slices.Equal(keys, []string{"detail", "fix", "name", "status"}) {
			t.Errorf("object with fields %v, want detail, fix, name, status", keys)
		}
		r := hostcheck.Result{Name: obj["name"].(string), Status: obj["status"].(string), Detail: obj["detail"].(string), Fix: obj["fix"].(string)}
		if !slices.Contains([]string{"pass", "warn", "fail"}, r.Status) {
			t.Errorf("%s: status %q", r.Name, r.Status)
		}
		results = append(results, r)
	}
	return results
}

func find(results []hostcheck.Result, name string) hostcheck.Result {
	for _, r := range results {
		if r.Name == name {
			return r
		}
	}
	return hostcheck.Result{}
}

func exitFor(results []hostcheck.Result) int {
	for _, r := range results {
		if r.Status == "fail" {
			return 1
		}
	}
	return 0
}

var mustPass = []string{
	"user namespace", "mount namespace", "pid namespace", "net namespace", "uts namespace",
	"ipc namespace", "cgroup namespace", "time namespace", "uid_map write", "newuidmap", "newgidmap",
	"full id map", "/proc mount", "overlayfs", "/dev/fuse", "/dev/net/tun", "slirp4netns", "pasta", "fuse-overlayfs",
	"--allow-net on networks",
}

// checkBinary runs the built command as user (empty: this process's user):
// text and JSON agree, the machine's working items pass, the exit code
// follows the fails, and nothing is left behind.
func checkBinary(t *testing.T, bin, asUser string) {
	mountsBefore, _ := os.ReadFile("/proc/self/mountinfo")
	out, code := runCheck(t, bin, asUser, os.Getenv("PATH"), "--json")
	results := decode(t, out)
	if code != exitFor(results) {
		t.Errorf("exit %d with results %v", code, results)
	}
	for _, name := range mustPass {
		if r := find(results, name); r.Status != "pass" {
			t.Errorf("%s: %+v, want pass", name, r)
		}
	}
	text, code2 := runCheck(t, bin, asUser, os.Getenv("PATH"))
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) != len(results) || code2 != code {
		t.Errorf("text report: %d lines, exit %d; JSON: %d items, exit %d\n%s", len(lines), code2, len(results), code, text)
	}
	for i, l := range lines {
		if i < len(results) && !strings.HasPrefix(l, results[i].Status+"  "+results[i].Name) {
			t.Errorf("line %q does not start with %s  %s", l, results[i].Status, results[i].Name)
		}
	}
	t.Logf("rbox check as %q:\n%s", asUser, text)
	if mountsAfter, _ := os.ReadFile("/proc/self/mountinfo"); string(mountsAfter) != string(mountsBefore) {
		t.Errorf("the host's mounts changed:\nbefore:\n%s\nafter:\n%s", mountsBefore, mountsAfter)
	}
	noChildren(t)
}

func TestCheckBinary(t *testing.T) {
	openDevices(t)
	bin := buildRbox(t)
	checkBinary(t, bin, "")
	if os.Getuid() != 0 {
		return
	}
	u, err := user.Lookup("rboxtest")
	if err != nil {
		t.Skip("no user rboxtest on this machine")
	}
	checkBinary(t, bin, u.Username)
}

// TestCheckBinaryBrokenPath runs the command without newuidmap on PATH,
// and, as the unprivileged user, with a copy of it that is not setuid:
// the second is a fail and exit status 1.
func TestCheckBinaryBrokenPath(t *testing.T) {
	openDevices(t)
	bin := buildRbox(t)
	out, code := runCheck(t, bin, "", "/nonexistent", "--json")
	results := decode(t, out)
	r := find(results, "newuidmap")
	if (r.Status != "warn" && r.Status != "fail") || !strings.Contains(r.Fix, "uidmap package") {
		t.Errorf("newuidmap without PATH: %+v, want a warn or fail naming the uidmap package", r)
	}
	if code != exitFor(results) {
		t.Errorf("exit %d with results %v", code, results)
	}
	noChildren(t)

	if os.Getuid() != 0 {
		return
	}
	u, err := user.Lookup("rboxtest")
	if err != nil {
		t.Skip("no user rboxtest on this machine")
	}
	dir := filepath.Dir(bin)
	src, err := exec.LookPath("newuidmap")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "newuidmap"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	out, code = runCheck(t, bin, u.Username, dir+":"+os.Getenv("PATH"), "--json")
	results = decode(t, out)
	if r := find(results, "newuidmap"); r.Status != "fail" || !strings.Contains(r.Detail, "not setuid root") {
		t.Errorf("newuidmap not setuid: %+v, want fail", r)
	}
	if r := find(results, "full id map"); r.Status != "fail" {
		t.Errorf("full id map with a newuidmap that is not setuid: %+v, want fail", r)
	}
	if code != 1 {
		t.Errorf("exit %d with a failed item, want 1", code)
	}
	noChildren(t)
}

func TestMain(m *testing.M) {
	// Leftovers of the command's probes come back to this process.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}

// openDevices makes /dev/fuse and /dev/net/tun usable by everyone, as the
// test machine is set up, and restores their modes afterwards.
func openDevices(t *testing.T) {
	t.Helper()
	if os.Getuid() != 0 {
		return
	}
	for _, dev := range []string{"/dev/fuse", "/dev/net/tun"} {
		st, err := os.Stat(dev)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dev, 0o666); err != nil {
			t.Fatal(err)
		}
		mode := st.Mode().Perm()
		t.Cleanup(func() { _ = os.Chmod(dev, mode) })
	}
}

// noChildren fails when a process whose parent is this one is left.
func noChildren(t *testing.T) {
	t.Helper()
	me := strconv.Itoa(os.Getpid())
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 && f[1] == me {
			t.Errorf("process %s left behind", e.Name())
		}
	}
}
