package bridge

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/spec"
)

// HolderArg0 is argv[0] of the re-executed rbox that holds a network.
const HolderArg0 = "rbox-network-holder"

// bridgeName is the bridge's name in the holder's namespace.
const bridgeName = "rbox0"

// mtu of the bridge and the veth pairs (slirp4netns's tap takes the same).
const mtu = 65520

// request is one line on the holder's socket.
type request struct {
	Op string `json:"op"` // "attach", "users", "lookup" or "republish"
	// PID is a sandbox's pid 1 (attach), Name the name it answers to
	// (attach) or the name to look up (lookup).
	PID  int    `json:"pid,omitempty"`
	Name string `json:"name,omitempty"`
	// Publish are the host ports to forward to the sandbox (attach).
	Publish []spec.Port `json:"publish,omitempty"`
	// Restricted: the sandbox reaches the outside only through rbox's
	// proxies (--allow-net): no default route, and the filter of
	// restrict.go on its port (attach).
	Restricted bool `json:"restricted,omitempty"`
}

// reply is the holder's answer.
type reply struct {
	Error   string `json:"error,omitempty"`
	Address string `json:"address,omitempty"`
	// Address6 is the IPv6 address that goes with Address (lookup).
	Address6 string   `json:"address6,omitempty"`
	Users    []string `json:"users,omitempty"`
	// Links are the interfaces on the bridge (the sandboxes' veth ends).
	Links []string `json:"links,omitempty"`
}

// holder is a network's namespace side.
type holder struct {
	dir     string
	network string // the network's name
	prefix  netip.Prefix
	gateway netip.Addr
	// prefix6 is the network's IPv6 prefix (ipv6.go); invalid for none.
	prefix6 netip.Prefix
	br      netlink.Link
	// filter is nil, and filterErr says why, where the kernel has no
	// nftables bridge family: the network works, without --allow-net.
	filter    *restrictor
	filterErr error
	mu        sync.Mutex
	byName    map[string]netip.Addr
	used      map[netip.Addr]*lease
	serial    int
}

// lease is a sandbox's address: its name ("" for none), its pid 1, and
// its published ports with the ids of their forwards in slirp4netns.
type lease struct {
	name     string
	pidfd    int // the sandbox's pid 1
	ports    []spec.Port
	forwards []float64
}

// HolderMain runs the holder of the network in dir; fd 3 reaches EOF once
// its id maps are written, fd 4 gets "ok" or the failure. It never returns.
func HolderMain(dir string) {
	ready, report := os.NewFile(3, "ready"), os.NewFile(4, "report")
	_, _ = ready.Read(make([]byte, 1))
	ready.Close()
	h, err := startHolder(dir)
	if err != nil {
		fmt.Fprintf(report, "%v\n", err)
		os.Exit(1)
	}
	ln, err := listen(dir)
	if err != nil {
		fmt.Fprintf(report, "%v\n", err)
		os.Exit(1)
	}
	fmt.Fprintln(report, "ok")
	report.Close()
	for {
		c, err := ln.Accept()
		if err != nil {
			os.Exit(1)
		}
		go h.serve(c)
	}
}

func startHolder(dir string) (*holder, error) {
	n, err := Read(filepath.Dir(dir), filepath.Base(dir))
	if err != nil {
		return nil, err
	}
	p, err := netip.ParsePrefix(n.Subnet)
	if err != nil {
		return nil, err
	}
	h := &holder{dir: dir, network: strings.ToLower(n.Name), prefix: p, gateway: Gateway(p), byName: map[string]netip.Addr{}, used: map[netip.Addr]*lease{}}
	if n.Subnet6 != "" {
		if h.prefix6, err = netip.ParsePrefix(n.Subnet6); err != nil {
			return nil, err
		}
	}
	lo, err := netlink.LinkByName("lo")
	if err == nil {
		err = netlink.LinkSetUp(lo)
	}
	if err != nil {
		return nil, fmt.Errorf("loopback: %w", err)
	}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: bridgeName, MTU: mtu}}
	if err := netlink.LinkAdd(br); err != nil {
		return nil, fmt.Errorf("create the bridge: %w", err)
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: h.gateway.AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}}
	if err := netlink.AddrAdd(br, addr); err != nil {
		return nil, fmt.Errorf("address the bridge: %w", err)
	}
	if gw6, ok := h.address6(h.gateway); ok {
		if err := netlink.AddrAdd(br, ipv6Addr(gw6)); err != nil {
			return nil, fmt.Errorf("address the bridge (IPv6): %w", err)
		}
	}
	if err := netlink.LinkSetUp(br); err != nil {
		return nil, fmt.Errorf("bring the bridge up: %w", err)
	}
	h.br = br
	h.filter, h.filterErr = newRestrictor(p, h.gateway, h.prefix6)
	// Sandboxes' traffic out goes through this namespace to the helper's
	// tap; the sysctl is this network namespace's own.
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0); err != nil {
		return nil, fmt.Errorf("enable forwarding: %w", err)
	}
	// slirp4netns answers a sandbox's connection with packets to the
	// sandbox's own address, for which it asks on its tap by ARP: this
	// namespace answers for the addresses it routes elsewhere (the
	// bridge's), so no NAT is needed here.
	if err := os.WriteFile("/proc/sys/net/ipv4/conf/all/proxy_arp", []byte("1"), 0); err != nil {
		return nil, fmt.Errorf("enable proxy ARP: %w", err)
	}
	if err := h.serveDNS(); err != nil {
		return nil, err
	}
	return h, nil
}

func listen(dir string) (net.Listener, error) {
	path := filepath.Join(dir, "sock")
	_ = os.Remove(path)
	return net.Listen("unix", path)
}

func (h *holder) serve(c net.Conn) {
	defer c.Close()
	var req request
	if err := json.NewDecoder(bufio.NewReader(c)).Decode(&req); err != nil {
		return
	}
	var rep reply
	switch req.Op {
	case "attach":
		a, err := h.attach(req.PID, req.Name, req.Publish, req.Restricted)
		if err != nil {
			rep.Error = err.Error()
		} else {
			rep.Address = netip.PrefixFrom(a, h.prefix.Bits()).String()
		}
	case "lookup":
		if a, ok := h.lookup(req.Name); ok {
			rep.Address = a.String()
			if a6, ok := h.address6(a); ok {
				rep.Address6 = a6.String()
			}
		}
	case "users":
		rep.Users, rep.Links = h.users(), h.links()
	case "republish":
		if err := h.republish(); err != nil {
			rep.Error = err.Error()
		}
	default:
		rep.Error = "unknown request"
	}
	_ = json.NewEncoder(c).Encode(rep)
}

func (h *holder) users() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for a, l := range h.used {
		// A sandbox that has just ended, its release not yet run, is not
		// a user.
		if l.ended() {
			continue
		}
		name := l.name
		if name == "" {
			name = a.String()
		}
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// links lists the interfaces enslaved to the bridge.
func (h *holder) links() []string {
	all, err := netlink.LinkList()
	if err != nil {
		return []string{"? " + err.Error()}
	}
	var out []string
	for _, l := range all {
		if l.Attrs().MasterIndex == h.br.Attrs().Index {
			out = append(out, l.Attrs().Name)
		}
	}
	sort.Strings(out)
	return out
}

// lease takes the lowest free address for name. Sandboxes that have
// ended, their release not yet run, give theirs up first.
func (h *holder) lease(name string, pidfd int) (netip.Addr, *lease, int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for a, l := range h.used {
		if l.ended() {
			h.drop(a, l)
		}
	}
	if name != "" {
		if _, ok := h.byName[name]; ok {
			return netip.Addr{}, nil, 0, fmt.Errorf("a sandbox named %s is already on this network", name)
		}
	}
	for a := h.gateway.Next(); h.prefix.Contains(a) && a.Next().IsValid() && h.prefix.Contains(a.Next()); a = a.Next() {
		if _, ok := h.used[a]; !ok {
			l := &lease{name: name, pidfd: pidfd}
			h.used[a] = l
			if name != "" {
				h.byName[name] = a
			}
			h.serial++
			return a, l, h.serial, nil
		}
	}
	return netip.Addr{}, nil, 0, fmt.Errorf("no free address left in %s", h.prefix)
}

// ended tells whether the lease's sandbox has ended.
func (l *lease) ended() bool {
	fds := []unix.PollFd{{Fd: int32(l.pidfd), Events: unix.POLLIN}}
	n, _ := unix.Poll(fds, 0)
	return n > 0
}

// drop frees a's lease l, if it still holds a (h.mu held).
func (h *holder) drop(a netip.Addr, l *lease) {
	if h.used[a] != l {
		return
	}
	if l.name != "" && h.byName[l.name] == a {
		delete(h.byName, l.name)
	}
	delete(h.used, a)
}

// release frees a's lease l once its sandbox has ended.
func (h *holder) release(a netip.Addr, l *lease) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.drop(a, l)
}

// attach gives the network namespace of pid (a sandbox's pid 1, made in
// this user namespace) an eth0 on the bridge, and keeps its address and
// name until pid ends. A restricted sandbox gets no route beyond the
// subnet, and its port is filtered (restrict.go).
func (h *holder) attach(pid int, name string, ps []spec.Port, restricted bool) (netip.Addr, error) {
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("the sandbox's init: %w", err)
	}
	nsfd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/net", pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(pidfd)
		return netip.Addr{}, fmt.Errorf("the sandbox's network namespace: %w", err)
	}
	defer unix.Close(nsfd)
	a, l, serial, err := h.lease(name, pidfd)
	if err != nil {
		unix.Close(pidfd)
		return netip.Addr{}, err
	}
	hostSide := fmt.Sprintf("veth%d", serial)
	undo := func() {
		if link, lerr := netlink.LinkByName(hostSide); lerr == nil {
			_ = netlink.LinkDel(link)
		}
		if restricted && h.filter != nil {
			h.filter.release(hostSide)
		}
		h.release(a, l)
		unix.Close(pidfd)
	}
	switch {
	case restricted && h.filter == nil:
		err = fmt.Errorf("--allow-net on a network needs the kernel's nftables bridge family (CONFIG_NF_TABLES_BRIDGE): %v", h.filterErr)
	case restricted:
		// Filtered before the port exists: no frame of the sandbox's
		// passes unfiltered.
		err = h.filter.restrict(hostSide)
	}
	if err == nil {
		err = h.plug(nsfd, hostSide, a, !restricted)
	}
	if err != nil {
		undo()
		return netip.Addr{}, err
	}
	forwards, err := publish(h.dir, a, ps)
	if err != nil {
		undo()
		return netip.Addr{}, err
	}
	h.mu.Lock()
	l.ports, l.forwards = ps, forwards
	h.mu.Unlock()
	go func() {
		// The sandbox's namespace, and with it the veth pair, goes when
		// its last process ends; then the address and name are free.
		fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
		for {
			if _, err := unix.Poll(fds, -1); err != unix.EINTR {
				break
			}
		}
		h.mu.Lock()
		forwards := l.forwards
		l.forwards = nil
		h.mu.Unlock()
		unpublish(h.dir, forwards)
		if link, err := netlink.LinkByName(hostSide); err == nil {
			_ = netlink.LinkDel(link)
		}
		if restricted {
			h.filter.release(hostSide)
		}
		h.release(a, l)
		unix.Close(pidfd)
	}()
	return a, nil
}

// plug makes the veth pair: hostSide on the bridge, eth0 in the namespace
// nsfd with address a, up, and, with defaultRoute, routed through the
// gateway.
func (h *holder) plug(nsfd int, hostSide string, a netip.Addr, defaultRoute bool) error {
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: hostSide, MTU: mtu, MasterIndex: h.br.Attrs().Index},
		PeerName:      "eth0",
		PeerNamespace: netlink.NsFd(nsfd),
	}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("create the veth pair: %w", err)
	}
	in, err := netlink.NewHandleAt(netns.NsHandle(nsfd))
	if err != nil {
		return fmt.Errorf("netlink in the sandbox's namespace: %w", err)
	}
	defer in.Close()
	eth, err := in.LinkByName("eth0")
	if err != nil {
		return fmt.Errorf("eth0: %w", err)
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(h.prefix.Bits(), 32)}}
	if err := in.AddrAdd(eth, addr); err != nil {
		return fmt.Errorf("address eth0: %w", err)
	}
	if a6, ok := h.address6(a); ok {
		if err := in.AddrAdd(eth, ipv6Addr(a6)); err != nil {
			return fmt.Errorf("address eth0 (IPv6): %w", err)
		}
	}
	if err := in.LinkSetUp(eth); err != nil {
		return fmt.Errorf("bring eth0 up: %w", err)
	}
	if lo, err := in.LinkByName("lo"); err == nil {
		_ = in.LinkSetUp(lo)
	}
	if err := pingForAll(nsfd); err != nil {
		return err
	}
	if defaultRoute {
		route := &netlink.Route{LinkIndex: eth.Attrs().Index, Gw: h.gateway.AsSlice()}
		if err := in.RouteAdd(route); err != nil {
			return fmt.Errorf("default route: %w", err)
		}
	}
	host, err := netlink.LinkByName(hostSide)
	if err == nil {
		err = netlink.LinkSetUp(host)
	}
	if err != nil {
		return fmt.Errorf("bring %s up: %w", hostSide, err)
	}
	return nil
}

// republish adds the host forwards of every sandbox on the network to a
// new slirp4netns, the one before having died with them.
func (h *holder) republish() error {
	type job struct {
		a netip.Addr
		l *lease
	}
	var jobs []job
	h.mu.Lock()
	for a, l := range h.used {
		if len(l.ports) > 0 && !l.ended() {
			jobs = append(jobs, job{a, l})
		}
	}
	h.mu.Unlock()
	var failed []string
	for _, j := range jobs {
		ids, err := publish(h.dir, j.a, j.l.ports)
		if err != nil {
			failed = append(failed, err.Error())
			continue
		}
		h.mu.Lock()
		j.l.forwards = ids
		h.mu.Unlock()
		if j.l.ended() {
			// It ended meanwhile; its release may have run already.
			h.mu.Lock()
			ids, j.l.forwards = j.l.forwards, nil
			h.mu.Unlock()
			unpublish(h.dir, ids)
		}
	}
	if len(failed) > 0 {
		return errors.New(strings.Join(failed, "; "))
	}
	return nil
}

// lookup is the address of a sandbox's name.
func (h *holder) lookup(name string) (netip.Addr, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	a, ok := h.byName[name]
	return a, ok
}

// pingForAll lets every group of the sandbox send ICMP echo requests
// through datagram sockets (net.ipv4.ping_group_range, as podman sets it):
// ping works inside without CAP_NET_RAW. The sysctl is the namespace's of
// the thread that opens it, so one locked thread goes there and back.
func pingForAll(nsfd int) error {
	groups, err := mappedGroups()
	if err != nil {
		return err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self, err := netns.Get()
	if err != nil {
		return err
	}
	defer self.Close()
	if err := netns.Set(netns.NsHandle(nsfd)); err != nil {
		return fmt.Errorf("enter the sandbox's network namespace: %w", err)
	}
	werr := os.WriteFile("/proc/sys/net/ipv4/ping_group_range", []byte(groups), 0)
	if err := netns.Set(self); err != nil {
		// This thread cannot go back: let it end with its goroutine.
		runtime.LockOSThread()
		return err
	}
	if werr != nil {
		return fmt.Errorf("net.ipv4.ping_group_range: %w", werr)
	}
	return nil
}

// mappedGroups is the widest ping_group_range the kernel takes here: from
// the mapped group lowest on the host to the highest (both ends must be
// mapped).
func mappedGroups() (string, error) {
	b, err := os.ReadFile("/proc/self/gid_map")
	if err != nil {
		return "", err
	}
	return groupRange(string(b))
}

// groupRange is mappedGroups for a gid_map's text.
func groupRange(gidMap string) (string, error) {
	var low, high, lowOut, highOut uint64
	first := true
	for _, line := range strings.Split(strings.TrimSpace(gidMap), "\n") {
		var in, out, n uint64
		if _, err := fmt.Sscan(line, &in, &out, &n); err != nil || n == 0 {
			return "", fmt.Errorf("gid_map line %q", line)
		}
		if first || out < lowOut {
			low, lowOut = in, out
		}
		if first || out+n-1 > highOut {
			high, highOut = in+n-1, out+n-1
		}
		first = false
	}
	return fmt.Sprintf("%d %d", low, high), nil
}
