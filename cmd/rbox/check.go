package main

import (
	"encoding/json"
	"fmt"
	"os"
)

// CheckCmd reports what works on this host.
type CheckCmd struct {
	JSON bool `name:"json" help:"Print the report as JSON."`
}

// Run runs the checks.
func (c *CheckCmd) Run() error {
	st, err := checkStorage()
	if err != nil {
		fmt.Fprintf(os.Stderr, "rbox: check storage: %v\n", err)
		return exitError{1}
	}
	if c.JSON {
		return json.NewEncoder(os.Stdout).Encode(map[string]any{"storage": st})
	}
	st.print()
	return nil
}
