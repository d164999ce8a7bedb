module github.com/rbox-dev/rbox

go 1.26.8

require (
	github.com/alecthomas/kong v1.17.0 // indirect
	github.com/containernetworking/plugins v1.9.0 // indirect
	github.com/creack/pty v1.1.24 // indirect
	github.com/moby/sys/capability v0.5.0
	github.com/moby/sys/mountinfo v0.7.3 // indirect
	github.com/rootless-containers/rootlesskit/v2 v2.3.6 // indirect
	github.com/seccomp/libseccomp-golang v0.11.1
	github.com/sirupsen/logrus v1.9.3 // indirect
	golang.org/x/sys v0.50.0
)
