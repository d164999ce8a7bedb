package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/rbox-dev/rbox/enter"
	"github.com/rbox-dev/rbox/network/bridge"
	"github.com/rbox-dev/rbox/network/ports"
	"github.com/rbox-dev/rbox/spec"
	"github.com/rbox-dev/rbox/state"
	"github.com/rbox-dev/rbox/userns"
)

// NetworkCmd manages sandbox networks (package network/bridge).
type NetworkCmd struct {
	Create NetworkCreateCmd `cmd:"" help:"Create a network: sandboxes run with --net NAME reach each other by name."`
	Ls     NetworkLsCmd     `cmd:"" help:"List your networks, their subnets and the sandboxes on them."`
	Rm     NetworkRmCmd     `cmd:"" help:"End and remove networks (refused while sandboxes are on them)."`
}

// NetworkCreateCmd is `rbox network create`.
type NetworkCreateCmd struct {
	Subnet string `placeholder:"CIDR" help:"IPv4 subnet (default: the first free 10.89.N.0/24)."`
	IPv6   bool   `name:"ipv6" help:"Give the network an IPv6 unique local /64 too: sandboxes get an address on it and their names resolve AAAA (inside the network only: no IPv6 route out)."`
	Name   string `arg:"" help:"The network's name."`
}

// Run creates the network.
func (c *NetworkCreateCmd) Run() error {
	if err := bridge.ValidName(c.Name); err != nil {
		return err
	}
	root, err := bridge.Root()
	if err != nil {
		return err
	}
	p, err := bridge.FreeSubnet(root)
	if c.Subnet != "" {
		if p, err = bridge.ParseSubnet(c.Subnet); err == nil {
			if other := bridge.Overlapping(root, p); other != "" && other != c.Name {
				err = fmt.Errorf("invalid subnet %s: it overlaps network %s's", c.Subnet, other)
			}
		}
	}
	if err != nil {
		return err
	}
	err = bridge.Create(root, c.Name, p, c.IPv6)
	if errors.Is(err, bridge.ErrExists) {
		return fmt.Errorf("network %s exists: pick another name, or rbox network rm %s first", c.Name, c.Name)
	}
	if err != nil {
		return fmt.Errorf("network %s: %v", c.Name, err)
	}
	// The network's user namespace got the maps a sandbox would: say so
	// when that is only the caller's own id.
	if caller, err := currentCaller(); err == nil {
		if plan, err := userns.NewPlan(caller, 0, 0); err == nil && plan.Warning != "" {
			fmt.Fprintf(os.Stderr, "rbox: warning: %s\n", plan.Warning)
		}
	}
	fmt.Println(c.Name)
	return nil
}

// NetworkLsCmd is `rbox network ls`.
type NetworkLsCmd struct {
	JSON bool `name:"json" help:"Print JSON."`
}

type networkListing struct {
	Name    string `json:"name"`
	Subnet  string `json:"subnet"`
	Subnet6 string `json:"subnet6,omitempty"`
	Gateway string `json:"gateway"`
	Running bool   `json:"running"`
	Holder  int    `json:"holder_pid,omitempty"`
	// Broken says why a running network no longer reaches the outside;
	// HelperRestarts counts its slirp4netns's restarts.
	Broken         string   `json:"broken,omitempty"`
	HelperRestarts int      `json:"helper_restarts,omitempty"`
	Users          []string `json:"sandboxes"`
	// Links are the interfaces on the bridge: one veth end per sandbox.
	Links []string `json:"links"`
}

// Run lists the networks.
func (c *NetworkLsCmd) Run() error {
	root, err := bridge.Root()
	if err != nil {
		return err
	}
	names, err := bridge.Names(root)
	if err != nil {
		return err
	}
	out := []networkListing{}
	for _, name := range names {
		n, err := bridge.Read(root, name)
		if err != nil {
			continue
		}
		l := networkListing{Name: name, Subnet: n.Subnet, Subnet6: n.Subnet6, Gateway: n.Gateway, Users: []string{}, Links: []string{}, Broken: n.Broken, HelperRestarts: n.HelperRestarts}
		if l.Running = bridge.Running(root, name); l.Running {
			l.Holder = n.Holder.PID
			if users, links, err := bridge.UsersAndLinks(root, name); err == nil {
				l.Users = append(l.Users, users...)
				l.Links = append(l.Links, links...)
			}
		}
		out = append(out, l)
	}
	if c.JSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tSUBNET\tSTATUS\tHOLDER\tSANDBOXES")
	for _, l := range out {
		status, holder := "dead (rbox network rm it)", "-"
		if l.Running {
			status, holder = "running", fmt.Sprint(l.Holder)
			if l.Broken != "" {
				status = fmt.Sprintf("broken: %s (rbox network rm %s, then create it again)", l.Broken, l.Name)
			}
		}
		subnets := l.Subnet
		if l.Subnet6 != "" {
			subnets += "," + l.Subnet6
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", l.Name, subnets, status, holder, strings.Join(l.Users, ","))
	}
	return w.Flush()
}

// NetworkRmCmd is `rbox network rm`.
type NetworkRmCmd struct {
	Names []string `arg:"" help:"The networks to remove."`
}

// Run removes the networks.
func (c *NetworkRmCmd) Run() error {
	root, err := bridge.Root()
	if err != nil {
		return err
	}
	var failed []string
	for _, name := range c.Names {
		if err := bridge.Remove(root, name); errors.Is(err, bridge.ErrNotFound) {
			failed = append(failed, fmt.Sprintf("no network named %s (see rbox network ls)", name))
		} else if err != nil {
			failed = append(failed, err.Error())
		}
	}
	if len(failed) > 0 {
		return errors.New(strings.Join(failed, "; "))
	}
	return nil
}

// bridgeNet resolves --net NAME for an rbox network: the sandbox gets no
// network of rbox's (NetNone) and its nameserver is the network's gateway;
// applyBridge puts it in the network's user namespace.
func (r *RunCmd) bridgeNet() error {
	switch r.Net {
	case "", spec.NetHost, spec.NetNone, spec.NetUser, spec.NetPasta, spec.NetSlirp4netns:
		return nil
	}
	if strings.HasPrefix(r.Net, netSandboxPrefix) {
		return nil
	}
	if err := bridge.ValidName(r.Net); err != nil {
		return fmt.Errorf("--net %s: not a mode (host, none, user, pasta, slirp4netns, sandbox:NAME) nor a network name", r.Net)
	}
	root, err := bridge.LookupRoot()
	var n *bridge.Network
	if err == nil {
		n, err = bridge.Read(root, r.Net)
	}
	if errors.Is(err, bridge.ErrNotFound) {
		return fmt.Errorf("--net %s: unknown network mode, and no network of that name (modes: none, user, pasta, slirp4netns, host, sandbox:NAME; or rbox network create %s)", r.Net, r.Net)
	}
	if err != nil {
		return fmt.Errorf("--net %s: %v", r.Net, err)
	}
	if !bridge.Running(root, r.Net) || !(state.Proc{PID: n.Holder.PID, StartTime: n.Holder.StartTime}).Alive() {
		return fmt.Errorf("--net %s: the network is not running (rbox network rm %s, then create it again)", r.Net, r.Net)
	}
	if n.Broken != "" {
		return fmt.Errorf("--net %s: the network is broken: %s (rbox network rm %s, then create it again)", r.Net, n.Broken, r.Net)
	}
	if r.HostLoop {
		return fmt.Errorf("--net %s: --allow-host-loopback needs --net user", r.Net)
	}
	var publish []spec.Port
	for _, raw := range r.Publish {
		p, err := ports.Parse(raw)
		if err != nil {
			return fmt.Errorf("invalid -p/--publish %w", err)
		}
		publish = append(publish, p)
	}
	if err := ports.Check(publish); err != nil {
		return err
	}
	if len(r.Egress.AllowNet) > 0 && len(publish) > 0 {
		return fmt.Errorf("-p/--publish cannot be combined with --allow-net yet")
	}
	if contains(r.Share, spec.NSNet) {
		return fmt.Errorf("--net %s needs a new network namespace: drop net from --share", r.Net)
	}
	if contains(r.Share, spec.NSUser) {
		return fmt.Errorf("--net %s makes the sandbox in the network's user namespace: drop user from --share", r.Net)
	}
	name := r.Named.Name
	if name == "" {
		name = r.Hostname
	}
	r.bridge = &spec.Bridge{Network: r.Net, Root: root, Holder: spec.Process{PID: n.Holder.PID, StartTime: n.Holder.StartTime}, Name: name, Publish: publish}
	r.Net, r.Publish = spec.NetNone, nil
	if len(r.Egress.AllowNet) > 0 {
		// applyEgress takes it from here: rbox's proxies and DNS.
		return nil
	}
	if r.DNS == "" {
		r.DNS = n.Gateway
	}
	return nil
}

// applyBridge gives s the network's id maps, which its holder's user
// namespace already has, in place of plan's.
func (r *RunCmd) applyBridge(s *spec.Spec, plan *userns.Plan) error {
	if r.bridge == nil {
		return nil
	}
	uidMap, gidMap, denied, err := enter.Maps(r.bridge.Holder.PID)
	if err != nil {
		return fmt.Errorf("--net %s: %v", r.bridge.Network, err)
	}
	s.Bridge = r.bridge
	if s.UIDMap, err = parseIDMap(uidMap); err == nil {
		s.GIDMap, err = parseIDMap(gidMap)
	}
	if err != nil {
		return fmt.Errorf("--net %s: %v", r.bridge.Network, err)
	}
	plan.UIDMap, plan.GIDMap, plan.SetgroupsDenied, plan.Warning = s.UIDMap, s.GIDMap, denied, ""
	if !mapped(s.UIDMap, s.UID) || !mapped(s.GIDMap, s.GID) {
		return fmt.Errorf("--net %s: %d:%d is not mapped in the network's user namespace", r.bridge.Network, s.UID, s.GID)
	}
	return nil
}

// networkSupervisorMain runs a network's supervisor (re-executed rbox).
func networkSupervisorMain(dir string) {
	bridge.SupervisorMain(dir, func() (*userns.Plan, error) {
		caller, err := currentCaller()
		if err != nil {
			return nil, err
		}
		return userns.NewPlan(caller, 0, 0)
	})
}
