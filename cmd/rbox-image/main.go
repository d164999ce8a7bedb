// Command rbox-image manages rbox's image store. It is installed next to
// rbox, which runs it for `rbox image ...` and to resolve `--image`; it is a
// separate executable because containers/storage and go-containerregistry
// cost milliseconds of package initialisation that rbox's plain start-up
// must not pay.
//
// It re-executes itself as root in a user namespace with the caller's
// subordinate ids before touching the store, unless it already runs so.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/alecthomas/kong"
	"go.podman.io/storage/pkg/reexec"

	"github.com/rbox-dev/rbox/image"
	"github.com/rbox-dev/rbox/imagerun"
	"github.com/rbox-dev/rbox/internal/nsexec"
)

// exitFailed is rbox's exit code for its own failures (like podman's 125).
const exitFailed = 125

// CLI is the image command line (as `rbox image ...`).
type CLI struct {
	StorageRoot string `help:"Image store (a containers/storage graph root; podman's works too)." placeholder:"DIR" env:"RBOX_STORAGE_ROOT"`

	Import  ImportCmd  `cmd:"" help:"Store a root filesystem tarball (plain or compressed) as a one-layer image."`
	Load    LoadCmd    `cmd:"" help:"Store the images of a docker-archive or OCI archive."`
	Pull    PullCmd    `cmd:"" help:"Fetch an image from a registry."`
	Ls      LsCmd      `cmd:"" aliases:"list" help:"List stored images."`
	Rm      RmCmd      `cmd:"" aliases:"remove" help:"Remove images (refused while a sandbox runs one)."`
	Resolve ResolveCmd `cmd:"" hidden:"" help:"Resolve an image for a run (internal)."`
}

// ImportCmd is `image import`.
type ImportCmd struct {
	Tarball string `arg:"" help:"Root filesystem tarball, or - for standard input."`
	Name    string `arg:"" help:"Name of the new image."`
}

// LoadCmd is `image load`.
type LoadCmd struct {
	Archive string `arg:"" help:"docker-archive or OCI archive (maybe compressed)."`
	Name    string `arg:"" optional:"" help:"Name for the archive's only image."`
}

// PullCmd is `image pull`.
type PullCmd struct {
	Ref      string `arg:"" help:"Image reference, e.g. docker.io/library/alpine:3.20."`
	Insecure bool   `help:"Allow plain HTTP and unverified TLS."`
}

// LsCmd is `image ls`.
type LsCmd struct {
	JSON  bool `help:"Print JSON: {schema_version: 1, images: [...]}."`
	Quiet bool `short:"q" help:"Print image IDs only."`
}

// RmCmd is `image rm`.
type RmCmd struct {
	Names []string `arg:"" help:"Image names or IDs."`
}

// ResolveCmd is the run path's entry.
type ResolveCmd struct {
	Name string `arg:""`
}

func main() {
	if reexec.Init() {
		return // a containers/storage helper ran (storage-untar, ...)
	}
	os.Exit(run())
}

func run() int {
	var cli CLI
	parser, err := kong.New(&cli, kong.Name("rbox image"),
		kong.Description("Manage rbox's image store."), kong.UsageOnError())
	if err != nil {
		fmt.Fprintln(os.Stderr, "rbox image:", err)
		return exitFailed
	}
	ctx, err := parser.Parse(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "rbox image:", err)
		return exitFailed
	}
	// Enter a user namespace with the sandbox's maps (package userns) unless
	// already root in one (rbox started us there, or we run nested).
	in, err := nsexec.Child()
	if err != nil {
		fmt.Fprintln(os.Stderr, "rbox image:", err)
		return exitFailed
	}
	if !in && !(nsexec.InUserNS() && os.Getuid() == 0) {
		var extra []*os.File
		if v := os.Getenv(imagerun.EnvLockFD); v != "" {
			fd, err := strconv.Atoi(v)
			if err != nil {
				fmt.Fprintln(os.Stderr, "rbox image: bad", imagerun.EnvLockFD)
				return exitFailed
			}
			extra = append(extra, os.NewFile(uintptr(fd), "lock-sock"))
			os.Setenv(imagerun.EnvLockFD, "3")
		}
		code, err := nsexec.Reexec(0, extra...)
		if err != nil {
			fmt.Fprintln(os.Stderr, "rbox image: enter a user namespace:", err)
		}
		return code
	}
	if err := ctx.Run(&cli); err != nil {
		fmt.Fprintln(os.Stderr, "rbox image:", err)
		return exitFailed
	}
	return 0
}

func (c *CLI) open(progress bool) (*image.Store, error) {
	opts := image.Options{Root: c.StorageRoot}
	if progress {
		opts.Progress = image.NewProgress(os.Stderr)
	}
	return image.Open(opts)
}

// Run imports.
func (cmd *ImportCmd) Run(cli *CLI) error {
	st, err := cli.open(true)
	if err != nil {
		return err
	}
	defer st.Close()
	info, err := st.Import(cmd.Tarball, cmd.Name)
	if err != nil {
		return err
	}
	fmt.Println(info.ID)
	return nil
}

// Run loads.
func (cmd *LoadCmd) Run(cli *CLI) error {
	st, err := cli.open(true)
	if err != nil {
		return err
	}
	defer st.Close()
	infos, err := st.Load(cmd.Archive, cmd.Name)
	for _, i := range infos {
		fmt.Printf("Loaded %s %s\n", i.ID[:12], strings.Join(i.Names, " "))
	}
	return err
}

// Run pulls; SIGINT and SIGTERM cancel the download.
func (cmd *PullCmd) Run(cli *CLI) error {
	st, err := cli.open(true)
	if err != nil {
		return err
	}
	defer st.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	info, err := st.Pull(cmd.Ref, image.PullOptions{Insecure: cmd.Insecure, Context: ctx})
	if err != nil {
		return err
	}
	fmt.Println(info.ID)
	return nil
}

// Run lists.
func (cmd *LsCmd) Run(cli *CLI) error {
	st, err := cli.open(false)
	if err != nil {
		return err
	}
	defer st.Close()
	imgs, err := st.List()
	if err != nil {
		return err
	}
	switch {
	case cmd.JSON:
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if imgs == nil {
			imgs = []image.Info{}
		}
		return enc.Encode(struct {
			SchemaVersion int          `json:"schema_version"`
			Images        []image.Info `json:"images"`
		}{1, imgs})
	case cmd.Quiet:
		for _, i := range imgs {
			fmt.Println(i.ID[:12])
		}
		return nil
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tIMAGE ID\tCREATED\tSIZE")
	for _, i := range imgs {
		names := i.Names
		if len(names) == 0 {
			names = []string{"<none>"}
		}
		for _, n := range names {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", n, i.ID[:12], i.Created.Local().Format(time.DateTime), image.HumanSize(i.Size))
		}
	}
	return tw.Flush()
}

// Run removes.
func (cmd *RmCmd) Run(cli *CLI) error {
	st, err := cli.open(false)
	if err != nil {
		return err
	}
	defer st.Close()
	var errs []error
	for _, n := range cmd.Names {
		if err := st.Remove(n); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Println("Removed", n) // untagged, or deleted with its last name
	}
	return errors.Join(errs...)
}

// Run resolves and hands the in-use lock to the caller over the socket
// named by RBOX_IMAGE_LOCK_FD.
func (cmd *ResolveCmd) Run(cli *CLI) error {
	v := os.Getenv(imagerun.EnvLockFD)
	fd, err := strconv.Atoi(v)
	if err != nil {
		return fmt.Errorf("resolve needs %s", imagerun.EnvLockFD)
	}
	sock := os.NewFile(uintptr(fd), "lock-sock")
	st, err := cli.open(false)
	if err != nil {
		return err
	}
	defer st.Close()
	gen := imagerun.Generation(st.Root())
	res, lock, err := st.ResolveLocked(cmd.Name)
	if err != nil {
		return err
	}
	defer lock.Close()
	// The next run of this name may skip rbox-image (best effort).
	_ = imagerun.SaveCache(st.Root(), cmd.Name, gen, res)
	if err := imagerun.SendFile(sock, lock); err != nil {
		return fmt.Errorf("hand over the in-use lock: %w", err)
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}
