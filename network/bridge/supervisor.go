package bridge

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/caps"
	"github.com/rbox-dev/rbox/spec"
	"github.com/rbox-dev/rbox/state"
	"github.com/rbox-dev/rbox/userns"
)

// SupervisorArg0 is argv[0] of the re-executed rbox that supervises a
// network.
const SupervisorArg0 = "rbox-network"

// Create makes the network name on prefix, with an IPv6 prefix of its own
// when ipv6, and starts it: its supervisor runs detached, in a session of
// its own, until Remove.
func Create(root, name string, prefix netip.Prefix, ipv6 bool) error {
	dir := Dir(root, name)
	// sun_path holds 107 bytes and a NUL.
	if p := filepath.Join(dir, apiSocket); len(p) > 107 {
		return fmt.Errorf("the network's sockets would be %s, longer than a Unix socket path may be: use a shorter name", p)
	}
	if err := os.Mkdir(dir, 0o700); errors.Is(err, os.ErrExist) {
		if Running(root, name) {
			return fmt.Errorf("%w: %s", ErrExists, name)
		}
		// Left by a supervisor that was killed: nothing of it runs.
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
		err = os.Mkdir(dir, 0o700)
		if err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	n := &Network{Name: name, Subnet: prefix.String(), Gateway: Gateway(prefix).String()}
	if ipv6 {
		ula, err := newULA()
		if err != nil {
			os.RemoveAll(dir)
			return err
		}
		n.Subnet6 = ula.String()
	}
	if err := write(dir, n); err != nil {
		os.RemoveAll(dir)
		return err
	}
	if err := startSupervisor(dir); err != nil {
		os.RemoveAll(dir)
		return err
	}
	return nil
}

// FreeSubnet is the first 10.89.N.0/24 no network of root uses.
func FreeSubnet(root string) (netip.Prefix, error) {
	names, err := Names(root)
	if err != nil {
		return netip.Prefix{}, err
	}
	var used []netip.Prefix
	for _, name := range names {
		if n, err := Read(root, name); err == nil {
			if p, err := netip.ParsePrefix(n.Subnet); err == nil {
				used = append(used, p)
			}
		}
	}
next:
	for i := 0; i < 256; i++ {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 89, byte(i), 0}), 24)
		for _, u := range used {
			if u.Overlaps(p) {
				continue next
			}
		}
		return p, nil
	}
	return netip.Prefix{}, errors.New("no free subnet in 10.89.0.0/16: pass --subnet")
}

// Overlapping is the name of a network of root whose subnet overlaps p.
func Overlapping(root string, p netip.Prefix) string {
	names, _ := Names(root)
	for _, name := range names {
		if n, err := Read(root, name); err == nil {
			if q, err := netip.ParsePrefix(n.Subnet); err == nil && q.Overlaps(p) {
				return name
			}
		}
	}
	return ""
}

func startSupervisor(dir string) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	log, err := os.OpenFile(filepath.Join(dir, "log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	defer log.Close()
	reportR, reportW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer reportR.Close()
	cmd := &exec.Cmd{
		Path: exe, Args: []string{SupervisorArg0, dir},
		Stdout: log, Stderr: log, ExtraFiles: []*os.File{reportW},
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	err = cmd.Start()
	reportW.Close()
	if err != nil {
		return err
	}
	b, _ := io.ReadAll(reportR)
	if msg := strings.TrimSpace(string(b)); msg != "ok" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if msg == "" {
			msg = "the network's supervisor ended before reporting"
		}
		return errors.New(msg)
	}
	return cmd.Process.Release()
}

// SupervisorMain supervises the network in dir: fd 3 gets "ok" or the
// failure once the network works. plan gives the holder's id maps. It
// must run on the main thread (the holder's parent-death signal is tied to
// it) and never returns.
func SupervisorMain(dir string, plan func() (*userns.Plan, error)) {
	report := os.NewFile(3, "report")
	fail := func(format string, a ...any) {
		fmt.Fprintf(report, format+"\n", a...)
		os.Exit(1)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		fail("%v", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		fail("the network is already running")
	}
	p, err := plan()
	if err != nil {
		fail("%v", err)
	}
	exe, err := os.Executable()
	if err != nil {
		fail("%v", err)
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		fail("%v", err)
	}
	hReportR, hReportW, err := os.Pipe()
	if err != nil {
		fail("%v", err)
	}
	var all []uintptr
	for c := 0; c <= caps.Last(); c++ {
		all = append(all, uintptr(c))
	}
	holder := &exec.Cmd{
		Path: exe, Args: []string{HolderArg0, dir},
		Stdout: os.Stdout, Stderr: os.Stderr, ExtraFiles: []*os.File{readyR, hReportW},
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags:  unix.CLONE_NEWUSER | unix.CLONE_NEWNET,
			AmbientCaps: all,
			Pdeathsig:   unix.SIGKILL,
		},
	}
	if err := holder.Start(); err != nil {
		fail("start the network's holder: %v", err)
	}
	readyR.Close()
	hReportW.Close()
	if err := p.Write(holder.Process.Pid); err != nil {
		_ = holder.Process.Kill()
		fail("%v", err)
	}
	readyW.Close()
	line, _ := bufio.NewReader(hReportR).ReadString('\n')
	if line = strings.TrimSpace(line); line != "ok" {
		_ = holder.Process.Kill()
		if line == "" {
			line = "the network's holder ended before reporting"
		}
		fail("%s", line)
	}
	out, err := startOutbound(dir, holder.Process.Pid)
	if err != nil {
		_ = holder.Process.Kill()
		fail("start slirp4netns for the network: %v", err)
	}
	n, err := Read(filepath.Dir(dir), filepath.Base(dir))
	if err == nil {
		n.Supervisor = state.Self()
		n.Holder, err = state.ProcOf(holder.Process.Pid)
	}
	if err == nil {
		err = write(dir, n)
	}
	if err != nil {
		out.stop()
		_ = holder.Process.Kill()
		fail("%v", err)
	}
	fmt.Fprintln(report, "ok")
	report.Close()

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT, unix.SIGHUP)
	go func() {
		<-sigs
		_ = holder.Process.Kill()
	}()
	_ = holder.Wait()
	out.stop()
	os.Exit(0)
}

// Remove ends and removes the network name; it refuses while sandboxes
// are on it, naming them.
func Remove(root, name string) error {
	dir := Dir(root, name)
	if _, err := os.Lstat(dir); err != nil {
		return fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	if Running(root, name) {
		users, err := Users(root, name)
		if err != nil {
			return err
		}
		if len(users) > 0 {
			return fmt.Errorf("network %s is in use by %s: stop them first", name, strings.Join(users, ", "))
		}
		n, err := Read(root, name)
		if err != nil {
			return err
		}
		_ = n.Supervisor.Signal(unix.SIGTERM)
		deadline := time.Now().Add(5 * time.Second)
		for Running(root, name) {
			if time.Now().After(deadline) {
				return fmt.Errorf("network %s: its supervisor (pid %d) did not end", name, n.Supervisor.PID)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return os.RemoveAll(dir)
}

// call sends one request to a running network's holder.
func call(root, name string, req request) (*reply, error) {
	c, err := net.DialTimeout("unix", filepath.Join(Dir(root, name), "sock"), 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("network %s does not answer (rbox network rm %s, then create it again): %w", name, name, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return nil, err
	}
	var rep reply
	if err := json.NewDecoder(c).Decode(&rep); err != nil {
		return nil, fmt.Errorf("network %s: %w", name, err)
	}
	if rep.Error != "" {
		return nil, fmt.Errorf("network %s: %s", name, rep.Error)
	}
	return &rep, nil
}

// Users lists the sandboxes on a running network (by name, or address for
// unnamed ones).
func Users(root, name string) ([]string, error) {
	users, _, err := UsersAndLinks(root, name)
	return users, err
}

// UsersAndLinks is Users and the interfaces on the network's bridge.
func UsersAndLinks(root, name string) (users, links []string, err error) {
	rep, err := call(root, name, request{Op: "users"})
	if err != nil {
		return nil, nil, err
	}
	return rep.Users, rep.Links, nil
}

// Attach gives the sandbox whose pid 1 is pid an eth0 on the network,
// answering to sandboxName when not empty, with the host ports publish
// forwarded to it while it runs; it returns its address. A restricted
// sandbox (--allow-net) reaches the network's sandboxes and nothing
// beyond (restrict.go).
func Attach(root, name string, pid int, sandboxName string, publish []spec.Port, restricted bool) (string, error) {
	rep, err := call(root, name, request{Op: "attach", PID: pid, Name: sandboxName, Publish: publish, Restricted: restricted})
	if err != nil {
		return "", err
	}
	return rep.Address, nil
}

// Lookup is the addresses (IPv4, then IPv6 if the network has it) of the
// sandbox that answers to host (NAME or NAME.NETWORK) on the network, none
// when no sandbox does.
func Lookup(root, name, host string) ([]netip.Addr, error) {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if short, ok := strings.CutSuffix(host, "."+strings.ToLower(name)); ok {
		host = short
	}
	rep, err := call(root, name, request{Op: "lookup", Name: host})
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, s := range []string{rep.Address, rep.Address6} {
		if s == "" {
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}
