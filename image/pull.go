package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"
)

// PullOptions tune Pull.
type PullOptions struct {
	// Insecure allows plain HTTP and unverified TLS (registries on
	// localhost and 127.0.0.0/8 use HTTP anyway).
	Insecure bool
	// Context cancels the pull; nil means background.
	Context context.Context
}

// Pull fetches ref (e.g. docker.io/library/alpine:3.20; short names are
// Docker Hub's) for this machine's platform and stores it under its full
// name. Blobs are downloaded and checked before anything is stored.
func (st *Store) Pull(ref string, opts PullOptions) (info *Info, err error) {
	ctx := opts.Context
	if ctx == nil {
		ctx = context.Background()
	}
	var nopts []name.Option
	if opts.Insecure {
		nopts = append(nopts, name.Insecure)
	}
	r, err := name.ParseReference(ref, nopts...)
	if err != nil {
		return nil, fmt.Errorf("invalid image reference %q: %v", ref, err)
	}
	stored := refString(r)
	ropts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(authn.DefaultKeychain),
		remote.WithPlatform(v1.Platform{OS: "linux", Architecture: runtime.GOARCH}),
		remote.WithUserAgent("rbox"),
	}

	op, tmp, end, err := st.beginWrite()
	if err != nil {
		return nil, err
	}
	defer end(&err)

	st.prog.Note("Pulling " + stored)
	desc, err := remote.Get(r, ropts...)
	if err != nil {
		return nil, pullError(ref, err)
	}
	var img v1.Image
	switch {
	case desc.MediaType.IsIndex():
		img, err = desc.Image() // picks linux/GOARCH
	case desc.MediaType == types.OCIManifestSchema1 || desc.MediaType == types.DockerManifestSchema2:
		img, err = desc.Image()
	case desc.MediaType.IsSchema1():
		return nil, badInput("%s uses the obsolete Docker schema 1 manifest, which rbox does not support", ref)
	default:
		return nil, badInput("%s has unsupported media type %q", ref, desc.MediaType)
	}
	if err != nil {
		return nil, pullError(ref, err)
	}
	mt, err := img.MediaType()
	if err != nil {
		return nil, pullError(ref, err)
	}
	if mt != types.OCIManifestSchema1 && mt != types.DockerManifestSchema2 {
		return nil, badInput("%s: unsupported manifest media type %q", ref, mt)
	}
	rawManifest, err := img.RawManifest()
	if err != nil {
		return nil, pullError(ref, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, badInput("%s: manifest: %v", ref, err)
	}
	if !configTypes[m.Config.MediaType] {
		return nil, badInput("%s: unsupported config media type %q", ref, m.Config.MediaType)
	}
	rawConfig, err := img.RawConfigFile()
	if err != nil {
		return nil, pullError(ref, err)
	}
	if got := digest.FromBytes(rawConfig); got.String() != m.Config.Digest.String() {
		return nil, badInput("%s: config digest %s does not match the manifest's %s", ref, got, m.Config.Digest)
	}

	src := &imageSource{names: []string{stored}, config: rawConfig, manifest: rawManifest}
	for i, ld := range m.Layers {
		if !layerTypes[ld.MediaType] {
			return nil, badInput("%s: layer %d has unsupported media type %q", ref, i+1, ld.MediaType)
		}
		layer, err := img.LayerByDigest(ld.Digest)
		if err != nil {
			return nil, pullError(ref, err)
		}
		src.layers = append(src.layers, layerSource{
			label:     "blob " + short(ld.Digest.Hex),
			mediaType: ld.MediaType,
			digest:    digest.Digest(ld.Digest.String()),
			size:      ld.Size,
			open:      st.downloader(layer, ld, filepath.Join(tmp, ld.Digest.Hex)),
		})
	}
	return st.commit(src, op)
}

// downloader returns an opener that downloads the blob into file the first
// time (with a progress bar) and reads the file afterwards.
func (st *Store) downloader(layer v1.Layer, d v1.Descriptor, file string) func() (io.ReadCloser, error) {
	var once sync.Once
	var derr error
	return func() (io.ReadCloser, error) {
		once.Do(func() { derr = st.download(layer, d, file) })
		if derr != nil {
			return nil, derr
		}
		return os.Open(file)
	}
}

func (st *Store) download(layer v1.Layer, d v1.Descriptor, file string) error {
	id := "copy-" + d.Digest.Hex
	st.prog.Start(id, "Copying blob "+short(d.Digest.Hex), d.Size)
	err := func() error {
		rc, err := layer.Compressed()
		if err != nil {
			return err
		}
		defer rc.Close()
		f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, &countingReader{r: rc, prog: st.prog, id: id})
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	}()
	if err != nil {
		st.prog.Done(id, "failed")
		return fmt.Errorf("download %s: %w", d.Digest, err)
	}
	st.prog.Done(id, "done")
	return nil
}

// pullError keeps registry errors readable and marks missing images.
func pullError(ref string, err error) error {
	var terr *transport.Error
	if errors.As(err, &terr) && (terr.StatusCode == 404 || hasCode(terr, transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode)) {
		return fmt.Errorf("%w: %s (not found in the registry)", ErrUnknownImage, ref)
	}
	return fmt.Errorf("pull %s: %w", ref, err)
}

func hasCode(e *transport.Error, codes ...transport.ErrorCode) bool {
	for _, d := range e.Errors {
		for _, c := range codes {
			if d.Code == c {
				return true
			}
		}
	}
	return false
}
