package main

import (
	"fmt"
	"strings"

	"github.com/rbox-dev/rbox/network/egress"
	"github.com/rbox-dev/rbox/spec"
)

// egressFlags are the run flags about outbound traffic by policy.
type egressFlags struct {
	AllowNet []string `name:"allow-net" sep:"," placeholder:"DEST" help:"With --net user or --net NETWORK: reach only these destinations, through rbox's filtering HTTP/SOCKS5 proxies and DNS (NAME, *.DOMAIN, IP or CIDR, each with an optional :PORT). Repeatable."`
}

// applyEgress turns --allow-net into s.Egress. The sandbox then gets no
// helper (its network is loopback and rbox's proxies, and, on an rbox
// network, an eth0 that reaches the network only), so it runs with --net
// none underneath: r.Net and r.HostLoop are consumed here.
func (r *RunCmd) applyEgress(s *spec.Spec, share []string) error {
	if len(r.Egress.AllowNet) == 0 {
		return nil
	}
	switch {
	case r.bridge != nil: // --net NAME, resolved by bridgeNet
	case r.Net == spec.NetUser, r.Net == spec.NetPasta, r.Net == spec.NetSlirp4netns:
	default:
		return fmt.Errorf("--allow-net needs --net user or an rbox network (not %s)", r.Net)
	}
	if contains(share, spec.NSNet) {
		return fmt.Errorf("--allow-net needs a new network namespace: drop net from --share")
	}
	if _, err := egress.ParsePolicy(r.Egress.AllowNet); err != nil {
		return fmt.Errorf("--allow-net: %v", err)
	}
	switch {
	case len(r.Publish) > 0:
		return fmt.Errorf("-p/--publish cannot be combined with --allow-net yet")
	case r.DNS != "":
		return fmt.Errorf("--dns cannot be combined with --allow-net: the sandbox's DNS is rbox's filtering responder")
	}
	s.Egress = &spec.Egress{Allow: r.Egress.AllowNet, AllowHostLoopback: r.HostLoop}
	r.Net, r.HostLoop = spec.NetNone, false
	return nil
}

// egressEnv points the payload at the proxies, unless --env sets the same
// variable.
func (r *RunCmd) egressEnv(s *spec.Spec) {
	if s.Egress == nil {
		return
	}
	given := map[string]bool{}
	for _, kv := range r.Env {
		k, _, _ := strings.Cut(kv, "=")
		given[k] = true
	}
	for _, kv := range egress.Env() {
		k, _, _ := strings.Cut(kv, "=")
		if given[k] {
			continue
		}
		out := s.Env[:0]
		for _, old := range s.Env {
			if !strings.HasPrefix(old, k+"=") {
				out = append(out, old)
			}
		}
		s.Env = append(out, kv)
	}
}
