package image

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"
	"go.podman.io/storage/pkg/archive"
)

// Load stores the images of a docker-archive (`docker save`) or an OCI
// image layout archive (`podman save --format oci-archive`), plain or
// compressed. A non-empty name renames the archive's only image.
func (st *Store) Load(path, name string) (infos []*Info, err error) {
	var rename string
	if name != "" {
		if rename, err = localName(name); err != nil {
			return nil, err
		}
	}
	op, tmp, end, err := st.beginWrite()
	if err != nil {
		return nil, err
	}
	defer end(&err)

	plain, kind, err := st.prepareArchive(path, tmp)
	if err != nil {
		return nil, err
	}
	var srcs []*imageSource
	switch kind {
	case "oci":
		dir := filepath.Join(tmp, "oci")
		if err := extractOCI(plain, dir); err != nil {
			return nil, err
		}
		srcs, err = ociSources(dir)
	case "docker":
		srcs, err = dockerSources(plain)
	}
	if err != nil {
		return nil, err
	}
	if rename != "" {
		if len(srcs) != 1 {
			return nil, fmt.Errorf("a name was given but the archive holds %d images", len(srcs))
		}
		srcs[0].names = []string{rename}
	}
	for _, src := range srcs {
		info, err := st.commit(src, op)
		if err != nil {
			return infos, err
		}
		infos = append(infos, info)
	}
	return infos, nil
}

// prepareArchive returns the path of the archive as a plain tar
// (decompressing into tmp if needed) and its kind, "oci" or "docker".
func (st *Store) prepareArchive(path, tmp string) (string, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", "", err
	}
	if !fi.Mode().IsRegular() {
		return "", "", badInput("%s is not a regular file", path)
	}
	head := make([]byte, 10)
	n, _ := io.ReadFull(f, head)
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", "", err
	}
	plain := path
	if archive.DetectCompression(head[:n]) != archive.Uncompressed {
		plain = filepath.Join(tmp, "archive.tar")
		out, err := os.OpenFile(plain, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return "", "", err
		}
		st.prog.Start("decompress", "Decompressing "+filepath.Base(path), fi.Size())
		dec, err := archive.DecompressStream(&countingReader{r: f, prog: st.prog, id: "decompress"})
		if err == nil {
			_, err = io.Copy(out, dec)
			dec.Close()
		}
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			st.prog.Done("decompress", "failed")
			return "", "", badInput("cannot decompress %s: %v", path, err)
		}
		st.prog.Done("decompress", "done")
	}
	kind, err := archiveKind(plain)
	return plain, kind, err
}

// archiveKind reads the tar's table of contents.
func archiveKind(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var hasLayout, hasIndex, hasManifest bool
	entries := 0
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if entries == 0 {
				return "", badInput("%s is not a tar archive: %v", path, err)
			}
			return "", corruptArchive(err)
		}
		entries++
		n, err := safeName(hdr.Name)
		if err != nil {
			return "", err
		}
		switch n {
		case "oci-layout":
			hasLayout = true
		case "index.json":
			hasIndex = true
		case "manifest.json":
			hasManifest = true
		}
	}
	switch {
	case hasLayout && hasIndex:
		return "oci", nil
	case hasManifest:
		return "docker", nil
	case entries == 0:
		return "", badInput("%s is empty or not a tar archive", path)
	}
	return "", badInput("%s is neither a docker-archive (no manifest.json) nor an OCI archive (no oci-layout and index.json)", path)
}

func corruptArchive(err error) error {
	if err == io.ErrUnexpectedEOF {
		return badInput("the archive is truncated")
	}
	return badInput("the archive is corrupt: %v", err)
}

// extractOCI unpacks an OCI layout archive into dir. Only plain files and
// directories with safe names are accepted.
func extractOCI(path, dir string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return corruptArchive(err)
		}
		n, err := safeName(hdr.Name)
		if err != nil {
			return err
		}
		if n == "" {
			continue
		}
		out := filepath.Join(dir, n)
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(out, 0o700); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(out), 0o700); err != nil {
				return err
			}
			w, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_EXCL, 0o600)
			if err != nil {
				return badInput("OCI archive entry %q: %v", hdr.Name, err)
			}
			_, err = io.Copy(w, tr)
			if cerr := w.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return corruptArchive(err)
			}
		default:
			return badInput("OCI archive entry %q: unsupported type %q (only files and directories)", hdr.Name, string(hdr.Typeflag))
		}
	}
}

// blobPath is the file of a blob in an extracted layout.
func blobPath(dir string, d digest.Digest) (string, error) {
	if err := d.Validate(); err != nil {
		return "", badInput("bad digest %q: %v", d, err)
	}
	return filepath.Join(dir, "blobs", d.Algorithm().String(), d.Encoded()), nil
}

// readBlob reads a small blob (manifest, config) and checks its digest.
func readBlob(dir string, d digest.Digest) ([]byte, error) {
	p, err := blobPath(dir, d)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, badInput("blob %s missing from the archive", d)
	}
	if got := d.Algorithm().FromBytes(b); got != d {
		return nil, badInput("blob %s is corrupt (digest %s)", d, got)
	}
	return b, nil
}

// ociSources lists the images of an extracted OCI layout, choosing this
// machine's platform in nested indexes.
func ociSources(dir string) ([]*imageSource, error) {
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		return nil, err
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(b))
	if err != nil {
		return nil, badInput("index.json: %v", err)
	}
	var out []*imageSource
	for _, desc := range idx.Manifests {
		names := ociNames(desc.Annotations)
		if desc.MediaType.IsIndex() {
			d, err := pickPlatform(dir, desc)
			if err != nil {
				return nil, err
			}
			desc = d
		}
		src, err := ociImage(dir, desc)
		if err != nil {
			return nil, err
		}
		src.names = names
		out = append(out, src)
	}
	if len(out) == 0 {
		return nil, badInput("the OCI archive holds no image")
	}
	return out, nil
}

// ociNames takes an image name from the annotations podman, containerd
// and skopeo write; a bare tag is not a name.
func ociNames(a map[string]string) []string {
	for _, k := range []string{"io.containerd.image.name", "org.opencontainers.image.ref.name"} {
		v := a[k]
		if v == "" || !strings.ContainsAny(v, "/:@") {
			continue
		}
		if n, err := canonical(v); err == nil {
			return []string{n}
		}
	}
	return nil
}

func pickPlatform(dir string, desc v1.Descriptor) (v1.Descriptor, error) {
	b, err := readBlob(dir, digest.Digest(desc.Digest.String()))
	if err != nil {
		return desc, err
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(b))
	if err != nil {
		return desc, badInput("image index %s: %v", desc.Digest, err)
	}
	for _, m := range idx.Manifests {
		if m.Platform != nil && m.Platform.OS == "linux" && m.Platform.Architecture == runtime.GOARCH {
			return m, nil
		}
	}
	return desc, badInput("image index %s has no linux/%s image", desc.Digest, runtime.GOARCH)
}

func ociImage(dir string, desc v1.Descriptor) (*imageSource, error) {
	if desc.MediaType != types.OCIManifestSchema1 && desc.MediaType != types.DockerManifestSchema2 {
		return nil, badInput("unsupported manifest media type %q", desc.MediaType)
	}
	raw, err := readBlob(dir, digest.Digest(desc.Digest.String()))
	if err != nil {
		return nil, err
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, badInput("manifest %s: %v", desc.Digest, err)
	}
	if !configTypes[m.Config.MediaType] {
		return nil, badInput("unsupported config media type %q", m.Config.MediaType)
	}
	cfg, err := readBlob(dir, digest.Digest(m.Config.Digest.String()))
	if err != nil {
		return nil, err
	}
	src := &imageSource{config: cfg, manifest: raw}
	for i, l := range m.Layers {
		p, err := blobPath(dir, digest.Digest(l.Digest.String()))
		if err != nil {
			return nil, err
		}
		src.layers = append(src.layers, layerSource{
			label:     fmt.Sprintf("layer %d/%d %s", i+1, len(m.Layers), short(l.Digest.Hex)),
			mediaType: l.MediaType,
			digest:    digest.Digest(l.Digest.String()),
			size:      l.Size,
			open: func() (io.ReadCloser, error) {
				f, err := os.Open(p)
				if err != nil {
					return nil, badInput("layer blob %s missing from the archive", l.Digest)
				}
				return f, nil
			},
		})
	}
	return src, nil
}

func short(hex string) string {
	if len(hex) > 12 {
		return hex[:12]
	}
	return hex
}

// dockerSources lists the images of a docker-archive.
func dockerSources(path string) ([]*imageSource, error) {
	opener := func() (io.ReadCloser, error) { return os.Open(path) }
	man, err := tarball.LoadManifest(opener)
	if err != nil {
		return nil, badInput("docker-archive manifest.json: %v", err)
	}
	if len(man) == 0 {
		return nil, badInput("the docker-archive holds no image")
	}
	var out []*imageSource
	for _, d := range man {
		var tag *name.Tag
		var names []string
		if len(d.RepoTags) > 0 {
			t, err := name.NewTag(d.RepoTags[0])
			if err != nil {
				return nil, badInput("docker-archive tag %q: %v", d.RepoTags[0], err)
			}
			tag = &t
			for _, rt := range d.RepoTags {
				if n, err := canonical(rt); err == nil {
					names = append(names, n)
				}
			}
		} else if len(man) > 1 {
			return nil, badInput("the docker-archive holds several images and one has no tag")
		}
		img, err := tarball.Image(opener, tag)
		if err != nil {
			return nil, badInput("docker-archive: %v", err)
		}
		cfg, err := img.RawConfigFile()
		if err != nil {
			return nil, badInput("docker-archive config: %v", err)
		}
		layers, err := img.Layers()
		if err != nil {
			return nil, badInput("docker-archive layers: %v", err)
		}
		src := &imageSource{names: names, config: cfg}
		for i, l := range layers {
			l := l
			src.layers = append(src.layers, layerSource{
				label: fmt.Sprintf("layer %d/%d", i+1, len(layers)),
				open: func() (io.ReadCloser, error) {
					rc, err := l.Uncompressed()
					if err != nil {
						return nil, badInput("docker-archive layer %d: %v", i+1, err)
					}
					return rc, nil
				},
			})
		}
		out = append(out, src)
	}
	return out, nil
}
