package main

import (
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/config"
	"github.com/gockpt/gockpt/internal/keeper"
)

func init() { subcommands = append(subcommands, newKeeperCmd) }

// keeperCmd is the name pre-dump --track-mem starts its keeper with.
const keeperCmd = "mem-keeper"

// newKeeperCmd is the daemon that holds the memory-tracking userfaultfds
// between pre-dumps (internal/keeper). It is internal, so hidden from help.
func newKeeperCmd(opts *config.Options) *cobra.Command {
	var addr string
	cmd := &cobra.Command{
		Use:    keeperCmd,
		Short:  "Hold memory-tracking userfaultfds between dumps (started by gockpt pre-dump itself)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return keeper.Serve(addr, readyFile())
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "", "abstract unix socket name to listen on")
	cmd.MarkFlagRequired("addr")
	return cmd
}

// readyFile is fd 3, the pipe keeper.Start waits on, when it is one: run by
// hand, the keeper must not write into whatever else fd 3 is.
func readyFile() *os.File {
	var st unix.Stat_t
	if unix.Fstat(3, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		return nil
	}
	return os.NewFile(3, "ready")
}

// keeperArgs is how pre-dump starts the keeper: this very binary.
func keeperArgs() []string {
	exe, err := os.Executable()
	if err != nil {
		return nil
	}
	return []string{exe, keeperCmd, "--no-default-config"}
}
