package bwrapcli

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/spec"
)

// Reporter writes what bwrap writes on --info-fd and --json-status-fd, at
// the same moments: once the sandbox's first process exists (its pid on
// the host and the ids of the namespaces made for it), and, on the status
// descriptor, the exit code at the end. It also waits on --block-fd before
// the sandbox is built.
type Reporter struct {
	Info, JSON, Block int // descriptors, or -1
	// UsernsBlock is waited on first, while the caller writes the
	// sandbox's id maps (--userns-block-fd), or -1.
	UsernsBlock int
	Spec        *spec.Spec
}

// nsOrder are the namespaces bwrap reports, in its order, by the name
// /proc/PID/ns uses and the namespace rbox calls it.
var nsOrder = []struct{ proc, ns string }{
	{"cgroup", spec.NSCgroup}, {"ipc", spec.NSIPC}, {"mnt", spec.NSMount},
	{"net", spec.NSNet}, {"pid", spec.NSPID}, {"uts", spec.NSUTS},
}

// Started reports pid 1's pid and namespaces, then waits for data on the
// --userns-block-fd and --block-fd descriptors.
func (r *Reporter) Started(pid int) error {
	type field struct {
		key string
		val uint64
	}
	fields := []field{{"child-pid", uint64(pid)}}
	for _, n := range nsOrder {
		if n.ns != spec.NSMount && r.Spec.Shares(n.ns) {
			continue
		}
		var st unix.Stat_t
		if err := unix.Stat("/proc/"+strconv.Itoa(pid)+"/ns/"+n.proc, &st); err != nil {
			return fmt.Errorf("read the sandbox's %s namespace: %w", n.proc, err)
		}
		fields = append(fields, field{n.proc + "-namespace", st.Ino})
	}
	if r.Info >= 0 {
		var b strings.Builder
		b.WriteString("{\n")
		for i, f := range fields {
			sep := ","
			if i == len(fields)-1 {
				sep = ""
			}
			fmt.Fprintf(&b, "    %q: %d%s\n", f.key, f.val, sep)
		}
		b.WriteString("}\n")
		writeAll(r.Info, b.String())
	}
	if r.JSON >= 0 {
		parts := make([]string, len(fields))
		for i, f := range fields {
			parts[i] = fmt.Sprintf("%q: %d", f.key, f.val)
		}
		writeAll(r.JSON, "{ "+strings.Join(parts, ", ")+" }\n")
	}
	waitFD(r.UsernsBlock)
	waitFD(r.Block)
	return nil
}

// waitFD reads one byte from fd (none: -1), or until it is closed.
func waitFD(fd int) {
	if fd < 0 {
		return
	}
	var b [1]byte
	for {
		if _, err := unix.Read(fd, b[:]); err != unix.EINTR {
			return
		}
	}
}

// Exited reports the command's exit code on the status descriptor.
func (r *Reporter) Exited(code int) {
	if r.JSON >= 0 {
		writeAll(r.JSON, fmt.Sprintf("{ \"exit-code\": %d }\n", code))
	}
}

// writeAll writes s to fd; a reader that went away is not rbox's failure,
// as it is not bwrap's.
// (No os.File: its finalizer would close the caller's descriptor.)
func writeAll(fd int, s string) {
	b := []byte(s)
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			return
		}
		b = b[n:]
	}
}
