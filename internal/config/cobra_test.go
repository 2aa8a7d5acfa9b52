package config

import (
	"io"
	"testing"

	"github.com/spf13/cobra"
)

// TestWithCobra runs ApplyFiles' logic the way cmd/gockpt wires it: global
// flags on the root's persistent set, a subcommand's own flags, and the files
// applied from PersistentPreRunE to the merged set.
func TestWithCobra(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		verbosity int
		leave     bool
	}{
		{args: []string{"dump"}, verbosity: 1, leave: true},
		{args: []string{"dump", "-v4"}, verbosity: 4, leave: true},
		{args: []string{"dump", "-4"}, verbosity: 4, leave: true},
		{args: []string{"-vv", "dump"}, verbosity: 4, leave: true},
		{args: []string{"dump", "--verbosity=0", "--leave-running=false"}, verbosity: 0, leave: false},
	} {
		e := newEnv(t)
		e.write(t, etcConf, "verbosity 1\nleave-running\n")
		var o Options
		var leave bool
		root := &cobra.Command{
			Use:           "gockpt",
			SilenceUsage:  true,
			SilenceErrors: true,
			PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
				return e.sources().Apply(cmd.Flags(), &o)
			},
		}
		root.SetOut(io.Discard)
		root.SetErr(io.Discard)
		o.AddGlobalFlags(root.PersistentFlags())
		dump := &cobra.Command{Use: "dump", RunE: func(*cobra.Command, []string) error { return nil }}
		dump.Flags().BoolVar(&leave, "leave-running", false, "")
		root.AddCommand(dump)
		root.SetArgs(tc.args)
		if err := root.Execute(); err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if o.Verbosity != tc.verbosity || leave != tc.leave {
			t.Errorf("%q: verbosity %d leave-running %v, want %d %v", tc.args, o.Verbosity, leave, tc.verbosity, tc.leave)
		}
	}
}
