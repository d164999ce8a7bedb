package egress

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"time"
)

// The HTTP proxy is net/http's server: CONNECT is answered here and the
// tunnel spliced; a plain request (absolute URL) is forwarded by
// httputil.ReverseProxy, which drops the hop-by-hop headers, over a
// transport whose every connection goes through connect.

func (e *Egress) serveHTTP(ln net.Listener) {
	transport := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			host, port, err := splitHostPort(addr, 80)
			if err != nil {
				return nil, err
			}
			return e.connect(ctx, "http proxy", host, port)
		},
		MaxIdleConnsPerHost: 8,
		IdleConnTimeout:     30 * time.Second,
	}
	forward := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = pr.In.URL
			pr.Out.Host = pr.In.Host
		},
		Transport: transport,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			http.Error(w, "rbox: "+err.Error(), httpStatus(err))
		},
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodConnect {
				e.tunnel(w, r)
				return
			}
			if !r.URL.IsAbs() || r.URL.Host == "" {
				http.Error(w, "rbox: this is the sandbox's egress proxy: send requests with an absolute URL (use it as HTTP_PROXY)", http.StatusBadRequest)
				return
			}
			if r.URL.Scheme != "http" {
				http.Error(w, "rbox: the proxy forwards http:// URLs; use CONNECT for others", http.StatusBadRequest)
				return
			}
			// Checked here too, so a refusal is a 403 naming the
			// destination rather than a transport error.
			host, port, err := splitHostPort(r.URL.Host, 80)
			if err != nil {
				http.Error(w, "rbox: "+err.Error(), http.StatusBadRequest)
				return
			}
			if ref := e.check(host, port); ref != nil {
				e.report("http proxy", ref)
				http.Error(w, "rbox: "+ref.Error(), http.StatusForbidden)
				return
			}
			forward.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          discardLog,
	}
	go func() { _ = srv.Serve(ln) }()
}

// tunnel answers CONNECT host:port.
func (e *Egress) tunnel(w http.ResponseWriter, r *http.Request) {
	host, port, err := splitHostPort(r.Host, 0)
	if err != nil {
		http.Error(w, "rbox: "+err.Error(), http.StatusBadRequest)
		return
	}
	upstream, err := e.connect(r.Context(), "http proxy CONNECT", host, port)
	if err != nil {
		http.Error(w, "rbox: "+err.Error(), httpStatus(err))
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		upstream.Close()
		http.Error(w, "rbox: cannot tunnel", http.StatusInternalServerError)
		return
	}
	client, brw, err := hj.Hijack()
	if err != nil {
		upstream.Close()
		return
	}
	if _, err := client.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n")); err != nil {
		client.Close()
		upstream.Close()
		return
	}
	// What the client sent after its request (a TLS hello, often) may
	// already be in the server's buffer.
	if err := flushBuffered(brw.Reader, upstream); err != nil {
		client.Close()
		upstream.Close()
		return
	}
	splice(client, upstream)
}

func flushBuffered(r *bufio.Reader, w net.Conn) error {
	if n := r.Buffered(); n > 0 {
		b, _ := r.Peek(n)
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// splitHostPort splits "host:port" ("[v6]:port"); a missing port is
// defaultPort, or an error when that is 0.
func splitHostPort(hostport string, defaultPort int) (string, int, error) {
	host, p, err := net.SplitHostPort(hostport)
	if err != nil {
		if defaultPort == 0 {
			return "", 0, fmt.Errorf("%q is not HOST:PORT", hostport)
		}
		return trimBrackets(hostport), defaultPort, nil
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("%q has a bad port", hostport)
	}
	if host == "" {
		return "", 0, fmt.Errorf("%q has no host", hostport)
	}
	return host, port, nil
}

func trimBrackets(s string) string {
	if len(s) > 1 && s[0] == '[' && s[len(s)-1] == ']' {
		return s[1 : len(s)-1]
	}
	return s
}
