package main

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rbox-dev/rbox/spec"
	"github.com/rbox-dev/rbox/state"
)

// ps's LIMITS column: each limit as name=value(mechanism).
func TestLimitsColumn(t *testing.T) {
	if got := limitsColumn(nil); got != "-" {
		t.Errorf("no limits: %q", got)
	}
	l := &spec.Limits{MemoryBytes: 512 << 20, MemorySwapBytes: -1, CPUs: 1.5,
		Ulimits: []spec.Rlimit{{Name: "nofile", Resource: unix.RLIMIT_NOFILE, Soft: 1024, Hard: unix.RLIM_INFINITY}}}
	ls := limitsOf(l)
	want := []state.Limit{{Name: "memory", Value: "512MiB"}, {Name: "swap", Value: "unlimited"}, {Name: "cpus", Value: "1.5"}, {Name: "nofile", Value: "1024:unlimited", Mechanism: "rlimit"}}
	if len(ls) != len(want) {
		t.Fatalf("limitsOf: %+v", ls)
	}
	for i, w := range want {
		if ls[i].Name != w.Name || ls[i].Value != w.Value || w.Mechanism != "" && ls[i].Mechanism != w.Mechanism || ls[i].Mechanism == "" {
			t.Errorf("limit %d: %+v, want %+v", i, ls[i], w)
		}
	}
	got := limitsColumn([]state.Limit{{Name: "pids", Value: "64", Mechanism: "cgroup v1"}, {Name: "memory", Value: "512MiB", Mechanism: "rlimit"}})
	if got != "pids=64(cgroup v1),memory=512MiB(rlimit)" {
		t.Errorf("column: %q", got)
	}
	if limitsOf(nil) != nil {
		t.Error("limits without a Limits")
	}
}
