package seccomp

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"runtime"
	"strings"

	"github.com/rbox-dev/rbox/internal/helper"
	"github.com/rbox-dev/rbox/spec"
)

// The default profile's filters, compiled by libseccomp at build time for
// each GOARCH that has them: filters/default_GOARCH.bpf and
// filters/nested_GOARCH.bpf (AllowNested). The golden test of
// seccomp/libseccomp fails when they differ from what the deny-list
// compiles to, and rewrites them with -update:
//
//go:generate go test ./libseccomp -run TestEmbedded -update
//go:embed filters
var filters embed.FS

// EmbeddedFile is the path, relative to this package, of the embedded
// default filter for o and goarch.
func EmbeddedFile(o DefaultOptions, goarch string) string {
	name := "default"
	if o.AllowNested {
		name = "nested"
	}
	return "filters/" + name + "_" + goarch + ".bpf"
}

// EmbeddedDefault is the embedded program of the default profile for o on
// this build's GOARCH, nil if there is none.
func EmbeddedDefault(o DefaultOptions) []byte {
	bpf, err := filters.ReadFile(EmbeddedFile(o, runtime.GOARCH))
	if err != nil {
		return nil
	}
	return bpf
}

// DefaultFilter is the default profile's filter for o: the embedded one,
// or, on a GOARCH without one, compiled by the helper.
func DefaultFilter(o DefaultOptions) (*spec.SeccompFilter, error) {
	if bpf := EmbeddedDefault(o); bpf != nil {
		return &spec.SeccompFilter{BPF: bpf}, nil
	}
	profile, err := json.Marshal(Default(o))
	if err != nil {
		return nil, err
	}
	return Compile(profile, nil)
}

// HelperName is the executable that compiles profiles with libseccomp
// (cmd/rbox-seccomp), installed next to rbox.
const HelperName = "rbox-seccomp"

// HelperPath finds rbox-seccomp: $RBOX_SECCOMP_HELPER, else next to the
// running executable, else in PATH.
func HelperPath() (string, error) {
	return helper.Path(HelperName, "RBOX_SECCOMP_HELPER", "the seccomp profile compiler")
}

// Request is what rbox-seccomp reads on its standard input. It answers
// with the spec.SeccompFilter as JSON on its standard output, or with one
// line on standard error and a non-zero exit.
type Request struct {
	// Profile is the Docker/OCI JSON profile, as given.
	Profile string `json:"profile"`
	// Caps are the capabilities the payload is given (its bounding set),
	// on which the profile's includes/excludes caps conditions are judged,
	// as Docker does.
	Caps []string `json:"caps"`
}

// Compile has rbox-seccomp compile a Docker/OCI JSON profile for a payload
// given the capabilities caps. Its error is the helper's one line.
func Compile(profile []byte, caps []string) (*spec.SeccompFilter, error) {
	path, err := HelperPath()
	if err != nil {
		return nil, err
	}
	req, err := json.Marshal(Request{Profile: string(profile), Caps: caps})
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path)
	cmd.Stdin = bytes.NewReader(req)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		msg = strings.TrimPrefix(msg, HelperName+": ")
		if msg == "" {
			msg = fmt.Sprintf("%s: %v", path, err)
		}
		return nil, errors.New(msg)
	}
	var f spec.SeccompFilter
	if err := json.Unmarshal(stdout.Bytes(), &f); err != nil {
		return nil, fmt.Errorf("%s: bad answer: %v", path, err)
	}
	if _, err := Program(f.BPF); err != nil {
		return nil, fmt.Errorf("%s: bad answer: %v", path, err)
	}
	return &f, nil
}
