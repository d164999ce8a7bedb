package kernelapi

import "testing"

func TestReleaseAtLeast(t *testing.T) {
	for release, want := range map[string]bool{
		"4.18.0-553.el8_10.x86_64": false, "5.4.0-200-generic": false, "5.10.0-28-amd64": false,
		"5.11.0": true, "5.15.0-1-generic": true, "6.18.0": true, "10.0": true, "weird": true,
	} {
		if got := releaseAtLeast(release, 5, 11); got != want {
			t.Errorf("%s: got %v, want %v", release, got, want)
		}
	}
}
