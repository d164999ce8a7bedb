package initplan

import (
	"reflect"
	"slices"
	"testing"

	"github.com/rbox-dev/rbox/caps"
	"github.com/rbox-dev/rbox/network"
	"github.com/rbox-dev/rbox/spec"
)

// Each field of spec.Spec either changes the plan (both executors run
// it) or is honoured elsewhere, named here; a new field fails this test
// until it is one or the other. The integration tests (tests/
// specfields_test.go) show each field honoured on both executors.
func TestEveryFieldReachesThePlan(t *testing.T) {
	changes := map[string]func(*spec.Spec){
		"Args":          func(s *spec.Spec) { s.Args = []string{"other"} },
		"Env":           func(s *spec.Spec) { s.Env = []string{"PATH=/opt/bin"} },
		"Cwd":           func(s *spec.Spec) { s.Cwd = "/tmp" },
		"Hostname":      func(s *spec.Spec) { s.Hostname = "other" },
		"Share":         func(s *spec.Spec) { s.Share = []string{spec.NSPID} },
		"UID":           func(s *spec.Spec) { s.UID = 1000 },
		"GID":           func(s *spec.Spec) { s.GID = 1000 },
		"GIDMap":        func(s *spec.Spec) { s.GIDMap = nil },
		"RootFS":        func(s *spec.Spec) { s.RootFS = "/srv/root" },
		"Layers":        func(s *spec.Spec) { s.Layers = []string{"/srv/layer"} },
		"Overlay":       func(s *spec.Spec) { s.Overlay = &spec.Overlay{} },
		"Mounts":        func(s *spec.Spec) { s.Mounts = []spec.Mount{{Kind: spec.MountTmpfs, Dest: "/scratch"}} },
		"TimeOffsets":   func(s *spec.Spec) { s.TimeOffsets.Monotonic = 60 },
		"Caps":          func(s *spec.Spec) { s.Caps = append(slices.Clone(caps.Default), "CAP_NET_RAW") },
		"SeccompFilter": func(s *spec.Spec) { s.SeccompFilter = &spec.SeccompFilter{BPF: make([]byte, 8)} },
		"AllowNested":   func(s *spec.Spec) { s.AllowNested = true },
		"TTY":           func(s *spec.Spec) { s.TTY = true },
		"Publish":       func(s *spec.Spec) { s.Publish = []spec.Port{{HostPort: 8080, ChildPort: 80, Proto: "tcp"}} },
		// The tmpfs mounts' size; the cgroups and rlimits are the
		// parent's (limits.Box).
		"Limits":        func(s *spec.Spec) { s.Limits = &spec.Limits{MemoryBytes: 1 << 30} },
		"EmptyRoot":     func(s *spec.Spec) { s.EmptyRoot = true },
		"CwdFallbacks":  func(s *spec.Spec) { s.CwdFallbacks = []string{"/srv"} },
		"KeepSession":   func(s *spec.Spec) { s.KeepSession = true },
		"Argv0":         func(s *spec.Spec) { s.Argv0 = "renamed" },
		"DisableUserns": func(s *spec.Spec) { s.DisableUserns = true },
		"SeccompExtra":  func(s *spec.Spec) { s.SeccompExtra = []spec.SeccompFilter{{BPF: make([]byte, 8)}} },
		"LockFiles":     func(s *spec.Spec) { s.LockFiles = []string{"/tmp/lock"} },
		"Compensation": func(s *spec.Spec) {
			s.Compensation = &spec.Compensation{Landlock: &spec.LandlockDomain{HandledNet: 3, AttrSize: 16}}
		},
		"DieWithParent":        func(s *spec.Spec) { s.DieWithParent = true },
		"LegacyMount":          func(s *spec.Spec) { s.LegacyMount = true },
		"SwitchUserNS":         func(s *spec.Spec) { s.SwitchUserNS = 5 },
		"KeepUID":              func(s *spec.Spec) { s.KeepUID = true },
		"KeepGID":              func(s *spec.Spec) { s.KeepGID = true },
		"AssertUsernsDisabled": func(s *spec.Spec) { s.AssertUsernsDisabled = true },
		"GeneratedFiles": func(s *spec.Spec) {
			s.GeneratedFiles = []spec.GeneratedFile{{Dest: "/etc/passwd", Data: []byte("root:x:0:0::/root:/bin/sh\n")}}
		},
	}
	elsewhere := map[string]string{
		"UIDMap":            "the parent writes the id maps (userns)",
		"StorageDriver":     "fsetup.Build, under HookRoot, picks the overlay driver",
		"AllowHostLoopback": "the parent starts the network helper with it; the plan sees it as Learned.Net",
		"Net":               "the parent: the CLI shares the namespace for host, a helper starts for the user modes; the plan sees the result as Learned.Net",
		"DNS":               "the parent puts it in Learned.Net, from which the plan writes resolv.conf",
		"Egress":            "the parent starts the filtering proxies in the sandbox's network namespace (sandbox/egress.go); their DNS address reaches the plan through Learned.Net",
		"JoinNet":           "the parent: pid 1 is made in the joined sandbox's user namespace and enters its network namespace (enter.StartInit); the plan sees Net none",
		"Bridge":            "the parent: pid 1 is made in the network's user namespace (enter.StartInit) and the network's holder plugs its network namespace before the command starts; the plan sees Net none and DNS",
		"AsPID1":            "forkinit: pid 1 runs the payload's programs itself and executes the command, with no init (the CLI refuses it where the fast path cannot run)",
		"BwrapErrors":       "initproc's and the CLI's messages: bwrap's shape and exit status",
		"JoinUserNS":        "forkinit: pid 1 is cloned by a joiner that entered the user namespace (forkinit.Required: the fast path only)",
		"JoinPIDNS":         "forkinit: pid 1 is cloned by a joiner that entered the pid namespace (forkinit.Required: the fast path only)",
		"PreserveFDs":       "each executor's mechanism: forkinit's prologue leaves fds 3..3+N-1 open, initproc hands them to Go's fork",
	}
	base := func() *spec.Spec {
		return &spec.Spec{
			Args: []string{"true"}, Env: []string{"PATH=/usr/bin"}, Cwd: "/", Hostname: "rbox", Net: spec.NetNone, Caps: caps.Default,
			GIDMap: []spec.IDMap{{Inside: 0, Outside: 1000, Count: 1}, {Inside: 1, Outside: 100000, Count: 65536}},
		}
	}
	show := func(s *spec.Spec) string {
		pl, err := New(s, Learned{Net: network.ChildConfig{Mode: s.Net}, ConsoleSocket: 7})
		if err != nil {
			t.Fatalf("%+v: %v", s, err)
		}
		return format(pl)
	}
	plain := show(base())
	onEmptyRoot := map[string]bool{"CwdFallbacks": true, "DisableUserns": true, "LockFiles": true}
	typ := reflect.TypeOf(spec.Spec{})
	for i := 0; i < typ.NumField(); i++ {
		name := typ.Field(i).Name
		if why, ok := elsewhere[name]; ok {
			t.Logf("%s: %s", name, why)
			continue
		}
		change, ok := changes[name]
		if !ok {
			t.Errorf("spec.Spec.%s: no change here shows the plan honours it, and nothing names who else does", name)
			continue
		}
		s, before := base(), plain
		if onEmptyRoot[name] {
			// Only bwrap's empty root has them: compared with one.
			s.EmptyRoot = true
			before = show(s)
		}
		change(s)
		if show(s) == before {
			t.Errorf("spec.Spec.%s: changing it leaves the plan as it was", name)
		}
	}
}
