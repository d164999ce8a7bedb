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
	"slices"
	"strings"
	"syscall"
	"unsafe"
)

// Slot names a register holding the result of an op (a file descriptor)
// for use as an argument of later ops.
type Slot int8

// NumSlots is how many slots a Program has.
const NumSlots = 16

// noSlot marks a result that is not a slot.
const noSlot Slot = -1

// Pseudo system call numbers for ops the executor does itself.
const (
	// opJump continues at the op in the first argument.
	opJump = 0xfff0 + iota
	// opCheck fails with errno -*cells[first argument] when that is
	// negative (a netlink acknowledgement's error field).
	opCheck
	// opStore writes the slot in the first argument to
	// *cells[second argument] (a descriptor passed with SCM_RIGHTS).
	opStore
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

// An op takes 64 bytes, a cache line (the fields are in the order that
// leaves no padding).
type op struct {
	args [6]uintptr
	nr   uint16 // system call numbers are below opJump on every architecture
	// allow is an errno treated as success (mkdir's EEXIST).
	allow uint16
	// onErr and jumpTo: an error equal to onErr (any error when onErr is
	// anyErrno) continues at op jumpTo instead of failing.
	onErr uint16
	from  uint8 // bit i set: args[i] is a slot, whose content is the argument
	into  Slot  // the result goes to this slot unless noSlot
	// jumpTo is the op to continue at (a label until Finish), or -1.
	jumpTo int32
	step   int32 // index into Program.steps, or -1
}

// anyErrno as onErr matches every error (errnos are below 4096).
const anyErrno = 0xffff

// Program is a list of ops and the memory they refer to.
//
// Building one is on the critical path of a sandbox's start, so it
// allocates little: ops in one growing slice (see Grow), strings in chunks
// of an arena, and step names kept as their pieces or their format and
// arguments, formatted only when Describe reports a failure.
type Program struct {
	ops   []op
	steps []step
	// parts holds the pieces of the steps' names (see step).
	parts  []string
	args   [][]any // the arguments of formatted steps
	step   int32
	labels []int32  // op index of each label, -1 until marked
	keep   []any    // everything ops point into, beside the arena
	cells  []*int32 // what opCheck ops read and opStore ops write
	// arena is the chunk strings and bytes are copied to; chunks keeps
	// every chunk alive. A chunk is never reallocated: the ops hold
	// pointers into it.
	arena  []byte
	chunks [][]byte
	// memory records what each pointer given to ops points to, for
	// Format.
	memory []region
	// legacy and texts are what the ops of kernels without the new
	// mount API use (legacy.go).
	legacy *legacyState
	texts  [][]byte
	Slots  [NumSlots]uintptr
}

// region is memory an op's argument may point to: a string (Str), bytes
// (Bytes) or an object (Keep).
type region struct {
	at  uintptr
	obj any // the string, the []byte or a pointer to the object
}

// A step is the name of the ops added after it, in pieces or as a format
// and its arguments, put together by Describe.
type step struct {
	pre    Prefix
	off, n int32 // parts[off:off+n]: the pieces, or the format when args >= 0
	args   int32 // index into Program.args, or -1 for pieces
}

// A Prefix is the beginning of the names of steps, kept once for all of
// them (see StepUnder).
type Prefix struct{ off, n int32 }

// chunkSize is the size of an arena chunk; a string larger than a quarter
// of it gets an allocation of its own.
const chunkSize = 4096

// Grow makes room for n more ops, and for their steps, names and labels
// in the proportions fsetup's ops have, so that a Program whose size is
// known in advance is built without reallocating.
func (p *Program) Grow(n int) {
	if n <= 0 {
		return
	}
	p.ops = slices.Grow(p.ops, n)
	p.steps = slices.Grow(p.steps, n*3/4)
	p.parts = slices.Grow(p.parts, 2*n)
	p.labels = slices.Grow(p.labels, n/6)
}

// Step names the ops added from now on, for error messages: "bind %s".
// The format and arguments are kept and formatted only by Describe when an
// op fails; arguments of other than basic types (strings, numbers, bools),
// whose value might change meanwhile, are formatted now.
func (p *Program) Step(format string, a ...any) {
	for _, v := range a {
		if !plain(v) {
			p.StepText(fmt.Sprintf(format, a...))
			return
		}
	}
	if len(a) == 0 && !strings.Contains(format, "%") {
		p.StepText(format)
		return
	}
	p.args = append(p.args, append([]any(nil), a...))
	p.parts = append(p.parts, format)
	p.steps = append(p.steps, step{off: int32(len(p.parts) - 1), n: 1, args: int32(len(p.args) - 1)})
	p.step = int32(len(p.steps) - 1)
}

// plain reports whether v is of a basic type: its value cannot change.
func plain(v any) bool {
	switch v.(type) {
	case string, bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, uintptr, float32, float64:
		return true
	}
	return false
}

// StepText names the ops added from now on with the concatenation of
// parts, which Describe joins when an op fails; it allocates nothing but
// room for the pieces.
func (p *Program) StepText(parts ...string) { p.StepUnder(Prefix{}, parts...) }

// Prefix keeps the concatenation of parts, in pieces, to begin the names
// of steps with.
func (p *Program) Prefix(parts ...string) Prefix {
	p.parts = append(p.parts, parts...)
	return Prefix{off: int32(len(p.parts) - len(parts)), n: int32(len(parts))}
}

// StepUnder names the ops added from now on with pre, then, when parts are
// given, ": " and their concatenation: a part of what pre names ("bind /a
// on /b: open_tree").
func (p *Program) StepUnder(pre Prefix, parts ...string) {
	p.parts = append(p.parts, parts...)
	p.steps = append(p.steps, step{pre: pre, off: int32(len(p.parts) - len(parts)), n: int32(len(parts)), args: -1})
	p.step = int32(len(p.steps) - 1)
}

// Len is the number of ops so far.
func (p *Program) Len() int { return len(p.ops) }

// alloc returns n bytes of the arena, which live as long as the Program.
func (p *Program) alloc(n int) []byte {
	if n > chunkSize/4 {
		b := make([]byte, n)
		p.chunks = append(p.chunks, b)
		return b
	}
	if cap(p.arena)-len(p.arena) < n {
		// A new chunk; the old one stays where it is, in chunks.
		p.arena = make([]byte, 0, chunkSize)
		p.chunks = append(p.chunks, p.arena)
	}
	i := len(p.arena)
	p.arena = p.arena[:i+n]
	return p.arena[i : i+n : i+n]
}

// Str returns a pointer to a NUL-terminated copy of s that lives as long as
// the Program.
func (p *Program) Str(s string) uintptr {
	b := p.alloc(len(s) + 1)
	copy(b, s)
	b[len(s)] = 0
	at := uintptr(unsafe.Pointer(&b[0]))
	p.memory = append(p.memory, region{at: at, obj: s})
	return at
}

// Bytes returns a pointer to a copy of b (b must not be empty) that lives
// as long as the Program.
func (p *Program) Bytes(b []byte) uintptr {
	c := p.alloc(len(b))
	copy(c, b)
	at := uintptr(unsafe.Pointer(&c[0]))
	p.memory = append(p.memory, region{at: at, obj: c})
	return at
}

// Keep keeps the object ptr points to alive as long as the Program and
// returns its address; ptr must point into the heap (escape it with new).
func Keep[T any](p *Program, ptr *T) uintptr {
	p.keep = append(p.keep, ptr)
	at := uintptr(unsafe.Pointer(ptr))
	p.memory = append(p.memory, region{at: at, obj: ptr})
	return at
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
	if nr >= opJump && nr > opLast {
		panic("sysplan: system call number out of range")
	}
	o := op{nr: uint16(nr), into: noSlot, jumpTo: -1, step: p.step}
	for i, a := range args {
		if a.slot >= 0 {
			o.args[i], o.from = uintptr(a.slot), o.from|1<<i
		} else {
			o.args[i] = a.v
		}
	}
	p.ops = append(p.ops, o)
	return Op{p, len(p.ops) - 1}
}

// Into stores the op's result (a new descriptor) in slot s.
func (o Op) Into(s Slot) Op { o.p.ops[o.i].into = s; return o }

// Allow treats errno e as success.
func (o Op) Allow(e syscall.Errno) Op { o.p.ops[o.i].allow = uint16(e); return o }

// OnError continues at l instead of failing when the op fails with e.
func (o Op) OnError(e syscall.Errno, l Label) Op {
	o.p.ops[o.i].onErr, o.p.ops[o.i].jumpTo = uint16(e), int32(l)
	return o
}

// OnAnyError continues at l whatever error the op fails with.
func (o Op) OnAnyError(l Label) Op {
	o.p.ops[o.i].onErr, o.p.ops[o.i].jumpTo = anyErrno, int32(l)
	return o
}

// NewLabel makes a label to be bound with Mark.
func (p *Program) NewLabel() Label {
	p.labels = append(p.labels, -1)
	return Label(len(p.labels) - 1)
}

// Mark binds l to the next op added.
func (p *Program) Mark(l Label) { p.labels[l] = int32(len(p.ops)) }

// Jump continues at l.
func (p *Program) Jump(l Label) {
	o := p.Call(opJump)
	p.ops[o.i].jumpTo = int32(l)
}

// FailOnNegative makes the program fail with errno -*src when, as it runs,
// *src holds a negative number: the error field of a netlink
// acknowledgement that an earlier op received. src must live in the heap
// (a field of an object given to Keep).
func (p *Program) FailOnNegative(src *int32) {
	p.cells = append(p.cells, src)
	p.Call(opCheck, V(uintptr(len(p.cells)-1)))
}

// Store writes the content of slot s, as the program runs, to *dst: a
// descriptor's number in a message that passes it on. dst must live in the
// heap (inside an object given to Keep).
func (p *Program) Store(s Slot, dst *int32) {
	p.cells = append(p.cells, dst)
	p.Call(opStore, V(uintptr(s)), V(uintptr(len(p.cells)-1)))
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
		step = p.stepName(p.steps[p.ops[at].step])
	}
	return &Failure{Step: step, Errno: errno}
}

// stepName puts a step's name together.
func (p *Program) stepName(s step) string {
	parts := p.parts[s.off : s.off+s.n]
	if s.args >= 0 {
		return fmt.Sprintf(parts[0], p.args[s.args]...)
	}
	name := strings.Join(parts, "")
	if s.pre.n == 0 {
		return name
	}
	pre := strings.Join(p.parts[s.pre.off:s.pre.off+s.pre.n], "")
	if name == "" {
		return pre
	}
	return pre + ": " + name
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
// Nothing in it can panic, which in a forked child would run Go's panic
// code on a stack and a runtime that are not its own: every index is an
// unsigned value checked against the length, or reduced modulo an array's,
// so the compiler proves it in range (forkinit's TestChildCode checks the
// compiled code). A jump or a cell out of range, which Finish and the
// builders never make, fails the op with EFAULT.
//
//go:nosplit
//go:norace
func (p *Program) Exec() (int, syscall.Errno) {
	ops, cells := p.ops, p.cells
	for i := uint(0); i < uint(len(ops)); {
		o := &ops[i]
		a := o.args
		for j := 0; j < 6; j++ {
			if o.from&(1<<j) != 0 {
				a[j] = p.Slots[a[j]%NumSlots]
			}
		}
		switch o.nr {
		case opJump:
			i = uint(o.jumpTo)
			continue
		case opStore:
			if a[1] >= uintptr(len(cells)) {
				return int(i), syscall.EFAULT
			}
			*cells[a[1]] = int32(p.Slots[a[0]%NumSlots])
			i++
			continue
		case opCheck:
			if a[0] >= uintptr(len(cells)) {
				return int(i), syscall.EFAULT
			}
			if v := *cells[a[0]]; v < 0 {
				return int(i), syscall.Errno(-v)
			}
			i++
			continue
		}
		var r uintptr
		var e syscall.Errno
		switch o.nr {
		case opResolve:
			r, e = p.resolve(a[0], a[1], a[2])
			p.legacy.closeWalk()
		case opFDPath:
			e = p.fdPath(a[0], a[1], a[2], a[3])
		case opMountFlags:
			r, e = p.mountFlags(a[0])
		case opReadInfo:
			e = p.readInfo(a[0])
		case opCloseRange:
			if e = p.closeRange(a[0], a[1], a[2]); e == 0 {
				e = p.legacy.closeListed()
			}
		case opRemountBelow:
			e = p.remountBelow(a[1], a[2])
		default:
			r, _, e = syscall.RawSyscall6(uintptr(o.nr), a[0], a[1], a[2], a[3], a[4], a[5])
		}
		if e != 0 && e != syscall.Errno(o.allow) {
			if o.jumpTo >= 0 && (o.onErr == anyErrno || syscall.Errno(o.onErr) == e) {
				i = uint(o.jumpTo)
				continue
			}
			return int(i), e
		}
		if o.into >= 0 && e == 0 {
			p.Slots[uint8(o.into)%NumSlots] = r
		}
		i++
	}
	return -1, 0
}
