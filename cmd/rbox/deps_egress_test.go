package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The egress proxies parse HTTP and DNS themselves: net/http (with
// crypto/tls) and miekg/dns would add about 1 ms of package initialisation
// to every rbox start-up, with or without --allow-net (docs/design.md).
func TestRunPathLinksNoHTTPStack(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		switch {
		case pkg == "net/http", pkg == "crypto/tls", strings.HasPrefix(pkg, "github.com/miekg/dns"):
			t.Errorf("rbox links %s", pkg)
		}
	}
}
