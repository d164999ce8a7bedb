package bridge

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

func TestParseSubnet(t *testing.T) {
	for in, want := range map[string]string{
		"10.89.0.0/24":   "",
		"192.168.8.0/22": "",
		"10.89.0.1/24":   "host bits set (did you mean 10.89.0.0/24?)",
		"300.0.0.0/24":   "IPv4 prefix",
		"fd00::/64":      "IPv4 prefix",
		"10.0.0.0/30":    "8 to 29",
		"10.0.0.0/8":     "overlaps 10.0.2.0/24",
		"10.0.2.0/24":    "overlaps",
		"dev":            "IPv4 prefix",
	} {
		_, err := ParseSubnet(in)
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("ParseSubnet(%q) = %v, want %q", in, err, want)
		}
	}
}

func TestValidName(t *testing.T) {
	for _, bad := range []string{"", "none", "user", "host", "pasta", "slirp4netns", "-x", "a/b", strings.Repeat("a", 64)} {
		if ValidName(bad) == nil {
			t.Errorf("ValidName(%q) accepted", bad)
		}
	}
	if err := ValidName("dev-1.x"); err != nil {
		t.Error(err)
	}
	if err := ValidName("a b"); err == nil || !strings.Contains(err.Error(), "network name") {
		t.Errorf("ValidName(\"a b\") = %v, want it to say network name", err)
	}
}

func TestFreeSubnet(t *testing.T) {
	root := t.TempDir()
	for name, subnet := range map[string]string{"a": "10.89.0.0/24", "b": "10.89.2.0/23"} {
		dir := filepath.Join(root, name)
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := write(dir, &Network{Name: name, Subnet: subnet}); err != nil {
			t.Fatal(err)
		}
	}
	p, err := FreeSubnet(root)
	if err != nil || p.String() != "10.89.1.0/24" {
		t.Errorf("FreeSubnet = %v %v, want 10.89.1.0/24", p, err)
	}
	if got := Overlapping(root, netip.MustParsePrefix("10.89.0.0/16")); got != "a" && got != "b" {
		t.Errorf("Overlapping = %q", got)
	}
	if got := Overlapping(root, netip.MustParsePrefix("10.90.0.0/16")); got != "" {
		t.Errorf("Overlapping = %q, want none", got)
	}
}

func TestGroupRange(t *testing.T) {
	for in, want := range map[string]string{
		"         0       1000          1\n         1     100000      65536\n": "0 65536",
		"0 0 1\n":          "0 0",
		"0 0 4294967295\n": "0 4294967294",
	} {
		if got, err := groupRange(in); err != nil || got != want {
			t.Errorf("groupRange(%q) = %q %v, want %q", in, got, err, want)
		}
	}
}

// The responder answers A for a sandbox's name (any case, with or without
// the final dot, alone or followed by the network's name) and AAAA with
// its IPv6 address, or no answer on a network without IPv6.
func TestAnswer(t *testing.T) {
	h := &holder{network: "dev", byName: map[string]netip.Addr{"db": netip.MustParseAddr("10.89.0.2")}}
	ask := func(name string, typ dnsmessage.Type) *dnsmessage.Message {
		b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 7, RecursionDesired: true})
		_ = b.StartQuestions()
		_ = b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET})
		q, err := b.Finish()
		if err != nil {
			t.Fatal(err)
		}
		out := h.answer(q)
		if out == nil {
			t.Fatalf("%s: no answer", name)
		}
		var m dnsmessage.Message
		if err := m.Unpack(out); err != nil {
			t.Fatal(err)
		}
		return &m
	}
	m := ask("DB.", dnsmessage.TypeA)
	if m.ID != 7 || !m.Response || len(m.Answers) != 1 || m.Answers[0].Body.(*dnsmessage.AResource).A != [4]byte{10, 89, 0, 2} {
		t.Errorf("A db: %+v", m)
	}
	if m := ask("db.dev.", dnsmessage.TypeA); len(m.Answers) != 1 {
		t.Errorf("A db.dev: %+v", m)
	}
	if m := ask("db.", dnsmessage.TypeAAAA); len(m.Answers) != 0 || m.RCode != dnsmessage.RCodeSuccess {
		t.Errorf("AAAA db without IPv6: %+v", m)
	}
	h.prefix, h.prefix6 = netip.MustParsePrefix("10.89.0.0/24"), netip.MustParsePrefix("fd12:3456:789a::/64")
	m = ask("db.dev.", dnsmessage.TypeAAAA)
	if len(m.Answers) != 1 || m.Answers[0].Body.(*dnsmessage.AAAAResource).AAAA != netip.MustParseAddr("fd12:3456:789a::2").As16() {
		t.Errorf("AAAA db.dev: %+v", m)
	}
}

func TestIPv6Addresses(t *testing.T) {
	p, err := newULA()
	if err != nil {
		t.Fatal(err)
	}
	if b := p.Addr().As16(); b[0] != 0xfd || p.Bits() != 64 || p.Masked() != p {
		t.Fatalf("newULA() = %s, want a unique local /64", p)
	}
	if q, _ := newULA(); q == p {
		t.Errorf("two networks got the same prefix %s", p)
	}
	p6 := netip.MustParsePrefix("fd12:3456:789a::/64")
	for v4, want := range map[string]string{
		"10.89.0.1": "fd12:3456:789a::1", "10.89.0.2": "fd12:3456:789a::2", "10.89.3.254": "fd12:3456:789a::3fe",
	} {
		if got := Address6(netip.MustParsePrefix("10.89.0.0/22"), p6, netip.MustParseAddr(v4)); got.String() != want {
			t.Errorf("Address6(%s) = %s, want %s", v4, got, want)
		}
	}
}
