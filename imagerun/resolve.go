package imagerun

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/internal/helper"
)

// HelperName is the executable that links the image store.
const HelperName = "rbox-image"

// EnvLockFD tells `rbox-image resolve` which descriptor is the socket to
// send the in-use lock over.
const EnvLockFD = "RBOX_IMAGE_LOCK_FD"

// HelperPath finds rbox-image: $RBOX_IMAGE_HELPER, else next to the running
// executable, else in PATH.
func HelperPath() (string, error) {
	return helper.Path(HelperName, "RBOX_IMAGE_HELPER", "the image store helper")
}

// Resolve asks rbox-image to resolve an image of the store at root ("" for
// the default). The returned file holds the image's in-use lock: keep it
// open (and inherited by the sandbox) for as long as the image is mounted;
// `rbox image rm` is refused meanwhile. start starts the helper: nil runs
// it plainly (it then enters a user namespace itself), or a function that
// starts it directly in a user namespace with the store's maps.
func Resolve(helper, root, name string, start func(*exec.Cmd) error) (*Resolved, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	ours := os.NewFile(uintptr(fds[0]), "resolve-sock")
	theirs := os.NewFile(uintptr(fds[1]), "resolve-sock-child")
	defer ours.Close()
	args := []string{"resolve", name}
	if root != "" {
		args = append([]string{"--storage-root", root}, args...)
	}
	cmd := exec.Command(helper, args...)
	cmd.ExtraFiles = []*os.File{theirs}
	cmd.Env = append(os.Environ(), EnvLockFD+"=3")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if start == nil {
		start = (*exec.Cmd).Start
	}
	err = start(cmd)
	if err == nil {
		err = cmd.Wait()
	}
	theirs.Close()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return nil, nil, errors.New(msg)
	}
	var res Resolved
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		return nil, nil, fmt.Errorf("%s resolve: bad answer: %v", helper, err)
	}
	lock, err := recvFile(ours)
	if err != nil {
		return nil, nil, fmt.Errorf("%s resolve: no in-use lock received: %v", helper, err)
	}
	return &res, lock, nil
}

// SendFile passes f over the unix socket sock (used by rbox-image).
func SendFile(sock, f *os.File) error {
	rights := unix.UnixRights(int(f.Fd()))
	return unix.Sendmsg(int(sock.Fd()), []byte{'L'}, rights, nil, 0)
}

func recvFile(sock *os.File) (*os.File, error) {
	buf := make([]byte, 1)
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := unix.Recvmsg(int(sock.Fd()), buf, oob, unix.MSG_DONTWAIT|unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return nil, err
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, fmt.Errorf("bad control message (%v)", err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return nil, fmt.Errorf("bad rights (%v)", err)
	}
	return os.NewFile(uintptr(fds[0]), "image-in-use-lock"), nil
}
