//go:build integration

package tests

import (
	"archive/tar"
	"bytes"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/rbox-dev/rbox/internal/imagetest"
)

// Images for the tests are built here from the static busybox of
// busybox-static: a base layer, and a second layer that adds files of
// 1000:1000, deletes a base file and makes a directory opaque.

// The layer builders are shared with the image store's unit tests.
type tarEntry = imagetest.Entry

func tDir(n string) tarEntry { return imagetest.Dir(n, 0) }

var (
	tFile   = imagetest.File
	tLink   = imagetest.Symlink
	tOwned  = imagetest.Owned
	tarOf   = imagetest.Tar
	gzipped = imagetest.Gzip
)

// busyboxEntries is a minimal system: busybox, a few applet links, passwd
// with a user 1000, a file and a directory the top layer changes.
func busyboxEntries(t *testing.T) []tarEntry {
	t.Helper()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("busybox-static is needed (scripts/test-setup installs it): %v", err)
	}
	e := []tarEntry{tDir("bin"), imagetest.WithMode(tFile("bin/busybox", string(bb)), 0o755)}
	for _, applet := range []string{"sh", "cat", "id", "ls", "echo", "stat", "touch", "rm", "sleep", "pwd", "env", "mkdir", "test"} {
		e = append(e, tLink("bin/"+applet, "busybox"))
	}
	return append(e,
		tDir("etc"),
		tFile("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n"),
		tFile("etc/group", "root:x:0:\nuser:x:1000:\n"),
		tFile("etc/base-only", "deleted above"),
		tDir("opq"), tFile("opq/old", "hidden above"),
		tDir("home"), tDir("tmp"), tDir("proc"), tDir("sys"), tDir("dev"), tDir("root"),
	)
}

func topEntries() []tarEntry {
	return []tarEntry{
		tOwned(tDir("home/user"), 1000),
		tOwned(tFile("home/user/file", "hello"), 1000),
		tFile("etc/.wh.base-only", ""),
		tDir("opq"), tFile("opq/.wh..wh..opq", ""), tFile("opq/new", "new"),
	}
}

// testImage is the two-layer image with a config rbox must apply.
func testImage(t *testing.T, oci bool) v1.Image {
	t.Helper()
	lt := types.DockerLayer
	if oci {
		lt = types.OCILayer
	}
	layer := func(b []byte) v1.Layer {
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
			tarball.WithMediaType(lt))
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	img, err := mutate.AppendLayers(empty.Image, layer(tarOf(t, busyboxEntries(t))), layer(tarOf(t, topEntries())))
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.Config(img, v1.Config{
		Env:        []string{"PATH=/bin", "GREETING=hi"},
		WorkingDir: "/home/user",
		User:       "user",
		Cmd:        []string{"/bin/sh", "-c", "echo $GREETING; id -u; pwd"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if oci {
		img = mutate.ConfigMediaType(mutate.MediaType(img, types.OCIManifestSchema1), types.OCIConfigJSON)
	}
	return img
}

// testRegistry serves go-containerregistry's registry on 127.0.0.1 and
// returns its host:port.
func testRegistry(t *testing.T) string {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func pushImage(t *testing.T, ref string, img v1.Image) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
}

func dockerArchive(t *testing.T, path, ref string, img v1.Image) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := tarball.WriteToFile(path, r, img); err != nil {
		t.Fatal(err)
	}
}

// ociArchive writes an OCI layout archive naming the image ref.
func ociArchive(t *testing.T, path, ref string, img v1.Image) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "layout")
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": ref})); err != nil {
		t.Fatal(err)
	}
	imagetest.TarDir(t, dir, path)
}

// rootfsDir unpacks the base layer into a directory the caller owns, for
// --rootfs.
func rootfsDir(t *testing.T) string {
	t.Helper()
	dir := hostDir(t)
	tr := tar.NewReader(bytes.NewReader(tarOf(t, busyboxEntries(t))))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, hdr.Name)
		switch hdr.Typeflag {
		case tar.TypeDir:
			os.MkdirAll(p, 0o755)
		case tar.TypeSymlink:
			os.Symlink(hdr.Linkname, p)
		case tar.TypeReg:
			b, _ := io.ReadAll(tr)
			os.WriteFile(p, b, os.FileMode(hdr.Mode))
		}
	}
	return dir
}

// store makes an image store for one test; it is emptied from inside a
// sandbox at the end, as it holds files of subordinate ids.
func store(t *testing.T) string {
	t.Helper()
	dir := hostDir(t)
	t.Cleanup(func() {
		rbox(t, "--bind", dir+":/d", "--", "rm", "-rf", "/d/store")
	})
	return filepath.Join(dir, "store")
}

// image runs `rbox image` on store s.
func image(t *testing.T, s string, args ...string) result {
	t.Helper()
	return rbox(t, append([]string{"image", "--storage-root", s}, args...)...)
}

// inImage runs a script in image img of store s and requires success.
func inImage(t *testing.T, s, img, script string, flags ...string) string {
	t.Helper()
	args := append([]string{"--storage-root", s, "--image", img}, flags...)
	args = append(args, "--", "/bin/sh", "-c", script)
	r := rbox(t, args...)
	if r.code != 0 {
		t.Fatalf("rbox %v failed:\n%s", args, r)
	}
	return r.stdout
}
