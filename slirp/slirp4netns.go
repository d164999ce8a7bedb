package slirp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"time"

	rkslirp "github.com/rootless-containers/rootlesskit/v2/pkg/network/slirp4netns"
)

// startSlirp4netns runs slirp4netns for the network namespace of childPID.
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
func (n *Network) startSlirp4netns(ctx context.Context, childPID, mtu int, o Options) error {
	if err := waitForIDMaps(ctx, childPID); err != nil {
		return err
	}

	args := []string{
		"--configure",
		"--mtu", strconv.Itoa(mtu),
		"--enable-sandbox",
		"--enable-seccomp",
		"--ready-fd", "3",
		"--exit-fd", "4",
	}
	if !o.AllowHostLoopback {
		args = append(args, "--disable-host-loopback")
	}
	args = append(args, strconv.Itoa(childPID), DeviceName)

	readyR, readyW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer readyR.Close()
	exitR, exitW, err := os.Pipe()
	if err != nil {
		readyW.Close()
		return err
	}
	n.mu.Lock()
	n.closeFile = append(n.closeFile, exitW)
	n.mu.Unlock()

	cmd := exec.Command(ModeSlirp4netns, args...)
	cmd.ExtraFiles = []*os.File{readyW, exitR}
	h, err := startHelper(ModeSlirp4netns, cmd, o.Log)
	readyW.Close()
	exitR.Close()
	if err != nil {
		return err
	}
	n.addHelper(h)

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
			<-h.done
			return slirp4netnsFailed(h)
		}
		return nil
	case <-h.done:
		return slirp4netnsFailed(h)
	case <-ctx.Done():
		return fmt.Errorf("waiting for slirp4netns: %w", ctx.Err())
	case <-time.After(helperTimeout):
		return fmt.Errorf("slirp4netns was not ready after %v:\n%s", helperTimeout, h.out.String())
	}
}

// slirp4netnsFailed explains an early exit of slirp4netns. The binary's
// features are probed only then, with rootlesskit's DetectFeatures (which
// runs "slirp4netns --help"), to keep that exec off every start.
func slirp4netnsFailed(h *helper) error {
	if err := checkSlirp4netnsFeatures(); err != nil {
		return err
	}
	return h.exitError()
}

func checkSlirp4netnsFeatures() error {
	feat, err := rkslirp.DetectFeatures(ModeSlirp4netns)
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
	deadline := time.Now().Add(helperTimeout)
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
			return fmt.Errorf("the uid/gid maps of sandbox process %d were not written within %v", pid, helperTimeout)
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
