package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/rbox-dev/rbox/console"
	"github.com/rbox-dev/rbox/spec"
	"github.com/rbox-dev/rbox/tier"
)

// isolationFlags choose the isolation tier (see docs/tiers.md).
type isolationFlags struct {
	Isolation string `default:"auto" enum:"auto,full,landlock" placeholder:"auto|full|landlock" help:"Isolation tier: full (namespaces), landlock (no namespaces: the command runs as you under Landlock and seccomp), or auto (full where the host allows it, degraded where it refuses a namespace beside the user one or a fresh /proc, else landlock; announced on stderr)."`
}

// runTier picks the tier. For the landlock tier it runs the command and
// returns done; for the full and degraded tiers the caller goes on.
func (r *RunCmd) runTier() (done bool, err error) {
	// What the run shares anyway is no loss where the host refuses it.
	shared, _ := parseShare(r.Share) // (its mistakes are reported with the Spec)
	if r.Net == spec.NetHost {
		shared = append(shared, spec.NSNet)
	}
	choice, err := tier.Choose(r.Tiers.Isolation, shared)
	if err != nil {
		return true, fmt.Errorf("--isolation %s: %v", r.Tiers.Isolation, err)
	}
	switch choice.Tier {
	case tier.Full:
		return false, nil
	case tier.Degraded:
		err := r.degrade(choice)
		return err != nil, err
	}
	o, err := r.landlockOptions(choice)
	if err != nil {
		return true, err
	}
	if err := keepCallerFDs(r.PreserveF); err != nil {
		return true, err
	}
	box, warning, err := r.landlockLimits(&o)
	if err != nil {
		return true, err
	}
	fmt.Fprintf(os.Stderr, "rbox: %s\n", tier.Describe(choice, o.AllowNet))
	if warning != "" {
		fmt.Fprintf(os.Stderr, "rbox: warning: %s\n", warning)
	}
	return true, exitError{box.Finish(tier.Run(o))}
}

// landlockOptions turns the command line into a landlock-tier run, and
// refuses in one line what the tier cannot do: it has no namespaces, so
// nothing can be mounted, renamed or shown under another path.
func (r *RunCmd) landlockOptions(c tier.Choice) (tier.Options, error) {
	var o tier.Options
	why := "the landlock tier has no namespaces"
	if c.Blocker != nil {
		why = fmt.Sprintf("the landlock tier (chosen because %v) has no namespaces", c.Blocker)
	}
	refuse := func(what, fix string) error {
		return fmt.Errorf("%s: %s, so it cannot be done; %s", what, why, fix)
	}
	if len(r.Command) == 0 {
		return o, fmt.Errorf("missing command: give one after --, e.g. rbox -- sh")
	}
	st := r.Storage
	switch {
	case st.Image != "" || st.RootFS != "" || st.Overlay || st.OverlayDir != "":
		return o, refuse("--image, --rootfs and --overlay", "run on a host where the full tier works (see rbox check)")
	case r.Hostname != "":
		return o, refuse("--hostname", "drop it")
	case r.TimeOffset != "":
		return o, refuse("--time-offset", "drop it")
	case r.UID != nil && *r.UID != uint32(os.Getuid()) || r.GID != nil && *r.GID != uint32(os.Getgid()):
		return o, refuse("--uid and --gid", "the command runs as you: drop them")
	case len(r.CapAdd) > 0:
		return o, refuse("--cap-add", "the command holds no capability: drop it")
	case len(r.Publish) > 0 || r.HostLoop || r.DNS != "":
		return o, refuse("-p, --allow-host-loopback and --dns", "use --net host")
	case len(r.Egress.AllowNet) > 0:
		return o, refuse("--allow-net", "use --net host (the host's whole network) or --net none")
	case r.Named.Name != "" || r.Named.Detach || r.Named.Rm:
		return o, refuse("--name, -d and --rm", "run it attached and unnamed")
	}
	switch r.Net {
	case spec.NetNone, "":
	case spec.NetHost:
		o.AllowNet = true
	default:
		return o, refuse("--net "+r.Net, "use --net host (the host's network) or --net none")
	}
	mounts, err := resolveSources(mountOrder)
	if err != nil {
		return o, err
	}
	for _, m := range mounts {
		switch m.Kind {
		case spec.MountBind, spec.MountROBind:
			if m.Dest != m.Source {
				return o, fmt.Errorf("--%s %s:%s: the landlock tier shows each path where it is on the host (it cannot mount), so DST must be SRC: use --%s %s:%s",
					m.Kind, m.Source, m.Dest, m.Kind, m.Source, m.Source)
			}
			if m.Kind == spec.MountBind {
				o.ReadWrite = append(o.ReadWrite, m.Source)
			} else {
				o.ReadOnly = append(o.ReadOnly, m.Source)
			}
		default:
			return o, refuse("--"+string(m.Kind)+" "+m.Dest, "use a --bind of a host directory")
		}
	}
	if o.Cwd, err = r.workDir(mounts); err != nil {
		return o, err
	}
	if !filepath.IsAbs(o.Cwd) {
		o.Cwd = "/"
	}
	o.Args = r.Command
	o.Env = buildEnv(os.Environ(), r.ClearEnv, r.UnsetEnv, r.Env)
	for _, kv := range r.Env {
		if !strings.Contains(kv, "=") || strings.HasPrefix(kv, "=") {
			return o, fmt.Errorf("--env %q: expected K=V", kv)
		}
	}
	if r.PreserveF < 0 {
		return o, fmt.Errorf("--preserve-fds %d: must be 0 or more", r.PreserveF)
	}
	for i := 0; i < r.PreserveF; i++ {
		if _, err := os.Stat(fmt.Sprintf("/proc/self/fd/%d", 3+i)); err != nil {
			return o, fmt.Errorf("--preserve-fds %d: fd %d is not open", r.PreserveF, 3+i)
		}
	}
	o.PreserveFDs = r.PreserveF
	// As in the full tier: a terminal of its own when stdin is the
	// caller's terminal, unless rbox runs in the background there.
	o.TTY = r.TTY || console.IsTerminal(os.Stdin) && console.IsForeground(os.Stdin)
	if o.Seccomp, err = r.seccompFilter(nil); err != nil {
		return o, err
	}
	return o, nil
}

// degraded is what the degraded tier changes in a run: the namespaces
// shared because the host refuses them, and what stands in for them (see
// tier.Compensation).
type degraded struct {
	share        []string
	compensation *spec.Compensation
}

// degrade refuses in one line what needs a refused namespace, prints the
// tier line, and keeps what buildSpec applies to the Spec.
func (r *RunCmd) degrade(c tier.Choice) error {
	d := &degraded{}
	for _, ref := range c.Refused {
		if ref.What == tier.Proc {
			continue
		}
		refuse := func(what string) error {
			return fmt.Errorf("%s needs a namespace this host refuses: %v; run without it, or see docs/tiers.md for how to get the full tier", what, ref)
		}
		switch ref.What {
		case spec.NSNet:
			switch {
			case r.Net != spec.NetNone && r.Net != "":
				return refuse("--net " + r.Net)
			case len(r.Publish) > 0:
				return refuse("-p/--publish")
			case len(r.Egress.AllowNet) > 0:
				return refuse("--allow-net")
			case r.DNS != "":
				return refuse("--dns")
			}
		case spec.NSUTS:
			if r.Hostname != "" {
				return refuse("--hostname")
			}
		case spec.NSTime:
			if r.TimeOffset != "" {
				return refuse("--time-offset")
			}
		}
		d.share = append(d.share, ref.What)
	}
	var missing []string
	var err error
	if d.compensation, missing, err = tier.Compensation(c.Refused); err != nil {
		return err
	}
	r.degraded = d
	fmt.Fprintf(os.Stderr, "rbox: %s\n", tier.DescribeDegraded(c, d.compensation, missing))
	return nil
}

// applyDegraded shares what the host refuses and gives the payload the
// degraded tier's compensation. A shared network namespace is the host's
// network: rbox ps and the rest say host, not none.
func (r *RunCmd) applyDegraded(s *spec.Spec) {
	if r.degraded == nil {
		return
	}
	for _, ns := range r.degraded.share {
		if !s.Shares(ns) {
			s.Share = append(s.Share, ns)
		}
		if ns == spec.NSNet && s.Net == spec.NetNone {
			s.Net = spec.NetHost
		}
	}
	s.Compensation = r.degraded.compensation
}

// tierName is the tier a run of the namespaces' kind is in, as rbox ps
// shows it.
func (r *RunCmd) tierName() string {
	if r.degraded != nil {
		return tier.Degraded
	}
	return tier.Full
}
