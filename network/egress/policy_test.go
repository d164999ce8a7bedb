package egress

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"
)

func TestParseRule(t *testing.T) {
	for _, tc := range []struct {
		in       string
		name     string
		wildcard bool
		prefix   string
		port     int
	}{
		{in: "github.com", name: "github.com"},
		{in: "GitHub.COM.", name: "github.com"},
		{in: "github.com:22", name: "github.com", port: 22},
		{in: "*.pypi.org", name: "pypi.org", wildcard: true},
		{in: "*.pypi.org:443", name: "pypi.org", wildcard: true, port: 443},
		{in: "10.1.2.3", prefix: "10.1.2.3/32"},
		{in: "10.1.2.3:8080", prefix: "10.1.2.3/32", port: 8080},
		{in: "10.0.0.0/8", prefix: "10.0.0.0/8"},
		{in: "10.0.0.0/8:443", prefix: "10.0.0.0/8", port: 443},
		{in: "::1", prefix: "::1/128"},
		{in: "2001:db8::/32", prefix: "2001:db8::/32"},
		{in: "[2001:db8::1]:443", prefix: "2001:db8::1/128", port: 443},
		{in: "[2001:db8::/32]:443", prefix: "2001:db8::/32", port: 443},
		{in: "::ffff:10.0.0.0/104", prefix: "10.0.0.0/8"},
		{in: "::ffff:127.0.0.1", prefix: "127.0.0.1/32"},
		{in: "_srv.example.com", name: "_srv.example.com"},
	} {
		r, err := ParseRule(tc.in)
		if err != nil {
			t.Errorf("ParseRule(%q): %v", tc.in, err)
			continue
		}
		var want netip.Prefix
		if tc.prefix != "" {
			want = netip.MustParsePrefix(tc.prefix)
		}
		if r.Name != tc.name || r.Wildcard != tc.wildcard || r.Prefix != want || r.Port != tc.port {
			t.Errorf("ParseRule(%q) = %+v", tc.in, r)
		}
	}
}

func TestParseRuleErrors(t *testing.T) {
	for in, want := range map[string]string{
		"":                               "empty entry",
		"github.com:0":                   "port",
		"github.com:99999":               "port",
		"github.com:x":                   "port",
		"*":                              "first label",
		"*.":                             "first label",
		"a.*.com":                        "first label",
		"**.com":                         "first label",
		"foo..com":                       "empty label",
		"-foo.com":                       "begins or ends",
		"foo bar":                        "not allowed in a name",
		"10.0.0.1/8":                     "bits set past the prefix",
		"10.0.0.0/33":                    "not a valid CIDR",
		"10.0.0.256":                     "not a valid IP",
		"10.1.2":                         "not a valid IP",
		"2001:db8::1:443x":               "brackets",
		"[github.com]:443":               "brackets hold",
		"[::1]x":                         "after ]",
		"[::1":                           "missing ]",
		"fe80::1%eth0":                   "zone",
		"http://github.com":              "",
		strings.Repeat("a", 64) + ".com": "63",
	} {
		_, err := ParseRule(in)
		if err == nil {
			t.Errorf("ParseRule(%q) accepted", in)
			continue
		}
		if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), RuleForm) {
			t.Errorf("ParseRule(%q) = %v, want it to mention %q and the form", in, err, want)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("ParseRule(%q): error is not one line: %q", in, err)
		}
	}
	if _, err := ParsePolicy(nil); err == nil {
		t.Error("empty policy accepted")
	}
}

func TestMatch(t *testing.T) {
	p, err := ParsePolicy([]string{"github.com", "*.pypi.org", "ssh.example.com:22", "10.0.0.0/8:443", "192.168.1.5", "2001:db8::/32"})
	if err != nil {
		t.Fatal(err)
	}
	names := []struct {
		name string
		port int
		ok   bool
	}{
		{"github.com", 443, true},
		{"GITHUB.com.", 80, true},
		{"api.github.com", 443, false}, // not a wildcard
		{"evilgithub.com", 443, false},
		{"files.pypi.org", 443, true},
		{"a.b.pypi.org", 443, true},
		{"pypi.org", 443, false}, // the wildcard is for subdomains
		{"xpypi.org", 443, false},
		{"pypi.org.evil.com", 443, false},
		{"ssh.example.com", 22, true},
		{"ssh.example.com", 443, false},
		{"ssh.example.com", 0, true}, // any port: the DNS responder's question
		{"10.1.2.3", 443, false},     // an address is not a name
	}
	for _, tc := range names {
		if _, ok := p.MatchName(tc.name, tc.port); ok != tc.ok {
			t.Errorf("MatchName(%q, %d) = %v, want %v", tc.name, tc.port, ok, tc.ok)
		}
	}
	addrs := []struct {
		addr string
		port int
		ok   bool
	}{
		{"10.1.2.3", 443, true},
		{"10.1.2.3", 80, false},
		{"11.1.2.3", 443, false},
		{"::ffff:10.1.2.3", 443, true},
		{"192.168.1.5", 8080, true},
		{"192.168.1.6", 8080, false},
		{"2001:db8::5", 1, true},
		{"2001:db9::5", 1, false},
		{"140.82.112.3", 443, false}, // github.com's address is not allowed by its name
	}
	for _, tc := range addrs {
		if _, ok := p.MatchAddr(netip.MustParseAddr(tc.addr), tc.port); ok != tc.ok {
			t.Errorf("MatchAddr(%s, %d) = %v, want %v", tc.addr, tc.port, ok, tc.ok)
		}
	}
}

// FuzzParseRule checks that whatever is accepted is matched consistently:
// a name rule matches its own name (and a wildcard its subdomains) and
// never an address; an address rule matches the prefix's own address; a
// port rule matches only that port; parsing is stable under re-parsing of
// the canonical form.
func FuzzParseRule(f *testing.F) {
	for _, s := range []string{"github.com", "*.pypi.org:443", "10.0.0.0/8:443", "[2001:db8::/32]:22", "::1", "1.2.3.4", "a_b.c", "x:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRule(s)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error for %q", s)
			}
			return
		}
		p := &Policy{Rules: []Rule{r}}
		port := r.Port
		if port == 0 {
			port = 443
		}
		other := port%65535 + 1
		switch {
		case r.Prefix.IsValid():
			if r.Name != "" || r.Wildcard {
				t.Fatalf("%q: both an address and a name", s)
			}
			if _, ok := p.MatchAddr(r.Prefix.Addr(), port); !ok {
				t.Fatalf("%q does not match its own address", s)
			}
			if _, ok := p.MatchName(r.Prefix.Addr().String(), port); ok {
				t.Fatalf("%q: an address rule matched a name", s)
			}
			if _, ok := p.MatchAddr(r.Prefix.Addr(), other); ok != (r.Port == 0) {
				t.Fatalf("%q: port %d gives %v", s, other, ok)
			}
		case r.Name != "":
			name := r.Name
			if r.Wildcard {
				name = "sub." + name
				if _, ok := p.MatchName(r.Name, port); ok {
					t.Fatalf("%q matches its apex", s)
				}
			}
			if _, ok := p.MatchName(strings.ToUpper(name)+".", port); !ok {
				t.Fatalf("%q does not match %q", s, name)
			}
			if _, ok := p.MatchName(name, other); ok != (r.Port == 0) {
				t.Fatalf("%q: port %d gives %v", s, other, ok)
			}
			if _, ok := p.MatchName("x"+name, port); ok && !r.Wildcard {
				t.Fatalf("%q matches x%s", s, name)
			}
			if a, err := netip.ParseAddr(name); err == nil {
				t.Fatalf("%q: name rule for address %s", s, a)
			}
		default:
			t.Fatalf("%q: neither an address nor a name", s)
		}
		// The rule as rbox would print it in a hint parses to the same.
		canon := r.Name
		if r.Wildcard {
			canon = "*." + canon
		}
		if r.Prefix.IsValid() {
			canon = r.Prefix.String()
			if r.Prefix.IsSingleIP() {
				canon = r.Prefix.Addr().String()
			}
			if r.Port != 0 {
				canon = "[" + canon + "]"
				if r.Prefix.Addr().Is4() {
					canon = strings.Trim(canon, "[]")
				}
			}
		}
		if r.Port != 0 {
			canon += ":" + strconv.Itoa(r.Port)
		}
		r2, err := ParseRule(canon)
		if err != nil || r2.Name != r.Name || r2.Wildcard != r.Wildcard || r2.Prefix != r.Prefix || r2.Port != r.Port {
			t.Fatalf("%q: canonical form %q parses to %+v, %v", s, canon, r2, err)
		}
	})
}
