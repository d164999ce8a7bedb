package sysplan

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestRunSlotsAndAllow(t *testing.T) {
	dir := t.TempDir()
	var p Program
	p.Step("open %s", dir)
	p.Call(unix.SYS_OPENAT, Int(unix.AT_FDCWD), V(p.Str(dir)), V(unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC)).Into(3)
	p.Step("mkdir sub")
	p.Call(unix.SYS_MKDIRAT, Slot(3).FD(), V(p.Str("sub")), V(0o700))
	// The second mkdir fails with EEXIST, which is allowed.
	p.Call(unix.SYS_MKDIRAT, Slot(3).FD(), V(p.Str("sub")), V(0o700)).Allow(unix.EEXIST)
	p.Step("write file")
	p.Call(unix.SYS_OPENAT, Slot(3).FD(), V(p.Str("sub/f")), V(unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC), V(0o600)).Into(4)
	p.Call(unix.SYS_WRITE, Slot(4).FD(), V(p.Bytes([]byte("data"))), V(4))
	p.Call(unix.SYS_CLOSE, Slot(4).FD())
	p.Call(unix.SYS_CLOSE, Slot(3).FD())
	p.Finish()
	if err := p.Run(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "sub/f"))
	if err != nil || string(got) != "data" {
		t.Fatalf("file: %q, %v", got, err)
	}
}

func TestFailureNamesStep(t *testing.T) {
	var p Program
	p.Step("open /no/such/dir")
	p.Call(unix.SYS_OPENAT, Int(unix.AT_FDCWD), V(p.Str("/no/such/dir")), V(unix.O_PATH))
	p.Finish()
	err := p.Run()
	var f *Failure
	if !errors.As(err, &f) || f.Errno != unix.ENOENT || !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("err = %v, want ENOENT failure", err)
	}
	if !strings.HasPrefix(err.Error(), "open /no/such/dir: ") {
		t.Fatalf("message %q does not name the step", err)
	}
}

func TestJumps(t *testing.T) {
	dir := t.TempDir()
	var p Program
	missing, done := p.NewLabel(), p.NewLabel()
	p.Step("probe")
	// Fails with ENOENT: continue at missing, skipping the failing op.
	p.Call(unix.SYS_OPENAT, Int(unix.AT_FDCWD), V(p.Str(filepath.Join(dir, "nope"))), V(unix.O_PATH)).OnError(unix.ENOENT, missing)
	p.Call(unix.SYS_MKDIRAT, Int(unix.AT_FDCWD), V(p.Str("/proc/forbidden")), V(0o700))
	p.Mark(missing)
	p.Call(unix.SYS_MKDIRAT, Int(unix.AT_FDCWD), V(p.Str(filepath.Join(dir, "made"))), V(0o700))
	p.Jump(done)
	p.Call(unix.SYS_MKDIRAT, Int(unix.AT_FDCWD), V(p.Str(filepath.Join(dir, "skipped"))), V(0o700))
	p.Mark(done)
	// Any error continues at the end: nothing left to run.
	end := p.NewLabel()
	p.Call(unix.SYS_CLOSE, Int(-1)).OnAnyError(end)
	p.Mark(end)
	p.Finish()
	if err := p.Run(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "made")); err != nil {
		t.Error("the op after the label did not run")
	}
	if _, err := os.Stat(filepath.Join(dir, "skipped")); err == nil {
		t.Error("the op jumped over ran")
	}
}

func TestFailOnNegative(t *testing.T) {
	for _, v := range []int32{0, 5, -int32(unix.EEXIST)} {
		var p Program
		cell := new(int32)
		Keep(&p, cell)
		p.Step("check")
		// The cell is written after the program is built, as a recv op
		// would write it while the program runs.
		p.FailOnNegative(cell)
		p.Finish()
		*cell = v
		err := p.Run()
		if v < 0 && !errors.Is(err, unix.EEXIST) || v >= 0 && err != nil {
			t.Errorf("cell %d: err = %v", v, err)
		}
	}
}

func TestUnmarkedLabelPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("Finish accepted a label never marked")
		}
	}()
	var p Program
	p.Jump(p.NewLabel())
	p.Finish()
}
