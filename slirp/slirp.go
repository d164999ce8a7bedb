// Package slirp gives a sandbox user-mode networking: a helper process
// (pasta or slirp4netns) that gives the sandbox's network namespace an
// interface, an address, a default route and a DNS forwarder; ports
// published from the host into the sandbox; and the few steps the sandbox's
// pid 1 takes itself.
//
// The parent (outside, the caller's identity) calls Start as soon as the
// sandbox's pid 1 exists and hands the returned ChildConfig to it; pid 1
// calls LoopbackUp and ConfigureChild before pivot_root, and writes
// ChildConfig.ResolvConf and ChildConfig.Hosts into the sandbox. The parent
// calls Network.Close once the sandbox has ended.
//
// What this package takes from rootlesskit and what it does itself is
// explained where it happens: see pasta.go, slirp4netns.go and ports.go.
// In short: the port forwarding is rootlesskit's builtin port driver
// (pkg/port/builtin), and slirp4netns' features are probed with
// rootlesskit's pkg/network/slirp4netns; both helpers are started here
// rather than through rootlesskit's network drivers, because those drivers
// shell out to nsenter and ip (slirp4netns), leave the sandbox's loopback
// forwarded to the host's and never stop their helper (pasta), and let a
// killed rbox leave its helper behind.
//
// Nothing is ever written to the host's filesystem: no state directory, no
// socket file, no pid file.
package slirp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
)

// The address plan of the sandbox's user-mode network, the same for pasta
// and slirp4netns (and the same as rootlesskit's and podman's).
const (
	SandboxIP   = "10.0.2.100"
	PrefixLen   = 24
	GatewayIP   = "10.0.2.2" // the host, with AllowHostLoopback
	DNSIP       = "10.0.2.3" // the helper's DNS forwarder
	DeviceName  = "tap0"
	DefaultMTU  = 65520
	portDirFD   = 1000 // see ports.go
	portSockNam = "port.sock"
)

// Options says what network the sandbox gets.
type Options struct {
	// Mode is a --net value: none, host, user, pasta or slirp4netns.
	Mode string
	// MTU of the sandbox's interface; 0 means 65520.
	MTU int
	// AllowHostLoopback lets the sandbox reach the host's loopback services
	// at GatewayIP.
	AllowHostLoopback bool
	// Publish lists host ports forwarded into the sandbox.
	Publish []PortSpec
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
	// descriptor number (see ports.go).
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
	if c.Mode == ModePasta || c.Mode == ModeSlirp4netns {
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

	mu        sync.Mutex
	closed    bool
	helpers   []*helper
	forwards  []*forward
	closeFile []io.Closer
}

// ChildFor is what the sandbox's pid 1 is told about the network o asks
// for, known before any helper starts: the interface, addresses and DNS the
// helper will set up, and what pid 1 must do itself (the gateway route).
// Published ports add the port agent's descriptor (Start sets it).
func ChildFor(o Options) (ChildConfig, error) {
	mode, err := Resolve(o.Mode)
	if err != nil {
		return ChildConfig{}, err
	}
	c := ChildConfig{Mode: mode, DNS: o.DNS}
	if o.DNS != "" && net.ParseIP(o.DNS) == nil {
		return c, fmt.Errorf("--dns %q is not an IP address", o.DNS)
	}
	if mode == ModeNone || mode == ModeHost {
		if len(o.Publish) > 0 {
			return c, fmt.Errorf("publishing ports needs --net user, pasta or slirp4netns (not %s)", mode)
		}
		if o.AllowHostLoopback && mode == ModeNone {
			return c, errors.New("--allow-host-loopback needs --net user, pasta or slirp4netns")
		}
		return c, nil
	}
	if o.MTU < 0 {
		return c, fmt.Errorf("invalid MTU %d", o.MTU)
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
	c.BlockGateway = mode == ModePasta && !o.AllowHostLoopback
	return c, nil
}

// Start gives the network namespace of childPID (the sandbox's pid 1) the
// network o asks for, and returns what pid 1 must do from inside.
//
// It may be called as soon as the child exists, concurrently with the
// writing of its uid and gid maps: pasta needs no maps, but slirp4netns
// (with --enable-sandbox, or --configure) switches to uid and gid 0 inside
// the sandbox's user namespace and fails if they are not mapped yet, so for
// slirp4netns Start waits until both maps are written (or ctx ends).
//
// The helpers run as children of this process, under the caller's identity,
// and are killed by the kernel if this process dies. Published ports are
// bound here, so a port in use fails Start. On error nothing is left
// running.
func Start(ctx context.Context, childPID int, o Options) (*Network, error) {
	child, err := ChildFor(o)
	if err != nil {
		return nil, err
	}
	n := &Network{Child: child}
	mode := child.Mode
	if mode == ModeNone || mode == ModeHost {
		return n, nil
	}
	mtu := child.MTU
	ok := false
	defer func() {
		if !ok {
			n.Close()
		}
	}()
	// Ports first: a port in use is the likeliest failure and the cheapest
	// to find.
	if len(o.Publish) > 0 {
		if err := n.startForwards(childPID, o.Publish, o.Log); err != nil {
			return nil, err
		}
		n.Child.PortDirFD = portDirFD
	}
	switch mode {
	case ModePasta:
		err = n.startPasta(ctx, childPID, mtu, o)
	case ModeSlirp4netns:
		err = n.startSlirp4netns(ctx, childPID, mtu, o)
	}
	if err != nil {
		return nil, err
	}
	ok = true
	return n, nil
}

// HelperPIDs lists the helper processes still running.
func (n *Network) HelperPIDs() []int {
	n.mu.Lock()
	defer n.mu.Unlock()
	var pids []int
	for _, h := range n.helpers {
		if !h.exited() {
			pids = append(pids, h.pid())
		}
	}
	return pids
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
	forwards, helpers, files := n.forwards, n.helpers, n.closeFile
	n.mu.Unlock()

	var errs []error
	for _, f := range forwards {
		if err := f.stop(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, f := range files {
		f.Close()
	}
	for _, h := range helpers {
		h.kill()
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
