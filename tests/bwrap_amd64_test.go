//go:build integration

package tests

import "golang.org/x/sys/unix"

// mkdirNr is mkdir(2), which amd64's C library calls for mkdir(3).
const mkdirNr = unix.SYS_MKDIR

// symlinkNr is symlink(2), which amd64's C library calls for symlink(3).
const symlinkNr = unix.SYS_SYMLINK
