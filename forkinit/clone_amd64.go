package forkinit

// Implemented in clone_amd64.s.
func cloneInit(flags, stack uintptr) (pid uintptr, errno uintptr)
func clonePayload(flags, stack uintptr) (pid uintptr, errno uintptr)

// sharesMemory: pid 1 runs in the parent's memory and the payload's
// process in pid 1's until it execs (as with vfork), each on a stack of its
// own, so no process pays for copying page tables or for copy-on-write
// faults, which are most of a fork's cost on a paravirtualised machine.
const sharesMemory = true

// The children's entry points are called from clone_amd64.s only.
var _, _ = childEntry, payloadEntry
