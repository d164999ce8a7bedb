// Package userns plans the uid and gid maps of the sandbox's user namespace
// and writes them for a child that waits for them.
//
// The caller is mapped to the requested id inside (root by default) and its
// subordinate ranges fill the other ids from 0 up, the layout podman's
// keep-id uses: files the payload writes on binds stay the caller's on the
// host. With no subordinate range, or no newuidmap/newgidmap, the map is the
// caller alone, which the kernel lets an unprivileged process write itself.
package userns

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/rbox-dev/rbox/spec"
	"github.com/rbox-dev/rbox/subid"
)

// Plan is the pair of maps for one sandbox and how to write them.
type Plan struct {
	UIDMap []spec.IDMap
	GIDMap []spec.IDMap
	// Helpers is true when newuidmap/newgidmap must write the maps (a
	// subordinate range of an unprivileged caller); otherwise the parent
	// writes /proc/PID/{uid,gid}_map itself.
	Helpers bool
	// SetgroupsDenied is true when /proc/PID/setgroups must be "deny": the
	// kernel's price for an unprivileged process writing its own gid_map.
	SetgroupsDenied bool
	// Warning, when not empty, says why the sandbox got only the caller's
	// own id and how to get the full range.
	Warning string
}

// Caller describes who runs rbox.
type Caller struct {
	Name     string
	UID, GID uint32
}

// Lookup paths, replaceable in tests.
var (
	SubUIDPath = subid.SubUIDPath
	SubGIDPath = subid.SubGIDPath
	// OwnUIDMapPath and OwnGIDMapPath show which ids exist in the
	// caller's own user namespace.
	OwnUIDMapPath = "/proc/self/uid_map"
	OwnGIDMapPath = "/proc/self/gid_map"
	// StatusPath is read for NoNewPrivs.
	StatusPath = "/proc/self/status"
	// OwnSetgroupsPath says whether the caller's user namespace denies
	// setgroups(2): a namespace made in it inherits the denial.
	OwnSetgroupsPath = "/proc/self/setgroups"
)

// NewPlan computes the maps that put the caller at insideUID:insideGID and
// its subordinate ranges everywhere else. Real root may write any map, so it
// needs no helper; it gets its own subordinate ranges when it has some.
func NewPlan(c Caller, insideUID, insideGID uint32) (*Plan, error) {
	subUIDs, err := subid.Lookup(SubUIDPath, c.Name, c.UID)
	if err != nil {
		return nil, err
	}
	subGIDs, err := subid.Lookup(SubGIDPath, c.Name, c.GID)
	if err != nil {
		return nil, err
	}
	p := &Plan{}
	// A user namespace whose setgroups(2) is denied (unshare -r, some
	// containers) makes namespaces that inherit the denial.
	inheritedDeny := setgroupsDenied()
	defer func() {
		if inheritedDeny {
			p.SetgroupsDenied = true
		}
	}()
	if c.UID == 0 && (len(subUIDs) == 0 || len(subGIDs) == 0) {
		// Root may map any id of its own user namespace, without a
		// helper: real root all of them, root in a container or a pod
		// those its namespace has (65536 in a Kubernetes pod, 1 under
		// unshare -r: then its own only, and nothing more to say).
		uids, uerr := OwnIDs(OwnUIDMapPath, c.UID)
		gids, gerr := OwnIDs(OwnGIDMapPath, c.GID)
		if uerr == nil && gerr == nil {
			p.UIDMap = Layout(c.UID, insideUID, uids)
			p.GIDMap = Layout(c.GID, insideGID, gids)
			return p, nil
		}
	}
	var why string
	switch {
	case len(subUIDs) == 0:
		why = fmt.Sprintf("no subordinate uid range for %s in %s", c.Name, SubUIDPath)
	case len(subGIDs) == 0:
		why = fmt.Sprintf("no subordinate gid range for %s in %s", c.Name, SubGIDPath)
	case c.UID != 0:
		if _, err := exec.LookPath("newuidmap"); err != nil {
			why = "newuidmap not found"
		} else if _, err := exec.LookPath("newgidmap"); err != nil {
			why = "newgidmap not found"
		} else if noNewPrivs() {
			why = "no_new_privs is set on rbox (a container's or a sandbox's doing), so the setuid newuidmap cannot gain the privilege to write a range"
		}
	}
	if why != "" {
		p.UIDMap = []spec.IDMap{{Inside: insideUID, Outside: c.UID, Count: 1}}
		p.GIDMap = []spec.IDMap{{Inside: insideGID, Outside: c.GID, Count: 1}}
		p.SetgroupsDenied = c.UID != 0
		p.Warning = fmt.Sprintf("%s; mapping only your own id, so other ids appear as nobody (%s)", why, fixHint(why, c.Name))
		return p, nil
	}
	p.UIDMap = Layout(c.UID, insideUID, subid.Merge(subUIDs))
	p.GIDMap = Layout(c.GID, insideGID, subid.Merge(subGIDs))
	p.Helpers = c.UID != 0
	return p, nil
}

func fixHint(why, user string) string {
	if why == "newuidmap not found" || why == "newgidmap not found" {
		return "install the uidmap package"
	}
	if strings.HasPrefix(why, "no_new_privs") {
		return "run rbox without no_new_privs, e.g. without Docker's --security-opt no-new-privileges, or as root in the container"
	}
	r := subid.FreeRange(65536, SubUIDPath, SubGIDPath)
	ids := fmt.Sprintf("%d-%d", r.Start, r.Start+r.Count-1)
	return fmt.Sprintf("add a range as root: usermod --add-subuids %s --add-subgids %s %s", ids, ids, user)
}

// OwnIDs lists the ids of the caller's own user namespace (the first
// column of its uid_map or gid_map at path), less self.
func OwnIDs(path string, self uint32) ([]subid.Range, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []subid.Range
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		start, err1 := strconv.ParseUint(f[0], 10, 32)
		count, err2 := strconv.ParseUint(f[2], 10, 32)
		if err1 != nil || err2 != nil || count == 0 {
			return nil, fmt.Errorf("%s: bad line %q", path, line)
		}
		r := subid.Range{Start: uint32(start), Count: uint32(count)}
		if self < r.Start || self-r.Start >= r.Count {
			out = append(out, r)
			continue
		}
		if self > r.Start {
			out = append(out, subid.Range{Start: r.Start, Count: self - r.Start})
		}
		if end := uint64(r.Start) + uint64(r.Count); uint64(self)+1 < end {
			out = append(out, subid.Range{Start: self + 1, Count: uint32(end - uint64(self) - 1)})
		}
	}
	return out, nil
}

// setgroupsDenied reports whether the caller's own user namespace denies
// setgroups(2).
func setgroupsDenied() bool {
	b, err := os.ReadFile(OwnSetgroupsPath)
	return err == nil && strings.TrimSpace(string(b)) == "deny"
}

// noNewPrivs reports whether no_new_privs is set on this process: setuid
// helpers then run without their privilege.
func noNewPrivs() bool {
	b, err := os.ReadFile(StatusPath)
	return err == nil && strings.Contains(string(b), "\nNoNewPrivs:\t1")
}

// Layout maps outside id self to inside id at, and fills inside ids from 0
// upward, skipping at, with the subordinate ranges in order.
func Layout(self, at uint32, ranges []subid.Range) []spec.IDMap {
	// The caller's own entry first, so the map reads as it is meant.
	m := []spec.IDMap{{Inside: at, Outside: self, Count: 1}}
	next := uint32(0) // next inside id to fill
	for _, r := range ranges {
		start, count := r.Start, r.Count
		for count > 0 {
			if next == at {
				next++
			}
			// Fill up to the hole at `at`, or the whole remaining range.
			n := count
			if next < at && at-next < n {
				n = at - next
			}
			m = append(m, spec.IDMap{Inside: next, Outside: start, Count: n})
			next += n
			start += n
			count -= n
		}
	}
	return m
}

// Format renders a map as the kernel's uid_map text.
func Format(m []spec.IDMap) []byte {
	var b bytes.Buffer
	for _, e := range m {
		fmt.Fprintf(&b, "%d %d %d\n", e.Inside, e.Outside, e.Count)
	}
	return b.Bytes()
}

func helperArgs(pid int, m []spec.IDMap) []string {
	args := []string{strconv.Itoa(pid)}
	for _, e := range m {
		args = append(args, strconv.FormatUint(uint64(e.Inside), 10),
			strconv.FormatUint(uint64(e.Outside), 10), strconv.FormatUint(uint64(e.Count), 10))
	}
	return args
}

// Write installs the maps for process pid. The two setuid helpers run at the
// same time: each is a separate exec and together they are most of the cost
// of a sandbox start.
func (p *Plan) Write(pid int) error {
	if p.Helpers {
		uidCmd := exec.Command("newuidmap", helperArgs(pid, p.UIDMap)...)
		gidCmd := exec.Command("newgidmap", helperArgs(pid, p.GIDMap)...)
		var uidErr, gidErr bytes.Buffer
		uidCmd.Stderr, gidCmd.Stderr = &uidErr, &gidErr
		if err := uidCmd.Start(); err != nil {
			return fmt.Errorf("newuidmap: %w", err)
		}
		if err := gidCmd.Start(); err != nil {
			_ = uidCmd.Wait()
			return fmt.Errorf("newgidmap: %w", err)
		}
		e1, e2 := uidCmd.Wait(), gidCmd.Wait()
		if e1 != nil {
			return fmt.Errorf("newuidmap failed: %s (check %s and that newuidmap is setuid root)", firstLine(uidErr.Bytes(), e1), SubUIDPath)
		}
		if e2 != nil {
			return fmt.Errorf("newgidmap failed: %s (check %s and that newgidmap is setuid root)", firstLine(gidErr.Bytes(), e2), SubGIDPath)
		}
		return nil
	}
	proc := "/proc/" + strconv.Itoa(pid)
	if err := os.WriteFile(proc+"/uid_map", Format(p.UIDMap), 0); err != nil {
		return fmt.Errorf("write uid_map: %w", err)
	}
	if p.SetgroupsDenied {
		if err := os.WriteFile(proc+"/setgroups", []byte("deny"), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("write setgroups: %w", err)
		}
	}
	if err := os.WriteFile(proc+"/gid_map", Format(p.GIDMap), 0); err != nil {
		return fmt.Errorf("write gid_map: %w", err)
	}
	return nil
}

func firstLine(b []byte, err error) string {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	if len(b) == 0 {
		return err.Error()
	}
	return string(b)
}
