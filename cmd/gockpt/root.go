package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gockpt/gockpt/internal/config"
	"github.com/gockpt/gockpt/internal/log"
)

// version is set with -ldflags "-X main.version=..." by the Makefile.
var version = "dev"

// subcommands holds the constructors of every subcommand. Each command's file
// appends its own constructor in init, so adding a command touches one file.
var subcommands []func(*config.Options) *cobra.Command

// exitError lets a command choose its exit status without printing anything
// more (check --feature, restore returning the root's status).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func newRootCmd(opts *config.Options, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "gockpt",
		Short:         "Checkpoint and restore Linux process trees",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
		// Config files are read once the command line is parsed, so that flags
		// given there win and --config/--no-default-config are known.
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if err := config.ApplyFiles(cmd.Flags(), opts); err != nil {
				return err
			}
			return openLog(cmd, opts)
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	opts.AddGlobalFlags(root.PersistentFlags())
	var sets []*pflag.FlagSet
	for _, c := range subcommands {
		sub := c(opts)
		root.AddCommand(sub)
		sets = append(sets, sub.Flags())
		for _, s := range sub.Commands() {
			sets = append(sets, s.Flags())
		}
	}
	// The default config files are shared by every command: a line meant
	// for another command is skipped there, not refused.
	config.DefaultSources.OtherCommandOption = config.OptionNames(sets...)
	return root
}

// logNameAnnotation names a command's default log file (CRIU: dump.log,
// restore.log). Commands without one log only when -o is given.
const logNameAnnotation = "gockpt/log-file"

// createsImagesAnnotation marks commands that create the images directory.
const createsImagesAnnotation = "gockpt/creates-images-dir"

func openLog(cmd *cobra.Command, opts *config.Options) error {
	name := opts.LogFile
	if name == "" {
		name = cmd.Annotations[logNameAnnotation]
	}
	if name == "" {
		return nil
	}
	dir := opts.WorkDir
	if dir == "" {
		dir = opts.ImagesDir
		// Only dump makes the images directory; a command reading images
		// must not create one just to hold its log.
		if cmd.Annotations[createsImagesAnnotation] == "" {
			if _, err := os.Stat(dir); err != nil {
				return nil
			}
		}
	}
	if err := log.Open(dir, name, opts.Verbosity); err != nil {
		return err
	}
	log.Infof("gockpt %s: %s", version, cmd.CommandPath())
	return nil
}

// run executes the command line and returns the process exit status. Errors
// are printed once, to stderr, with a pointer to the log file when one was
// opened.
func run(args []string, stdout, stderr io.Writer) int {
	opts := &config.Options{}
	root := newRootCmd(opts, stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	defer log.Close()
	if err == nil {
		return 0
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	log.Error(err)
	if p := log.Path(); p != "" {
		fmt.Fprintf(stderr, "Error: %v\n(see %s)\n", err, p)
	} else {
		fmt.Fprintf(stderr, "Error: %v\n", err)
	}
	return 1
}
