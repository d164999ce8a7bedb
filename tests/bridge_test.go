//go:build integration

package tests

import (
	"encoding/json"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// netListing is one entry of `rbox network ls --json`.
type netListing struct {
	Name      string   `json:"name"`
	Subnet    string   `json:"subnet"`
	Running   bool     `json:"running"`
	Holder    int      `json:"holder_pid"`
	Sandboxes []string `json:"sandboxes"`
	Links     []string `json:"links"`
}

// networks lists the state's networks by name.
func (ns *namedState) networks() map[string]netListing {
	ns.t.Helper()
	var ls []netListing
	if err := json.Unmarshal([]byte(ns.ok("network", "ls", "--json")), &ls); err != nil {
		ns.t.Fatal(err)
	}
	out := map[string]netListing{}
	for _, l := range ls {
		out[l.Name] = l
	}
	return out
}

// newNetworkState is a state directory whose sandboxes and networks are
// removed at the end, whatever the test left: the sandboxes first (a
// network in use cannot be removed), then the networks, then, should
// anything still run, the networks' supervisors are killed.
func newNetworkState(t *testing.T) *namedState {
	ns := newNamedState(t)
	t.Cleanup(func() {
		for _, e := range parsePs(t, ns.rbox("ps", "--all", "--json").stdout) {
			ns.rbox("rm", "-f", e.Name)
		}
		var ls []netListing
		_ = json.Unmarshal([]byte(ns.rbox("network", "ls", "--json").stdout), &ls)
		for _, l := range ls {
			ns.rbox("network", "rm", l.Name)
		}
		left := processesWith(filepath.Join(ns.xdg, "rbox", "networks"))
		for _, p := range left {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		if len(left) > 0 {
			t.Errorf("network processes left after the test: %v", left)
		}
	})
	return ns
}

// helpersOf are the caller's processes of the networks under ns: holders,
// supervisors and their slirp4netns (whose command line names the
// holder's pid).
func (ns *namedState) helpersOf(holders ...int) []int {
	pids := processesWith(filepath.Join(ns.xdg, "rbox", "networks"))
	for _, h := range holders {
		for _, p := range processesWith("slirp4netns") {
			b, _ := os.ReadFile("/proc/" + itoa(p) + "/cmdline")
			for _, a := range strings.Split(string(b), "\x00") {
				if a == itoa(h) {
					pids = append(pids, p)
				}
			}
		}
	}
	return pids
}

func itoa(i int) string { return strconv.Itoa(i) }

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

// Two sandboxes on one network reach each other by name (TCP and ping,
// without CAP_NET_RAW); a sandbox on another network, one with --net
// none, and the host do not reach them.
func TestBridgeReachByName(t *testing.T) {
	ns := newNetworkState(t)
	ns.ok("network", "create", "dev")
	ns.ok("network", "create", "--subnet", "10.77.0.0/24", "other")
	ns.ok("run", "-d", "--name", "db", "--net", "dev", "--", "sh", "-c",
		"while true; do echo hello-from-db | busybox nc -l -p 5432; done")
	out := ns.ok("run", "--net", "dev", "--cap-drop", "ALL", "--", "sh", "-c",
		"ip -4 -br addr show eth0; ping -c1 -W5 db | grep -c '1 received'; busybox nc db 5432 </dev/null; getent hosts db.dev")
	if !strings.Contains(out, "10.89.0.") || !strings.Contains(out, "\n1\n") || !strings.Contains(out, "hello-from-db") || !strings.Contains(out, "db.dev") {
		t.Fatalf("a sandbox on dev did not reach db by name (eth0 address, ping, TCP):\n%s", out)
	}
	dbAddr := "10.89.0.2"
	if got := ns.ok("exec", "db", "--", "sh", "-c", "ip -4 -o addr show eth0"); !strings.Contains(got, dbAddr+"/24") {
		t.Fatalf("db's eth0: %s", got)
	}
	for _, flags := range [][]string{{"--net", "other"}, {"--net", "none"}} {
		r := ns.rbox(append(flags, "--", "sh", "-c", "busybox nc -w 2 "+dbAddr+" 5432 </dev/null; echo nc=$?; getent hosts db; echo getent=$?")...)
		if r.code != 0 || strings.Contains(r.stdout, "hello-from-db") || !strings.Contains(r.stdout, "getent=2") {
			t.Errorf("%v reached db:\n%s", flags, r)
		}
	}
	if c, err := exec.Command("busybox", "nc", "-w", "2", dbAddr, "5432").Output(); strings.Contains(string(c), "hello") {
		t.Errorf("the host reached db: %q %v", c, err)
	}
	l := ns.networks()
	if got := l["dev"].Sandboxes; len(got) != 1 || got[0] != "db" {
		t.Errorf("network ls: dev's sandboxes = %v, want [db]", got)
	}
}

// network rm of a network in use is refused, naming its sandboxes; once
// they end, rm ends the holder, the supervisor and slirp4netns and
// removes the state.
func TestBridgeInUseAndRemove(t *testing.T) {
	ns := newNetworkState(t)
	ns.ok("network", "create", "dev")
	ns.ok("run", "-d", "--name", "db", "--net", "dev", "--", "sleep", "300")
	r := ns.rbox("network", "rm", "dev")
	if r.code != 125 || !strings.Contains(r.stderr, "in use by db") || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("network rm of a network in use: %s", r)
	}
	holder := ns.networks()["dev"].Holder
	if holder == 0 || len(ns.helpersOf(holder)) < 3 {
		t.Fatalf("network ls: holder %d, processes %v: want the holder, supervisor and slirp4netns", holder, ns.helpersOf(holder))
	}
	ns.ok("rm", "-f", "db")
	ns.ok("network", "rm", "dev")
	waitFor(t, "the network's processes to end", 5*time.Second, func() bool { return len(ns.helpersOf(holder)) == 0 })
	if _, err := os.Stat(filepath.Join(ns.xdg, "rbox", "networks", "dev")); !os.IsNotExist(err) {
		t.Errorf("the network's state is left: %v", err)
	}
}

// After kill -9 of a sandbox's rbox, its address and name are free again;
// after kill -9 of the network's supervisor, nothing of the network runs
// (the veth pairs went with the holder's namespace), ls shows it dead and
// rm removes it.
func TestBridgeKill9(t *testing.T) {
	ns := newNetworkState(t)
	ns.ok("network", "create", "dev")
	cmd := exec.Command(rboxBin, "run", "--hostname", "victim", "--net", "dev", "--", "sleep", "300")
	ns.env(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the sandbox on the network", 10*time.Second, func() bool {
		l := ns.networks()["dev"]
		return len(l.Sandboxes) == 1 && len(l.Links) == 1
	})
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	waitFor(t, "the killed sandbox to leave the network, its veth pair gone", 5*time.Second, func() bool {
		l := ns.networks()["dev"]
		return len(l.Sandboxes) == 0 && len(l.Links) == 0
	})
	// The name answers again for a new sandbox.
	ns.ok("run", "--hostname", "victim", "--net", "dev", "--", "true")

	ns.ok("run", "-d", "--name", "db", "--net", "dev", "--", "sleep", "300")
	holder := ns.networks()["dev"].Holder
	var n struct {
		Supervisor struct{ PID int } `json:"supervisor"`
	}
	b, err := os.ReadFile(filepath.Join(ns.xdg, "rbox", "networks", "dev", "network.json"))
	if err == nil {
		err = json.Unmarshal(b, &n)
	}
	if err != nil || n.Supervisor.PID == 0 {
		t.Fatalf("network.json: %s %v", b, err)
	}
	if err := syscall.Kill(n.Supervisor.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the holder and slirp4netns to end", 5*time.Second, func() bool { return len(ns.helpersOf(holder)) == 0 })
	if l := ns.networks()["dev"]; l.Running {
		t.Errorf("network ls after kill -9: %+v, want it not running", l)
	}
	// The namespace, and with it the veth pair, is torn down by the
	// kernel in the background.
	waitFor(t, "db's eth0 to go with the network", 10*time.Second, func() bool {
		return !strings.Contains(ns.ok("exec", "db", "--", "cat", "/proc/net/dev"), "eth0")
	})
	ns.ok("network", "rm", "dev")
	if _, ok := ns.networks()["dev"]; ok {
		t.Errorf("network rm left dev")
	}

	// kill -9 of the holder: the supervisor ends slirp4netns and itself.
	ns.ok("network", "create", "second")
	holder = ns.networks()["second"].Holder
	if err := syscall.Kill(holder, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the supervisor and slirp4netns to end", 5*time.Second, func() bool { return len(ns.helpersOf(holder)) == 0 })
	if ns.networks()["second"].Running {
		t.Errorf("network ls shows second running after its holder was killed")
	}
	ns.ok("network", "rm", "second")
}

// Bad input: one line on stderr naming the problem, exit 125, nothing left.
func TestBridgeBadInput(t *testing.T) {
	ns := newNetworkState(t)
	ns.ok("network", "create", "dev")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"network", "create", "--subnet", "10.90.0.1/24", "x"}, "host bits set"},
		{[]string{"network", "create", "--subnet", "300.1.0.0/24", "x"}, "invalid subnet"},
		{[]string{"network", "create", "--subnet", "10.0.2.0/24", "x"}, "overlaps"},
		{[]string{"network", "create", "--subnet", "10.89.0.0/16", "x"}, "overlaps network dev"},
		{[]string{"network", "create", "dev"}, "network dev exists"},
		{[]string{"network", "create", "user"}, "one of --net's modes"},
		{[]string{"network", "create", strings.Repeat("n", 63)}, "use a shorter name"},
		{[]string{"network", "rm", "nosuch"}, "no network named nosuch"},
		{[]string{"run", "--net", "nosuch", "--", "true"}, "no network of that name (modes: none, user, pasta, slirp4netns, host, sandbox:NAME; or rbox network create nosuch)"},
		{[]string{"run", "--net", "dev", "--allow-net", "example.com", "-p", "8080:80", "--", "true"}, "-p/--publish cannot be combined with --allow-net"},
		{[]string{"run", "--net", "dev", "--allow-net", "example.com", "--dns", "10.89.0.1", "--", "true"}, "--dns cannot be combined with --allow-net"},
		{[]string{"run", "--net", "bad!name", "--", "true"}, "nor a network name"},
		{[]string{"run", "--net", "dev", "--share", "net", "--", "true"}, "drop net from --share"},
		{[]string{"run", "--net", "dev", "--share", "user", "--", "true"}, "drop user from --share"},
	} {
		r := ns.rbox(c.args...)
		if r.code != 125 || !strings.Contains(r.stderr, c.want) || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("rbox %v: want exit 125 and one line with %q, got %s", c.args, c.want, r)
		}
	}
	if l := ns.networks(); len(l) != 1 {
		t.Errorf("networks after bad input: %v", l)
	}
}

// A network's sandboxes reach out through its one slirp4netns (a server
// on the host's own address).
func TestBridgeOutbound(t *testing.T) {
	ns := newNetworkState(t)
	ns.ok("network", "create", "dev")
	ln, err := net.Listen("tcp", net.JoinHostPort(hostAddress(t), "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("hello-from-host\n"))
			c.Close()
		}
	}()
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	out := ns.ok("run", "--net", "dev", "--", "sh", "-c", "busybox nc -w 5 "+host+" "+port+" </dev/null; cat /etc/resolv.conf")
	if !strings.Contains(out, "hello-from-host") || !strings.Contains(out, "nameserver 10.89.0.1") {
		t.Fatalf("outbound from the network:\n%s", out)
	}
	helpers := 0
	for _, p := range processesWith("slirp4netns") {
		if b, _ := os.ReadFile("/proc/" + itoa(p) + "/cmdline"); strings.Contains(string(b), itoa(ns.networks()["dev"].Holder)) {
			helpers++
		}
	}
	ns.ok("run", "-d", "--name", "a", "--net", "dev", "--", "sleep", "60")
	ns.ok("run", "-d", "--name", "b", "--net", "dev", "--", "sleep", "60")
	after := 0
	for _, p := range processesWith("slirp4netns") {
		if b, _ := os.ReadFile("/proc/" + itoa(p) + "/cmdline"); strings.Contains(string(b), itoa(ns.networks()["dev"].Holder)) {
			after++
		}
	}
	if helpers != 1 || after != 1 {
		t.Errorf("slirp4netns processes for the network: %d, then %d with two sandboxes; want one", helpers, after)
	}
}

// -p from a network: the network's slirp4netns forwards the host port to
// the sandbox's address while it runs, and frees it when it ends.
func TestBridgePublish(t *testing.T) {
	ns := newNetworkState(t)
	ns.ok("network", "create", "dev")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	ns.ok("run", "-d", "--name", "web", "--net", "dev", "-p", port+":80", "--", "sh", "-c",
		"while true; do echo hello-web | busybox nc -l -p 80; done")
	var got []byte
	waitFor(t, "the published port", 5*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		got, _ = io.ReadAll(c)
		return strings.Contains(string(got), "hello-web")
	})
	if r := ns.rbox("run", "--net", "dev", "-p", port+":80", "--", "true"); r.code != 125 || !strings.Contains(r.stderr, "in use") {
		t.Errorf("a second -p of the same port: %s", r)
	}
	ns.ok("rm", "-f", "web")
	waitFor(t, "the host port to be free again", 5*time.Second, func() bool {
		l, err := net.Listen("tcp", "127.0.0.1:"+port)
		if err == nil {
			l.Close()
		}
		return err == nil
	})
}

// The sandboxes of one network share the network's user namespace (the
// isolation consequence docs/security.md describes), each with network,
// mount and pid namespaces of its own; another network's sandboxes have
// another user namespace.
func TestBridgeUserNamespace(t *testing.T) {
	ns := newNetworkState(t)
	ns.ok("network", "create", "dev")
	ns.ok("network", "create", "other")
	show := "readlink /proc/self/ns/user /proc/self/ns/net /proc/self/ns/mnt /proc/self/ns/pid"
	ns.ok("run", "-d", "--name", "a", "--net", "dev", "--", "sleep", "60")
	a := strings.Fields(ns.ok("exec", "a", "--", "sh", "-c", show))
	b := strings.Fields(ns.ok("run", "--net", "dev", "--", "sh", "-c", show))
	c := strings.Fields(ns.ok("run", "--net", "other", "--", "sh", "-c", show))
	if len(a) != 4 || len(b) != 4 || len(c) != 4 {
		t.Fatalf("namespaces: %v %v %v", a, b, c)
	}
	if a[0] != b[0] {
		t.Errorf("two sandboxes on dev have user namespaces %s and %s, want one", a[0], b[0])
	}
	for i := 1; i < 4; i++ {
		if a[i] == b[i] {
			t.Errorf("two sandboxes on dev share %s", a[i])
		}
	}
	if c[0] == a[0] {
		t.Errorf("a sandbox on another network shares dev's user namespace %s", a[0])
	}
}

// --allow-net on a network: the sandbox reaches the network's sandboxes by
// name (directly, and through the proxies, which connect from its own
// namespace), the outside only through rbox's proxies and DNS, as with
// --net user; it has no route beyond the subnet. Outside: the refused
// server is never connected to, the refusals are printed, and the sandbox
// leaves the network (name, address, veth pair) when it ends.
func TestBridgeAllowNet(t *testing.T) {
	ns := newNetworkState(t)
	ns.ok("network", "create", "dev")
	ns.ok("run", "-d", "--name", "db", "--net", "dev", "--", "busybox", "nc", "-ll", "-p", "5432", "-e", "echo", "hello-from-db")
	hostIP := hostAddress(t)
	good, goodN := egressServer(t, net.JoinHostPort(hostIP, "0"), "good")
	bad, badN := egressServer(t, net.JoinHostPort(hostIP, "0"), "bad")
	pg, pb := portOf(good), portOf(bad)
	checks := []string{"dns db", "dns db.dev", "raw db:5432", "connect db:5432", "socks db.dev:5432",
		"connect good.test:" + pg, "socks good.test:" + pg, "connect bad.test:" + pb, "connect " + bad,
		"raw " + good, "dns bad.test"}
	got, r := egressRunEnv(t, []string{"XDG_RUNTIME_DIR=" + ns.xdg}, "good.test="+hostIP+",bad.test="+hostIP,
		"ip -4 route; ip -o link | grep -c eth0", []string{"--net", "dev", "--allow-net", "good.test:" + pg}, checks...)
	want := map[string]string{
		"dns db":                  "ok 10.89.0.2",
		"dns db.dev":              "ok 10.89.0.2",
		"raw db:5432":             "ok hello-from-db",
		"connect db:5432":         "ok hello-from-db",
		"socks db.dev:5432":       "ok hello-from-db",
		"connect good.test:" + pg: "ok good:ping",
		"socks good.test:" + pg:   "ok good:ping",
		"connect bad.test:" + pb:  "status 403",
		"connect " + bad:          "status 403",
		"raw " + good:             "err " + syscall.ENETUNREACH.Error(),
		"dns bad.test":            "nxdomain",
	}
	for k, w := range want {
		if !strings.HasPrefix(got[k], w) {
			t.Errorf("%s: got %q, want %q", k, got[k], w)
		}
	}
	if strings.Contains(r.stdout, "default") || !strings.Contains(r.stdout, "10.89.0.0/24 dev eth0") || !strings.Contains(r.stdout, "\n1\n") {
		t.Errorf("inside: want eth0 and a route to the subnet only:\n%s", r.stdout)
	}
	if n := badN.Load(); n != 0 {
		t.Errorf("the refused server got %d connections", n)
	}
	if n := goodN.Load(); n != 2 {
		t.Errorf("the allowed server got %d connections, want 2", n)
	}
	for _, dest := range []string{"bad.test:" + pb, bad, "bad.test"} {
		if n := strings.Count(r.stderr, "rbox: egress: refused "+dest+": "); n != 1 {
			t.Errorf("%d refusal lines for %s on stderr, want 1:\n%s", n, dest, r.stderr)
		}
	}
	// Its veth pair goes with its network namespace, which the kernel
	// tears down in the background.
	waitFor(t, "the --allow-net sandbox to leave the network, its veth pair gone", 5*time.Second, func() bool {
		l := ns.networks()["dev"]
		return len(l.Sandboxes) == 1 && len(l.Links) == 1
	})
}

// slirpOf is the slirp4netns of the network whose holder is holder (0 for
// none; the test fails on more than one). The child a starting slirp4netns
// forks for a moment to open the tap in the namespace is not counted.
func slirpOf(t *testing.T, holder int) int {
	t.Helper()
	var all []int
	for _, p := range processesWith("slirp4netns") {
		b, _ := os.ReadFile("/proc/" + itoa(p) + "/cmdline")
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) > 2 && args[len(args)-2] == itoa(holder) {
			all = append(all, p)
		}
	}
	var found []int
	for _, p := range all {
		b, _ := os.ReadFile("/proc/" + itoa(p) + "/stat")
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) > 1 && !slices.Contains(all, atoi(f[1])) {
			found = append(found, p)
		}
	}
	if len(found) > 1 {
		t.Fatalf("%d slirp4netns for holder %d: %v", len(found), holder, found)
	}
	if len(found) == 0 {
		return 0
	}
	return found[0]
}

// kill -9 of a network's slirp4netns: the supervisor starts another, which
// carries the sandboxes' outbound traffic and the -p forwards again; ls
// counts the restart. A slirp4netns that keeps dying leaves the network
// broken: ls says so in its one line, --net refuses it, rm removes it.
func TestBridgeHelperRestart(t *testing.T) {
	ns := newNetworkState(t)
	ns.ok("network", "create", "dev")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	ns.ok("run", "-d", "--name", "web", "--net", "dev", "-p", port+":80", "--", "busybox", "nc", "-ll", "-p", "80", "-e", "echo", "hello-web")
	published := func() bool {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		got, _ := io.ReadAll(c)
		return strings.Contains(string(got), "hello-web")
	}
	waitFor(t, "the published port", 5*time.Second, published)
	host, _ := egressServer(t, net.JoinHostPort(hostAddress(t), "0"), "host")
	hostIP, hostPort, _ := net.SplitHostPort(host)
	outbound := "echo ping | busybox nc -w 5 " + hostIP + " " + hostPort

	var ls []struct {
		Name     string `json:"name"`
		Running  bool   `json:"running"`
		Broken   string `json:"broken"`
		Restarts int    `json:"helper_restarts"`
	}
	list := func() (bool, string, int) {
		ls = nil
		if err := json.Unmarshal([]byte(ns.ok("network", "ls", "--json")), &ls); err != nil || len(ls) != 1 {
			t.Fatalf("network ls --json: %v %v", ls, err)
		}
		return ls[0].Running, ls[0].Broken, ls[0].Restarts
	}
	holder := ns.networks()["dev"].Holder
	old := slirpOf(t, holder)
	if old == 0 {
		t.Fatal("no slirp4netns for the network")
	}
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var fresh int
	waitFor(t, "another slirp4netns", 10*time.Second, func() bool {
		fresh = slirpOf(t, holder)
		_, _, restarts := list()
		return fresh != 0 && fresh != old && restarts == 1
	})
	waitFor(t, "the published port after the restart", 5*time.Second, published)
	if out := ns.ok("run", "--net", "dev", "--", "sh", "-c", outbound); !strings.Contains(out, "host:ping") {
		t.Errorf("outbound after the restart: %q", out)
	}
	if running, broken, restarts := list(); !running || broken != "" || restarts != 1 {
		t.Errorf("network ls after one restart: running %v, broken %q, restarts %d", running, broken, restarts)
	}

	// It keeps dying: each one killed once it is ready (the restart
	// counted).
	for i := 0; i < 3; i++ {
		old = slirpOf(t, holder)
		if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if i < 2 {
			waitFor(t, "another slirp4netns", 10*time.Second, func() bool { _, _, restarts := list(); return restarts == 2+i })
		}
	}
	waitFor(t, "the network marked broken", 5*time.Second, func() bool { _, broken, _ := list(); return broken != "" })
	if p := slirpOf(t, holder); p != 0 {
		t.Errorf("a slirp4netns (%d) runs for a broken network", p)
	}
	table := ns.ok("network", "ls")
	var line string
	for _, l := range strings.Split(table, "\n") {
		if strings.HasPrefix(l, "dev ") {
			line = l
		}
	}
	if !strings.Contains(line, "broken: its slirp4netns died 4 times within a minute") || !strings.Contains(line, "rbox network rm dev") {
		t.Errorf("network ls does not say the network is broken and what to do:\n%s", table)
	}
	if r := ns.rbox("run", "--net", "dev", "--", "true"); r.code != 125 || !strings.Contains(r.stderr, "the network is broken") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("--net on a broken network: %s", r)
	}
	ns.ok("rm", "-f", "web")
	ns.ok("network", "rm", "dev")
	waitFor(t, "the network's processes to end", 5*time.Second, func() bool { return len(ns.helpersOf(holder)) == 0 })
}

// network create --ipv6: a unique local /64 beside the IPv4 subnet; each
// sandbox gets an address on it, names resolve AAAA, TCP and ping work
// over it, for a --allow-net sandbox too. A network without --ipv6 gives
// no global IPv6 address.
func TestBridgeIPv6(t *testing.T) {
	ns := newNetworkState(t)
	ns.ok("network", "create", "--ipv6", "dev6")
	ns.ok("network", "create", "plain")
	var ls []struct {
		Name    string `json:"name"`
		Subnet6 string `json:"subnet6"`
	}
	if err := json.Unmarshal([]byte(ns.ok("network", "ls", "--json")), &ls); err != nil {
		t.Fatal(err)
	}
	subnet6 := map[string]string{}
	for _, l := range ls {
		subnet6[l.Name] = l.Subnet6
	}
	p, err := netip.ParsePrefix(subnet6["dev6"])
	if err != nil || p.Bits() != 64 || p.Addr().As16()[0] != 0xfd || subnet6["plain"] != "" {
		t.Fatalf("network ls --json: subnet6 %v (%v), want a unique local /64 for dev6 only", subnet6, err)
	}
	if table := ns.ok("network", "ls"); !strings.Contains(table, "10.89.0.0/24,"+p.String()) {
		t.Errorf("network ls does not show dev6's IPv6 prefix:\n%s", table)
	}
	db6 := p.Addr().Next().Next().String() // PREFIX::2, as db is 10.89.0.2
	ns.ok("run", "-d", "--name", "db", "--net", "dev6", "--", "busybox", "nc", "-ll", "-p", "5432", "-e", "echo", "hello-from-db")
	if got := ns.ok("exec", "db", "--", "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global"); !strings.Contains(got, db6+"/64") {
		t.Fatalf("db's eth0 (outside view through exec): %s, want %s/64", got, db6)
	}
	probe := "getent ahostsv6 db.dev6 | head -1; ping -6 -c1 -W5 db | grep -c ' 0% packet loss'; busybox nc -w 3 " + db6 + " 5432 </dev/null"
	for _, flags := range [][]string{{"--net", "dev6"}, {"--net", "dev6", "--allow-net", "example.com"}} {
		script, replies := "ip -6 -o addr show dev eth0 scope global; "+probe, 1
		if len(flags) > 2 {
			// And through the HTTP proxy (HTTP_PROXY is set), which
			// connects to db's IPv6 address from the sandbox's namespace.
			script, replies = script+"; curl -sS -m 5 --http0.9 http://["+db6+"]:5432/", 2
		}
		out := ns.ok(append(flags, "--", "sh", "-c", script)...)
		if !strings.Contains(out, p.Addr().String()) || !strings.Contains(out, db6+" ") || !strings.Contains(out, "\n1\n") || strings.Count(out, "hello-from-db") != replies {
			t.Errorf("%v: want an address on %s, db's AAAA %s, ping and TCP over IPv6:\n%s", flags, p, db6, out)
		}
	}
	if out := ns.ok("run", "--net", "plain", "--", "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global"); strings.TrimSpace(out) != "" {
		t.Errorf("a network without --ipv6 gave a global IPv6 address: %s", out)
	}
}
