package sysplan

import (
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Format writes the Program as a reader checks it: under each step's name,
// one line per op, the system call by name with its arguments as they
// will be passed — strings quoted, objects shown by their fields (their
// pointers left out), slots as $N — and what is done with its result and
// errors. Addresses do not appear, so the text is the same from run to
// run: golden files of plans are made with it.
func (p *Program) Format(w io.Writer) error {
	var b strings.Builder
	step := int32(-2)
	for i, o := range p.ops {
		if o.step != step {
			step = o.step
			name := "(no step)"
			if step >= 0 && int(step) < len(p.steps) {
				name = p.stepName(p.steps[step])
			}
			fmt.Fprintf(&b, "# %s\n", name)
		}
		fmt.Fprintf(&b, "%3d  ", i)
		switch o.nr {
		case opJump:
			fmt.Fprintf(&b, "goto %d\n", o.jumpTo)
			continue
		case opCheck:
			b.WriteString("fail if the received error field is negative\n")
			continue
		case opStore:
			fmt.Fprintf(&b, "store $%d in the message\n", o.args[0])
			continue
		}
		b.WriteString(syscallName(uintptr(o.nr)))
		b.WriteByte('(')
		n := argCount(o)
		for j := 0; j < n; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			if o.from&(1<<j) != 0 {
				fmt.Fprintf(&b, "$%d", o.args[j])
				continue
			}
			b.WriteString(p.formatArg(o.args[j]))
		}
		b.WriteByte(')')
		if o.into >= 0 {
			fmt.Fprintf(&b, " -> $%d", o.into)
		}
		if o.allow != 0 {
			fmt.Fprintf(&b, " allow %s", unix.ErrnoName(syscall.Errno(o.allow)))
		}
		if o.jumpTo >= 0 {
			e := "any error"
			if o.onErr != anyErrno {
				e = unix.ErrnoName(syscall.Errno(o.onErr))
			}
			fmt.Fprintf(&b, " on %s goto %d", e, o.jumpTo)
		}
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// argCount is the number of arguments to show: the system call's, else
// up to the last one that is not a literal 0.
func argCount(o op) int {
	if s, ok := syscalls[uintptr(o.nr)]; ok {
		return s.nargs
	}
	n := 6
	for n > 0 && o.from&(1<<(n-1)) == 0 && o.args[n-1] == 0 {
		n--
	}
	return n
}

// formatArg shows a literal argument: what it points to when it is one of
// the Program's pointers, else the number.
func (p *Program) formatArg(v uintptr) string {
	for _, r := range p.memory {
		if r.at != v {
			continue
		}
		switch obj := r.obj.(type) {
		case string:
			return strconv.Quote(obj)
		case []byte:
			return fmt.Sprintf("bytes(%x)", obj)
		default:
			return "&" + formatValue(reflect.ValueOf(obj).Elem())
		}
	}
	if int(v) < 0 {
		return strconv.Itoa(int(v))
	}
	if v >= 4096 {
		return fmt.Sprintf("%#x", v)
	}
	return strconv.FormatUint(uint64(v), 10)
}

// formatValue shows v with its pointers left out.
func formatValue(v reflect.Value) string {
	switch v.Kind() {
	case reflect.Pointer, reflect.UnsafePointer, reflect.Uintptr:
		if v.Kind() == reflect.Uintptr {
			return strconv.FormatUint(v.Uint(), 10)
		}
		return "ptr"
	case reflect.Struct:
		var parts []string
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			if f.Name == "_" || !f.IsExported() {
				continue
			}
			parts = append(parts, f.Name+": "+formatValue(v.Field(i)))
		}
		return v.Type().String() + "{" + strings.Join(parts, ", ") + "}"
	case reflect.Array, reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			b := make([]byte, v.Len())
			reflect.Copy(reflect.ValueOf(b), v)
			return fmt.Sprintf("bytes(%x)", trimZeros(b))
		}
		var parts []string
		for i := 0; i < v.Len(); i++ {
			parts = append(parts, formatValue(v.Index(i)))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	return fmt.Sprint(v.Interface())
}

// trimZeros drops the zero bytes at the end of b (a buffer filled only in
// part).
func trimZeros(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return b
}
