package bwrapcli

// Usage is rbox's summary of the bwrap options it understands (rbox's own
// words; bwrap(1) is the reference).
const Usage = `usage: bwrap [OPTIONS...] [--] COMMAND [ARGS...]
       rbox bwrap [OPTIONS...] [--] COMMAND [ARGS...]

bubblewrap 0.11's command line, with bwrap's meaning: an empty root built from
the options below in their order; nothing shared or unshared beyond what they say.

General:      --help --version --args FD --argv0 VALUE --level-prefix
Namespaces:   --unshare-all --share-net --unshare-user --unshare-user-try
              --unshare-ipc --unshare-pid --unshare-net --unshare-uts
              --unshare-cgroup --unshare-cgroup-try --uid UID --gid GID
              --hostname NAME --disable-userns --assert-userns-disabled
Environment:  --chdir DIR --clearenv --setenv VAR VALUE --unsetenv VAR
Monitoring:   --lock-file DEST --sync-fd FD --block-fd FD --info-fd FD
              --json-status-fd FD
Filesystem:   --perms OCTAL --size BYTES
              --bind SRC DEST --bind-try SRC DEST --dev-bind SRC DEST
              --dev-bind-try SRC DEST --ro-bind SRC DEST --ro-bind-try SRC DEST
              --bind-fd FD DEST --ro-bind-fd FD DEST --remount-ro DEST
              --overlay-src SRC --overlay RWSRC WORKDIR DEST --tmp-overlay DEST
              --ro-overlay DEST --proc DEST --dev DEST --tmpfs DEST --mqueue DEST
              --dir DEST --file FD DEST --bind-data FD DEST --ro-bind-data FD DEST
              --symlink SRC DEST --chmod OCTAL PATH
Lockdown:     --seccomp FD --add-seccomp-fd FD --new-session
              --die-with-parent --as-pid-1 --cap-add CAP --cap-drop CAP
              --exec-label LABEL --file-label LABEL (hosts without SELinux)
rbox only:    --rbox-map-subids   map the caller's subordinate uid/gid ranges too

Not supported (exit 1 with a message): --userns, --userns2, --pidns,
--userns-block-fd. See docs/bwrap.md.
`
