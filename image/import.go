package image

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Import stores a root filesystem tarball (plain or compressed) as a
// one-layer image called name, like `docker import`. path "-" reads
// standard input.
func (st *Store) Import(path, name string) (info *Info, err error) {
	n, err := localName(name)
	if err != nil {
		return nil, err
	}
	op, tmp, end, err := st.beginWrite()
	if err != nil {
		return nil, err
	}
	defer end(&err)
	if path == "-" {
		path = filepath.Join(tmp, "stdin.tar")
		if err := st.saveStdin(path); err != nil {
			return nil, err
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, badInput("%s is not a regular file", path)
	}
	src := &imageSource{
		names:   []string{n},
		comment: "rbox image import " + filepath.Base(path),
		layers: []layerSource{{
			label: filepath.Base(path),
			size:  fi.Size(),
			open:  func() (io.ReadCloser, error) { return os.Open(path) },
		}},
	}
	return st.commit(src, op)
}

func (st *Store) saveStdin(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	st.prog.Start("stdin", "Reading standard input", 0)
	_, err = io.Copy(f, &countingReader{r: os.Stdin, prog: st.prog, id: "stdin"})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		st.prog.Done("stdin", "failed")
		return fmt.Errorf("read standard input: %w", err)
	}
	st.prog.Done("stdin", "done")
	return nil
}
