//go:build integration

package tests

import (
	"fmt"
	"io"
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
)

// The network tests need a TCP and UDP client and server inside the
// sandbox; the test binary itself is that program (see TestNetProbe), bound
// read-only at /probe.

const probeEnv = "RBOX_NET_PROBE"

// TestNetProbe is not a test: run inside a sandbox with RBOX_NET_PROBE set,
// it does what that variable says and exits. Without it, it does nothing.
func TestNetProbe(t *testing.T) {
	job := os.Getenv(probeEnv)
	if job == "" {
		return
	}
	f := strings.Fields(job)
	switch f[0] {
	case "dial": // dial TCPADDR UDPADDR
		fmt.Println("tcp", nettest.TCPPing(f[1]))
		fmt.Println("udp", nettest.UDPPing(f[2]))
	case "serve": // serve [UDPPORT...]: TCP echo on 127.0.0.1:80, UDP echo on 127.0.0.1:53 and the UDPPORTs
		ln, err := net.Listen("tcp", "127.0.0.1:80")
		if err != nil {
			fmt.Println("err", err)
			os.Exit(1)
		}
		pc, err := net.ListenPacket("udp", "127.0.0.1:53")
		if err != nil {
			fmt.Println("err", err)
			os.Exit(1)
		}
		go nettest.ServeTCPEcho(ln, "in:", nil)
		go nettest.ServeUDPEcho(pc, "in:", nil)
		for _, port := range f[1:] {
			pc, err := net.ListenPacket("udp", "127.0.0.1:"+port)
			if err != nil {
				fmt.Println("err", err)
				os.Exit(1)
			}
			go nettest.ServeUDPEcho(pc, "in:", nil)
		}
		fmt.Println("listening")
		// Served until the test closes rbox's stdin (or kills it).
		io.Copy(io.Discard, os.Stdin)
	}
	os.Exit(0)
}

// probeArgs are the rbox arguments that run the probe with job.
func probeArgs(t *testing.T, job string) []string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return []string{"--ro-bind", exe + ":/probe", "--env", probeEnv + "=" + job, "--", "/probe", "-test.run=^TestNetProbe$"}
}

// descendants lists rbox's children (from every thread: the helpers are
// forked from threads of their own) and, recursively, theirs.
func descendants(pid int) []int {
	var out []int
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, task := range tasks {
		data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, task.Name()))
		for _, f := range strings.Fields(string(data)) {
			n, _ := strconv.Atoi(f)
			out = append(out, n)
			out = append(out, descendants(n)...)
		}
	}
	return out
}

func commOf(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return filepath.Base(strings.SplitN(string(b), "\x00", 2)[0])
}

// helpersOf returns rbox's descendants that are network helpers.
func helpersOf(pid int) []int {
	var out []int
	for _, p := range descendants(pid) {
		if c := commOf(p); c == "pasta" || c == "slirp4netns" {
			out = append(out, p)
		}
	}
	return out
}

// gone reports whether none of pids is alive (zombies count as gone).
func gone(pids []int) bool {
	for _, p := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i > 0 && i+2 < len(s) && s[i+2] != 'Z' {
			return false
		}
	}
	return true
}

func portFree(proto string, port int) bool { return ports.Free(proto, "127.0.0.1", port) }

var helperModes = []string{"pasta", "slirp4netns"}

// The default is no network: loopback only, and the host's resolver files.
func TestNetworkDefaultLoopbackOnly(t *testing.T) {
	out := sh(t, "ls /sys/class/net; cat /sys/class/net/lo/operstate")
	if f := strings.Fields(out); len(f) != 2 || f[0] != "lo" {
		t.Errorf("interfaces with no --net: %q, want lo only", out)
	}
	host, _ := os.ReadFile("/etc/resolv.conf")
	if got := sh(t, "cat /etc/resolv.conf"); got != string(host) {
		t.Errorf("resolv.conf with no --net: %q, want the host's %q", got, host)
	}
}

// Outbound: the host's loopback is reached at 10.0.2.2 only with
// --allow-host-loopback, for TCP and UDP, with either helper; and the
// interface is set up before the command starts.
func TestNetworkOutbound(t *testing.T) {
	echoes := nettest.StartEchoes(t, "host:")
	tcpHits, udpHits := &echoes.TCPHits, &echoes.UDPHits
	job := fmt.Sprintf("dial 10.0.2.2:%d 10.0.2.2:%d", echoes.TCPPort, echoes.UDPPort)
	for _, mode := range helperModes {
		for _, allow := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/allow=%v", mode, allow), func(t *testing.T) {
				tcpHits.Store(0)
				udpHits.Store(0)
				args := []string{"--net", mode}
				if allow {
					args = append(args, "--allow-host-loopback")
				}
				r := rbox(t, append(args, probeArgs(t, job)...)...)
				if r.code != 0 {
					t.Fatal(r)
				}
				if allow {
					if !strings.Contains(r.stdout, "tcp ok host:ping") || !strings.Contains(r.stdout, "udp ok host:ping") {
						t.Errorf("with --allow-host-loopback the host's loopback is not reached:\n%s", r)
					}
				} else {
					if !strings.Contains(r.stdout, "tcp err") || !strings.Contains(r.stdout, "udp err") || tcpHits.Load() != 0 || udpHits.Load() != 0 {
						t.Errorf("without --allow-host-loopback the host's loopback is reached (server saw %d TCP, %d UDP):\n%s", tcpHits.Load(), udpHits.Load(), r)
					}
				}
				// Configured before the command runs.
				info := sh(t, "cat /sys/class/net/tap0/mtu /sys/class/net/tap0/operstate; cat /proc/net/route", args...)
				if !strings.HasPrefix(info, "65520\n") || !strings.Contains(info, "tap0\t00000000\t0202000A") {
					t.Errorf("tap0 not configured (mtu 65520, default route via 10.0.2.2):\n%s", info)
				}
			})
		}
	}
}

// Inbound: -p reaches a TCP server and UDP echoes inside, from the host,
// on the same port number and on another one (which pasta leaves to the
// port agent, see network.NeedsPortAgent), on either kind of pid 1; after
// rbox exits no helper is left and the ports are free again.
func TestNetworkPublish(t *testing.T) {
	for _, mode := range helperModes {
		for _, udpToOtherPort := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/udp-to-other-port=%v", mode, udpToOtherPort), func(t *testing.T) {
				testNetworkPublish(t, mode, udpToOtherPort)
			})
		}
	}
}

func testNetworkPublish(t *testing.T, mode string, udpToOtherPort bool) {
	tcpPort, udpSame, udpOther := nettest.FreePort(t, "tcp"), nettest.FreePort(t, "udp"), nettest.FreePort(t, "udp")
	args := []string{"--net", mode, "-p", fmt.Sprintf("%d:80", tcpPort), "-p", fmt.Sprintf("127.0.0.1:%d:%d/udp", udpSame, udpSame)}
	if udpToOtherPort {
		args = append(args, "-p", fmt.Sprintf("127.0.0.1:%d:53/udp", udpOther))
	}
	probe := probeArgs(t, "serve "+strconv.Itoa(udpSame))
	cmd := exec.Command(rboxBin, append(args, probe...)...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	for deadline := time.Now().Add(15 * time.Second); !strings.Contains(out.String(), "listening"); time.Sleep(20 * time.Millisecond) {
		if strings.Contains(out.String(), "is already in use") {
			// A probe's socket held by a child forked meanwhile did
			// that (nettest.FreePort, ports.Free hold ForkLock).
			t.Fatalf("a free port was in use when rbox bound it:\n%s", out)
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for the server inside; rbox's children %v; rbox said:\n%s", descendants(cmd.Process.Pid), out.String())
		}
	}
	helpers := helpersOf(cmd.Process.Pid)
	if len(helpers) != 1 || commOf(helpers[0]) != mode {
		t.Errorf("helpers of rbox: %v, want one %s", helpers, mode)
	}
	if got := nettest.TCPPing(fmt.Sprintf("127.0.0.1:%d", tcpPort)); got != "ok in:ping" {
		t.Errorf("published TCP port: %q\n%s", got, out)
	}
	if got := nettest.UDPPing(fmt.Sprintf("127.0.0.1:%d", udpSame)); got != "ok in:ping" {
		t.Errorf("published UDP port %d:%d: %q\n%s", udpSame, udpSame, got, out)
	}
	if udpToOtherPort {
		if got := nettest.UDPPing(fmt.Sprintf("127.0.0.1:%d", udpOther)); got != "ok in:ping" {
			t.Errorf("published UDP port %d:53: %q\n%s", udpOther, got, out)
		}
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Errorf("rbox: %v\n%s", err, out)
	}
	waitFor(t, "the helper to end", 5*time.Second, func() bool { return gone(helpers) })
	if !portFree("tcp", tcpPort) || !portFree("udp", udpSame) || !portFree("udp", udpOther) {
		t.Errorf("published ports still bound after rbox exited")
	}
}

// kill -9 of rbox takes the helper and the forwarded ports with it and
// leaves nothing in $TMPDIR or $XDG_RUNTIME_DIR.
func TestNetworkKill9(t *testing.T) {
	for _, mode := range helperModes {
		t.Run(mode, func(t *testing.T) {
			tcpPort := nettest.FreePort(t, "tcp")
			cmd := exec.Command(rboxBin, append([]string{"--net", mode, "-p", fmt.Sprintf("%d:80", tcpPort)}, probeArgs(t, "serve")...)...)
			// Where rbox would keep state if it kept any: fresh, so that
			// anything left there is rbox's.
			stateDirs := []string{hostDir(t), hostDir(t)}
			cmd.Env = append(os.Environ(), "TMPDIR="+stateDirs[0], "XDG_RUNTIME_DIR="+stateDirs[1])
			out := &syncBuffer{}
			cmd.Stdout, cmd.Stderr = out, out
			// Held open: the server inside runs until its stdin closes.
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			defer stdin.Close()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the server inside", 15*time.Second, func() bool { return strings.Contains(out.String(), "listening") })
			all := descendants(cmd.Process.Pid)
			helpers := helpersOf(cmd.Process.Pid)
			if len(helpers) != 1 {
				t.Fatalf("helpers of rbox: %v", helpers)
			}
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = cmd.Wait()
			waitFor(t, "the helper and the sandbox to die", 5*time.Second, func() bool { return gone(all) })
			waitFor(t, "the published port to be released", 5*time.Second, func() bool { return portFree("tcp", tcpPort) })
			for _, d := range stateDirs {
				if ents, _ := os.ReadDir(d); len(ents) != 0 {
					t.Errorf("rbox left %v in %s", ents, d)
				}
			}
		})
	}
}

// The sandbox gets its own resolv.conf and hosts; the host's are untouched.
func TestNetworkResolverFiles(t *testing.T) {
	hostResolv, _ := os.ReadFile("/etc/resolv.conf")
	hostHosts, _ := os.ReadFile("/etc/hosts")
	out := sh(t, "cat /etc/resolv.conf; echo ---; cat /etc/hosts", "--net", "user", "--hostname", "boxy")
	resolv, hosts, _ := strings.Cut(out, "---\n")
	if !strings.Contains(resolv, "nameserver 10.0.2.3\n") || strings.Count(resolv, "nameserver") != 1 {
		t.Errorf("resolv.conf with --net user:\n%s", resolv)
	}
	if !strings.Contains(hosts, "127.0.0.1\tlocalhost\n") || !strings.Contains(hosts, "10.0.2.100\tboxy\n") {
		t.Errorf("hosts with --net user --hostname boxy:\n%s", hosts)
	}
	out = sh(t, "cat /etc/resolv.conf", "--net", "slirp4netns", "--dns", "192.0.2.53")
	if !strings.Contains(out, "nameserver 192.0.2.53\n") || strings.Count(out, "nameserver") != 1 {
		t.Errorf("resolv.conf with --dns 192.0.2.53:\n%s", out)
	}
	if got, _ := os.ReadFile("/etc/resolv.conf"); string(got) != string(hostResolv) {
		t.Errorf("the host's /etc/resolv.conf changed")
	}
	if got, _ := os.ReadFile("/etc/hosts"); string(got) != string(hostHosts) {
		t.Errorf("the host's /etc/hosts changed")
	}
}

// Mistakes fail before anything starts, with one line and exit 125.
func TestNetworkBadInput(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port
	emptyPath := t.TempDir()
	cases := []struct {
		env  []string
		args []string
		want string
	}{
		{nil, []string{"--net", "bridge"}, "--net bridge: unknown network mode"},
		{nil, []string{"--net", "user", "-p", "80-70"}, "invalid -p/--publish"},
		{nil, []string{"--net", "user", "-p", "8000-8001:80"}, "2 host ports for 1 sandbox ports"},
		{nil, []string{"--net", "user", "-p", "8080:80/sctp"}, `protocol "sctp"`},
		{nil, []string{"--net", "user", "-p", "x:80"}, `host port "x" is not a port`},
		{nil, []string{"--net", "user", "-p", fmt.Sprintf("%d:80", busyPort)}, "already in use"},
		{nil, []string{"-p", "8080:80"}, "needs --net user"},
		{nil, []string{"--allow-host-loopback"}, "needs --net user"},
		{nil, []string{"--net", "user", "--dns", "nameserver"}, "not an IP address"},
		{[]string{"PATH=" + emptyPath}, []string{"--net", "user"}, "install the Debian package passt"},
		{[]string{"PATH=" + emptyPath}, []string{"--net", "slirp4netns"}, "install the Debian package slirp4netns"},
	}
	if os.Getuid() != 0 {
		cases = append(cases, struct {
			env  []string
			args []string
			want string
		}{nil, []string{"--net", "user", "-p", "80:80"}, "net.ipv4.ip_unprivileged_port_start"})
	}
	for _, c := range cases {
		r := rboxCmd(t, func(cmd *exec.Cmd) { cmd.Env = append(os.Environ(), c.env...) }, append(c.args, "--", "true")...)
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if r.code != 125 || len(lines) != 1 || !strings.HasPrefix(lines[0], "rbox: ") || !strings.Contains(lines[0], c.want) {
			t.Errorf("rbox %v: want exit 125 and one line with %q, got:\n%s", c.args, c.want, r)
		}
	}
}

// rbox check tells which network modes work.
func TestNetworkCheck(t *testing.T) {
	r := rbox(t, "check")
	for _, mode := range []string{"user", "pasta", "slirp4netns"} {
		found := false
		for _, line := range strings.Split(r.stdout, "\n") {
			f := strings.Fields(line)
			if len(f) >= 3 && f[1] == "--net" && f[2] == mode {
				found = true
				if f[0] != "pass" {
					t.Errorf("rbox check: %q", line)
				}
			}
		}
		if !found {
			t.Errorf("rbox check has no line for --net %s:\n%s", mode, r)
		}
	}
}
