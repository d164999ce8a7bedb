package forkinit

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"unsafe"
)

// TestMain lets TestStackGuard run the test binary as a process that
// overflows a child stack.
func TestMain(m *testing.M) {
	if os.Getenv("FORKINIT_TEST_OVERFLOW") != "" {
		overflow()
	}
	os.Exit(m.Run())
}

// overflow writes just below a child stack's lowest usable byte, as a
// child running off the end of its stack would.
func overflow() {
	s, err := newStack()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	lowest := unsafe.Pointer(&s.mem[s.guard])
	*(*byte)(lowest) = 1 // the stack itself is writable
	fmt.Fprintf(os.Stderr, "guard at %#x\n", uintptr(lowest)-1)
	*(*byte)(unsafe.Add(lowest, -1)) = 1
	os.Exit(0)
}

// TestStackGuard: a write past a child stack's end faults on its guard
// page rather than landing in other memory.
func TestStackGuard(t *testing.T) {
	s, err := newStack()
	if err != nil {
		t.Fatal(err)
	}
	start := uintptr(unsafe.Pointer(&s.mem[0]))
	if top := s.top(); top%16 != 0 || top < start+uintptr(s.guard)+childStack-128 || top >= start+uintptr(len(s.mem)) {
		t.Errorf("stack pointer %#x outside [%#x, %#x) or misaligned", top, start+uintptr(s.guard), start+uintptr(len(s.mem)))
	}
	s.free()
	if s.mem != nil {
		t.Error("free left the mapping")
	}

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "FORKINIT_TEST_OVERFLOW=1")
	out, err := cmd.CombinedOutput()
	guard, _, _ := strings.Cut(strings.TrimPrefix(string(out), "guard at "), "\n")
	if err == nil || !strings.Contains(string(out), "SIGSEGV") || !strings.Contains(string(out), "addr="+guard) {
		t.Fatalf("a write to the guard page (%s) did not fault there: %v\n%s", guard, err, out)
	}
}
