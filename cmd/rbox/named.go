package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/rbox-dev/rbox/contract"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/sandbox"
	"github.com/rbox-dev/rbox/spec"
	"github.com/rbox-dev/rbox/state"
)

// namedRunFlags are run's flags for a named, possibly detached, sandbox.
type namedRunFlags struct {
	Name   string `placeholder:"NAME" help:"Name the sandbox, so that exec, ps, logs, stop, kill, wait and rm can find it (unique per user)."`
	Detach bool   `short:"d" help:"Detach: return once the command has started, its output going to a log (see rbox logs); prints the name."`
	Rm     bool   `help:"Remove the sandbox's state and log when its command ends."`
}

// envDetached tells a re-executed rbox that it is a detached sandbox's
// supervisor, and on which descriptor to report the start.
const envDetached = "RBOX_DETACHED_REPORT_FD"

// Log size: a detached sandbox's output is kept in log and, once log
// reaches maxLog bytes, moved to log.1, so at most twice that is kept.
const maxLog = 4 << 20

// runNamed runs a named sandbox: this process is its supervisor, or, with
// -d, starts one in a new session and waits until the command runs.
func (r *RunCmd) runNamed() error {
	n := r.Named
	if n.Name == "" {
		n.Name = randomName()
	}
	if err := state.ValidName(n.Name); err != nil {
		return fmt.Errorf("--name: %v", err)
	}
	fdArg, supervising := os.LookupEnv(envDetached)
	os.Unsetenv(envDetached)
	if n.Detach && r.TTY {
		return fmt.Errorf("-d and -t do not go together: a detached sandbox has no terminal (use rbox exec -t NAME -- sh to get one)")
	}
	if n.Detach && r.PreserveF > 0 {
		return fmt.Errorf("--preserve-fds does not go with -d: the detached sandbox outlives the caller's descriptors")
	}
	if n.Detach && !supervising {
		return r.detach(n.Name)
	}
	if n.Detach {
		// stdin is /dev/null here: no terminal is allocated.
		r.TTY = false
	}
	s, plan, err := r.buildSpec()
	if err != nil {
		return err
	}
	store, err := state.Open()
	if err != nil {
		return err
	}
	defer store.Close()
	info := &state.Info{
		Name: n.Name, Supervisor: state.Self(), Status: state.StatusStarting, Created: time.Now(),
		Command: s.Args, Detached: n.Detach, Remove: n.Rm, Net: s.Net, Exec: execRules(s, plan.SetgroupsDenied),
		Tier: r.tierName(), Limits: limitsOf(s.Limits),
	}
	if r.joinedName != "" {
		info.Net = netSandboxPrefix + r.joinedName
	}
	for _, p := range s.Publish {
		info.Ports = append(info.Ports, fmt.Sprintf("%s:%d->%d/%s", p.HostIP, p.HostPort, p.ChildPort, p.Proto))
	}
	var report *os.File
	if supervising {
		fd, err := strconv.Atoi(fdArg)
		if err != nil {
			return fmt.Errorf("%s: bad descriptor %q", envDetached, fdArg)
		}
		report = os.NewFile(uintptr(fd), "report")
		unix.CloseOnExec(fd)
	}
	entry, err := store.Create(info)
	if err != nil {
		if errors.Is(err, state.ErrInUse) {
			err = fmt.Errorf("name %q is %s: choose another --name, or rbox rm %s once it has ended", n.Name, strings.TrimPrefix(err.Error(), "name "), n.Name)
		}
		if report != nil {
			fmt.Fprintf(report, "%d\trbox: %v\n", contract.ExitSetupFailed, err)
			report.Close()
			return exitError{contract.ExitSetupFailed}
		}
		return err
	}
	// The entry's lock is not released here but by this process's end: a
	// command waiting for it (stop, wait) then knows the supervisor is gone.
	if plan.Warning != "" {
		fmt.Fprintf(os.Stderr, "rbox: warning: %s\n", plan.Warning)
	}
	var logDone chan struct{}
	if report != nil {
		if logDone, err = logOutput(entry); err != nil {
			fmt.Fprintf(report, "%d\trbox: %v\n", contract.ExitSetupFailed, err)
			report.Close()
			_ = entry.Remove()
			return exitError{contract.ExitSetupFailed}
		}
	}
	if err := keepCallerFDs(r.PreserveF); err != nil {
		return err
	}
	// report says, once, that the command started (code 0) or why it
	// could not (its code, and the message from the log).
	var once sync.Once
	started := func(code int, why []byte) {
		once.Do(func() {
			if report == nil {
				return
			}
			if code == 0 {
				fmt.Fprintf(report, "0\n")
			} else {
				fmt.Fprintf(report, "%d\t%s", code, why)
			}
			report.Close()
		})
	}
	// watched is closed once the watch for the command has written what it
	// found: the entry's last write and its removal come after.
	watched := make(chan struct{})
	sandbox.Started = func(pid1 int, cgroups []string, rlimits []spec.Rlimit) {
		info.Init, _ = state.ProcOf(pid1)
		info.Exec.Cgroups, info.Exec.Rlimits = cgroups, rlimits
		info.Status = state.StatusRunning
		_ = entry.Write(info)
		go func() {
			defer close(watched)
			payload, ok := waitForCommand(pid1)
			if ok {
				info.Payload = payload
				_ = entry.Write(info)
			}
			if ok || payload.PID == 0 && processExists(pid1) {
				// Started, or pid 1 runs on after ten seconds.
				started(0, nil)
			}
		}()
	}
	code := sandbox.Run(s, plan, r.hold...)
	if info.Init.PID != 0 {
		<-watched
	}
	closeOutput(logDone)
	var why []byte
	if report != nil {
		// The reason it could not start, should it not have, is in the log.
		for _, f := range []string{"log.1", "log"} {
			if lf, _ := store.OpenFile(n.Name, f); lf != nil {
				b, _ := io.ReadAll(io.LimitReader(lf, 64<<10))
				why = append(why, b...)
				lf.Close()
			}
		}
	}
	info.Status, info.ExitCode, info.Finished = state.StatusExited, code, time.Now()
	// A command that never started leaves nothing: the name is free for
	// another try.
	neverRan := info.Payload.PID == 0 && code >= contract.ExitSetupFailed && code <= contract.ExitNotFound
	if n.Rm || neverRan {
		_ = entry.Remove()
	} else {
		_ = entry.Write(info)
	}
	// Reported once the entry is final, so the caller sees it so.
	started(code, why)
	return exitError{code}
}

// runAfterDashes makes `rbox [FLAGS] -- COMMAND` the run command whatever
// COMMAND is called: kong would take `rbox -- ps` or `rbox --bind a:/b --
// rm -rf /b/x` for its own ps and rm commands. When the first argument is
// not a command of rbox's and "--" is given, "run" is put first.
func runAfterDashes(parser *kong.Kong, args []string) []string {
	if len(args) == 0 || !slices.Contains(args, "--") {
		return args
	}
	for _, c := range parser.Model.Children {
		if args[0] == c.Name || slices.Contains(c.Aliases, args[0]) {
			return args
		}
	}
	return append([]string{"run"}, args...)
}

// takeCommand checks the command kong left in r.Command. With the verb
// given (as runAfterDashes gives it), kong keeps the "--" and takes an
// unknown flag before it for the start of the command.
func (r *RunCmd) takeCommand() error {
	if len(r.Command) > 0 && r.Command[0] != "--" && strings.HasPrefix(r.Command[0], "-") {
		return fmt.Errorf("unknown flag %s (see rbox --help)", r.Command[0])
	}
	r.Command = trimDashes(r.Command)
	return nil
}

// trimDashes drops the "--" that kong keeps at the head of a passthrough
// argument when the verb is given (rbox run -- cmd).
func trimDashes(args []string) []string {
	if len(args) > 0 && args[0] == "--" {
		return args[1:]
	}
	return args
}

// execRules are the rules of s that a command joining it gets.
func execRules(s *spec.Spec, setgroupsDenied bool) state.ExecRules {
	e := state.ExecRules{UID: s.UID, GID: s.GID, Env: s.Env, Cwd: s.Cwd, Caps: s.Caps, SetgroupsDenied: setgroupsDenied, Compensation: s.Compensation}
	for _, ns := range []string{spec.NSMount, spec.NSPID, spec.NSNet, spec.NSUTS, spec.NSIPC, spec.NSCgroup, spec.NSTime} {
		if ns == spec.NSMount || !s.Shares(ns) {
			e.Namespaces = append(e.Namespaces, ns)
		}
	}
	if f := s.SeccompFilter; f != nil {
		e.SeccompBPF, e.SeccompFlags = f.BPF, f.Flags
	}
	return e
}

func randomName() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "rbox-" + hex.EncodeToString(b)
}

// detach starts this same command line again as a supervisor in a new
// session, its output to the sandbox's log, and waits until it says the
// command runs (exit 0, the name printed) or could not start (its message
// and exit code).
func (r *RunCmd) detach(name string) error {
	// Mistakes are reported here, before anything starts.
	_, plan, err := r.buildSpec()
	if err != nil {
		return err
	}
	for _, f := range r.hold {
		f.Close()
	}
	store, err := state.Open()
	if err != nil {
		return err
	}
	if info, live, err := store.Get(name); err == nil {
		store.Close()
		what := "an exited sandbox: rbox rm " + name + " first"
		if live {
			what = fmt.Sprintf("a running sandbox (pid %d): choose another --name", info.Init.PID)
		}
		return fmt.Errorf("--name %s: the name is in use by %s", name, what)
	}
	store.Close()
	// Nothing the caller left open reaches the supervisor, which outlives
	// it (a pipe of a shell's $(...) would never see its end).
	if err := keepCallerFDs(0); err != nil {
		return err
	}
	rd, wr, err := os.Pipe()
	if err != nil {
		return err
	}
	defer rd.Close()
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer null.Close()
	args := os.Args[1:]
	if r.Named.Name == "" {
		args = append([]string{"--name", name}, args...)
	}
	cmd := &exec.Cmd{
		Path: "/proc/self/exe", Args: append([]string{os.Args[0]}, args...),
		Env:   append(os.Environ(), envDetached+"=3"),
		Stdin: null, Stdout: null, Stderr: null,
		ExtraFiles:  []*os.File{wr},
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	err = cmd.Start()
	wr.Close()
	if err != nil {
		return fmt.Errorf("start the supervisor: %v", err)
	}
	// Not waited for: it outlives this process (init adopts it).
	_ = cmd.Process.Release()
	line, err := bufio.NewReader(rd).ReadString('\n')
	codeText, msg, _ := strings.Cut(strings.TrimSuffix(line, "\n"), "\t")
	code, perr := strconv.Atoi(codeText)
	if err != nil && line == "" || perr != nil {
		return fmt.Errorf("the supervisor of %s ended before the command started", name)
	}
	if code == 0 {
		// Said once it runs: a failure is one line.
		if plan.Warning != "" {
			fmt.Fprintf(os.Stderr, "rbox: warning: %s\n", plan.Warning)
		}
		fmt.Println(name)
		return nil
	}
	rest, _ := io.ReadAll(rd)
	fmt.Fprint(os.Stderr, strings.TrimPrefix(msg+"\n"+string(rest), "\n"))
	return exitError{code}
}

// waitForCommand waits until pid 1 has started the command, and returns
// it (see commandOf). It gives up, reporting false, when pid 1 ends or after
// ten seconds (a command that made itself unreadable, or rbox itself).
func waitForCommand(pid1 int) (state.Proc, bool) {
	deadline := time.Now().Add(10 * time.Second)
	for delay := 500 * time.Microsecond; time.Now().Before(deadline); delay = min(2*delay, 10*time.Millisecond) {
		p, ok, gone := commandOf(pid1)
		if ok || gone {
			return p, ok
		}
		time.Sleep(delay)
	}
	return state.Proc{}, false
}

// commandOf finds the sandbox's command among pid 1's children: one that
// has executed something else than pid 1 and rbox run. (Before its exec it
// runs their executable, and shares pid 1's memory, which is not dumpable,
// so its /proc/PID/exe cannot even be read by a caller that is not root.)
// A helper pid 1 started before making the sandbox's time namespace
// (fuse-overlayfs) is in the caller's; the command is in the sandbox's.
// gone is true when pid 1 has ended.
func commandOf(pid1 int) (p state.Proc, ok, gone bool) {
	skip := map[string]bool{}
	for _, who := range []string{"self", strconv.Itoa(pid1)} {
		if exe, err := os.Readlink("/proc/" + who + "/exe"); err == nil {
			skip[exe] = true
		}
	}
	myTime, _ := os.Readlink("/proc/self/ns/time")
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid1, pid1))
	if err != nil {
		return p, false, true
	}
	var found []int
	for _, f := range strings.Fields(string(b)) {
		pid, _ := strconv.Atoi(f)
		if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil && !skip[exe] {
			found = append(found, pid)
		}
	}
	for i := len(found) - 1; i >= 0; i-- {
		t, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/time", found[i]))
		if t != myTime || i == 0 {
			p, err := state.ProcOf(found[i])
			return p, err == nil, false
		}
	}
	return p, false, false
}

// processExists reports whether pid is still there (not yet reaped).
func processExists(pid int) bool {
	return unix.Kill(pid, 0) == nil
}

// logOutput sends this process's stdout and stderr, which the sandbox
// inherits, through a pipe to the entry's log, bounded in size. The
// returned channel is closed once everything written has been logged.
func logOutput(entry *state.Entry) (chan struct{}, error) {
	rd, wr, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	for _, fd := range []int{1, 2} {
		if err := unix.Dup3(int(wr.Fd()), fd, 0); err != nil {
			return nil, err
		}
	}
	wr.Close()
	log, err := entry.OpenLog("log")
	if err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer rd.Close()
		buf := make([]byte, 32<<10)
		var size int64
		for {
			n, err := rd.Read(buf)
			if n > 0 {
				_, _ = log.Write(buf[:n])
				size += int64(n)
				if size >= maxLog {
					log.Close()
					_ = entry.RotateLog()
					if log, err = entry.OpenLog("log"); err != nil {
						return
					}
					size = 0
				}
			}
			if err != nil {
				log.Close()
				return
			}
		}
	}()
	return done, nil
}

// closeOutput closes this process's ends of the log pipe and waits (a
// little) for what the sandbox wrote to reach the log.
func closeOutput(done chan struct{}) {
	if done == nil {
		return
	}
	null, err := unix.Open(os.DevNull, unix.O_WRONLY, 0)
	if err == nil {
		_ = unix.Dup3(null, 1, 0)
		_ = unix.Dup3(null, 2, 0)
		unix.Close(null)
	}
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
}
