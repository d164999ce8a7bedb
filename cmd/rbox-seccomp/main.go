// Command rbox-seccomp compiles a seccomp profile with libseccomp for rbox,
// which is pure Go and runs it for --seccomp FILE (see package seccomp).
// It is installed next to rbox and linked statically, libseccomp and glibc
// included.
//
// It reads a seccomp.Request (the Docker/OCI JSON profile and the payload's
// capabilities) as JSON on stdin and writes the compiled spec.SeccompFilter
// as JSON on stdout. A bad request or profile gets one line on stderr and
// exit status 1.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/rbox-dev/rbox/seccomp"
	"github.com/rbox-dev/rbox/seccomp/libseccomp"
)

// maxRequest bounds what is read from stdin: Docker's own profile is 20 KiB.
const maxRequest = 16 << 20

func main() {
	if len(os.Args) > 1 {
		fail(fmt.Errorf("takes no arguments: it reads a request from rbox on stdin"))
	}
	data, err := io.ReadAll(io.LimitReader(os.Stdin, maxRequest+1))
	if err != nil {
		fail(fmt.Errorf("read the request: %w", err))
	}
	if len(data) > maxRequest {
		fail(fmt.Errorf("the request is larger than %d bytes", maxRequest))
	}
	var req seccomp.Request
	if err := json.Unmarshal(data, &req); err != nil {
		fail(fmt.Errorf("bad request: %w", err))
	}
	p, err := seccomp.ParseJSON([]byte(req.Profile))
	if err != nil {
		fail(err)
	}
	f, err := libseccomp.Compile(p, req.Caps)
	if err != nil {
		fail(err)
	}
	if err := json.NewEncoder(os.Stdout).Encode(f); err != nil {
		fail(fmt.Errorf("write the filter: %w", err))
	}
}

// fail reports err on one line and exits.
func fail(err error) {
	msg := strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", " ")
	fmt.Fprintf(os.Stderr, "%s: %s\n", seccomp.HelperName, msg)
	os.Exit(1)
}
