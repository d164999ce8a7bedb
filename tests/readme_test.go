//go:build integration

package tests

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// readmeCommands are the commands of README.md's ```sh blocks, in order:
// every non-blank line that is not a comment, lines ending in \ joined
// with the next (README.md's contributing notes state the rule).
func readmeCommands(t *testing.T) []string {
	t.Helper()
	path := os.Getenv("RBOX_README")
	if path == "" {
		path = "../README.md"
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("README.md (RBOX_README, set by scripts/run-integration): %v", err)
	}
	defer f.Close()
	var cmds []string
	in, pending := false, ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case !in && strings.TrimSpace(line) == "```sh":
			in = true
		case in && strings.HasPrefix(line, "```"):
			in = false
		case in:
			if c, ok := strings.CutSuffix(line, `\`); ok {
				pending += c
				continue
			}
			line, pending = pending+line, ""
			if s := strings.TrimSpace(line); s != "" && !strings.HasPrefix(s, "#") {
				cmds = append(cmds, s)
			}
		}
	}
	if len(cmds) < 10 {
		t.Fatalf("found %d commands in README.md's ```sh blocks; the extraction is broken", len(cmds))
	}
	return cmds
}

// readmeProject is the scratch project the README's commands run in, and
// the environment they run with: rbox (a copy, as an installed one is, not
// a symlink) and its helpers on PATH, HOME with data/job.py, an image
// store of its own.
type readmeProject struct {
	dir, home, bin string
	env            []string
}

func newReadmeProject(t *testing.T) *readmeProject {
	t.Helper()
	p := &readmeProject{dir: hostDir(t)}
	p.home = filepath.Join(p.dir, "home")
	p.bin = filepath.Join(p.dir, "bin")
	writeFile(t, filepath.Join(p.dir, "src/Makefile"), "all:\n\t@pwd > made-in\n")
	writeFile(t, filepath.Join(p.dir, "go.mod"), "module example.com/readme\n\ngo 1.21\n")
	writeFile(t, filepath.Join(p.home, "data/job.py"), "import os\nprint('job in', os.getcwd())\n")
	writeFile(t, filepath.Join(p.dir, "docker-profile.json"),
		`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}`)
	writeFile(t, filepath.Join(p.dir, "test.sh"), "#!/bin/sh\nmkdir /tmp/x 2>/dev/null && exit 1\necho test.sh ran in $(pwd)\n")
	os.Chmod(filepath.Join(p.dir, "test.sh"), 0o755)
	// ./alpine: a busybox tree with a stand-in apk (there is no Alpine
	// mirror here) that writes to the overlay as apk would.
	alpine := rootfsDir(t)
	writeFile(t, filepath.Join(alpine, "bin/apk"), "#!/bin/sh\n[ \"$1\" = add ] || exit 1\nmkdir -p /usr/bin && echo '#!/bin/sh' > /usr/bin/$2 && echo stand-in apk: added $2\n")
	os.Chmod(filepath.Join(alpine, "bin/apk"), 0o755)
	if err := os.Rename(alpine, filepath.Join(p.dir, "alpine")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p.dir, "alpine-minirootfs.tar.gz"), gzipped(t, tarOf(t, busyboxEntries(t))), 0o644); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(p.bin, 0o755)
	copyFile(t, rboxBin, filepath.Join(p.bin, "rbox"))
	for _, h := range []string{"rbox-image", "rbox-seccomp"} {
		if err := os.Symlink(filepath.Join(filepath.Dir(rboxBin), h), filepath.Join(p.bin, h)); err != nil {
			t.Fatal(err)
		}
	}
	path := p.bin + ":" + os.Getenv("PATH")
	// Go for the go mod example (scripts/run-integration passes its root;
	// the test user's PATH may not have it).
	if goBin := filepath.Join(os.Getenv("RBOX_GOROOT"), "bin"); fileExists(filepath.Join(goBin, "go")) {
		path += ":" + goBin
	}
	p.env = append(os.Environ(), "PATH="+path, "HOME="+p.home, "RBOX_STORAGE_ROOT="+filepath.Join(p.dir, "store"),
		"GOTOOLCHAIN=local", "GOFLAGS=-mod=mod", "RBOX_CONFIG="+filepath.Join(p.dir, "no-config.toml"),
		// Named sandboxes' and networks' state, gone with the project.
		"XDG_RUNTIME_DIR="+filepath.Join(p.dir, "run"))
	if err := os.Mkdir(filepath.Join(p.dir, "run"), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The store and the upper directory hold files of subordinate ids.
		rbox(t, "--bind", p.dir+":/d", "--", "rm", "-rf", "/d/store", "/d/upper")
	})
	return p
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// command is one README line ready to run in the project.
func (p *readmeProject) command(ctx context.Context, line string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "bash", "-c", line)
	cmd.Dir, cmd.Env = p.dir, p.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

// TestReadmeExamples runs every command of README.md's ```sh blocks as
// written, in order (image import before --image).
func TestReadmeExamples(t *testing.T) {
	p := newReadmeProject(t)
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "<title>Example Domain</title>\n")
	}))
	defer site.Close()
	for _, line := range readmeCommands(t) {
		// Local stand-ins for the network targets.
		run := strings.ReplaceAll(line, "https://example.org", site.URL)
		if strings.Contains(run, " -p ") {
			testPublishExample(t, p, run)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
		cmd := p.command(ctx, run)
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Errorf("README command failed: %s\n%v\n%s", line, err, out)
			continue
		}
		t.Logf("%s\n%s", line, out)
		switch {
		case strings.Contains(line, "example.org"):
			if !strings.Contains(string(out), "Example Domain") {
				t.Errorf("%s: the page did not come through:\n%s", line, out)
			}
		case strings.Contains(line, "-- make"):
			// The cwd rule: make starts in /work, where the cwd or -w is.
			want := "/work"
			if strings.Contains(line, "-C src") {
				want = "/work/src"
			}
			if b, err := os.ReadFile(filepath.Join(p.dir, "src/made-in")); err != nil || strings.TrimSpace(string(b)) != want {
				t.Errorf("%s: make ran in %q, %v; want %s", line, b, err, want)
			}
			os.Remove(filepath.Join(p.dir, "src/made-in"))
		case strings.Contains(line, "./test.sh"):
			if !strings.Contains(string(out), "test.sh ran in /work") {
				t.Errorf("%s: %s", line, out)
			}
		case strings.Contains(line, "getent hosts db"):
			if f := strings.Fields(string(out)); len(f) < 2 || net.ParseIP(f[0]) == nil || f[1] != "db" {
				t.Errorf("%s: db's name did not resolve on the network:\n%s", line, out)
			}
		case strings.HasPrefix(line, "rbox exec web"):
			if strings.TrimSpace(string(out)) != "rbox-init" {
				t.Errorf("%s: not inside web:\n%s", line, out)
			}
		case strings.HasPrefix(line, "rbox ps"):
			if !strings.Contains(string(out), "web") {
				t.Errorf("%s: web is not listed:\n%s", line, out)
			}
		case strings.Contains(line, "apk add"):
			if fileExists(filepath.Join(p.dir, "alpine/usr/bin/curl")) {
				t.Errorf("%s: the overlay's changes reached ./alpine", line)
			}
		}
	}
}

// testPublishExample starts a -p example with a free host port, reaches the
// sandbox's server from the host, and stops it.
func testPublishExample(t *testing.T, p *readmeProject, line string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	fields := strings.Fields(line)
	for i, f := range fields {
		if i > 0 && fields[i-1] == "-p" {
			_, inside, _ := strings.Cut(f, ":")
			fields[i] = fmt.Sprintf("%d:%s", port, inside)
		}
	}
	run := strings.Join(fields, " ")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := p.command(ctx, "exec "+run)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var reached bool
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
		if err == nil {
			resp.Body.Close()
			reached = resp.StatusCode == 200
			break
		}
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		t.Errorf("%s: did not stop on SIGTERM", line)
	}
	if !reached {
		t.Errorf("README command %s: the host's 127.0.0.1:%d did not reach the sandbox's server", line, port)
	}
}
