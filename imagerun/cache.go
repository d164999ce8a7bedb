package imagerun

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// The resolve cache spares the run path the rbox-image exec (and its user
// namespace) when nothing changed. Every store write bumps
// STORE/rbox/generation under the store's write lock; `rbox-image resolve`
// records the generation it read before resolving next to its answer; a
// cached answer is used only if, with the image's in-use lock held, the
// generation is still the one recorded.

func generationPath(root string) string { return filepath.Join(root, "rbox", "generation") }

func cachePath(root, name string) string {
	h := sha256.Sum256([]byte(name))
	return filepath.Join(root, "rbox", "resolved", hex.EncodeToString(h[:16])+".json")
}

// Generation reads the store's generation (0 when never written).
func Generation(root string) uint64 {
	b, err := os.ReadFile(generationPath(root))
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return n
}

// BumpGeneration invalidates every cached resolution. The caller holds the
// store's write lock.
func BumpGeneration(root string) error {
	p := generationPath(root)
	tmp := p + ".new"
	if err := os.WriteFile(tmp, []byte(strconv.FormatUint(Generation(root)+1, 10)+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

type cached struct {
	Generation uint64    `json:"generation"`
	Name       string    `json:"name"`
	Resolved   *Resolved `json:"resolved"`
}

// SaveCache records a resolution of name made at generation gen.
func SaveCache(root, name string, gen uint64, res *Resolved) error {
	p := cachePath(root, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	b, err := json.Marshal(cached{Generation: gen, Name: name, Resolved: res})
	if err != nil {
		return err
	}
	tmp := fmt.Sprintf("%s.%d", p, os.Getpid())
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// ResolveCached answers from the cache when it is current, holding the
// image's in-use lock like Resolve; ok is false when rbox-image must be
// asked.
func ResolveCached(root, name string) (res *Resolved, lock *os.File, ok bool) {
	if root == "" {
		root = DefaultStorageRoot()
	}
	b, err := os.ReadFile(cachePath(root, name))
	if err != nil {
		return nil, nil, false
	}
	var c cached
	if json.Unmarshal(b, &c) != nil || c.Name != name || c.Resolved == nil || c.Generation != Generation(root) {
		return nil, nil, false
	}
	id := c.Resolved.ID
	if id == "" || strings.ContainsAny(id, "/.") {
		return nil, nil, false
	}
	lp := filepath.Join(root, "rbox", "inuse", id+".lock")
	f, err := os.OpenFile(lp, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, false
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH); err != nil {
		f.Close()
		return nil, nil, false
	}
	// Still the marker rm would take, and no write since the answer?
	a, err1 := f.Stat()
	p, err2 := os.Stat(lp)
	if err1 != nil || err2 != nil || !os.SameFile(a, p) || Generation(root) != c.Generation {
		f.Close()
		return nil, nil, false
	}
	for _, l := range c.Resolved.Layers {
		if _, err := os.Stat(l); err != nil {
			f.Close()
			return nil, nil, false
		}
	}
	return c.Resolved, f, true
}
