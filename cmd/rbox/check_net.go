package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/rbox-dev/rbox/slirp"
)

// printNetworkChecks writes one line per --net mode: whether it can work
// here and, when not, what to install or fix.
func printNetworkChecks(w io.Writer, asJSON bool) error {
	checks := slirp.Check()
	if asJSON {
		return json.NewEncoder(w).Encode(map[string]any{"network": checks})
	}
	for _, c := range checks {
		state := "ok"
		if !c.OK {
			state = "FAIL"
		}
		fmt.Fprintf(w, "%-4s  --net %-12s %s\n", state, c.Mode, c.Detail)
	}
	return nil
}
