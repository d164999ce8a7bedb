package image

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/imagerun"
)

// The in-use marker: each sandbox running an image holds a shared flock on
// rbox/inuse/ID.lock for as long as it runs (the descriptor lives in the
// sandbox's processes, so the kernel drops the lock when they die, however
// they die). Removing the image takes the exclusive lock without waiting,
// so it fails while any sandbox runs, and unlinks the file before letting
// go; a resolver that opened the old file notices (the path no longer
// names its inode) and looks again.

func ownerUID(fi fs.FileInfo) uint32 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Uid
	}
	return ^uint32(0)
}

func (st *Store) inUsePath(id string) string {
	return filepath.Join(st.rboxDir, "inuse", id+".lock")
}

// lockInUse takes the shared in-use lock of image id.
func (st *Store) lockInUse(id string) (*os.File, error) {
	for i := 0; i < 100; i++ {
		f, err := os.OpenFile(st.inUsePath(id), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return nil, fmt.Errorf("in-use marker: %w", err)
		}
		if err := flock(f, unix.LOCK_SH); err != nil {
			f.Close()
			return nil, fmt.Errorf("in-use marker: %w", err)
		}
		if sameFile(f, st.inUsePath(id)) {
			return f, nil
		}
		f.Close()
	}
	return nil, errors.New("in-use marker keeps changing")
}

// tryExclusive takes the exclusive in-use lock of id, failing with ErrInUse
// if a sandbox holds it.
func (st *Store) tryExclusive(id string) (*os.File, error) {
	f, err := os.OpenFile(st.inUsePath(id), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("in-use marker: %w", err)
	}
	if err := flock(f, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, ErrInUse
		}
		return nil, fmt.Errorf("in-use marker: %w", err)
	}
	return f, nil
}

func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			return err
		}
	}
}

func sameFile(f *os.File, path string) bool {
	a, err1 := f.Stat()
	b, err2 := os.Stat(path)
	return err1 == nil && err2 == nil && os.SameFile(a, b)
}

// writeLock serialises the operations that change the store (import, load,
// pull, rm). It is a flock, so a crashed operation never leaves it held.
// Once it is held, recover() cleans up after operations that died.
func (st *Store) writeLock() (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(st.rboxDir, "write.lock"), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	if err := flock(f, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		st.prog.Note("waiting for another rbox image operation on this store")
		if err := flock(f, unix.LOCK_EX); err != nil {
			f.Close()
			return nil, err
		}
	}
	if err := st.recover(); err != nil {
		f.Close()
		return nil, fmt.Errorf("clean up after an interrupted operation: %w", err)
	}
	return func() {
		// Whatever the operation did, resolutions cached before it are
		// no longer trusted (see imagerun.ResolveCached).
		_ = imagerun.BumpGeneration(st.root)
		f.Close()
	}, nil
}

// pendingOp records what an operation may create before it commits, so a
// later operation can remove it if this one dies half-way.
type pendingOp struct {
	ID     string   `json:"id"`
	Layers []string `json:"layers"` // created layer IDs, bottom first
	path   string
}

// beginWrite takes the store's write lock and opens a pending operation
// with tmp as its scratch directory. end, deferred with the caller's named
// error, finishes the operation when the caller succeeded and rolls it back
// when it failed, then drops the lock.
func (st *Store) beginWrite() (op *pendingOp, tmp string, end func(errp *error), err error) {
	unlock, err := st.writeLock()
	if err != nil {
		return nil, "", nil, err
	}
	if op, tmp, err = st.newOp(); err != nil {
		unlock()
		return nil, "", nil, err
	}
	return op, tmp, func(errp *error) {
		if *errp != nil {
			st.abort(op)
		} else {
			st.finish(op)
		}
		unlock()
	}, nil
}

func (st *Store) newOp() (*pendingOp, string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, "", err
	}
	op := &pendingOp{ID: hex.EncodeToString(b[:])}
	op.path = filepath.Join(st.rboxDir, "pending", op.ID+".json")
	tmp := filepath.Join(st.rboxDir, "tmp", op.ID)
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return nil, "", err
	}
	if err := op.save(); err != nil {
		os.RemoveAll(tmp)
		return nil, "", err
	}
	return op, tmp, nil
}

func (op *pendingOp) save() error {
	b, err := json.Marshal(op)
	if err != nil {
		return err
	}
	tmp := op.path + ".new"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, op.path)
}

// addLayer notes that layer id is about to be created.
func (op *pendingOp) addLayer(id string) error {
	op.Layers = append(op.Layers, id)
	return op.save()
}

// finish forgets the record (the operation committed or cleaned up).
func (st *Store) finish(op *pendingOp) {
	os.Remove(op.path)
	os.RemoveAll(filepath.Join(st.rboxDir, "tmp", op.ID))
}

// abort removes what op created and forgets it.
func (st *Store) abort(op *pendingOp) {
	st.dropLayers(op.Layers)
	st.finish(op)
}

// dropLayers deletes layers (given bottom first) that no image or other
// layer uses.
func (st *Store) dropLayers(ids []string) {
	for i := len(ids) - 1; i >= 0; i-- {
		if _, err := st.s.Layer(ids[i]); err != nil {
			continue
		}
		if imgs, err := st.s.ImagesByTopLayer(ids[i]); err == nil && len(imgs) > 0 {
			continue
		}
		_ = st.s.DeleteLayer(ids[i]) // refused if it has children: fine
	}
}

// recover runs with the write lock held: any pending record then belongs
// to an operation that died, and every tmp directory is stale.
func (st *Store) recover() error {
	ents, err := os.ReadDir(filepath.Join(st.rboxDir, "pending"))
	if err != nil {
		return err
	}
	for _, e := range ents {
		p := filepath.Join(st.rboxDir, "pending", e.Name())
		if !strings.HasSuffix(e.Name(), ".json") {
			os.Remove(p)
			continue
		}
		var op pendingOp
		if b, err := os.ReadFile(p); err == nil && json.Unmarshal(b, &op) == nil {
			st.dropLayers(op.Layers)
		}
		if err := os.Remove(p); err != nil {
			return err
		}
	}
	tmps, err := os.ReadDir(filepath.Join(st.rboxDir, "tmp"))
	if err != nil {
		return err
	}
	for _, e := range tmps {
		if err := os.RemoveAll(filepath.Join(st.rboxDir, "tmp", e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// removeLocked unlinks the in-use marker at path, held exclusively as f,
// so resolvers waiting on the old file look again.
func removeLocked(f *os.File, path string) {
	if sameFile(f, path) {
		os.Remove(path)
	}
}
