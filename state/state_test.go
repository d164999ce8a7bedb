package state

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

func testStore(t *testing.T) *Store {
	t.Helper()
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	s, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func TestValidName(t *testing.T) {
	for _, ok := range []string{"a", "db", "web-1", "x_y.z", "A9"} {
		if err := ValidName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	long := string(make([]byte, 64))
	for _, bad := range []string{"", ".x", "-x", "_x", "a/b", "..", "a b", "é", long} {
		if ValidName(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestCreateGetRemove(t *testing.T) {
	s := testStore(t)
	e, err := s.Create(&Info{Name: "box", Status: StatusRunning, Supervisor: Self()})
	if err != nil {
		t.Fatal(err)
	}
	info, live, err := s.Get("box")
	if err != nil || !live || info.Status != StatusRunning {
		t.Fatalf("Get: %+v %v %v", info, live, err)
	}
	if _, err := s.Create(&Info{Name: "box"}); !errors.Is(err, ErrInUse) {
		t.Errorf("second Create: %v", err)
	}
	if _, err := s.Lock("box"); !errors.Is(err, ErrInUse) {
		t.Errorf("Lock of a live entry: %v", err)
	}
	if err := e.Remove(); err != nil {
		t.Fatal(err)
	}
	e.Release()
	if _, _, err := s.Get("box"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Remove: %v", err)
	}
	if names, _ := os.ReadDir(filepath.Join(s.Path(), "sandboxes")); len(names) != 0 {
		t.Errorf("left: %v", names)
	}
}

// An entry whose holder went without recording an end is dead: the next
// reader removes it and the name is free; an exited one stays until removed.
func TestDeadAndExitedEntries(t *testing.T) {
	s := testStore(t)
	e, err := s.Create(&Info{Name: "dead", Status: StatusRunning})
	if err != nil {
		t.Fatal(err)
	}
	e.Release() // as a SIGKILL would
	if _, _, err := s.Get("dead"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get of a dead entry: %v", err)
	}
	if names, _ := os.ReadDir(filepath.Join(s.Path(), "sandboxes")); len(names) != 0 {
		t.Errorf("a dead entry was not cleaned: %v", names)
	}
	e, err = s.Create(&Info{Name: "done", Status: StatusRunning})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Write(&Info{Name: "done", Status: StatusExited, ExitCode: 3}); err != nil {
		t.Fatal(err)
	}
	e.Release()
	info, live, err := s.Get("done")
	if err != nil || live || info.ExitCode != 3 {
		t.Fatalf("exited entry: %+v %v %v", info, live, err)
	}
	if _, err := s.Create(&Info{Name: "done"}); !errors.Is(err, ErrInUse) {
		t.Errorf("Create over an exited entry: %v", err)
	}
	l, err := s.Lock("done")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Remove(); err != nil {
		t.Fatal(err)
	}
	l.Release()
}

func TestConcurrentCreate(t *testing.T) {
	s := testStore(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var won []*Entry
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e, err := s.Create(&Info{Name: "race", Status: StatusRunning})
			if err == nil {
				mu.Lock()
				won = append(won, e)
				mu.Unlock()
			} else if !errors.Is(err, ErrInUse) {
				t.Errorf("Create: %v", err)
			}
		}()
	}
	wg.Wait()
	if len(won) != 1 {
		t.Fatalf("%d winners", len(won))
	}
	won[0].Release()
}

// Symlinks in the tree are never followed.
func TestSymlinksRefused(t *testing.T) {
	s := testStore(t)
	victim := t.TempDir()
	if err := os.WriteFile(filepath.Join(victim, "state.json"), []byte(`{"name":"evil","status":"exited"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(victim, "lock"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	boxes := filepath.Join(s.Path(), "sandboxes")
	if err := os.Symlink(victim, filepath.Join(boxes, "evil")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Get("evil"); err == nil {
		t.Error("Get followed a symlinked entry")
	}
	if _, err := s.Lock("evil"); err == nil {
		t.Error("Lock followed a symlinked entry")
	}
	infos, _, bad, err := s.List()
	if err != nil || len(infos) != 0 || len(bad) != 1 {
		t.Errorf("List: %v %v %v", infos, bad, err)
	}
	e, err := s.Create(&Info{Name: "box", Status: StatusRunning})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Release()
	secret := filepath.Join(victim, "state.json")
	if err := os.Symlink(secret, filepath.Join(boxes, "box", "log")); err != nil {
		t.Fatal(err)
	}
	if f, err := s.OpenFile("box", "log"); err == nil {
		f.Close()
		t.Error("OpenFile followed a symlinked log")
	}
	if _, err := e.OpenLog("log"); err == nil {
		t.Error("OpenLog followed a symlinked log")
	}
	if _, err := os.Stat(filepath.Join(victim, "state.json")); err != nil {
		t.Error(err)
	}
}

// The state directory must be private to its owner.
func TestOpenRefusesOthersDirectory(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", dir)
	if err := os.Mkdir(filepath.Join(dir, "rbox"), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "rbox"), 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(); err == nil {
		t.Error("a world-writable state directory was accepted")
	}
	if err := os.Remove(filepath.Join(dir, "rbox")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(t.TempDir(), filepath.Join(dir, "rbox")); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(); err == nil {
		t.Error("a symlinked state directory was accepted")
	}
}

func TestProcPidFD(t *testing.T) {
	cmd := exec.Command("sleep", "10")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p, err := ProcOf(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	stale := p
	stale.StartTime++
	if _, err := stale.PidFD(); err == nil {
		t.Error("a pid with another start time was accepted")
	}
	if err := p.Signal(9); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if _, err := p.PidFD(); err == nil {
		t.Error("an ended process was accepted")
	}
}
