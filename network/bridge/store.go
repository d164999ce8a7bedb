// Package bridge runs rbox's sandbox networks: a bridge in a network
// namespace of its own, held by a small rbox process, with a veth pair per
// sandbox on it, a DNS responder answering the names of its sandboxes, and
// one slirp4netns for outbound traffic.
//
// Two processes keep a network alive. The supervisor (in the caller's
// namespaces) holds the network's lock, starts the holder and slirp4netns,
// and ends both when it ends. The holder lives in the network's user
// namespace U_N and network namespace N: root there, it owns the bridge,
// makes each sandbox's veth pair (the sandboxes are made in U_N, so it has
// CAP_NET_ADMIN over their network namespaces too) and serves a Unix socket
// in the network's state directory.
package bridge

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/state"
)

// Network is a network's record (network.json in its directory).
type Network struct {
	Name string `json:"name"`
	// Subnet is the network's IPv4 prefix; Gateway, its first address, is
	// the bridge's and the DNS responder's.
	Subnet  string `json:"subnet"`
	Gateway string `json:"gateway"`
	// Subnet6 is its IPv6 unique local /64 (ipv6.go), empty for a network
	// made without --ipv6.
	Subnet6 string `json:"subnet6,omitempty"`
	// Supervisor and Holder are known once the network runs.
	Supervisor state.Proc `json:"supervisor"`
	Holder     state.Proc `json:"holder"`
	// HelperRestarts counts the times the supervisor started slirp4netns
	// again after it died; Broken, when set, says why the network no
	// longer reaches the outside (outbound.go).
	HelperRestarts int    `json:"helper_restarts,omitempty"`
	Broken         string `json:"broken,omitempty"`
}

// Errors the command line turns into messages.
var (
	ErrNotFound = errors.New("no such network")
	ErrExists   = errors.New("network exists")
)

// Root is the directory of the caller's networks, made private when
// missing (under the same checked directory as the named sandboxes').
func Root() (string, error) {
	st, err := state.Open()
	if err != nil {
		return "", err
	}
	st.Close()
	dir := filepath.Join(state.Dir(), "networks")
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return "", err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return "", err
	}
	if !fi.IsDir() || fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s is not a private directory: remove it", dir)
	}
	return dir, nil
}

// LookupRoot is Root for finding a network: where no network was ever
// made (no networks directory) it makes nothing and says ErrNotFound.
func LookupRoot() (string, error) {
	if _, err := os.Lstat(filepath.Join(state.Dir(), "networks")); errors.Is(err, os.ErrNotExist) {
		return "", ErrNotFound
	}
	return Root()
}

// ValidName checks a network's name: as a sandbox's, and not one of --net's
// own modes.
func ValidName(name string) error {
	switch name {
	case "host", "none", "user", "pasta", "slirp4netns":
		return fmt.Errorf("invalid network name %q: it is one of --net's modes", name)
	}
	if err := state.ValidName(name); err != nil {
		return errors.New(strings.Replace(err.Error(), "sandbox name", "network name", 1))
	}
	return nil
}

// ParseSubnet checks an IPv4 prefix given for a network: the network's own
// address, room for the gateway and at least two sandboxes.
func ParseSubnet(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("invalid subnet %q: give an IPv4 prefix such as 10.89.0.0/24", s)
	}
	if p.Bits() < 8 || p.Bits() > 29 {
		return netip.Prefix{}, fmt.Errorf("invalid subnet %q: the prefix length must be 8 to 29", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("invalid subnet %q: host bits set (did you mean %s?)", s, p.Masked())
	}
	if p.Overlaps(slirpNet) {
		return netip.Prefix{}, fmt.Errorf("invalid subnet %q: it overlaps %s, the outbound helper's", s, slirpNet)
	}
	return p, nil
}

// slirpNet is slirp4netns's own network in the holder's namespace.
var slirpNet = netip.MustParsePrefix("10.0.2.0/24")

// Gateway is the first address of p.
func Gateway(p netip.Prefix) netip.Addr { return p.Addr().Next() }

// Dir is a network's directory.
func Dir(root, name string) string { return filepath.Join(root, name) }

// Read reads a network's record.
func Read(root, name string) (*Network, error) {
	f, err := os.OpenFile(filepath.Join(Dir(root, name), "network.json"), os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	if err != nil {
		return nil, fmt.Errorf("network %s: %w", name, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 1<<16))
	if err != nil {
		return nil, err
	}
	var n Network
	if err := json.Unmarshal(b, &n); err != nil {
		return nil, fmt.Errorf("network %s: %w", name, err)
	}
	return &n, nil
}

// write replaces a network's record.
func write(dir string, n *Network) error {
	b, err := json.Marshal(n)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "network.json.tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "network.json"))
}

// Names lists the caller's networks.
func Names(root string) ([]string, error) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// Running tells whether a network's supervisor holds its lock.
func Running(root, name string) bool {
	fd, err := unix.Open(filepath.Join(Dir(root, name), "lock"), unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	if err := unix.Flock(fd, unix.LOCK_SH|unix.LOCK_NB); err != nil {
		return true
	}
	return false
}
