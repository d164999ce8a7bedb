//go:build integration && !amd64

package tests

import "golang.org/x/sys/unix"

// mkdirNr: architectures without mkdir(2) have only mkdirat.
const mkdirNr = unix.SYS_MKDIRAT

// symlinkNr: architectures without symlink(2) have only symlinkat.
const symlinkNr = unix.SYS_SYMLINKAT
