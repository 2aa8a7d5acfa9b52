package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

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
		// given there win and --config/--no-default-config are known. The
		// required flags are checked here, before a command's PreRunE checks
		// its values and long before its RunE opens the log: a usage error
		// leaves no trace on the file system.
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if err := config.ApplyFiles(cmd.Flags(), opts); err != nil {
				return err
			}
			if err := cmd.ValidateRequiredFlags(); err != nil {
				return usageError{err}
			}
			if err := cmd.ValidateFlagGroups(); err != nil {
				return usageError{err}
			}
			return nil
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(flagError)
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
	wire(root, opts)
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
	cmd, err := root.ExecuteC()
	defer log.Close()
	if err == nil {
		return 0
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if isUsageError(err) {
		// Nothing ran and no log was opened: say what was wrong and where
		// the usage is, as cobra does for an unknown command. A message
		// with suggestions ends with a newline, as cobra's own, so a blank
		// line sets them apart from the pointer to the help.
		fmt.Fprintf(stderr, "Error: %s\nRun '%s --help' for usage.\n", err, cmd.CommandPath())
		return 1
	}
	log.Error(err)
	if p := log.Path(); p != "" {
		fmt.Fprintf(stderr, "Error: %v\n(see %s)\n", err, p)
	} else {
		fmt.Fprintf(stderr, "Error: %v\n", err)
	}
	return 1
}

// usageError is a command line that asks for something impossible: an
// unknown flag, a missing or bad value, wrong arguments. It is found before
// anything runs, and printed with a pointer to the command's help.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// usagef makes a usageError from a message.
func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// isUsageError also knows cobra's unknown-command error, which cobra makes
// while it looks for the command, before any hook of ours runs.
func isUsageError(err error) bool {
	var ue usageError
	return errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command ")
}

// flagError turns pflag's parse errors into usage errors, with the flags
// the user probably meant for an unknown one, and plain words for a value
// that does not parse.
func flagError(cmd *cobra.Command, err error) error {
	var notExist *pflag.NotExistError
	var invalid *pflag.InvalidValueError
	switch {
	case errors.As(err, &notExist) && notExist.GetSpecifiedShortnames() == "":
		if s := config.SuggestFlags(cmd.Flags(), notExist.GetSpecifiedName()); len(s) > 0 {
			return usagef("%v\n\nDid you mean this?\n\t%s\n", err, strings.Join(s, "\n\t"))
		}
	case errors.As(err, &invalid):
		var ne *strconv.NumError
		if errors.As(invalid, &ne) {
			f := invalid.GetFlag()
			name := "--" + f.Name
			if f.Shorthand != "" {
				name = "-" + f.Shorthand + "/" + name
			}
			return usagef("invalid value %q for %s: %s", invalid.GetValue(), name, numberWant(ne))
		}
	}
	return usageError{err}
}

// numberWant says what a flag whose value did not parse wants.
func numberWant(ne *strconv.NumError) string {
	switch {
	case ne.Func == "ParseBool":
		return "want true or false"
	case errors.Is(ne.Err, strconv.ErrRange):
		return "the number is out of range"
	case strings.HasPrefix(ne.Func, "ParseFloat"):
		return "want a number"
	}
	return "want a whole number"
}

// runGroup is the RunE of a command that only groups others (image): alone
// it prints its help; with an argument, that argument is an unknown
// command, which cobra only reports for the root command.
func runGroup(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return cmd.Help()
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = config.SuggestionsMinimumDistance
	}
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t") + "\n"
	}
	return usageError{errors.New(msg)}
}

// wire gives every command below root what all commands share: arguments
// errors are usage errors, and a command that runs opens its log first,
// once its flags and values have been checked.
func wire(root *cobra.Command, opts *config.Options) {
	for _, c := range root.Commands() {
		if args := c.Args; args != nil {
			c.Args = func(cmd *cobra.Command, a []string) error {
				if err := args(cmd, a); err != nil {
					return usageError{err}
				}
				return nil
			}
		}
		if run := c.RunE; run != nil {
			c.RunE = func(cmd *cobra.Command, a []string) error {
				if err := openLog(cmd, opts); err != nil {
					return err
				}
				return run(cmd, a)
			}
		}
		wire(c, opts)
	}
}
