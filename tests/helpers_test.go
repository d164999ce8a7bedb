//go:build integration

// Package tests drives the built rbox binary as a user would and checks
// what is seen from inside and outside the sandbox. `just integration` runs
// it as the caller and, when that is root, again as the unprivileged test
// user.
package tests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rbox-dev/rbox/subid"
	"github.com/rbox-dev/rbox/userns"
)

var rboxBin, probePath string

func TestMain(m *testing.M) {
	rboxBin = os.Getenv("RBOX_BIN")
	if rboxBin == "" {
		fmt.Fprintln(os.Stderr, "RBOX_BIN must name the rbox binary under test (`just integration` sets it)")
		os.Exit(2)
	}
	probePath = os.Getenv("RBOX_PROBE")
	os.Exit(m.Run())
}

// probeBin is the static probe program built from tests/probe.
func probeBin(t *testing.T) string {
	t.Helper()
	if probePath == "" {
		t.Fatal("RBOX_PROBE must name the probe binary built from tests/probe (`just integration` sets it)")
	}
	return probePath
}

type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// rbox runs the binary with args, stdin from /dev/null, and waits.
func rbox(t *testing.T, args ...string) result {
	t.Helper()
	return rboxCmd(t, nil, args...)
}

// rboxCmd runs rbox; prepare may adjust the command (dir, env, fds).
func rboxCmd(t *testing.T, prepare func(*exec.Cmd), args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, rboxBin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if prepare != nil {
		prepare(cmd)
	}
	onSimulatedHost(t, cmd)
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
		if r.code < 0 {
			t.Fatalf("rbox %v: killed: %v\n%s", args, err, r)
		}
	default:
		t.Fatalf("rbox %v: %v", args, err)
	}
	return r
}

// sh runs a shell script in a default sandbox and requires success.
func sh(t *testing.T, script string, flags ...string) string {
	t.Helper()
	args := append(append([]string{}, flags...), "--", "sh", "-c", script)
	r := rbox(t, args...)
	if r.code != 0 {
		t.Fatalf("rbox %v failed:\n%s", args, r)
	}
	return r.stdout
}

// identity is who runs the tests and the maps rbox should give them.
type identity struct {
	uid, gid         int
	name             string
	subUIDs, subGIDs []subid.Range
}

// full reports whether rbox maps a subordinate range for this caller.
func (id identity) full() bool {
	if len(id.subUIDs) == 0 || len(id.subGIDs) == 0 {
		return false
	}
	if id.uid == 0 {
		return true
	}
	_, e1 := exec.LookPath("newuidmap")
	_, e2 := exec.LookPath("newgidmap")
	return e1 == nil && e2 == nil
}

func me(t *testing.T) identity {
	t.Helper()
	id := identity{uid: os.Getuid(), gid: os.Getgid()}
	u, err := user.LookupId(strconv.Itoa(id.uid))
	if err != nil {
		t.Fatal(err)
	}
	id.name = u.Username
	if id.subUIDs, err = subid.Lookup(subid.SubUIDPath, id.name, uint32(id.uid)); err != nil {
		t.Fatal(err)
	}
	if id.subGIDs, err = subid.Lookup(subid.SubGIDPath, id.name, uint32(id.gid)); err != nil {
		t.Fatal(err)
	}
	if id.uid == 0 && (len(id.subUIDs) == 0 || len(id.subGIDs) == 0) {
		// Root without a range maps every other id of its own namespace.
		if id.subUIDs, err = userns.OwnIDs("/proc/self/uid_map", 0); err != nil {
			t.Fatal(err)
		}
		if id.subGIDs, err = userns.OwnIDs("/proc/self/gid_map", uint32(id.gid)); err != nil {
			t.Fatal(err)
		}
	}
	return id
}

// hostDir makes a directory for the test that the caller owns.
func hostDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fields splits a map file's lines into their whitespace-separated words.
func mapLines(text string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
		out = append(out, strings.Join(strings.Fields(l), " "))
	}
	return out
}

// processesWith lists the pids of the caller's processes whose command line
// contains marker.
func processesWith(marker string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if bytes.Contains(cmdline, []byte(marker)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tmpEntries lists the caller's entries in /tmp, to check rbox leaves
// nothing there. Go's build directories and other tests' t.TempDir()s
// (other work on the machine) are not rbox's.
func tmpEntries(t *testing.T) map[string]bool {
	t.Helper()
	entries, err := os.ReadDir(os.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]bool{}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || strings.HasPrefix(e.Name(), "go-build") || strings.HasPrefix(e.Name(), "go-link") || strings.HasPrefix(e.Name(), "Test") {
			continue
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && int(st.Uid) == os.Getuid() {
			m[e.Name()] = true
		}
	}
	return m
}
