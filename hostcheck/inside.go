package hostcheck

// The child sides of the probes. Each runs in a fresh re-execution of the
// program, in the namespaces its parent cloned it into, and mounts only in
// its own mount namespace, which dies with it.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/network/bridge"
)

// probeNS reports the namespace named by $RBOX_PROBE_NS this process is
// in, for the parent to compare with its own.
func probeNS() (string, error) {
	link, err := os.Readlink("/proc/self/ns/" + os.Getenv(envNS))
	if err != nil {
		return "", err
	}
	return link, nil
}

// idReport is what probeIDs sees of its own ids.
type idReport struct {
	UID, GID       int
	UIDCount       uint64 // ids mapped by uid_map
	GIDCount       uint64
	SwitchedUID    int // the uid it became, or -1
	SwitchedGID    int
	UIDMap, GIDMap string
}

// probeIDs reports the ids this process has in its user namespace and how
// many each map holds. With $RBOX_PROBE_SWITCH_IDS set it then becomes the
// first mapped non-zero uid and gid, which only a map beyond the caller's
// own id allows.
func probeIDs() (string, error) {
	r := idReport{UID: os.Getuid(), GID: os.Getgid(), SwitchedUID: -1, SwitchedGID: -1}
	var err error
	if r.UIDMap, r.UIDCount, err = readMap("/proc/self/uid_map"); err != nil {
		return "", err
	}
	if r.GIDMap, r.GIDCount, err = readMap("/proc/self/gid_map"); err != nil {
		return "", err
	}
	if os.Getenv(envSwitchIDs) != "" {
		uid, gid := firstNonZero(r.UIDMap), firstNonZero(r.GIDMap)
		if uid < 0 || gid < 0 {
			return "", fmt.Errorf("the maps hold no id besides 0 (uid_map %q, gid_map %q)", r.UIDMap, r.GIDMap)
		}
		if err := unix.Setresgid(gid, gid, gid); err != nil {
			return "", fmt.Errorf("setresgid(%d) inside: %w", gid, err)
		}
		if err := unix.Setresuid(uid, uid, uid); err != nil {
			return "", fmt.Errorf("setresuid(%d) inside: %w", uid, err)
		}
		r.SwitchedUID, r.SwitchedGID = os.Getuid(), os.Getgid()
	}
	b, err := json.Marshal(r)
	return string(b), err
}

// readMap returns a map file's text on one line and the number of ids it
// maps.
func readMap(path string) (string, uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", 0, err
	}
	var total uint64
	var lines []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		n, _ := strconv.ParseUint(f[2], 10, 32)
		total += n
		lines = append(lines, strings.Join(f, " "))
	}
	return strings.Join(lines, ", "), total, nil
}

// firstNonZero is the lowest mapped inside id other than 0, or -1.
func firstNonZero(m string) int {
	best := -1
	for _, e := range strings.Split(m, ", ") {
		f := strings.Fields(e)
		if len(f) != 3 {
			continue
		}
		in, _ := strconv.Atoi(f[0])
		n, _ := strconv.Atoi(f[2])
		cand := in
		if in == 0 {
			if n < 2 {
				continue
			}
			cand = 1
		}
		if best < 0 || cand < best {
			best = cand
		}
	}
	return best
}

// probeProc mounts a fresh /proc over the host's, in this process's own
// mount and pid namespaces, and checks it shows the new pid namespace.
func probeProc() (string, error) {
	if err := privateMounts(); err != nil {
		return "", err
	}
	if err := mountAt("proc", "/proc", nil, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC); err != nil {
		return "", err
	}
	self, err := os.Readlink("/proc/self")
	if err != nil {
		return "", err
	}
	if self != "1" {
		return "", fmt.Errorf("the new /proc shows this process as pid %s, not 1", self)
	}
	return "mounted a fresh /proc in a new pid namespace; the probe is pid 1 there", nil
}

// Scratch layout of the overlay probes, on a tmpfs mounted over /tmp in the
// probe's own mount namespace.
const (
	scratchDir = "/tmp"
	lowerDir   = scratchDir + "/lower"
	upperDir   = scratchDir + "/upper"
	workDir    = scratchDir + "/work"
	mergedDir  = scratchDir + "/merged"
)

// probeOverlay mounts the kernel's overlayfs with userxattr, as an
// unprivileged user namespace needs, and exercises it.
func probeOverlay() (string, error) {
	if err := overlayScratch(); err != nil {
		return "", err
	}
	opts := [][2]string{{"lowerdir", lowerDir}, {"upperdir", upperDir}, {"workdir", workDir}, {"userxattr", ""}}
	if err := mountAt("overlay", mergedDir, opts, 0); err != nil {
		return "", err
	}
	if err := exerciseOverlay(); err != nil {
		return "", err
	}
	return "kernel overlayfs mounted with userxattr; new files, copy-up and whiteouts work", nil
}

// probeFuseOverlay mounts with fuse-overlayfs ($RBOX_PROBE_FUSE_OVERLAYFS)
// instead. The daemon it leaves is in this probe's pid namespace and dies
// with it.
func probeFuseOverlay() (string, error) {
	if err := overlayScratch(); err != nil {
		return "", err
	}
	log, err := os.Create(scratchDir + "/fuse-overlayfs.log")
	if err != nil {
		return "", err
	}
	defer log.Close()
	tool := os.Getenv(envFuseTool)
	// A file, not a pipe, for its output: the daemon keeps it open.
	cmd := exec.Command(tool, "-o", "lowerdir="+lowerDir+",upperdir="+upperDir+",workdir="+workDir, mergedDir)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		out, _ := os.ReadFile(log.Name())
		if s := strings.TrimSpace(string(out)); s != "" {
			return "", fmt.Errorf("%s: %v: %s", filepath.Base(tool), err, firstLine(s))
		}
		return "", fmt.Errorf("%s: %w", filepath.Base(tool), err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(mergedDir, &st); err != nil {
		return "", err
	}
	if st.Type != unix.FUSE_SUPER_MAGIC {
		return "", fmt.Errorf("%s exited without mounting %s", filepath.Base(tool), mergedDir)
	}
	if err := exerciseOverlay(); err != nil {
		return "", err
	}
	return "fuse-overlayfs mounted; new files, copy-up and whiteouts work", nil
}

// overlayScratch makes mounts private, puts a tmpfs on /tmp and fills the
// lower layer.
func overlayScratch() error {
	if err := privateMounts(); err != nil {
		return err
	}
	if err := mountAt("tmpfs", scratchDir, [][2]string{{"mode", "0700"}}, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV); err != nil {
		return err
	}
	for _, d := range []string{lowerDir, upperDir, workDir, mergedDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	for _, f := range []string{"kept", "changed", "removed"} {
		if err := os.WriteFile(filepath.Join(lowerDir, f), []byte("lower\n"), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// exerciseOverlay writes a new file, changes a lower file (copy-up) and
// removes one (whiteout), and checks what the layers show.
func exerciseOverlay() error {
	if err := os.WriteFile(filepath.Join(mergedDir, "new"), []byte("new\n"), 0o644); err != nil {
		return fmt.Errorf("create a file on the overlay: %w", err)
	}
	if err := os.WriteFile(filepath.Join(mergedDir, "changed"), []byte("upper\n"), 0o644); err != nil {
		return fmt.Errorf("copy up a lower file: %w", err)
	}
	if err := os.Remove(filepath.Join(mergedDir, "removed")); err != nil {
		return fmt.Errorf("remove a lower file (whiteout): %w", err)
	}
	if b, err := os.ReadFile(filepath.Join(lowerDir, "changed")); err != nil || string(b) != "lower\n" {
		return errors.New("writing through the overlay changed the lower layer")
	}
	if b, err := os.ReadFile(filepath.Join(upperDir, "changed")); err != nil || string(b) != "upper\n" {
		return errors.New("a changed file was not copied up to the upper layer")
	}
	entries, err := os.ReadDir(mergedDir)
	if err != nil {
		return err
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"changed", "kept", "new"}; !slices.Equal(names, want) {
		return fmt.Errorf("the overlay lists %v, want %v", names, want)
	}
	return nil
}

// probeTun creates a tap device in a new network namespace, as slirp4netns
// and pasta do for the sandbox.
func probeTun() (string, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("open /dev/net/tun: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("rboxcheck0")
	if err != nil {
		return "", err
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		return "", fmt.Errorf("create a tap device (TUNSETIFF): %w", err)
	}
	return "created a tap device in a new network namespace", nil
}

// probeNftables installs the bridge filter of --allow-net sandboxes on a
// network in a new network namespace, as a network's holder does.
func probeNftables() (string, error) {
	if err := bridge.CheckFilter(); err != nil {
		return "", err
	}
	return "installed the bridge filter of --allow-net sandboxes in a new network namespace", nil
}

// probeTimeNS makes a time namespace the way rbox's pid 1 does: unshare it
// for the children and set clock offsets before any process is in it.
func probeTimeNS() (string, error) {
	// The namespace change is the thread's; the thread is never released.
	runtime.LockOSThread()
	if err := unix.Unshare(unix.CLONE_NEWTIME); err != nil {
		return "", fmt.Errorf("unshare(CLONE_NEWTIME): %w", err)
	}
	// The file is per process, under /proc/PID only; /proc/TID names this
	// thread, which may not be the thread group's leader.
	offsets := fmt.Sprintf("/proc/%d/timens_offsets", unix.Gettid())
	if err := os.WriteFile(offsets, []byte("monotonic 1 0\nboottime 1 0\n"), 0); err != nil {
		return "", fmt.Errorf("set clock offsets: %w", err)
	}
	cur, err1 := os.Readlink("/proc/thread-self/ns/time")
	next, err2 := os.Readlink("/proc/thread-self/ns/time_for_children")
	if err := errors.Join(err1, err2); err != nil {
		return "", err
	}
	if cur == next {
		return "", errors.New("unshare(CLONE_NEWTIME) left the children's time namespace unchanged")
	}
	return "created a time namespace and set its clock offsets", nil
}

// privateMounts stops mount propagation between this namespace and the
// host's, both ways.
func privateMounts() error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	return nil
}

// mountAt creates a filesystem with the new mount API and attaches it at
// target; options with an empty value are flags.
func mountAt(fstype, target string, opts [][2]string, attrs int) error {
	what := "mount " + fstype + " on " + target
	fsfd, err := unix.Fsopen(fstype, unix.FSOPEN_CLOEXEC)
	if errors.Is(err, unix.ENOSYS) {
		return mountLegacy(fstype, target, opts, attrs)
	}
	if err != nil {
		return fmt.Errorf("%s: fsopen: %w", what, err)
	}
	defer unix.Close(fsfd)
	for _, o := range opts {
		if o[1] == "" {
			err = unix.FsconfigSetFlag(fsfd, o[0])
		} else {
			err = unix.FsconfigSetString(fsfd, o[0], o[1])
		}
		if err != nil {
			return fmt.Errorf("%s: option %s: %w", what, o[0], err)
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, attrs)
	if err != nil {
		return fmt.Errorf("%s: fsmount: %w", what, err)
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("%s: move_mount: %w", what, err)
	}
	return nil
}

// mountLegacy is mountAt with mount(2), for a kernel without the new
// mount API; the low MOUNT_ATTR_* bits are the MS_* flags.
func mountLegacy(fstype, target string, opts [][2]string, attrs int) error {
	var data []string
	for _, o := range opts {
		if o[1] == "" {
			data = append(data, o[0])
		} else {
			data = append(data, o[0]+"="+o[1])
		}
	}
	flags := uintptr(attrs) & (unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
	if err := unix.Mount(fstype, target, fstype, flags, strings.Join(data, ",")); err != nil {
		return fmt.Errorf("mount %s on %s: %w", fstype, target, err)
	}
	return nil
}
