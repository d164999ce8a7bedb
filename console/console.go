// Package console is the parent's side of the payload's pseudo-terminal,
// which pid 1 allocates from the sandbox's own devpts (initplan's plan)
// and hands to rbox's parent over a socket; the relay between it and the
// caller's terminal serves rbox exec and the landlock tier too.
//
// The terminal comes from the sandbox's private devpts, so it exists inside
// as /dev/pts/N (ttyname, ssh and sudo work), and whatever the payload does
// to it — TIOCSTI included — stays on it: the caller's terminal is only ever
// written to by rbox's relay.
package console

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// IsForeground reports whether this process's group owns terminal f: only
// then may it take the terminal over without being stopped by SIGTTOU.
func IsForeground(f *os.File) bool {
	pgrp, err := unix.IoctlGetInt(int(f.Fd()), unix.TIOCGPGRP)
	return err == nil && pgrp == unix.Getpgrp()
}

// Receive waits on socket for the master side pid 1 sends. It returns nil
// when pid 1 closed the socket without sending one (it failed before).
func Receive(socket *os.File) (*os.File, error) {
	buf := make([]byte, 1)
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := unix.Recvmsg(int(socket.Fd()), buf, oob, 0)
	if err != nil {
		return nil, fmt.Errorf("receive the terminal: %w", err)
	}
	if oobn == 0 {
		return nil, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, fmt.Errorf("receive the terminal: bad control message")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return nil, fmt.Errorf("receive the terminal: %v", err)
	}
	return os.NewFile(uintptr(fds[0]), "pty-master"), nil
}
