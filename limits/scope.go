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
)

// A transient scope from the systemd user manager is the cgroup v2 tier
// for a caller whose own cgroup is not delegated (a login session's scope):
// the manager makes rbox-PID.scope with Delegate=yes, moves rbox into it
// and hands it to the caller. rbox then moves itself into a leaf of its
// own there ("supervisor"), which leaves the scope free of processes, so
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
	sup := filepath.Join(scope, "supervisor")
	if err := mkdir(sup); err != nil {
		return "", fmt.Errorf("create cgroup %s: %w", sup, err)
	}
	if err := writeFile(sup, "cgroup.procs", strconv.Itoa(pid)); err != nil {
		return "", err
	}
	h.V2Own = ownV2Cgroup(cgroupFile)
	return scope, nil
}
