// Command linkcheck is built by the seccomp tests with rbox's link flags to
// check that libseccomp ends up inside the binary, not beside it.
package main

import (
	"fmt"

	"github.com/rbox-dev/rbox/seccomp"
)

func main() {
	fmt.Println(len(seccomp.DeniedByDefault()))
}
