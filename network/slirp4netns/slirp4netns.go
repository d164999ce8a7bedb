// Package slirp4netns runs slirp4netns as a sandbox's user-mode network
// helper.
package slirp4netns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"time"

	rkslirp "github.com/rootless-containers/rootlesskit/v2/pkg/network/slirp4netns"

	"github.com/rbox-dev/rbox/network/internal/proc"
)

// Config is the network slirp4netns gives the network namespace of PID:
// slirp4netns' own address plan (10.0.2.100/24, gateway 10.0.2.2, DNS
// 10.0.2.3) on Device.
type Config struct {
	PID    int
	Device string
	MTU    int
	// AllowHostLoopback lets the sandbox reach the host's loopback at the
	// gateway address.
	AllowHostLoopback bool
	Log               io.Writer
}

// Start runs slirp4netns for the network namespace of c.PID and returns
// once it is ready. exitW is the write end of the pipe slirp4netns watches:
// the caller closes it after Kill, or never, when rbox dies.
//
// rootlesskit's pkg/network/slirp4netns driver is used for what it can do
// here, probing the binary's features (DetectFeatures, when slirp4netns
// fails, and for rbox check), but not to start slirp4netns: its ConfigureNetwork creates the tap device with
// "nsenter ... ip tuntap add" and leaves addresses and routes to "ip" in the
// child, and rbox does not shell out to ip or nsenter. slirp4netns creates
// the tap itself when it joins the namespace, and --configure has it set the
// address, the default route and the MTU, so nothing is left to the child.
//
// Process cleanup: the driver sets a parent-death signal but forks from
// whatever thread it runs on, so the signal may fire early (or, if that
// thread lives on, the cleanup depends on it). Here the helper is forked from
// a thread that lives as long as it does (see helper), and slirp4netns also
// gets --exit-fd: the read end of a pipe whose write end only this process
// holds, so slirp4netns exits by itself on EOF whichever way rbox ends.
func Start(ctx context.Context, c Config) (h *proc.Helper, exitW *os.File, err error) {
	if err := waitForIDMaps(ctx, c.PID); err != nil {
		return nil, nil, err
	}

	args := []string{
		"--configure",
		"--mtu", strconv.Itoa(c.MTU),
		"--enable-sandbox",
		"--enable-seccomp",
		"--ready-fd", "3",
		"--exit-fd", "4",
	}
	if !c.AllowHostLoopback {
		args = append(args, "--disable-host-loopback")
	}
	args = append(args, strconv.Itoa(c.PID), c.Device)

	readyR, readyW, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	defer readyR.Close()
	exitR, exitW, err := os.Pipe()
	if err != nil {
		readyW.Close()
		return nil, nil, err
	}
	cmd := exec.Command(name, args...)
	cmd.ExtraFiles = []*os.File{readyW, exitR}
	h, err = proc.Start(name, cmd, c.Log)
	readyW.Close()
	exitR.Close()
	if err != nil {
		exitW.Close()
		return nil, nil, err
	}
	if err := waitReady(ctx, h, readyR); err != nil {
		h.Kill()
		exitW.Close()
		return nil, nil, err
	}
	return h, exitW, nil
}

const name = "slirp4netns"

func waitReady(ctx context.Context, h *proc.Helper, readyR *os.File) error {
	got := make(chan error, 1)
	go func() {
		b := make([]byte, 1)
		_, err := readyR.Read(b)
		if err == nil && b[0] != '1' {
			err = fmt.Errorf("unexpected %q", b)
		}
		got <- err
	}()
	select {
	case err := <-got:
		if err != nil {
			<-h.Done
			return failed(h)
		}
		return nil
	case <-h.Done:
		return failed(h)
	case <-ctx.Done():
		return fmt.Errorf("waiting for slirp4netns: %w", ctx.Err())
	case <-time.After(proc.ReadyTimeout):
		return fmt.Errorf("slirp4netns was not ready after %v:\n%s", proc.ReadyTimeout, h.Output())
	}
}

// failed explains an early exit of slirp4netns. The binary's features are
// probed only then, with rootlesskit's DetectFeatures (which runs
// "slirp4netns --help"), to keep that exec off every start.
func failed(h *proc.Helper) error {
	if err := Check(); err != nil {
		return err
	}
	return h.ExitError()
}

// Check tells whether the slirp4netns in PATH has the features rbox uses.
func Check() error {
	feat, err := rkslirp.DetectFeatures(name)
	if err != nil {
		return err
	}
	switch {
	case !feat.SupportsEnableSandbox, !feat.SupportsEnableSeccomp, !feat.SupportsDisableHostLoopback:
		return errors.New("slirp4netns is too old: rbox needs --enable-sandbox, --enable-seccomp and --disable-host-loopback (slirp4netns >= 0.4)")
	case !feat.KernelSupportsEnableSeccomp:
		return errors.New("slirp4netns --enable-seccomp needs a kernel with seccomp filters")
	}
	return nil
}

// waitForIDMaps waits until pid's uid_map and gid_map are both written.
// They are written by the caller of Start, usually at the same time; there
// is no event for it, so it polls, briefly.
func waitForIDMaps(ctx context.Context, pid int) error {
	deadline := time.Now().Add(proc.ReadyTimeout)
	delay := 200 * time.Microsecond
	for {
		written := true
		for _, f := range []string{"uid_map", "gid_map"} {
			b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/" + f)
			if err != nil {
				return fmt.Errorf("sandbox process %d is gone: %w", pid, err)
			}
			if len(bytes.TrimSpace(b)) == 0 {
				written = false
			}
		}
		if written {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the uid/gid maps of sandbox process %d were not written within %v", pid, proc.ReadyTimeout)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the sandbox's uid/gid maps: %w", ctx.Err())
		case <-time.After(delay):
		}
		if delay < time.Millisecond {
			delay *= 2
		}
	}
}
