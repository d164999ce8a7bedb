//go:build integration

package tests

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// rbox --version prints the version stamped at build time, the same as
// rbox version; rbox help [COMMAND] prints help; a mistyped subcommand is
// refused, while rbox -- WORD runs WORD.
func TestVersionHelpAndTypos(t *testing.T) {
	v := rbox(t, "--version")
	if v.code != 0 || !regexp.MustCompile(`^rbox \S+\n$`).MatchString(v.stdout) || v.stdout == "rbox dev\n" {
		t.Errorf("--version: want rbox and a stamped version:\n%s", v)
	}
	if v2 := rbox(t, "version"); v2.stdout != v.stdout {
		t.Errorf("rbox version %q differs from --version %q", v2.stdout, v.stdout)
	}
	if r := rbox(t, "help"); r.code != 0 || !strings.Contains(r.stdout, "Usage: rbox") {
		t.Errorf("rbox help:\n%s", r)
	}
	if r := rbox(t, "help", "check"); r.code != 0 || !strings.Contains(r.stdout, "Usage: rbox check") {
		t.Errorf("rbox help check:\n%s", r)
	}
	if r := rbox(t, "imgae", "ls"); r.code != 125 || !strings.Contains(r.stderr, `did you mean "image"`) || !strings.Contains(r.stderr, "rbox -- imgae") {
		t.Errorf("mistyped subcommand:\n%s", r)
	}
	// After --, the word is the sandbox's command (here one that does not
	// exist: 127 from inside, not rbox's 125).
	for _, word := range []string{"help", "chek"} {
		if r := rbox(t, "-q", "--", word); r.code != 127 {
			t.Errorf("rbox -- %s: exit %d, want 127 (run in the sandbox)\n%s", word, r.code, r)
		}
	}
}

// The generated bash completion completes flags and subcommands when bash
// sources it; the man page is roff naming every flag.
func TestCompletionAndMan(t *testing.T) {
	script := rbox(t, "completion", "bash")
	if script.code != 0 {
		t.Fatalf("completion bash:\n%s", script)
	}
	f := filepath.Join(t.TempDir(), "rbox.bash")
	writeFile(t, f, script.stdout)
	out, err := exec.Command("bash", "-c", `source "$1"; COMP_WORDS=(rbox --hostn); COMP_CWORD=1; _rbox; echo "${COMPREPLY[@]}"; COMP_WORDS=(rbox che); _rbox; echo "${COMPREPLY[@]}"; COMP_WORDS=(rbox image l); COMP_CWORD=2; _rbox; echo "${COMPREPLY[@]}"`, "bash", f).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--hostname\ncheck\n") {
		t.Errorf("bash completion: %v\n%s", err, out)
	}
	for _, shell := range []string{"zsh", "fish"} {
		if r := rbox(t, "completion", shell); r.code != 0 || !strings.Contains(r.stdout, "rbox") || !strings.Contains(r.stdout, "ro-bind") {
			t.Errorf("completion %s:\n%s", shell, r)
		}
	}
	man := rbox(t, "man")
	for _, want := range []string{".TH RBOX 1", "ro-bind", "env-mode", "completion"} {
		if !strings.Contains(man.stdout, want) {
			t.Errorf("man page lacks %q", want)
		}
	}
}

// --debug shows rbox's own debug lines, -q hides its warnings.
func TestLogLevels(t *testing.T) {
	if r := rbox(t, "--debug", "--", "true"); r.code != 0 || !strings.Contains(r.stderr, "rbox: debug: sandbox args=[true]") {
		t.Errorf("--debug:\n%s", r)
	}
	if r := rbox(t, "-q", "--", "true"); r.code != 0 || r.stderr != "" {
		t.Errorf("-q printed:\n%s", r)
	}
	if r := rbox(t, "--log-level", "error", "--uid", "1", "--", "true"); r.code != 0 || r.stderr != "" {
		t.Errorf("--log-level error printed:\n%s", r)
	}
}

// $HOME exists inside, writable and empty, and goes with the sandbox;
// --home DIR binds DIR there; a uid without an entry gets one.
func TestHome(t *testing.T) {
	home := hostDir(t)
	inHome := func(c *exec.Cmd) { c.Env = append(os.Environ(), "HOME="+home+"/me") }
	os.Mkdir(home+"/me", 0o755)
	writeFile(t, home+"/me/.secret", "host file")
	r := rboxCmd(t, inHome, "-q", "--", "sh", "-c", `echo "$HOME"; ls -A "$HOME"; touch "$HOME/made" && echo wrote; mkdir -p "$HOME/.cache/go-build" && echo cache`)
	if r.code != 0 || r.stdout != home+"/me\nwrote\ncache\n" {
		t.Errorf("default home: want an empty writable $HOME:\n%s", r)
	}
	if _, err := os.Stat(home + "/me/made"); err == nil {
		t.Error("the sandbox's write to $HOME reached the host")
	}
	dir := hostDir(t)
	r = rboxCmd(t, inHome, "-q", "--home", dir, "--", "sh", "-c", `touch "$HOME/kept"`)
	if _, err := os.Stat(dir + "/kept"); r.code != 0 || err != nil {
		t.Errorf("--home DIR: the write did not reach DIR: %v\n%s", err, r)
	}
	if r := rboxCmd(t, inHome, "-q", "--home", "none", "--", "sh", "-c", `test -e "$HOME"`); r.code != 1 {
		t.Errorf("--home none: $HOME exists:\n%s", r)
	}
	r = rboxCmd(t, inHome, "-q", "--uid", "4321", "--gid", "4321", "--", "sh", "-c", `id -un; id -gn; touch "$HOME/x" && echo ok`)
	if r.code != 0 || !strings.HasSuffix(r.stdout, "\nok\n") || strings.Contains(r.stdout, "4321\n") {
		t.Errorf("uid 4321: want a name for it and a writable home:\n%s", r)
	}
}

// The caller's environment passes in whole by default; --env-mode safe
// keeps secrets out; -e K and --env-file bring chosen ones in.
func TestEnvModes(t *testing.T) {
	secrets := func(c *exec.Cmd) {
		c.Env = append(os.Environ(), "GITHUB_TOKEN=ghp_secret", "AWS_SECRET_ACCESS_KEY=aws_secret", "LC_ALL=C.UTF-8", "TERM=dumb")
	}
	r := rboxCmd(t, secrets, "-q", "--", "env")
	if !strings.Contains(r.stdout, "GITHUB_TOKEN=ghp_secret") {
		t.Errorf("default: the caller's environment did not pass:\n%s", r)
	}
	r = rboxCmd(t, secrets, "-q", "--env-mode", "safe", "--", "env")
	if strings.Contains(r.stdout, "secret") || !strings.Contains(r.stdout, "LC_ALL=C.UTF-8") || !strings.Contains(r.stdout, "PATH=") || !strings.Contains(r.stdout, "TERM=dumb") {
		t.Errorf("--env-mode safe:\n%s", r)
	}
	envFile := filepath.Join(hostDir(t), "env")
	writeFile(t, envFile, "# settings\nFROM_FILE=yes\nAWS_SECRET_ACCESS_KEY\n")
	r = rboxCmd(t, secrets, "-q", "--env-mode", "safe", "-e", "GITHUB_TOKEN", "-e", "NOT_SET_ANYWHERE", "--env-file", envFile, "--", "env")
	for _, want := range []string{"GITHUB_TOKEN=ghp_secret", "FROM_FILE=yes", "AWS_SECRET_ACCESS_KEY=aws_secret"} {
		if !strings.Contains(r.stdout, want+"\n") {
			t.Errorf("-e/--env-file: %s missing:\n%s", want, r)
		}
	}
	if strings.Contains(r.stdout, "NOT_SET_ANYWHERE") {
		t.Errorf("-e of an unset variable set it:\n%s", r)
	}
}

// docker's -v SRC:DST:ro, --mount (a path with ':') and --user.
func TestDockerHabits(t *testing.T) {
	dir := hostDir(t)
	writeFile(t, dir+"/f", "data")
	r := rbox(t, "-q", "-v", dir+":/d:ro", "--", "sh", "-c", "cat /d/f; touch /d/g")
	if r.code == 0 || r.stdout != "data" || !strings.Contains(r.stderr, "Read-only") {
		t.Errorf("-v :ro:\n%s", r)
	}
	colon := filepath.Join(dir, "a:b")
	writeFile(t, colon+"/f", "colon")
	r = rbox(t, "-q", "--mount", "type=bind,src="+colon+",dst=/c", "--mount", "type=tmpfs,dst=/t,tmpfs-size=1MiB", "--", "sh", "-c", "cat /c/f; touch /c/w && df -k /t | tail -1")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "colon") || !strings.Contains(r.stdout, " 1024 ") {
		t.Errorf("--mount:\n%s", r)
	}
	if _, err := os.Stat(colon + "/w"); err != nil {
		t.Errorf("--mount bind is not read-write: %v", err)
	}
	if r := rbox(t, "-q", "--user", "5:6", "--", "sh", "-c", "id -u; id -g"); r.stdout != "5\n6\n" {
		t.Errorf("--user 5:6:\n%s", r)
	}
}

// A profile of the config file applies its flags; the command line wins.
func TestConfigProfile(t *testing.T) {
	dir := hostDir(t)
	config := filepath.Join(dir, "config.toml")
	writeFile(t, config, "[defaults]\nhostname = \"fromdefaults\"\n\n[profiles.untrusted]\nenv-mode = \"safe\"\ntmpfs = [\"/scratch:size=1m\"]\ncap-drop = [\"ALL\"]\n")
	withConfig := func(c *exec.Cmd) { c.Env = append(os.Environ(), "RBOX_CONFIG="+config, "GITHUB_TOKEN=ghp_secret") }
	r := rboxCmd(t, withConfig, "-q", "--profile", "untrusted", "--", "sh", "-c", "hostname; env; df -k /scratch | tail -1; grep CapEff /proc/self/status")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "fromdefaults\n") || strings.Contains(r.stdout, "ghp_secret") || !strings.Contains(r.stdout, " 1024 ") || !strings.Contains(r.stdout, "0000000000000000") {
		t.Errorf("--profile untrusted:\n%s", r)
	}
	if r := rboxCmd(t, withConfig, "-q", "--hostname", "cmdline", "--", "hostname"); r.stdout != "cmdline\n" {
		t.Errorf("the command line does not win over the config file:\n%s", r)
	}
	if r := rboxCmd(t, withConfig, "--profile", "nope", "--", "true"); r.code != 125 || !strings.Contains(r.stderr, "no such profile") {
		t.Errorf("unknown profile:\n%s", r)
	}
}

// check --json and image ls --json carry a schema version.
func TestJSONSchemaVersions(t *testing.T) {
	var report struct {
		SchemaVersion int               `json:"schema_version"`
		Items         []json.RawMessage `json:"items"`
	}
	r := rbox(t, "check", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &report); err != nil || report.SchemaVersion != 1 || len(report.Items) < 10 {
		t.Errorf("check --json: %v\n%s", err, r)
	}
	var ls struct {
		SchemaVersion int               `json:"schema_version"`
		Images        []json.RawMessage `json:"images"`
	}
	r = image(t, store(t), "ls", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &ls); err != nil || ls.SchemaVersion != 1 || ls.Images == nil {
		t.Errorf("image ls --json: %v\n%s", err, r)
	}
}

// Under `env -i` (no PATH) rbox still finds newuidmap, newgidmap and pasta
// in the system directories; the command gets no PATH it was not given.
func TestNoCallerPath(t *testing.T) {
	noEnv := func(c *exec.Cmd) { c.Env = []string{} }
	r := rboxCmd(t, noEnv, "--net", "user", "--", "/bin/sh", "-c", `cat /proc/self/uid_map; tr '\0' '\n' < /proc/$$/environ`)
	if r.code != 0 || strings.Contains(r.stderr, "not found") || strings.Contains(r.stdout, "PATH=") {
		t.Fatalf("env -i:\n%s", r)
	}
	// The subordinate range (65536 ids), or for root every id of its
	// own namespace.
	mapped := 0
	for _, l := range strings.Split(r.stdout, "\n") {
		if f := strings.Fields(l); len(f) == 3 {
			n, _ := strconv.Atoi(f[2])
			mapped += n
		}
	}
	if id := me(t); id.full() && mapped < 65536 {
		t.Errorf("env -i: want the full id map:\n%s", r)
	}
}

// --preserve-fds passes only fds the caller passed: an fd of rbox's own at
// that number (here the image's in-use lock) is refused, not handed over.
func TestPreserveFDsOnlyCallers(t *testing.T) {
	s := store(t)
	tarball := filepath.Join(hostDir(t), "rootfs.tar.gz")
	if err := os.WriteFile(tarball, gzipped(t, tarOf(t, busyboxEntries(t))), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := image(t, s, "import", tarball, "bb"); r.code != 0 {
		t.Fatalf("import:\n%s", r)
	}
	r := rbox(t, "-q", "--storage-root", s, "--image", "bb", "--preserve-fds", "1", "--", "/bin/ls", "/proc/self/fd/")
	if r.code != 125 || !strings.Contains(r.stderr, "fd 3 is not open") {
		t.Errorf("--preserve-fds 1 with the caller's fd 3 closed:\n%s", r)
	}
}

// A mount over the sandbox's /proc or /dev is said, on one line, and done.
func TestMountOverProcWarns(t *testing.T) {
	dir := hostDir(t)
	for _, args := range [][]string{{"--bind", dir + ":/proc"}, {"--tmpfs", "/dev"}} {
		r := rbox(t, append(args, "--", "true")...)
		var warned bool
		for _, l := range strings.Split(r.stderr, "\n") {
			warned = warned || strings.HasPrefix(l, "rbox: warning: --") && strings.Contains(l, "hides the sandbox's own")
		}
		if r.code != 0 || !warned {
			t.Errorf("%v: want exit 0 and a warning:\n%s", args, r)
		}
	}
	if r := rbox(t, "-q", "--bind", dir+":/proc", "--", "true"); r.stderr != "" {
		t.Errorf("-q: %s", r.stderr)
	}
}

// ./x with the caller's directory outside the sandbox says so.
func TestRelativeCommandOutsideSandbox(t *testing.T) {
	dir := hostDir(t)
	writeFile(t, dir+"/x.sh", "#!/bin/sh\necho ran\n")
	os.Chmod(dir+"/x.sh", 0o755)
	inDir := func(c *exec.Cmd) { c.Dir = dir }
	r := rboxCmd(t, inDir, "--", "./x.sh")
	if r.code != 125 || !strings.Contains(r.stderr, "not in the sandbox") || !strings.Contains(r.stderr, "--bind .:/work") {
		t.Errorf("./x.sh, cwd not bound:\n%s", r)
	}
	if r := rboxCmd(t, inDir, "-q", "--bind", ".:/work", "--", "./x.sh"); r.code != 0 || r.stdout != "ran\n" {
		t.Errorf("./x.sh, cwd bound:\n%s", r)
	}
}

// -p PORT chooses a free host port, says which, and forwards it.
func TestPublishChosenPort(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, rboxBin, "--net", "user", "-p", "80", "--", "python3", "-m", "http.server", "80")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	sc := bufio.NewScanner(stderr)
	var addr string
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "rbox: publishing "); ok {
			addr, _, _ = strings.Cut(a, " -> ")
			break
		}
	}
	rest := &syncBuffer{}
	go io.Copy(rest, stderr)
	if addr == "" {
		t.Fatal("rbox did not say which host port it chose")
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if resp, err := http.Get("http://" + addr + "/"); err == nil {
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("status %d", resp.StatusCode)
			}
			return
		}
		if strings.Contains(rest.String(), "is already in use") {
			// A probe's socket held by a child forked meanwhile did
			// that (ports.Free holds ForkLock).
			t.Fatalf("the chosen port was in use when rbox bound it:\n%s", rest)
		}
	}
	t.Errorf("the chosen port %s did not reach the sandbox; rbox's children %v; rbox said after that:\n%s", addr, descendants(cmd.Process.Pid), rest)
}

// A --rootfs tree owned by ids the sandbox does not map, under --overlay:
// kernel overlayfs fails a copy-up with EOVERFLOW. With the full id map
// (fuse-overlayfs gives the copy the overflow id, which must be mapped)
// rbox picks fuse-overlayfs and says why; without it, it says what would.
// Root maps every id of its own namespace, so a tree owned by a far id
// (the only kind root could make) is mapped, and no word is said.
func TestOverlayUnmappedOwners(t *testing.T) {
	id := me(t)
	// The tree: for root, one owned by an id no map has, with a
	// world-writable directory; for the test user, the host's own root,
	// whose /var/tmp is one (root's files are unmapped for it).
	tree, dir := "/", "/var/tmp"
	if id.uid == 0 {
		tree, dir = rootfsDir(t), "/pub"
		os.Mkdir(filepath.Join(tree, "pub"), 0o777)
		os.Chmod(filepath.Join(tree, "pub"), 0o777)
		if out, err := exec.Command("chown", "-R", "4000000000:4000000000", tree).CombinedOutput(); err != nil {
			t.Fatalf("chown: %v\n%s", err, out)
		}
	}
	touch := "touch " + dir + "/rbox-x && echo wrote"
	r := rbox(t, "--rootfs", tree, "--overlay", "--", "/bin/sh", "-c", touch)
	if id.uid == 0 {
		// Root maps every id of its namespace (but the invalid -1):
		// no owner is unmapped, and kernel overlayfs copies up.
		if r.code != 0 || r.stdout != "wrote\n" || strings.Contains(r.stderr, "does not map") {
			t.Errorf("root: want the write done with no word of unmapped owners:\n%s", r)
		}
		return
	}
	if !strings.Contains(r.stderr, "which the sandbox does not map") || !strings.Contains(r.stderr, "EOVERFLOW") {
		t.Errorf("no word of the unmapped owners:\n%s", r)
	}
	if id.full() {
		if r.code != 0 || r.stdout != "wrote\n" || !strings.Contains(r.stderr, "using fuse-overlayfs") {
			t.Errorf("full map: want fuse-overlayfs picked and the write done:\n%s", r)
		}
	} else if r.code == 0 || !strings.Contains(r.stderr, "Value too large") || !strings.Contains(r.stderr, "with the full id map") {
		t.Errorf("single map: want the failure and what would work:\n%s", r)
	}
	if fileExists(filepath.Join(tree, dir, "rbox-x")) {
		t.Errorf("the write reached the tree on the host")
	}
}

// A directory as the command says so, exit 126, for the host's system
// directories, a bind and the sandbox's own directories.
func TestCommandIsDirectory(t *testing.T) {
	dir := hostDir(t)
	for _, c := range [][]string{{"--", "/usr/bin"}, {"--bind", dir + ":/d", "--", "/d"}, {"--", "/tmp"}, {"--bind", dir + ":/d", "-w", "/", "--", "./d"}} {
		r := rbox(t, append([]string{"-q"}, c...)...)
		if r.code != 126 || !strings.HasSuffix(r.stderr, ": is a directory\n") {
			t.Errorf("%v: want exit 126 and \"is a directory\":\n%s", c, r)
		}
	}
}
