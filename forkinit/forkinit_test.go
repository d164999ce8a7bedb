package forkinit

import (
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/caps"
	"github.com/rbox-dev/rbox/network"
	"github.com/rbox-dev/rbox/spec"
)

func TestEligible(t *testing.T) {
	plain := func() *spec.Spec {
		return &spec.Spec{Args: []string{"true"}, Net: spec.NetNone, Caps: caps.Default}
	}
	cases := []struct {
		name string
		edit func(*spec.Spec)
		want bool
	}{
		{"plain", func(*spec.Spec) {}, true},
		{"host network", func(s *spec.Spec) { s.Net = spec.NetHost }, true},
		{"binds and uid", func(s *spec.Spec) {
			s.Mounts = []spec.Mount{{Kind: spec.MountBind, Source: "/tmp", Dest: "/work"}}
			s.UID, s.GID = 1000, 1000
		}, true},
		{"pasta", func(s *spec.Spec) { s.Net = spec.NetPasta }, true},
		{"dns", func(s *spec.Spec) { s.DNS = "1.1.1.1" }, true},
		{"published ports through pasta", func(s *spec.Spec) {
			s.Net = spec.NetPasta
			s.Publish = []spec.Port{{HostIP: "127.0.0.1", HostPort: 8080, ChildPort: 80, Proto: "tcp"}, {HostIP: "127.0.0.1", HostPort: 5353, ChildPort: 5353, Proto: "udp"}}
		}, true},
		{"UDP to another port through pasta", func(s *spec.Spec) {
			s.Net = spec.NetPasta
			s.Publish = []spec.Port{{HostIP: "127.0.0.1", HostPort: 5353, ChildPort: 53, Proto: "udp"}}
		}, false},
		{"published port through slirp4netns", func(s *spec.Spec) {
			s.Net = spec.NetSlirp4netns
			s.Publish = []spec.Port{{HostIP: "127.0.0.1", HostPort: 8080, ChildPort: 80, Proto: "tcp"}}
		}, false},
		{"rootfs", func(s *spec.Spec) { s.RootFS = "/srv/root" }, false},
		{"overlay", func(s *spec.Spec) { s.Overlay = &spec.Overlay{} }, false},
		{"image", func(s *spec.Spec) { s.Layers = []string{"/l"} }, false},
		{"tty", func(s *spec.Spec) { s.TTY = true }, false},
		{"shared pid", func(s *spec.Spec) { s.Share = []string{spec.NSPID} }, false},
		{"ptrace", func(s *spec.Spec) { s.Caps = append(s.Caps, "CAP_SYS_PTRACE") }, false},
		{"non-root with added caps", func(s *spec.Spec) {
			s.UID = 1000
			s.Caps = append(s.Caps, "CAP_NET_RAW")
		}, false},
		{"root with added caps", func(s *spec.Spec) { s.Caps = append(s.Caps, "CAP_NET_RAW") }, true},
	}
	for _, c := range cases {
		s := plain()
		c.edit(s)
		if got := Eligible(s); got != c.want {
			t.Errorf("%s: Eligible = %v, want %v", c.name, got, c.want)
		}
	}
}

// The payload's process tries PATH in order, as execvp does.
func TestCommandCandidates(t *testing.T) {
	in := &Init{}
	in.command(&spec.Spec{Args: []string{"make", "-j2"}, Env: []string{"PATH=/usr/local/bin::/usr/bin"}})
	if len(in.exe) != 3 || len(in.argv) != 3 || in.argv[2] != 0 {
		t.Fatalf("candidates %d, argv %d", len(in.exe), len(in.argv))
	}
	in = &Init{}
	in.command(&spec.Spec{Args: []string{"./run"}})
	if len(in.exe) != 1 || in.name != "./run" {
		t.Fatalf("a path is tried alone: %d candidates", len(in.exe))
	}
}

// The payload's program ends with the seccomp filter the Spec carries,
// which Prepare has put in pid 1's memory; a bad program fails Prepare.
func TestSeccompInPayloadProgram(t *testing.T) {
	// Two instructions: ret ALLOW, twice.
	ret := binary.NativeEndian.AppendUint16(nil, unix.BPF_RET|unix.BPF_K)
	ret = binary.NativeEndian.AppendUint32(append(ret, 0, 0), unix.SECCOMP_RET_ALLOW)
	bpf := append(ret, ret...)
	s := &spec.Spec{Args: []string{"true"}, Caps: caps.Default, SeccompFilter: &spec.SeccompFilter{BPF: bpf, Flags: 2}}
	in := &Init{}
	if err := in.Prepare(s, false, network.ChildConfig{Mode: spec.NetNone}); err != nil {
		t.Fatal(err)
	}
	if int(in.fprog.Len) != len(bpf)/8 || in.fprog.Filter != &in.filter[0] {
		t.Errorf("fprog: %d instructions, want %d", in.fprog.Len, len(bpf)/8)
	}
	if step := in.payload.Describe(in.payload.Len()-1, 0).Step; step != "install the seccomp filter" {
		t.Errorf("the payload's last step is %q", step)
	}
	s.SeccompFilter = nil
	in = &Init{}
	if err := in.Prepare(s, false, network.ChildConfig{Mode: spec.NetNone}); err != nil {
		t.Fatal(err)
	}
	if step := in.payload.Describe(in.payload.Len()-1, 0).Step; step != "set no_new_privs" || in.filter != nil {
		t.Errorf("unconfined: the payload's last step is %q", step)
	}
	s.SeccompFilter = &spec.SeccompFilter{BPF: bpf[:len(bpf)-1]}
	if err := (&Init{}).Prepare(s, false, network.ChildConfig{Mode: spec.NetNone}); err == nil {
		t.Error("Prepare took a program of a length that is no multiple of an instruction")
	}
}
