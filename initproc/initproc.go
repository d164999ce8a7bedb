// Package initproc is the sandbox's pid 1: the re-executed rbox that waits
// for its id maps, builds the sandbox, starts the command and then reaps
// zombies and forwards signals until the command exits.
//
// The main goroutine is locked to the main thread for the whole life of the
// process (see Lock). Everything that must hold for the payload only —
// time namespace, capability limits, no_new_privs, the seccomp filter — is
// set on that thread just before it forks the payload, so the setup never
// runs under those limits, the payload always does, and pid 1's other
// threads keep what they need to reap and signal.
package initproc

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/caps"
	"github.com/rbox-dev/rbox/console"
	"github.com/rbox-dev/rbox/fsetup"
	"github.com/rbox-dev/rbox/network"
	"github.com/rbox-dev/rbox/spec"
)

// Arg0 marks a re-execution of rbox as the sandbox's pid 1.
const Arg0 = "rbox-init"

// Exit codes, as documented in docs/reference.md.
const (
	ExitSetupFailed   = 125
	ExitCannotExecute = 126
	ExitNotFound      = 127
)

// Start is what the parent sends once the child's id maps are written.
type Start struct {
	// SetgroupsDenied mirrors the parent's choice: setgroups(2) fails then.
	SetgroupsDenied bool `json:"setgroups_denied,omitempty"`
	// ConsoleSocket, when not zero, is the fd of a unix socket on which pid
	// 1 sends the master side of the payload's pseudo-terminal.
	ConsoleSocket int `json:"console_socket,omitempty"`
	// Net is what pid 1 does to finish the network from inside.
	Net network.ChildConfig `json:"net"`
}

// Forwarded are the signals rbox passes on to pid 1, and pid 1 to the
// command (on both kinds of pid 1).
var Forwarded = []os.Signal{unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH}

// Lock pins the main goroutine to the main thread. Called from an init
// function, so it holds from the first line of main.
func Lock() { runtime.LockOSThread() }

// Main runs pid 1 and never returns. args[0] names the fd carrying the
// spec; args[1], when given, the pipe on which to tell the parent that it
// may write the id maps (see sandbox/exe.go).
func Main(args []string) {
	if len(args) == 2 {
		if err := readyForMaps(args[1]); err != nil {
			os.Exit(fail(ExitSetupFailed, err))
		}
	}
	os.Exit(run(args[0]))
}

// readyForMaps makes pid 1 dumpable again and tells the parent. Executing a
// file it could not read (rbox's sealed copy) left it non-dumpable, which
// makes /proc/PID root's and newuidmap refuse it. The payload does not
// exist yet; limitThread makes pid 1 non-dumpable again before it starts.
func readyForMaps(fdArg string) error {
	fd, err := strconv.Atoi(fdArg)
	if err != nil {
		return fmt.Errorf("bad ready fd %q", fdArg)
	}
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set dumpable: %w", err)
	}
	ready := os.NewFile(uintptr(fd), "ready")
	defer ready.Close()
	if _, err := ready.Write([]byte{1}); err != nil {
		return fmt.Errorf("tell the parent: %w", err)
	}
	return nil
}

func fail(code int, err error) int {
	if bwrapErrors { // rbox bwrap: bwrap's shape and exit code
		fmt.Fprintf(os.Stderr, "bwrap: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "rbox: %v\n", err)
	return code
}

// bwrapErrors is the Spec's BwrapErrors, for fail.
var bwrapErrors bool

func run(fdArg string) int {
	// ps shows the main thread's name; "exe" (from /proc/self/exe) says
	// nothing.
	_ = unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&[]byte(Arg0 + "\x00")[0])), 0, 0, 0)
	fd, err := strconv.Atoi(fdArg)
	if err != nil {
		return fail(ExitSetupFailed, fmt.Errorf("bad spec fd %q", fdArg))
	}
	pipe := os.NewFile(uintptr(fd), "spec")
	dec := json.NewDecoder(pipe)
	var s spec.Spec
	if err := dec.Decode(&s); err != nil {
		return fail(ExitSetupFailed, fmt.Errorf("read sandbox spec: %w", err))
	}
	bwrapErrors = s.BwrapErrors
	var start Start
	// Blocks until the parent has written our uid and gid maps.
	if err := dec.Decode(&start); err != nil {
		// The parent failed and has said why, or died.
		return ExitSetupFailed
	}
	pipe.Close()
	// Whatever else was inherited must not reach the payload; the fds it
	// should keep are dup'ed into place when it starts.
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return fail(ExitSetupFailed, fmt.Errorf("close_range: %w", err))
	}
	if err := setup(&s, &start); err != nil {
		return fail(ExitSetupFailed, err)
	}
	return superviseCommand(&s, &start)
}

// setup builds the sandbox around this process, in the order the kernel
// needs: identity, host name, network, filesystem.
func setup(s *spec.Spec, start *Start) error {
	if !start.SetgroupsDenied {
		// The caller's supplementary groups are unmapped here and would
		// show as nogroup.
		if err := unix.Setgroups(nil); err != nil {
			return fmt.Errorf("setgroups: %w", err)
		}
	}
	if !s.Shares(spec.NSUTS) && s.Hostname != "" {
		if err := unix.Sethostname([]byte(s.Hostname)); err != nil {
			return fmt.Errorf("sethostname: %w", err)
		}
	}
	if !s.Shares(spec.NSNet) {
		if err := network.LoopbackUp(); err != nil {
			return err
		}
		// Before the filesystem: the port forwarder's agent is set up
		// through the host's /proc. Its goroutines serve for the rest of
		// pid 1's life.
		if err := network.ConfigureChild(start.Net); err != nil {
			return err
		}
	}
	cfg := fsetup.ConfigFor(s)
	cfg.Files = fsetup.NetworkFiles(s, start.Net.EtcFiles)
	if err := fsetup.Build(cfg); err != nil {
		return err
	}
	return nil
}

// limitThread applies, on the locked main thread, every restriction the
// payload inherits. The order matters: the time namespace and keyring need
// privileges the later steps take away, and the seccomp filter comes last.
func limitThread(s *spec.Spec) error {
	if !s.Shares(spec.NSTime) {
		if err := enterTimeNamespace(s.TimeOffsets); err != nil {
			return err
		}
	}
	// A fresh anonymous session keyring: keys of the caller's session
	// stay out of reach.
	// ENOSYS means an outer filter (rbox's own, when nested) already keeps
	// keyrings out of reach.
	if _, _, errno := unix.Syscall(unix.SYS_KEYCTL, unix.KEYCTL_JOIN_SESSION_KEYRING, 0, 0); errno != 0 && errno != unix.ENOSYS {
		return fmt.Errorf("new session keyring: %w", errno)
	}
	// Non-dumpable: the payload cannot open /proc/1/exe, /proc/1/fd or
	// /proc/1/mem of its init.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("set non-dumpable: %w", err)
	}
	if err := caps.LimitThread(s.Caps); err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set no_new_privs: %w", err)
	}
	return installSeccomp(s)
}

// enterTimeNamespace makes the payload's time namespace. Offsets can only
// be written before any process lives in it, so the payload, forked next,
// is its first member.
func enterTimeNamespace(o spec.TimeOffsets) error {
	if err := unix.Unshare(unix.CLONE_NEWTIME); err != nil {
		return fmt.Errorf("unshare time namespace: %w", err)
	}
	if o.Monotonic == 0 && o.Boottime == 0 {
		return nil
	}
	text := fmt.Sprintf("monotonic %d 0\nboottime %d 0\n", o.Monotonic, o.Boottime)
	if err := os.WriteFile("/proc/self/timens_offsets", []byte(text), 0); err != nil {
		return fmt.Errorf("set time offsets: %w", err)
	}
	return nil
}

// superviseCommand starts the payload and acts as init until it exits.
func superviseCommand(s *spec.Spec, start *Start) int {
	signals := make(chan os.Signal, 16)
	signal.Notify(signals, Forwarded...)
	if s.Shares(spec.NSPID) {
		// Not pid 1: adopt orphans so they can be reaped and killed.
		_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	}
	stdio := []*os.File{os.Stdin, os.Stdout, os.Stderr}
	if s.TTY {
		var err error
		if stdio, err = console.Open(stdio, start.ConsoleSocket, s.UID, fsetup.ConfigFor(s).TTYGID); err != nil {
			return fail(ExitSetupFailed, err)
		}
	}
	if err := limitThread(s); err != nil {
		return fail(ExitSetupFailed, err)
	}
	pid, code := startPayload(s, start, stdio)
	if pid < 0 {
		return code
	}
	go func() {
		for sig := range signals {
			_ = unix.Kill(pid, sig.(syscall.Signal))
		}
	}()
	status := reapUntil(pid)
	if s.Shares(spec.NSPID) {
		killOrphans()
	}
	return status
}

func startPayload(s *spec.Spec, start *Start, stdio []*os.File) (int, int) {
	path, code, err := lookPath(s)
	if err != nil {
		return -1, fail(code, err)
	}
	files := append([]*os.File{}, stdio...)
	for i := 0; i < s.PreserveFDs; i++ {
		files = append(files, os.NewFile(uintptr(3+i), "preserved"))
	}
	sys := &syscall.SysProcAttr{Setsid: !s.KeepSession} // KeepSession: bwrap without --new-session
	if s.DieWithParent {
		sys.Pdeathsig = unix.SIGKILL // --die-with-parent, for a shared pid namespace
	}
	if s.TTY {
		sys.Setctty, sys.Ctty = true, console.FirstTerminal(stdio)
	}
	if s.UID != 0 || s.GID != 0 {
		sys.Credential = &syscall.Credential{Uid: s.UID, Gid: s.GID, NoSetGroups: start.SetgroupsDenied}
		if s.UID != 0 {
			// A non-root uid loses every capability at setuid; what it
			// was granted with --cap-add comes back as ambient.
			sys.AmbientCaps = caps.Numbers(caps.Added(s.Caps))
		}
	}
	p, err := os.StartProcess(path, s.Argv(), &os.ProcAttr{Env: s.Env, Files: files, Sys: sys})
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return -1, fail(ExitNotFound, fmt.Errorf("%s: command not found", s.Args[0]))
		}
		return -1, fail(ExitCannotExecute, fmt.Errorf("%s: cannot execute: %v", s.Args[0], unwrapPathErr(err)))
	}
	return p.Pid, 0
}

func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// lookPath finds the command as execvp would with the payload's PATH. The
// exit code tells "not found" (127) from "found but not executable" (126).
func lookPath(s *spec.Spec) (string, int, error) {
	name := s.Args[0]
	if strings.Contains(name, "/") {
		if err := checkExecutable(name); err != nil {
			code, err := ExecFailure(name, err)
			return "", code, err
		}
		return name, 0, nil
	}
	var denied error
	for _, dir := range filepath.SplitList(s.SearchPath()) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		err := checkExecutable(p)
		if err == nil {
			return p, 0, nil
		}
		if !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENOTDIR) && denied == nil {
			denied = err
		}
	}
	if denied == nil {
		denied = unix.ENOENT
	}
	code, err := ExecFailure(name, denied)
	return "", code, err
}

// ExecFailure is rbox's exit code and message for the command name that
// could not be executed for reason err (from the lookup or execve): 127 when
// nothing was found, 126 when something was but cannot run.
func ExecFailure(name string, err error) (int, error) {
	switch {
	case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR):
		if strings.Contains(name, "/") {
			return ExitNotFound, fmt.Errorf("%s: no such file", name)
		}
		return ExitNotFound, fmt.Errorf("%s: command not found", name)
	default:
		return ExitCannotExecute, fmt.Errorf("%s: cannot execute: %v", name, err)
	}
}

func checkExecutable(p string) error {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return unix.EISDIR
	}
	return unix.Access(p, unix.X_OK)
}

// reapUntil reaps every child until pid exits and returns its exit code the
// way a shell reports it.
func reapUntil(pid int) int {
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return ExitSetupFailed
		}
		if got != pid {
			continue
		}
		if ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		if ws.Exited() {
			return ws.ExitStatus()
		}
	}
}

// killOrphans kills and reaps the processes left behind when the pid
// namespace is the host's: the ones pid 1's death would otherwise take.
func killOrphans() {
	self := os.Getpid()
	for {
		children := childrenOf(self)
		if len(children) == 0 {
			return
		}
		for _, c := range children {
			_ = unix.Kill(c, unix.SIGKILL)
		}
		for range children {
			var ws unix.WaitStatus
			if _, err := unix.Wait4(-1, &ws, 0, nil); errors.Is(err, unix.ECHILD) {
				break
			}
		}
	}
}

// childrenOf lists the children of every thread of process ppid: orphans
// may be handed to any thread of a subreaper.
func childrenOf(ppid int) []int {
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", ppid))
	var out []int
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, field := range strings.Fields(string(data)) {
			if n, err := strconv.Atoi(field); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}
