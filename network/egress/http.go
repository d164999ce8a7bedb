package egress

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The HTTP proxy reads the request's head itself and then only splices
// bytes: CONNECT gets a tunnel; a plain request (absolute URL) is sent on
// in origin form, without the hop-by-hop headers and with "Connection:
// close", and the rest of both streams is spliced, so that one client
// connection carries one request to one checked destination. net/http is
// not used: it would add crypto/tls and the rest of its imports to every
// rbox start-up (about 1 ms of package initialisation and 7 MB of binary),
// for a proxy that needs none of it.

// maxHead bounds a request's line and headers.
const maxHead = 64 << 10

func (e *Egress) serveHTTP(ln net.Listener) {
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go e.serveHTTPConn(c)
		}
	}()
}

// request is a request's head.
type request struct {
	method, target, proto string
	headers               []string // "Name: value", as received
}

func (e *Egress) serveHTTPConn(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReaderSize(c, 16<<10)
	req, err := readHead(br)
	if err != nil {
		httpError(c, 400, err.Error())
		c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	if req.method == "CONNECT" {
		e.tunnel(c, br, req)
		return
	}
	e.forward(c, br, req)
}

// readHead reads the request line and the headers.
func readHead(br *bufio.Reader) (*request, error) {
	var req request
	total := 0
	for {
		line, err := br.ReadSlice('\n')
		total += len(line)
		if err != nil || total > maxHead {
			if err == nil || errors.Is(err, bufio.ErrBufferFull) {
				return nil, errors.New("request head too long")
			}
			return nil, fmt.Errorf("read request: %w", err)
		}
		s := strings.TrimSuffix(strings.TrimSuffix(string(line), "\n"), "\r")
		// A bare CR or another control character could split the line
		// differently upstream (request smuggling).
		if strings.IndexFunc(s, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }) >= 0 {
			return nil, errors.New("control character in the request head")
		}
		if req.method == "" {
			f := strings.Fields(s)
			if len(f) != 3 || !strings.HasPrefix(f[2], "HTTP/1.") {
				return nil, fmt.Errorf("malformed request line %q", s)
			}
			req.method, req.target, req.proto = f[0], f[1], f[2]
			continue
		}
		if s == "" {
			return &req, nil
		}
		if !strings.Contains(s, ":") {
			return nil, fmt.Errorf("malformed header line %q", s)
		}
		req.headers = append(req.headers, s)
	}
}

// tunnel answers CONNECT host:port.
func (e *Egress) tunnel(c net.Conn, br *bufio.Reader, req *request) {
	host, port, err := splitHostPort(req.target, 0)
	if err != nil {
		httpError(c, 400, err.Error())
		c.Close()
		return
	}
	upstream, err := e.connect(context.Background(), "http proxy CONNECT", host, port)
	if err != nil {
		httpError(c, httpStatus(err), err.Error())
		c.Close()
		return
	}
	if _, err := c.Write([]byte(req.proto + " 200 Connection established\r\n\r\n")); err != nil {
		c.Close()
		upstream.Close()
		return
	}
	splice(c, upstream, br)
}

// hopHeaders are the headers that concern the client's connection to the
// proxy only.
var hopHeaders = map[string]bool{
	"connection": true, "proxy-connection": true, "keep-alive": true, "proxy-authorization": true,
	"proxy-authenticate": true, "te": true, "trailer": true, "upgrade": true,
}

// forward sends a plain request on.
func (e *Egress) forward(c net.Conn, br *bufio.Reader, req *request) {
	u, err := url.Parse(req.target)
	if err != nil || !u.IsAbs() || u.Host == "" {
		httpError(c, 400, "this is the sandbox's egress proxy: send requests with an absolute URL (use it as HTTP_PROXY)")
		c.Close()
		return
	}
	if u.Scheme != "http" {
		httpError(c, 400, "the proxy forwards http:// URLs; use CONNECT for others")
		c.Close()
		return
	}
	host, port, err := splitHostPort(u.Host, 80)
	if err != nil {
		httpError(c, 400, err.Error())
		c.Close()
		return
	}
	upstream, err := e.connect(context.Background(), "http proxy", host, port)
	if err != nil {
		httpError(c, httpStatus(err), err.Error())
		c.Close()
		return
	}
	var head strings.Builder
	head.WriteString(req.method + " " + u.RequestURI() + " " + req.proto + "\r\n")
	// The headers the Connection header names are hop-by-hop too; an
	// upgrade (WebSocket) keeps its two headers.
	drop := map[string]bool{}
	upgrade := ""
	for _, h := range req.headers {
		name, value, _ := strings.Cut(h, ":")
		name = strings.ToLower(strings.TrimSpace(name))
		if name == "connection" {
			for _, n := range strings.Split(value, ",") {
				drop[strings.ToLower(strings.TrimSpace(n))] = true
			}
		}
		if name == "upgrade" {
			upgrade = strings.TrimSpace(value)
		}
	}
	hasHost := false
	for _, h := range req.headers {
		name, _, _ := strings.Cut(h, ":")
		name = strings.ToLower(strings.TrimSpace(name))
		if hopHeaders[name] || drop[name] {
			continue
		}
		hasHost = hasHost || name == "host"
		head.WriteString(h + "\r\n")
	}
	if !hasHost {
		head.WriteString("Host: " + u.Host + "\r\n")
	}
	if upgrade != "" && drop["upgrade"] {
		head.WriteString("Connection: Upgrade\r\nUpgrade: " + upgrade + "\r\n\r\n")
	} else {
		head.WriteString("Connection: close\r\n\r\n")
	}
	if _, err := upstream.Write([]byte(head.String())); err != nil {
		httpError(c, 502, err.Error())
		c.Close()
		upstream.Close()
		return
	}
	splice(c, upstream, br)
}

// httpError answers with status code and a one-line plain-text body.
func httpError(c net.Conn, code int, msg string) {
	body := "rbox: " + msg + "\n"
	text := map[int]string{400: "Bad Request", 403: "Forbidden", 502: "Bad Gateway", 504: "Gateway Timeout"}[code]
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		code, text, len(body), body)
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
