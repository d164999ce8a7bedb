package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// rbox's plain start-up is benchmarked: the image libraries, whose package
// initialisation costs milliseconds, must stay in rbox-image.
func TestRunPathLinksNoImageLibraries(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, heavy := range []string{"go.podman.io/", "github.com/google/go-containerregistry/", "github.com/rbox-dev/rbox/image"} {
			if strings.HasPrefix(pkg, heavy) && pkg != "github.com/rbox-dev/rbox/imagerun" {
				t.Errorf("rbox links %s", pkg)
			}
		}
	}
}

// rbox is pure Go, built with CGO_ENABLED=0: a cgo executable starts
// milliseconds slower. libseccomp is linked only into rbox-seccomp, and the
// default filter is embedded precompiled (see package seccomp).
func TestRunPathIsPureGo(t *testing.T) {
	// With cgo enabled, as `go test` has it here, so that a dependency's
	// cgo files show.
	cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}} {{.Standard}} {{len .CgoFiles}}", ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			t.Fatalf("go list printed %q", line)
		}
		pkg, std, cgoFiles := f[0], f[1] == "true", f[2]
		if strings.Contains(pkg, "libseccomp") {
			t.Errorf("rbox links %s: libseccomp belongs in rbox-seccomp", pkg)
		}
		// go-landlock's psx has a cgo variant, but built with
		// CGO_ENABLED=0, as rbox is, it is syscall.AllThreadsSyscall
		// (and rbox's landlock tier restricts one thread, not all).
		if !std && cgoFiles != "0" && pkg != "kernel.org/pub/linux/libs/security/libcap/psx" {
			t.Errorf("rbox links %s, which uses cgo", pkg)
		}
	}
	// And it builds without cgo at all.
	build := exec.Command("go", "build", "-o", os.DevNull, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Errorf("CGO_ENABLED=0 go build: %v\n%s", err, out)
	}
}
