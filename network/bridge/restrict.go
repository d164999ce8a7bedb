package bridge

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// A sandbox run with --allow-net on a network reaches the outside only
// through rbox's filtering proxies, which serve sockets in its own network
// namespace from the host's (package egress). Its eth0 still reaches the
// other sandboxes, so the packets it sends must not be routed on by the
// holder's namespace to slirp4netns's tap: it gets no default route, and,
// because root inside with CAP_NET_ADMIN could add one, the holder's
// namespace drops them too. The filter is a bridge-family nftables chain
// on the bridge's ports: it sees every frame a sandbox sends, matched by
// the port it came in on (the host end of its veth pair, whose name the
// sandbox can neither see nor change), before the bridge switches or
// routes it. From a port in the set restrictedSet it lets through ARP,
// IPv4 to the subnet's addresses other than the gateway (whose DNS
// responder would relay any question to the host's nameserver), and IPv6
// to the network's prefix other than the gateway and to link-local
// addresses (neighbour discovery; the holder's namespace forwards no IPv6),
// and drops everything else: other destinations, VLAN-tagged frames.

const (
	nftTable      = "rbox"
	restrictedSet = "egress"
)

// restrictor is the holder's nftables filter.
type restrictor struct {
	set *nftables.Set
}

// ifname is an interface name as nftables compares it: IFNAMSIZ bytes,
// NUL-padded.
func ifname(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}

// newRestrictor installs the filter for prefix, whose gateway is gw, and
// the IPv6 prefix6 (if valid), in this network namespace, with no port in
// its set yet.
func newRestrictor(prefix netip.Prefix, gw netip.Addr, prefix6 netip.Prefix) (*restrictor, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyBridge, Name: nftTable})
	set := &nftables.Set{Table: t, Name: restrictedSet, KeyType: nftables.TypeIFName}
	if err := c.AddSet(set, nil); err != nil {
		return nil, fmt.Errorf("nftables set: %w", err)
	}
	ch := c.AddChain(&nftables.Chain{
		Name: "ports", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityFilter,
	})
	// Every rule starts: the frame came in on a port of the set.
	fromRestricted := func(more ...expr.Any) []expr.Any {
		return append([]expr.Any{
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
			&expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID},
		}, more...)
	}
	etherType := func(t uint16) []expr.Any {
		b := make([]byte, 2)
		binary.BigEndian.PutUint16(b, t)
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: b},
		}
	}
	daddr := &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4}
	accept := &expr.Verdict{Kind: expr.VerdictAccept}
	drop := &expr.Verdict{Kind: expr.VerdictDrop}
	gw4 := gw.As4()
	net4 := prefix.Addr().As4()
	maskBytes := make([]byte, 4)
	binary.BigEndian.PutUint32(maskBytes, ^uint32(0)<<(32-prefix.Bits()))
	rules := [][]expr.Any{
		fromRestricted(append(etherType(unix.ETH_P_ARP), accept)...),
		fromRestricted(append(etherType(unix.ETH_P_IP), daddr,
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: gw4[:]}, drop)...),
		fromRestricted(append(etherType(unix.ETH_P_IP), daddr,
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: maskBytes, Xor: make([]byte, 4)},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: net4[:]}, accept)...),
	}
	if prefix6.IsValid() {
		daddr6 := &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 24, Len: 16}
		// to: the bits of the destination under mask equal want.
		to := func(mask, want []byte, v *expr.Verdict) []expr.Any {
			return fromRestricted(append(etherType(unix.ETH_P_IPV6), daddr6,
				&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 16, Mask: mask, Xor: make([]byte, 16)},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: want}, v)...)
		}
		ones := func(bits int) []byte {
			m := make([]byte, 16)
			for i := 0; i < bits; i++ {
				m[i/8] |= 0x80 >> (i % 8)
			}
			return m
		}
		gw6 := Address6(prefix, prefix6, gw).As16()
		net6 := prefix6.Addr().As16()
		linkLocal := netip.MustParseAddr("fe80::").As16()
		linkMulticast := netip.MustParseAddr("ff02::").As16()
		rules = append(rules,
			to(ones(128), gw6[:], drop),
			to(ones(64), net6[:], accept),
			to(ones(10), linkLocal[:], accept),
			to(ones(16), linkMulticast[:], accept),
		)
	}
	rules = append(rules, fromRestricted(drop))
	for _, r := range rules {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: r})
	}
	if err := c.Flush(); err != nil {
		return nil, fmt.Errorf("install the nftables filter for --allow-net sandboxes: %w", err)
	}
	return &restrictor{set: set}, nil
}

// CheckFilter installs the filter, as a network's holder does, in this
// network namespace (for `rbox check`, in a new one); nil when the kernel
// takes it.
func CheckFilter() error {
	_, err := newRestrictor(netip.MustParsePrefix("10.89.0.0/24"), netip.MustParseAddr("10.89.0.1"), netip.MustParsePrefix("fd00::/64"))
	return err
}

// restrict adds the bridge port port to the filter's set.
func (r *restrictor) restrict(port string) error {
	c, err := nftables.New()
	if err == nil {
		if err = c.SetAddElements(r.set, []nftables.SetElement{{Key: ifname(port)}}); err == nil {
			err = c.Flush()
		}
	}
	if err != nil {
		return fmt.Errorf("restrict %s: %w", port, err)
	}
	return nil
}

// release takes port out of the set.
func (r *restrictor) release(port string) {
	c, err := nftables.New()
	if err == nil && c.SetDeleteElements(r.set, []nftables.SetElement{{Key: ifname(port)}}) == nil {
		_ = c.Flush()
	}
}
