package imagetest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"path/filepath"
	"testing"
	"time"
)

// Entry is one member of a test layer.
type Entry struct {
	name     string
	typ      byte
	mode     int64
	uid, gid int
	body     string
	link     string
}

// Dir is a directory of uid:uid, mode 0755.
func Dir(n string, uid int) Entry {
	return Entry{name: n, typ: tar.TypeDir, mode: 0o755, uid: uid, gid: uid}
}

// File is a regular file of root, mode 0644.
func File(n, body string) Entry { return Entry{name: n, typ: tar.TypeReg, mode: 0o644, body: body} }

// Symlink is a symbolic link n -> to.
func Symlink(n, to string) Entry { return Entry{name: n, typ: tar.TypeSymlink, mode: 0o777, link: to} }

// Hardlink is a hard link n to the member to.
func Hardlink(n, to string) Entry { return Entry{name: n, typ: tar.TypeLink, mode: 0o644, link: to} }

// Owned is e owned by id:id.
func Owned(e Entry, id int) Entry { e.uid, e.gid = id, id; return e }

// WithMode is e with mode m.
func WithMode(e Entry, m int64) Entry { e.mode = m; return e }

// Whiteout is the OCI whiteout deleting dirName/n.
func Whiteout(dirName, n string) Entry { return File(filepath.Join(dirName, ".wh."+n), "") }

// Tar packs entries, in order, into a tar archive with fixed times.
func Tar(t testing.TB, entries []Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Uid: e.uid, Gid: e.gid,
			Linkname: e.link, ModTime: time.Unix(1700000000, 0), Format: tar.FormatPAX}
		if e.typ == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			if _, err := io.WriteString(tw, e.body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Gzip compresses b.
func Gzip(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Prefixed is e with prefix before its name ("./" as in rootfs tarballs).
func Prefixed(e Entry, prefix string) Entry { e.name = prefix + e.name; return e }
