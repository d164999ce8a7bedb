// Package spec holds the plain description of one sandbox run. The CLI
// builds a Spec, the parent hands it to the child across the re-exec as
// JSON, and every later stage reads from it; no package below the CLI knows
// about flags.
package spec

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Namespace names, as used by --share and in messages.
const (
	NSUser   = "user"
	NSMount  = "mount"
	NSPID    = "pid"
	NSNet    = "net"
	NSUTS    = "uts"
	NSIPC    = "ipc"
	NSCgroup = "cgroup"
	NSTime   = "time"
)

// ShareableNamespaces are the namespaces --share may keep from the host.
// The user and mount namespaces are always new: without them rbox could not
// build the sandbox as an unprivileged user.
var ShareableNamespaces = []string{NSPID, NSNet, NSUTS, NSIPC, NSCgroup, NSTime}

// MountKind says what a Mount entry creates.
type MountKind string

const (
	MountBind    MountKind = "bind"    // Source bound read-write at Dest
	MountROBind  MountKind = "ro-bind" // Source bound read-only at Dest
	MountTmpfs   MountKind = "tmpfs"   // a fresh tmpfs at Dest
	MountDir     MountKind = "dir"     // an empty directory at Dest
	MountSymlink MountKind = "symlink" // a symlink at Dest pointing to Source

	// The kinds below come with bwrap's command line (issue 12).
	MountDevBind    MountKind = "dev-bind"     // Source bound read-write at Dest, device nodes usable
	MountProc       MountKind = "proc"         // a fresh procfs at Dest
	MountDev        MountKind = "dev"          // bwrap's minimal /dev at Dest
	MountMqueue     MountKind = "mqueue"       // a fresh mqueue filesystem at Dest
	MountRemountRO  MountKind = "remount-ro"   // Dest, a mount point already made, turned read-only
	MountFile       MountKind = "file"         // a file at Dest holding Data
	MountBindData   MountKind = "bind-data"    // Data in a file bound at Dest
	MountROBindData MountKind = "ro-bind-data" // Data in a file bound read-only at Dest
	MountChmod      MountKind = "chmod"        // Dest, which exists, given Mode
	MountOverlay    MountKind = "overlay"      // an overlay of Lowers at Dest, writes to Source (upper) or a tmpfs
)

// Mount is one user-requested filesystem entry, applied in order after the
// base view is built.
type Mount struct {
	Kind MountKind `json:"kind"`
	// Source is an absolute host path for binds, the link target for symlinks.
	Source string `json:"source,omitempty"`
	// Dest is an absolute path inside the sandbox.
	Dest string `json:"dest"`
	// SizeBytes and Mode apply to tmpfs; zero means the default.
	SizeBytes int64  `json:"size_bytes,omitempty"`
	Mode      uint32 `json:"mode,omitempty"`

	// For the kinds bwrap's command line adds (issue 12):
	// Data is the content of a file, bind-data or ro-bind-data.
	Data []byte `json:"data,omitempty"`
	// HasMode says Mode was given (bwrap's --perms may say 0).
	HasMode bool `json:"has_mode,omitempty"`
	// Lowers are an overlay's host directories, top first; Work is the
	// work directory beside Source; ReadOnly makes the overlay read-only
	// (no upper), Tmp puts its writes in a tmpfs.
	Lowers   []string `json:"lowers,omitempty"`
	Work     string   `json:"work,omitempty"`
	ReadOnly bool     `json:"read_only,omitempty"`
	// Optional drops a bind whose source is missing (--bind-try); the
	// CLI resolves it before the Spec goes out.
	Optional bool `json:"-"`
}

// IDMap is one line of /proc/PID/uid_map or gid_map.
type IDMap struct {
	Inside  uint32 `json:"inside"`
	Outside uint32 `json:"outside"`
	Count   uint32 `json:"count"`
}

// TimeOffsets are the time namespace offsets in seconds.
type TimeOffsets struct {
	Monotonic int64 `json:"monotonic,omitempty"`
	Boottime  int64 `json:"boottime,omitempty"`
}

// Network modes.
const (
	NetNone        = "none"
	NetHost        = "host"
	NetUser        = "user" // resolved by the parent to pasta or slirp4netns
	NetPasta       = "pasta"
	NetSlirp4netns = "slirp4netns"
)

// Spec is the whole request for one sandbox.
type Spec struct {
	// Args is the command and its arguments; Args[0] is looked up in the
	// sandbox's PATH.
	Args []string `json:"args"`
	// Env is the payload's complete environment.
	Env []string `json:"env"`
	// Cwd is the payload's working directory inside the sandbox.
	Cwd string `json:"cwd"`
	// Hostname is set when the UTS namespace is new.
	Hostname string `json:"hostname,omitempty"`
	// Share lists namespaces kept from the host (see ShareableNamespaces).
	Share []string `json:"share,omitempty"`

	// UID and GID the payload runs as inside.
	UID uint32 `json:"uid"`
	GID uint32 `json:"gid"`
	// UIDMap and GIDMap are the maps the parent writes for the child.
	UIDMap []IDMap `json:"uid_map"`
	GIDMap []IDMap `json:"gid_map"`

	// RootFS is a host directory used as / (read-only) instead of the
	// default host view; empty means the host view.
	RootFS string `json:"rootfs,omitempty"`
	// Layers are an image's layer directories, top first, stacked as /
	// (set from --image); they take the place of RootFS.
	Layers []string `json:"layers,omitempty"`
	// Overlay makes the root writable through an overlay: RootFS or Layers
	// when given, else each directory of the host view. Nil keeps it
	// read-only (an image always gets one).
	Overlay *Overlay `json:"overlay,omitempty"`
	// StorageDriver forces how overlays are made: "overlay" (native),
	// "fuse-overlayfs" or "vfs"; empty picks native, else fuse-overlayfs.
	StorageDriver string `json:"storage_driver,omitempty"`
	// Mounts are applied in order on top of the base view.
	Mounts []Mount `json:"mounts,omitempty"`

	TimeOffsets TimeOffsets `json:"time_offsets"`

	// Caps is the capability set (names like "CAP_CHOWN") root inside keeps.
	// A non-root payload gets none unless listed in CapsNonRoot via --cap-add.
	Caps []string `json:"caps"`
	// SeccompFilter is the payload's system call filter, compiled by the
	// CLI; nil means none (--seccomp unconfined).
	SeccompFilter *SeccompFilter `json:"seccomp_filter,omitempty"`
	// AllowNested lets the payload create user namespaces (rbox in rbox).
	AllowNested bool `json:"allow_nested,omitempty"`

	// PreserveFDs keeps fds 3..3+N-1 open for the payload.
	PreserveFDs int `json:"preserve_fds,omitempty"`
	// TTY allocates a pseudo-terminal for the payload.
	TTY bool `json:"tty,omitempty"`

	// Net is one of the Net* modes; NetUser is resolved to NetPasta or
	// NetSlirp4netns before the Spec is built.
	Net string `json:"net"`
	// Publish lists host ports forwarded into the sandbox (user-mode
	// network only).
	Publish []Port `json:"publish,omitempty"`
	// AllowHostLoopback lets the sandbox reach the host's loopback at
	// 10.0.2.2 (user-mode network only).
	AllowHostLoopback bool `json:"allow_host_loopback,omitempty"`
	// DNS, when set, is the sandbox's only nameserver.
	DNS string `json:"dns,omitempty"`

	// ---- Resource limits (package limits, docs/limits.md) ----
	// Limits are the sandbox's resource limits and statistics; nil
	// means none asked for.
	Limits *Limits `json:"limits,omitempty"`

	// --- bwrap's meaning (issue 12: rbox bwrap, and the native options
	// that come from it) ---

	// EmptyRoot builds / as bwrap does: an empty writable tmpfs holding
	// only what Mounts make, in their order; no host view, /proc, /sys,
	// /dev or /tmp unless a Mount makes them.
	EmptyRoot bool `json:"empty_root,omitempty"`
	// CwdFallbacks are tried in order when Cwd cannot be entered (bwrap
	// without --chdir: the caller's directory, then $HOME); / when none
	// can.
	CwdFallbacks []string `json:"cwd_fallbacks,omitempty"`
	// KeepSession starts the command in pid 1's session instead of a new
	// one (bwrap without --new-session).
	KeepSession bool `json:"keep_session,omitempty"`
	// Argv0, when set, is the command's argv[0] in place of Args[0], which
	// is still what is executed (bwrap's --argv0).
	Argv0 string `json:"argv0,omitempty"`
	// DisableUserns sets the sandbox's user.max_user_namespaces to 0 before
	// the command starts: it can make no user namespace (bwrap's
	// --disable-userns).
	DisableUserns bool `json:"disable_userns,omitempty"`
	// SeccompExtra are more seccomp programs, installed after
	// SeccompFilter in order (bwrap's repeated --add-seccomp-fd).
	SeccompExtra []SeccompFilter `json:"seccomp_extra,omitempty"`
	// Compensation, set by the degraded tier (package tier), stands in
	// for namespaces the host refused: what the payload and the commands
	// joining it enter, whatever --seccomp says.
	Compensation *Compensation `json:"compensation,omitempty"`
	// AsPID1 makes the command itself pid 1 of its new pid namespace, with
	// no init of rbox's (bwrap's --as-pid-1; rbox's fast path only).
	AsPID1 bool `json:"as_pid_1,omitempty"`
	// LockFiles are paths inside the sandbox on which pid 1 holds a read
	// lock (fcntl F_RDLCK) for the sandbox's life (bwrap's --lock-file).
	LockFiles []string `json:"lock_files,omitempty"`
	// DieWithParent: the command, too, is killed when its parent (pid 1)
	// dies, for a shared pid namespace, where pid 1's end ends no other
	// process (rbox itself arms the same for its own parent).
	DieWithParent bool `json:"die_with_parent,omitempty"`
	// BwrapErrors reports the sandbox's own failures in bwrap's shape
	// ("bwrap: ...", exit 1).
	BwrapErrors bool `json:"bwrap_errors,omitempty"`

	// LegacyMount builds the filesystem with mount(2) and a walk of
	// rbox's own, for a kernel without openat2 and the new mount API
	// (package mountapi); the parent sets it.
	LegacyMount bool `json:"legacy_mount,omitempty"`

	// --- caller-given namespaces (bwrap's --userns, --pidns, --userns2,
	// --userns-block-fd): rbox's fast path only ---

	// JoinUserNS and JoinPIDNS are descriptors (0: none) of a user and a
	// pid namespace that pid 1 is made in, entered (setns) before its
	// clone: the namespaces the sandbox makes belong to the joined user
	// namespace, whose id maps are already written; with a pid namespace
	// not shared, the sandbox's is a child of the joined one.
	JoinUserNS int `json:"join_userns,omitempty"`
	JoinPIDNS  int `json:"join_pidns,omitempty"`
	// SwitchUserNS is a descriptor (0: none) of a user namespace pid 1
	// enters once the filesystem is built: the command runs in it, its
	// namespaces stay owned by the one they were made in.
	SwitchUserNS int `json:"switch_userns,omitempty"`
	// KeepUID and KeepGID leave the command the uid and gid the caller
	// has in the sandbox's user namespace (maps rbox did not write) in
	// place of UID and GID.
	KeepUID bool `json:"keep_uid,omitempty"`
	KeepGID bool `json:"keep_gid,omitempty"`
	// AssertUsernsDisabled makes pid 1 check, once set up, that it cannot
	// make a user namespace, and fail if it can.
	AssertUsernsDisabled bool `json:"assert_userns_disabled,omitempty"`

	// --- outbound traffic by policy (package network/egress) ---

	// Egress, when set, gives the sandbox its loopback and rbox's
	// filtering proxies, which reach only the allowed destinations; Net is
	// then NetNone (no helper runs).
	Egress *Egress `json:"egress,omitempty"`

	// Named sandboxes (issue 13).
	// JoinNet, when set, is a running sandbox's command: this sandbox is
	// made in its user namespace and shares its network namespace (rbox run
	// --net sandbox:NAME). UIDMap and GIDMap are then that namespace's.
	JoinNet *Process `json:"join_net,omitempty"`

	// --- sandbox networks (package network/bridge) ---

	// Bridge, when set, puts the sandbox on an rbox network: pid 1 is made
	// in the network's user namespace (UIDMap and GIDMap are then its),
	// with a network namespace of its own, to which the network's holder
	// gives an eth0 on the bridge before the command starts. Net is then
	// NetNone and DNS the network's gateway.
	Bridge *Bridge `json:"bridge,omitempty"`

	// --- a newcomer's conventions (issue 15) ---

	// GeneratedFiles are small files the CLI made, bound read-only at
	// their Dest (an /etc/passwd naming the uid inside).
	GeneratedFiles []GeneratedFile `json:"generated_files,omitempty"`
}

// Bridge is the rbox network a sandbox is on.
type Bridge struct {
	// Network is its name, Root the directory of the caller's networks.
	Network string `json:"network"`
	Root    string `json:"root"`
	// Holder is the process holding the network's namespaces.
	Holder Process `json:"holder"`
	// Name is the name the sandbox answers to on the network ("" for none).
	Name string `json:"name,omitempty"`
	// Publish are host ports the network's helper forwards to the
	// sandbox's address while it runs.
	Publish []Port `json:"publish,omitempty"`
}

// Egress is an outbound policy: the rules as given (see package
// network/egress for their syntax).
type Egress struct {
	Allow []string `json:"allow"`
	// AllowHostLoopback lets allowed destinations be the host's loopback.
	AllowHostLoopback bool `json:"allow_host_loopback,omitempty"`
}

// Process names a running process across pid reuse: its pid and its start
// time (field 22 of /proc/PID/stat).
type Process struct {
	PID       int    `json:"pid"`
	StartTime uint64 `json:"start_time"`
}

// GeneratedFile is content placed read-only at Dest in the sandbox.
type GeneratedFile struct {
	Dest string `json:"dest"`
	Data []byte `json:"data"`
}

// SeccompFilter is a compiled seccomp filter, ready to load.
type SeccompFilter struct {
	// BPF is the program: an array of struct sock_filter in native byte
	// order.
	BPF []byte `json:"bpf"`
	// Flags are seccomp(2)'s SECCOMP_FILTER_FLAG_* bits to load it with.
	Flags uint `json:"flags,omitempty"`
}

// Compensation is what the degraded tier adds to a process's
// confinement: a Landlock domain and a seccomp program for what Landlock
// misses. Either may be nil.
type Compensation struct {
	Landlock *LandlockDomain `json:"landlock,omitempty"`
	Filter   *SeccompFilter  `json:"filter,omitempty"`
}

// LandlockDomain is a Landlock ruleset without rules: every access it
// handles is refused, and what it scopes is kept within the domain.
type LandlockDomain struct {
	// HandledFS, HandledNet and Scoped are struct landlock_ruleset_attr's
	// fields.
	HandledFS  uint64 `json:"handled_fs,omitempty"`
	HandledNet uint64 `json:"handled_net,omitempty"`
	Scoped     uint64 `json:"scoped,omitempty"`
	// AttrSize is the size of the attribute the kernel's ABI knows: 8,
	// 16 with HandledNet (ABI 4), 24 with Scoped (ABI 6).
	AttrSize int `json:"attr_size"`
}

// Port is one -p/--publish entry: HostIP:HostPort on the host reaches the
// sandbox's ChildPort.
type Port struct {
	HostIP    string `json:"host_ip"`
	HostPort  int    `json:"host_port"`
	ChildPort int    `json:"child_port"`
	Proto     string `json:"proto"` // "tcp" or "udp"
}

// Overlay says where an overlay's writes go.
type Overlay struct {
	// UpperDir and WorkDir are host directories that keep the writes
	// (--overlay-dir); empty means a tmpfs that goes with the sandbox.
	UpperDir string `json:"upper_dir,omitempty"`
	WorkDir  string `json:"work_dir,omitempty"`
}

// Argv is the command's argument vector: Args, with Argv0 as argv[0]
// when set.
func (s *Spec) Argv() []string {
	if s.Argv0 == "" || len(s.Args) == 0 {
		return s.Args
	}
	return append([]string{s.Argv0}, s.Args[1:]...)
}

// DefaultPath is the command search path when Env sets no PATH.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// SearchPath is the PATH the command is looked up in: the payload's own,
// else DefaultPath.
func (s *Spec) SearchPath() string { return SearchPathOf(s.Env) }

// SearchPathOf is the PATH of the environment env, or DefaultPath.
func SearchPathOf(env []string) string {
	path := DefaultPath
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	return path
}

// Shares reports whether namespace ns is kept from the host.
func (s *Spec) Shares(ns string) bool {
	for _, n := range s.Share {
		if n == ns {
			return true
		}
	}
	return false
}

// Encode writes s as JSON to w.
func (s *Spec) Encode(w io.Writer) error {
	return json.NewEncoder(w).Encode(s)
}

// Decode reads one Spec from r.
func Decode(r io.Reader) (*Spec, error) {
	var s Spec
	if err := json.NewDecoder(r).Decode(&s); err != nil {
		return nil, fmt.Errorf("decode sandbox spec: %w", err)
	}
	return &s, nil
}
