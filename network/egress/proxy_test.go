package egress

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// testEgress serves the HTTP proxy of policy rules on a loopback port of
// this process (no sandbox), with names from hosts, and returns its
// address and the refusal log.
func testEgress(t *testing.T, rules, hosts string) (*Egress, string, *bytes.Buffer) {
	t.Helper()
	p, err := ParsePolicy(strings.Split(rules, ","))
	if err != nil {
		t.Fatal(err)
	}
	res, err := newResolver(hosts)
	if err != nil {
		t.Fatal(err)
	}
	log := &syncBuf{}
	e := &Egress{opts: Options{Policy: p, AllowHostLoopback: true, Log: log}, resolver: res, reported: map[string]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	e.serveHTTP(ln)
	return e, ln.Addr().String(), &log.b
}

type syncBuf struct{ b bytes.Buffer }

func (s *syncBuf) Write(p []byte) (int, error) { return s.b.Write(p) }

// upstream is a server that records the request head it gets and answers.
func upstream(t *testing.T) (string, chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan string, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			b, _ := io.ReadAll(io.LimitReader(c, 4096))
			got <- string(b)
			c.Close()
		}
	}()
	return ln.Addr().String(), got
}

func roundTrip(t *testing.T, proxy, raw string) string {
	t.Helper()
	c, err := net.Dial("tcp", proxy)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, raw)
	c.(*net.TCPConn).CloseWrite()
	b, _ := io.ReadAll(c)
	return string(b)
}

func TestForwardPlainRequest(t *testing.T) {
	up, got := upstream(t)
	_, port, _ := net.SplitHostPort(up)
	_, proxy, _ := testEgress(t, "web.test", "web.test=127.0.0.1")
	roundTrip(t, proxy, "POST http://web.test:"+port+"/p?q=1 HTTP/1.1\r\nHost: web.test:"+port+"\r\n"+
		"Proxy-Connection: keep-alive\r\nProxy-Authorization: x\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nX-Kept: 2\r\nContent-Length: 4\r\n\r\nbody")
	head := <-got
	want := "POST /p?q=1 HTTP/1.1\r\nHost: web.test:" + port + "\r\nX-Kept: 2\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbody"
	if head != want {
		t.Errorf("upstream got %q, want %q", head, want)
	}
}

func TestRefusals(t *testing.T) {
	up, got := upstream(t)
	_, port, _ := net.SplitHostPort(up)
	_, proxy, log := testEgress(t, "web.test:1", "web.test=127.0.0.1,other.test=127.0.0.1")
	for _, req := range []string{
		"GET http://other.test:" + port + "/ HTTP/1.1\r\n\r\n",
		"CONNECT other.test:" + port + " HTTP/1.1\r\n\r\n",
		"CONNECT web.test:" + port + " HTTP/1.1\r\n\r\n",
		"CONNECT 127.0.0.1:" + port + " HTTP/1.1\r\n\r\n",
	} {
		resp := roundTrip(t, proxy, req)
		if !strings.HasPrefix(resp, "HTTP/1.1 403 Forbidden\r\n") || !strings.Contains(resp, "to allow it, add") {
			t.Errorf("%q: got %q", req, resp)
		}
	}
	select {
	case h := <-got:
		t.Errorf("a refused request reached the server: %q", h)
	case <-time.After(100 * time.Millisecond):
	}
	if n := strings.Count(log.String(), "\n"); n != 3 {
		t.Errorf("want 3 lines (one per destination), got:\n%s", log)
	}
	for _, req := range []string{"GET / HTTP/1.1\r\n\r\n", "GET https://web.test/ HTTP/1.1\r\n\r\n", "nonsense\r\n\r\n", "GET http://web.test/ HTTP/1.1\r\nX: a\rHost: evil\r\n\r\n", "CONNECT web.test HTTP/1.1\r\n\r\n"} {
		if resp := roundTrip(t, proxy, req); !strings.HasPrefix(resp, "HTTP/1.1 400 ") {
			t.Errorf("%q: got %q", req, resp)
		}
	}
}

func TestConnectTunnel(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		io.Copy(c, c) // echo until the client half-closes
		c.Close()
	}()
	_, proxy, _ := testEgress(t, "127.0.0.1", "")
	// The bytes after the request, sent with it, must not be lost.
	resp := roundTrip(t, proxy, "CONNECT "+ln.Addr().String()+" HTTP/1.1\r\n\r\nhello")
	if resp != "HTTP/1.1 200 Connection established\r\n\r\nhello" {
		t.Errorf("got %q", resp)
	}
}

func TestDNSAnswer(t *testing.T) {
	e, _, log := testEgress(t, "web.test,*.wild.test", "web.test=192.0.2.1,web.test=2001:db8::1,a.wild.test=192.0.2.2")
	ask := func(name string, typ dnsmessage.Type) *dnsmessage.Message {
		q := dnsmessage.Message{Header: dnsmessage.Header{ID: 7, RecursionDesired: true},
			Questions: []dnsmessage.Question{{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET}}}
		b, err := q.Pack()
		if err != nil {
			t.Fatal(err)
		}
		var m dnsmessage.Message
		if err := m.Unpack(e.answer(b, 512)); err != nil {
			t.Fatal(err)
		}
		if m.ID != 7 || !m.Response {
			t.Fatalf("bad header %+v", m.Header)
		}
		return &m
	}
	if m := ask("web.test.", dnsmessage.TypeA); m.RCode != 0 || len(m.Answers) != 1 || m.Answers[0].Body.(*dnsmessage.AResource).A != netip.MustParseAddr("192.0.2.1").As4() {
		t.Errorf("A web.test: %+v", m)
	}
	if m := ask("WEB.test.", dnsmessage.TypeAAAA); m.RCode != 0 || len(m.Answers) != 1 {
		t.Errorf("AAAA web.test: %+v", m)
	}
	if m := ask("web.test.", dnsmessage.TypeMX); m.RCode != 0 || len(m.Answers) != 0 {
		t.Errorf("MX web.test: %+v", m)
	}
	if m := ask("a.wild.test.", dnsmessage.TypeA); m.RCode != 0 || len(m.Answers) != 1 {
		t.Errorf("A a.wild.test: %+v", m)
	}
	if m := ask("b.wild.test.", dnsmessage.TypeA); m.RCode != dnsmessage.RCodeNameError {
		t.Errorf("A b.wild.test (allowed, unknown): %+v", m)
	}
	if m := ask("evil.test.", dnsmessage.TypeA); m.RCode != dnsmessage.RCodeNameError {
		t.Errorf("A evil.test: %+v", m)
	}
	if !strings.Contains(log.String(), "refused evil.test: ") || strings.Contains(log.String(), "wild") {
		t.Errorf("log:\n%s", log)
	}
	if e.answer([]byte("junk"), 512) != nil {
		t.Error("junk answered")
	}
}

// FuzzReadHead: any input gives a request or an error, never a panic, and
// a request's parts have no line breaks.
func FuzzReadHead(f *testing.F) {
	f.Add("GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n")
	f.Add("CONNECT a:443 HTTP/1.1\r\n\r\n")
	f.Fuzz(func(t *testing.T, s string) {
		req, err := readHead(bufio.NewReader(strings.NewReader(s)))
		if err != nil {
			return
		}
		for _, p := range append([]string{req.method, req.target, req.proto}, req.headers...) {
			if strings.ContainsAny(p, "\r\n\x00") {
				t.Fatalf("%q: part %q has a line break", s, p)
			}
		}
	})
}

// The network's sandboxes are peers by name (as the holder answers) and by
// address in either prefix, the gateways excepted; they pass the policy,
// and the DNS responder answers their A and AAAA records.
func TestPeers(t *testing.T) {
	db := []netip.Addr{netip.MustParseAddr("10.89.0.2"), netip.MustParseAddr("fd12::2")}
	p := &Peers{
		Subnet: netip.MustParsePrefix("10.89.0.0/24"), Gateway: netip.MustParseAddr("10.89.0.1"),
		Subnet6: netip.MustParsePrefix("fd12::/64"), Gateway6: netip.MustParseAddr("fd12::1"),
		Lookup: func(name string) []netip.Addr {
			if name == "db" {
				return db
			}
			return nil
		},
	}
	for host, want := range map[string]bool{
		"db": true, "DB.": true, "web": false, "10.89.0.7": true, "10.89.0.1": false, "10.90.0.2": false,
		"fd12::9": true, "fd12::1": false, "fd13::2": false, "::ffff:10.89.0.3": true,
	} {
		if _, got := p.peer(host); got != want {
			t.Errorf("peer(%q) = %v, want %v", host, got, want)
		}
	}
	e, _, _ := testEgress(t, "example.com", "")
	e.opts.Peers = p
	if r := e.check("db", 5432); r != nil {
		t.Errorf("check(db): %v", r)
	}
	if r := e.check("10.89.0.1", 53); r == nil {
		t.Errorf("check(gateway:53) passed")
	}
	for typ, want := range map[dnsmessage.Type]string{dnsmessage.TypeA: "10.89.0.2", dnsmessage.TypeAAAA: "fd12::2"} {
		b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 1})
		_ = b.StartQuestions()
		_ = b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName("db."), Type: typ, Class: dnsmessage.ClassINET})
		q, _ := b.Finish()
		var m dnsmessage.Message
		if err := m.Unpack(e.answer(q, 512)); err != nil || len(m.Answers) != 1 {
			t.Fatalf("%v db: %+v %v", typ, m, err)
		}
		var got netip.Addr
		switch r := m.Answers[0].Body.(type) {
		case *dnsmessage.AResource:
			got = netip.AddrFrom4(r.A)
		case *dnsmessage.AAAAResource:
			got = netip.AddrFrom16(r.AAAA)
		}
		if got.String() != want {
			t.Errorf("%v db = %s, want %s", typ, got, want)
		}
	}
}
