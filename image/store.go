// Package image is rbox's image store: a thin layer over
// containers/storage (layers, images, names) and go-containerregistry
// (registries, docker-archive and OCI archives).
//
// Every Store method must run as root inside a user namespace whose maps
// are the caller's (uid 0 = the caller, 1..N = its subordinate ids), so
// that a file owned by uid 1000 in an image is written to disk owned by the
// caller's subordinate uid and shows as 1000 inside the sandbox. The
// rbox-image executable re-executes itself into such a namespace
// (internal/nsexec) before opening the store.
//
// The layout under the storage root (a containers/storage graph root, so
// --storage-root may point at podman's store):
//
//	overlay/, overlay-layers/, overlay-images/   containers/storage
//	rbox/write.lock      held by every writing rbox operation
//	rbox/inuse/ID.lock   share-locked by each sandbox running image ID
//	rbox/pending/OP.json layers an unfinished operation may have created
//	rbox/tmp/OP/         downloads and extracted archives of operation OP
package image

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/rbox-dev/rbox/imagerun"
	"github.com/rbox-dev/rbox/internal/nsexec"
	"github.com/sirupsen/logrus"
	"go.podman.io/storage"
	"go.podman.io/storage/pkg/unshare"
)

// ImageConfig is the part of the image config a run uses.
type ImageConfig = imagerun.Config

// Errors callers may test for.
var (
	ErrUnknownImage = errors.New("image not known")
	ErrInUse        = errors.New("image is in use by a running sandbox")
	// ErrBadInput marks archives, tarballs and registry content rbox
	// refuses: corrupt, truncated, unsafe or of an unsupported type.
	ErrBadInput = errors.New("bad image input")
)

// Options says where the store is.
type Options struct {
	// Root is the containers/storage graph root; empty means
	// imagerun.DefaultStorageRoot().
	Root string
	// RunRoot holds containers/storage's run-time state; empty means
	// $XDG_RUNTIME_DIR/rbox/storage-run, or a per-user directory in
	// os.TempDir().
	RunRoot string
	// Progress receives progress reports; nil means none.
	Progress Progress
}

// Store is an open image store.
type Store struct {
	root    string
	rboxDir string
	s       storage.Store
	prog    Progress
}

var envOnce sync.Once

// prepareEnv tells containers/storage that it runs rootless in a user
// namespace: it then writes user.overlay.* xattrs and mounts with
// userxattr, which is what the sandbox's overlay mounts read.
func prepareEnv() error {
	if !nsexec.InUserNS() || os.Getuid() != 0 {
		return errors.New("the image store must be opened as root inside a user namespace (run through rbox-image)")
	}
	envOnce.Do(func() {
		os.Setenv(unshare.UsernsEnvName, "1")
		if uid := outerUID(); uid >= 0 {
			os.Setenv("_CONTAINERS_ROOTLESS_UID", strconv.Itoa(uid))
		}
		logrus.SetLevel(logrus.ErrorLevel)
		if os.Getenv("RBOX_DEBUG") != "" {
			logrus.SetLevel(logrus.DebugLevel)
		}
	})
	return nil
}

// outerUID is the host uid that uid 0 here maps to.
func outerUID() int {
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == "0" {
			n, err := strconv.Atoi(f[1])
			if err == nil {
				return n
			}
		}
	}
	return -1
}

func defaultRunRoot() (string, error) {
	if d := os.Getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(d) {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			return filepath.Join(d, "rbox", "storage-run"), nil
		}
	}
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("rbox-storage-run-%d", outerUID()))
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return "", err
	}
	// Refuse a directory someone else made for us.
	st, err := os.Lstat(dir)
	if err != nil {
		return "", err
	}
	if !st.IsDir() || st.Mode().Perm()&0o077 != 0 || ownerUID(st) != 0 {
		return "", fmt.Errorf("%s is not a private directory of this user", dir)
	}
	return dir, nil
}

// Open opens (creating if needed) the store.
func Open(opts Options) (*Store, error) {
	if err := prepareEnv(); err != nil {
		return nil, err
	}
	root := opts.Root
	if root == "" {
		root = imagerun.DefaultStorageRoot()
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	runRoot := opts.RunRoot
	if runRoot == "" {
		if runRoot, err = defaultRunRoot(); err != nil {
			return nil, err
		}
	}
	for _, d := range []string{root, runRoot} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("image store: %w", err)
		}
	}
	rboxDir := filepath.Join(root, "rbox")
	for _, d := range []string{"inuse", "pending", "tmp"} {
		if err := os.MkdirAll(filepath.Join(rboxDir, d), 0o700); err != nil {
			return nil, fmt.Errorf("image store: %w", err)
		}
	}
	var driverOpts []string
	if !nsexec.FullMapping() {
		// Only the caller is mapped (no subordinate ids): like podman,
		// store every file as the caller's rather than fail.
		driverOpts = []string{"overlay.ignore_chown_errors=true", "vfs.ignore_chown_errors=true"}
	}
	s, err := storage.GetStore(storage.StoreOptions{
		RunRoot:   runRoot,
		GraphRoot: root,
		// An existing store keeps its driver (podman's may be vfs); a new
		// one uses overlay, whose layer directories the sandbox stacks.
		GraphDriverPriority: []string{"overlay", "vfs"},
		GraphDriverOptions:  driverOpts,
	})
	if err != nil {
		return nil, fmt.Errorf("open image store %s: %w", root, err)
	}
	prog := opts.Progress
	if prog == nil {
		prog = nopProgress{}
	}
	return &Store{root: root, rboxDir: rboxDir, s: s, prog: prog}, nil
}

// Root is the store's graph root.
func (st *Store) Root() string { return st.root }

// Driver is the containers/storage graph driver of the store.
func (st *Store) Driver() string { return st.s.GraphDriverName() }

// Close releases the store.
func (st *Store) Close() error {
	_, err := st.s.Shutdown(false)
	return err
}

// badInput wraps err as ErrBadInput with a message.
func badInput(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadInput, fmt.Sprintf(format, args...))
}

// countingReader counts bytes and reports them to a progress bar.
type countingReader struct {
	r    io.Reader
	n    int64
	prog Progress
	id   string
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if n > 0 && c.prog != nil {
		c.prog.Add(c.id, int64(n))
	}
	return n, err
}
