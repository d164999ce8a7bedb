package limits

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"

	"github.com/rbox-dev/rbox/spec"
)

// A transient scope from the systemd user manager is the cgroup v2 tier
// for a caller whose own cgroup is not delegated (a login session's scope):
// the manager makes rbox-PID.scope with Delegate=yes, moves rbox into it
// and hands it to the caller. rbox then moves itself into a leaf of its
// own there (rbox-PID.supervisor), which leaves the scope free of processes, so
// the controllers can be enabled for the sandbox's leaf beside it. The
// manager removes the scope, leaves and all, once rbox has exited, also
// when rbox was killed.

// unitStarter is the one call rbox makes to the systemd manager.
type unitStarter interface {
	StartTransientUnitContext(ctx context.Context, name, mode string, props []sdbus.Property, ch chan<- string) (int, error)
	Close()
}

// connectUserManager connects to the caller's systemd user manager over
// its D-Bus session bus; the unit tests put a fake manager here.
var connectUserManager = func(ctx context.Context) (unitStarter, error) {
	return sdbus.NewUserConnectionContext(ctx)
}

// userBusAddress reports whether a session bus is there to ask: rbox does
// not try to connect (and pay for it) on a host without one.
func userBusAddress() bool {
	if os.Getenv("DBUS_SESSION_BUS_ADDRESS") != "" {
		return true
	}
	_, err := os.Stat(filepath.Join("/run/user", strconv.Itoa(os.Getuid()), "bus"))
	return err == nil
}

// scopeProperties are the transient scope's: rbox's own process in it,
// the controllers delegated.
func scopeProperties(pid int) []sdbus.Property {
	return []sdbus.Property{
		sdbus.PropDescription("rbox sandbox of process " + strconv.Itoa(pid)),
		sdbus.PropPids(uint32(pid)),
		{Name: "Delegate", Value: dbus.MakeVariant(true)},
		// Gone as soon as it is empty, even when a job failed.
		{Name: "CollectMode", Value: dbus.MakeVariant("inactive-or-failed")},
	}
}

// requestScope asks the user manager for rbox's scope and moves rbox into
// a leaf of it; it returns the scope's directory.
func (h *Host) requestScope(cgroupFile string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := connectUserManager(ctx)
	if err != nil {
		return "", fmt.Errorf("connect to the systemd user manager: %w", err)
	}
	defer conn.Close()
	pid := os.Getpid()
	done := make(chan string, 1)
	name := "rbox-" + strconv.Itoa(pid) + ".scope"
	if _, err := conn.StartTransientUnitContext(ctx, name, "fail", scopeProperties(pid), done); err != nil {
		return "", fmt.Errorf("start %s: %w", name, err)
	}
	select {
	case res := <-done:
		if res != "done" {
			return "", fmt.Errorf("start %s: job %s", name, res)
		}
	case <-ctx.Done():
		return "", fmt.Errorf("start %s: %w", name, ctx.Err())
	}
	h.V2Own = ownV2Cgroup(cgroupFile)
	scope := filepath.Join(h.V2Mount, h.V2Own)
	if filepath.Base(scope) != name || !ownedDir(scope) {
		return "", fmt.Errorf("%s: rbox is in %s, not in a scope delegated to it", name, h.V2Own)
	}
	if err := h.moveSelfBelow(scope, cgroupFile); err != nil {
		return "", err
	}
	return scope, nil
}

// supervisorName is the leaf rbox moves itself into, below a delegated
// cgroup it was alone in.
func supervisorName(pid int) string { return leafName(pid) + ".supervisor" }

// moveSelfBelow moves rbox into a leaf of its own below dir, which it was
// alone in: dir then holds no process, and the kernel lets controllers be
// enabled in it for the sandbox's leaf.
func (h *Host) moveSelfBelow(dir, cgroupFile string) error {
	pid := os.Getpid()
	sup := filepath.Join(dir, supervisorName(pid))
	if err := mkdir(sup); err != nil {
		return fmt.Errorf("create cgroup %s: %w", sup, err)
	}
	if err := writeFile(sup, "cgroup.procs", strconv.Itoa(pid)); err != nil {
		_ = rmdir(sup)
		return err
	}
	h.V2Own = ownV2Cgroup(cgroupFile)
	return nil
}

// freeOwn makes room for controllers in the caller's own delegated cgroup
// v2 when rbox is alone in it, as when started with systemd-run --user
// --scope -p Delegate=yes rbox ...: a controller a limit needs is
// available there but not enabled, and cannot be while rbox is in it.
func (h *Host) freeOwn(l *spec.Limits, cgroupFile string) error {
	if h.Root || h.V2Own == "" || h.V2Own == "/" {
		return nil
	}
	own := filepath.Join(h.V2Mount, h.V2Own)
	if !ownedDir(own) {
		return nil
	}
	avail, enabled := readFields(filepath.Join(own, "cgroup.controllers")), readFields(filepath.Join(own, "cgroup.subtree_control"))
	blocked := false
	for _, k := range asked(l) {
		c := controller[k]
		blocked = blocked || contains(avail, c) && !contains(enabled, c)
	}
	procs := readFields(filepath.Join(own, "cgroup.procs"))
	if !blocked || len(procs) != 1 || procs[0] != strconv.Itoa(os.Getpid()) {
		return nil
	}
	if err := h.moveSelfBelow(own, cgroupFile); err != nil {
		return err
	}
	h.Scope = own
	return nil
}
