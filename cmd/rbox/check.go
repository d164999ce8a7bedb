package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/rbox-dev/rbox/hostcheck"
	"github.com/rbox-dev/rbox/limits"
	"github.com/rbox-dev/rbox/tier"
)

// CheckCmd reports what works on this host.
type CheckCmd struct {
	JSON bool `name:"json" help:"Print the report as JSON: {schema_version: 1, items: [{name, status, detail, fix}...]}."`
}

// checkSchemaVersion numbers the shape of check --json; it changes only
// when a field is removed or changes meaning.
const checkSchemaVersion = 1

// checkReport is check --json's output.
type checkReport struct {
	SchemaVersion int                `json:"schema_version"`
	Items         []hostcheck.Result `json:"items"`
}

// Help is the command's long help.
func (c *CheckCmd) Help() string {
	return `Each item is tried for real: namespaces are created, id maps written, /proc and overlayfs mounted in a throw-away mount namespace. Every line says pass, warn or fail, what was seen, and for warn and fail the fix.

fail: rbox's default sandbox cannot run here (or not as set up). warn: it runs, without something (your full id range, the overlay fallback, networking helpers, cgroup limits, Landlock) or a known hazard is present.

Exit status: 0 when no item fails (warnings allowed), 1 when at least one item fails.`
}

// Run runs the checks and prints one line per item, or JSON.
func (c *CheckCmd) Run() error {
	results := append(hostcheck.Run(), limitResults()...)
	if c.JSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		// Fixes quote shell and AppArmor text; keep its < > & readable.
		enc.SetEscapeHTML(false)
		if err := enc.Encode(checkReport{SchemaVersion: checkSchemaVersion, Items: results}); err != nil {
			return err
		}
	} else {
		fmt.Print(formatResults(results))
	}
	for _, r := range results {
		if r.Status == hostcheck.Fail {
			return exitError{1}
		}
	}
	return nil
}

// formatResults renders one aligned line per item:
//
//	pass  user namespace  created user:[4026532291]
//	fail  newuidmap       /usr/bin/newuidmap is not setuid root (...)  -> fix: ...
func formatResults(results []hostcheck.Result) string {
	width := 0
	for _, r := range results {
		width = max(width, len(r.Name))
	}
	var b strings.Builder
	for _, r := range results {
		fmt.Fprintf(&b, "%-4s  %-*s  %s", r.Status, width, r.Name, r.Detail)
		if r.Fix != "" && r.Status != hostcheck.Pass {
			fmt.Fprintf(&b, "  -> fix: %s", r.Fix)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// limitResults are the lines about resource limits: which mechanism holds
// each here, in the tier a run gets (--isolation auto), and how to get a
// stronger one. A limit that holds per process only, or not at all, warns.
func limitResults() []hostcheck.Result {
	var out []hostcheck.Result
	choice, err := tier.Choose(tier.Auto, nil)
	landlock := err == nil && choice.Tier == tier.Landlock
	for _, l := range limits.Report(limits.Detect(), landlock) {
		r := hostcheck.Result{Name: l.Name, Status: hostcheck.Pass, Detail: l.Detail}
		if !l.Good {
			r.Status, r.Fix = hostcheck.Warn, l.Fix
		}
		out = append(out, r)
	}
	return out
}
