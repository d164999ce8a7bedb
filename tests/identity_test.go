//go:build integration

package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// The caller is root inside, mapped to itself, and its subordinate range
// fills ids from 1 up.
func TestIDMaps(t *testing.T) {
	id := me(t)
	out := sh(t, "id -u; id -g; cat /proc/self/uid_map; echo --; cat /proc/self/gid_map")
	parts := strings.SplitN(out, "--\n", 2)
	head := strings.SplitN(parts[0], "\n", 3)
	if head[0] != "0" || head[1] != "0" {
		t.Fatalf("inside: uid %q gid %q, want 0 0", head[0], head[1])
	}
	uidMap, gidMap := mapLines(head[2]), mapLines(parts[1])
	wantUID := []string{fmt.Sprintf("0 %d 1", id.uid)}
	wantGID := []string{fmt.Sprintf("0 %d 1", id.gid)}
	if id.full() {
		wantUID = append(wantUID, fmt.Sprintf("1 %d %d", id.subUIDs[0].Start, id.subUIDs[0].Count))
		wantGID = append(wantGID, fmt.Sprintf("1 %d %d", id.subGIDs[0].Start, id.subGIDs[0].Count))
	}
	if strings.Join(uidMap, "|") != strings.Join(wantUID, "|") {
		t.Errorf("uid_map = %q, want %q", uidMap, wantUID)
	}
	if strings.Join(gidMap, "|") != strings.Join(wantGID, "|") {
		t.Errorf("gid_map = %q, want %q", gidMap, wantGID)
	}
}

// Files written on a bind belong to the caller on the host; one chowned to
// 1000 inside belongs to the matching subordinate id.
func TestBindOwnership(t *testing.T) {
	id := me(t)
	dir := hostDir(t)
	script := "echo data > /work/mine"
	if id.full() {
		script += " && echo data > /work/theirs && chown 1000:1000 /work/theirs"
	}
	sh(t, script, "--bind", dir+":/work")
	st := statOwner(t, filepath.Join(dir, "mine"))
	if st[0] != id.uid || st[1] != id.gid {
		t.Errorf("file written inside is owned by %v on the host, want %d:%d", st, id.uid, id.gid)
	}
	if id.full() {
		st := statOwner(t, filepath.Join(dir, "theirs"))
		wantU, wantG := int(id.subUIDs[0].Start)+999, int(id.subGIDs[0].Start)+999
		if st[0] != wantU || st[1] != wantG {
			t.Errorf("file chowned to 1000 inside is owned by %v on the host, want %d:%d", st, wantU, wantG)
		}
	}
}

func statOwner(t *testing.T, path string) [2]int {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return [2]int{int(st.Uid), int(st.Gid)}
}

// Without newuidmap (or without a range) rbox maps the caller alone and says
// so in one warning line.
func TestSingleMappingFallback(t *testing.T) {
	id := me(t)
	// A PATH without the uidmap helpers; sh and the rest come from /bin.
	bin := hostDir(t)
	for _, tool := range []string{"sh", "cat", "id"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(p, filepath.Join(bin, tool)); err != nil {
			t.Fatal(err)
		}
	}
	r := rboxCmd(t, func(c *exec.Cmd) { c.Env = append(os.Environ(), "PATH="+bin) },
		"--env", "PATH=/usr/bin:/bin", "--", "sh", "-c", "cat /proc/self/uid_map")
	if r.code != 0 {
		t.Fatalf("fallback run failed:\n%s", r)
	}
	if id.uid == 0 {
		// Root writes its maps itself: no helper, no fallback, no warning.
		if got := mapLines(r.stdout); len(got) < 2 || r.stderr != "" {
			t.Errorf("root: want its full map and no warning, got\n%s", r)
		}
		return
	}
	if got, want := mapLines(r.stdout), fmt.Sprintf("0 %d 1", id.uid); len(got) != 1 || got[0] != want {
		t.Errorf("uid_map = %q, want only %q", got, want)
	}
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "rbox: warning: ") {
		t.Fatalf("want one warning line, got stderr %q", r.stderr)
	}
	if !(strings.Contains(lines[0], "newuidmap not found") && strings.Contains(lines[0], "install the uidmap package")) {
		t.Errorf("warning does not say why and how to fix: %q", lines[0])
	}
}

// --uid runs the command as that uid with the caller mapped to it, so files
// it writes on binds are still the caller's.
func TestUIDKeepsCallerOwnership(t *testing.T) {
	id := me(t)
	dir := hostDir(t)
	out := sh(t, "id -u; id -g; echo x > /work/f; grep CapEff /proc/self/status", "--uid", "1000", "--gid", "1000", "--bind", dir+":/work")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if lines[0] != "1000" || lines[1] != "1000" {
		t.Fatalf("inside id = %q, want 1000 1000", lines[:2])
	}
	if !strings.HasSuffix(lines[2], "0000000000000000") {
		t.Errorf("non-root uid inside holds capabilities: %s", lines[2])
	}
	if st := statOwner(t, filepath.Join(dir, "f")); st[0] != id.uid || st[1] != id.gid {
		t.Errorf("file by uid 1000 inside owned by %v on host, want %d:%d", st, id.uid, id.gid)
	}
}
