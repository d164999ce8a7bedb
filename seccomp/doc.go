// Package seccomp holds the system call filter rbox puts on the payload:
// rbox's default policy and the Docker/OCI JSON profile model, the default
// policy's filters precompiled, the helper that compiles other profiles,
// and loading a filter on a thread.
//
// # Why a deny-list
//
// Docker's default profile is an allow-list: anything not listed gets EPERM.
// Most of its list mirrors capability checks (calls allowed only "if
// CAP_SYS_ADMIN"), and the rest trims kernel attack surface. rbox's default
// is a deny-list with allow as the default action, because in rbox:
//
//   - the payload runs in its own user namespace, without the capabilities
//     rbox drops and with no_new_privs, so the kernel itself already refuses
//     every call that needs privilege over the host (setting clocks, loading
//     modules, mounting outside the sandbox);
//   - the payload is a build, which runs whatever compilers, test suites and
//     runtimes it brings. An allow-list lags the kernel and answers new calls
//     with an error their callers do not expect (Docker's EPERM for
//     faccessat2 and clone3 broke glibc 2.33 and 2.34 programs until its
//     list caught up), which is the unclear failure rbox must avoid;
//   - rbox's own pid 1 forks the payload after installing the filter on its
//     thread, so it must not trip over the filter either.
//
// The price is that a system call added to a future kernel is allowed until
// it is reviewed here; the deny-list was reviewed against Linux 6.18 and
// Docker's and podman's default profiles. What the deny-list refuses is the
// attack surface an unprivileged process can still reach (keyrings, eBPF,
// perf, userfaultfd, io_uring, user namespaces), the calls on host-wide
// state that do not depend on namespaces alone, and terminal injection.
// DeniedByDefault lists every entry with its errno and reason.
//
// # Errno
//
// Refused calls get EPERM, the answer callers already handle for missing
// privilege. They get ENOSYS where callers only fall back on that: clone3
// (glibc and Go retry with clone, whose flags the filter can check),
// io_uring (libraries fall back to plain calls) and the keyring calls (runc
// and others carry on without a session keyring only on ENOSYS). Nothing is
// ever killed: a build must see an error it can report.
//
// # Decisions on calls left allowed
//
//   - mount, umount2, pivot_root, chroot and the new mount API (fsopen,
//     fsconfig, fsmount, fspick, move_mount, open_tree, mount_setattr) act
//     on the sandbox's own namespaces and need CAP_SYS_ADMIN (CAP_SYS_CHROOT)
//     there, which the payload lacks unless it was given with --cap-add;
//     refusing them would only hide the kernel's own EPERM, and nested
//     sandboxes need them.
//   - adjtimex and clock_adjtime: whether they read or set the clock is in a
//     struct in memory, which seccomp cannot read. Setting needs CAP_SYS_TIME
//     in the initial user namespace, which the payload never has, so the
//     kernel refuses it; reading (ntp_gettime, chrony status) keeps working.
//   - ptrace, process_vm_readv/writev, kcmp: debuggers, strace and the
//     sanitizers' leak checkers need them; the pid namespace bounds what the
//     payload can reach, and kernels since 4.8 recheck seccomp after a
//     tracer changes a call.
//   - setns and user namespaces (clone/unshare with CLONE_NEWUSER, clone3)
//     are refused unless DefaultOptions.AllowNested: a nested sandbox needs
//     them, and then the payload can reach what any unprivileged user of the
//     host can.
//
// # ABIs
//
// A filter names the ABIs it covers; a call through another one bypasses its
// rules. The default profile covers every ABI the host kernel runs: on
// amd64 x86_64, i386 (int $0x80) and x32 (x86_64 numbers with bit 0x40000000
// set), on arm64 aarch64 and arm, on s390x s390x and s390; the same entries
// apply to each. Refusing i386 and x32 wholesale was the alternative: x32 is
// rarely enabled, but 32-bit programs are a fair thing for a build to run.
// A call through an ABI a profile leaves out gets ENOSYS (the bad-arch
// action). One gap remains, shared with Docker: i386 passes socket calls
// through socketcall(2) with the arguments in memory, so the AF_VSOCK rule
// cannot be enforced there.
//
// # Threads
//
// Load puts the filter on the calling thread only (no TSYNC) and keeps the
// goroutine locked to it; see Load.
//
// # Where filters are compiled
//
// This package is pure Go, and so is rbox: an empty static cgo executable
// starts in 6.3 ms on the 2-CPU test VM, an empty pure-Go one in 3.7 ms,
// and compiling the default profile with libseccomp took 1.5 to 4 ms of CPU
// per run, on a machine where that CPU competes with newuidmap and
// newgidmap. libseccomp (package seccomp/libseccomp, cgo) compiles filters
// in two places only:
//
//   - At build time, the default profile, plain and AllowNested, for amd64
//     (x86_64, i386, x32) and arm64 (aarch64, arm), each compiled on any
//     machine (DefaultFor, libseccomp builds filters for any ABI): the
//     programs are embedded (filters/, go:embed) and DefaultFilter returns
//     the build's GOARCH's. Default depends on GOARCH alone, with no
//     condition on the host's kernel or capabilities, so the program is the
//     same on every host. TestEmbedded in seccomp/libseccomp fails when
//     they are not what the deny-list compiles to, and rewrites them with
//     -update (go generate ./seccomp).
//   - At run time, for --seccomp FILE (and for the default profile on a
//     GOARCH with no embedded programs): the rbox-seccomp helper, installed
//     next to rbox, reads a Request on stdin and writes the program
//     (Compile).
//
// The CLI puts the program into spec.Spec.SeccompFilter; both kinds of
// pid 1 only load it.
//
// rbox-seccomp links libseccomp statically, and glibc with it (the
// Justfile's static_flags), so it runs where libseccomp is not installed;
// building it needs libseccomp.a (Debian: libseccomp-dev).
package seccomp
