package tier

import (
	"fmt"
	"os"

	"github.com/creack/pty"

	"github.com/rbox-dev/rbox/console"
)

// terminal is the landlock tier's pseudo-terminal: the command gets the
// slave side as its controlling terminal, in its own session, and rbox
// relays between the master side and the caller's terminal, as the full
// tier does (package sandbox) with the one its pid 1 makes. Job control,
// ^C and ^Z then work inside, and TIOCSTI from inside reaches this terminal
// only.
type terminal struct {
	*console.Relay
	master, slave *os.File
}

func openTerminal() (*terminal, error) {
	master, slave, err := pty.Open()
	if err != nil {
		return nil, fmt.Errorf("open a pseudo-terminal: %v", err)
	}
	return &terminal{Relay: console.NewRelay(master), master: master, slave: slave}, nil
}

// stdio is the command's stdin, stdout and stderr: the slave in place of
// each that is a terminal, all three when none is; ctty is the first
// that is the slave.
func (t *terminal) stdio() (files [3]*os.File, ctty int) {
	ctty = -1
	for i, f := range []*os.File{os.Stdin, os.Stdout, os.Stderr} {
		files[i] = f
		if t.Host() == nil || console.IsTerminal(f) {
			files[i] = t.slave
			if ctty < 0 {
				ctty = i
			}
		}
	}
	return files, ctty
}
