package limits

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/spec"
)

// Box is one sandbox's limits, from before pid 1 starts to after it ends.
type Box struct {
	lim  *spec.Limits
	plan *Plan
	// v2 is the sandbox's cgroup v2 leaf ("" for none); v1 maps v1
	// controllers to its leaves.
	v2 string
	v1 map[string]string
	// rlimits go to the payload's process (ForPayload).
	rlimits []spec.Rlimit

	// clonedInto says pid 1 was cloned into the v2 leaf (CloneInto).
	clonedInto bool

	start  time.Time
	before unix.Rusage
}

// Setup makes the sandbox's cgroups for l, with their limits written, and
// works out its rlimits. A nil l, or one asking for nothing, costs
// nothing. On error nothing is left behind.
func Setup(l *spec.Limits) (*Box, error) {
	if !l.Any() {
		return nil, nil
	}
	return setup(Detect(), l)
}

func setup(h *Host, l *spec.Limits) (*Box, error) {
	b := &Box{lim: l, plan: Choose(h, l), v1: map[string]string{}, start: time.Now()}
	name := leafName(os.Getpid())
	if d := b.plan.V2Dir; d != "" {
		sweep(d)
		for _, c := range b.plan.V2Enable {
			if !contains(readFields(filepath.Join(d, "cgroup.subtree_control")), c) {
				if err := writeFile(d, "cgroup.subtree_control", "+"+c); err != nil {
					return nil, err
				}
			}
		}
		if err := makeLeaf(filepath.Join(d, name), v2Files(l, b.plan)); err != nil {
			return nil, err
		}
		b.v2 = filepath.Join(d, name)
	}
	for _, c := range v1Controllers {
		d := b.plan.V1Dirs[c]
		if d == "" {
			continue
		}
		sweep(d)
		if err := makeLeaf(filepath.Join(d, name), v1Files(c, l, b.plan)); err != nil {
			b.Remove()
			return nil, err
		}
		b.v1[c] = filepath.Join(d, name)
	}
	b.rlimits = rlimits(l, b.plan)
	return b, nil
}

// Plan is how the limits hold here.
func (b *Box) Plan() *Plan { return b.plan }

// ForPayload moves the rlimits into s, whose plan sets them in the
// payload's process.
func (b *Box) ForPayload(s *spec.Spec) {
	if b == nil {
		return
	}
	s.Limits.Rlimits = b.TakeRlimits()
}

// TakeRlimits hands over the rlimits to whatever sets them on the command
// (the payload's plan, the landlock tier's child), once.
func (b *Box) TakeRlimits() []spec.Rlimit {
	if b == nil {
		return nil
	}
	rs := b.rlimits
	b.rlimits = nil
	return rs
}

// ProcsDirs are the cgroups that hold the sandbox's processes on the host,
// one per hierarchy (each leaf's procsDir; nil without a Box): rbox exec
// places a joining command in each.
func (b *Box) ProcsDirs() []string {
	if b == nil {
		return nil
	}
	var dirs []string
	for _, leaf := range b.leaves() {
		dirs = append(dirs, filepath.Join(leaf, procsDir))
	}
	return dirs
}

// Rlimits are all the rlimits the sandbox's processes hold (--ulimit and
// the fallbacks), whoever sets them: rbox exec gives a joining command
// the same.
func (b *Box) Rlimits() []spec.Rlimit {
	if b == nil {
		return nil
	}
	return rlimits(b.lim, b.plan)
}

// CloneInto opens the sandbox's cgroup v2 leaf for clone3's
// CLONE_INTO_CGROUP: pid 1 is then born in it, and its cgroup namespace is
// rooted there. ok is false when there is no v2 leaf; Attach then places
// pid 1 in all the leaves.
func (b *Box) CloneInto() (fd int, ok bool, err error) {
	if b == nil || b.v2 == "" {
		return -1, false, nil
	}
	dir := filepath.Join(b.v2, procsDir)
	fd, err = unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, false, fmt.Errorf("open cgroup %s: %w", dir, err)
	}
	b.clonedInto = true
	return fd, true, nil
}

// Attach places pid 1 in the sandbox's cgroups before it is released to run
// the setup and the command.
func (b *Box) Attach(pid int) error {
	if b == nil {
		return nil
	}
	for _, leaf := range b.leaves() {
		if leaf == b.v2 && b.clonedInto {
			continue
		}
		if err := writeFile(filepath.Join(leaf, procsDir), "cgroup.procs", fmt.Sprint(pid)); err != nil {
			return fmt.Errorf("place the sandbox in its cgroup: %w", err)
		}
	}
	_ = unix.Getrusage(unix.RUSAGE_CHILDREN, &b.before)
	return nil
}

func (b *Box) leaves() []string {
	var l []string
	if b.v2 != "" {
		l = append(l, b.v2)
	}
	for _, c := range v1Controllers {
		if d := b.v1[c]; d != "" {
			l = append(l, d)
		}
	}
	return l
}

// Finish is called once pid 1 has ended with exit code code: it says when
// a limit killed the command, prints or writes the statistics, and removes
// the cgroups. It returns the exit code (changed only if the statistics
// could not be written).
func (b *Box) Finish(code int) int {
	if b == nil {
		return code
	}
	defer b.Remove()
	if msg := b.killedBy(code); msg != "" {
		fmt.Fprintf(os.Stderr, "rbox: %s\n", msg)
	}
	if !b.lim.Stats && b.lim.StatsFile == "" {
		return code
	}
	st := b.stats(code)
	if b.lim.Stats {
		fmt.Fprintf(os.Stderr, "rbox: stats: %s\n", st)
	}
	if b.lim.StatsFile != "" {
		if err := st.WriteFile(b.lim.StatsFile); err != nil {
			fmt.Fprintf(os.Stderr, "rbox: write the statistics: %v\n", err)
			if code == 0 {
				code = 125
			}
		}
	}
	return code
}

// Remove kills what is left in the sandbox's cgroups and removes them.
func (b *Box) Remove() {
	if b == nil {
		return
	}
	for _, leaf := range b.leaves() {
		if err := removeLeaf(leaf); err != nil {
			fmt.Fprintf(os.Stderr, "rbox: %v\n", err)
		}
	}
	b.v2, b.v1 = "", map[string]string{}
}
