package bridge

import (
	"net"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// upstream is slirp4netns's DNS forwarder in the holder's namespace: names
// that are not the network's sandboxes' go there.
const upstream = "10.0.2.3:53"

// serveDNS answers on the gateway's port 53 (UDP) for the names of the
// network's sandboxes (NAME, or NAME.NETWORK) and relays every other
// question to upstream.
func (h *holder) serveDNS() error {
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: h.gateway.AsSlice(), Port: 53})
	if err != nil {
		return err
	}
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFromUDP(buf)
			if err != nil {
				return
			}
			q := append([]byte(nil), buf[:n]...)
			go func() {
				if out := h.answer(q); out != nil {
					_, _ = pc.WriteToUDP(out, from)
				}
			}()
		}
	}()
	return nil
}

// answer is the reply to the query q, nil to drop it.
func (h *holder) answer(q []byte) []byte {
	var p dnsmessage.Parser
	hdr, err := p.Start(q)
	if err != nil {
		return nil
	}
	qs, err := p.AllQuestions()
	if err != nil || len(qs) != 1 {
		return nil
	}
	name := strings.TrimSuffix(strings.ToLower(qs[0].Name.String()), ".")
	if short, ok := strings.CutSuffix(name, "."+h.network); ok {
		name = short
	}
	a, ok := h.lookup(name)
	if !ok {
		return relay(q)
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: hdr.ID, Response: true, Authoritative: true, RecursionDesired: hdr.RecursionDesired, RecursionAvailable: true})
	b.EnableCompression()
	_ = b.StartQuestions()
	_ = b.Question(qs[0])
	_ = b.StartAnswers()
	switch qs[0].Type {
	case dnsmessage.TypeA:
		_ = b.AResource(dnsmessage.ResourceHeader{Name: qs[0].Name, Class: dnsmessage.ClassINET, TTL: 0}, dnsmessage.AResource{A: a.As4()})
	case dnsmessage.TypeAAAA:
		if a6, ok := h.address6(a); ok {
			_ = b.AAAAResource(dnsmessage.ResourceHeader{Name: qs[0].Name, Class: dnsmessage.ClassINET, TTL: 0}, dnsmessage.AAAAResource{AAAA: a6.As16()})
		}
	}
	out, err := b.Finish()
	if err != nil {
		return nil
	}
	return out
}

// relay asks upstream.
func relay(q []byte) []byte {
	c, err := net.Dial("udp", upstream)
	if err != nil {
		return nil
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(q); err != nil {
		return nil
	}
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}
