// Command rbox runs a command in a rootless sandbox.
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/alecthomas/kong"

	"github.com/rbox-dev/rbox/contract"
	"github.com/rbox-dev/rbox/hostcheck"
	"github.com/rbox-dev/rbox/initproc"
	"github.com/rbox-dev/rbox/kernelapi"
	"github.com/rbox-dev/rbox/network/bridge"
	"github.com/rbox-dev/rbox/tier"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Pin the main goroutine to the main thread before anything runs: the
// sandbox's parent-death signal is tied to the thread that starts it, and
// pid 1 applies per-thread limits on this thread.
func init() { initproc.Lock() }

// CLI is rbox's command line. The run command is the default, so
// `rbox [flags] -- cmd` needs no verb.
type CLI struct {
	Run     RunCmd        `cmd:"" default:"withargs" help:"Run a command in a new sandbox (the default command)."`
	Check   CheckCmd      `cmd:"" help:"Try each kernel feature rbox uses and tell how to fix what does not work."`
	Image   ImageCmd      `cmd:"" passthrough:"" help:"Manage the image store: import, load, pull, ls, rm (run by the rbox-image executable)."`
	Bwrap   BwrapCmd      `cmd:"" passthrough:"" help:"Run bubblewrap's command line with bwrap's meaning (also as a link named bwrap; see docs/bwrap.md)."`
	Version VersionCmd    `cmd:"" help:"Print rbox's version."`
	Named   namedCommands `embed:""`
	Network NetworkCmd    `cmd:"" help:"Manage sandbox networks: create, ls, rm (run sandboxes on one with --net NAME)."`

	conventions `embed:""`
}

// VersionCmd prints the version.
type VersionCmd struct{}

// Run prints the version.
func (VersionCmd) Run() error {
	fmt.Println("rbox", version)
	return nil
}

// exitError carries an exit code out of a command.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

func main() {
	if (len(os.Args) == 2 || len(os.Args) == 3) && os.Args[0] == contract.Arg0 {
		initproc.Main(os.Args[1:])
	}
	if len(os.Args) == 2 && os.Args[0] == tier.Arg0 {
		tier.Main(os.Args[1:])
	}
	if len(os.Args) == 2 && os.Args[0] == hostcheck.ProbeArg0 {
		hostcheck.ProbeMain(os.Args[1])
	}
	if len(os.Args) == 2 && os.Args[0] == bridge.SupervisorArg0 {
		networkSupervisorMain(os.Args[1])
	}
	if len(os.Args) == 2 && os.Args[0] == bridge.HolderArg0 {
		bridge.HolderMain(os.Args[1])
	}
	if args, ok := isBwrapCall(os.Args); ok {
		os.Exit(bwrapMain(args))
	}
	recordCaller()
	os.Exit(runCLI(os.Args[1:]))
}

func runCLI(args []string) int {
	var cli CLI
	parser, err := newParser(&cli, args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "rbox: %v\n", err)
		return contract.ExitSetupFailed
	}
	code := 0
	func() {
		defer func() {
			if r := recover(); r != nil {
				e, ok := r.(exitError)
				if !ok {
					panic(r)
				}
				code = e.code
			}
		}()
		args, err := spliceArgsFD(args)
		if err != nil {
			code = usageError(err)
			return
		}
		if h, ok := helpArgs(args); ok {
			args = h
		} else if c, ok := mistypedCommand(args, commandNames(parser.Model.Node)); ok {
			fmt.Fprintf(os.Stderr, "rbox: unknown command %q: did you mean %q? (to run a program named %s in a sandbox: rbox -- %s)\n", args[0], c, args[0], args[0])
			code = contract.ExitSetupFailed
			return
		}
		ctx, err := parser.Parse(runAfterDashes(parser, args))
		if err != nil {
			code = usageError(err)
			return
		}
		err = ctx.Run()
		var ee exitError
		switch {
		case errors.As(err, &ee):
			code = ee.code
		case err != nil:
			fmt.Fprintf(os.Stderr, "rbox: %v\n", err)
			code = contract.ExitSetupFailed
		}
	}()
	return code
}

// newParser is rbox's command line, reading the config file's defaults and
// the profile args name.
func newParser(cli *CLI, args []string) (*kong.Kong, error) {
	mountOrder = nil
	return kong.New(cli,
		kong.Name("rbox"),
		kong.Description("Run a command as root in a rootless sandbox.\n\n"+
			"rbox [run] [FLAGS] [--] COMMAND [ARG...] runs COMMAND as root in new user, mount, pid, net, uts, ipc, cgroup and time namespaces, as an ordinary user: the host's system directories read-only, an empty $HOME, only the paths you give, no network unless asked. "+
			"rbox help COMMAND describes a command; docs/reference.md describes every flag."),
		kong.UsageOnError(),
		kong.Exit(func(code int) { panic(exitError{code}) }),
		kong.Vars{"version": "rbox " + version},
		kong.Resolvers(configResolver(args)),
	)
}

// usageError reports a command-line mistake in one line, with exit 125.
func usageError(err error) int {
	msg := err.Error()
	for _, id := range []string{"--uid", "--gid"} {
		if strings.HasPrefix(msg, id+":") {
			msg = id + ": not an id: give a number from 0 to 4294967294"
		}
	}
	if strings.Contains(msg, "expected") && strings.Contains(msg, "<command>") {
		msg = "missing command: give one after --, e.g. rbox -- sh"
	}
	fmt.Fprintf(os.Stderr, "rbox: %s (see rbox --help)\n", msg)
	return contract.ExitSetupFailed
}

// keepCallerFDs marks every fd from 3+keep on close-on-exec, so nothing the
// caller left open reaches the sandbox.
func keepCallerFDs(keep int) error {
	return kernelapi.CloexecFrom(3 + keep)
}
