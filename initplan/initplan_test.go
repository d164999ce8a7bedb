package initplan

import (
	"encoding/binary"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/caps"
	"github.com/rbox-dev/rbox/network"
	"github.com/rbox-dev/rbox/spec"
)

func plainSpec() *spec.Spec {
	return &spec.Spec{Args: []string{"true"}, Net: spec.NetNone, Caps: caps.Default, Cwd: "/", GIDMap: []spec.IDMap{{Inside: 0, Outside: 1000, Count: 1}}}
}

var noNet = Learned{Net: network.ChildConfig{Mode: spec.NetNone}}

// The payload's search tries PATH in order, as execvp does.
func TestCommandCandidates(t *testing.T) {
	s := plainSpec()
	s.Args, s.Env = []string{"make", "-j2"}, []string{"PATH=/usr/local/bin::/usr/bin"}
	pl, err := New(s, noNet)
	if err != nil {
		t.Fatal(err)
	}
	c := pl.Command
	if want := []string{"/usr/local/bin/make", "make", "/usr/bin/make"}; !slices.Equal(c.Candidates, want) || len(c.Paths) != 3 || len(c.Argv) != 3 || c.Argv[2] != 0 {
		t.Fatalf("candidates %q (%d paths), argv %d", c.Candidates, len(c.Paths), len(c.Argv))
	}
	s.Args = []string{"./run"}
	if pl, err = New(s, noNet); err != nil {
		t.Fatal(err)
	}
	if c := pl.Command; len(c.Candidates) != 1 || c.Name != "./run" {
		t.Fatalf("a path is tried alone: %q", c.Candidates)
	}
}

// The payload's program ends with the seccomp filter the Spec carries; a
// bad program fails New.
func TestSeccompLast(t *testing.T) {
	// Two instructions: ret ALLOW, twice.
	ret := binary.NativeEndian.AppendUint16(nil, unix.BPF_RET|unix.BPF_K)
	ret = binary.NativeEndian.AppendUint32(append(ret, 0, 0), unix.SECCOMP_RET_ALLOW)
	bpf := append(ret, ret...)
	s := plainSpec()
	s.SeccompFilter = &spec.SeccompFilter{BPF: bpf, Flags: 2}
	pl, err := New(s, noNet)
	if err != nil {
		t.Fatal(err)
	}
	if step := pl.Payload.Describe(pl.Payload.Len()-1, 0).Step; step != "install the seccomp filter" {
		t.Errorf("the payload's last step is %q", step)
	}
	s.SeccompFilter = nil
	if pl, err = New(s, noNet); err != nil {
		t.Fatal(err)
	}
	if step := pl.Payload.Describe(pl.Payload.Len()-1, 0).Step; step != "set no_new_privs" {
		t.Errorf("unconfined: the payload's last step is %q", step)
	}
	s.SeccompFilter = &spec.SeccompFilter{BPF: bpf[:len(bpf)-1]}
	if _, err := New(s, noNet); err == nil {
		t.Error("New took a program of a length that is no multiple of an instruction")
	}
}

// Hooks sit where the Plan puts them, in the order pid 1 meets them, and
// Hooks(s) names the same ones.
func TestHooksInPlan(t *testing.T) {
	s := plainSpec()
	s.Net = spec.NetPasta
	s.Publish = []spec.Port{{HostPort: 8080, ChildPort: 80, Proto: "tcp"}}
	s.Overlay = &spec.Overlay{}
	s.TTY = true
	s.Share = []string{spec.NSPID}
	pl, err := New(s, Learned{Net: network.ChildConfig{Mode: spec.NetPasta}})
	if err != nil {
		t.Fatal(err)
	}
	var got []Hook
	for _, st := range pl.Init {
		if st.Program == nil {
			got = append(got, st.Hook)
		} else if st.Hook != 0 {
			t.Errorf("a stage is both a program and the hook %v", st.Hook)
		}
	}
	want := Hooks(s)
	if !slices.Equal(got, want) || !slices.Equal(want, []Hook{HookPorts, HookRoot}) {
		t.Errorf("hooks in the plan %v, Hooks %v", got, want)
	}
	if len(Hooks(plainSpec())) != 0 {
		t.Errorf("a plain run has hooks %v", Hooks(plainSpec()))
	}
}
