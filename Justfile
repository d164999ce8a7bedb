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

# The version stamped into rbox: git describe of the checkout, else "dev".
version := `git describe --tags --always --dirty 2>/dev/null || echo dev`

# Build bin/rbox, bin/rbox-image and bin/rbox-seccomp.
build:
    CGO_ENABLED=0 go build -trimpath -ldflags "-X main.version={{version}}" -o bin/rbox ./cmd/rbox
    CGO_ENABLED=0 go build -trimpath -tags {{tags}} -o bin/rbox-image ./cmd/rbox-image
    CGO_ENABLED=1 go build -trimpath {{static_flags}} -o bin/rbox-seccomp ./cmd/rbox-seccomp

# Install the three executables in PREFIX/bin, the man page in
# PREFIX/share/man/man1 and the bash, zsh and fish completions under
# PREFIX/share.
install PREFIX="/usr/local": build
    install -d "{{PREFIX}}/bin" "{{PREFIX}}/share/man/man1" "{{PREFIX}}/share/bash-completion/completions" "{{PREFIX}}/share/zsh/site-functions" "{{PREFIX}}/share/fish/vendor_completions.d"
    install -m 0755 bin/rbox bin/rbox-image bin/rbox-seccomp "{{PREFIX}}/bin/"
    bin/rbox man > "{{PREFIX}}/share/man/man1/rbox.1"
    bin/rbox completion bash > "{{PREFIX}}/share/bash-completion/completions/rbox"
    bin/rbox completion zsh > "{{PREFIX}}/share/zsh/site-functions/_rbox"
    bin/rbox completion fish > "{{PREFIX}}/share/fish/vendor_completions.d/rbox.fish"

# Prepare the machine (root only; otherwise it checks nothing is missing).
setup:
    if [ "$(id -u)" = 0 ]; then scripts/test-setup; fi

# Unit tests of every package (the network helpers' also as the test user).
unit:
    go test -count=1 -tags {{tags}} ./...
    scripts/run-unit-as-user {{test_user}}

# Integration tests: the built binary driven as the caller, and as the
# unprivileged test user when the caller is root; each once per executor of
# pid 1 (the fast one where a run allows it, then the re-exec one forced).
integration: build
    scripts/run-integration {{test_user}}

# Not part of `test` (it needs qemu-user-static, which CI does not
# install): the unit tests that run in one process without namespaces
# (sysplan's executor with arm64's system call numbers, the planner's golden
# plans, the exec search) on arm64 under qemu-aarch64-static. qemu cannot
# run the fast path's CLONE_VM children; TestChildCode reads their code.
# Unit tests of the portable packages on arm64, emulated.
unit-arm64:
    command -v qemu-aarch64-static >/dev/null || { echo "unit-arm64: qemu-aarch64-static is missing (apt-get install qemu-user-static)"; exit 1; }
    for p in sysplan initplan contract; do d=$(mktemp -d) && CGO_ENABLED=0 GOARCH=arm64 go test -c -o "$d/$p.test" ./$p && (cd $p && qemu-aarch64-static "$d/$p.test" -test.count=1) && rm -r "$d"; done

# Everything: setup, lint, unit and integration tests.
test: setup lint unit integration

# gofmt, go vet and staticcheck, here and (lint-cross) for arm64 and 386.
lint: && lint-cross
    test -z "$(gofmt -l $(git ls-files '*.go'))" || { gofmt -l $(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
    go vet -tags {{tags}} ./... && go vet -tags integration ./tests/
    test -x "$(go env GOPATH)/bin/staticcheck" || go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
    "$(go env GOPATH)/bin/staticcheck" -tags {{tags}} ./... && "$(go env GOPATH)/bin/staticcheck" -tags integration ./tests/

# arm64's fast path (clone_arm64.s, its embedded seccomp filters) is code
# this machine cannot run: it is built, vetted and staticchecked. 386 has
# the re-exec path only: it is built. Cross builds have no cgo, so the
# libseccomp packages (rbox-seccomp, built on its own machine) are left out.
# Build and vet for arm64 and 386.
lint-cross:
    #!/usr/bin/env bash
    set -euo pipefail
    export CGO_ENABLED=0
    GOARCH=arm64 go build -o /dev/null ./cmd/rbox
    GOARCH=arm64 go build -tags {{tags}} -o /dev/null ./cmd/rbox-image
    GOARCH=386 go build -o /dev/null ./cmd/rbox
    export GOARCH=arm64
    pkgs=$(go list -tags {{tags}} ./... | grep -v -e /seccomp/libseccomp -e /cmd/rbox-seccomp)
    go vet -tags {{tags}} $pkgs && go vet -tags integration ./tests/
    "$(go env GOPATH)/bin/staticcheck" -tags {{tags}} $pkgs && "$(go env GOPATH)/bin/staticcheck" -tags integration ./tests/

# scripts/bench measures start-up beside bwrap and unshare, then runs
# scripts/bench-* (network, storage, egress, exec, bridge, limits, tiers,
# bwrap, seccomp; kinds: start-up per run kind; idmap: the full mapping and
# a holder of the mapped user namespace; profile: where start-up goes).
# Every benchmark, as the test user; prints medians and ratios.
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

# The sandbox network benchmark alone.
bench-bridge: build setup
    scripts/bench-bridge {{test_user}}

# Where rbox -- /bin/true spends its CPU (perf record), alone.
bench-profile: build setup
    scripts/bench-profile {{test_user}}

# The full mapping's cost and the holder of a mapped user namespace, alone.
bench-idmap: build setup
    scripts/bench-idmap {{test_user}}

# -p, -t, --overlay, --image and --net user beside a plain run and each
# kind's own helper or mount cost.
# Start-up per run kind, alone.
bench-kinds: build setup
    scripts/bench-kinds {{test_user}}
