package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/bwrapcli"
	"github.com/rbox-dev/rbox/contract"
	"github.com/rbox-dev/rbox/forkinit"
	"github.com/rbox-dev/rbox/sandbox"
	"github.com/rbox-dev/rbox/spec"
	"github.com/rbox-dev/rbox/userns"
)

// BwrapCmd is `rbox bwrap`: bubblewrap's command line with bwrap's meaning
// (see docs/bwrap.md). main hands it over before kong parses anything, as
// bwrap's options are not kong's; this entry is for --help.
type BwrapCmd struct {
	Args []string `arg:"" optional:"" passthrough:"" help:"bwrap(1) options, then the command (see docs/bwrap.md)."`
}

// Run runs the bwrap command line.
func (c *BwrapCmd) Run() error { return exitError{bwrapMain(c.Args)} }

// isBwrapCall reports whether argv asks for bwrap's command line: rbox run
// through a link named bwrap, or `rbox bwrap ...`. It returns the bwrap
// arguments.
func isBwrapCall(argv []string) ([]string, bool) {
	name := argv[0]
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	if name == "bwrap" {
		return argv[1:], true
	}
	if len(argv) > 1 && argv[1] == "bwrap" {
		return argv[2:], true
	}
	return nil, false
}

// bwrapMain runs one bwrap command line and returns the exit code, bwrap's:
// 1 for a mistake or a failed setup, else the command's.
func bwrapMain(argv []string) int {
	levelPrefix := false
	for _, a := range argv {
		if a == "--" {
			break
		}
		levelPrefix = levelPrefix || a == "--level-prefix"
	}
	say := func(msg string) int {
		if levelPrefix {
			msg = "<3>bwrap: " + msg
		} else {
			msg = "bwrap: " + msg
		}
		fmt.Fprintln(os.Stderr, msg)
		return 1
	}
	// The caller's descriptors from 3 up reach the command, as bwrap
	// leaves them open across its exec.
	preserve := openFDsFrom3()
	cwd, err := os.Getwd()
	if err != nil {
		cwd = "/"
	}
	r, err := bwrapcli.Parse(argv, os.Environ(), cwd)
	var usage *bwrapcli.UsageError
	switch {
	case errors.As(err, &usage) && usage.Msg == "No command specified":
		fmt.Fprint(os.Stderr, bwrapcli.Usage)
		return 1
	case err != nil:
		return say(err.Error())
	case r.Help:
		fmt.Print(bwrapcli.Usage)
		return 0
	case r.ShowVersion:
		fmt.Printf("bubblewrap %s (rbox %s)\n", bwrapcli.Version, version)
		return 0
	}
	// What bwrap read is closed; /dev/null takes the numbers in the
	// range the command gets, which must have no hole.
	for _, fd := range r.Consumed {
		if fd < 3+preserve {
			if null, err := unix.Open("/dev/null", unix.O_RDWR, 0); err == nil {
				_ = unix.Dup3(null, fd, 0)
				unix.Close(null)
			}
		}
	}
	s := r.Spec
	s.PreserveFDs = preserve
	s.UID, s.GID = r.UID, r.GID
	caller, err := currentCaller()
	if err != nil {
		return say(err.Error())
	}
	plan := &userns.Plan{
		UIDMap: []spec.IDMap{{Inside: r.UID, Outside: caller.UID, Count: 1}},
		GIDMap: []spec.IDMap{{Inside: r.GID, Outside: caller.GID, Count: 1}},
		// bwrap denies setgroups(2) in its user namespace, root's too.
		SetgroupsDenied: true,
	}
	if r.MapSubIDs {
		if plan, err = userns.NewPlan(caller, r.UID, r.GID); err != nil {
			return say(err.Error())
		}
		if plan.Warning != "" {
			return say("--rbox-map-subids: " + plan.Warning)
		}
	}
	s.UIDMap, s.GIDMap = plan.UIDMap, plan.GIDMap
	if s.AsPID1 && !forkinit.Eligible(s) {
		// Only the fast path's pid 1 can hand its place to the command.
		return say("--as-pid-1 is not supported by rbox for this sandbox: it needs rbox's fast path, which this run cannot take (see docs/design.md)")
	}
	if r.DieWithParent {
		s.DieWithParent = true
		if err := dieWithParent(); err != nil {
			return say(err.Error())
		}
	}
	if err := keepCallerFDs(preserve); err != nil {
		return say(err.Error())
	}
	rep := &bwrapcli.Reporter{Info: r.InfoFD, JSON: r.JSONStatusFD, Block: r.BlockFD, Spec: s}
	failed := false
	hooks := &sandbox.Hooks{
		Started: rep.Started,
		Failed: func(msg string, code int) int {
			failed = true
			switch code {
			case contract.ExitNotFound:
				msg = fmt.Sprintf("execvp %s: No such file or directory", s.Args[0])
			case contract.ExitCannotExecute:
				msg = fmt.Sprintf("execvp %s: Permission denied", s.Args[0])
			}
			return say(msg)
		},
	}
	code := sandbox.RunHooks(s, plan, hooks)
	if !failed {
		rep.Exited(code)
	}
	return code
}

// openFDsFrom3 counts the descriptors open from 3 upward without a hole.
func openFDsFrom3() int {
	n := 0
	for {
		if _, err := unix.FcntlInt(uintptr(3+n), unix.F_GETFD, 0); err != nil {
			return n
		}
		n++
	}
}

// dieWithParent makes the kernel kill rbox, and so its sandbox (pid 1
// dies with rbox), when rbox's parent dies, even by SIGKILL. It is set on
// the main thread, the one that lives as long as rbox.
func dieWithParent() error {
	ppid := os.Getppid()
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_PDEATHSIG): %w", err)
	}
	if os.Getppid() != ppid {
		// The parent died before the signal was armed.
		return errors.New("the parent process is gone")
	}
	return nil
}
