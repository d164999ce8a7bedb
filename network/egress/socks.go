package egress

import (
	"context"
	"io"
	"log"
	"net"
	"strconv"

	socks5 "github.com/armon/go-socks5"
)

// The SOCKS5 proxy is armon/go-socks5 (CONNECT, no authentication), with
// its three hooks made to follow the policy: the resolver resolves nothing
// (so the request keeps the name the client asked for, and a refused name
// is never looked up), the rule set checks that name or address, and the
// dialer is connect's.

var discardLog = log.New(io.Discard, "", 0)

func (e *Egress) serveSOCKS(ln net.Listener) {
	srv, err := socks5.New(&socks5.Config{
		Resolver: keepName{},
		Rules:    socksRules{e},
		Dial: func(ctx context.Context, _, addr string) (net.Conn, error) {
			host, p, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			port, _ := strconv.Atoi(p)
			// Checked already by the rules; dial resolves and guards.
			c, err := e.dial(ctx, host, port)
			if r, ok := err.(*refusal); ok {
				e.report("socks5 proxy", r)
			}
			return c, err
		},
		Logger: discardLog,
	})
	if err != nil {
		ln.Close()
		return
	}
	go func() { _ = srv.Serve(ln) }()
}

// keepName leaves a requested name unresolved.
type keepName struct{}

func (keepName) Resolve(ctx context.Context, _ string) (context.Context, net.IP, error) {
	return ctx, nil, nil
}

type socksRules struct{ e *Egress }

func (s socksRules) Allow(ctx context.Context, req *socks5.Request) (context.Context, bool) {
	if req.Command != socks5.ConnectCommand {
		return ctx, false
	}
	host := req.DestAddr.FQDN
	if host == "" {
		host = req.DestAddr.IP.String()
	}
	if r := s.e.check(host, req.DestAddr.Port); r != nil {
		s.e.report("socks5 proxy", r)
		return ctx, false
	}
	return ctx, true
}
