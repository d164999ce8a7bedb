package main

import (
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
