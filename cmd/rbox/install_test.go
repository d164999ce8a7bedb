package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// `just install PREFIX` puts the three executables, the man page and the
// three completions in place, and the installed rbox prints the version
// git describe gives the checkout.
func TestJustInstall(t *testing.T) {
	if _, err := exec.LookPath("just"); err != nil {
		t.Fatal("just is needed (`just unit` runs these tests; see README.md)")
	}
	prefix := t.TempDir()
	cmd := exec.Command("just", "install", prefix)
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("just install: %v\n%s", err, out)
	}
	for _, f := range []string{"bin/rbox", "bin/rbox-image", "bin/rbox-seccomp", "share/man/man1/rbox.1",
		"share/bash-completion/completions/rbox", "share/zsh/site-functions/_rbox", "share/fish/vendor_completions.d/rbox.fish"} {
		st, err := os.Stat(filepath.Join(prefix, f))
		if err != nil || st.Size() == 0 {
			t.Errorf("%s not installed: %v", f, err)
		}
	}
	out, err := exec.Command(filepath.Join(prefix, "bin/rbox"), "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	gitCmd := exec.Command("git", "describe", "--tags", "--always", "--dirty")
	gitCmd.Dir = "../.."
	want, err := gitCmd.Output()
	if err != nil {
		t.Fatalf("git describe: %v", err)
	}
	if got := strings.TrimSpace(string(out)); got != "rbox "+strings.TrimSpace(string(want)) {
		t.Errorf("installed rbox --version = %q, want rbox %s", got, want)
	}
}
