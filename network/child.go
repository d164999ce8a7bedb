package network

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/network/ports"
	"github.com/rbox-dev/rbox/spec"
)

// ConfigureChild does, in the sandbox's pid 1 (root in the sandbox's user
// namespace, inside its network and mount namespaces, before pivot_root),
// what the helper left to the inside: for pasta without host loopback, an
// unreachable route to the gateway; for published ports, the port
// forwarder's agent, whose goroutines must keep running in pid 1 for the
// sandbox's life (pid 1 must not exec, and must keep descriptor
// c.PortDirFD open). The interface itself is configured by the helper.
func ConfigureChild(c ChildConfig) error {
	return configureChild(c, nil)
}

// ConfigureChildLog is ConfigureChild with the port agent's diagnostics
// sent to log.
func ConfigureChildLog(c ChildConfig, log io.Writer) error {
	return configureChild(c, log)
}

func configureChild(c ChildConfig, log io.Writer) error {
	switch c.Mode {
	case spec.NetNone, spec.NetHost, "":
		return nil
	case spec.NetPasta, spec.NetSlirp4netns:
	default:
		return fmt.Errorf("configure network: unknown mode %q", c.Mode)
	}
	if c.Device != "" {
		if _, err := net.InterfaceByName(c.Device); err != nil {
			return fmt.Errorf("configure network: %s did not create %s: %w", c.Mode, c.Device, err)
		}
	}
	if c.BlockGateway && c.Gateway != "" {
		gw := net.ParseIP(c.Gateway).To4()
		if gw == nil {
			return fmt.Errorf("configure network: bad gateway %q", c.Gateway)
		}
		if err := addUnreachableRoute(gw); err != nil {
			return fmt.Errorf("configure network: block gateway %s: %w", c.Gateway, err)
		}
	}
	if c.PortDirFD > 0 {
		if err := ports.StartAgent(c.PortDirFD, log); err != nil {
			return err
		}
	}
	return nil
}

// addUnreachableRoute adds "unreachable DST/32" to the main table, over
// rtnetlink.
func addUnreachableRoute(dst net.IP) error {
	s, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer unix.Close(s)
	if err := unix.Bind(s, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	if err := unix.Sendto(s, UnreachableRouteRequest(dst), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	le := binary.NativeEndian
	buf := make([]byte, 4096)
	for {
		nr, _, err := unix.Recvfrom(s, buf, 0)
		if err != nil {
			return err
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:nr])
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if m.Header.Type != unix.NLMSG_ERROR || m.Header.Seq != 1 {
				continue
			}
			if len(m.Data) < 4 {
				return fmt.Errorf("short netlink error message")
			}
			if code := int32(le.Uint32(m.Data)); code != 0 {
				return os.NewSyscallError("rtnetlink", unix.Errno(-code))
			}
			return nil
		}
	}
}

// UnreachableRouteRequest is the rtnetlink request (acknowledged) that adds
// "unreachable DST/32" to the main table.
func UnreachableRouteRequest(dst net.IP) []byte {
	const attrLen = unix.SizeofRtAttr + 4
	msg := make([]byte, unix.SizeofNlMsghdr+unix.SizeofRtMsg+attrLen)
	le := binary.NativeEndian
	le.PutUint32(msg[0:], uint32(len(msg)))
	le.PutUint16(msg[4:], unix.RTM_NEWROUTE)
	le.PutUint16(msg[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK|unix.NLM_F_CREATE|unix.NLM_F_EXCL)
	le.PutUint32(msg[8:], 1) // seq
	rt := msg[unix.SizeofNlMsghdr:]
	rt[0] = unix.AF_INET       // family
	rt[1] = 32                 // dst_len
	rt[4] = unix.RT_TABLE_MAIN // table
	rt[5] = unix.RTPROT_STATIC // protocol
	rt[6] = unix.RT_SCOPE_UNIVERSE
	rt[7] = unix.RTN_UNREACHABLE // type
	a := rt[unix.SizeofRtMsg:]
	le.PutUint16(a[0:], attrLen)
	le.PutUint16(a[2:], unix.RTA_DST)
	copy(a[unix.SizeofRtAttr:], dst.To4())
	return msg
}
