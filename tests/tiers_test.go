//go:build integration

package tests

// The isolation tiers (docs/tiers.md): rbox on hosts that refuse user
// namespaces, or give them no capabilities, simulated by tests/hostsim's
// seccomp filters; the landlock tier seen from inside and from the host.

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// hostsimBin is tests/hostsim, built by scripts/run-integration.
func hostsimBin(t *testing.T) string {
	t.Helper()
	p := os.Getenv("RBOX_HOSTSIM")
	if p == "" {
		t.Fatal("RBOX_HOSTSIM must name the binary built from tests/hostsim (`just integration` sets it)")
	}
	return p
}

// onHost runs rbox on the simulated host sim ("" for this one).
func onHost(t *testing.T, sim string) func(*exec.Cmd) {
	if sim == "" {
		return nil
	}
	bin := hostsimBin(t)
	return func(cmd *exec.Cmd) {
		cmd.Path = bin
		cmd.Args = append([]string{bin, sim, rboxBin}, cmd.Args[1:]...)
	}
}

// landlockHost is one way a run ends in the landlock tier here.
type landlockHost struct {
	name  string
	sim   string   // tests/hostsim's mode, or ""
	flags []string // rbox flags that lead there
	// blocker is what the tier line says kept the full tier out.
	blocker string
}

var landlockHosts = []landlockHost{
	{name: "no user namespaces", sim: "nouserns", blocker: "user namespaces are refused here"},
	{name: "no capabilities in the namespace", sim: "nocaps", blocker: "the user namespace holds no capabilities"},
	{name: "asked", flags: []string{"--isolation", "landlock"}, blocker: "as asked"},
}

// probe runs the probe on h, bound where it is.
func (h landlockHost) probe(t *testing.T, flags []string, args ...string) result {
	t.Helper()
	p := probeBin(t)
	all := append(append(append([]string{}, h.flags...), flags...), "--ro-bind", p+":"+p, "--", p)
	return rboxCmd(t, onHost(t, h.sim), append(all, args...)...)
}

// tierLine requires exactly one landlock tier line naming why.
func tierLine(t *testing.T, h landlockHost, r result) {
	t.Helper()
	n := strings.Count(r.stderr, "rbox: isolation: landlock tier")
	if n != 1 || !strings.Contains(r.stderr, h.blocker) {
		t.Errorf("%s: want one tier line saying %q, got\n%s", h.name, h.blocker, r)
	}
}

// From inside the landlock tier: the tier line, the environment, the fds,
// no_new_privs and seccomp, the private temporary directory (removed at
// the end), the binds and nothing else.
func TestTierLandlockInside(t *testing.T) {
	for _, h := range landlockHosts {
		t.Run(h.name, func(t *testing.T) {
			before := tmpEntries(t)
			rw, ro := hostDir(t), hostDir(t)
			writeFile(t, filepath.Join(ro, "file"), "RO\n")
			script := `echo "tmpdir=$TMPDIR"; echo x > "$TMPDIR/f" && echo tmp-writable;
				grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status | tr -d '\t';
				echo "uid=$(id -u)"; echo "pwd=$(pwd)"; echo "sid=$(ps -o sid= -p $$ | tr -d ' ') pid=$$";
				cat ` + ro + `/file; echo new > ` + rw + `/new && echo rw-ok; echo no > ` + ro + `/new || echo ro-refused`
			r := rboxCmd(t, func(cmd *exec.Cmd) {
				cmd.Dir = rw
				if p := onHost(t, h.sim); p != nil {
					p(cmd)
				}
			}, append(append([]string{}, h.flags...), "--bind", rw+":"+rw, "--ro-bind", ro+":"+ro, "--env", "RBOX_T=1", "--", "sh", "-c", script)...)
			if r.code != 0 {
				t.Fatalf("%s", r)
			}
			tierLine(t, h, r)
			out := r.stdout
			for _, want := range []string{"tmp-writable", "NoNewPrivs:1", "Seccomp:2", "uid=" + strconv.Itoa(os.Getuid()), "pwd=" + rw, "RO", "rw-ok", "ro-refused"} {
				if !strings.Contains(out, want) {
					t.Errorf("want %q inside, got\n%s", want, r)
				}
			}
			if b, err := os.ReadFile(filepath.Join(rw, "new")); err != nil || string(b) != "new\n" {
				t.Errorf("the write to the read-write bind did not reach the host: %q %v", b, err)
			}
			if _, err := os.Stat(filepath.Join(ro, "new")); err == nil {
				t.Error("a file appeared in the read-only bind")
			}
			// A session of its own: the shell leads it.
			var sid, pid string
			for _, f := range strings.Fields(strings.ReplaceAll(out, "\n", " ")) {
				if v, ok := strings.CutPrefix(f, "sid="); ok {
					sid = v
				}
				if v, ok := strings.CutPrefix(f, "pid="); ok {
					pid = v
				}
			}
			if sid == "" || sid != pid {
				t.Errorf("want the command in a session of its own (sid %q, pid %q)", sid, pid)
			}
			var tmp string
			for _, l := range strings.Split(out, "\n") {
				if v, ok := strings.CutPrefix(l, "tmpdir="); ok {
					tmp = v
				}
			}
			if !strings.Contains(tmp, "rbox-landlock-") {
				t.Errorf("TMPDIR is %q, want rbox's private directory", tmp)
			} else if _, err := os.Stat(tmp); err == nil {
				t.Errorf("the private temporary directory %s outlived the run", tmp)
			}
			checkNoNewTmp(t, before)
		})
	}
}

// checkNoNewTmp fails when rbox left entries in /tmp.
func checkNoNewTmp(t *testing.T, before map[string]bool) {
	t.Helper()
	for e := range tmpEntries(t) {
		if !before[e] && strings.HasPrefix(e, "rbox-landlock-") {
			t.Errorf("rbox left %s in %s", e, os.TempDir())
		}
	}
}

// The command gets fds 0, 1 and 2 and those --preserve-fds passes, nothing
// of rbox's.
func TestTierLandlockFDs(t *testing.T) {
	for _, h := range landlockHosts {
		t.Run(h.name, func(t *testing.T) {
			r := h.probe(t, nil, "fds")
			if r.code != 1 || strings.Contains(r.stdout, "fd 3") {
				t.Errorf("want only fds 0-2, got\n%s", r)
			}
			f, err := os.Open("/dev/null")
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			r = rboxCmd(t, func(cmd *exec.Cmd) {
				cmd.ExtraFiles = []*os.File{f}
				if p := onHost(t, h.sim); p != nil {
					p(cmd)
				}
			}, append(append([]string{}, h.flags...), "--preserve-fds", "1", "--ro-bind", probeBin(t)+":"+probeBin(t), "--", probeBin(t), "fds")...)
			if items(r)["fd 3"] != "/dev/null" || strings.Contains(r.stdout, "fd 4") {
				t.Errorf("--preserve-fds 1: want fd 3 (/dev/null) and no other, got\n%s", r)
			}
		})
	}
}

// Where the full tier cannot run, auto falls to the landlock tier and says
// why; --isolation full refuses, with exit 125 and one line; nothing runs.
func TestIsolationFullRefuses(t *testing.T) {
	for sim, why := range map[string]string{
		"nouserns":  "user namespaces are refused here",
		"maxuserns": "user.max_user_namespaces is 0 or reached",
		"nocaps":    "the user namespace holds no capabilities",
	} {
		t.Run(sim, func(t *testing.T) {
			if r := rboxCmd(t, onHost(t, sim), "--", "true"); r.code != 0 || !strings.Contains(r.stderr, "isolation: landlock tier") || !strings.Contains(r.stderr, why) {
				t.Errorf("auto: want the landlock tier, saying %q, got\n%s", why, r)
			}
			marker := hostDir(t)
			r := rboxCmd(t, onHost(t, sim), "--isolation", "full", "--bind", marker+":"+marker, "--", "touch", marker+"/ran")
			if r.code != 125 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "the full tier cannot run: ") || !strings.Contains(r.stderr, why) {
				t.Errorf("want exit 125 and one line, got\n%s", r)
			}
			if _, err := os.Stat(marker + "/ran"); err == nil {
				t.Error("the command ran")
			}
		})
	}
}

// hostUserNS is this process's user namespace, as /proc shows it.
func hostUserNS(t *testing.T) string {
	t.Helper()
	ns, err := os.Readlink("/proc/self/ns/user")
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

// On this host, auto is the full tier, silently.
func TestIsolationAutoFullHere(t *testing.T) {
	r := rbox(t, "--", "readlink", "/proc/self/ns/user")
	if r.code != 0 || strings.TrimSpace(r.stdout) == hostUserNS(t) || strings.Contains(r.stderr, "isolation") {
		t.Errorf("want the full tier (the shell as pid 1) and no tier line, got\n%s", r)
	}
}

// rbox inside rbox without --allow-nested is a host without user
// namespaces: the inner rbox falls to the landlock tier and says so; with
// --allow-nested it gets the full tier.
func TestIsolationNested(t *testing.T) {
	bin := rboxBin
	// The outer sandbox's user namespace, and the one the inner command
	// runs in.
	inner := []string{"--ro-bind", bin + ":" + bin, "--", "sh", "-c", "readlink /proc/self/ns/user; " + bin + " -- readlink /proc/self/ns/user"}
	sameNS := func(r result) bool {
		l := strings.Fields(r.stdout)
		return len(l) == 2 && l[0] == l[1]
	}
	r := rbox(t, inner...)
	if r.code != 0 || !sameNS(r) || !strings.Contains(r.stderr, "isolation: landlock tier") ||
		!strings.Contains(r.stderr, "user namespaces are refused here") {
		t.Errorf("nested without --allow-nested: want the landlock tier, got\n%s", r)
	}
	// As root, the outer sandbox keeps its /proc masks (host uid 0 is
	// mapped), so the inner one is the degraded tier (no fresh /proc).
	r = rbox(t, append([]string{"--allow-nested"}, inner...)...)
	if r.code != 0 || sameNS(r) || !onlyTierLine(r.stderr, os.Getuid() == 0) {
		t.Errorf("nested with --allow-nested: want the full tier (degraded for a covered /proc as root), got\n%s", r)
	}
	r = rbox(t, "--ro-bind", bin+":"+bin, "--", bin, "--isolation", "full", "--", "true")
	if r.code != 125 || !strings.Contains(r.stderr, "the full tier cannot run") {
		t.Errorf("nested --isolation full: want 125, got\n%s", r)
	}
}

// What the landlock tier cannot do is refused in one line, exit 125,
// nothing left behind: a bind elsewhere than its source, a tmpfs.
func TestTierLandlockRefusals(t *testing.T) {
	before := tmpEntries(t)
	d := hostDir(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--bind", d + ":/work"}, "DST must be SRC: use --bind " + d + ":" + d},
		{[]string{"--tmpfs", "/scratch"}, "--tmpfs /scratch: the landlock tier"},
		{[]string{"--net", "user"}, "use --net host"},
		{[]string{"--hostname", "box"}, "--hostname"},
		{[]string{"--net", "user", "--allow-net", "example.org"}, "--allow-net"},
	} {
		r := rboxCmd(t, onHost(t, "nouserns"), append(c.args, "--", "true")...)
		if r.code != 125 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%v: want exit 125 and one line with %q, got\n%s", c.args, c.want, r)
		}
	}
	r := rboxCmd(t, onHost(t, "nouserns"), "--", "no-such-command-rbox")
	if r.code != 127 {
		t.Errorf("a missing command: want 127, got\n%s", r)
	}
	checkNoNewTmp(t, before)
}

// Root in a container maps every id of its own user namespace, directly,
// without /etc/subuid or a warning. Root inside rbox (--allow-nested) is
// such a root: its sandbox's uid_map and gid_map cover at least 65536 ids.
func TestRootMapsOwnNamespace(t *testing.T) {
	bin := rboxBin
	r := rbox(t, "--allow-nested", "--ro-bind", bin+":"+bin, "--", bin, "--", "sh", "-c", "cat /proc/self/uid_map; echo --; cat /proc/self/gid_map")
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	if !onlyTierLine(r.stderr, os.Getuid() == 0) {
		t.Errorf("want no warning, got\n%s", r)
	}
	uids, gids, _ := strings.Cut(r.stdout, "--\n")
	for name, m := range map[string]string{"uid_map": uids, "gid_map": gids} {
		total := uint64(0)
		for _, l := range mapLines(m) {
			f := strings.Fields(l)
			n, err := strconv.ParseUint(f[2], 10, 32)
			if err != nil {
				t.Fatalf("%s line %q", name, l)
			}
			total += n
		}
		if total < 65536 {
			t.Errorf("inner %s maps %d ids, want 65536 or more:\n%s", name, total, m)
		}
	}
}

// Root of a user namespace made by unshare -r has one id and setgroups(2)
// denied, which the sandbox's namespace inherits: rbox maps that id, skips
// setgroups (its plan's step would fail: "setgroups: operation not
// permitted" before), and says nothing (there is no other id to map).
func TestRootInSetgroupsDeniedNamespace(t *testing.T) {
	cmd := exec.Command("unshare", "--user", "--map-root-user", rboxBin, "--", "sh", "-c", "cat /proc/self/uid_map; cat /proc/self/setgroups")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.String() != "" {
		t.Fatalf("%v\n%s%s", err, out, stderr.String())
	}
	if f := strings.Fields(string(out)); len(f) != 4 || f[0] != "0" || f[2] != "1" || f[3] != "deny" {
		t.Errorf("want one id mapped and setgroups denied inside, got\n%s", out)
	}
}

// rbox check names the tier auto picks, in its text and JSON reports.
func TestCheckShowsTier(t *testing.T) {
	for _, c := range []struct{ sim, status, detail string }{
		{"", "pass", "full: user namespaces with capabilities"},
		{"nouserns", "warn", "landlock (Landlock ABI"},
		{"nocaps", "warn", "the user namespace holds no capabilities"},
	} {
		it, r := checkItem(t, c.sim, "isolation tier")
		if it.Status != c.status || !strings.Contains(it.Detail, c.detail) || (c.status != "pass" && it.Fix == "") {
			t.Errorf("host %q: isolation tier %+v, want %s with %q and a fix\n%s", c.sim, it, c.status, c.detail, r)
		}
	}
}

// checkItem is the item named name of `rbox check --json` on the
// simulated host sim ("" for this one); the test fails without it.
func checkItem(t *testing.T, sim, name string) (item struct{ Name, Status, Detail, Fix string }, r result) {
	t.Helper()
	r = rboxCmd(t, onHost(t, sim), "check", "--json")
	var report struct {
		Items []struct{ Name, Status, Detail, Fix string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &report); err != nil {
		t.Fatalf("%s: %v\n%s", sim, err, r)
	}
	for _, it := range report.Items {
		if it.Name == name {
			return it, r
		}
	}
	t.Fatalf("host %q: no %s item:\n%s", sim, name, r)
	return item, r
}

// Root in a rootless (or, run by root, rootful) podman container maps every
// id of the container's user namespace into rbox's sandbox, without
// /etc/subuid inside or a warning: 65537 for the test user's container
// (itself and its 65536 subordinate ids), 2^32-1 for root's. The image is a
// busybox root filesystem imported into a store of the test's own, removed
// at the end.
func TestRootMapsInPodman(t *testing.T) {
	for _, tool := range []string{"podman", "runc", "busybox"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: scripts/test-setup installs it", tool)
		}
	}
	work := hostDir(t)
	root, runroot := filepath.Join(work, "root"), filepath.Join(work, "run")
	podman := func(args ...string) (string, error) {
		all := append([]string{"--root", root, "--runroot", runroot, "--storage-driver", "vfs",
			"--cgroup-manager", "cgroupfs", "--events-backend", "file", "--runtime", "runc"}, args...)
		cmd := exec.Command("podman", all...)
		cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+runroot, "HOME="+work)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() {
		if out, err := podman("rmi", "-af"); err != nil {
			t.Errorf("podman rmi: %v\n%s", err, out)
		}
		if os.Getuid() == 0 {
			return // the store goes with the test's directory
		}
		// A rootless store holds files of the subordinate ids: remove it
		// from inside podman's user namespace.
		if out, err := podman("unshare", "rm", "-rf", root, runroot); err != nil {
			t.Errorf("remove the podman store: %v\n%s", err, out)
		}
	})
	rootfs := filepath.Join(work, "rootfs")
	busybox, _ := exec.LookPath("busybox")
	for _, d := range []string{"bin", "proc", "sys", "dev", "tmp", "etc"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"sh", "cat"} {
		if err := os.Symlink("busybox", filepath.Join(rootfs, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	tarball := filepath.Join(work, "rootfs.tar")
	if out, err := exec.Command("tar", "-C", rootfs, "-cf", tarball, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	if out, err := podman("import", tarball, "localhost/rbox-tiers-test"); err != nil {
		t.Fatalf("podman import: %v\n%s", err, out)
	}
	// podman's default open-file and process limits exceed what this
	// machine lets root raise them to: small ones do.
	out, err := podman("run", "--rm", "--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096", "-v", rboxBin+":/rbox:ro", "localhost/rbox-tiers-test",
		"/rbox", "--", "cat", "/proc/self/uid_map")
	if err != nil {
		t.Fatalf("rbox in podman: %v\n%s", err, out)
	}
	// podman masks parts of /proc: the degraded tier, said once.
	var said []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "rbox:") {
			said = append(said, l+"\n")
		}
	}
	if len(said) != 1 || !onlyTierLine(said[0], true) {
		t.Errorf("want no warning from rbox in podman, only the tier line for its masked /proc, got\n%s", out)
	}
	total := uint64(0)
	for _, l := range mapLines(out) {
		if f := strings.Fields(l); len(f) == 3 {
			n, _ := strconv.ParseUint(f[2], 10, 32)
			total += n
		}
	}
	if total < 65536 {
		t.Errorf("rbox in podman maps %d ids, want 65536 or more:\n%s", total, out)
	}
}

// Under no_new_privs (a container run with no-new-privileges) the setuid
// newuidmap cannot gain its privilege: an unprivileged caller gets its own
// id alone and one warning saying why; root maps its namespace itself and
// is not affected.
func TestNoNewPrivsMapping(t *testing.T) {
	r := rboxCmd(t, onHost(t, "nnp"), "--", "cat", "/proc/self/uid_map")
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	lines := mapLines(r.stdout)
	if os.Getuid() == 0 {
		if len(lines) < 2 || r.stderr != "" {
			t.Errorf("root under no_new_privs: want its full map and no warning, got\n%s", r)
		}
		return
	}
	warnings := strings.Split(strings.TrimSpace(r.stderr), "\n")
	if len(lines) != 1 || len(warnings) != 1 || !strings.Contains(warnings[0], "no_new_privs is set") ||
		!strings.Contains(warnings[0], "newuidmap cannot gain") {
		t.Errorf("want the caller's id alone and one warning naming no_new_privs, got\n%s", r)
	}
}

// onlyTierLine reports whether stderr holds nothing but, when covered, the
// one degraded tier line for a /proc covered by the enclosing sandbox's
// masks (see TestTierDegradedCoveredProc).
func onlyTierLine(stderr string, covered bool) bool {
	if !covered {
		return stderr == ""
	}
	return strings.Count(stderr, "\n") == 1 && strings.HasPrefix(stderr, "rbox: isolation: degraded tier, not full: no fresh /proc")
}

// The landlock tier searches PATH once confined, as the full tier's pid 1
// does: a directory Landlock hides (here, one outside the binds holding a
// program of the same name) is passed over, and the next one's runs.
func TestTierLandlockHiddenPathEntry(t *testing.T) {
	hidden := hostDir(t)
	writeFile(t, filepath.Join(hidden, "date"), "#!/bin/sh\necho hidden\n")
	if err := os.Chmod(filepath.Join(hidden, "date"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := rbox(t, "--isolation", "landlock", "--env", "PATH="+hidden+":/usr/bin:/bin", "--", "date", "+%Y")
	if r.code != 0 || len(strings.TrimSpace(r.stdout)) != 4 {
		t.Errorf("want /usr/bin/date past the hidden directory, got\n%s", r)
	}
}
