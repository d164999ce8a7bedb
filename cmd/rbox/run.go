package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/alecthomas/kong"

	"github.com/rbox-dev/rbox/caps"
	"github.com/rbox-dev/rbox/console"
	"github.com/rbox-dev/rbox/contract"
	"github.com/rbox-dev/rbox/network"
	"github.com/rbox-dev/rbox/network/ports"
	"github.com/rbox-dev/rbox/sandbox"
	"github.com/rbox-dev/rbox/seccomp"
	"github.com/rbox-dev/rbox/spec"
	"github.com/rbox-dev/rbox/userns"
)

// RunCmd runs a command in a sandbox.
type RunCmd struct {
	Bind    mountFlag `short:"v" aliases:"volume" placeholder:"SRC:DST[:ro]" help:"Bind host path SRC at DST, read-write (read-only with :ro). Repeatable; applied in order with the other mount flags."`
	ROBind  mountFlag `name:"ro-bind" placeholder:"SRC:DST" help:"Bind host path SRC at DST, read-only."`
	Tmpfs   mountFlag `placeholder:"DST[:size=N,mode=M]" help:"Mount a fresh tmpfs at DST."`
	Dir     mountFlag `placeholder:"DST" help:"Create an empty directory at DST."`
	Symlink mountFlag `placeholder:"TARGET:LINK" help:"Create a symlink LINK pointing to TARGET."`
	Chdir   string    `short:"w" placeholder:"DIR" help:"Working directory inside (default: where the caller's cwd is bound, else /)."`

	Share      []string `sep:"," placeholder:"NS" help:"Keep these host namespaces: pid, net, uts, ipc, cgroup, time."`
	Net        string   `default:"none" placeholder:"MODE" help:"Network: none (loopback only), user (outbound through pasta, else slirp4netns), pasta, slirp4netns, host (the host's network namespace), sandbox:NAME (share a running named sandbox's), or the name of an rbox network (see rbox network)."`
	Publish    []string `short:"p" placeholder:"[HOSTIP:][HOSTPORT:]PORT[/tcp|/udp]" help:"Forward the host's HOSTIP:HOSTPORT (default 127.0.0.1) to PORT inside; ranges (8000-8010:8000-8010); without HOSTPORT a free one is chosen and printed. Repeatable; needs a user-mode --net."`
	HostLoop   bool     `name:"allow-host-loopback" help:"Let the sandbox reach the host's loopback services at 10.0.2.2 (user-mode --net only)."`
	DNS        string   `name:"dns" placeholder:"IP" help:"Nameserver for the sandbox's /etc/resolv.conf (default: the helper's forwarder, 10.0.2.3)."`
	Hostname   string   `help:"Host name inside (needs a new uts namespace)."`
	TimeOffset string   `name:"time-offset" placeholder:"monotonic=D,boottime=D" help:"Shift the sandbox's monotonic and boot-time clocks (D: seconds or a Go duration like 1h)."`

	UID *uint32 `name:"uid" help:"Run the command as this uid inside; the caller is mapped to it (default 0)."`
	GID *uint32 `name:"gid" help:"Run the command as this gid inside; the caller's group is mapped to it (default 0)."`

	Env       []string `short:"e" sep:"none" placeholder:"K=V|K" help:"Set an environment variable; K alone passes the caller's K. Repeatable."`
	UnsetEnv  []string `name:"unset-env" sep:"none" placeholder:"K" help:"Remove an environment variable. Repeatable."`
	ClearEnv  bool     `name:"clear-env" help:"Start from an empty environment."`
	PreserveF int      `name:"preserve-fds" placeholder:"N" help:"Pass the caller's fds 3..3+N-1 to the command."`
	TTY       bool     `short:"t" name:"tty" help:"Give the command a pseudo-terminal (automatic when stdin is a terminal)."`

	CapAdd      []string `name:"cap-add" sep:"," placeholder:"CAP" help:"Add capabilities (e.g. NET_RAW, or ALL)."`
	CapDrop     []string `name:"cap-drop" sep:"," placeholder:"CAP" help:"Drop capabilities (e.g. CHOWN, or ALL)."`
	Seccomp     string   `default:"default" placeholder:"default|unconfined|PROFILE.json" help:"System call filter."`
	AllowNested bool     `name:"allow-nested" help:"Let the command create user namespaces (to run rbox or bwrap inside)."`

	Storage storageFlags `embed:""`
	Limits  limitFlags   `embed:""`
	// limitsWarning says which limits hold per process only.
	limitsWarning string
	Bwrap         bwrapFlags     `embed:""`
	Habits        habitFlags     `embed:""`
	HomeDir       homeFlags      `embed:""`
	Egress        egressFlags    `embed:""`
	Named         namedRunFlags  `embed:""`
	Tiers         isolationFlags `embed:""`
	// hold keeps an image's in-use lock for the sandbox's life.
	hold []*os.File
	// joined is the sandbox --net sandbox:NAME shares a network with.
	joined     *spec.Process
	joinedName string
	// bridge is the rbox network --net NAME puts the sandbox on.
	bridge *spec.Bridge
	// degraded is set in the degraded tier.
	degraded *degraded

	Command []string `arg:"" optional:"" passthrough:"" help:"Command and arguments."`
}

// mountFlag decodes one mount flag into mountOrder, so --bind, --tmpfs and
// the rest keep the order they were given in: kong fills each flag's own
// field, which would lose it. The flag's name is its mount kind.
type mountFlag struct{}

// mountOrder collects the mount flags of the one command line rbox parses.
var mountOrder []spec.Mount

// Decode implements kong.MapperValue.
func (mountFlag) Decode(ctx *kong.DecodeContext) error {
	var raw string
	if err := ctx.Scan.PopValueInto("value", &raw); err != nil {
		return err
	}
	kind, optional := strings.CutSuffix(ctx.Value.Name, "-try") // --bind-try, --ro-bind-try
	mnt, err := parseMount(spec.MountKind(kind), raw)
	if err != nil {
		return err
	}
	mnt.Optional = optional
	mountOrder = append(mountOrder, mnt)
	return nil
}

// Run builds the Spec and runs the sandbox.
func (r *RunCmd) Run() error {
	if err := r.takeCommand(); err != nil {
		return err
	}
	if done, err := r.runTier(); done {
		return err
	}
	if r.Named.Name != "" || r.Named.Detach || r.Named.Rm {
		return r.runNamed()
	}
	s, plan, err := r.buildSpec()
	if err != nil {
		return err
	}
	if plan.Warning != "" {
		slog.Warn(plan.Warning)
	}
	if r.limitsWarning != "" {
		fmt.Fprintf(os.Stderr, "rbox: warning: %s\n", r.limitsWarning)
	}
	slog.Debug("sandbox", "args", s.Args, "cwd", s.Cwd, "uid", s.UID, "gid", s.GID, "uid_map", s.UIDMap, "net", s.Net, "mounts", len(s.Mounts))
	if err := keepCallerFDs(r.PreserveF); err != nil {
		return err
	}
	hooks, finish, err := r.Bwrap.apply(s)
	if err != nil {
		return err
	}
	code := sandbox.RunHooks(s, plan, hooks, r.hold...)
	finish(code)
	return exitError{code}
}

// seccompFilter compiles the payload's filter for --seccomp: none for
// unconfined, the default one embedded in rbox, or a profile file compiled
// by the rbox-seccomp helper for a payload given the capabilities caps.
func (r *RunCmd) seccompFilter(caps []string) (*spec.SeccompFilter, error) {
	switch r.Seccomp {
	case "unconfined":
		return nil, nil
	case "default":
		f, err := seccomp.DefaultFilter(seccomp.DefaultOptions{AllowNested: r.AllowNested})
		if err != nil {
			return nil, fmt.Errorf("--seccomp default: %v", err)
		}
		return f, nil
	}
	data, err := os.ReadFile(r.Seccomp)
	if err != nil {
		return nil, fmt.Errorf("--seccomp: %v (give default, unconfined or a profile file)", err)
	}
	f, err := seccomp.Compile(data, caps)
	if err != nil {
		return nil, fmt.Errorf("--seccomp %s: %v", r.Seccomp, err)
	}
	return f, nil
}

func (r *RunCmd) buildSpec() (*spec.Spec, *userns.Plan, error) {
	if len(r.Command) == 0 && r.Storage.Image == "" {
		return nil, nil, fmt.Errorf("missing command: give one after --, e.g. rbox -- sh")
	}
	if err := r.Habits.apply(r); err != nil {
		return nil, nil, err
	}
	if err := r.joinNet(); err != nil {
		return nil, nil, err
	}
	if err := r.bridgeNet(); err != nil {
		return nil, nil, err
	}
	s := &spec.Spec{Args: r.Command, Hostname: r.Hostname, AllowNested: r.AllowNested, PreserveFDs: r.PreserveF}
	share, err := parseShare(r.Share)
	if err != nil {
		return nil, nil, err
	}
	if err := r.applyEgress(s, share); err != nil {
		return nil, nil, err
	}
	if err := r.network(s, share); err != nil {
		return nil, nil, err
	}
	if s.Net == spec.NetHost && !contains(share, spec.NSNet) {
		share = append(share, spec.NSNet)
	}
	s.Share = share
	if r.Hostname != "" {
		if err := checkHostname(r.Hostname); err != nil {
			return nil, nil, err
		}
		if s.Shares(spec.NSUTS) {
			return nil, nil, fmt.Errorf("--hostname needs a new uts namespace: drop uts from --share")
		}
	}
	if s.TimeOffsets, err = parseTimeOffsets(r.TimeOffset); err != nil {
		return nil, nil, err
	}
	if s.TimeOffsets != (spec.TimeOffsets{}) && s.Shares(spec.NSTime) {
		return nil, nil, fmt.Errorf("--time-offset needs a new time namespace: drop time from --share")
	}
	if s.Mounts, err = resolveSources(mountOrder); err != nil {
		return nil, nil, err
	}
	if s.Mounts, err = r.withHome(s.Mounts); err != nil {
		return nil, nil, err
	}
	img, lock, err := r.Storage.applyStorage(s)
	if err != nil {
		return nil, nil, err
	}
	if lock != nil {
		r.hold = append(r.hold, lock)
	}
	if s.Cwd, err = r.workDir(s.Mounts); err != nil {
		return nil, nil, err
	}
	if err := checkRequest(s); err != nil {
		return nil, nil, err
	}
	s.Env = buildEnv(r.Habits.callerEnv(callerEnviron), r.ClearEnv, r.UnsetEnv, r.Env)
	if img != nil {
		// Like podman run: the image's entrypoint, its command unless one
		// is given, its environment (not the caller's), its working
		// directory unless -w or a bind of the caller's cwd says otherwise.
		s.Args = img.Config.Argv(r.Command)
		if len(s.Args) == 0 {
			return nil, nil, fmt.Errorf("--image %s has no command: give one after --", r.Storage.Image)
		}
		uid := img.UID
		if r.UID != nil {
			uid = *r.UID
		}
		s.Env = buildEnv(imageEnv(img.Config, uid), r.ClearEnv, r.UnsetEnv, r.Env)
		if r.Chdir == "" && s.Cwd == "/" && img.Config.WorkingDir != "" {
			s.Cwd = img.Config.WorkingDir
		}
	}
	r.egressEnv(s)
	if r.PreserveF < 0 {
		return nil, nil, fmt.Errorf("--preserve-fds %d: must be 0 or more", r.PreserveF)
	}
	for i := 0; i < r.PreserveF; i++ {
		if !callerFD(3 + i) {
			return nil, nil, fmt.Errorf("--preserve-fds %d: fd %d is not open", r.PreserveF, 3+i)
		}
	}
	if err := checkRelativeCommand(s, r.Chdir); err != nil {
		return nil, nil, err
	}
	if commandIsDir(s) {
		fmt.Fprintf(os.Stderr, "rbox: %s: is a directory\n", s.Args[0])
		return nil, nil, exitError{contract.ExitCannotExecute}
	}
	if s.Caps, err = resolveCaps(r.CapAdd, r.CapDrop); err != nil {
		return nil, nil, err
	}
	if s.SeccompFilter, err = r.seccompFilter(s.Caps); err != nil {
		return nil, nil, err
	}
	if r.limitsWarning, err = r.Limits.applyLimits(s); err != nil {
		return nil, nil, err
	}
	// A terminal of its own when stdin is the caller's terminal, unless rbox
	// runs in the background there: taking the terminal would stop it.
	s.TTY = r.TTY || console.IsTerminal(os.Stdin) && console.IsForeground(os.Stdin)

	if img != nil {
		s.UID, s.GID = img.UID, img.GID
	}
	if r.UID != nil {
		s.UID = *r.UID
	}
	if r.GID != nil {
		s.GID = *r.GID
	}
	caller, err := currentCaller()
	if err != nil {
		return nil, nil, err
	}
	mapUID, mapGID := s.UID, s.GID
	if img != nil {
		// The image was unpacked with the caller as root inside: the map
		// must be that one for its files to keep their owners.
		mapUID, mapGID = 0, 0
	}
	plan, err := userns.NewPlan(caller, mapUID, mapGID)
	if err != nil {
		return nil, nil, err
	}
	if img != nil && (!mapped(plan.UIDMap, s.UID) || !mapped(plan.GIDMap, s.GID)) {
		return nil, nil, fmt.Errorf("--image %s runs as %d:%d, which this sandbox cannot map (%s); pass --uid and --gid",
			r.Storage.Image, s.UID, s.GID, plan.Warning)
	}
	s.UIDMap, s.GIDMap = plan.UIDMap, plan.GIDMap
	if err := r.applyJoinNet(s, plan); err != nil {
		return nil, nil, err
	}
	if err := r.applyBridge(s, plan); err != nil {
		return nil, nil, err
	}
	r.applyDegraded(s)
	chooseOverlayDriver(s, fuseOverlayfsFound)
	if img == nil && s.RootFS == "" {
		s.GeneratedFiles = identityFiles("/etc", s.UID, s.GID, caller.Name, homeDir(s.Env))
	}
	return s, plan, nil
}

// network fills the Spec's network fields: the mode resolved to the helper
// that will run, the published ports parsed and checked free, so that every
// mistake fails here, before anything starts. The rules are the network
// package's; this only names the flags.
func (r *RunCmd) network(s *spec.Spec, share []string) error {
	mode, err := network.Resolve(r.Net)
	if err != nil {
		return fmt.Errorf("--net %s: %w", r.Net, err)
	}
	if contains(share, spec.NSNet) && network.IsUserMode(mode) {
		return fmt.Errorf("--net %s needs a new network namespace: drop net from --share", r.Net)
	}
	o := network.Options{Mode: mode, AllowHostLoopback: r.HostLoop, DNS: r.DNS}
	publish, err := publishSpecs(r.Publish)
	if err != nil {
		return err
	}
	for _, raw := range publish {
		p, err := ports.Parse(raw)
		if err != nil {
			return fmt.Errorf("invalid -p/--publish %w", err)
		}
		o.Publish = append(o.Publish, p)
	}
	switch err := network.Validate(o); {
	case errors.Is(err, network.ErrPublishNeedsUserMode):
		return fmt.Errorf("-p/--publish needs --net user, pasta or slirp4netns (not %s)", mode)
	case errors.Is(err, network.ErrLoopbackNeedsUserMode):
		return fmt.Errorf("--allow-host-loopback needs --net user, pasta or slirp4netns (not %s)", mode)
	case errors.Is(err, network.ErrBadDNS):
		return fmt.Errorf("--dns %q: not an IP address", r.DNS)
	case err != nil:
		return err
	}
	s.Net, s.DNS, s.AllowHostLoopback, s.Publish = mode, r.DNS, r.HostLoop, o.Publish
	return ports.Check(o.Publish)
}

func currentCaller() (userns.Caller, error) {
	c := userns.Caller{UID: uint32(os.Getuid()), GID: uint32(os.Getgid())}
	// The name is needed to find subordinate ranges; a uid without a
	// passwd entry is still matched by number.
	if u, err := user.LookupId(strconv.Itoa(os.Getuid())); err == nil {
		c.Name = u.Username
	} else {
		c.Name = strconv.Itoa(os.Getuid())
	}
	return c, nil
}

// workDir is -w when given; otherwise the DST matching the caller's cwd when
// it lies under a bound SRC (the last such bind wins, as it is on top);
// otherwise /.
func (r *RunCmd) workDir(mounts []spec.Mount) (string, error) {
	if r.Chdir != "" {
		if !filepath.IsAbs(r.Chdir) {
			return "", fmt.Errorf("-w %s: must be an absolute path inside the sandbox", r.Chdir)
		}
		return filepath.Clean(r.Chdir), nil
	}
	cwd, err := os.Getwd()
	if err != nil {
		return "/", nil
	}
	dir := "/"
	for _, m := range mounts {
		if m.Kind != spec.MountBind && m.Kind != spec.MountROBind {
			continue
		}
		if rel, err := filepath.Rel(m.Source, cwd); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
			dir = filepath.Join(m.Dest, rel)
		}
	}
	return dir, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func resolveCaps(add, drop []string) ([]string, error) {
	norm := func(list []string) ([]string, error) {
		out := make([]string, 0, len(list))
		for _, c := range list {
			n, err := caps.Normalize(c)
			if err != nil {
				return nil, err
			}
			out = append(out, n)
		}
		return out, nil
	}
	a, err := norm(add)
	if err != nil {
		return nil, fmt.Errorf("--cap-add: %w", err)
	}
	d, err := norm(drop)
	if err != nil {
		return nil, fmt.Errorf("--cap-drop: %w", err)
	}
	return caps.Resolve(a, d), nil
}

// mapped reports whether inside id has an entry in m.
func mapped(m []spec.IDMap, id uint32) bool {
	for _, e := range m {
		if id >= e.Inside && id-e.Inside < e.Count {
			return true
		}
	}
	return false
}

// withHome puts the --home mount first, so binds under $HOME land on it.
func (r *RunCmd) withHome(mounts []spec.Mount) ([]spec.Mount, error) {
	home := homeDir(buildEnv(r.Habits.callerEnv(callerEnviron), r.ClearEnv, r.UnsetEnv, r.Env))
	uid := uint32(0)
	if r.UID != nil {
		uid = *r.UID
	}
	m, err := r.HomeDir.homeMount(home, mounts, r.Storage.RootFS != "" || r.Storage.Image != "", uid)
	if err != nil || m == nil {
		return mounts, err
	}
	return append([]spec.Mount{*m}, mounts...), nil
}
