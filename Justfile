# rbox's tasks. `just test` prepares a fresh machine (as root) and runs the
# whole suite: unit tests, then the integration tests as the caller and,
# when the caller is root, again as the unprivileged test user.

set shell := ["bash", "-euo", "pipefail", "-c"]

test_user := env_var_or_default("RBOX_TEST_USER", "rboxtest")

# rbox and rbox-image are pure Go (CGO_ENABLED=0): a cgo executable starts
# milliseconds slower, twice per sandbox when pid 1 is re-executed. Only
# rbox-seccomp, which rbox runs to compile a --seccomp profile file, links
# libseccomp: statically, glibc with it, users and names resolved in Go
# (osusergo, netgo), so it runs on hosts without libseccomp. The default
# filter is compiled at build time and embedded in rbox (seccomp/filters).
static_flags := "-tags osusergo,netgo -ldflags '-linkmode external -extldflags -static'"

# containers/storage (linked only into rbox-image, the image store that
# rbox execs) must not pull in the btrfs, devicemapper and zfs graph
# drivers, which need C libraries.
tags := "exclude_graphdriver_btrfs,exclude_graphdriver_devicemapper,exclude_graphdriver_zfs,containers_image_openpgp"

# Build bin/rbox, bin/rbox-image and bin/rbox-seccomp.
build:
    CGO_ENABLED=0 go build -trimpath -o bin/rbox ./cmd/rbox
    CGO_ENABLED=0 go build -trimpath -tags {{tags}} -o bin/rbox-image ./cmd/rbox-image
    CGO_ENABLED=1 go build -trimpath {{static_flags}} -o bin/rbox-seccomp ./cmd/rbox-seccomp

# Prepare the machine (root only; otherwise it checks nothing is missing).
setup:
    if [ "$(id -u)" = 0 ]; then scripts/test-setup; fi

# Unit tests of every package (the network helpers' also as the test user).
unit:
    go test -count=1 -tags {{tags}} ./...
    scripts/run-unit-as-user {{test_user}}

# Integration tests: the built binary driven as the caller, and as the
# unprivileged test user when the caller is root.
integration: build
    scripts/run-integration {{test_user}}

# Everything: setup, lint, unit and integration tests.
test: setup lint unit integration

# gofmt, go vet and staticcheck.
lint:
    test -z "$(gofmt -l $(git ls-files '*.go'))" || { gofmt -l $(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
    go vet -tags {{tags}} ./... && go vet -tags integration ./tests/
    test -x "$(go env GOPATH)/bin/staticcheck" || go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
    "$(go env GOPATH)/bin/staticcheck" -tags {{tags}} ./... && "$(go env GOPATH)/bin/staticcheck" -tags integration ./tests/

# Benchmarks beside bwrap and unshare; prints medians and ratios. scripts/bench
# then runs scripts/bench-* (the network: iperf3 and start-up through rbox
# --net pasta/slirp4netns beside the raw helpers; storage: a file-heavy job
# on a host directory, native overlay and fuse-overlayfs, and --image
# start-up beside podman run).
bench: build setup
    scripts/bench {{test_user}}

# The network benchmark alone.
bench-net: build setup
    scripts/bench-net {{test_user}}

# The storage benchmark alone.
bench-storage: build setup
    scripts/bench-storage {{test_user}}

# Package initialisation cost of rbox and rbox-image (GODEBUG=inittrace=1).
inittime: build
    scripts/inittime bin/rbox bin/rbox-image

# The egress benchmark alone.
bench-egress: build setup
    scripts/bench-egress {{test_user}}
