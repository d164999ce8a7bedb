// Package state keeps what rbox knows about named sandboxes between rbox
// commands. There is no daemon: each sandbox's own rbox process (its
// supervisor) creates its entry, holds an exclusive flock on the entry's
// lock file for its whole life, and records how the command ended. Every
// other rbox command reads the entries; a lock nobody holds means the
// supervisor is gone, however it ended (SIGKILL included), so a dead entry
// is recognised without trusting a pid.
//
// Layout, under $XDG_RUNTIME_DIR/rbox (or /tmp/rbox-UID, made 0700 and
// checked to be the caller's own directory, when that variable is unset):
//
//	sandboxes/NAME/lock       flock held by the supervisor
//	sandboxes/NAME/state.json Info, replaced atomically (write, fsync, rename)
//	sandboxes/NAME/log        a detached sandbox's output; log.1 the older half
//
// Every file is reached from a directory descriptor one name at a time with
// openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS), and
// directories with O_NOFOLLOW: a symlink planted anywhere in the tree makes
// the operation fail, never follows it elsewhere (the CVE-2019-12439
// class).
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/spec"
)

// Info is one sandbox's entry.
type Info struct {
	Name string `json:"name"`
	// Supervisor is the rbox process that owns the sandbox; Init is the
	// sandbox's pid 1, as the host sees it.
	Supervisor Proc `json:"supervisor"`
	Init       Proc `json:"init"`
	// Payload is the sandbox's command, once it runs: rbox exec joins its
	// namespaces, kill signals it.
	Payload Proc   `json:"payload"`
	Status  Status `json:"status"`
	// ExitCode is the command's, as rbox would have returned it, once
	// Status is StatusExited.
	ExitCode int       `json:"exit_code"`
	Created  time.Time `json:"created"`
	Finished time.Time `json:"finished,omitempty"`
	Command  []string  `json:"command"`
	Detached bool      `json:"detached,omitempty"`
	// Remove asks the supervisor to delete the entry when the command ends.
	Remove bool `json:"remove,omitempty"`
	// Net and Ports describe the network for ps.
	Net   string   `json:"net,omitempty"`
	Ports []string `json:"ports,omitempty"`
	// Exec is what rbox exec needs to give a joining command the sandbox's
	// own rules.
	Exec ExecRules `json:"exec"`
	// Tier is the isolation tier the sandbox runs in; Limits its
	// resource limits, each with the mechanism holding it (for ps).
	Tier   string  `json:"tier,omitempty"`
	Limits []Limit `json:"limits,omitempty"`
}

// Limit is one resource limit of a sandbox, as ps shows it.
type Limit struct {
	// Name is memory, swap, pids, cpus or an --ulimit name.
	Name  string `json:"name"`
	Value string `json:"value"`
	// Mechanism holds it: "cgroup v2", "cgroup v1", "rlimit" or "none".
	Mechanism string `json:"mechanism"`
}

// ExecRules are the rules the sandbox's command runs under, which a command
// joining it gets too.
type ExecRules struct {
	UID  uint32   `json:"uid"`
	GID  uint32   `json:"gid"`
	Env  []string `json:"env"`
	Cwd  string   `json:"cwd"`
	Caps []string `json:"caps"`
	// Namespaces the sandbox made new (the others are the host's).
	Namespaces []string `json:"namespaces"`
	// SeccompBPF and SeccompFlags are the compiled filter; empty when the
	// sandbox runs unconfined.
	SeccompBPF   []byte `json:"seccomp_bpf,omitempty"`
	SeccompFlags uint   `json:"seccomp_flags,omitempty"`
	// SetgroupsDenied mirrors the id maps: setgroups(2) fails inside.
	SetgroupsDenied bool `json:"setgroups_denied,omitempty"`
	// Cgroups are the sandbox's cgroup directories on the host (one per
	// hierarchy), when it has them; a joining command is placed in each
	// first.
	Cgroups []string `json:"cgroups,omitempty"`
	// Rlimits are the sandbox's rlimits, which a joining command sets on
	// itself.
	Rlimits []spec.Rlimit `json:"rlimits,omitempty"`
	// Compensation is the degraded tier's (spec.Spec.Compensation), which
	// a joining command enters too.
	Compensation *spec.Compensation `json:"compensation,omitempty"`
}

// Proc names a process across pid reuse: its pid and its start time in
// clock ticks after boot (field 22 of /proc/PID/stat).
type Proc struct {
	PID       int    `json:"pid"`
	StartTime uint64 `json:"start_time"`
}

// Status is a sandbox's life stage.
type Status string

const (
	StatusStarting Status = "starting"
	StatusRunning  Status = "running"
	StatusExited   Status = "exited"
)

// Errors a caller can tell apart.
var (
	ErrNotFound = errors.New("no such sandbox")
	ErrInUse    = errors.New("name in use")
)

// Store is the caller's state directory, open.
type Store struct {
	root  string // for messages only
	boxes int    // the sandboxes directory
}

// Dir is where the caller's state lives.
func Dir() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "rbox")
	}
	return fmt.Sprintf("/tmp/rbox-%d", os.Getuid())
}

// Exists reports whether the caller's state directory exists. Where it
// does not, a lookup finds nothing and need not make it: a mistyped name
// leaves nothing behind.
func Exists() bool {
	_, err := os.Lstat(Dir())
	return err == nil
}

// Open opens (creating when missing) the caller's state directory. The
// directory and its parent entries must be the caller's own, not group or
// world writable, and no symlink: under /tmp anyone may have made the name
// first.
func Open() (*Store, error) {
	root := Dir()
	parent, err := unix.Open(filepath.Dir(root), unix.O_DIRECTORY|unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("state directory %s: %w", filepath.Dir(root), err)
	}
	defer unix.Close(parent)
	top, err := ownDir(parent, filepath.Base(root), root)
	if err != nil {
		return nil, err
	}
	defer unix.Close(top)
	boxes, err := ownDir(top, "sandboxes", root+"/sandboxes")
	if err != nil {
		return nil, err
	}
	return &Store{root: root, boxes: boxes}, nil
}

// ownDir opens (making it 0700 when missing) the directory name under dir
// without following a symlink, and checks it is the caller's and private.
func ownDir(dir int, name, path string) (int, error) {
	if err := unix.Mkdirat(dir, name, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
		return -1, fmt.Errorf("state directory %s: %w", path, err)
	}
	fd, err := unix.Openat(dir, name, unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("state directory %s: %w (remove it if it is not yours)", path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("state directory %s: %w", path, err)
	}
	if int(st.Uid) != os.Getuid() || st.Mode&0o077 != 0 {
		unix.Close(fd)
		return -1, fmt.Errorf("state directory %s is not private to uid %d (owner %d, mode %o): remove it", path, os.Getuid(), st.Uid, st.Mode&0o7777)
	}
	return fd, nil
}

// Close releases the store.
func (s *Store) Close() { unix.Close(s.boxes) }

// Path is the state directory, for messages and documentation.
func (s *Store) Path() string { return s.root }

// ValidName reports whether name can name a sandbox: 1 to 63 letters,
// digits, '_', '.' and '-', starting with a letter or digit (as podman and
// docker accept them).
func ValidName(name string) error {
	if name == "" || len(name) > 63 {
		return fmt.Errorf("invalid sandbox name %q: 1 to 63 characters", name)
	}
	for i, c := range []byte(name) {
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if !alnum && (i == 0 || c != '_' && c != '.' && c != '-') {
			return fmt.Errorf("invalid sandbox name %q: use letters, digits, '_', '.' and '-', starting with a letter or digit", name)
		}
	}
	return nil
}

// resolve is how every file of the store is opened: beneath its directory,
// no symlink followed, no /proc magic link.
const resolve = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

func openIn(dir int, name string, flags uint64, mode uint64) (int, error) {
	for {
		fd, err := unix.Openat2(dir, name, &unix.OpenHow{Flags: flags | unix.O_CLOEXEC | unix.O_NOFOLLOW, Mode: mode, Resolve: resolve})
		if err == unix.ENOSYS {
			return openOneName(dir, name, flags, mode)
		}
		if err != unix.EINTR && err != unix.EAGAIN {
			return fd, err
		}
	}
}

// openOneName is openIn on a kernel without openat2 (before 5.6): the
// store's names are one component each, for which O_NOFOLLOW alone keeps
// the open beneath dir and off symlinks (procfs's magic links are
// symlinks too). Any other name is refused as openat2 would refuse one
// that leaves dir.
func openOneName(dir int, name string, flags, mode uint64) (int, error) {
	if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
		return -1, unix.EXDEV
	}
	return unix.Openat(dir, name, int(flags)|unix.O_CLOEXEC|unix.O_NOFOLLOW, uint32(mode))
}

func openDir(dir int, name string) (int, error) {
	return openIn(dir, name, unix.O_DIRECTORY|unix.O_RDONLY, 0)
}

// Entry is a sandbox's entry held by its supervisor: it holds the lock.
type Entry struct {
	store *Store
	Name  string
	dir   int
	lock  int
}

// Create makes the entry for info.Name and locks it, or fails with
// ErrInUse (wrapped, with what holds the name) when a live or exited
// sandbox has it. The entry is built under a temporary name and renamed
// into place without replacing anything, so of two concurrent creations
// exactly one wins, and no reader ever sees an entry whose lock is not yet
// held.
func (s *Store) Create(info *Info) (*Entry, error) {
	if err := ValidName(info.Name); err != nil {
		return nil, err
	}
	tmp := fmt.Sprintf(".new-%d-%d", os.Getpid(), time.Now().UnixNano())
	if err := unix.Mkdirat(s.boxes, tmp, 0o700); err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	dir, err := openDir(s.boxes, tmp)
	if err != nil {
		_ = unix.Unlinkat(s.boxes, tmp, unix.AT_REMOVEDIR)
		return nil, fmt.Errorf("state: %w", err)
	}
	e := &Entry{store: s, Name: info.Name, dir: dir, lock: -1}
	fail := func(err error) (*Entry, error) {
		removeAll(s.boxes, tmp)
		e.Release()
		return nil, err
	}
	if e.lock, err = openIn(dir, "lock", unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o600); err != nil {
		return fail(fmt.Errorf("state: %w", err))
	}
	if err := unix.Flock(e.lock, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return fail(fmt.Errorf("state: lock: %w", err))
	}
	if err := e.Write(info); err != nil {
		return fail(err)
	}
	for attempt := 0; ; attempt++ {
		err := unix.Renameat2(s.boxes, tmp, s.boxes, info.Name, unix.RENAME_NOREPLACE)
		if err == nil {
			return e, nil
		}
		if !errors.Is(err, unix.EEXIST) {
			return fail(fmt.Errorf("state: %w", err))
		}
		if attempt > 0 {
			return fail(fmt.Errorf("%w by another sandbox starting now", ErrInUse))
		}
		// Taken: by a live or exited sandbox (in use), or by one whose
		// supervisor died, which is cleaned and the name reused.
		old, live, err := s.Get(info.Name)
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			return fail(err)
		case live:
			return fail(fmt.Errorf("%w by a running sandbox (supervisor pid %d)", ErrInUse, old.Supervisor.PID))
		case old.Status == StatusExited:
			return fail(fmt.Errorf("%w by an exited sandbox", ErrInUse))
		}
	}
}

// Write replaces the entry's state with info, atomically.
func (e *Entry) Write(info *Info) error {
	data, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	tmp := fmt.Sprintf(".state-%d-%d", os.Getpid(), time.Now().UnixNano())
	fd, err := openIn(e.dir, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	f := os.NewFile(uintptr(fd), tmp)
	_, err = f.Write(append(data, '\n'))
	if err == nil {
		err = f.Sync()
	}
	f.Close()
	if err == nil {
		err = unix.Renameat(e.dir, tmp, e.dir, "state.json")
	}
	if err != nil {
		_ = unix.Unlinkat(e.dir, tmp, 0)
		return fmt.Errorf("state: write: %w", err)
	}
	return nil
}

// OpenLog opens a new file of the entry (the log) for appending.
func (e *Entry) OpenLog(name string) (*os.File, error) {
	fd, err := openIn(e.dir, name, unix.O_WRONLY|unix.O_CREAT|unix.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("log: %w", err)
	}
	return os.NewFile(uintptr(fd), name), nil
}

// RotateLog moves log to log.1, replacing the older half.
func (e *Entry) RotateLog() error {
	return unix.Renameat(e.dir, "log", e.dir, "log.1")
}

// Remove deletes the entry while its lock is held.
func (e *Entry) Remove() error {
	dead := fmt.Sprintf(".rm-%d-%d", os.Getpid(), time.Now().UnixNano())
	if err := unix.Renameat2(e.store.boxes, e.Name, e.store.boxes, dead, unix.RENAME_NOREPLACE); err != nil {
		return fmt.Errorf("state: remove %s: %w", e.Name, err)
	}
	removeAll(e.store.boxes, dead)
	return nil
}

// Release closes the entry; its lock goes with the last descriptor.
func (e *Entry) Release() {
	if e.lock >= 0 {
		unix.Close(e.lock)
		e.lock = -1
	}
	if e.dir >= 0 {
		unix.Close(e.dir)
		e.dir = -1
	}
}

// LockFD is the descriptor holding the lock, which the supervisor must keep
// out of the sandbox (it is close-on-exec).
func (e *Entry) LockFD() int { return e.lock }

// Get reads name's entry and whether its supervisor is alive. An entry whose
// supervisor died before recording an end is removed and reported as
// ErrNotFound.
func (s *Store) Get(name string) (*Info, bool, error) {
	if err := ValidName(name); err != nil {
		return nil, false, err
	}
	dir, err := openDir(s.boxes, name)
	if errors.Is(err, unix.ENOENT) {
		return nil, false, fmt.Errorf("%w %q", ErrNotFound, name)
	}
	if err != nil {
		return nil, false, fmt.Errorf("state of %s: %w", name, err)
	}
	defer unix.Close(dir)
	lock, err := openIn(dir, "lock", unix.O_RDONLY, 0)
	if err != nil {
		return nil, false, fmt.Errorf("state of %s: lock: %w", name, err)
	}
	defer unix.Close(lock)
	live := unix.Flock(lock, unix.LOCK_SH|unix.LOCK_NB) != nil
	info, err := readInfo(dir)
	if err != nil {
		return nil, false, fmt.Errorf("state of %s: %w", name, err)
	}
	if !live && info.Status != StatusExited {
		// The supervisor died without recording an end: clean, holding
		// the lock so that a new sandbox of that name is not removed.
		s.removeLocked(name, lock)
		return nil, false, fmt.Errorf("%w %q", ErrNotFound, name)
	}
	return info, live, nil
}

// Lock takes the lock of an entry whose supervisor has ended and returns it
// as an Entry that can be removed; it fails with ErrInUse while the
// supervisor lives.
func (s *Store) Lock(name string) (*Entry, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	dir, err := openDir(s.boxes, name)
	if errors.Is(err, unix.ENOENT) {
		return nil, fmt.Errorf("%w %q", ErrNotFound, name)
	}
	if err != nil {
		return nil, fmt.Errorf("state of %s: %w", name, err)
	}
	e := &Entry{store: s, Name: name, dir: dir, lock: -1}
	if e.lock, err = openIn(dir, "lock", unix.O_RDONLY, 0); err != nil {
		e.Release()
		return nil, fmt.Errorf("state of %s: lock: %w", name, err)
	}
	if unix.Flock(e.lock, unix.LOCK_EX|unix.LOCK_NB) != nil {
		e.Release()
		return nil, fmt.Errorf("%w: %s is running", ErrInUse, name)
	}
	return e, nil
}

// removeLocked removes name once it holds lock, and only if name still is
// the entry that lock belongs to.
func (s *Store) removeLocked(name string, lock int) {
	if unix.Flock(lock, unix.LOCK_EX|unix.LOCK_NB) != nil {
		return
	}
	dead := fmt.Sprintf(".rm-%d-%d", os.Getpid(), time.Now().UnixNano())
	if unix.Renameat2(s.boxes, name, s.boxes, dead, unix.RENAME_NOREPLACE) != nil {
		return
	}
	var held, moved unix.Stat_t
	if unix.Fstat(lock, &held) == nil && unix.Fstatat(s.boxes, dead+"/lock", &moved, unix.AT_SYMLINK_NOFOLLOW) == nil &&
		(held.Ino != moved.Ino || held.Dev != moved.Dev) {
		// A new sandbox took the name meanwhile: put it back.
		_ = unix.Renameat2(s.boxes, dead, s.boxes, name, unix.RENAME_NOREPLACE)
		return
	}
	removeAll(s.boxes, dead)
}

// Wait blocks until name's supervisor has ended, then returns its entry.
func (s *Store) Wait(name string) (*Info, error) {
	dir, err := openDir(s.boxes, name)
	if errors.Is(err, unix.ENOENT) {
		return nil, fmt.Errorf("%w %q", ErrNotFound, name)
	}
	if err != nil {
		return nil, fmt.Errorf("state of %s: %w", name, err)
	}
	defer unix.Close(dir)
	lock, err := openIn(dir, "lock", unix.O_RDONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("state of %s: lock: %w", name, err)
	}
	defer unix.Close(lock)
	for {
		err := unix.Flock(lock, unix.LOCK_SH)
		if err != unix.EINTR {
			break
		}
	}
	_ = unix.Flock(lock, unix.LOCK_UN)
	info, err := readInfo(dir)
	if err != nil {
		return nil, fmt.Errorf("state of %s: %w", name, err)
	}
	return info, nil
}

// Alive reports whether name's supervisor still holds its lock (false once
// the entry is gone).
func (s *Store) Alive(name string) bool {
	_, live, err := s.Get(name)
	return err == nil && live
}

func readInfo(dir int) (*Info, error) {
	fd, err := openIn(dir, "state.json", unix.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "state.json")
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 16<<20))
	if err != nil {
		return nil, err
	}
	var info Info
	if err := json.Unmarshal(data, &info); err != nil {
		return nil, fmt.Errorf("state.json: %w", err)
	}
	return &info, nil
}

// List returns every entry, cleaning those whose supervisor died, sorted by
// name, each with whether it is alive; entries that cannot be read (a
// symlink planted in their place) are skipped and their errors returned.
func (s *Store) List() (infos []*Info, lives []bool, bad []error, err error) {
	names, err := s.names()
	if err != nil {
		return nil, nil, nil, err
	}
	for _, n := range names {
		info, live, err := s.Get(n)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			bad = append(bad, err)
			continue
		}
		infos, lives = append(infos, info), append(lives, live)
	}
	return infos, lives, bad, nil
}

func (s *Store) names() ([]string, error) {
	fd, err := unix.Openat(s.boxes, ".", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "sandboxes")
	defer f.Close()
	all, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, n := range all {
		if !strings.HasPrefix(n, ".") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names, nil
}

// OpenFile opens one of name's files (the logs) for reading, or returns nil
// when it does not exist.
func (s *Store) OpenFile(name, file string) (*os.File, error) {
	dir, err := openDir(s.boxes, name)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, fmt.Errorf("%w %q", ErrNotFound, name)
		}
		return nil, fmt.Errorf("state of %s: %w", name, err)
	}
	defer unix.Close(dir)
	fd, err := openIn(dir, file, unix.O_RDONLY, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state of %s: %s: %w", name, file, err)
	}
	return os.NewFile(uintptr(fd), file), nil
}

// removeAll removes the directory name under dir and what it holds (one
// level: an entry has no subdirectory), never following a symlink.
func removeAll(dir int, name string) {
	if fd, err := openDir(dir, name); err == nil {
		f := os.NewFile(uintptr(fd), name)
		names, _ := f.Readdirnames(-1)
		for _, n := range names {
			_ = unix.Unlinkat(fd, n, 0)
		}
		f.Close()
	}
	_ = unix.Unlinkat(dir, name, unix.AT_REMOVEDIR)
}

// Self is the calling process as a Proc.
func Self() Proc { p, _ := ProcOf(os.Getpid()); return p }

// ProcOf reads pid's start time.
func ProcOf(pid int) (Proc, error) {
	st, err := startTime(pid)
	return Proc{PID: pid, StartTime: st}, err
}

// startTime is field 22 of /proc/PID/stat; the command name before it may
// hold spaces and parentheses, so fields are counted after the last ')'.
func startTime(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// PidFD opens a pidfd of p, and checks that it still is the process
// recorded (same start time): a pid reused since cannot be signalled or
// entered by mistake. The check after opening is race-free, as the pidfd
// pins the process.
func (p Proc) PidFD() (int, error) {
	if p.PID <= 0 {
		return -1, fmt.Errorf("no process recorded")
	}
	fd, err := unix.PidfdOpen(p.PID, 0)
	if err != nil {
		return -1, fmt.Errorf("process %d: %w", p.PID, err)
	}
	if st, err := startTime(p.PID); err != nil || st != p.StartTime {
		unix.Close(fd)
		return -1, fmt.Errorf("process %d has ended", p.PID)
	}
	return fd, nil
}

// Alive reports whether p still is the process recorded.
func (p Proc) Alive() bool {
	st, err := startTime(p.PID)
	return err == nil && st == p.StartTime
}

// Signal sends sig to p through a pidfd.
func (p Proc) Signal(sig unix.Signal) error {
	fd, err := p.PidFD()
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.PidfdSendSignal(fd, sig, nil, 0)
}
