package egress

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Rule is one entry of a policy: a DNS name, a wildcard over a domain's
// subdomains, or an IP prefix (a single address is a /32 or /128), with an
// optional port (0: any port).
type Rule struct {
	// Name is a lower-case DNS name without trailing dot; for a wildcard,
	// the domain after "*.".
	Name     string
	Wildcard bool
	// Prefix is set for address rules.
	Prefix netip.Prefix
	Port   int
	// Text is the rule as written, for messages.
	Text string
}

// Policy is a list of rules; a destination is allowed when a rule matches.
type Policy struct {
	Rules []Rule
}

// RuleForm describes what one rule may be, for error messages.
const RuleForm = "NAME, *.DOMAIN, IP or CIDR, each with an optional :PORT"

// ParsePolicy parses the rules, each as in ParseRule.
func ParsePolicy(rules []string) (*Policy, error) {
	p := &Policy{}
	for _, s := range rules {
		r, err := ParseRule(s)
		if err != nil {
			return nil, err
		}
		p.Rules = append(p.Rules, r)
	}
	if len(p.Rules) == 0 {
		return nil, errors.New("the list of allowed destinations is empty")
	}
	return p, nil
}

// ParseRule parses "github.com", "github.com:22", "*.pypi.org",
// "10.1.2.3", "10.0.0.0/8:443", "::1", "[2001:db8::/32]:443".
func ParseRule(s string) (Rule, error) {
	bad := func(why string) (Rule, error) {
		return Rule{}, fmt.Errorf("allowed destination %q: %s (want %s)", s, why, RuleForm)
	}
	r := Rule{Text: s}
	host := strings.TrimSpace(s)
	if host == "" {
		return bad("empty entry")
	}
	// A port follows the last colon, unless what precedes it still has a
	// colon and no brackets (a bare IPv6 address or prefix).
	if strings.HasPrefix(host, "[") {
		end := strings.Index(host, "]")
		if end < 0 {
			return bad("missing ]")
		}
		rest := host[end+1:]
		host = host[1:end]
		if rest != "" {
			p, ok := strings.CutPrefix(rest, ":")
			if !ok {
				return bad("unexpected text after ]")
			}
			port, err := parsePort(p)
			if err != nil {
				return bad(err.Error())
			}
			r.Port = port
		}
		if _, err := netip.ParsePrefix(host); err != nil {
			if _, err := netip.ParseAddr(host); err != nil {
				return bad("brackets hold an IPv6 address or prefix only")
			}
		}
	} else if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[:i], ":") {
		port, err := parsePort(host[i+1:])
		if err != nil {
			return bad(err.Error())
		}
		r.Port, host = port, host[:i]
	}
	if pfx, err := netip.ParsePrefix(host); err == nil {
		if pfx != pfx.Masked() {
			return bad(fmt.Sprintf("%s has bits set past the prefix length; did you mean %s?", host, pfx.Masked()))
		}
		r.Prefix = unmapPrefix(pfx)
		return r, nil
	}
	if strings.Contains(host, "/") {
		return bad("not a valid CIDR prefix")
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return bad("an address with a zone cannot be allowed")
		}
		a = a.Unmap()
		r.Prefix = netip.PrefixFrom(a, a.BitLen())
		return r, nil
	}
	if strings.Contains(host, ":") {
		return bad("an IPv6 address with a port must be in brackets, as in [2001:db8::1]:443")
	}
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	if rest, ok := strings.CutPrefix(name, "*."); ok {
		r.Wildcard, name = true, rest
	}
	if err := checkName(name); err != nil {
		return bad(err.Error())
	}
	if !r.Wildcard && isNumeric(name) {
		return bad("not a valid IP address")
	}
	r.Name = name
	return r, nil
}

// checkName accepts DNS names of letters, digits, '-' and '_' labels.
func checkName(name string) error {
	if name == "" {
		return errors.New("empty name")
	}
	if len(name) > 253 {
		return errors.New("name longer than 253 characters")
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" {
			return errors.New("empty label in name")
		}
		if len(label) > 63 {
			return errors.New("label longer than 63 characters")
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("label %q begins or ends with '-'", label)
		}
		for _, c := range label {
			switch {
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
			case c == '*':
				return errors.New("'*' is allowed only as the first label, as in *.example.com")
			default:
				return fmt.Errorf("character %q is not allowed in a name", c)
			}
		}
	}
	return nil
}

// isNumeric reports whether name looks like an attempt at an address
// ("10.1.2", "10.0.0.256"): only digits and dots.
func isNumeric(name string) bool {
	return strings.Trim(name, "0123456789.") == ""
}

func parsePort(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %q is not a number in 1-65535", s)
	}
	return n, nil
}

func unmapPrefix(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p
}

// NormalizeName lower-cases a requested host name and drops a trailing dot.
func NormalizeName(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, "."))
}

// MatchName returns the rule that allows a connection to host name at
// port (0: any port), checked against name rules only: the name the client
// asked for, never what it resolves to.
func (p *Policy) MatchName(name string, port int) (Rule, bool) {
	name = NormalizeName(name)
	for _, r := range p.Rules {
		if r.Name == "" || (port != 0 && r.Port != 0 && r.Port != port) {
			continue
		}
		if r.Wildcard {
			if strings.HasSuffix(name, "."+r.Name) {
				return r, true
			}
		} else if name == r.Name {
			return r, true
		}
	}
	return Rule{}, false
}

// MatchAddr returns the rule that allows a connection to addr at port,
// checked against address rules only.
func (p *Policy) MatchAddr(addr netip.Addr, port int) (Rule, bool) {
	addr = addr.Unmap().WithZone("")
	for _, r := range p.Rules {
		if !r.Prefix.IsValid() || (r.Port != 0 && r.Port != port) {
			continue
		}
		if r.Prefix.Contains(addr) {
			return r, true
		}
	}
	return Rule{}, false
}
