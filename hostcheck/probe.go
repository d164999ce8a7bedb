package hostcheck

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ProbeArg0 marks a re-execution of the program as a check probe. A program
// that calls Run must hand such a process to ProbeMain before anything else:
//
//	if len(os.Args) == 2 && os.Args[0] == hostcheck.ProbeArg0 {
//		hostcheck.ProbeMain(os.Args[1])
//	}
const ProbeArg0 = "rbox-check-probe"

// ProbeTimeout bounds each probe, from the clone to the child's exit,
// including the id map helpers the parent runs for it.
var ProbeTimeout = 10 * time.Second

// goFD is the child's end of the pipe on which the parent says "go" once
// the child's id maps are written.
const goFD = 3

// Environment variables that carry a probe's parameters into the child.
const (
	envNS        = "RBOX_PROBE_NS"
	envFuseTool  = "RBOX_PROBE_FUSE_OVERLAYFS"
	envSwitchIDs = "RBOX_PROBE_SWITCH_IDS"
)

// probeFunc is the part of a probe that runs inside the new namespaces. It
// returns what it saw, or why it failed.
type probeFunc func() (string, error)

// probes are the child sides, by the name given as argv[1].
var probes = map[string]probeFunc{
	"ns":             probeNS,
	"ids":            probeIDs,
	"proc":           probeProc,
	"overlay":        probeOverlay,
	"fuse-overlayfs": probeFuseOverlay,
	"tun":            probeTun,
	"nftables":       probeNftables,
	"timens":         probeTimeNS,
}

// Child exit codes: 0 success, exitProbeFailed with the reason on stdout.
const (
	exitProbeFailed = 1
	exitNoGo        = 3
)

// ProbeMain runs the named probe in this process, which the parent started
// in new namespaces, and exits. It waits for the parent's go-ahead first,
// so the id maps are in place, and prints one line: what the probe saw, or
// why it failed.
func ProbeMain(name string) {
	gate := os.NewFile(goFD, "go")
	var buf [2]byte
	if _, err := io.ReadFull(gate, buf[:]); err != nil || string(buf[:]) != "go" {
		// The parent gave up (its map writing failed) and said so itself.
		os.Exit(exitNoGo)
	}
	gate.Close()
	fn, ok := probes[name]
	if !ok {
		fmt.Printf("unknown probe %q\n", name)
		os.Exit(exitProbeFailed)
	}
	out, err := fn()
	if err != nil {
		fmt.Println(oneLine(err.Error()))
		os.Exit(exitProbeFailed)
	}
	fmt.Println(oneLine(out))
	os.Exit(0)
}

// probe describes one child: which namespaces it gets and what the parent
// does before letting it run.
type probe struct {
	name  string
	flags uintptr
	// caps keeps every capability across the re-exec: the maps are written
	// only after it, and without them the probe could not mount.
	caps bool
	// maps writes the child's id maps; nil leaves them unwritten.
	maps func(ctx context.Context, pid int) error
	env  []string
}

// probeError is a probe that did not succeed: the step that failed and
// what the kernel (or the probe) said.
type probeError struct {
	step  string
	errno syscall.Errno // 0 when not a plain system call error
	msg   string
}

func (e *probeError) Error() string { return e.step + ": " + e.msg }

// run starts the child, writes its maps, lets it go and returns its report.
// Nothing outlives it: the child is killed at the timeout (with its pid
// namespace, when it has one), and it dies with the calling thread too.
func (p probe) run() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ProbeTimeout)
	defer cancel()
	gateR, gateW, err := os.Pipe()
	if err != nil {
		return "", &probeError{step: "pipe", msg: err.Error()}
	}
	defer gateW.Close()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "/proc/self/exe")
	cmd.Args = []string{ProbeArg0, p.name}
	cmd.Env = append([]string{}, p.env...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.ExtraFiles = []*os.File{gateR}
	cmd.WaitDelay = time.Second
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: p.flags, Pdeathsig: unix.SIGKILL}
	if p.caps {
		cmd.SysProcAttr.AmbientCaps = allCaps()
	}
	err = cmd.Start()
	gateR.Close()
	if err != nil {
		e := &probeError{step: "clone(" + flagNames(p.flags) + ")", msg: err.Error()}
		if errors.As(err, &e.errno) {
			e.msg = e.errno.Error()
		}
		return "", e
	}
	if p.maps != nil {
		if err := p.maps(ctx, cmd.Process.Pid); err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			e := &probeError{step: "id maps", msg: err.Error()}
			errors.As(err, &e.errno)
			return "", e
		}
	}
	if _, err := gateW.Write([]byte("go")); err != nil {
		_ = cmd.Process.Kill()
	}
	gateW.Close()
	err = cmd.Wait()
	out := strings.TrimSpace(stdout.String())
	switch {
	case err == nil:
		return out, nil
	case ctx.Err() != nil:
		return "", &probeError{step: p.name, msg: fmt.Sprintf("timed out after %v", ProbeTimeout)}
	case cmd.ProcessState != nil && cmd.ProcessState.ExitCode() == exitProbeFailed:
		e := &probeError{step: p.name, msg: out}
		e.errno = errnoIn(out)
		return "", e
	default:
		msg := err.Error()
		if s := strings.TrimSpace(stderr.String()); s != "" {
			msg += ": " + firstLine(s)
		}
		return "", &probeError{step: p.name, msg: msg}
	}
}

// errnoIn recognizes the errors whose fix differs from the report of a
// child, which reaches the parent as text.
func errnoIn(msg string) syscall.Errno {
	for _, e := range []syscall.Errno{unix.EPERM, unix.EACCES, unix.ENOENT, unix.ENODEV, unix.ENXIO, unix.EINVAL, unix.ENOSYS, unix.EROFS, unix.EBUSY} {
		if strings.HasSuffix(msg, e.Error()) {
			return e
		}
	}
	return 0
}

// allCaps lists every capability up to the kernel's last.
func allCaps() []uintptr {
	last := 40
	if b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			last = n
		}
	}
	out := make([]uintptr, last+1)
	for i := range out {
		out[i] = uintptr(i)
	}
	return out
}

var cloneFlagNames = []struct {
	flag uintptr
	name string
}{
	{unix.CLONE_NEWUSER, "CLONE_NEWUSER"}, {unix.CLONE_NEWNS, "CLONE_NEWNS"},
	{unix.CLONE_NEWPID, "CLONE_NEWPID"}, {unix.CLONE_NEWNET, "CLONE_NEWNET"},
	{unix.CLONE_NEWUTS, "CLONE_NEWUTS"}, {unix.CLONE_NEWIPC, "CLONE_NEWIPC"},
	{unix.CLONE_NEWCGROUP, "CLONE_NEWCGROUP"}, {unix.CLONE_NEWTIME, "CLONE_NEWTIME"},
}

func flagNames(flags uintptr) string {
	var names []string
	for _, f := range cloneFlagNames {
		if flags&f.flag != 0 {
			names = append(names, f.name)
		}
	}
	return strings.Join(names, "|")
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
