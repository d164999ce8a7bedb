package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/rbox-dev/rbox/contract"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/console"
	"github.com/rbox-dev/rbox/enter"
	"github.com/rbox-dev/rbox/spec"
	"github.com/rbox-dev/rbox/state"
)

// namedCommands are the commands on named sandboxes (see runNamed).
type namedCommands struct {
	Ps   PsCmd   `cmd:"" help:"List named sandboxes (running ones; --all adds exited ones)."`
	Exec ExecCmd `cmd:"" help:"Run a command inside a running named sandbox."`
	Logs LogsCmd `cmd:"" help:"Print a detached sandbox's output."`
	Stop StopCmd `cmd:"" help:"Stop a sandbox: SIGTERM to its command, SIGKILL after a timeout."`
	Kill KillCmd `cmd:"" help:"Send a signal to a sandbox's command."`
	Wait WaitCmd `cmd:"" help:"Wait for a sandbox to end and print its exit code."`
	Rm   RmCmd   `cmd:"" help:"Remove an ended sandbox's state and log."`
}

// openStore opens the caller's state directory.
func openStore() (*state.Store, error) { return state.Open() }

// lookup finds a sandbox by name: its entry and whether it runs. Unknown
// names and invalid ones are one line each.
func lookup(store *state.Store, name string) (*state.Info, bool, error) {
	info, live, err := store.Get(name)
	if errors.Is(err, state.ErrNotFound) {
		return nil, false, fmt.Errorf("no sandbox named %q (see rbox ps --all)", name)
	}
	return info, live, err
}

// running finds a running sandbox, or says why there is none.
func running(store *state.Store, name string) (*state.Info, error) {
	info, live, err := lookup(store, name)
	if err != nil {
		return nil, err
	}
	if !live {
		return nil, fmt.Errorf("sandbox %q is not running (it exited with %d; rbox rm %s removes it)", name, info.ExitCode, name)
	}
	if info.Status != state.StatusRunning {
		return nil, fmt.Errorf("sandbox %q is still starting: try again", name)
	}
	return info, nil
}

// PsCmd lists sandboxes.
type PsCmd struct {
	All  bool `short:"a" help:"Show exited sandboxes too."`
	JSON bool `name:"json" help:"Print a JSON array of the entries."`
}

// Run lists.
func (c *PsCmd) Run() error {
	store, err := openStore()
	if err != nil {
		return err
	}
	defer store.Close()
	infos, lives, bad, err := store.List()
	if err != nil {
		return err
	}
	for _, err := range bad {
		fmt.Fprintf(os.Stderr, "rbox: warning: skipped: %v\n", err)
	}
	type row struct {
		*state.Info
		Running bool `json:"running"`
	}
	rows := []row{}
	for i, info := range infos {
		if lives[i] || c.All {
			rows = append(rows, row{info, lives[i]})
		}
	}
	if c.JSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tPID\tSTATUS\tUPTIME\tNET\tPORTS\tLIMITS\tTIER\tCOMMAND")
	for _, r := range rows {
		status, uptime := string(r.Status), time.Since(r.Created).Round(time.Second).String()
		if !r.Running {
			status = fmt.Sprintf("exited (%d)", r.ExitCode)
			uptime = "-"
		}
		ports := strings.Join(r.Ports, ",")
		if ports == "" {
			ports = "-"
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.Init.PID, status, uptime, r.Net, ports,
			limitsColumn(r.Limits), orDash(r.Tier), strings.Join(r.Command, " "))
	}
	return w.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ExecCmd runs a command in a running sandbox.
type ExecCmd struct {
	TTY     bool     `short:"t" name:"tty" help:"Give the command a pseudo-terminal of its own, in the sandbox."`
	Chdir   string   `short:"w" placeholder:"DIR" help:"Working directory inside (default: the sandbox command's)."`
	Env     []string `sep:"none" placeholder:"K=V" help:"Set an environment variable (on top of the sandbox command's environment). Repeatable."`
	UID     *uint32  `name:"uid" help:"Run as this uid inside (default: the sandbox command's)."`
	GID     *uint32  `name:"gid" help:"Run as this gid inside (default: the sandbox command's)."`
	Name    string   `arg:"" help:"The sandbox's name."`
	Command []string `arg:"" passthrough:"" help:"Command and arguments."`
}

// Run joins the sandbox and waits for the command.
func (c *ExecCmd) Run() error {
	if err := state.ValidName(c.Name); err != nil {
		return err
	}
	args := trimDashes(c.Command)
	if len(args) == 0 {
		return fmt.Errorf("missing command: give one after the name, e.g. rbox exec %s -- sh", c.Name)
	}
	for _, kv := range c.Env {
		if !strings.Contains(kv, "=") || strings.HasPrefix(kv, "=") {
			return fmt.Errorf("--env %q: expected K=V", kv)
		}
	}
	if c.Chdir != "" && !filepath.IsAbs(c.Chdir) {
		return fmt.Errorf("-w %s: must be an absolute path inside the sandbox", c.Chdir)
	}
	store, err := openStore()
	if err != nil {
		return err
	}
	info, err := running(store, c.Name)
	store.Close()
	if err != nil {
		return err
	}
	rules := info.Exec
	target, err := info.Payload.PidFD()
	if err != nil {
		// Recorded wrong or not at all (it could not be told apart in
		// time): looked for again among pid 1's children.
		if p, ok, _ := commandOf(info.Init.PID); ok && info.Init.Alive() {
			target, err = p.PidFD()
		}
	}
	if err != nil {
		return fmt.Errorf("sandbox %q: its command has ended (%v)", c.Name, err)
	}
	req := &enter.Request{
		Target: target, Namespaces: ownNamespaces(rules.Namespaces, info.Payload.PID), Args: args,
		Env: buildEnv(rules.Env, false, nil, c.Env), Cwd: rules.Cwd, UID: rules.UID, GID: rules.GID,
		SetgroupsDenied: rules.SetgroupsDenied, Caps: rules.Caps, SeccompBPF: rules.SeccompBPF,
		SeccompFlags: rules.SeccompFlags, Cgroups: rules.Cgroups, Rlimits: rules.Rlimits, Compensation: rules.Compensation, Console: -1,
	}
	if c.Chdir != "" {
		req.Cwd = filepath.Clean(c.Chdir)
	}
	if c.UID != nil {
		req.UID = *c.UID
	}
	if c.GID != nil {
		req.GID = *c.GID
	}
	var consoleParent *os.File
	if c.TTY {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("console socket: %v", err)
		}
		consoleParent = os.NewFile(uintptr(fds[0]), "console")
		defer consoleParent.Close()
		req.Console = fds[1]
	}
	// Signals that arrive from now on are passed on to the command.
	signals := make(chan os.Signal, 16)
	signal.Notify(signals, contract.Forwarded...)
	defer signal.Stop(signals)
	pid, err := enter.Start(req)
	unix.Close(target)
	if req.Console >= 0 {
		unix.Close(req.Console)
	}
	if err != nil {
		var ee *enter.Error
		if errors.As(err, &ee) {
			fmt.Fprintf(os.Stderr, "rbox: exec in %s: %v\n", c.Name, ee.Err)
			return exitError{ee.Code}
		}
		return err
	}
	var term *console.Relay
	if consoleParent != nil {
		master, err := console.Receive(consoleParent)
		if err != nil || master == nil {
			_ = unix.Kill(pid, unix.SIGKILL)
			_, _ = unix.Wait4(pid, nil, 0, nil)
			return fmt.Errorf("exec -t: no terminal from the sandbox: %v", err)
		}
		term = console.NewRelay(master)
		term.Start()
		defer term.Restore()
	}
	go func() {
		for sig := range signals {
			if sig == unix.SIGWINCH && term != nil {
				term.Resize()
				continue
			}
			_ = unix.Kill(pid, sig.(unix.Signal))
		}
	}()
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if err != unix.EINTR {
			break
		}
	}
	if term != nil {
		// A process the command left in the background may hold the
		// terminal open.
		term.Drain(2 * time.Second)
	}
	return exitError{enter.ExitCode(ws)}
}

// LogsCmd prints a sandbox's log.
type LogsCmd struct {
	Follow bool   `short:"f" help:"Keep printing new output until the sandbox ends."`
	Name   string `arg:"" help:"The sandbox's name."`
}

// Run prints the log: log.1 (older) then log.
func (c *LogsCmd) Run() error {
	store, err := openStore()
	if err != nil {
		return err
	}
	defer store.Close()
	info, live, err := lookup(store, c.Name)
	if err != nil {
		return err
	}
	if !info.Detached {
		return fmt.Errorf("sandbox %q is attached: its output went to the terminal that started it, not to a log", c.Name)
	}
	if old, err := store.OpenFile(c.Name, "log.1"); err != nil {
		return err
	} else if old != nil {
		_, _ = io.Copy(os.Stdout, old)
		old.Close()
	}
	f, err := store.OpenFile(c.Name, "log")
	if err != nil {
		return err
	}
	if f == nil {
		return nil
	}
	defer f.Close()
	for {
		if _, err := io.Copy(os.Stdout, f); err != nil {
			return err
		}
		if !c.Follow || !live {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
		live = store.Alive(c.Name)
		var st, now unix.Stat_t
		if unix.Fstat(int(f.Fd()), &st) == nil {
			// Rotated: go on with the new log.
			if nf, _ := store.OpenFile(c.Name, "log"); nf != nil {
				if unix.Fstat(int(nf.Fd()), &now) == nil && now.Ino != st.Ino {
					_, _ = io.Copy(os.Stdout, f)
					f.Close()
					f = nf
				} else {
					nf.Close()
				}
			}
		}
	}
}

// StopCmd stops a sandbox.
type StopCmd struct {
	Timeout int    `short:"t" default:"10" placeholder:"SECONDS" help:"Seconds to wait after SIGTERM before SIGKILL."`
	Name    string `arg:"" help:"The sandbox's name."`
}

// Run sends SIGTERM to the command, SIGKILL to the sandbox's pid 1 (which
// ends every process in it) after the timeout, and waits for the
// supervisor to end.
func (c *StopCmd) Run() error {
	if c.Timeout < 0 {
		return fmt.Errorf("-t %d: must be 0 or more seconds", c.Timeout)
	}
	store, err := openStore()
	if err != nil {
		return err
	}
	defer store.Close()
	info, err := running(store, c.Name)
	if err != nil {
		return err
	}
	target := command(info)
	if c.Timeout > 0 {
		_ = target.Signal(unix.SIGTERM)
	}
	done := make(chan *state.Info, 1)
	go func() {
		end, _ := store.Wait(c.Name)
		done <- end
	}()
	select {
	case <-done:
	case <-time.After(time.Duration(c.Timeout) * time.Second):
		_ = info.Init.Signal(unix.SIGKILL)
		<-done
	}
	return nil
}

// command is the sandbox's command as recorded, or found again among pid
// 1's children, or else pid 1 (which passes the usual signals on to it).
func command(info *state.Info) state.Proc {
	if info.Payload.PID != 0 && info.Payload.Alive() {
		return info.Payload
	}
	if p, ok, _ := commandOf(info.Init.PID); ok && info.Init.Alive() {
		return p
	}
	return info.Init
}

// KillCmd signals a sandbox's command.
type KillCmd struct {
	Signal string `short:"s" default:"KILL" placeholder:"SIGNAL" help:"Signal name or number (default KILL)."`
	Name   string `arg:"" help:"The sandbox's name."`
}

// Run sends the signal. SIGKILL goes to pid 1, which ends everything in the
// sandbox; others to the command.
func (c *KillCmd) Run() error {
	sig, err := parseSignal(c.Signal)
	if err != nil {
		return err
	}
	store, err := openStore()
	if err != nil {
		return err
	}
	defer store.Close()
	info, err := running(store, c.Name)
	if err != nil {
		return err
	}
	target := command(info)
	if sig == unix.SIGKILL {
		target = info.Init
	}
	if err := target.Signal(sig); err != nil {
		return fmt.Errorf("kill %s: %v", c.Name, err)
	}
	return nil
}

// parseSignal reads KILL, SIGKILL or 9.
func parseSignal(s string) (unix.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65 {
		return unix.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("-s %s: unknown signal (give a name like TERM or a number)", s)
}

// WaitCmd waits for a sandbox to end.
type WaitCmd struct {
	Name string `arg:"" help:"The sandbox's name."`
}

// Run waits and prints the exit code.
func (c *WaitCmd) Run() error {
	store, err := openStore()
	if err != nil {
		return err
	}
	defer store.Close()
	if _, _, err := lookup(store, c.Name); err != nil {
		return err
	}
	info, err := store.Wait(c.Name)
	if err != nil || info.Status != state.StatusExited {
		return fmt.Errorf("sandbox %q ended without an exit code: its supervisor was killed", c.Name)
	}
	fmt.Println(info.ExitCode)
	return nil
}

// RmCmd removes ended sandboxes.
type RmCmd struct {
	Force bool     `short:"f" help:"Kill a running sandbox first."`
	Names []string `arg:"" help:"The sandboxes' names."`
}

// Run removes each.
func (c *RmCmd) Run() error {
	store, err := openStore()
	if err != nil {
		return err
	}
	defer store.Close()
	for _, name := range c.Names {
		info, live, err := lookup(store, name)
		if err != nil {
			return err
		}
		if live {
			if !c.Force {
				return fmt.Errorf("sandbox %q is running: rbox stop %s first, or rbox rm -f %s", name, name, name)
			}
			_ = info.Init.Signal(unix.SIGKILL)
			if _, err := store.Wait(name); err != nil {
				return err
			}
		}
		e, err := store.Lock(name)
		if errors.Is(err, state.ErrNotFound) && c.Force {
			continue
		}
		if err != nil {
			return err
		}
		err = e.Remove()
		e.Release()
		if err != nil {
			return err
		}
	}
	return nil
}

// ownNamespaces drops the time namespace from nss when the sandbox's
// command at pid has none of its own: before Linux 5.6 (no time
// namespaces) it is the host's, which setns would refuse to join.
func ownNamespaces(nss []string, pid int) []string {
	mine, err1 := os.Readlink("/proc/self/ns/time")
	theirs, err2 := os.Readlink(fmt.Sprintf("/proc/%d/ns/time", pid))
	if err1 == nil && err2 == nil && mine != theirs {
		return nss
	}
	return slices.DeleteFunc(slices.Clone(nss), func(ns string) bool { return ns == spec.NSTime })
}
