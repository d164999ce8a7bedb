package image

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/rbox-dev/rbox/imagerun"
	"github.com/rbox-dev/rbox/internal/imagetest"
	"github.com/rbox-dev/rbox/internal/nsexec"
	"github.com/rbox-dev/rbox/overlay"
	"go.podman.io/storage/pkg/reexec"
	"golang.org/x/sys/unix"
)

// The whole test binary re-executes itself as root in a user namespace
// with the caller's subordinate ids (as rbox-image does), so the store is
// used exactly as in production, as root or as an unprivileged user.

const envHelper = "RBOX_IMAGE_TEST_HELPER"

func TestMain(m *testing.M) {
	if reexec.Init() {
		return // a containers/storage helper (storage-untar, ...) ran
	}
	in, err := nsexec.Child()
	if err != nil {
		fmt.Fprintln(os.Stderr, "user namespace:", err)
		os.Exit(125)
	}
	if !in && !(nsexec.InUserNS() && os.Getuid() == 0) {
		code, err := nsexec.Reexec(0)
		if err != nil {
			fmt.Fprintln(os.Stderr, "re-exec in a user namespace:", err)
		}
		os.Exit(code)
	}
	if h := os.Getenv(envHelper); h != "" {
		if err := helper(h, os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// helper runs in a child process of the test (same namespaces).
func helper(what string, args []string) error {
	st, err := Open(Options{Root: args[0]})
	if err != nil {
		return err
	}
	switch what {
	case "hold":
		_, release, err := st.Resolve(args[1])
		if err != nil {
			return err
		}
		defer release()
		fmt.Println("ready")
		time.Sleep(time.Hour)
	case "pull":
		_, err := st.Pull(args[1], PullOptions{})
		return err
	case "import-crash":
		crashHook = func(stage string) {
			if stage == "layer-written" {
				fmt.Println("crashing")
				os.Exit(137)
			}
		}
		_, err := st.Import(args[1], "crash")
		return err
	}
	return fmt.Errorf("unknown helper %q", what)
}

func startHelper(t *testing.T, what string, args ...string) (*exec.Cmd, io.Reader) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), envHelper+"="+what)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, out
}

func waitLine(t *testing.T, r io.Reader, want string) {
	t.Helper()
	buf := make([]byte, len(want)+1)
	if _, err := io.ReadFull(r, buf); err != nil || string(buf) != want+"\n" {
		t.Fatalf("helper said %q (%v), want %q", buf, err, want)
	}
}

func openStore(t *testing.T, root string) *Store {
	t.Helper()
	st, err := Open(Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newStore(t *testing.T) *Store {
	return openStore(t, filepath.Join(t.TempDir(), "storage"))
}

// startRegistry serves go-containerregistry's in-memory registry on
// 127.0.0.1, optionally behind a wrapper.
func startRegistry(t *testing.T, wrap func(http.Handler) http.Handler) string {
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func push(t *testing.T, ref string, img v1.Image) {
	t.Helper()
	if err := remote.Write(mustRef(t, ref), img); err != nil {
		t.Fatal(err)
	}
}

// mountImage resolves name and mounts it with driver d on a scratch upper.
func mountImage(t *testing.T, st *Store, n string, d overlay.Driver) (*imagerun.Resolved, string, func()) {
	t.Helper()
	res, release, err := st.Resolve(n)
	if err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	upper, work, err := overlay.Scratch(filepath.Join(base, "scratch"), 0)
	if err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(base, "root")
	os.Mkdir(target, 0o755)
	cleanup, err := overlay.Mount(d, res.Layers, upper, work, target)
	if err != nil {
		release()
		t.Fatal(err)
	}
	return res, target, func() {
		cleanup()
		unix.Unmount(filepath.Join(base, "scratch"), unix.MNT_DETACH)
		release()
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func wantAbsent(t *testing.T, p string) {
	t.Helper()
	if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s should not exist (%v)", p, err)
	}
}

func wantOwner(t *testing.T, p string, uid, gid uint32) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != uid || st.Gid != gid {
		t.Errorf("%s owned by %d:%d inside, want %d:%d", p, st.Uid, st.Gid, uid, gid)
	}
}

// runIn runs the image's command in the mounted root the way a sandbox
// would: chroot, image Env, WorkingDir and User.
func runIn(t *testing.T, root string, cfg imagerun.Config) string {
	t.Helper()
	argv := cfg.Argv(nil)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = cfg.Env
	cmd.Dir = cfg.WorkingDir
	var uid, gid uint32
	fmt.Sscanf(cfg.User, "%d:%d", &uid, &gid)
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root, Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("run %v in the image: %v: %s", argv, err, out)
	}
	return string(out)
}

// checkTestImage checks the two-layer test image stored as n.
func checkTestImage(t *testing.T, st *Store, n string, d overlay.Driver) {
	t.Helper()
	res, root, done := mountImage(t, st, n, d)
	defer done()
	if len(res.Layers) != 2 {
		t.Errorf("layers %v, want 2", res.Layers)
	}
	p := func(s string) string { return filepath.Join(root, s) }
	if got := readFile(t, p("home/user/file")); got != "hello" {
		t.Errorf("home/user/file = %q", got)
	}
	wantOwner(t, p("home/user/file"), owner(), owner())
	wantOwner(t, p("home/user"), owner(), owner())
	wantOwner(t, p("etc/passwd"), 0, 0)
	wantAbsent(t, p("etc/base-only"))
	wantAbsent(t, p("opq/old"))
	if got := readFile(t, p("opq/new")); got != "new" {
		t.Errorf("opq/new = %q", got)
	}
	c := res.Config
	if c.WorkingDir != "/home/user" || c.User != "1000:1000" || strings.Join(c.Env, " ") != "PATH=/bin GREETING=hi" {
		t.Errorf("config %+v", c)
	}
	if !nsexec.FullMapping() {
		c.User = "0:0" // uid 1000 does not exist here
	}
	if got := runIn(t, root, c); got != fmt.Sprintf("hi\n%d\n/home/user\n", owner()) {
		t.Errorf("image command printed %q", got)
	}
	// The root is writable and the layers are not touched.
	if err := os.WriteFile(p("home/user/file"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(res.Layers[0], "home/user/file")); got != "hello" {
		t.Errorf("layer changed: %q", got)
	}
}

func TestPullFromRegistry(t *testing.T) {
	reg := startRegistry(t, nil)
	ref := reg + "/test/busybox:1"
	push(t, ref, testImage(t, false))
	st := newStore(t)
	info, err := st.Pull(ref, PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Names) != 1 || info.Names[0] != ref {
		t.Errorf("names %v, want [%s]", info.Names, ref)
	}
	for _, d := range []overlay.Driver{overlay.Native, overlay.Fuse, overlay.VFS} {
		t.Run(string(d), func(t *testing.T) { checkTestImage(t, st, ref, d) })
	}
	// A second pull stores nothing new.
	if _, err := st.Pull(ref, PullOptions{}); err != nil {
		t.Fatal(err)
	}
	imgs, _ := st.List()
	if len(imgs) != 1 {
		t.Errorf("%d images after pulling twice", len(imgs))
	}
}

func TestPullOCIIndex(t *testing.T) {
	reg := startRegistry(t, nil)
	ref := reg + "/test/multi:2"
	img := testImage(t, true)
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}})
	idx = mutate.IndexMediaType(idx, types.OCIImageIndex)
	if err := remote.WriteIndex(mustRef(t, ref), idx); err != nil {
		t.Fatal(err)
	}
	st := newStore(t)
	if _, err := st.Pull(ref, PullOptions{}); err != nil {
		t.Fatal(err)
	}
	checkTestImage(t, st, ref, overlay.Native)
}

func TestPullErrors(t *testing.T) {
	reg := startRegistry(t, nil)
	st := newStore(t)
	before := snapshot(t, st)
	if _, err := st.Pull(reg+"/no/such:1", PullOptions{}); !errors.Is(err, ErrUnknownImage) {
		t.Errorf("unknown image: %v", err)
	}
	// A layer of a media type rbox does not know.
	odd := static.NewLayer([]byte("not a tar"), "application/vnd.example.strange")
	img, err := mutate.AppendLayers(empty.Image, odd)
	if err != nil {
		t.Fatal(err)
	}
	push(t, reg+"/odd/media:1", img)
	_, err = st.Pull(reg+"/odd/media:1", PullOptions{})
	if !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), "unsupported media type") {
		t.Errorf("unsupported media type: %v", err)
	}
	// A layer with a path traversal entry.
	evil, err := mutate.AppendLayers(empty.Image, layerOf(t, tarBytes(t, []entry{file("../../escape", "x")}), types.DockerLayer))
	if err != nil {
		t.Fatal(err)
	}
	push(t, reg+"/evil/img:1", evil)
	if _, err := st.Pull(reg+"/evil/img:1", PullOptions{}); !errors.Is(err, ErrBadInput) {
		t.Errorf("path traversal: %v", err)
	}
	if after := snapshot(t, st); after != before {
		t.Errorf("store changed:\nbefore %s\nafter  %s", before, after)
	}
}

func TestLoadDockerArchive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "image.tar")
	if err := tarball.WriteToFile(path, name.MustParseReference("example.com/test/busybox:2"), testImage(t, false)); err != nil {
		t.Fatal(err)
	}
	st := newStore(t)
	infos, err := st.Load(path, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || strings.Join(infos[0].Names, ",") != "example.com/test/busybox:2" {
		t.Fatalf("loaded %+v", infos)
	}
	checkTestImage(t, st, "example.com/test/busybox:2", overlay.Native)

	// Loading again under another name shares everything.
	infos, err = st.Load(path, "renamed")
	if err != nil {
		t.Fatal(err)
	}
	if !contains(infos[0].Names, "localhost/renamed:latest") {
		t.Errorf("names %v", infos[0].Names)
	}
	checkTestImage(t, st, "renamed", overlay.Fuse)
}

func TestLoadOCIArchive(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "layout")
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(testImage(t, true), layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": "example.com/test/oci:3"})); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "oci.tar")
	imagetest.TarDir(t, dir, path)
	st := newStore(t)
	infos, err := st.Load(path, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || strings.Join(infos[0].Names, ",") != "example.com/test/oci:3" {
		t.Fatalf("loaded %+v", infos)
	}
	checkTestImage(t, st, "example.com/test/oci:3", overlay.Native)
}

func TestImportRootfsTarball(t *testing.T) {
	entries := []entry{dir("./", 0)}
	for _, e := range baseEntries(t) {
		entries = append(entries, imagetest.Prefixed(e, "./"))
	}
	entries = append(entries, owned(dir("./home/user", 0), 1000), owned(file("./home/user/file", "hello"), 1000))
	path := filepath.Join(t.TempDir(), "minirootfs.tar.gz")
	if err := os.WriteFile(path, gzipBytes(t, tarBytes(t, entries)), 0o644); err != nil {
		t.Fatal(err)
	}
	st := newStore(t)
	info, err := st.Import(path, "alpine")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(info.Names, ",") != "localhost/alpine:latest" {
		t.Errorf("names %v", info.Names)
	}
	res, root, done := mountImage(t, st, "alpine", overlay.Native)
	defer done()
	if len(res.Layers) != 1 {
		t.Errorf("layers %v", res.Layers)
	}
	wantOwner(t, filepath.Join(root, "home/user/file"), owner(), owner())
	if got := readFile(t, filepath.Join(root, "etc/base-only")); got != "deleted above" {
		t.Errorf("etc/base-only = %q", got)
	}
	cfg := res.Config
	cfg.Cmd = []string{"/bin/sh", "-c", "cat /home/user/file; id -u"}
	cfg.User, cfg.WorkingDir = "0:0", "/"
	if got := runIn(t, root, cfg); got != "hello0\n" {
		t.Errorf("got %q", got)
	}
	if !strings.HasPrefix(strings.Join(res.Config.Env, " "), "PATH=") {
		t.Errorf("imported image env %v", res.Config.Env)
	}
}

// snapshot describes the store's images, layers and files.
func snapshot(t *testing.T, st *Store) string {
	t.Helper()
	var parts []string
	imgs, err := st.s.Images()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range imgs {
		parts = append(parts, "image "+i.ID+" "+strings.Join(i.Names, ","))
	}
	layers, err := st.s.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		parts = append(parts, "layer "+l.ID)
	}
	for _, d := range []string{"overlay", "rbox/pending", "rbox/tmp"} {
		ents, _ := os.ReadDir(filepath.Join(st.root, d))
		for _, e := range ents {
			// l/ holds short links, tempdirs/ deferred deletions.
			if d == "overlay" && (e.Name() == "l" || e.Name() == "tempdirs") {
				continue
			}
			parts = append(parts, d+"/"+e.Name())
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

func TestBadTarballsRejected(t *testing.T) {
	st := newStore(t)
	// A good image first, so "unchanged" means something.
	good := filepath.Join(t.TempDir(), "good.tar")
	os.WriteFile(good, tarBytes(t, baseEntries(t)), 0o644)
	if _, err := st.Import(good, "good"); err != nil {
		t.Fatal(err)
	}
	valid := gzipBytes(t, tarBytes(t, baseEntries(t)))
	flipped := append([]byte{}, valid...)
	for i := len(flipped) / 2; i < len(flipped)/2+64; i++ {
		flipped[i] ^= 0x55
	}
	cases := map[string][]byte{
		"dotdot":           tarBytes(t, []entry{dir("a", 0), file("a/../../escape", "x")}),
		"absolute":         tarBytes(t, []entry{file("/etc/evil", "x")}),
		"through-symlink":  tarBytes(t, []entry{symlink("link", "/"), dir("link/etc", 0), file("link/etc/evil", "x")}),
		"symlink-to-dir":   tarBytes(t, []entry{symlink("up", "../../.."), file("up/evil", "x")}),
		"hardlink-out":     tarBytes(t, []entry{hardlink("h", "../../etc/passwd")}),
		"hardlink-abs":     tarBytes(t, []entry{hardlink("h", "/etc/passwd")}),
		"hardlink-missing": tarBytes(t, []entry{hardlink("h", "nothere")}),
		"hardlink-via-sym": tarBytes(t, []entry{symlink("s", "/etc"), hardlink("h", "s/passwd")}),
		"truncated-gzip":   valid[:len(valid)*2/3],
		"truncated-tar":    tarBytes(t, baseEntries(t))[:700000],
		"corrupt-gzip":     flipped,
		"garbage":          bytes.Repeat([]byte("not a tarball "), 100),
		"empty":            {},
	}
	before := snapshot(t, st)
	for n, b := range cases {
		t.Run(n, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), n+".tar")
			os.WriteFile(p, b, 0o644)
			_, err := st.Import(p, "bad-"+n)
			if !errors.Is(err, ErrBadInput) {
				t.Fatalf("import accepted or failed oddly: %v", err)
			}
			t.Logf("%s: %v", n, err)
			if after := snapshot(t, st); after != before {
				t.Errorf("store changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

func TestBadArchivesRejected(t *testing.T) {
	st := newStore(t)
	before := snapshot(t, st)
	tmp := t.TempDir()

	// docker-archive whose second layer escapes.
	evil, err := mutate.AppendLayers(empty.Image, layerOf(t, tarBytes(t, baseEntries(t)), types.DockerLayer),
		layerOf(t, tarBytes(t, []entry{symlink("x", "/"), file("x/evil", "e")}), types.DockerLayer))
	if err != nil {
		t.Fatal(err)
	}
	dockerEvil := filepath.Join(tmp, "evil-docker.tar")
	if err := tarball.WriteToFile(dockerEvil, name.MustParseReference("evil:1"), evil); err != nil {
		t.Fatal(err)
	}
	// OCI archive with a layer of an unknown media type.
	odd, _ := mutate.AppendLayers(empty.Image, static.NewLayer(tarBytes(t, baseEntries(t)), "application/vnd.example.layer"))
	odd = mutate.MediaType(odd, types.OCIManifestSchema1)
	oddDir := filepath.Join(tmp, "odd")
	lp, err := layout.Write(oddDir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(odd); err != nil {
		t.Fatal(err)
	}
	ociOdd := filepath.Join(tmp, "odd-oci.tar")
	imagetest.TarDir(t, oddDir, ociOdd)
	// OCI archive carrying a symlink entry.
	symDir := filepath.Join(tmp, "sym")
	slp, err := layout.Write(symDir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := slp.AppendImage(testImage(t, true)); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(symDir, "blobs", "evil")); err != nil {
		t.Fatal(err)
	}
	ociSym := filepath.Join(tmp, "sym-oci.tar")
	imagetest.TarDir(t, symDir, ociSym)
	// docker-archive whose config lies about a layer's content.
	good := testImage(t, false)
	cf, _ := good.ConfigFile()
	cf = cf.DeepCopy()
	cf.RootFS.DiffIDs[1] = cf.RootFS.DiffIDs[0]
	lying, err := mutate.ConfigFile(good, cf)
	if err != nil {
		t.Fatal(err)
	}
	dockerLying := filepath.Join(tmp, "lying.tar")
	if err := tarball.WriteToFile(dockerLying, name.MustParseReference("lying:1"), lying); err != nil {
		t.Fatal(err)
	}
	// A truncated docker-archive.
	full := filepath.Join(tmp, "full.tar")
	if err := tarball.WriteToFile(full, name.MustParseReference("full:1"), good); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(full)
	truncated := filepath.Join(tmp, "truncated.tar")
	os.WriteFile(truncated, b[:len(b)/2], 0o644)
	notArchive := filepath.Join(tmp, "plain.tar")
	os.WriteFile(notArchive, tarBytes(t, baseEntries(t)), 0o644)

	for n, p := range map[string]string{"docker-escape": dockerEvil, "oci-media-type": ociOdd, "oci-symlink": ociSym,
		"docker-diffid": dockerLying, "truncated": truncated, "rootfs-not-image": notArchive} {
		t.Run(n, func(t *testing.T) {
			_, err := st.Load(p, "")
			if !errors.Is(err, ErrBadInput) {
				t.Fatalf("load accepted or failed oddly: %v", err)
			}
			t.Logf("%s: %v", n, err)
			if after := snapshot(t, st); after != before {
				t.Errorf("store changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

func TestRemoveRefusedWhileInUse(t *testing.T) {
	root := filepath.Join(t.TempDir(), "storage")
	st := openStore(t, root)
	path := filepath.Join(t.TempDir(), "image.tar")
	if err := tarball.WriteToFile(path, name.MustParseReference("example.com/inuse:1"), testImage(t, false)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Load(path, ""); err != nil {
		t.Fatal(err)
	}
	// Two sandboxes run from the image at once.
	var cmds []*exec.Cmd
	for i := 0; i < 2; i++ {
		cmd, out := startHelper(t, "hold", root, "example.com/inuse:1")
		waitLine(t, out, "ready")
		cmds = append(cmds, cmd)
	}
	err := st.Remove("example.com/inuse:1")
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("remove while in use: %v", err)
	}
	// One sandbox dies (kill -9: the lock must go with it); the other
	// still holds the image.
	cmds[0].Process.Kill()
	cmds[0].Wait()
	if err := st.Remove("example.com/inuse:1"); !errors.Is(err, ErrInUse) {
		t.Fatalf("remove while still in use: %v", err)
	}
	cmds[1].Process.Kill()
	cmds[1].Wait()
	if err := st.Remove("example.com/inuse:1"); err != nil {
		t.Fatalf("remove after the sandboxes ended: %v", err)
	}
	if _, _, err := st.Resolve("example.com/inuse:1"); !errors.Is(err, ErrUnknownImage) {
		t.Errorf("resolve after remove: %v", err)
	}
	layers, _ := st.s.Layers()
	if len(layers) != 0 {
		t.Errorf("%d layers left after removing the only image", len(layers))
	}
	if err := st.Remove("example.com/inuse:1"); !errors.Is(err, ErrUnknownImage) {
		t.Errorf("remove unknown: %v", err)
	}
}

func TestConcurrentSandboxesOwnUppers(t *testing.T) {
	st := newStore(t)
	path := filepath.Join(t.TempDir(), "image.tar")
	tarball.WriteToFile(path, name.MustParseReference("example.com/two:1"), testImage(t, false))
	if _, err := st.Load(path, ""); err != nil {
		t.Fatal(err)
	}
	_, a, doneA := mountImage(t, st, "example.com/two:1", overlay.Native)
	defer doneA()
	_, b, doneB := mountImage(t, st, "example.com/two:1", overlay.Fuse)
	defer doneB()
	os.WriteFile(filepath.Join(a, "tmp/a"), []byte("a"), 0o644)
	os.WriteFile(filepath.Join(b, "tmp/b"), []byte("b"), 0o644)
	os.Remove(filepath.Join(a, "home/user/file"))
	wantAbsent(t, filepath.Join(b, "tmp/a"))
	wantAbsent(t, filepath.Join(a, "tmp/b"))
	if got := readFile(t, filepath.Join(b, "home/user/file")); got != "hello" {
		t.Errorf("b sees a's delete: %q", got)
	}
}

func TestReplacedImageIsPruned(t *testing.T) {
	st := newStore(t)
	dir := t.TempDir()
	one, two := filepath.Join(dir, "1.tar"), filepath.Join(dir, "2.tar")
	os.WriteFile(one, tarBytes(t, []entry{file("v", "1")}), 0o644)
	os.WriteFile(two, tarBytes(t, []entry{file("v", "2")}), 0o644)
	first, err := st.Import(one, "app")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Import(two, "app"); err != nil {
		t.Fatal(err)
	}
	imgs, _ := st.List()
	if len(imgs) != 1 || imgs[0].ID == first.ID {
		t.Errorf("images after re-import: %+v", imgs)
	}
}

func TestInterruptedPullLeavesStoreConsistent(t *testing.T) {
	img := testImage(t, false)
	layers, _ := img.Layers()
	big, _ := layers[0].Digest()
	var mu sync.Mutex
	stall := true
	hit := make(chan struct{}, 1)
	reg := startRegistry(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			s := stall
			mu.Unlock()
			if s && r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+big.String()) {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, r)
				body := rec.Body.Bytes()
				w.Header().Set("Content-Length", fmt.Sprint(len(body)))
				w.WriteHeader(http.StatusOK)
				w.Write(body[:len(body)/2])
				w.(http.Flusher).Flush()
				hit <- struct{}{}
				<-r.Context().Done()
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	ref := reg + "/test/slow:1"
	push(t, ref, img)
	root := filepath.Join(t.TempDir(), "storage")
	st := openStore(t, root)
	before := snapshot(t, st)

	cmd, _ := startHelper(t, "pull", root, ref)
	select {
	case <-hit:
	case <-time.After(60 * time.Second):
		t.Fatal("pull never reached the stalled blob")
	}
	time.Sleep(100 * time.Millisecond)
	cmd.Process.Kill() // kill -9 in the middle of the download
	cmd.Wait()

	if _, _, err := st.Resolve(ref); !errors.Is(err, ErrUnknownImage) {
		t.Errorf("half-pulled image resolves: %v", err)
	}
	mu.Lock()
	stall = false
	mu.Unlock()
	if _, err := st.Pull(ref, PullOptions{}); err != nil {
		t.Fatalf("pull after the interrupted one: %v", err)
	}
	checkTestImage(t, st, ref, overlay.Native)
	if err := st.Remove(ref); err != nil {
		t.Fatal(err)
	}
	// Run a write operation so leftovers are cleaned, then compare.
	if err := st.Remove("nothing"); !errors.Is(err, ErrUnknownImage) {
		t.Fatal(err)
	}
	if after := snapshot(t, st); after != before {
		t.Errorf("store not back to empty:\nbefore %s\nafter  %s", before, after)
	}
}

func TestCrashWhileWritingLayers(t *testing.T) {
	root := filepath.Join(t.TempDir(), "storage")
	st := openStore(t, root)
	before := snapshot(t, st)
	p := filepath.Join(t.TempDir(), "rootfs.tar")
	os.WriteFile(p, tarBytes(t, baseEntries(t)), 0o644)
	cmd, out := startHelper(t, "import-crash", root, p)
	waitLine(t, out, "crashing")
	cmd.Wait()
	// The layer was written but no image refers to it: the next write
	// operation removes it.
	if err := st.Remove("nothing"); !errors.Is(err, ErrUnknownImage) {
		t.Fatal(err)
	}
	if after := snapshot(t, st); after != before {
		t.Errorf("store not cleaned after a crash:\nbefore %s\nafter  %s", before, after)
	}
	if _, err := st.Import(p, "after-crash"); err != nil {
		t.Fatal(err)
	}
}

func TestNames(t *testing.T) {
	for in, want := range map[string]string{
		"alpine":             "localhost/alpine:latest",
		"alpine:3.20":        "localhost/alpine:3.20",
		"me/app":             "localhost/me/app:latest",
		"quay.io/x/y":        "quay.io/x/y:latest",
		"127.0.0.1:5000/a:b": "127.0.0.1:5000/a:b",
		"localhost/thing:v1": "localhost/thing:v1",
	} {
		got, err := localName(in)
		if err != nil || got != want {
			t.Errorf("localName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := localName("UPPER"); err == nil {
		t.Error("upper-case repository accepted")
	}
	got := candidates("alpine:3.20")
	if strings.Join(got, " ") != "alpine:3.20 localhost/alpine:3.20 docker.io/library/alpine:3.20" {
		t.Errorf("candidates: %v", got)
	}
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// owner is who files of uid 1000 in an image belong to inside: 1000 when
// the caller has subordinate ids, else the caller (root inside), as the
// store then squashes ownership.
func owner() uint32 {
	if nsexec.FullMapping() {
		return 1000
	}
	return 0
}

// The run path's cache of resolutions: used while nothing changed, its
// lock counts as in use, and any store write invalidates it.
func TestResolveCache(t *testing.T) {
	st := newStore(t)
	p := filepath.Join(t.TempDir(), "r.tar")
	os.WriteFile(p, tarBytes(t, baseEntries(t)), 0o644)
	if _, err := st.Import(p, "cached"); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := imagerun.ResolveCached(st.Root(), "cached"); ok {
		t.Fatal("cache hit before any resolve")
	}
	gen := imagerun.Generation(st.Root())
	res, lock, err := st.ResolveLocked("cached")
	if err != nil {
		t.Fatal(err)
	}
	lock.Close()
	if err := imagerun.SaveCache(st.Root(), "cached", gen, res); err != nil {
		t.Fatal(err)
	}
	got, held, ok := imagerun.ResolveCached(st.Root(), "cached")
	if !ok || got.ID != res.ID || strings.Join(got.Layers, ":") != strings.Join(res.Layers, ":") {
		t.Fatalf("cache miss or wrong answer: %v %+v", ok, got)
	}
	if err := st.Remove("cached"); !errors.Is(err, ErrInUse) {
		t.Fatalf("remove while a cached resolution holds the image: %v", err)
	}
	held.Close()
	if err := st.Remove("cached"); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := imagerun.ResolveCached(st.Root(), "cached"); ok {
		t.Fatal("cache hit after the image was removed")
	}
	// A resolution recorded before a write is stale after it.
	if _, err := st.Import(p, "cached"); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := imagerun.ResolveCached(st.Root(), "cached"); ok {
		t.Fatal("stale cache used")
	}
}

func TestRemoveUntagsAnImageWithOtherNames(t *testing.T) {
	st := newStore(t)
	path := filepath.Join(t.TempDir(), "image.tar")
	if err := tarball.WriteToFile(path, name.MustParseReference("example.com/first:1"), testImage(t, false)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Load(path, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Load(path, "second"); err != nil {
		t.Fatal(err)
	}
	if err := st.Remove("second"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Resolve("second"); !errors.Is(err, ErrUnknownImage) {
		t.Errorf("resolve the removed name: %v", err)
	}
	res, release, err := st.Resolve("example.com/first:1")
	if err != nil {
		t.Fatalf("the other name went with the untagged one: %v", err)
	}
	release()
	if len(res.Layers) == 0 {
		t.Error("no layers left")
	}
	if err := st.Remove("example.com/first:1"); err != nil {
		t.Fatal(err)
	}
	if imgs, _ := st.s.Images(); len(imgs) != 0 {
		t.Errorf("%d images left after removing the last name", len(imgs))
	}
}
