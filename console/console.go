// Package console gives the payload a pseudo-terminal of the sandbox's own
// and hands its master side to rbox's parent.
//
// The terminal comes from the sandbox's private devpts, so it exists inside
// as /dev/pts/N (ttyname, ssh and sudo work), and whatever the payload does
// to it — TIOCSTI included — stays on it: the caller's terminal is only ever
// written to by rbox's relay.
package console

import (
	"fmt"
	"os"

	"github.com/creack/pty"
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

// Open allocates the terminal inside the sandbox, sends its master on the
// socket fd to the parent and returns the payload's stdio: the terminal in
// place of each of stdio that is a terminal, or of all three when none is.
// The terminal is the payload's (uid) and the tty group's (gid, or -1).
func Open(stdio []*os.File, socket int, uid uint32, gid int) ([]*os.File, error) {
	master, slave, err := pty.Open()
	if err != nil {
		return nil, fmt.Errorf("allocate the terminal: %w", err)
	}
	defer master.Close()
	if err := unix.Fchown(int(slave.Fd()), int(uid), gid); err != nil {
		return nil, fmt.Errorf("chown %s: %w", slave.Name(), err)
	}
	if err := bindConsole(slave.Name()); err != nil {
		return nil, err
	}
	rights := unix.UnixRights(int(master.Fd()))
	if err := unix.Sendmsg(socket, []byte{0}, rights, nil, 0); err != nil {
		return nil, fmt.Errorf("send the terminal to rbox: %w", err)
	}
	unix.Close(socket)
	out := make([]*os.File, len(stdio))
	any := false
	for i, f := range stdio {
		out[i] = f
		if IsTerminal(f) {
			out[i], any = slave, true
		}
	}
	if !any {
		for i := range out {
			out[i] = slave
		}
	}
	return out, nil
}

// bindConsole binds the terminal over the /dev/console fsetup made, as
// programs that write to the console expect.
func bindConsole(path string) error {
	tree, err := unix.OpenTree(unix.AT_FDCWD, path, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return fmt.Errorf("bind %s at /dev/console: %w", path, err)
	}
	defer unix.Close(tree)
	if err := unix.MoveMount(tree, "", unix.AT_FDCWD, "/dev/console", unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("bind %s at /dev/console: %w", path, err)
	}
	return nil
}

// FirstTerminal is the index of the first terminal in stdio (the payload's
// controlling terminal), or 0.
func FirstTerminal(stdio []*os.File) int {
	for i, f := range stdio {
		if IsTerminal(f) {
			return i
		}
	}
	return 0
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
