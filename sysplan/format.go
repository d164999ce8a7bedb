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
		case opResolve, opFDPath, opMountFlags, opRemountBelow, opReadInfo, opCloseRange:
			b.WriteString(p.formatLegacy(o))
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
			if o.nr == unix.SYS_OPENAT && j == 2 {
				b.WriteString(openFlags(uint64(o.args[j])))
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
		case pathBuffer:
			return fmt.Sprintf("path%d", int(obj))
		case statfsBuffer:
			return "statfs"
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
			if v.Type() == reflect.TypeFor[unix.OpenHow]() && f.Name == "Flags" {
				parts = append(parts, f.Name+": "+openFlags(v.Field(i).Uint()))
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

// openFlagNames are the O_* flags by name, compound ones (whose bits
// include another's) first; a flag that is 0 on this architecture is
// never shown.
var openFlagNames = []struct {
	bits uint64
	name string
}{
	{unix.O_TMPFILE, "O_TMPFILE"}, {unix.O_SYNC, "O_SYNC"},
	{unix.O_CREAT, "O_CREAT"}, {unix.O_EXCL, "O_EXCL"}, {unix.O_NOCTTY, "O_NOCTTY"},
	{unix.O_TRUNC, "O_TRUNC"}, {unix.O_APPEND, "O_APPEND"}, {unix.O_NONBLOCK, "O_NONBLOCK"},
	{unix.O_DSYNC, "O_DSYNC"}, {unix.O_DIRECT, "O_DIRECT"}, {unix.O_LARGEFILE, "O_LARGEFILE"},
	{unix.O_DIRECTORY, "O_DIRECTORY"}, {unix.O_NOFOLLOW, "O_NOFOLLOW"}, {unix.O_NOATIME, "O_NOATIME"},
	{unix.O_CLOEXEC, "O_CLOEXEC"}, {unix.O_PATH, "O_PATH"},
}

// openFlags shows open(2) flags by name: their values differ between
// architectures (O_DIRECTORY is 0x10000 on amd64, 0x4000 on arm64), the
// names do not, so a plan reads the same on every one.
func openFlags(v uint64) string {
	names := []string{[...]string{"O_RDONLY", "O_WRONLY", "O_RDWR", "O_ACCMODE"}[v&unix.O_ACCMODE]}
	v &^= unix.O_ACCMODE
	for _, f := range openFlagNames {
		if f.bits != 0 && v&f.bits == f.bits {
			names = append(names, f.name)
			v &^= f.bits
		}
	}
	if v != 0 {
		names = append(names, fmt.Sprintf("%#x", v))
	}
	return strings.Join(names, "|")
}

// trimZeros drops the zero bytes at the end of b (a buffer filled only in
// part).
func trimZeros(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return b
}

// formatLegacy shows an op of legacy.go as a line.
func (p *Program) formatLegacy(o op) string {
	arg := func(j int) string {
		if o.from&(1<<j) != 0 {
			return fmt.Sprintf("$%d", o.args[j])
		}
		return p.formatArg(o.args[j])
	}
	text := func(i uintptr) string {
		if i < uintptr(len(p.texts)) {
			return strconv.Quote(string(p.texts[i]))
		}
		return "?"
	}
	var s string
	switch o.nr {
	case opResolve:
		s = fmt.Sprintf("resolve_in_root(%s, %s, %s)", arg(0), text(o.args[1]), openFlags(uint64(o.args[2])))
	case opFDPath:
		s = fmt.Sprintf("path%d = %s + %s", o.args[1], text(o.args[2]), arg(0))
		if o.args[3] > 0 {
			s += " + \"/\" + " + text(o.args[3]-1)
		}
	case opMountFlags:
		s = fmt.Sprintf("mount_flags(statfs) | %#x", o.args[0])
	case opCloseRange:
		s = fmt.Sprintf("close_range(%d, %s, %#x) by /proc/self/fd", o.args[0], p.formatArg(o.args[1]), o.args[2])
	case opReadInfo:
		s = fmt.Sprintf("read %s", text(o.args[0]))
	case opRemountBelow:
		s = fmt.Sprintf("remount each mount it lists under %s | %#x", text(o.args[1]), o.args[2])
	}
	if o.into >= 0 {
		s += fmt.Sprintf(" -> $%d", o.into)
	}
	if o.jumpTo >= 0 {
		e := "any error"
		if o.onErr != anyErrno {
			e = unix.ErrnoName(syscall.Errno(o.onErr))
		}
		s += fmt.Sprintf(" on %s goto %d", e, o.jumpTo)
	}
	return s + "\n"
}
