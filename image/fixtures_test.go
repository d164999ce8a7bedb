package image

import (
	"bytes"
	"io"
	"os"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/rbox-dev/rbox/internal/imagetest"
)

// Test images are built here, from the static busybox of busybox-static.

const busyboxPath = "/bin/busybox"

// The layer builders are shared with the integration tests.
type entry = imagetest.Entry

var (
	dir       = imagetest.Dir
	file      = imagetest.File
	symlink   = imagetest.Symlink
	hardlink  = imagetest.Hardlink
	owned     = imagetest.Owned
	mode      = imagetest.WithMode
	whiteout  = imagetest.Whiteout
	tarBytes  = imagetest.Tar
	gzipBytes = imagetest.Gzip
)

func busybox(t testing.TB) string {
	b, err := os.ReadFile(busyboxPath)
	if err != nil {
		t.Fatalf("busybox-static is needed for the test images: %v", err)
	}
	return string(b)
}

// baseEntries is a minimal busybox system with a file and a directory the
// second layer deletes and makes opaque.
func baseEntries(t testing.TB) []entry {
	return []entry{
		dir("bin", 0), mode(file("bin/busybox", busybox(t)), 0o755),
		symlink("bin/sh", "busybox"), symlink("bin/id", "busybox"), symlink("bin/cat", "busybox"),
		symlink("bin/pwd", "busybox"), symlink("bin/echo", "busybox"),
		dir("etc", 0),
		file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n"),
		file("etc/group", "root:x:0:\nuser:x:1000:\n"),
		file("etc/base-only", "deleted above"),
		dir("opq", 0), file("opq/old", "hidden above"),
		dir("home", 0), dir("tmp", 0),
	}
}

// topEntries adds files of uid 1000, deletes etc/base-only and makes opq
// opaque.
func topEntries() []entry {
	return []entry{
		owned(dir("home/user", 0), 1000),
		owned(file("home/user/file", "hello"), 1000),
		whiteout("etc", "base-only"),
		dir("opq", 0), file("opq/.wh..wh..opq", ""), file("opq/new", "new"),
	}
}

var testConfig = v1.Config{
	Env:        []string{"PATH=/bin", "GREETING=hi"},
	WorkingDir: "/home/user",
	User:       "1000:1000",
	Cmd:        []string{"/bin/sh", "-c", "echo $GREETING; id -u; pwd"},
}

func layerOf(t testing.TB, b []byte, mt types.MediaType) v1.Layer {
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		tarball.WithMediaType(mt))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// testImage is the two-layer image: docker media types, or OCI ones.
func testImage(t testing.TB, oci bool) v1.Image {
	lt := types.DockerLayer
	if oci {
		lt = types.OCILayer
	}
	img, err := mutate.AppendLayers(empty.Image,
		layerOf(t, tarBytes(t, baseEntries(t)), lt), layerOf(t, tarBytes(t, topEntries()), lt))
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.Config(img, testConfig)
	if err != nil {
		t.Fatal(err)
	}
	if oci {
		img = mutate.MediaType(img, types.OCIManifestSchema1)
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	}
	return img
}
