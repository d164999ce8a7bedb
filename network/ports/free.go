package ports

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// FreeHostPort picks a port free on ip now for proto ("tcp" or "udp"), for
// a -p without a host port. It picks below the kernel's ephemeral range
// (net.ipv4.ip_local_port_range) when there is room there: a port the
// kernel handed out for "port 0" comes from that range, where any
// outgoing connection may take it before the helper binds it.
func FreeHostPort(proto, ip string) (int, error) {
	low := ephemeralLow()
	start := max(UnprivilegedPortStart(), 1024)
	if low-start >= 1000 {
		for range 64 {
			p := start + rand.IntN(low-start)
			if Free(proto, ip, p) {
				return p, nil
			}
		}
	}
	// The kernel's choice, from the ephemeral range.
	return kernelPort(proto, ip)
}

// ephemeralLow is the first port of the kernel's ephemeral range.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return 32768
	}
	return n
}

// Free reports whether proto's port on ip can be bound now.
func Free(proto, ip string, port int) bool {
	_, err := probe(proto, net.JoinHostPort(ip, strconv.Itoa(port)))
	return err == nil
}

func kernelPort(proto, ip string) (int, error) {
	return probe(proto, net.JoinHostPort(ip, "0"))
}

// probe binds proto's addr and closes it at once, returning the port it
// got. The socket exists only while syscall.ForkLock is held: a child
// forked meanwhile from another thread (newuidmap, a network helper)
// would hold a copy of it until it executes, and the port with it, and
// the real bind a moment later would find the port in use (seen under
// load, a few runs in a hundred).
func probe(proto, addr string) (int, error) {
	syscall.ForkLock.Lock()
	defer syscall.ForkLock.Unlock()
	if proto == "udp" {
		c, err := net.ListenPacket("udp", addr)
		if err != nil {
			return 0, err
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
