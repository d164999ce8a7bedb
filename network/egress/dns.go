package egress

import (
	"context"
	"net"
	"time"

	"github.com/miekg/dns"
)

// The DNS responder (miekg/dns, on UDP and TCP 127.0.0.1:53 inside)
// answers A and AAAA questions for allowed names with the addresses the
// host resolves them to, other questions about allowed names with no
// records, and every question about any other name with NXDOMAIN, without
// asking anyone: a refused name never leaves the sandbox, not even as a
// query to the host's DNS.
//
// A name is allowed here when a name rule matches it at some port: DNS
// does not know which port will follow.

const dnsTTL = 30

func (e *Egress) serveDNS(udp net.PacketConn, tcp net.Listener) {
	h := dns.HandlerFunc(e.answer)
	for _, srv := range []*dns.Server{{PacketConn: udp, Handler: h}, {Listener: tcp, Handler: h}} {
		go func() { _ = srv.ActivateAndServe() }()
	}
}

func (e *Egress) answer(w dns.ResponseWriter, q *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(q)
	m.RecursionAvailable = true
	defer func() { _ = w.WriteMsg(m) }()
	if q.Opcode != dns.OpcodeQuery || len(q.Question) != 1 {
		m.Rcode = dns.RcodeNotImplemented
		return
	}
	question := q.Question[0]
	name := NormalizeName(question.Name)
	if !e.nameAllowed(name) {
		e.report("dns", &refusal{dest: name, why: "no name rule of the sandbox's allowed destinations matches it (to allow it, add " + name + ")"})
		m.Rcode = dns.RcodeNameError
		return
	}
	if question.Qclass != dns.ClassINET || (question.Qtype != dns.TypeA && question.Qtype != dns.TypeAAAA) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addrs, err := e.resolver.lookup(ctx, name)
	if err != nil {
		if de, ok := err.(*net.DNSError); ok && de.IsNotFound {
			m.Rcode = dns.RcodeNameError
		} else {
			m.Rcode = dns.RcodeServerFailure
		}
		return
	}
	hdr := dns.RR_Header{Name: question.Name, Class: dns.ClassINET, Ttl: dnsTTL}
	for _, a := range addrs {
		a = a.Unmap()
		switch {
		case a.Is4() && question.Qtype == dns.TypeA:
			hdr.Rrtype = dns.TypeA
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: a.AsSlice()})
		case a.Is6() && question.Qtype == dns.TypeAAAA:
			hdr.Rrtype = dns.TypeAAAA
			m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: a.AsSlice()})
		}
	}
}

// nameAllowed reports whether some name rule matches name, at any port.
func (e *Egress) nameAllowed(name string) bool {
	_, ok := e.opts.Policy.MatchName(name, 0)
	return ok
}
