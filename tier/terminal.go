package tier

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/console"
)

// terminal is the landlock tier's pseudo-terminal: the command gets the
// slave side as its controlling terminal, in its own session, and rbox
// relays between the master side and the caller's terminal, as the full
// tier does (package sandbox) with the one its pid 1 makes. Job control,
// ^C and ^Z then work inside, and TIOCSTI from inside reaches this terminal
// only.
type terminal struct {
	master, slave *os.File
	host          *os.File // the caller's terminal, nil when none of stdio is one
	saved         *unix.Termios
	copied        chan struct{}
}

func openTerminal() (*terminal, error) {
	master, slave, err := pty.Open()
	if err != nil {
		return nil, fmt.Errorf("open a pseudo-terminal: %v", err)
	}
	t := &terminal{master: master, slave: slave, copied: make(chan struct{})}
	for _, f := range []*os.File{os.Stdin, os.Stdout, os.Stderr} {
		if console.IsTerminal(f) {
			t.host = f
			break
		}
	}
	t.resize()
	return t, nil
}

// stdio is the command's stdin, stdout and stderr: the slave in place of
// each that is a terminal, all three when none is; ctty is the first
// that is the slave.
func (t *terminal) stdio() (files [3]*os.File, ctty int) {
	ctty = -1
	for i, f := range []*os.File{os.Stdin, os.Stdout, os.Stderr} {
		files[i] = f
		if t.host == nil || console.IsTerminal(f) {
			files[i] = t.slave
			if ctty < 0 {
				ctty = i
			}
		}
	}
	return files, ctty
}

func (t *terminal) resize() {
	if t.host != nil {
		_ = pty.InheritSize(t.host, t.master)
	}
}

// relay puts the caller's terminal in raw mode when it is stdin, so keys
// reach the command's line discipline, and copies both ways.
func (t *terminal) relay() {
	if console.IsTerminal(os.Stdin) {
		if tio, err := unix.IoctlGetTermios(0, unix.TCGETS); err == nil {
			t.saved = tio
			raw := *tio
			raw.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
			raw.Oflag &^= unix.OPOST
			raw.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
			raw.Cflag &^= unix.CSIZE | unix.PARENB
			raw.Cflag |= unix.CS8
			raw.Cc[unix.VMIN], raw.Cc[unix.VTIME] = 1, 0
			_ = unix.IoctlSetTermios(0, unix.TCSETS, &raw)
		}
	}
	if t.host == nil || console.IsTerminal(os.Stdin) {
		go func() { _, _ = io.Copy(t.master, os.Stdin) }()
	}
	out := os.Stdout
	if t.host != nil && !console.IsTerminal(os.Stdout) {
		out = os.Stderr
	}
	go func() {
		_, err := io.Copy(out, t.master)
		// EIO is how a pty master reports that every slave is closed.
		if err != nil && !errors.Is(err, unix.EIO) {
			fmt.Fprintf(os.Stderr, "rbox: terminal: %v\n", err)
		}
		close(t.copied)
	}()
}

// finish waits for the command's last output and gives the caller's
// terminal its modes back.
func (t *terminal) finish() {
	<-t.copied
	if t.saved != nil {
		_ = unix.IoctlSetTermios(0, unix.TCSETS, t.saved)
	}
	t.master.Close()
}
