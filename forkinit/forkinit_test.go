package forkinit

import (
	"testing"

	"github.com/rbox-dev/rbox/caps"
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
		{"tty", func(s *spec.Spec) { s.TTY = true }, true},
		{"shared pid", func(s *spec.Spec) { s.Share = []string{spec.NSPID} }, true},
		{"ptrace", func(s *spec.Spec) { s.Caps = append(s.Caps, "CAP_SYS_PTRACE") }, true},
		{"non-root with added caps", func(s *spec.Spec) {
			s.UID = 1000
			s.Caps = append(s.Caps, "CAP_NET_RAW")
		}, true},
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
