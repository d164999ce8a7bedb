// Package egress lets a sandbox reach only the destinations a policy
// allows. The sandbox's network namespace keeps nothing but its loopback:
// no interface to the outside, no route, no helper process. In it, on
// 127.0.0.1, are the listening sockets of a filtering HTTP proxy (CONNECT
// and plain HTTP), a SOCKS5 proxy and a DNS responder; this process (rbox,
// outside, as the caller) created them there (see nssock.go) and serves
// them, checking every destination against the policy before it connects
// to it from the host's network.
//
// So a program that uses the proxies (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY,
// set by the caller of this package from Env) reaches what the policy
// allows and gets a 403, a SOCKS5 "not allowed by ruleset" or NXDOMAIN for
// the rest; anything else finds no route. Each refused destination is
// reported once, as one line, to Options.Log.
package egress

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Where the services listen inside the sandbox.
const (
	ProxyIP   = "127.0.0.1"
	HTTPPort  = 3128
	SOCKSPort = 1080
	DNSPort   = 53
)

// Env is the environment that points a sandbox's programs at the proxies:
// the usual variables, in both cases, and NO_PROXY for the sandbox's own
// loopback.
func Env() []string {
	httpProxy := "http://" + net.JoinHostPort(ProxyIP, strconv.Itoa(HTTPPort))
	socksProxy := "socks5h://" + net.JoinHostPort(ProxyIP, strconv.Itoa(SOCKSPort))
	noProxy := "localhost,127.0.0.1,::1"
	var env []string
	for _, kv := range [][2]string{
		{"HTTP_PROXY", httpProxy}, {"HTTPS_PROXY", httpProxy},
		{"ALL_PROXY", socksProxy}, {"NO_PROXY", noProxy},
	} {
		env = append(env, kv[0]+"="+kv[1], strings.ToLower(kv[0])+"="+kv[1])
	}
	return env
}

// TestHostsEnv names an environment variable of rbox's own, for tests
// only: "NAME=IP,NAME=IP..." makes the proxies and the DNS responder
// resolve names from that list alone (anything else does not exist), so
// that tests can give names to servers on this machine without a DNS
// server.
const TestHostsEnv = "RBOX_EGRESS_TEST_HOSTS"

// Options say what the sandbox may reach.
type Options struct {
	Policy *Policy
	// AllowHostLoopback lets allowed destinations be on the host's
	// loopback (127.0.0.0/8, ::1, and the unspecified address, which
	// reaches it). Without it they are refused whatever the policy says:
	// the proxies connect from the host's network, where the loopback is
	// the host's.
	AllowHostLoopback bool
	// Log receives one line per refused destination (default: stderr).
	Log io.Writer
	// Peers, for a sandbox on an rbox network, are the network's other
	// sandboxes, which it reaches from its own eth0, not from the host.
	Peers *Peers
}

// Peers are the sandboxes of the rbox network a sandbox is on. They are
// not subject to the policy (the sandbox reaches them directly anyway):
// their names resolve inside to their addresses on the network, and the
// proxies connect to them from the sandbox's own network namespace.
type Peers struct {
	// Subnet is the network's, and Subnet6 its IPv6 prefix (invalid for
	// none); their gateways are no peers.
	Subnet, Subnet6   netip.Prefix
	Gateway, Gateway6 netip.Addr
	// Lookup is the addresses of the sandbox answering to name, none for
	// no sandbox.
	Lookup func(name string) []netip.Addr
}

// peer is the network addresses host (a name or an address literal)
// stands for, when it is a peer's.
func (p *Peers) peer(host string) ([]netip.Addr, bool) {
	if p == nil {
		return nil, false
	}
	if a, err := netip.ParseAddr(host); err == nil {
		a = a.Unmap()
		in := p.Subnet.Contains(a) && a != p.Gateway || p.Subnet6.IsValid() && p.Subnet6.Contains(a) && a != p.Gateway6
		return []netip.Addr{a}, in
	}
	addrs := p.Lookup(NormalizeName(host))
	return addrs, len(addrs) > 0
}

// Egress is the running proxies of one sandbox.
type Egress struct {
	pid      int // the sandbox's pid 1
	opts     Options
	resolver resolver
	dialer   net.Dialer

	mu       sync.Mutex
	reported map[string]bool
	closers  []io.Closer
	closed   bool
}

// Start creates the listening sockets in the network namespace of pid (the
// sandbox's pid 1, a child of this process) and serves them until Close.
func Start(pid int, o Options) (*Egress, error) {
	if o.Policy == nil {
		return nil, errors.New("egress: no policy")
	}
	if o.Log == nil {
		o.Log = os.Stderr
	}
	res, err := newResolver(os.Getenv(TestHostsEnv))
	if err != nil {
		return nil, err
	}
	e := &Egress{pid: pid, opts: o, resolver: res, reported: map[string]bool{}}
	e.dialer.Timeout = 30 * time.Second
	files, err := ListenIn(pid, []Listen{{Port: HTTPPort}, {Port: SOCKSPort}, {UDP: true, Port: DNSPort}, {Port: DNSPort}})
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	var lns [3]net.Listener
	for i, f := range []*os.File{files[0], files[1], files[3]} {
		if lns[i], err = net.FileListener(f); err != nil {
			for _, l := range lns[:i] {
				l.Close()
			}
			return nil, fmt.Errorf("egress: %w", err)
		}
	}
	udp, err := net.FilePacketConn(files[2])
	if err != nil {
		for _, l := range lns {
			l.Close()
		}
		return nil, fmt.Errorf("egress: %w", err)
	}
	e.closers = append(e.closers, lns[0], lns[1], lns[2], udp)
	e.serveHTTP(lns[0])
	e.serveSOCKS(lns[1])
	e.serveDNS(udp, lns[2])
	return e, nil
}

// Close stops accepting. Connections in progress end with the sandbox's
// processes, which hold their other ends.
func (e *Egress) Close() error {
	if e == nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	for _, c := range e.closers {
		c.Close()
	}
	return nil
}

// refusal is why a destination was refused; its text goes to the client
// (a 403's body) and, once per destination, to the log.
type refusal struct {
	dest string // as the client named it
	why  string
}

func (r *refusal) Error() string { return "refused " + r.dest + ": " + r.why }

// notAllowed is the refusal of a destination no rule matches, with the
// rules that would allow it.
func notAllowed(host string, port int, isAddr bool) *refusal {
	dest := joinHostPort(host, port)
	kind := "name"
	if isAddr {
		kind = "address"
	}
	return &refusal{dest: dest, why: fmt.Sprintf("no rule of the sandbox's allowed destinations matches this %s (to allow it, add %s or %s)",
		kind, ruleText(host), ruleText(host)+":"+strconv.Itoa(port))}
}

// ruleText is host written as a rule: an IPv6 address in brackets.
func ruleText(host string) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]"
	}
	return host
}

func joinHostPort(host string, port int) string {
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// report writes the refusal's line once per destination.
func (e *Egress) report(via string, r *refusal) {
	e.mu.Lock()
	seen := e.reported[r.dest]
	e.reported[r.dest] = true
	e.mu.Unlock()
	if !seen {
		fmt.Fprintf(e.opts.Log, "rbox: egress: %s (%s)\n", r.Error(), via)
	}
}

// check decides on host (a name, or an address literal) and port, before
// anything is resolved: a name is matched against name rules, an address
// against address rules.
func (e *Egress) check(host string, port int) *refusal {
	if _, ok := e.opts.Peers.peer(host); ok {
		return nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if _, ok := e.opts.Policy.MatchAddr(a, port); !ok {
			return notAllowed(a.Unmap().String(), port, true)
		}
		return nil
	}
	if _, ok := e.opts.Policy.MatchName(host, port); !ok {
		return notAllowed(NormalizeName(host), port, false)
	}
	return nil
}

// guard refuses the addresses that a name must never lead to, and the
// host's loopback whatever led to it unless it is allowed.
func (e *Egress) guard(dest string, a netip.Addr, byName bool) *refusal {
	a = a.Unmap()
	switch {
	case (a.IsLoopback() || a.IsUnspecified()) && !e.opts.AllowHostLoopback:
		return &refusal{dest: dest, why: fmt.Sprintf("%s is the host's loopback, which is closed to the sandbox unless the host loopback is allowed", a)}
	case byName && (a.IsLinkLocalUnicast() || a.IsMulticast() || a.IsInterfaceLocalMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255})):
		return &refusal{dest: dest, why: fmt.Sprintf("the name resolves to %s, a link-local, multicast or broadcast address, which only an address rule can allow", a)}
	}
	return nil
}

// dial connects, from the host's network, to host:port, which check has
// allowed. A name is resolved here, and each address it resolves to
// passes guard first.
func (e *Egress) dial(ctx context.Context, host string, port int) (net.Conn, error) {
	dest := joinHostPort(host, port)
	if addrs, ok := e.opts.Peers.peer(host); ok {
		var firstErr error
		for _, a := range addrs {
			c, err := e.dialPeer(netip.AddrPortFrom(a, uint16(port)))
			if err == nil {
				return c, nil
			}
			if firstErr == nil {
				firstErr = err
			}
		}
		return nil, firstErr
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if r := e.guard(dest, a, false); r != nil {
			return nil, r
		}
		return e.dialer.DialContext(ctx, "tcp", netip.AddrPortFrom(a.Unmap(), uint16(port)).String())
	}
	addrs, err := e.resolver.lookup(ctx, host)
	if err != nil {
		return nil, err
	}
	var firstErr error
	for _, a := range addrs {
		if r := e.guard(dest, a, true); r != nil {
			if firstErr == nil {
				firstErr = r
			}
			continue
		}
		c, err := e.dialer.DialContext(ctx, "tcp", netip.AddrPortFrom(a.Unmap(), uint16(port)).String())
		if err == nil {
			return c, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if firstErr == nil {
		firstErr = fmt.Errorf("%s has no address", host)
	}
	return nil, firstErr
}

// connect is check, then dial, reporting a refusal.
func (e *Egress) connect(ctx context.Context, via, host string, port int) (net.Conn, error) {
	if r := e.check(host, port); r != nil {
		e.report(via, r)
		return nil, r
	}
	c, err := e.dial(ctx, host, port)
	var r *refusal
	if errors.As(err, &r) {
		e.report(via, r)
	}
	return c, err
}

// splice copies both ways between the client's connection and the
// upstream one until both directions end, passing on half-closes. What the
// client sent beyond what was parsed (a TLS hello, often, or a request
// body) is in buffered and goes first.
func splice(client, upstream net.Conn, buffered *bufio.Reader) {
	done := make(chan struct{}, 2)
	closeWrite := func(c net.Conn) {
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		} else {
			_ = c.Close()
		}
	}
	go func() {
		if n := buffered.Buffered(); n > 0 {
			b, _ := buffered.Peek(n)
			_, _ = upstream.Write(b)
		}
		_, _ = io.Copy(upstream, client)
		closeWrite(upstream)
		done <- struct{}{}
	}()
	go func() {
		_, _ = io.Copy(client, upstream)
		closeWrite(client)
		done <- struct{}{}
	}()
	<-done
	<-done
	client.Close()
	upstream.Close()
}

// httpStatus is the status a proxy answers a failed connection with.
func httpStatus(err error) int {
	var r *refusal
	if errors.As(err, &r) {
		return 403
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return 504
	}
	return 502
}
