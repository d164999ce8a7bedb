package sysplan

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"unsafe"

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

// Store writes a descriptor an earlier op made where a later op reads it,
// and Format shows the ops with their strings, objects and slots.
func TestStoreAndFormat(t *testing.T) {
	var p Program
	cell := new(int32)
	Keep(&p, cell)
	p.Step("open /dev/null")
	p.Call(unix.SYS_OPENAT, Int(unix.AT_FDCWD), V(p.Str("/dev/null")), V(unix.O_RDONLY|unix.O_CLOEXEC)).Into(3)
	p.Store(3, cell)
	p.Call(unix.SYS_CLOSE, Slot(3).FD())
	p.Finish()
	if err := p.Run(); err != nil {
		t.Fatal(err)
	}
	if *cell < 3 || uintptr(*cell) != p.Slots[3] {
		t.Errorf("stored %d, slot holds %d", *cell, p.Slots[3])
	}
	var b strings.Builder
	if err := p.Format(&b); err != nil {
		t.Fatal(err)
	}
	want := "# open /dev/null\n  0  openat(-100, \"/dev/null\", 0x80000, 0) -> $3\n  1  store $3 in the message\n  2  close($3)\n"
	if b.String() != want {
		t.Errorf("Format:\n%s\nwant:\n%s", b.String(), want)
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

// Steps are named from their pieces or format and arguments when a failure
// is described, with the values the arguments had when the step was added.
func TestStepNames(t *testing.T) {
	var p Program
	n := 7
	p.Step("become %d:%d", n, uint32(8))
	p.Call(unix.SYS_GETPID)
	n = 9
	p.StepText("bind ", "/a", " on ", "/b", ": open_tree")
	p.Call(unix.SYS_GETPID)
	p.Step("100%% done")
	p.Call(unix.SYS_GETPID)
	p.Step("no verbs")
	p.Call(unix.SYS_GETPID)
	e := &errorString{"before"}
	p.Step("error %v", e) // not a plain value: formatted now
	p.Call(unix.SYS_GETPID)
	e.s = "after"
	want := []string{"become 7:8", "bind /a on /b: open_tree", "100% done", "no verbs", "error before"}
	for i, w := range want {
		if got := p.Describe(i, unix.EPERM).Step; got != w {
			t.Errorf("op %d: step %q, want %q", i, got, w)
		}
	}
	if got := p.Describe(len(want), unix.EPERM).Step; got != "setup" {
		t.Errorf("op past the end: step %q", got)
	}
	if n != 9 {
		t.Fatal(n)
	}
}

// errorString is a mutable error, standing for any argument whose value
// may change after Step.
type errorString struct{ s string }

func (e *errorString) Error() string { return e.s }

// Strings live in chunks of an arena that never move: pointers handed out
// stay valid however many strings follow, large ones included.
func TestArena(t *testing.T) {
	var p Program
	var ptrs []uintptr
	var want []string
	for i := 0; i < 3000; i++ {
		s := strings.Repeat("x", i%50) + fmt.Sprint(i)
		if i%500 == 0 {
			s = strings.Repeat("L", 3*chunkSize) // larger than a chunk
		}
		ptrs = append(ptrs, p.Str(s))
		want = append(want, s)
	}
	b := p.Bytes([]byte{1, 2, 3})
	runtime.GC()
	for i, ptr := range ptrs {
		if got := unix.BytePtrToString(bytePtr(ptr)); got != want[i] {
			t.Fatalf("string %d reads %q, want %q", i, got, want[i])
		}
	}
	if got := unsafe.Slice(bytePtr(b), 3); got[0] != 1 || got[2] != 3 {
		t.Errorf("bytes read %v", got)
	}
	if len(p.chunks) < 3 {
		t.Errorf("%d chunks for 3000 strings", len(p.chunks))
	}
}

// Grow makes room in advance: adding that many ops does not reallocate.
func TestGrow(t *testing.T) {
	var p Program
	p.Call(unix.SYS_GETPID)
	p.Grow(100)
	ops := &p.ops[0]
	for i := 0; i < 100; i++ {
		p.StepText("step ", "x")
		p.Call(unix.SYS_GETPID, V(1), Slot(2).FD())
	}
	if &p.ops[0] != ops {
		t.Error("ops reallocated after Grow")
	}
	if p.Len() != 101 {
		t.Errorf("Len %d", p.Len())
	}
	// The slot argument survived the move into the grown slice.
	if o := p.ops[100]; o.from != 2 || o.args[1] != 2 || o.args[0] != 1 {
		t.Errorf("op %+v", o)
	}
}

// bytePtr turns an address the Program handed out back into a pointer.
func bytePtr(u uintptr) *byte { return *(**byte)(unsafe.Pointer(&u)) }

// An op is a cache line: a Program of a few hundred ops stays small.
func TestOpSize(t *testing.T) {
	if n := unsafe.Sizeof(op{}); n != 64 {
		t.Errorf("an op takes %d bytes", n)
	}
}
