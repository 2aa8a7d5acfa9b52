package main

import (
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/gockpt/gockpt/internal/progress"
)

// progressDelayEnv replaces, for tests only, the second an operation runs
// before its progress bar appears (a Go duration: "0s"). Not an option:
// users have no reason to change it.
const progressDelayEnv = "GOCKPT_TEST_PROGRESS_DELAY"

// startProgress starts the progress line of a dump, pre-dump or restore on
// stderr, or returns nil when stderr is not a terminal: nothing is shown.
// The caller finishes it before printing its result.
func startProgress(cmd *cobra.Command, label string) *progress.Bar {
	delay := progress.Delay
	if v, ok := os.LookupEnv(progressDelayEnv); ok {
		if d, err := time.ParseDuration(v); err == nil {
			delay = d
		}
	}
	return progress.Start(cmd.ErrOrStderr(), label, delay)
}
