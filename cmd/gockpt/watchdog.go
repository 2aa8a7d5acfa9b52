package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/gockpt/gockpt/internal/config"
	"github.com/gockpt/gockpt/internal/parasite"
)

func init() { subcommands = append(subcommands, newWatchdogCmd) }

// watchdogCmd is the name dump starts its parasite watchdog with.
const watchdogCmd = "parasite-watchdog"

// newWatchdogCmd is the helper process dump starts beside itself: if dump
// is killed, it removes what the self-cured parasites left in their tasks.
// It is internal, so hidden from help.
func newWatchdogCmd(opts *config.Options) *cobra.Command {
	return &cobra.Command{
		Use:    watchdogCmd,
		Short:  "Clean up after a killed dump (started by gockpt dump itself)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			did, err := parasite.ServeWatchdog(os.Stdin)
			if did != "" {
				fmt.Fprintln(cmd.ErrOrStderr(), did)
			}
			return err
		},
	}
}

// watchdogArgs is how dump starts the watchdog: this very binary.
func watchdogArgs() []string {
	exe, err := os.Executable()
	if err != nil {
		return nil
	}
	return []string{exe, watchdogCmd, "--no-default-config"}
}
