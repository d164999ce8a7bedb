package image

import (
	"archive/tar"
	"crypto/sha256"
	"errors"
	"io"
	"path"
	"strings"

	digest "github.com/opencontainers/go-digest"
	"go.podman.io/storage/pkg/archive"
)

// layerCheck is what reading a layer through found.
type layerCheck struct {
	RawDigest digest.Digest // of the bytes as given (maybe compressed)
	RawSize   int64
	DiffID    digest.Digest // of the uncompressed tar
	Size      int64         // uncompressed
	Entries   int
}

// checkLayer reads a layer (a tar, plain or compressed with gzip, bzip2,
// xz or zstd) to the end and refuses anything that could write outside the
// layer or that is not a complete, well-formed tar: absolute names, ".."
// components, entries below a symlink of the same layer, hard links to
// anything but an earlier file of the same layer, unknown entry types, and
// truncated or corrupt data.
func checkLayer(r io.Reader) (*layerCheck, error) {
	rawHash := sha256.New()
	raw := &countingReader{r: io.TeeReader(r, rawHash)}
	dec, err := archive.DecompressStream(raw)
	if err != nil {
		return nil, badInput("cannot read the layer: %v", err)
	}
	defer dec.Close()
	diffHash := sha256.New()
	plain := &countingReader{r: io.TeeReader(dec, diffHash)}
	tr := tar.NewReader(plain)

	res := &layerCheck{}
	symlinks := map[string]bool{} // paths that are symlinks in this layer
	seen := map[string]bool{}     // non-directory paths in this layer
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if res.Entries == 0 {
				return nil, badInput("not a tar archive (%v)", err)
			}
			return nil, corrupt(err)
		}
		res.Entries++
		name, err := safeName(hdr.Name)
		if err != nil {
			return nil, err
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		if name == "" {
			if hdr.Typeflag != tar.TypeDir {
				return nil, badInput("layer entry %q names the root but is not a directory", hdr.Name)
			}
			continue
		}
		if p := underSymlink(name, symlinks); p != "" {
			return nil, badInput("unsafe layer entry %q: it lies below the symlink %q of the same layer", hdr.Name, p)
		}
		switch hdr.Typeflag {
		case tar.TypeReg, tar.TypeChar, tar.TypeBlock, tar.TypeFifo, tar.TypeDir, tar.TypeSymlink, tar.TypeGNUSparse:
		case tar.TypeLink:
			target, err := safeName(hdr.Linkname)
			if err != nil || target == "" {
				return nil, badInput("unsafe hard link %q -> %q", hdr.Name, hdr.Linkname)
			}
			if p := underSymlink(target, symlinks); p != "" || symlinks[target] {
				return nil, badInput("unsafe hard link %q -> %q: the target is or lies below a symlink", hdr.Name, hdr.Linkname)
			}
			if !seen[target] {
				return nil, badInput("hard link %q -> %q: the target is not an earlier file of the same layer", hdr.Name, hdr.Linkname)
			}
		default:
			return nil, badInput("layer entry %q has unsupported tar type %q", hdr.Name, string(hdr.Typeflag))
		}
		delete(symlinks, name)
		if hdr.Typeflag == tar.TypeSymlink {
			symlinks[name] = true
		}
		if hdr.Typeflag != tar.TypeDir {
			seen[name] = true
		}
		if _, err := io.Copy(io.Discard, tr); err != nil {
			return nil, corrupt(err)
		}
	}
	if res.Entries == 0 {
		return nil, badInput("the layer is empty or not a tar archive")
	}
	// Read the rest (tar padding, compression trailer and checksum).
	if _, err := io.Copy(io.Discard, plain); err != nil {
		return nil, corrupt(err)
	}
	if _, err := io.Copy(io.Discard, raw); err != nil {
		return nil, corrupt(err)
	}
	res.DiffID = digest.NewDigestFromBytes(digest.SHA256, diffHash.Sum(nil))
	res.Size = plain.n
	res.RawDigest = digest.NewDigestFromBytes(digest.SHA256, rawHash.Sum(nil))
	res.RawSize = raw.n
	return res, nil
}

func corrupt(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return badInput("the layer is truncated")
	}
	return badInput("the layer is corrupt: %v", err)
}

// safeName cleans a tar entry name ("./a/b/" -> "a/b", "." -> "") and
// refuses absolute names and ".." components.
func safeName(n string) (string, error) {
	if strings.HasPrefix(n, "/") {
		return "", badInput("unsafe layer entry %q: absolute path", n)
	}
	for _, c := range strings.Split(n, "/") {
		if c == ".." {
			return "", badInput("unsafe layer entry %q: path traversal", n)
		}
	}
	if strings.ContainsRune(n, 0) {
		return "", badInput("unsafe layer entry %q", n)
	}
	c := path.Clean("/" + n)
	return strings.TrimPrefix(c, "/"), nil
}

// underSymlink returns the first proper prefix of name that is a symlink.
func underSymlink(name string, symlinks map[string]bool) string {
	if len(symlinks) == 0 {
		return ""
	}
	for i := 0; i < len(name); i++ {
		if name[i] == '/' && symlinks[name[:i]] {
			return name[:i]
		}
	}
	return ""
}
