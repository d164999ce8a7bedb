package image

import (
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"go.podman.io/storage"
)

// Names are stored the way podman stores them, so a store can be shared:
// "docker.io/library/alpine:3.20", "localhost/mine:latest",
// "127.0.0.1:5000/x/y:1", "registry/repo@sha256:...".

// hasDomain reports whether the first component of a reference names a
// registry.
func hasDomain(ref string) bool {
	first, _, ok := strings.Cut(ref, "/")
	return ok && (strings.ContainsAny(first, ".:") || first == "localhost")
}

// localName normalises a name given to import or load: without a registry
// it goes under localhost/, without a tag it gets :latest.
func localName(n string) (string, error) {
	if !hasDomain(n) {
		n = "localhost/" + n
	}
	return canonical(n)
}

// canonical validates a full reference and adds :latest when it has no tag
// or digest; Docker Hub is spelt docker.io.
func canonical(n string) (string, error) {
	ref, err := name.ParseReference(n, name.StrictValidation)
	if err != nil {
		// StrictValidation wants an explicit tag; retry with one.
		ref, err = name.ParseReference(n+":latest", name.StrictValidation)
		if err != nil {
			return "", fmt.Errorf("invalid image name %q: %v", n, err)
		}
	}
	return refString(ref), nil
}

func refString(ref name.Reference) string {
	reg := ref.Context().RegistryStr()
	if reg == name.DefaultRegistry {
		reg = "docker.io"
	}
	repo := reg + "/" + ref.Context().RepositoryStr()
	if d, ok := ref.(name.Digest); ok {
		return repo + "@" + d.DigestStr()
	}
	return repo + ":" + ref.Identifier()
}

// candidates lists the stored names a user-given name may mean, in order.
func candidates(n string) []string {
	out := []string{n}
	add := func(s string) {
		if c, err := canonical(s); err == nil {
			out = append(out, c)
		}
	}
	if hasDomain(n) {
		add(n)
		return out
	}
	add("localhost/" + n)
	if strings.Contains(n, "/") {
		add("docker.io/" + n)
	} else {
		add("docker.io/library/" + n)
	}
	return out
}

// lookup finds an image by name, short name or ID (or unique ID prefix).
func (st *Store) lookup(n string) (*storage.Image, error) {
	if n == "" {
		return nil, fmt.Errorf("%w: empty name", ErrUnknownImage)
	}
	for _, c := range candidates(n) {
		if img, err := st.s.Image(c); err == nil {
			return img, nil
		} else if !errors.Is(err, storage.ErrImageUnknown) {
			return nil, err
		}
	}
	if len(n) >= 4 && strings.Trim(strings.TrimPrefix(n, "sha256:"), "0123456789abcdef") == "" {
		prefix := strings.TrimPrefix(n, "sha256:")
		imgs, err := st.s.Images()
		if err != nil {
			return nil, err
		}
		var found *storage.Image
		for i := range imgs {
			if strings.HasPrefix(imgs[i].ID, prefix) {
				if found != nil {
					return nil, fmt.Errorf("image ID prefix %q is ambiguous", n)
				}
				found = &imgs[i]
			}
		}
		if found != nil {
			return found, nil
		}
	}
	return nil, fmt.Errorf("%w: %s", ErrUnknownImage, n)
}
