package sandbox

import (
	"fmt"
	"os"
	"os/exec"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/enter"
	"github.com/rbox-dev/rbox/limits"
	"github.com/rbox-dev/rbox/spec"
	"github.com/rbox-dev/rbox/state"
)

// Started, when set, is called with the host pid of the sandbox's pid 1,
// the cgroups holding its processes and its rlimits (none without limits)
// once pid 1 has been let go on to build the sandbox and start the
// command: a named sandbox's supervisor records them then (see
// cmd/rbox/named.go), for rbox exec to give a joining command.
var Started func(pid1 int, cgroups []string, rlimits []spec.Rlimit)

func notifyStarted(pid1 int, box *limits.Box) {
	if Started != nil {
		Started(pid1, box.ProcsDirs(), box.Rlimits())
	}
}

// startInit starts pid 1: as a child in new namespaces, or, for a sandbox that
// shares another's network, inside that one's user and network namespaces
// (package enter), as cmd would have started it otherwise.
func startInit(cmd *exec.Cmd, s *spec.Spec) error {
	if s.JoinNet == nil && s.Bridge == nil {
		return cmd.Start()
	}
	joined, flags, what := s.JoinNet, cloneFlags(s)&^(unix.CLONE_NEWUSER|unix.CLONE_NEWNET), "the sandbox to share the network of"
	if s.Bridge != nil {
		// A network namespace of its own, owned by the network's user
		// namespace, for the holder to plug into the bridge.
		joined, flags, what = &s.Bridge.Holder, cloneFlags(s)&^unix.CLONE_NEWUSER, "network "+s.Bridge.Network
	}
	target, err := state.Proc{PID: joined.PID, StartTime: joined.StartTime}.PidFD()
	if err != nil {
		return fmt.Errorf("%s has ended: %w", what, err)
	}
	req := &enter.InitRequest{Target: target, Path: cmd.Path, Args: cmd.Args, Flags: flags}
	for _, f := range cmd.ExtraFiles {
		req.Files = append(req.Files, int(f.Fd()))
	}
	pid, err := enter.StartInit(req)
	unix.Close(target)
	if err != nil {
		return err
	}
	cmd.Process, err = os.FindProcess(pid)
	return err
}
