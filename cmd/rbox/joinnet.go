package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/rbox-dev/rbox/enter"
	"github.com/rbox-dev/rbox/spec"
	"github.com/rbox-dev/rbox/state"
	"github.com/rbox-dev/rbox/userns"
)

// netSandboxPrefix is --net's value for sharing a running named sandbox's
// network: --net sandbox:NAME.
const netSandboxPrefix = "sandbox:"

// joinNet resolves --net sandbox:NAME: the sandbox must run; this one is
// then made without a network of its own (the namespace is shared), and
// applyJoinNet puts it in NAME's user and network namespaces.
func (r *RunCmd) joinNet() error {
	name, ok := strings.CutPrefix(r.Net, netSandboxPrefix)
	if !ok {
		return nil
	}
	if err := state.ValidName(name); err != nil {
		return fmt.Errorf("--net %s: %v", r.Net, err)
	}
	if len(r.Publish) > 0 || r.HostLoop || r.DNS != "" || len(r.Egress.AllowNet) > 0 {
		return fmt.Errorf("--net %s: -p, --allow-host-loopback, --dns and --allow-net belong to the sandbox whose network is shared", r.Net)
	}
	if contains(r.Share, spec.NSNet) {
		return fmt.Errorf("--net %s shares %s's network: drop net from --share", r.Net, name)
	}
	if !state.Exists() {
		return fmt.Errorf("--net %s: no sandbox named %q (see rbox ps --all)", r.Net, name)
	}
	store, err := openStore()
	if err != nil {
		return err
	}
	info, err := running(store, name)
	store.Close()
	if err != nil {
		return fmt.Errorf("--net %s: %v", r.Net, err)
	}
	if info.Payload.PID == 0 {
		return fmt.Errorf("--net %s: its command is not known yet: try again", r.Net)
	}
	r.joined = &spec.Process{PID: info.Payload.PID, StartTime: info.Payload.StartTime}
	r.joinedName = name
	r.Net = spec.NetNone
	r.Share = append(r.Share, spec.NSNet)
	return nil
}

// applyJoinNet gives s the joined sandbox's id maps, which are already
// written, in place of plan's.
func (r *RunCmd) applyJoinNet(s *spec.Spec, plan *userns.Plan) error {
	if r.joined == nil {
		return nil
	}
	uidMap, gidMap, denied, err := enter.Maps(r.joined.PID)
	if err != nil {
		return fmt.Errorf("--net sandbox:%s: %v", r.joinedName, err)
	}
	s.JoinNet = r.joined
	if s.UIDMap, err = parseIDMap(uidMap); err == nil {
		s.GIDMap, err = parseIDMap(gidMap)
	}
	if err != nil {
		return fmt.Errorf("--net sandbox:%s: %v", r.joinedName, err)
	}
	plan.UIDMap, plan.GIDMap, plan.SetgroupsDenied, plan.Warning = s.UIDMap, s.GIDMap, denied, ""
	if !mapped(s.UIDMap, s.UID) || !mapped(s.GIDMap, s.GID) {
		return fmt.Errorf("--net sandbox:%s: %d:%d is not mapped in %s's user namespace, which this sandbox joins", r.joinedName, s.UID, s.GID, r.joinedName)
	}
	return nil
}

// parseIDMap reads /proc/PID/uid_map's lines.
func parseIDMap(text string) ([]spec.IDMap, error) {
	var out []spec.IDMap
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			return nil, fmt.Errorf("id map line %q", line)
		}
		var v [3]uint64
		for i := range f {
			n, err := strconv.ParseUint(f[i], 10, 32)
			if err != nil {
				return nil, fmt.Errorf("id map line %q", line)
			}
			v[i] = n
		}
		out = append(out, spec.IDMap{Inside: uint32(v[0]), Outside: uint32(v[1]), Count: uint32(v[2])})
	}
	return out, nil
}
