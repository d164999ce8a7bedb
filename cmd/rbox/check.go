package main

import "os"

// CheckCmd reports what works on this host.
type CheckCmd struct {
	JSON bool `name:"json" help:"Print the report as JSON."`
}

// Run runs the checks.
func (c *CheckCmd) Run() error { return printNetworkChecks(os.Stdout, c.JSON) }
