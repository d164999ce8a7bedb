//go:build integration

package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// namedState is a private state directory for one test's named sandboxes
// (XDG_RUNTIME_DIR/rbox), so tests see only their own.
type namedState struct {
	t   *testing.T
	xdg string
}

func newNamedState(t *testing.T) *namedState {
	t.Helper()
	ns := &namedState{t: t, xdg: t.TempDir()}
	t.Cleanup(func() {
		// Whatever a failed test left running.
		r := ns.rbox("ps", "--all", "--json")
		for _, e := range parsePs(t, r.stdout) {
			ns.rbox("rm", "-f", e.Name)
		}
	})
	return ns
}

func (ns *namedState) env(cmd *exec.Cmd) {
	cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+ns.xdg)
}

func (ns *namedState) rbox(args ...string) result {
	ns.t.Helper()
	return rboxCmd(ns.t, ns.env, args...)
}

// ok runs rbox and requires exit 0.
func (ns *namedState) ok(args ...string) string {
	ns.t.Helper()
	r := ns.rbox(args...)
	if r.code != 0 {
		ns.t.Fatalf("rbox %v: %s", args, r)
	}
	return r.stdout
}

// entries lists the state directory's sandbox entries.
func (ns *namedState) entries() []string {
	ns.t.Helper()
	names, err := os.ReadDir(filepath.Join(ns.xdg, "rbox", "sandboxes"))
	if err != nil && !os.IsNotExist(err) {
		ns.t.Fatal(err)
	}
	var out []string
	for _, n := range names {
		out = append(out, n.Name())
	}
	return out
}

type psEntry struct {
	Name       string `json:"name"`
	Running    bool   `json:"running"`
	Status     string `json:"status"`
	ExitCode   int    `json:"exit_code"`
	Supervisor struct {
		PID int `json:"pid"`
	} `json:"supervisor"`
	Init struct {
		PID int `json:"pid"`
	} `json:"init"`
}

func parsePs(t *testing.T, out string) []psEntry {
	var es []psEntry
	if err := json.Unmarshal([]byte(out), &es); err != nil {
		t.Fatalf("ps --json: %v: %q", err, out)
	}
	return es
}

func (ns *namedState) ps(all bool) map[string]psEntry {
	ns.t.Helper()
	args := []string{"ps", "--json"}
	if all {
		args = append(args, "--all")
	}
	m := map[string]psEntry{}
	for _, e := range parsePs(ns.t, ns.ok(args...)) {
		m[e.Name] = e
	}
	return m
}

// oneLine requires a failure with exit code 125 and one line on stderr
// that contains want.
func oneLine(t *testing.T, what string, r result, want string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	if r.code != 125 || len(lines) != 1 || !strings.Contains(r.stderr, want) {
		t.Errorf("%s: want exit 125 and one line with %q, got %s", what, want, r)
	}
}

// view is what a process sees of its sandbox: pid 1, host name, its
// namespaces, its filter and limits.
const view = `cat /proc/1/comm; hostname; for n in user mnt pid net uts ipc cgroup time; do readlink /proc/self/ns/$n; done; ` +
	`grep -E '^(Seccomp|Seccomp_filters|NoNewPrivs|CapEff|CapBnd|CapAmb|Uid|Gid):' /proc/self/status`

// The lifecycle on both kinds of pid 1: the fast path's, and the
// re-executed one (which CAP_SYS_PTRACE for the command asks for).
func TestNamedDetachedLifecycle(t *testing.T) {
	for _, c := range []struct {
		name  string
		flags []string
	}{{"fast", nil}, {"initproc", []string{"--cap-add", "SYS_PTRACE"}}} {
		t.Run(c.name, func(t *testing.T) { namedLifecycle(t, c.flags) })
	}
}

func namedLifecycle(t *testing.T, flags []string) {
	ns := newNamedState(t)
	marker := fmt.Sprintf("named-life-%d", time.Now().UnixNano())
	script := `echo started; echo from-main > /tmp/main; { ` + view + `; } > /tmp/v; mv /tmp/v /tmp/main-view; ` +
		`while [ ! -e /tmp/from-exec ]; do sleep 0.02; done; echo "main read: $(cat /tmp/from-exec)"; sleep 300; : ` + marker
	out := ns.ok(append(append([]string{"run", "--name", "box1", "-d", "--hostname", "inside"}, flags...), "--", "sh", "-c", script)...)
	if strings.TrimSpace(out) != "box1" {
		t.Errorf("run -d printed %q, want the name", out)
	}
	if e := ns.ps(false)["box1"]; !e.Running || e.Status != "running" || e.Init.PID == 0 {
		t.Fatalf("ps: %+v", e)
	}
	// The same view as the sandbox's command: pid 1, host name,
	// namespaces, filter, capabilities, ids.
	waitFor(t, "the main command's view", 5*time.Second, func() bool {
		return ns.rbox("exec", "box1", "--", "test", "-s", "/tmp/main-view").code == 0
	})
	mainView := ns.ok("exec", "box1", "--", "cat", "/tmp/main-view")
	execView := ns.ok("exec", "box1", "--", "sh", "-c", view)
	if mainView != execView || !strings.Contains(execView, "inside") {
		t.Errorf("exec sees\n%s\nthe sandbox's command sees\n%s", execView, mainView)
	}
	if !strings.Contains(execView, "Seccomp:\t2") || !strings.Contains(execView, "NoNewPrivs:\t1") {
		t.Errorf("exec is not under the filter and no_new_privs:\n%s", execView)
	}
	// Files both ways; the exec'd process shows in ps inside; the host's
	// root is not there.
	if got := ns.ok("exec", "box1", "--", "cat", "/tmp/main"); got != "from-main\n" {
		t.Errorf("exec reads %q", got)
	}
	ps := ns.ok("exec", "box1", "--", "sh", "-c", `for p in /proc/[0-9]*; do tr '\0' ' ' < $p/cmdline; echo; done`)
	if !strings.Contains(ps, marker) || !strings.Contains(ps, "for p in") {
		t.Errorf("ps inside does not show the command and the exec'd shell:\n%s", ps)
	}
	if r := ns.rbox("exec", "box1", "--", "ls", "/oldroot"); r.code == 0 {
		t.Errorf("exec reaches /oldroot: %s", r)
	}
	ns.ok("exec", "--env", "X=from-exec", "-w", "/tmp", "box1", "--", "sh", "-c", `echo "$X" > from-exec`)
	waitFor(t, "the main command to read the exec's file", 5*time.Second, func() bool {
		return strings.Contains(ns.ok("logs", "box1"), "main read: from-exec")
	})
	if !strings.HasPrefix(ns.ok("logs", "box1"), "started\n") {
		t.Errorf("logs: %q", ns.ok("logs", "box1"))
	}
	// Exit statuses are the command's.
	if r := ns.rbox("exec", "box1", "--", "sh", "-c", "exit 7"); r.code != 7 {
		t.Errorf("exec exit 7: %s", r)
	}
	if r := ns.rbox("exec", "box1", "--", "no-such-command"); r.code != 127 || !strings.Contains(r.stderr, "not found") {
		t.Errorf("exec of a missing command: %s", r)
	}
	// stop: SIGTERM ends the shell (143); wait prints it; ps --all shows it.
	start := time.Now()
	ns.ok("stop", "box1")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("stop took %v: SIGTERM was not delivered", d)
	}
	if got := ns.ok("wait", "box1"); got != "143\n" {
		t.Errorf("wait printed %q", got)
	}
	if e := ns.ps(true)["box1"]; e.Running || e.ExitCode != 143 {
		t.Errorf("ps --all after stop: %+v", e)
	}
	if _, ok := ns.ps(false)["box1"]; ok {
		t.Errorf("ps lists a stopped sandbox")
	}
	if pids := processesWith(marker); len(pids) > 0 {
		t.Errorf("processes left after stop: %v", pids)
	}
	ns.ok("rm", "box1")
	if e := ns.entries(); len(e) > 0 {
		t.Errorf("state left after rm: %v", e)
	}
}

func TestNamedAttachedAndNameRules(t *testing.T) {
	ns := newNamedState(t)
	if r := ns.rbox("run", "--name", "job", "--", "sh", "-c", "exit 3"); r.code != 3 {
		t.Fatalf("attached named run: %s", r)
	}
	if e := ns.ps(true)["job"]; e.Running || e.ExitCode != 3 {
		t.Errorf("ps --all: %+v", e)
	}
	oneLine(t, "name in use", ns.rbox("run", "--name", "job", "--", "true"), "in use")
	oneLine(t, "name in use (-d)", ns.rbox("run", "--name", "job", "-d", "--", "true"), "in use")
	ns.ok("rm", "job")
	// --rm leaves nothing; a command that could not start leaves nothing.
	ns.ok("run", "--rm", "--name", "job", "--", "true")
	r := ns.rbox("run", "-d", "--name", "job", "--", "no-such-command")
	if r.code != 127 || !strings.Contains(r.stderr, "no-such-command: command not found") {
		t.Errorf("run -d of a missing command: %s", r)
	}
	if e := ns.entries(); len(e) > 0 {
		t.Errorf("state left: %v", e)
	}
	// A command named like one of rbox's runs in a sandbox after --.
	if r := rbox(t, "--", "rm", "-f", "/tmp/nothing"); r.code != 0 {
		t.Errorf("rbox -- rm -f /tmp/nothing: %s", r)
	}
	// `rbox -- cmd` and `rbox run -- cmd` still work unnamed.
	if got := strings.TrimSpace(rbox(t, "run", "--", "echo", "plain").stdout); got != "plain" {
		t.Errorf("rbox run -- echo plain: %q", got)
	}
}

func TestNamedBadInput(t *testing.T) {
	ns := newNamedState(t)
	for _, args := range [][]string{
		{"exec", "ghost", "--", "true"}, {"stop", "ghost"}, {"kill", "ghost"}, {"logs", "ghost"},
		{"wait", "ghost"}, {"rm", "ghost"},
	} {
		oneLine(t, strings.Join(args, " "), ns.rbox(args...), `no sandbox named "ghost"`)
	}
	for _, name := range []string{"../x", "-x", "a/b", ".hidden", strings.Repeat("n", 64), "a b"} {
		oneLine(t, "run --name "+name, ns.rbox("run", "--name="+name, "--", "true"), "invalid sandbox name")
		oneLine(t, "exec "+name, ns.rbox("exec", "--", name, "true"), "invalid sandbox name")
	}
	ns.ok("run", "--name", "done", "--", "true")
	oneLine(t, "exec into a stopped sandbox", ns.rbox("exec", "done", "--", "true"), "not running")
	oneLine(t, "stop of a stopped sandbox", ns.rbox("stop", "done"), "not running")
	oneLine(t, "kill of a stopped sandbox", ns.rbox("kill", "done"), "not running")
	oneLine(t, "-d with -t", ns.rbox("run", "-d", "-t", "--name", "x", "--", "true"), "-d and -t")
	oneLine(t, "kill -s bad", ns.rbox("kill", "-s", "NOPE", "done"), "unknown signal")
	ns.ok("run", "-d", "--name", "live", "--", "sleep", "300")
	oneLine(t, "rm of a running sandbox", ns.rbox("rm", "live"), "is running")
	oneLine(t, "exec without a command", ns.rbox("exec", "live"), "missing command")
	ns.ok("rm", "-f", "live", "done")
	if e := ns.entries(); len(e) > 0 {
		t.Errorf("state left: %v", e)
	}
}

func TestNamedConcurrentSameName(t *testing.T) {
	ns := newNamedState(t)
	for round := 0; round < 3; round++ {
		var wg sync.WaitGroup
		results := make([]result, 4)
		for i := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = ns.rbox("run", "-d", "--name", "race", "--", "sleep", "300")
			}()
		}
		wg.Wait()
		won := 0
		for _, r := range results {
			switch {
			case r.code == 0:
				won++
			default:
				oneLine(t, "the losers of a race for a name", r, "in use")
			}
		}
		if won != 1 {
			t.Fatalf("%d of 4 concurrent runs of one name won: %v", won, results)
		}
		ns.ok("rm", "-f", "race")
	}
}

func TestNamedSupervisorKilled(t *testing.T) {
	ns := newNamedState(t)
	marker := fmt.Sprintf("named-kill9-%d", time.Now().UnixNano())
	ns.ok("run", "-d", "--name", "victim", "--", "sh", "-c", "sleep 300; : "+marker)
	e := ns.ps(false)["victim"]
	if e.Supervisor.PID == 0 || len(processesWith(marker)) < 2 {
		t.Fatalf("not running: %+v", e)
	}
	if err := syscall.Kill(e.Supervisor.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Gone (or a zombie): its threads have ended and released its files.
	waitFor(t, "the supervisor to end", 5*time.Second, func() bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", e.Supervisor.PID))
		return err != nil || strings.Contains(string(b), "State:\tZ")
	})
	waitFor(t, "the sandbox to die with its supervisor", 5*time.Second, func() bool { return len(processesWith(marker)) == 0 })
	// ps recognises the entry as dead once the last of the supervisor's
	// threads has ended (which releases its lock), and cleans it.
	waitFor(t, "ps --all to show nothing", 5*time.Second, func() bool { return len(ns.ps(true)) == 0 })
	if e := ns.entries(); len(e) > 0 {
		t.Errorf("state left: %v", e)
	}
	// The name is free again.
	ns.ok("run", "-d", "--name", "victim", "--rm", "--", "sleep", "300")
	ns.ok("stop", "-t", "0", "victim")
}

// A detached sandbox lives on when the terminal session that started it
// goes: SIGHUP to that session's processes.
func TestNamedDetachedSurvivesHangup(t *testing.T) {
	ns := newNamedState(t)
	cmd := exec.Command("sh", "-c", rboxBin+" run -d --name survivor -- sleep 300 && sleep 300")
	ns.env(cmd)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the sandbox", 10*time.Second, func() bool { return ns.ps(false)["survivor"].Running })
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	time.Sleep(200 * time.Millisecond)
	if !ns.ps(false)["survivor"].Running {
		t.Fatalf("the detached sandbox died with its session")
	}
	if got := ns.ok("exec", "survivor", "--", "echo", "alive"); got != "alive\n" {
		t.Errorf("exec after the hangup: %q", got)
	}
	ns.ok("kill", "survivor")
	if got := ns.ok("wait", "survivor"); got != "137\n" {
		t.Errorf("wait after kill: %q", got)
	}
	ns.ok("rm", "survivor")
}

func TestNamedParallel(t *testing.T) {
	ns := newNamedState(t)
	marker := fmt.Sprintf("named-par-%d", time.Now().UnixNano())
	const n = 50
	each := func(f func(i int)) {
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() { defer wg.Done(); f(i) }()
		}
		wg.Wait()
	}
	each(func(i int) {
		if r := ns.rbox("run", "-d", "--rm", "--name", fmt.Sprintf("p%d", i), "--", "sh", "-c", "sleep 300; : "+marker); r.code != 0 {
			t.Errorf("run p%d: %s", i, r)
		}
	})
	if got := len(ns.ps(false)); got != n {
		t.Errorf("ps lists %d running sandboxes, want %d", got, n)
	}
	each(func(i int) {
		if r := ns.rbox("stop", fmt.Sprintf("p%d", i)); r.code != 0 {
			t.Errorf("stop p%d: %s", i, r)
		}
	})
	if pids := processesWith(marker); len(pids) > 0 {
		t.Errorf("processes left: %v", pids)
	}
	if e := ns.entries(); len(e) > 0 {
		t.Errorf("state left: %v", e)
	}
}

func TestExecTTYAndSlowPath(t *testing.T) {
	ns := newNamedState(t)
	// CAP_SYS_PTRACE makes pid 1 the re-executed initproc: exec must join
	// that sandbox the same.
	ns.ok("run", "-d", "--name", "tty", "--cap-add", "SYS_PTRACE", "--", "sleep", "300")
	out := ns.ok("exec", "-t", "tty", "--", "sh", "-c", "tty; test -t 0 && test -t 1 && echo terminal")
	if !strings.Contains(out, "/dev/pts/") || !strings.Contains(out, "terminal") {
		t.Errorf("exec -t: %q", out)
	}
	if got := ns.ok("exec", "--uid", "0", "tty", "--", "id", "-u"); got != "0\n" {
		t.Errorf("exec --uid 0: %q", got)
	}
	ns.ok("stop", "-t", "1", "tty")
	ns.ok("rm", "tty")
}

// The default state directory, /tmp/rbox-UID when XDG_RUNTIME_DIR is unset,
// is private and checked.
func TestNamedDefaultStateDir(t *testing.T) {
	dir := fmt.Sprintf("/tmp/rbox-%d", os.Getuid())
	noXDG := func(cmd *exec.Cmd) {
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "XDG_RUNTIME_DIR=") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
	}
	if r := rboxCmd(t, noXDG, "ps"); r.code != 0 {
		t.Fatalf("ps: %s", r)
	}
	st, err := os.Lstat(dir)
	if err != nil || !st.IsDir() || st.Mode().Perm() != 0o700 || int(st.Sys().(*syscall.Stat_t).Uid) != os.Getuid() {
		t.Fatalf("%s: %v %v", dir, st.Mode(), err)
	}
}

// stop escalates to SIGKILL when the command ignores SIGTERM.
func TestNamedStopEscalates(t *testing.T) {
	ns := newNamedState(t)
	ns.ok("run", "-d", "--name", "stubborn", "--", "sh", "-c", `trap "" TERM; echo ready; while :; do sleep 0.1; done`)
	waitFor(t, "the trap", 5*time.Second, func() bool { return strings.Contains(ns.ok("logs", "stubborn"), "ready") })
	start := time.Now()
	ns.ok("stop", "-t", "1", "stubborn")
	if d := time.Since(start); d < time.Second || d > 6*time.Second {
		t.Errorf("stop -t 1 of a command ignoring SIGTERM took %v", d)
	}
	if got := ns.ok("wait", "stubborn"); got != "137\n" {
		t.Errorf("wait: %q", got)
	}
	ns.ok("rm", "stubborn")
}

// A detached sandbox's log is bounded; logs -f follows it to the end.
func TestNamedLogs(t *testing.T) {
	ns := newNamedState(t)
	ns.ok("run", "-d", "--name", "chatty", "--", "sh", "-c", `head -c 20000000 /dev/zero | tr '\0' x; echo; echo last line`)
	ns.rbox("wait", "chatty")
	var total int64
	for _, f := range []string{"log", "log.1"} {
		st, err := os.Stat(filepath.Join(ns.xdg, "rbox", "sandboxes", "chatty", f))
		if err != nil {
			t.Fatal(err)
		}
		total += st.Size()
	}
	if total > 8<<20+64<<10 {
		t.Errorf("the log holds %d bytes, more than its bound", total)
	}
	if out := ns.ok("logs", "chatty"); !strings.HasSuffix(out, "x\nlast line\n") || int64(len(out)) != total {
		t.Errorf("logs printed %d bytes ending %q", len(out), out[max(0, len(out)-20):])
	}
	ns.ok("run", "-d", "--name", "ticker", "--", "sh", "-c", `for i in 1 2 3 4 5; do echo tick $i; sleep 0.2; done`)
	out := ns.ok("logs", "-f", "ticker")
	if !strings.Contains(out, "tick 1\n") || !strings.HasSuffix(out, "tick 5\n") {
		t.Errorf("logs -f: %q", out)
	}
	oneLine(t, "logs of an attached sandbox", func() result { ns.ok("run", "--name", "att", "--", "true"); return ns.rbox("logs", "att") }(), "attached")
	ns.ok("rm", "chatty", "ticker", "att")
}

// --net sandbox:NAME: a second sandbox shares a running one's network (its
// loopback services, its interfaces) but has its own mount namespace, host
// name and processes.
func TestNamedNetSandbox(t *testing.T) {
	ns := newNamedState(t)
	ns.ok("run", "-d", "--name", "db", "--", "sh", "-c", `while :; do echo hello-from-db | busybox nc -l -p 5432; done`)
	// 5432 is 0x1538, listening is state 0A (busybox listens on IPv6's
	// any address, which takes IPv4 too).
	waitFor(t, "db's listener", 5*time.Second, func() bool {
		return strings.Contains(ns.ok("exec", "db", "--", "cat", "/proc/net/tcp", "/proc/net/tcp6"), ":1538 00000000000000000000000000000000:0000 0A")
	})
	nsLinks := "readlink /proc/self/ns/net /proc/self/ns/user /proc/self/ns/mnt /proc/self/ns/pid"
	out := ns.ok("run", "--net", "sandbox:db", "--hostname", "second", "--", "sh", "-c",
		"busybox nc 127.0.0.1 5432 </dev/null; hostname; "+nsLinks+"; ls /sys/class/net")
	db := strings.Fields(ns.ok("exec", "db", "--", "sh", "-c", nsLinks))
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 7 || lines[0] != "hello-from-db" || lines[1] != "second" {
		t.Fatalf("the second sandbox printed %q", out)
	}
	if lines[2] != db[0] || lines[3] != db[1] || lines[4] == db[2] || lines[5] == db[3] {
		t.Errorf("namespaces: second %v, db %v: want net and user shared, mount and pid not", lines[2:6], db)
	}
	if lines[6] != "lo" {
		t.Errorf("the second sandbox's /sys/class/net lists %q, want db's (lo)", lines[6])
	}
	oneLine(t, "--net sandbox: of an unknown sandbox", ns.rbox("run", "--net", "sandbox:ghost", "--", "true"), `no sandbox named "ghost"`)
	oneLine(t, "--net sandbox: with -p", ns.rbox("run", "--net", "sandbox:db", "-p", "18999:80", "--", "true"), "belong to the sandbox")
	ns.ok("rm", "-f", "db")
	oneLine(t, "--net sandbox: of an ended sandbox", ns.rbox("run", "--net", "sandbox:db", "--", "true"), `no sandbox named "db"`)
}
