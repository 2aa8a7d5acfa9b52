package main

import (
	"os"
	"testing"
)

// TestMain lets the test binary stand in for gockpt where gockpt runs
// itself: dump starts its parasite watchdog, and pre-dump its memory
// keeper, as os.Executable().
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && (os.Args[1] == watchdogCmd || os.Args[1] == keeperCmd) {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}
