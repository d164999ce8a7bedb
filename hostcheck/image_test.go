package hostcheck

import (
	"os"
	"path/filepath"
	"testing"
)

func TestImageHelperCheck(t *testing.T) {
	helper := filepath.Join(t.TempDir(), "rbox-image")
	if err := os.WriteFile(helper, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RBOX_IMAGE_HELPER", helper)
	if r := checkImageHelper(nil); r.Status != Pass || r.Detail != helper {
		t.Errorf("with the helper: %+v", r)
	}
	t.Setenv("RBOX_IMAGE_HELPER", "")
	t.Setenv("PATH", t.TempDir())
	if r := checkImageHelper(nil); r.Status != Warn || r.Fix == "" {
		t.Errorf("without the helper: %+v", r)
	}
}

func TestSeccompHelperCheck(t *testing.T) {
	helper := filepath.Join(t.TempDir(), "rbox-seccomp")
	if err := os.WriteFile(helper, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RBOX_SECCOMP_HELPER", helper)
	if r := checkSeccompHelper(nil); r.Status != Pass || r.Detail != helper {
		t.Errorf("with the helper: %+v", r)
	}
	t.Setenv("RBOX_SECCOMP_HELPER", "")
	t.Setenv("PATH", t.TempDir())
	if r := checkSeccompHelper(nil); r.Status != Warn || r.Fix == "" {
		t.Errorf("without the helper: %+v", r)
	}
}
