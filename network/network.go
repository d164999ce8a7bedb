// Package network gives a sandbox its network: the choice of mode (none,
// host, or user-mode through a helper), the address plan, the sandbox's
// resolv.conf and hosts, and the few steps the sandbox's pid 1 takes
// itself. The helpers are packages of their own (pasta, slirp4netns), as are
// published ports (ports); this package starts and stops them.
//
// The parent (outside, the caller's identity) calls Start as soon as the
// sandbox's pid 1 exists and hands the returned ChildConfig to it; pid 1
// calls LoopbackUp and ConfigureChild before pivot_root, and writes
// ChildConfig.EtcFiles into the sandbox. The parent calls Network.Close once
// the sandbox has ended.
//
// What is taken from rootlesskit and what is done here is explained where
// it happens (see the pasta, slirp4netns and ports packages). In short: both
// helpers are started here rather than through rootlesskit's network
// drivers, because those drivers shell out to nsenter and ip (slirp4netns),
// leave the sandbox's loopback forwarded to the host's and never stop their
// helper (pasta), and let a killed rbox leave its helper behind; pasta
// forwards published ports itself, and with slirp4netns the forwarding is
// rootlesskit's builtin port driver.
//
// Nothing is ever written to the host's filesystem: no state directory, no
// socket file, no pid file.
package network

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/rbox-dev/rbox/network/pasta"
	"github.com/rbox-dev/rbox/network/ports"
	"github.com/rbox-dev/rbox/network/slirp4netns"
	"github.com/rbox-dev/rbox/spec"
)

// The address plan of the sandbox's user-mode network, the same for pasta
// and slirp4netns (and the same as rootlesskit's and podman's).
const (
	SandboxIP  = "10.0.2.100"
	PrefixLen  = 24
	GatewayIP  = "10.0.2.2" // the host, with AllowHostLoopback
	DNSIP      = "10.0.2.3" // the helper's DNS forwarder
	DeviceName = "tap0"
	DefaultMTU = 65520
)

// Options says what network the sandbox gets.
type Options struct {
	// Mode is one of spec.Net*; "" means none.
	Mode string
	// MTU of the sandbox's interface; 0 means 65520.
	MTU int
	// AllowHostLoopback lets the sandbox reach the host's loopback services
	// at GatewayIP.
	AllowHostLoopback bool
	// Publish lists host ports forwarded into the sandbox.
	Publish []spec.Port
	// DNS, when set, is the only nameserver in the sandbox's resolv.conf.
	DNS string
	// Log, when set, receives the helpers' output and the port
	// forwarder's diagnostics. Either way the tail of a failing helper's
	// output is in the error Start returns.
	Log io.Writer
}

// ChildConfig is what the sandbox's pid 1 needs to finish the network from
// inside. It travels as JSON in the parent's start message.
type ChildConfig struct {
	// Mode is the resolved mode (never "user").
	Mode string `json:"mode"`
	// Device, IP, PrefixLen, Gateway and MTU describe the interface the
	// helper has configured (empty for none and host).
	Device    string `json:"device,omitempty"`
	IP        string `json:"ip,omitempty"`
	PrefixLen int    `json:"prefix_len,omitempty"`
	Gateway   string `json:"gateway,omitempty"`
	MTU       int    `json:"mtu,omitempty"`
	// DNS is the nameserver for the sandbox's resolv.conf; empty keeps the
	// sandbox's resolv.conf as the filesystem setup left it.
	DNS string `json:"dns,omitempty"`
	// Search is copied from the host's resolv.conf.
	Search []string `json:"search,omitempty"`
	// BlockGateway asks pid 1 to make Gateway unreachable. pasta, unlike
	// slirp4netns, does not refuse traffic to the gateway address when it
	// is not mapped to the host: it would send it on to whatever has that
	// address on the host's network. An unreachable route keeps the
	// sandbox from addressing it, as with slirp4netns.
	BlockGateway bool `json:"block_gateway,omitempty"`
	// PortDirFD, when not zero, asks pid 1 to run the port forwarder's
	// inside agent with its socket in a private tmpfs kept open at this
	// descriptor number (see ports.StartAgent). Only slirp4netns needs it:
	// pasta forwards published ports itself.
	PortDirFD int `json:"port_dir_fd,omitempty"`
}

// ResolvConf is the content of the sandbox's /etc/resolv.conf, or nil when
// the sandbox keeps whatever the filesystem setup gave it (no network, or
// the host's network, without --dns).
func (c ChildConfig) ResolvConf() []byte {
	if c.DNS == "" {
		return nil
	}
	var b strings.Builder
	b.WriteString("# written by rbox\n")
	if len(c.Search) > 0 {
		b.WriteString("search " + strings.Join(c.Search, " ") + "\n")
	}
	b.WriteString("nameserver " + c.DNS + "\n")
	return []byte(b.String())
}

// EtcFiles are the sandbox's own /etc/resolv.conf (pointing at the
// helper's DNS forwarder, or --dns) and, with a user-mode network,
// /etc/hosts naming hostname; the host's files are never touched.
func (c ChildConfig) EtcFiles(hostname string) map[string][]byte {
	files := map[string][]byte{}
	if rc := c.ResolvConf(); rc != nil {
		files["/etc/resolv.conf"] = rc
	}
	if IsUserMode(c.Mode) {
		files["/etc/hosts"] = c.Hosts(hostname)
	}
	return files
}

// Hosts is the content of the sandbox's /etc/hosts for the given hostname:
// localhost, and the hostname on the sandbox's address (or a loopback
// address when it has none).
func (c ChildConfig) Hosts(hostname string) []byte {
	var b strings.Builder
	b.WriteString("# written by rbox\n")
	b.WriteString("127.0.0.1\tlocalhost\n")
	b.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\n")
	if hostname != "" && hostname != "localhost" {
		ip := c.IP
		if ip == "" {
			ip = "127.0.1.1"
		}
		b.WriteString(ip + "\t" + hostname + "\n")
	}
	return []byte(b.String())
}

// Network is the running network of one sandbox.
type Network struct {
	// Child goes to the sandbox's pid 1.
	Child ChildConfig

	mu     sync.Mutex
	closed bool
	helper helper
	// closers end the port forwarding, and tell slirp4netns to exit.
	closers []io.Closer
}

// helper is a running network helper (pasta or slirp4netns).
type helper interface {
	PID() int
	Exited() bool
	Kill()
}

// ChildFor is what the sandbox's pid 1 is told about the network o asks
// for, known before any helper starts: the interface, addresses and DNS the
// helper will set up, and what pid 1 must do itself (the gateway route, the
// port agent).
func ChildFor(o Options) (ChildConfig, error) {
	mode, err := Resolve(o.Mode)
	if err != nil {
		return ChildConfig{}, fmt.Errorf("network mode %s: %w", o.Mode, err)
	}
	o.Mode = mode
	if err := Validate(o); err != nil {
		return ChildConfig{}, err
	}
	c := ChildConfig{Mode: mode, DNS: o.DNS}
	if !IsUserMode(mode) {
		return c, nil
	}
	c.MTU = o.MTU
	if c.MTU == 0 {
		c.MTU = DefaultMTU
	}
	c.Device, c.IP, c.PrefixLen, c.Gateway = DeviceName, SandboxIP, PrefixLen, GatewayIP
	if c.DNS == "" {
		c.DNS = DNSIP
		c.Search = hostSearchDomains()
	}
	c.BlockGateway = mode == spec.NetPasta && !o.AllowHostLoopback
	if NeedsPortAgent(mode, o.Publish) {
		c.PortDirFD = ports.AgentDirFD
	}
	return c, nil
}

// Start gives the network namespace of childPID (the sandbox's pid 1) the
// network o asks for, and returns what pid 1 must do from inside.
//
// It may be called as soon as the child exists, concurrently with the
// writing of its uid and gid maps: pasta needs no maps, and slirp4netns
// waits for them (see package slirp4netns).
//
// The helpers run as children of this process, under the caller's identity,
// and are killed by the kernel if this process dies. Published ports are
// bound before Start returns, so a port in use fails Start. On error
// nothing is left running.
func Start(ctx context.Context, childPID int, o Options) (*Network, error) {
	child, err := ChildFor(o)
	if err != nil {
		return nil, err
	}
	n := &Network{Child: child}
	if !IsUserMode(child.Mode) {
		return n, nil
	}
	ok := false
	defer func() {
		if !ok {
			n.Close()
		}
	}()
	// Ports first: a port in use is the likeliest failure and the cheapest
	// to find.
	if err := ports.Check(o.Publish); err != nil {
		return nil, err
	}
	var agentPorts, pastaPorts []spec.Port
	for _, p := range o.Publish {
		if child.Mode == spec.NetPasta && pastaForwards(p) {
			pastaPorts = append(pastaPorts, p)
		} else {
			agentPorts = append(agentPorts, p)
		}
	}
	if len(agentPorts) > 0 {
		fw, err := ports.Forward(childPID, agentPorts, o.Log)
		if err != nil {
			return nil, err
		}
		n.closers = append(n.closers, fw)
	}
	switch child.Mode {
	case spec.NetPasta:
		h, err := pasta.Start(ctx, pasta.Config{
			PID: childPID, Device: child.Device, MTU: child.MTU,
			IP: child.IP, PrefixLen: child.PrefixLen, Gateway: child.Gateway, DNS: DNSIP,
			AllowHostLoopback: o.AllowHostLoopback, Ports: pastaPorts, Log: o.Log,
		})
		if err != nil {
			return nil, err
		}
		n.helper = h
	case spec.NetSlirp4netns:
		h, exitW, err := slirp4netns.Start(ctx, slirp4netns.Config{
			PID: childPID, Device: child.Device, MTU: child.MTU,
			AllowHostLoopback: o.AllowHostLoopback, Log: o.Log,
		})
		if err != nil {
			return nil, err
		}
		n.helper = h
		n.closers = append(n.closers, exitW)
	}
	ok = true
	return n, nil
}

// HelperPIDs lists the helper processes still running.
func (n *Network) HelperPIDs() []int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.helper == nil || n.helper.Exited() {
		return nil
	}
	return []int{n.helper.PID()}
}

// Close stops the port forwarding and the helpers and waits for them. It
// may be called more than once.
func (n *Network) Close() error {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	h, closers := n.helper, n.closers
	n.mu.Unlock()

	var errs []error
	for _, c := range closers {
		if err := c.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if h != nil {
		h.Kill()
	}
	return errors.Join(errs...)
}

// hostSearchDomains returns the search domains of the host's resolv.conf.
func hostSearchDomains() []string {
	b, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && (f[0] == "search" || f[0] == "domain") {
			out = f[1:]
		}
	}
	return out
}
