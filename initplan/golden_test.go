package initplan

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rbox-dev/rbox/caps"
	"github.com/rbox-dev/rbox/network"
	"github.com/rbox-dev/rbox/seccomp"
	"github.com/rbox-dev/rbox/spec"
)

var update = flag.Bool("update", false, "rewrite the golden plans in testdata/plans")

// format shows a Plan as its system calls: pid 1's stages and hooks, the
// payload's program and its command's search.
func format(pl *Plan) string {
	var b bytes.Buffer
	for i, st := range pl.Init {
		if st.Program == nil {
			fmt.Fprintf(&b, "== pid 1, stage %d: hook: %s (Go, initproc only)\n", i, st.Hook)
			continue
		}
		fmt.Fprintf(&b, "== pid 1, stage %d\n", i)
		_ = st.Program.Format(&b)
	}
	b.WriteString("== payload's process, first (initproc: SysProcAttr)\n")
	_ = pl.Session.Format(&b)
	b.WriteString("== payload's process, before its exec\n")
	_ = pl.Payload.Format(&b)
	fmt.Fprintf(&b, "== exec search: %s\n", strings.Join(pl.Command.Candidates, " "))
	if pl.Command.Arg0 != pl.Command.Name {
		fmt.Fprintf(&b, "== argv[0]: %s\n", pl.Command.Arg0)
	}
	return b.String()
}

// The plans of a default run, a bind-heavy one, one with a terminal and
// the bind-heavy one with a terminal on an old kernel, as system calls, are
// in testdata/plans: a change that alters what pid 1 does shows there (go
// test ./initplan -update rewrites them). They depend on the host's system
// directories (this project's machines: Debian 12) and on the kernel's
// last capability.
func TestGoldenPlans(t *testing.T) {
	// amd64's default filter on every architecture, and open flags shown
	// by name (sysplan.Format), so that the plans read the same on each.
	bpf, err := os.ReadFile(filepath.Join("..", "seccomp", seccomp.EmbeddedFile(seccomp.DefaultOptions{}, "amd64")))
	if err != nil {
		t.Fatal(err)
	}
	filter := &spec.SeccompFilter{BPF: bpf}
	base := func() *spec.Spec {
		return &spec.Spec{
			Args: []string{"make", "-j2"}, Env: []string{"PATH=/usr/bin:/bin", "HOME=/root"},
			Cwd: "/", Hostname: "rbox", Net: spec.NetNone, Caps: caps.Default, SeccompFilter: filter,
			UIDMap: []spec.IDMap{{Inside: 0, Outside: 1000, Count: 1}, {Inside: 1, Outside: 100000, Count: 65536}},
			GIDMap: []spec.IDMap{{Inside: 0, Outside: 1000, Count: 1}, {Inside: 1, Outside: 100000, Count: 65536}},
		}
	}
	binds := base()
	binds.Cwd = "/work"
	binds.UID, binds.GID = 1000, 1000
	binds.Mounts = []spec.Mount{
		{Kind: spec.MountBind, Source: "/srv/project", Dest: "/work"},
		{Kind: spec.MountROBind, Source: "/srv/project/.git", Dest: "/work/.git"},
		{Kind: spec.MountROBind, Source: "/srv/cache/go", Dest: "/root/go/pkg/mod"},
		{Kind: spec.MountTmpfs, Dest: "/work/build", SizeBytes: 64 << 20, Mode: 0o1777},
		{Kind: spec.MountDir, Dest: "/work/out"},
		{Kind: spec.MountSymlink, Source: "/work/out", Dest: "/out"},
		{Kind: spec.MountBind, Source: "/srv/data.db", Dest: "/var/lib/app/data.db"},
	}
	tty := base()
	tty.TTY = true
	// As under a terminal emulator: stdin and stdout are the caller's
	// terminal, stderr is not.
	terminalStdio = func() []int { return []int{0, 1} }
	// The bind-heavy run on a kernel without openat2 and the new mount
	// API, with a terminal: mount(2) and sysplan's walk.
	legacy := base()
	legacy.Cwd, legacy.Mounts, legacy.TTY, legacy.LegacyMount = binds.Cwd, binds.Mounts, true, true
	for name, s := range map[string]*spec.Spec{"default": base(), "bind-heavy": binds, "terminal": tty, "legacy-mount": legacy} {
		pl, err := New(s, Learned{Net: network.ChildConfig{Mode: spec.NetNone}, ConsoleSocket: 7})
		if err != nil {
			t.Fatal(err)
		}
		got := format(pl)
		path := filepath.Join("testdata", "plans", name+".txt")
		if *update {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (go test ./initplan -update writes it)", err)
		}
		if got != string(want) {
			t.Errorf("the %s plan changed; if that is meant, run go test ./initplan -update and review the diff of %s:\n%s", name, path, firstDifference(string(want), got))
		}
	}
}

// firstDifference shows the first line where got differs from want.
func firstDifference(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d:\n- %s\n+ %s", i+1, wl, gl)
		}
	}
	return ""
}
