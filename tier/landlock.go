package tier

// The landlock tier. The parent (Run) makes the private temporary
// directory, re-executes rbox under Arg0 in a new session and removes the
// directory when the command ends. The re-executed child (Main) confines
// itself, on its main thread, and executes the command from that thread:
// capabilities dropped, the Landlock ruleset, rlimits, the seccomp filter
// (which sets no_new_privs), in that order, because the filter may refuse
// the calls the earlier steps make.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/landlock-lsm/go-landlock/landlock"
	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/caps"
	"github.com/rbox-dev/rbox/contract"
	"github.com/rbox-dev/rbox/limits"
	"github.com/rbox-dev/rbox/seccomp"
	"github.com/rbox-dev/rbox/spec"
)

// Arg0 marks a re-execution of rbox as the landlock tier's child.
const Arg0 = "rbox-landlock"

// SystemDirs are readable (and executable) in the landlock tier: the
// system directories the full tier shows read-only, and the host's /proc
// and /sys (Landlock keeps other processes' /proc/PID entries that need
// ptrace access, such as environ, mem and fd, out of reach).
var SystemDirs = []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt", "/proc", "/sys"}

// Devices the command may read and write, and those it may only read.
var (
	rwDevices = []string{"/dev/null", "/dev/zero", "/dev/full", "/dev/tty"}
	roDevices = []string{"/dev/random", "/dev/urandom"}
)

// Options is one landlock-tier run.
type Options struct {
	Args []string `json:"args"`
	// Env is the command's environment; Run adds TMPDIR.
	Env []string `json:"env"`
	// Cwd is the command's working directory (a host path).
	Cwd string `json:"cwd"`
	// ReadOnly and ReadWrite are host paths (directories or files) the
	// command may read, or read and write, beyond SystemDirs.
	ReadOnly  []string `json:"read_only,omitempty"`
	ReadWrite []string `json:"read_write,omitempty"`
	// AllowNet leaves TCP (and on ABI 10 and later, UDP) unrestricted;
	// otherwise binding and connecting are refused (ABI 4 and later).
	AllowNet bool `json:"allow_net,omitempty"`
	// Seccomp is the filter loaded last; nil loads none.
	Seccomp *spec.SeccompFilter `json:"seccomp,omitempty"`
	// PreserveFDs keeps the caller's fds 3..3+N-1 open for the command.
	PreserveFDs int `json:"preserve_fds,omitempty"`
	// Rlimits are set on the command before it starts (--ulimit, and
	// --memory where no memory cgroup holds it).
	Rlimits []spec.Rlimit `json:"rlimits,omitempty"`
	// Placed, when set, is called with the child's pid before it is sent
	// its options: the child waits for them, so nothing of the command
	// runs before it is in the sandbox's cgroups (limits.Box.Attach).
	Placed func(pid int) error `json:"-"`
	// TTY gives the command a pseudo-terminal of its own (see terminal).
	TTY bool `json:"-"`
	// TempDir is the private temporary directory (set by Run).
	TempDir string `json:"temp_dir"`
}

// Run runs o's command in the landlock tier and returns rbox's exit code.
// It must be called on the main thread (the child's parent-death signal is
// tied to the thread that starts it).
func Run(o Options) int {
	tmp, err := os.MkdirTemp("", "rbox-landlock-")
	if err != nil {
		return failf("make the private temporary directory: %v", err)
	}
	defer os.RemoveAll(tmp)
	o.TempDir = tmp
	o.Env = append(withoutKey(o.Env, "TMPDIR"), "TMPDIR="+tmp)

	optsR, optsW, err := os.Pipe()
	if err != nil {
		return failf("pipe: %v", err)
	}
	extra := make([]*os.File, 0, o.PreserveFDs+1)
	for i := 0; i < o.PreserveFDs; i++ {
		extra = append(extra, os.NewFile(uintptr(3+i), "preserved"))
	}
	extra = append(extra, optsR)
	cmd := &exec.Cmd{
		Path:       "/proc/self/exe",
		Args:       []string{Arg0, strconv.Itoa(3 + o.PreserveFDs)},
		Env:        []string{},
		Stdin:      os.Stdin,
		Stdout:     os.Stdout,
		Stderr:     os.Stderr,
		ExtraFiles: extra,
		// A session of its own: the caller's terminal is not the
		// command's controlling terminal, so it cannot push input into
		// it (TIOCSTI), nor signal the caller's foreground job through it.
		SysProcAttr: &syscall.SysProcAttr{Setsid: true, Pdeathsig: unix.SIGKILL},
	}
	var term *terminal
	if o.TTY {
		if term, err = openTerminal(); err != nil {
			optsR.Close()
			optsW.Close()
			return failf("%v", err)
		}
		stdio, ctty := term.stdio()
		cmd.Stdin, cmd.Stdout, cmd.Stderr = stdio[0], stdio[1], stdio[2]
		cmd.SysProcAttr.Setctty, cmd.SysProcAttr.Ctty = true, ctty
	}
	signals := make(chan os.Signal, 16)
	signal.Notify(signals, contract.Forwarded...)
	defer signal.Stop(signals)
	err = cmd.Start()
	optsR.Close()
	if term != nil {
		term.slave.Close()
	}
	if err != nil {
		optsW.Close()
		if term != nil {
			term.master.Close()
		}
		return failf("start the landlock tier: %v", err)
	}
	if term != nil {
		term.Start()
	}
	go func() {
		for sig := range signals {
			if sig == unix.SIGWINCH && term != nil {
				term.Resize()
				continue
			}
			// To the command's process group, as a terminal would.
			_ = unix.Kill(-cmd.Process.Pid, sig.(unix.Signal))
		}
	}()
	if o.Placed != nil {
		err = o.Placed(cmd.Process.Pid)
	}
	if err == nil {
		err = json.NewEncoder(optsW).Encode(o)
	}
	optsW.Close()
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if term != nil {
			term.Drain(0)
			term.Restore()
		}
		return failf("start the landlock tier: %v", err)
	}
	err = cmd.Wait()
	if term != nil {
		term.Drain(0)
		term.Restore()
	}
	ps := cmd.ProcessState
	if ps == nil {
		return failf("wait for the command: %v", err)
	}
	ws := ps.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// Main is the landlock tier's child: it reads the Options from the fd
// named by args[0], confines itself and executes the command. It never
// returns.
func Main(args []string) {
	code, err := confineAndExec(args)
	fmt.Fprintf(os.Stderr, "rbox: %v\n", err)
	os.Exit(code)
}

func confineAndExec(args []string) (int, error) {
	fd, err := strconv.Atoi(args[0])
	if err != nil {
		return contract.ExitSetupFailed, fmt.Errorf("landlock tier: bad options fd %q", args[0])
	}
	f := os.NewFile(uintptr(fd), "options")
	var o Options
	err = json.NewDecoder(f).Decode(&o)
	f.Close()
	if err != nil {
		return contract.ExitSetupFailed, fmt.Errorf("landlock tier: read options: %v", err)
	}
	if err := dropCapabilities(); err != nil {
		return contract.ExitSetupFailed, err
	}
	if err := os.Chdir(o.Cwd); err != nil {
		return contract.ExitSetupFailed, fmt.Errorf("working directory: %v", err)
	}
	if err := restrict(o); err != nil {
		return contract.ExitSetupFailed, err
	}
	// Late, when this Go process allocates little more (a small
	// RLIMIT_DATA would trip its runtime), and through package syscall, so
	// that the exec does not restore the runtime's start-up RLIMIT_NOFILE;
	// before the filters, which may refuse setrlimit.
	if err := limits.SetOwn(o.Rlimits); err != nil {
		return contract.ExitSetupFailed, err
	}
	if ABI() < ResolveUnixABI {
		prog, err := unixSocketFilter()
		if err := loadFilter("unix socket filter", prog, err); err != nil {
			return contract.ExitSetupFailed, err
		}
	}
	// What Landlock misses in the host's pid namespace, and in its
	// network unless --net host (see filterGaps).
	prog, err := filterGaps{net: !o.AllowNet && ABI() >= 4, pid: true}.filter()
	if err := loadFilter("gap filter", prog, err); err != nil {
		return contract.ExitSetupFailed, err
	}
	if o.Seccomp != nil {
		if err := seccomp.Load(o.Seccomp); err != nil {
			return contract.ExitSetupFailed, err
		}
	}
	return execSearch(o.Args, o.Env)
}

// dropCapabilities leaves the command none: a root caller keeps its uid,
// not its power over the host. Capabilities are per thread, and this is
// the thread that executes the command.
func dropCapabilities() error {
	if os.Geteuid() == 0 {
		if err := caps.LimitThread(nil); err != nil {
			return fmt.Errorf("drop capabilities: %v", err)
		}
		return nil
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("clear ambient capabilities: %v", err)
	}
	return nil
}

// restrict enforces o's Landlock ruleset on the calling thread, which must
// stay locked to this goroutine (initproc.Lock holds the main goroutine on
// the main thread) and execute the command.
func restrict(o Options) error {
	cfg := Config(o.AllowNet)
	rules := []landlock.Rule{
		landlock.RODirs(SystemDirs...).IgnoreIfMissing(),
		landlock.RWFiles(rwDevices...).WithIoctlDev().IgnoreIfMissing(),
		landlock.ROFiles(roDevices...).IgnoreIfMissing(),
		landlock.RWDirs(o.TempDir).WithResolveUnix(),
	}
	for _, p := range o.ReadOnly {
		rules = append(rules, pathRule(p, false))
	}
	for _, p := range o.ReadWrite {
		rules = append(rules, pathRule(p, true))
	}
	fd, flags, err := cfg.NewRulesetFD(rules...)
	if err != nil {
		return fmt.Errorf("landlock ruleset: %v", err)
	}
	if fd < 0 {
		return fmt.Errorf("landlock: the kernel enforces nothing (%s)", ABIProblem())
	}
	defer unix.Close(fd)
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set no_new_privs: %v", err)
	}
	if err := ll.LandlockRestrictSelf(fd, flags); err != nil {
		return fmt.Errorf("landlock_restrict_self: %v", err)
	}
	return nil
}

// Config is the landlock tier's ruleset: every access right this kernel
// can restrict, less the network ones when allowNet.
func Config(allowNet bool) landlock.Config {
	cfg := landlock.V11
	if allowNet {
		cfg.HandledAccessNet = 0
	}
	return cfg.BestEffort()
}

// pathRule grants a bind source: the directory and all beneath it, or the
// one file.
func pathRule(p string, write bool) landlock.Rule {
	st, err := os.Stat(p)
	dir := err != nil || st.IsDir()
	switch {
	case dir && write:
		// Sockets in a read-write bind may be connected to, where the
		// ABI can tell (ResolveUnixABI).
		return landlock.RWDirs(p).WithResolveUnix()
	case dir:
		return landlock.RODirs(p)
	case write:
		return landlock.RWFiles(p)
	}
	return landlock.ROFiles(p)
}

// execSearch executes args[0] as the full tier's pid 1 does
// (contract.Search), once confined: so a directory of PATH that Landlock
// hides (the caller's ~/.local/bin, a pyenv shim) is passed over as if
// absent, and the next one's program runs.
func execSearch(args, env []string) (int, error) {
	name := args[0]
	candidates := contract.Candidates(name, spec.SearchPathOf(env))
	search := contract.NewSearch()
	for i, path := range candidates {
		err := unix.Exec(path, args, env)
		errno, _ := err.(syscall.Errno)
		exists := errno == unix.ENOENT && unix.Access(path, unix.F_OK) == nil
		if !search.Failed(i, errno, exists) {
			break
		}
	}
	return contract.ExecFailure(name, search.Errno, search.Found >= 0)
}

// ABI is the kernel's Landlock ABI version, 0 without Landlock.
func ABI() int {
	v, err := ll.LandlockGetABIVersion()
	if err != nil {
		return 0
	}
	return v
}

// ABIProblem says why the kernel offers no Landlock.
func ABIProblem() string {
	_, err := ll.LandlockGetABIVersion()
	switch {
	case err == nil:
		return "Landlock is enabled"
	case errors.Is(err, unix.EOPNOTSUPP):
		return "built in but not enabled at boot: add landlock to the lsm= kernel parameter"
	case errors.Is(err, unix.ENOSYS):
		return "the kernel has no Landlock: 5.13 or later with CONFIG_SECURITY_LANDLOCK=y"
	}
	return "landlock_create_ruleset: " + err.Error()
}

// Missing lists what the landlock tier cannot enforce with Landlock ABI
// abi, for the tier line and rbox check.
func Missing(abi int, allowNet bool) []string {
	var out []string
	if abi < 3 {
		out = append(out, "truncation is not restricted")
	}
	if abi < 4 && !allowNet {
		out = append(out, "TCP is not restricted (ABI 4)")
	}
	if abi < 5 {
		out = append(out, "device ioctls are not restricted (ABI 5)")
	}
	if abi < 6 {
		out = append(out, "signals to host processes and abstract unix sockets are not restricted (ABI 6)")
	}
	return out
}

// Describe is the one line rbox prints on stderr for a landlock-tier run.
func Describe(c Choice, allowNet bool) string {
	abi := ABI()
	var b strings.Builder
	fmt.Fprintf(&b, "isolation: landlock tier (Landlock ABI %d)", abi)
	if c.Blocker != nil {
		fmt.Fprintf(&b, ", not full: %v", c.Blocker)
	} else {
		b.WriteString(", as asked")
	}
	b.WriteString("; the command runs as you in the host's namespaces, seeing only the system directories and its binds")
	if allowNet {
		b.WriteString(", with the host's network")
	}
	if m := Missing(abi, allowNet); len(m) > 0 {
		b.WriteString("; not enforced: " + strings.Join(m, ", "))
	}
	b.WriteString(" (see docs/tiers.md)")
	return b.String()
}

// withoutKey drops key's entries from env.
func withoutKey(env []string, key string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return out
}

func failf(format string, a ...any) int {
	fmt.Fprintf(os.Stderr, "rbox: "+format+"\n", a...)
	return contract.ExitSetupFailed
}
