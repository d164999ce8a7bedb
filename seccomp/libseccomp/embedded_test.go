package libseccomp

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/moby/sys/capability"
	scmp "github.com/seccomp/libseccomp-golang"

	"github.com/rbox-dev/rbox/seccomp"
)

var update = flag.Bool("update", false, "rewrite the embedded default filters (seccomp/filters)")

// embeddedArches are the GOARCHes whose default filters are embedded in
// package seccomp: those with the fast path. Each is compiled here,
// whatever machine runs the test (libseccomp builds filters for any ABI);
// all are little-endian, as the machines that run this test are, so the
// exported programs are in their byte order.
var embeddedArches = []string{"amd64", "arm64"}

// TestEmbedded compiles the default profile, plain and AllowNested, for
// each of embeddedArches and compares the programs with the ones embedded
// in package seccomp, which rbox loads. After a change to the deny-list,
// regenerate them:
//
//	go test ./seccomp/... -run TestEmbedded -update
func TestEmbedded(t *testing.T) {
	for _, goarch := range embeddedArches {
		t.Run(goarch, func(t *testing.T) { testEmbedded(t, goarch) })
	}
}

func testEmbedded(t *testing.T, goarch string) {
	// No host facts on either side: no capabilities and kernel 0.0, and
	// every capability and a far-future kernel. The embedded copy holds
	// only if the profile's filter depends on neither.
	bare := host{goarch: goarch, caps: map[string]bool{}}
	full := host{goarch: goarch, kernel: [2]int{99, 99}, caps: map[string]bool{}}
	for _, c := range capability.ListKnown() {
		full.caps[capName(c)] = true
	}
	for _, nested := range []bool{false, true} {
		o := seccomp.DefaultOptions{AllowNested: nested}
		p := seccomp.DefaultFor(o, goarch)
		if !slices.Equal(p.Architectures, seccomp.ABIsOf(goarch)) || len(p.ArchMap) > 0 {
			t.Errorf("AllowNested=%v: the default profile names ABIs %v, want the build's %v", nested, p.Architectures, seccomp.ABIsOf(goarch))
		}
		for i, s := range p.Syscalls {
			if s.Includes != nil || s.Excludes != nil {
				t.Errorf("AllowNested=%v: rule %d (%v) has a condition on the host, so it cannot be compiled at build time", nested, i, s.Names)
			}
		}
		want, err := compileFor(p, bare)
		if err != nil {
			t.Fatal(err)
		}
		if other, err := compileFor(p, full); err != nil || !bytes.Equal(other.BPF, want.BPF) || other.Flags != want.Flags {
			t.Errorf("AllowNested=%v: the default filter differs with every capability and kernel 99.99 (%v)", nested, err)
		}
		if want.Flags != 0 {
			t.Errorf("AllowNested=%v: the default filter has load flags %#x, which the embedded copy does not carry", nested, want.Flags)
		}
		file := filepath.Join("..", seccomp.EmbeddedFile(o, goarch))
		if *update {
			if err := os.WriteFile(file, want.BPF, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("wrote %s (%d instructions)", file, len(want.BPF)/8)
			continue
		}
		got, err := os.ReadFile(file)
		if err != nil {
			t.Errorf("%v: run go test ./seccomp/... -run TestEmbedded -update", err)
			continue
		}
		if goarch == runtime.GOARCH && !bytes.Equal(seccomp.EmbeddedDefault(o), got) {
			t.Errorf("%s is not the filter embedded in package seccomp", file)
		}
		if !bytes.Equal(got, want.BPF) {
			t.Errorf("%s (%d instructions) is not what the default profile compiles to (%d instructions): "+
				"run go test ./seccomp/... -run TestEmbedded -update after changing the deny-list (libseccomp %s)",
				file, len(got)/8, len(want.BPF)/8, libVersion())
		}
	}
}

func capName(c capability.Cap) string {
	return "CAP_" + strings.ToUpper(c.String())
}

func libVersion() string {
	major, minor, micro := scmp.GetLibraryVersion()
	return fmt.Sprintf("%d.%d.%d", major, minor, micro)
}

// TestArchNames checks package seccomp's pure-Go view of architectures
// against libseccomp: the names a profile may use, and the native ABI.
func TestArchNames(t *testing.T) {
	for _, a := range seccomp.KnownArches {
		if _, ok := archByName[a]; !ok {
			t.Errorf("seccomp.KnownArches has %s, which libseccomp's map lacks", a)
		}
	}
	for a := range archByName {
		if !slices.Contains(seccomp.KnownArches, a) {
			t.Errorf("%s is missing from seccomp.KnownArches", a)
		}
	}
	native, err := scmp.GetNativeArch()
	if err != nil {
		t.Fatal(err)
	}
	abis := seccomp.HostABIs()
	if len(abis) == 0 || archByName[abis[0]] != native {
		t.Errorf("seccomp.HostABIs() = %v; libseccomp's native ABI is %s", abis, native)
	}
}
