package sandbox

// Started, when set, is called with the host pid of the sandbox's pid 1
// once pid 1 has been let go on to build the sandbox and start the command:
// a named sandbox's supervisor records it then (see cmd/rbox/named.go).
var Started func(pid1 int)

func notifyStarted(pid1 int) {
	if Started != nil {
		Started(pid1)
	}
}
