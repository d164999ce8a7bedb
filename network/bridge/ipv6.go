package bridge

import (
	"crypto/rand"
	"encoding/binary"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// A network created with --ipv6 also has an IPv6 unique local prefix
// (RFC 4193: fd00::/8 and a random 40-bit global ID, subnet 0, /64). A
// sandbox's IPv6 address is the prefix with its IPv4 address's offset in
// the subnet as interface id (10.89.0.2 is PREFIX::2); the gateway's is
// PREFIX::1. IPv6 stays inside the network: the sandboxes reach each other
// over it, and the network's DNS answers AAAA for their names, but there is
// no IPv6 route out (slirp4netns carries IPv4 only here).

// newULA is a random unique local /64.
func newULA() (netip.Prefix, error) {
	var b [16]byte
	b[0] = 0xfd
	if _, err := rand.Read(b[1:6]); err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(netip.AddrFrom16(b), 64), nil
}

// Address6 is the IPv6 address on prefix6 of a, an address of prefix.
func Address6(prefix, prefix6 netip.Prefix, a netip.Addr) netip.Addr {
	base, x := prefix.Addr().As4(), a.As4()
	offset := binary.BigEndian.Uint32(x[:]) - binary.BigEndian.Uint32(base[:])
	b := prefix6.Addr().As16()
	binary.BigEndian.PutUint32(b[12:], offset)
	return netip.AddrFrom16(b)
}

// address6 is the IPv6 address that goes with a on the network, if it has
// IPv6.
func (h *holder) address6(a netip.Addr) (netip.Addr, bool) {
	if !h.prefix6.IsValid() {
		return netip.Addr{}, false
	}
	return Address6(h.prefix, h.prefix6, a), true
}

// ipv6Addr is a on the network's /64, usable at once: no duplicate address
// detection (the holder hands out every address of the prefix, so none is
// duplicated), which would hold it back about a second.
func ipv6Addr(a netip.Addr) *netlink.Addr {
	return &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(64, 128)}, Flags: unix.IFA_F_NODAD}
}
