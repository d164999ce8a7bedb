//go:build !amd64

package main

// syscallTable is only filled in for amd64; elsewhere every call reports
// absent.
var syscallTable = map[string]call{}
