//go:build amd64 || arm64

package forkinit

// Implemented in clone_GOARCH.s.
func cloneInit(flags, stack uintptr) (pid uintptr, errno uintptr)
func clonePayload(flags, stack uintptr) (pid uintptr, errno uintptr)
func cloneOuter(flags, stack uintptr) (pid uintptr, errno uintptr)
func cloneInner(flags, stack uintptr) (pid uintptr, errno uintptr)
func cloneJoin(flags, stack uintptr) (pid uintptr, errno uintptr)

const sharesMemory = true

// The children's entry points are called from clone_GOARCH.s only.
var _, _, _, _, _ = childEntry, payloadEntry, outerEntry, innerEntry, joinEntry
