// Package sysplan prepares a list of system calls in ordinary Go code and
// runs it where Go's runtime must not be used: in a child made by fork
// without exec, which has one thread, a copy of the parent's memory and no
// scheduler, allocator or stack growth.
//
// A Program is built by the parent: every string and structure an op needs
// is allocated then and kept alive by the Program, and each op records
// which step it belongs to, so a failure in the child comes back as an op
// index and an errno that the parent turns into a message naming the step
// and the path. Ops pass file descriptors to later ops through numbered
// slots, and may jump on an expected error, which is all the control flow
// a sandbox's setup needs (bubblewrap's setup is straight-line code too).
//
// The same Program also runs in an ordinary Go process (see Run), so there
// is one description of each setup step, not one per kind of process.
package sysplan

import (
	"fmt"
	"syscall"
	"unsafe"
)

// Slot names a register holding the result of an op (a file descriptor)
// for use as an argument of later ops.
type Slot int8

// NumSlots is how many slots a Program has.
const NumSlots = 16

// noSlot marks an argument or result that is not a slot.
const noSlot Slot = -1

// Pseudo system call numbers for ops the executor does itself.
const (
	// opJump continues at the op in the first argument.
	opJump = 1<<20 + iota
	// opCheck fails with errno -*cells[first argument] when that is
	// negative (a netlink acknowledgement's error field).
	opCheck
)

// Arg is an op's argument: a value, or the content of a slot when the op
// runs.
type Arg struct {
	v    uintptr
	slot Slot
}

// V is a literal argument.
func V(v uintptr) Arg { return Arg{v: v, slot: noSlot} }

// Int is a literal signed argument (AT_FDCWD, -1).
func Int(v int) Arg { return V(uintptr(v)) }

// FD reads the argument from slot s when the op runs.
func (s Slot) FD() Arg { return Arg{slot: s} }

// Label is a position in a Program, bound later with Mark.
type Label int

type op struct {
	nr   uintptr
	args [6]uintptr
	from [6]Slot // argument i comes from slot from[i] unless noSlot
	into Slot    // the result goes to this slot unless noSlot
	// allow is an errno treated as success (mkdir's EEXIST).
	allow syscall.Errno
	// onErr and jumpTo: an error equal to onErr (any error when onErr is
	// anyErrno) continues at op jumpTo instead of failing.
	onErr  syscall.Errno
	jumpTo int
	step   int32 // index into Program.steps
}

// anyErrno as onErr matches every error.
const anyErrno = ^syscall.Errno(0)

// Program is a list of ops and the memory they refer to.
type Program struct {
	ops    []op
	steps  []string
	step   int32
	labels []int    // op index of each label, -1 until marked
	keep   []any    // everything ops point into
	cells  []*int32 // what opCheck ops read
	Slots  [NumSlots]uintptr
}

// Step names the ops added from now on, for error messages: "bind /usr".
func (p *Program) Step(format string, a ...any) {
	p.steps = append(p.steps, fmt.Sprintf(format, a...))
	p.step = int32(len(p.steps) - 1)
}

// Len is the number of ops so far.
func (p *Program) Len() int { return len(p.ops) }

// Str returns a pointer to a NUL-terminated copy of s that lives as long as
// the Program.
func (p *Program) Str(s string) uintptr {
	b := make([]byte, len(s)+1)
	copy(b, s)
	p.keep = append(p.keep, b)
	return uintptr(unsafe.Pointer(&b[0]))
}

// Bytes returns a pointer to a copy of b (b must not be empty).
func (p *Program) Bytes(b []byte) uintptr {
	c := append([]byte(nil), b...)
	p.keep = append(p.keep, c)
	return uintptr(unsafe.Pointer(&c[0]))
}

// Keep keeps the object ptr points to alive as long as the Program and
// returns its address; ptr must point into the heap (escape it with new).
func Keep[T any](p *Program, ptr *T) uintptr {
	p.keep = append(p.keep, ptr)
	return uintptr(unsafe.Pointer(ptr))
}

// Op is a handle on the last op added, to refine it.
type Op struct {
	p *Program
	i int
}

// Call adds the system call nr with args.
func (p *Program) Call(nr uintptr, args ...Arg) Op {
	if len(args) > 6 {
		panic("sysplan: more than six arguments")
	}
	o := op{nr: nr, into: noSlot, jumpTo: -1, step: p.step}
	for i := range o.from {
		o.from[i] = noSlot
	}
	for i, a := range args {
		o.args[i], o.from[i] = a.v, a.slot
	}
	p.ops = append(p.ops, o)
	return Op{p, len(p.ops) - 1}
}

// Into stores the op's result (a new descriptor) in slot s.
func (o Op) Into(s Slot) Op { o.p.ops[o.i].into = s; return o }

// Allow treats errno e as success.
func (o Op) Allow(e syscall.Errno) Op { o.p.ops[o.i].allow = e; return o }

// OnError continues at l instead of failing when the op fails with e.
func (o Op) OnError(e syscall.Errno, l Label) Op {
	o.p.ops[o.i].onErr, o.p.ops[o.i].jumpTo = e, int(l)
	return o
}

// OnAnyError continues at l whatever error the op fails with.
func (o Op) OnAnyError(l Label) Op { return o.OnError(anyErrno, l) }

// NewLabel makes a label to be bound with Mark.
func (p *Program) NewLabel() Label {
	p.labels = append(p.labels, -1)
	return Label(len(p.labels) - 1)
}

// Mark binds l to the next op added.
func (p *Program) Mark(l Label) { p.labels[l] = len(p.ops) }

// Jump continues at l.
func (p *Program) Jump(l Label) {
	o := p.Call(opJump)
	p.ops[o.i].jumpTo = int(l)
}

// FailOnNegative makes the program fail with errno -*src when, as it runs,
// *src holds a negative number: the error field of a netlink
// acknowledgement that an earlier op received. src must live in the heap
// (a field of an object given to Keep).
func (p *Program) FailOnNegative(src *int32) {
	p.cells = append(p.cells, src)
	p.Call(opCheck, V(uintptr(len(p.cells)-1)))
}

// Finish resolves the labels; the Program must not be changed afterwards.
func (p *Program) Finish() {
	for i := range p.ops {
		o := &p.ops[i]
		if o.jumpTo < 0 {
			continue
		}
		at := p.labels[o.jumpTo]
		if at < 0 {
			panic("sysplan: label never marked")
		}
		o.jumpTo = at
	}
}

// Failure is an op that failed: its step and errno.
type Failure struct {
	Step  string
	Errno syscall.Errno
}

func (f *Failure) Error() string { return fmt.Sprintf("%s: %v", f.Step, f.Errno) }

func (f *Failure) Unwrap() error { return f.Errno }

// Describe turns an op index and errno reported by Exec into a Failure.
func (p *Program) Describe(at int, errno syscall.Errno) *Failure {
	step := "setup"
	if at >= 0 && at < len(p.ops) && p.ops[at].step >= 0 && int(p.ops[at].step) < len(p.steps) {
		step = p.steps[p.ops[at].step]
	}
	return &Failure{Step: step, Errno: errno}
}

// Run executes the Program in the calling process (an ordinary Go process,
// on a thread it has locked when the ops act per thread) and returns the
// first failure.
func (p *Program) Run() error {
	if at, errno := p.Exec(); at >= 0 {
		return p.Describe(at, errno)
	}
	return nil
}

// Exec executes the ops in order. It returns -1 and 0 when all succeeded,
// else the index of the op that failed and its errno. It makes no call
// into Go's runtime and so may run in a child forked without exec.
//
//go:nosplit
//go:norace
func (p *Program) Exec() (int, syscall.Errno) {
	ops := p.ops
	for i := 0; i < len(ops); {
		o := &ops[i]
		var a [6]uintptr
		for j := 0; j < 6; j++ {
			if o.from[j] >= 0 {
				a[j] = p.Slots[o.from[j]]
			} else {
				a[j] = o.args[j]
			}
		}
		switch o.nr {
		case opJump:
			i = o.jumpTo
			continue
		case opCheck:
			if v := *p.cells[a[0]]; v < 0 {
				return i, syscall.Errno(-v)
			}
			i++
			continue
		}
		r, _, e := syscall.RawSyscall6(o.nr, a[0], a[1], a[2], a[3], a[4], a[5])
		if e != 0 && e != o.allow {
			if o.jumpTo >= 0 && (o.onErr == anyErrno || o.onErr == e) {
				i = o.jumpTo
				continue
			}
			return i, e
		}
		if o.into >= 0 && e == 0 {
			p.Slots[o.into] = r
		}
		i++
	}
	return -1, 0
}
