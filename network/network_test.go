package network

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rbox-dev/rbox/internal/nettest"
	"github.com/rbox-dev/rbox/network/ports"
	"github.com/rbox-dev/rbox/spec"
)

var helperModes = []string{spec.NetPasta, spec.NetSlirp4netns}

// emptyStateDirs points TMPDIR and XDG_RUNTIME_DIR at empty directories and
// returns a check that they are still empty.
func emptyStateDirs(t *testing.T) func() {
	t.Helper()
	base := t.TempDir()
	tmp, run := filepath.Join(base, "tmp"), filepath.Join(base, "run")
	for _, d := range []string{tmp, run} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("TMPDIR", tmp)
	t.Setenv("XDG_RUNTIME_DIR", run)
	return func() {
		t.Helper()
		for _, d := range []string{tmp, run} {
			ents, err := os.ReadDir(d)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ents {
				t.Errorf("left behind in %s: %s", d, e.Name())
			}
		}
	}
}

func TestUserNetwork(t *testing.T) {
	for _, mode := range helperModes {
		for _, allow := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/allow-host-loopback=%v", mode, allow), func(t *testing.T) {
				testUserNetwork(t, mode, allow)
			})
		}
	}
}

func testUserNetwork(t *testing.T, mode string, allow bool) {
	checkDirs := emptyStateDirs(t)
	echoes := nettest.StartEchoes(t, "host:")
	tcpPort, udpPort, tcpHits, udpHits := echoes.TCPPort, echoes.UDPPort, &echoes.TCPHits, &echoes.UDPHits
	pubTCP, pubUDP, pubUDPSame := nettest.FreePort(t, "tcp"), nettest.FreePort(t, "udp"), nettest.FreePort(t, "udp")
	o := Options{
		Mode:              mode,
		AllowHostLoopback: allow,
		Publish: []spec.Port{
			{HostIP: "127.0.0.1", HostPort: pubTCP, ChildPort: 80, Proto: "tcp"},
			{HostIP: "127.0.0.1", HostPort: pubUDP, ChildPort: 53, Proto: "udp"},
			{HostIP: "127.0.0.1", HostPort: pubUDPSame, ChildPort: pubUDPSame, Proto: "udp"},
		},
	}
	sb, err := startSandbox(o)
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			sb.close()
		}
	}()
	childPID := sb.cmd.Process.Pid
	helpers := sb.net.HelperPIDs()
	if len(helpers) != 1 {
		t.Fatalf("want one helper process, got %v", helpers)
	}
	checkHelperIdentity(t, helpers[0])

	// The interface is configured before the command would run.
	info := sb.send("info")
	wantMTU := DefaultMTU
	for _, want := range []string{"lo_up=true", "tap_up=true", "mtu=" + strconv.Itoa(wantMTU), "addr=10.0.2.100/24", "default=10.0.2.2"} {
		if !strings.Contains(info, want) {
			t.Errorf("info = %q, want %q in it", info, want)
		}
	}
	// The default route is usable (asks the routing table; sends nothing).
	if r := sb.send("route 192.0.2.1:9"); r != "ok 10.0.2.100" {
		t.Errorf("route lookup through the default route: %q", r)
	}
	if got, want := sb.net.Child.DNS, DNSIP; got != want {
		t.Errorf("DNS = %q, want %q", got, want)
	}

	// Outbound to the host's loopback through the gateway.
	gwTCP := net.JoinHostPort(GatewayIP, strconv.Itoa(tcpPort))
	gwUDP := net.JoinHostPort(GatewayIP, strconv.Itoa(udpPort))
	tcpRes, udpRes := sb.send("tcpdial "+gwTCP), sb.send("udpdial "+gwUDP)
	if allow {
		if tcpRes != "ok host:ping" {
			t.Errorf("TCP to the host's loopback via %s: %q, want it to work", gwTCP, tcpRes)
		}
		if udpRes != "ok host:ping" {
			t.Errorf("UDP to the host's loopback via %s: %q, want it to work", gwUDP, udpRes)
		}
	} else {
		if !strings.HasPrefix(tcpRes, "err") || tcpHits.Load() != 0 {
			t.Errorf("TCP to the host's loopback via %s: %q (server saw %d connections), want refused", gwTCP, tcpRes, tcpHits.Load())
		}
		if !strings.HasPrefix(udpRes, "err") || udpHits.Load() != 0 {
			t.Errorf("UDP to the host's loopback via %s: %q (server saw %d datagrams), want no answer", gwUDP, udpRes, udpHits.Load())
		}
	}
	// The sandbox's own loopback is its own: the host's servers are not
	// forwarded there.
	if r := sb.send("tcpdial 127.0.0.1:" + strconv.Itoa(tcpPort)); !strings.HasPrefix(r, "err") {
		t.Errorf("the host's TCP server is reachable on the sandbox's loopback: %q", r)
	}

	// Inbound: published ports reach servers on the sandbox's loopback.
	if r := sb.send("tcplisten 127.0.0.1:80"); r != "ok" {
		t.Fatalf("tcplisten: %s", r)
	}
	if r := sb.send("udplisten 127.0.0.1:53"); r != "ok" {
		t.Fatalf("udplisten: %s", r)
	}
	if r := nettest.TCPPing("127.0.0.1:" + strconv.Itoa(pubTCP)); r != "ok in:ping" {
		t.Errorf("published TCP port %d: %q", pubTCP, r)
	}
	if r := nettest.UDPPing("127.0.0.1:" + strconv.Itoa(pubUDP)); r != "ok in:ping" {
		t.Errorf("published UDP port %d: %q", pubUDP, r)
	}
	if r := sb.send("udplisten 127.0.0.1:" + strconv.Itoa(pubUDPSame)); r != "ok" {
		t.Fatalf("udplisten: %s", r)
	}
	if r := nettest.UDPPing("127.0.0.1:" + strconv.Itoa(pubUDPSame)); r != "ok in:ping" {
		t.Errorf("published UDP port %d to the same port: %q", pubUDPSame, r)
	}
	// A second TCP connection, to be sure the forwarder keeps working.
	if r := nettest.TCPPing("127.0.0.1:" + strconv.Itoa(pubTCP)); r != "ok in:ping" {
		t.Errorf("published TCP port %d, second connection: %q", pubTCP, r)
	}

	closed = true
	if err := sb.close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := sb.net.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	checkGone(t, childPID, helpers)
	checkPortsFree(t, o.Publish)
	checkDirs()
}

// checkHelperIdentity checks that a helper runs with the caller's uid and
// gid, as seen from here.
func checkHelperIdentity(t *testing.T, pid int) {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || (f[0] != "Uid:" && f[0] != "Gid:") {
			continue
		}
		want := os.Getuid()
		if f[0] == "Gid:" {
			want = os.Getgid()
		}
		for _, v := range f[1:5] {
			if v != strconv.Itoa(want) {
				t.Errorf("helper %d: %s, want all %d", pid, line, want)
				break
			}
		}
	}
}

// procState is the state letter of pid, or 0 if there is no such process.
func procState(pid int) byte {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return 0
	}
	return s[i+2]
}

// leftovers lists processes that are helpers for childPID, or children of
// this process.
func leftovers(childPID int) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	self := strconv.Itoa(os.Getpid())
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st := procState(pid); st == 0 || st == 'Z' {
			continue
		}
		cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		stat, _ := os.ReadFile("/proc/" + e.Name() + "/stat")
		sf := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		isChild := len(sf) > 1 && sf[1] == self
		isHelper := len(args) > 1 && (strings.Contains(args[0], "pasta") || strings.Contains(args[0], "slirp4netns")) &&
			strings.Contains(" "+strings.Join(args, " ")+" ", " "+strconv.Itoa(childPID)+" ")
		if isChild || isHelper {
			out = append(out, fmt.Sprintf("%d %q", pid, args))
		}
	}
	return out
}

// checkGone waits briefly for the sandbox and its helpers to be gone.
func checkGone(t *testing.T, childPID int, helpers []int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var alive []string
		for _, p := range append([]int{childPID}, helpers...) {
			if st := procState(p); st != 0 && st != 'Z' {
				alive = append(alive, fmt.Sprintf("%d(%c)", p, st))
			}
		}
		left := leftovers(childPID)
		if len(alive) == 0 && len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("still running: %v; leftovers: %v", alive, left)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func checkPortsFree(t *testing.T, ps []spec.Port) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := ports.Check(ps)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("published ports not released: %v", err)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestKilledParent kills a stand-in for rbox with SIGKILL while its sandbox
// runs, and checks that the helpers, the sandbox and the published ports go
// with it and that nothing is left on disk.
func TestKilledParent(t *testing.T) {
	for _, mode := range helperModes {
		t.Run(mode, func(t *testing.T) {
			checkDirs := emptyStateDirs(t)
			o := Options{Mode: mode, Publish: []spec.Port{
				{HostIP: "127.0.0.1", HostPort: nettest.FreePort(t, "tcp"), ChildPort: 80, Proto: "tcp"},
				{HostIP: "127.0.0.1", HostPort: nettest.FreePort(t, "udp"), ChildPort: 53, Proto: "udp"},
			}}
			oj, _ := json.Marshal(o)
			exe, err := os.Executable()
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(exe)
			cmd.Env = append(os.Environ(), roleEnv+"=parent", "RBOX_SLIRP_TEST_OPTIONS="+string(oj))
			cmd.Stderr = os.Stderr
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			line, err := bufio.NewReader(stdout).ReadString('\n')
			if err != nil {
				t.Fatalf("parent: %v", err)
			}
			f := strings.Fields(line)
			if len(f) < 3 || f[0] != "READY" {
				t.Fatalf("parent: %q", line)
			}
			childPID, _ := strconv.Atoi(f[1])
			var helpers []int
			for _, s := range f[2:] {
				p, _ := strconv.Atoi(s)
				helpers = append(helpers, p)
			}
			// The ports are published while the parent lives.
			if err := ports.Check(o.Publish[:1]); err == nil || !strings.Contains(err.Error(), "already in use") {
				t.Errorf("published port not bound by the parent: %v", err)
			}
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			cmd.Wait()
			checkGone(t, childPID, helpers)
			checkPortsFree(t, o.Publish)
			checkDirs()
		})
	}
}

func TestNoneAndHost(t *testing.T) {
	for _, mode := range []string{"", spec.NetNone, spec.NetHost} {
		n, err := Start(t.Context(), os.Getpid(), Options{Mode: mode})
		if err != nil {
			t.Fatalf("%q: %v", mode, err)
		}
		if n.Child.ResolvConf() != nil || len(n.HelperPIDs()) != 0 || n.Child.PortDirFD != 0 {
			t.Errorf("%q: %+v", mode, n.Child)
		}
		n.Close()
		n, err = Start(t.Context(), os.Getpid(), Options{Mode: mode, DNS: "192.0.2.53"})
		if err != nil {
			t.Fatal(err)
		}
		if got := string(n.Child.ResolvConf()); !strings.Contains(got, "nameserver 192.0.2.53\n") {
			t.Errorf("%q with --dns: resolv.conf %q", mode, got)
		}
		n.Close()
	}
	_, err := Start(t.Context(), os.Getpid(), Options{Mode: spec.NetNone, Publish: []spec.Port{{HostIP: "127.0.0.1", HostPort: 8080, ChildPort: 80, Proto: "tcp"}}})
	if err == nil || !errors.Is(err, ErrPublishNeedsUserMode) {
		t.Errorf("publish with --net none: %v", err)
	}
	_, err = Start(t.Context(), os.Getpid(), Options{Mode: spec.NetUser, DNS: "not-an-ip"})
	if err == nil || !strings.Contains(err.Error(), "not an IP address") {
		t.Errorf("bad --dns: %v", err)
	}
}
