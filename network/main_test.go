package network

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rbox-dev/rbox/internal/nettest"
)

// The test binary plays three roles, chosen by roleEnv:
//   - (unset) the tests;
//   - "child": a stand-in for rbox's pid 1, started in new user, network,
//     mount and pid namespaces with no uid/gid maps yet; it reads a
//     ChildConfig on stdin, calls LoopbackUp and ConfigureChild, and then
//     obeys one-line commands (see childCommand);
//   - "parent": a stand-in for rbox itself, for the SIGKILL test: it starts a
//     child, calls Start, prints READY and waits to be killed.
const roleEnv = "RBOX_SLIRP_TEST_ROLE"

func TestMain(m *testing.M) {
	switch os.Getenv(roleEnv) {
	case "child-pre":
		childPreMain()
	case "child":
		childMain()
	case "parent":
		parentMain()
	default:
		os.Exit(m.Run())
	}
}

// ---- the sandbox stand-in ----

// childPreMain waits for "go", sent once the uid/gid maps are written, and
// execs itself again: the first exec happened before the maps, as uid
// "nobody" in the new user namespace, which drops all capabilities; an exec
// as the now-mapped root gets them back (rbox's pid 1 must do the same or
// have its maps written before its exec).
func childPreMain() {
	buf := make([]byte, 3)
	if _, err := io.ReadFull(os.Stdin, buf); err != nil || string(buf) != "go\n" {
		os.Exit(2)
	}
	exe, err := os.Executable()
	if err != nil {
		os.Exit(2)
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, roleEnv+"=") {
			env = append(env, kv)
		}
	}
	env = append(env, roleEnv+"=child")
	if err := syscall.Exec(exe, []string{exe}, env); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
}

func childMain() {
	in := bufio.NewScanner(os.Stdin)
	out := bufio.NewWriter(os.Stdout)
	reply := func(format string, a ...any) {
		fmt.Fprintf(out, format+"\n", a...)
		out.Flush()
	}
	if !in.Scan() {
		os.Exit(2)
	}
	var cfg ChildConfig
	if err := json.Unmarshal(in.Bytes(), &cfg); err != nil {
		reply("err %v", err)
		os.Exit(2)
	}
	if err := LoopbackUp(); err != nil {
		reply("err %v", err)
		os.Exit(2)
	}
	if err := ConfigureChildLog(cfg, os.Stderr); err != nil {
		reply("err %v", err)
		os.Exit(2)
	}
	reply("ok")
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 0 {
			continue
		}
		if f[0] == "exit" {
			os.Exit(0)
		}
		reply("%s", childCommand(f))
	}
	os.Exit(0)
}

func childCommand(f []string) string {
	arg := ""
	if len(f) > 1 {
		arg = f[1]
	}
	switch f[0] {
	case "tcpdial":
		return nettest.TCPPing(arg)
	case "udpdial":
		return nettest.UDPPing(arg)
	case "tcplisten":
		ln, err := net.Listen("tcp", arg)
		if err != nil {
			return "err " + err.Error()
		}
		go nettest.ServeTCPEcho(ln, "in:", nil)
		return "ok"
	case "udplisten":
		c, err := net.ListenPacket("udp", arg)
		if err != nil {
			return "err " + err.Error()
		}
		go nettest.ServeUDPEcho(c, "in:", nil)
		return "ok"
	case "info":
		return childInfo()
	case "route":
		// A connected UDP socket sends nothing: this only asks the
		// routing table which source address would be used.
		c, err := net.Dial("udp", arg)
		if err != nil {
			return "err " + err.Error()
		}
		defer c.Close()
		return "ok " + c.LocalAddr().(*net.UDPAddr).IP.String()
	}
	return "err unknown command " + f[0]
}

func childInfo() string {
	var b strings.Builder
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		return "err " + err.Error()
	}
	fmt.Fprintf(&b, "lo_up=%v", lo.Flags&net.FlagUp != 0)
	if tap, err := net.InterfaceByName(DeviceName); err == nil {
		addrs, _ := tap.Addrs()
		var as []string
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
				as = append(as, ipn.String())
			}
		}
		fmt.Fprintf(&b, " tap_up=%v mtu=%d addr=%s", tap.Flags&net.FlagUp != 0, tap.MTU, strings.Join(as, ","))
	}
	route, _ := os.ReadFile("/proc/self/net/route")
	for _, line := range strings.Split(string(route), "\n")[1:] {
		fl := strings.Fields(line)
		if len(fl) > 2 && fl[1] == "00000000" {
			gw, _ := strconv.ParseUint(fl[2], 16, 32)
			fmt.Fprintf(&b, " default=%d.%d.%d.%d", byte(gw), byte(gw>>8), byte(gw>>16), byte(gw>>24))
		}
	}
	return "ok " + b.String()
}

// ---- the rbox stand-in, for the SIGKILL test ----

func parentMain() {
	var o Options
	if err := json.Unmarshal([]byte(os.Getenv("RBOX_SLIRP_TEST_OPTIONS")), &o); err != nil {
		fmt.Println("err", err)
		os.Exit(2)
	}
	sb, err := startSandbox(o)
	if err != nil {
		fmt.Println("err", err)
		os.Exit(2)
	}
	fields := []string{"READY", strconv.Itoa(sb.cmd.Process.Pid)}
	for _, p := range sb.net.HelperPIDs() {
		fields = append(fields, strconv.Itoa(p))
	}
	fmt.Println(strings.Join(fields, " "))
	select {}
}

// ---- starting a sandbox stand-in ----

type sandbox struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
	net  *Network
	errb *lockedBuffer
}

// lockedBuffer is a bytes.Buffer safe for the child's stderr copier and the
// test to use at once.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startSandbox starts a child in new namespaces, then, as rbox does, writes
// its uid/gid maps while Start runs, and hands it the ChildConfig.
func startSandbox(o Options) (*sandbox, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), roleEnv+"=child-pre")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET | syscall.CLONE_NEWNS | syscall.CLONE_NEWPID,
		Pdeathsig:  syscall.SIGKILL,
	}
	sb := &sandbox{cmd: cmd, errb: &lockedBuffer{}}
	cmd.Stderr = sb.errb
	if sb.in, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	sb.out = bufio.NewScanner(stdout)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	pid := cmd.Process.Pid

	mapsDone := make(chan error, 1)
	go func() {
		// Late on purpose: Start must cope with maps written after it
		// began.
		time.Sleep(20 * time.Millisecond)
		err := writeIDMaps(pid)
		if err == nil {
			_, err = io.WriteString(sb.in, "go\n")
		}
		mapsDone <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := Start(ctx, pid, o)
	if mErr := <-mapsDone; mErr != nil && err == nil {
		n.Close()
		err = mErr
	}
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, err
	}
	sb.net = n
	cfg, _ := json.Marshal(n.Child)
	if r := sb.send(string(cfg)); r != "ok" {
		sb.close()
		return nil, fmt.Errorf("child setup: %s (stderr: %s)", r, sb.errb.String())
	}
	return sb, nil
}

func writeIDMaps(pid int) error {
	p := "/proc/" + strconv.Itoa(pid) + "/"
	if err := os.WriteFile(p+"uid_map", fmt.Appendf(nil, "0 %d 1\n", os.Geteuid()), 0); err != nil {
		return err
	}
	if err := os.WriteFile(p+"setgroups", []byte("deny"), 0); err != nil {
		return err
	}
	return os.WriteFile(p+"gid_map", fmt.Appendf(nil, "0 %d 1\n", os.Getegid()), 0)
}

// send writes one line to the child and returns its one-line answer.
func (sb *sandbox) send(line string) string {
	if _, err := io.WriteString(sb.in, line+"\n"); err != nil {
		return "err write: " + err.Error()
	}
	if !sb.out.Scan() {
		return fmt.Sprintf("err child gone (%v)", sb.out.Err())
	}
	return sb.out.Text()
}

// close ends the child, then the network, as rbox does.
func (sb *sandbox) close() error {
	io.WriteString(sb.in, "exit\n")
	sb.in.Close()
	done := make(chan struct{})
	go func() { sb.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		sb.cmd.Process.Kill()
		<-done
	}
	if sb.net != nil {
		return sb.net.Close()
	}
	return nil
}
