package egress

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// The DNS responder (UDP and TCP 127.0.0.1:53 inside; messages parsed and
// built with golang.org/x/net/dns/dnsmessage, the package Go's own resolver
// uses) answers A and AAAA questions for allowed names with the addresses
// the host resolves them to, other questions about allowed names with no
// records, and every question about any other name with NXDOMAIN, without
// asking anyone: a refused name never leaves the sandbox, not even as a
// query to the host's DNS.
//
// A name is allowed here when a name rule matches it at some port: DNS
// does not know which port will follow.

const dnsTTL = 30

func (e *Egress) serveDNS(udp net.PacketConn, tcp net.Listener) {
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := udp.ReadFrom(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			q := append([]byte(nil), buf[:n]...)
			go func() {
				if resp := e.answer(q, 512); resp != nil {
					_, _ = udp.WriteTo(resp, from)
				}
			}()
		}
	}()
	go func() {
		for {
			c, err := tcp.Accept()
			if err != nil {
				return
			}
			go e.serveDNSConn(c)
		}
	}()
}

// serveDNSConn answers the length-prefixed queries of one TCP connection.
func (e *Egress) serveDNSConn(c net.Conn) {
	defer c.Close()
	for {
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		var l [2]byte
		if _, err := io.ReadFull(c, l[:]); err != nil {
			return
		}
		q := make([]byte, binary.BigEndian.Uint16(l[:]))
		if _, err := io.ReadFull(c, q); err != nil {
			return
		}
		resp := e.answer(q, 65535)
		if resp == nil {
			return
		}
		binary.BigEndian.PutUint16(l[:], uint16(len(resp)))
		if _, err := c.Write(append(l[:], resp...)); err != nil {
			return
		}
	}
}

// answer builds the response to query q, at most limit bytes (truncated
// beyond), or nil when q is not a DNS query at all.
func (e *Egress) answer(q []byte, limit int) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil || h.Response {
		return nil
	}
	qs, err := p.AllQuestions()
	rh := dnsmessage.Header{ID: h.ID, Response: true, OpCode: h.OpCode, RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
	if err != nil || h.OpCode != 0 || len(qs) != 1 {
		rh.RCode = dnsmessage.RCodeNotImplemented
		return build(rh, qs, nil, limit)
	}
	question := qs[0]
	name := NormalizeName(question.Name.String())
	if addrs, ok := e.opts.Peers.peer(name); ok && question.Class == dnsmessage.ClassINET {
		// A sandbox of the network: its addresses there, which change as
		// sandboxes come and go (TTL 0, as the network's own responder).
		var answers []dnsmessage.Resource
		header := dnsmessage.ResourceHeader{Name: question.Name, Class: dnsmessage.ClassINET}
		for _, a := range addrs {
			switch {
			case question.Type == dnsmessage.TypeA && a.Is4():
				answers = append(answers, dnsmessage.Resource{Header: header, Body: &dnsmessage.AResource{A: a.As4()}})
			case question.Type == dnsmessage.TypeAAAA && a.Is6():
				answers = append(answers, dnsmessage.Resource{Header: header, Body: &dnsmessage.AAAAResource{AAAA: a.As16()}})
			}
		}
		return build(rh, qs, answers, limit)
	}
	if !e.nameAllowed(name) {
		e.report("dns", &refusal{dest: name, why: "no name rule of the sandbox's allowed destinations matches it (to allow it, add " + name + ")"})
		rh.RCode = dnsmessage.RCodeNameError
		return build(rh, qs, nil, limit)
	}
	if question.Class != dnsmessage.ClassINET || (question.Type != dnsmessage.TypeA && question.Type != dnsmessage.TypeAAAA) {
		return build(rh, qs, nil, limit)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addrs, err := e.resolver.lookup(ctx, name)
	if err != nil {
		var de *net.DNSError
		if errors.As(err, &de) && de.IsNotFound {
			rh.RCode = dnsmessage.RCodeNameError
		} else {
			rh.RCode = dnsmessage.RCodeServerFailure
		}
		return build(rh, qs, nil, limit)
	}
	var answers []dnsmessage.Resource
	for _, a := range addrs {
		a = a.Unmap()
		rh := dnsmessage.ResourceHeader{Name: question.Name, Class: dnsmessage.ClassINET, TTL: dnsTTL}
		switch {
		case a.Is4() && question.Type == dnsmessage.TypeA:
			answers = append(answers, dnsmessage.Resource{Header: rh, Body: &dnsmessage.AResource{A: a.As4()}})
		case a.Is6() && question.Type == dnsmessage.TypeAAAA:
			answers = append(answers, dnsmessage.Resource{Header: rh, Body: &dnsmessage.AAAAResource{AAAA: a.As16()}})
		}
	}
	return build(rh, qs, answers, limit)
}

// build packs a response; past limit bytes it drops the answers and sets
// the truncated bit, so that the client asks again over TCP.
func build(h dnsmessage.Header, qs []dnsmessage.Question, answers []dnsmessage.Resource, limit int) []byte {
	msg := dnsmessage.Message{Header: h, Questions: qs, Answers: answers}
	b, err := msg.Pack()
	if err != nil {
		return nil
	}
	if len(b) > limit {
		msg.Header.Truncated, msg.Answers = true, nil
		if b, err = msg.Pack(); err != nil {
			return nil
		}
	}
	return b
}

// nameAllowed reports whether some name rule matches name, at any port.
func (e *Egress) nameAllowed(name string) bool {
	_, ok := e.opts.Policy.MatchName(name, 0)
	return ok
}
