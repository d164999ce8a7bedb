//go:build integration

package tests

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/proxy"

	"github.com/rbox-dev/rbox/internal/nettest"
)

// The egress tests run the test binary inside the sandbox as a client of
// rbox's proxies (see TestEgressProbe), against servers of this process on
// the host's loopback. Names come from rbox's test-only table
// (RBOX_EGRESS_TEST_HOSTS): nothing leaves the machine. The proxies
// connect from the host, where those servers are the host's loopback, so
// the runs that must reach them pass --allow-host-loopback.

const egressProbeEnv = "RBOX_EGRESS_PROBE"

// TestEgressProbe is not a test: inside a sandbox with RBOX_EGRESS_PROBE
// set to "KIND TARGET;KIND TARGET..." it runs each check and prints
// "KIND TARGET: RESULT".
func TestEgressProbe(t *testing.T) {
	jobs := os.Getenv(egressProbeEnv)
	if jobs == "" {
		return
	}
	for _, job := range strings.Split(jobs, ";") {
		kind, target, _ := strings.Cut(job, " ")
		fmt.Printf("%s %s: %s\n", kind, target, egressCheck(kind, target))
	}
	os.Exit(0)
}

// egressCheck runs one client check from inside and says what happened.
func egressCheck(kind, target string) string {
	httpProxy, _ := url.Parse(os.Getenv("HTTP_PROXY"))
	switch kind {
	case "connect": // CONNECT through the HTTP proxy, then an echo
		c, err := net.DialTimeout("tcp", httpProxy.Host, 3*time.Second)
		if err != nil {
			return "err " + err.Error()
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return "err " + err.Error()
		}
		if resp.StatusCode != 200 {
			body, _ := io.ReadAll(resp.Body)
			return fmt.Sprintf("status %d %s", resp.StatusCode, strings.TrimSpace(string(body)))
		}
		return echo(c, br)
	case "socks": // SOCKS5 CONNECT, then an echo
		d, err := proxy.SOCKS5("tcp", strings.TrimPrefix(os.Getenv("ALL_PROXY"), "socks5h://"), nil, &net.Dialer{Timeout: 3 * time.Second})
		if err != nil {
			return "err " + err.Error()
		}
		c, err := d.Dial("tcp", target)
		if err != nil {
			return "err " + err.Error()
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		return echo(c, bufio.NewReader(c))
	case "get": // a plain http:// request through the HTTP proxy
		client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(httpProxy)}, Timeout: 5 * time.Second}
		resp, err := client.Get(target)
		if err != nil {
			return "err " + err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return fmt.Sprintf("status %d %s", resp.StatusCode, strings.TrimSpace(string(body)))
	case "raw": // a direct TCP connection, no proxy
		c, err := net.DialTimeout("tcp", target, 3*time.Second)
		if err != nil {
			return "err " + errnoName(err)
		}
		defer c.Close()
		return echo(c, bufio.NewReader(c))
	case "dns": // the resolver of /etc/resolv.conf
		r := &net.Resolver{PreferGo: true}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		addrs, err := r.LookupHost(ctx, target)
		if err != nil {
			if de, ok := err.(*net.DNSError); ok && de.IsNotFound {
				return "nxdomain"
			}
			return "err " + err.Error()
		}
		return "ok " + strings.Join(addrs, ",")
	}
	return "err unknown check " + kind
}

func echo(c net.Conn, br *bufio.Reader) string {
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		return "err " + err.Error()
	}
	line, err := br.ReadString('\n')
	if err != nil {
		return "err " + err.Error()
	}
	return "ok " + strings.TrimSpace(line)
}

func errnoName(err error) string {
	for _, e := range []syscall.Errno{syscall.ECONNREFUSED, syscall.ENETUNREACH, syscall.EHOSTUNREACH} {
		if strings.Contains(err.Error(), e.Error()) {
			return e.Error()
		}
	}
	return err.Error()
}

// egressServer is an echo server on the host's addr ("127.0.0.3:0") that
// counts its connections and answers "NAME:ping".
func egressServer(t *testing.T, addr, name string) (string, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	n := new(atomic.Int32)
	go nettest.ServeTCPEcho(ln, name+":", n)
	return ln.Addr().String(), n
}

// egressRun runs the probe's checks in a sandbox made with flags, with
// rbox's test-only name table hosts.
func egressRun(t *testing.T, hosts string, flags []string, checks ...string) (map[string]string, result) {
	t.Helper()
	return egressRunAfter(t, hosts, "", flags, checks...)
}

// egressRunAfter is egressRun with a shell script run inside first.
func egressRunAfter(t *testing.T, hosts, script string, flags []string, checks ...string) (map[string]string, result) {
	t.Helper()
	return egressRunEnv(t, nil, hosts, script, flags, checks...)
}

// egressRunEnv is egressRunAfter with env added to rbox's environment.
func egressRunEnv(t *testing.T, env []string, hosts, script string, flags []string, checks ...string) (map[string]string, result) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	args := append(append([]string{}, flags...), "--ro-bind", exe+":/probe",
		"--env", egressProbeEnv+"="+strings.Join(checks, ";"), "--", "/probe", "-test.run=^TestEgressProbe$")
	if script != "" {
		args = append(args[:len(args)-2], "sh", "-c", script+"; exec /probe -test.run=^TestEgressProbe$")
	}
	r := rboxCmd(t, func(c *exec.Cmd) { c.Env = append(append(os.Environ(), env...), "RBOX_EGRESS_TEST_HOSTS="+hosts) }, args...)
	if r.code != 0 {
		t.Fatalf("rbox %v:\n%s", args, r)
	}
	got := map[string]string{}
	for _, line := range strings.Split(r.stdout, "\n") {
		if k, v, ok := strings.Cut(line, ": "); ok {
			got[k] = v
		}
	}
	return got, r
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// TestEgressPolicy: names, wildcards, addresses, CIDRs and ports, through
// CONNECT, SOCKS5 and plain HTTP; refused destinations are never dialed and
// each is reported once on rbox's stderr; raw connections and DNS.
func TestEgressPolicy(t *testing.T) {
	good, goodN := egressServer(t, "127.0.0.2:0", "good")
	p := portOf(good)
	egressServer(t, "127.0.0.3:"+p, "wild")
	_, badN := egressServer(t, "127.0.0.4:"+p, "bad")
	egressServer(t, "127.0.0.5:"+p, "byip")
	cidr, _ := egressServer(t, "127.0.1.7:0", "cidr")
	cidrOther, cidrOtherN := egressServer(t, "127.0.1.7:0", "cidr-other")
	pc := portOf(cidr)
	egressServer(t, "127.0.0.6:"+pc, "port")

	web := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "web %s %s\n", r.Host, r.URL.Path)
	})}
	webLn, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	go web.Serve(webLn)
	t.Cleanup(func() { web.Close() })
	pw := portOf(webLn.Addr().String())

	hosts := "good.test=127.0.0.2,a.wild.test=127.0.0.3,b.c.wild.test=127.0.0.3,wild.test=127.0.0.3," +
		"bad.test=127.0.0.4,port.test=127.0.0.6"
	allow := "good.test,*.wild.test,127.0.0.5,127.0.1.0/24:" + pc + ",port.test:" + pc
	got, r := egressRun(t, hosts, []string{"--net", "user", "--allow-host-loopback", "--allow-net", allow},
		"connect good.test:"+p,
		"connect a.wild.test:"+p,
		"connect b.c.wild.test:"+p,
		"connect wild.test:"+p,
		"connect bad.test:"+p,
		"connect 127.0.0.5:"+p,
		"connect 127.0.0.2:"+p,
		"connect "+cidr,
		"connect "+cidrOther,
		"connect port.test:"+pc,
		"connect port.test:"+p,
		"socks good.test:"+p,
		"socks a.wild.test:"+p,
		"socks bad.test:"+p,
		"socks 127.0.0.5:"+p,
		"socks "+cidrOther,
		"get http://good.test:"+pw+"/x",
		"get http://bad.test:"+pw+"/x",
		"raw "+good,
		"raw 10.1.2.3:80",
		"dns good.test",
		"dns a.wild.test",
		"dns bad.test",
		"dns wild.test",
	)
	want := map[string]string{
		"connect good.test:" + p:            "ok good:ping",
		"connect a.wild.test:" + p:          "ok wild:ping",
		"connect b.c.wild.test:" + p:        "ok wild:ping",
		"connect wild.test:" + p:            "status 403",
		"connect bad.test:" + p:             "status 403",
		"connect 127.0.0.5:" + p:            "ok byip:ping",
		"connect 127.0.0.2:" + p:            "status 403", // good.test's address, by address
		"connect " + cidr:                   "ok cidr:ping",
		"connect " + cidrOther:              "status 403", // in the CIDR, other port
		"connect port.test:" + pc:           "ok port:ping",
		"connect port.test:" + p:            "status 403",
		"socks good.test:" + p:              "ok good:ping",
		"socks a.wild.test:" + p:            "ok wild:ping",
		"socks bad.test:" + p:               "err socks connect tcp",
		"socks 127.0.0.5:" + p:              "ok byip:ping",
		"socks " + cidrOther:                "err socks connect tcp",
		"get http://good.test:" + pw + "/x": "status 200 web good.test:" + pw + " /x",
		"get http://bad.test:" + pw + "/x":  "status 403",
		"raw " + good:                       "err " + syscall.ECONNREFUSED.Error(),
		"raw 10.1.2.3:80":                   "err " + syscall.ENETUNREACH.Error(),
		"dns good.test":                     "ok 127.0.0.2",
		"dns a.wild.test":                   "ok 127.0.0.3",
		"dns bad.test":                      "nxdomain",
		"dns wild.test":                     "nxdomain",
	}
	for k, w := range want {
		if !strings.HasPrefix(got[k], w) {
			t.Errorf("%s: got %q, want %q", k, got[k], w)
		}
	}
	// A 403 says what was refused and how to allow it; SOCKS5 says "not
	// allowed by ruleset".
	if g := got["connect bad.test:"+p]; !strings.Contains(g, "bad.test:"+p) || !strings.Contains(g, "add bad.test") {
		t.Errorf("403 body does not name the destination and the rule to add: %q", g)
	}
	if g := got["socks bad.test:"+p]; !strings.Contains(g, "not allowed by ruleset") {
		t.Errorf("SOCKS5 refusal: %q", g)
	}
	// Refused destinations were never dialed.
	if n := badN.Load(); n != 0 {
		t.Errorf("the refused server got %d connections", n)
	}
	if n := cidrOtherN.Load(); n != 0 {
		t.Errorf("the server on a refused port got %d connections", n)
	}
	if goodN.Load() < 2 {
		t.Errorf("the allowed server got %d connections", goodN.Load())
	}
	// One line per refused destination, on rbox's stderr.
	for _, dest := range []string{"bad.test:" + p, "wild.test:" + p, "127.0.0.2:" + p, cidrOther, "port.test:" + p, "bad.test:" + pw, "bad.test", "wild.test"} {
		if n := strings.Count(r.stderr, "rbox: egress: refused "+dest+": "); n != 1 {
			t.Errorf("%d refusal lines for %s on stderr, want 1:\n%s", n, dest, r.stderr)
		}
	}
}

// TestEgressEnvAndResolvConf: the proxy variables (both cases), NO_PROXY,
// and a resolv.conf naming the sandbox's own DNS responder; --env wins.
func TestEgressEnvAndResolvConf(t *testing.T) {
	out := sh(t, "env; cat /etc/resolv.conf; echo links=$(ip -o link | wc -l) routes=$(ip route | wc -l)", "--net", "user", "--allow-net", "example.com", "--env", "NO_PROXY=mine")
	for _, want := range []string{
		"HTTP_PROXY=http://127.0.0.1:3128", "http_proxy=http://127.0.0.1:3128",
		"HTTPS_PROXY=http://127.0.0.1:3128", "https_proxy=http://127.0.0.1:3128",
		"ALL_PROXY=socks5h://127.0.0.1:1080", "all_proxy=socks5h://127.0.0.1:1080",
		"NO_PROXY=mine", "no_proxy=localhost,127.0.0.1,::1",
		"nameserver 127.0.0.1",
		// Loopback only: no other link, no route.
		"links=1 routes=0",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
}

// TestEgressBadInput: one line, exit 125, nothing started.
func TestEgressBadInput(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--net", "user", "--allow-net", "exa mple.com"}, "--allow-net"},
		{[]string{"--net", "user", "--allow-net", "10.0.0.1/8"}, "10.0.0.0/8"},
		{[]string{"--net", "user", "--allow-net", "github.com:70000"}, "port"},
		{[]string{"--net", "user", "--allow-net", "a.*.com"}, "*.example.com"},
		{[]string{"--allow-net", "github.com"}, "--allow-net needs --net user"},
		{[]string{"--net", "host", "--allow-net", "github.com"}, "--allow-net needs --net user"},
		{[]string{"--net", "user", "--allow-net", "github.com", "--dns", "1.1.1.1"}, "--dns"},
		{[]string{"--net", "user", "--share", "net", "--allow-net", "github.com"}, "--share"},
	} {
		r := rbox(t, append(tc.args, "--", "true")...)
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if r.code != 125 || len(lines) != 1 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("rbox %v: want exit 125 and one line about %q:\n%s", tc.args, tc.want, r)
		}
	}
}

// TestEgressNothingLeft: after the sandbox ends, and after rbox is killed
// with SIGKILL, no process of it is left and the proxies' sockets are gone
// with it.
func TestEgressNothingLeft(t *testing.T) {
	before := childrenOf(os.Getpid())
	sh(t, "true", "--net", "user", "--allow-net", "example.com")
	cmd := exec.Command(rboxBin, "--net", "user", "--allow-net", "example.com", "--", "sh", "-c", "echo up; exec sleep 60")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if line != "up\n" {
		t.Fatalf("sandbox did not start: %q", line)
	}
	all := append([]int{cmd.Process.Pid}, descendants(cmd.Process.Pid)...)
	if len(all) < 3 {
		t.Fatalf("expected rbox, pid 1 and sleep, found %v", all)
	}
	cmd.Process.Kill()
	cmd.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for !gone(all) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !gone(all) {
		t.Errorf("processes left after kill -9 of rbox: %v", all)
	}
	if after := childrenOf(os.Getpid()); len(after) > len(before) {
		t.Errorf("children of the test left: %v (before: %v)", after, before)
	}
}

func childrenOf(pid int) []int {
	var out []int
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, task := range tasks {
		data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, task.Name()))
		for _, f := range strings.Fields(string(data)) {
			n, _ := strconv.Atoi(f)
			out = append(out, n)
		}
	}
	return out
}
