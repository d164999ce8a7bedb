// Package helper finds rbox's helper executables, which are installed next
// to rbox: rbox-image (the image store) and rbox-seccomp (the seccomp
// profile compiler).
package helper

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Path finds the helper name: $env when set, else next to the running
// executable, else in PATH. what says what the helper is, for the error.
func Path(name, env, what string) (string, error) {
	if p := os.Getenv(env); p != "" {
		return p, nil
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s (%s) is not installed next to rbox nor in PATH", name, what)
	}
	return p, nil
}
