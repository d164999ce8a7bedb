package image

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"
	"go.podman.io/storage"
)

// layerSource is one layer to be stored.
type layerSource struct {
	label     string
	mediaType types.MediaType // "" when the source does not say
	digest    digest.Digest   // expected digest of the bytes open returns, "" if unknown
	diffID    digest.Digest   // expected uncompressed digest, "" if unknown
	size      int64           // size of the bytes open returns, 0 if unknown
	open      func() (io.ReadCloser, error)
}

// imageSource is an image to be stored.
type imageSource struct {
	names    []string
	config   []byte // nil for import: made up from the layer
	manifest []byte // nil: made up
	layers   []layerSource
	comment  string // history entry of a made-up config
}

// Info describes a stored image.
type Info struct {
	ID      string    `json:"id"`
	Names   []string  `json:"names"`
	Created time.Time `json:"created"`
	Size    int64     `json:"size"`
}

var layerTypes = map[types.MediaType]bool{
	types.OCILayer:                true,
	types.OCILayerZStd:            true,
	types.OCIUncompressedLayer:    true,
	types.DockerLayer:             true,
	types.DockerUncompressedLayer: true,
}

var configTypes = map[types.MediaType]bool{
	types.OCIConfigJSON:    true,
	types.DockerConfigJSON: true,
}

// commit checks every layer, then writes layers and the image. Nothing is
// written before all input has been read through and found sound, and
// what is written is recorded in op so that a crash is cleaned up by the
// next operation.
func (st *Store) commit(src *imageSource, op *pendingOp) (*Info, error) {
	for i, l := range src.layers {
		if l.mediaType != "" && !layerTypes[l.mediaType] {
			return nil, badInput("layer %d has unsupported media type %q", i+1, l.mediaType)
		}
	}
	var cf *v1.ConfigFile
	if src.config != nil {
		var err error
		cf, err = v1.ParseConfigFile(bytes.NewReader(src.config))
		if err != nil {
			return nil, badInput("image config: %v", err)
		}
		if cf.RootFS.Type != "layers" && cf.RootFS.Type != "" {
			return nil, badInput("image config: rootfs type %q", cf.RootFS.Type)
		}
		if len(cf.RootFS.DiffIDs) != len(src.layers) {
			return nil, badInput("image config lists %d layers, the manifest %d", len(cf.RootFS.DiffIDs), len(src.layers))
		}
		for i := range src.layers {
			src.layers[i].diffID = digest.Digest(cf.RootFS.DiffIDs[i].String())
		}
	}
	if len(src.layers) == 0 {
		return nil, badInput("the image has no layers")
	}

	// 1. Read every layer through, checking it, except those already
	// stored: with a config, the chain IDs are known up front.
	checks := make([]*layerCheck, len(src.layers))
	stored := make([]bool, len(src.layers))
	if cf != nil {
		var chain digest.Digest
		for i := range src.layers {
			chain = chainID(chain, src.layers[i].diffID)
			if _, err := st.s.Layer(chain.Encoded()); err == nil {
				stored[i] = true
				checks[i] = &layerCheck{DiffID: src.layers[i].diffID}
			}
		}
	}
	for i, l := range src.layers {
		if stored[i] {
			continue
		}
		id := fmt.Sprintf("check-%d", i)
		st.prog.Start(id, fmt.Sprintf("Checking %s", l.label), l.size)
		chk, err := st.checkOne(id, l)
		if err != nil {
			st.prog.Done(id, "failed")
			return nil, fmt.Errorf("%s: %w", l.label, err)
		}
		st.prog.Done(id, "ok")
		checks[i] = chk
	}

	// 2. Make up config and manifest where the source has none.
	if cf == nil {
		now := time.Now().UTC()
		cf = &v1.ConfigFile{
			Architecture: runtime.GOARCH,
			OS:           "linux",
			Created:      v1.Time{Time: now},
			RootFS:       v1.RootFS{Type: "layers"},
			Config:       v1.Config{Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}},
			History:      []v1.History{{Created: v1.Time{Time: now}, CreatedBy: src.comment}},
		}
		for _, c := range checks {
			h, _ := v1.NewHash(c.DiffID.String())
			cf.RootFS.DiffIDs = append(cf.RootFS.DiffIDs, h)
		}
		b, err := json.Marshal(cf)
		if err != nil {
			return nil, err
		}
		src.config = b
	}
	configDigest := digest.FromBytes(src.config)
	if src.manifest == nil {
		m := v1.Manifest{
			SchemaVersion: 2,
			MediaType:     types.OCIManifestSchema1,
			Config:        v1.Descriptor{MediaType: types.OCIConfigJSON, Size: int64(len(src.config)), Digest: mustHash(configDigest)},
		}
		for _, c := range checks {
			m.Layers = append(m.Layers, v1.Descriptor{MediaType: types.OCIUncompressedLayer, Size: c.Size, Digest: mustHash(c.DiffID)})
		}
		b, err := json.Marshal(m)
		if err != nil {
			return nil, err
		}
		src.manifest = b
	}
	manifestDigest := digest.FromBytes(src.manifest)

	// 3. Layers, bottom first, named by chain ID so equal stacks share.
	parent := ""
	var chain digest.Digest
	for i, l := range src.layers {
		chain = chainID(chain, checks[i].DiffID)
		lid := chain.Encoded()
		bid := fmt.Sprintf("layer-%d", i)
		if _, err := st.s.Layer(lid); err == nil {
			st.prog.Start(bid, l.label, 0)
			st.prog.Done(bid, "already stored")
			parent = lid
			continue
		}
		if err := op.addLayer(lid); err != nil {
			return nil, err
		}
		st.prog.Start(bid, "Writing "+l.label, checks[i].RawSize)
		rc, err := l.open()
		if err != nil {
			st.prog.Done(bid, "failed")
			return nil, fmt.Errorf("%s: %w", l.label, err)
		}
		_, _, err = st.s.PutLayer(lid, parent, nil, "", false, &storage.LayerOptions{
			OriginalDigest:     checks[i].RawDigest,
			UncompressedDigest: checks[i].DiffID,
		}, &countingReader{r: rc, prog: st.prog, id: bid})
		rc.Close()
		if errors.Is(err, storage.ErrDuplicateID) {
			err = nil
		}
		if err != nil {
			st.prog.Done(bid, "failed")
			return nil, fmt.Errorf("write %s: %w", l.label, err)
		}
		st.prog.Done(bid, "done")
		parent = lid
		if crashHook != nil {
			crashHook("layer-written")
		}
	}

	// 4. The image, named last: until then nothing refers to the layers.
	imageID := configDigest.Encoded()
	previous := map[string]bool{}
	for _, n := range src.names {
		if img, err := st.s.Image(n); err == nil && img.ID != imageID {
			previous[img.ID] = true
		}
	}
	if img, err := st.s.Image(imageID); err == nil {
		if img.TopLayer != parent {
			return nil, fmt.Errorf("image %s is already stored with other layers", imageID[:12])
		}
	} else {
		created := cf.Created.Time
		if created.IsZero() {
			created = time.Now().UTC()
		}
		_, err := st.s.CreateImage(imageID, nil, parent, "", &storage.ImageOptions{
			CreationDate: created,
			Digest:       manifestDigest,
			BigData: []storage.ImageBigDataOption{
				{Key: configDigest.String(), Data: src.config, Digest: configDigest},
				{Key: "manifest-" + manifestDigest.String(), Data: src.manifest, Digest: manifestDigest},
				{Key: storage.ImageDigestBigDataKey, Data: src.manifest, Digest: manifestDigest},
			},
			Flags: map[string]any{"rbox": true},
		})
		if err != nil && !errors.Is(err, storage.ErrDuplicateID) {
			return nil, fmt.Errorf("create image: %w", err)
		}
	}
	if len(src.names) > 0 {
		if err := st.s.AddNames(imageID, src.names); err != nil {
			return nil, fmt.Errorf("name image: %w", err)
		}
	}
	op.Layers = nil // committed: no longer to be cleaned up
	if err := op.save(); err != nil {
		return nil, err
	}
	for id := range previous {
		st.pruneIfDangling(id)
	}
	return st.info(imageID)
}

// crashHook lets tests die at a chosen point of commit.
var crashHook func(stage string)

// chainID is the OCI chain ID of a layer on top of parent ("" for the
// bottom layer): sha256(parent + " " + diffID).
func chainID(parent, diffID digest.Digest) digest.Digest {
	if parent == "" {
		return diffID
	}
	return digest.FromString(parent.String() + " " + diffID.String())
}

func mustHash(d digest.Digest) v1.Hash {
	h, err := v1.NewHash(d.String())
	if err != nil {
		panic(err)
	}
	return h
}

// checkOne reads a layer through checkLayer and compares its digests.
func (st *Store) checkOne(bar string, l layerSource) (*layerCheck, error) {
	rc, err := l.open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	chk, err := checkLayer(&countingReader{r: rc, prog: st.prog, id: bar})
	if err != nil {
		return nil, err
	}
	if l.digest != "" && chk.RawDigest != l.digest {
		return nil, badInput("content digest %s does not match %s (corrupt)", chk.RawDigest, l.digest)
	}
	if l.diffID != "" && chk.DiffID != l.diffID {
		return nil, badInput("uncompressed digest %s does not match the config's %s (corrupt)", chk.DiffID, l.diffID)
	}
	return chk, nil
}

// pruneIfDangling removes an image rbox stored that lost its last name to
// a newer one, unless a sandbox still runs it.
func (st *Store) pruneIfDangling(id string) {
	img, err := st.s.Image(id)
	if err != nil || len(img.Names) > 0 || img.Flags["rbox"] != true {
		return
	}
	f, err := st.tryExclusive(id)
	if err != nil {
		return
	}
	defer f.Close()
	if _, err := st.s.DeleteImage(id, true); err == nil {
		removeLocked(f, st.inUsePath(id))
	}
}

// info describes image id.
func (st *Store) info(id string) (*Info, error) {
	img, err := st.s.Image(id)
	if err != nil {
		return nil, err
	}
	size, _ := st.s.ImageSize(id)
	return &Info{ID: img.ID, Names: img.Names, Created: img.Created, Size: size}, nil
}
