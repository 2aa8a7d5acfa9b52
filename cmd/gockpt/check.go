package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gockpt/gockpt/internal/config"
	"github.com/gockpt/gockpt/internal/kerndat"
)

func init() { subcommands = append(subcommands, newCheckCmd) }

func newCheckCmd(opts *config.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check [--all] [--json] [--feature NAME]",
		Short: "Report what this kernel supports for checkpoint/restore, and why not",
		Long: `Probe the kernel features gockpt uses by really exercising them on helper
processes, memory and sockets of its own.

Without flags, check shows the features dump and restore need and ends with
"Looks good." (exit 0) or what is missing (exit 1). --all adds the optional
features: dirty tracking, userfaultfd, TCP repair, socket diag, SELinux, ...
--feature NAME probes one feature: exit 0 if supported, 1 if not, 2 for an
unknown name. Feature names: ` + strings.Join(kerndat.Names(), ", ") + ".",
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCheck(opts, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.BoolVar(&opts.CheckAll, "all", false, "also show optional features")
	f.BoolVar(&opts.CheckJSON, "json", false, "print a JSON object instead of lines")
	f.StringVar(&opts.CheckFeature, "feature", "", "probe only this feature; exit status says whether it works")
	return cmd
}

// checkJSON is the --json output.
type checkJSON struct {
	Features map[string]kerndat.Result `json:"features"`
	Verdict  *verdictJSON              `json:"verdict,omitempty"`
}

type verdictJSON struct {
	OK      bool     `json:"ok"`
	Missing []string `json:"missing"`
	Message string   `json:"message"`
}

func runCheck(opts *config.Options, stdout, stderr io.Writer) error {
	if opts.CheckFeature != "" {
		return checkOne(opts, stdout, stderr)
	}
	names := kerndat.DefaultNames()
	if opts.CheckAll {
		names = kerndat.Names()
	}
	rs, err := kerndat.All(names...)
	if err != nil {
		return err
	}
	// The verdict needs the required features, which the default set holds.
	ok, missing := kerndat.Verdict(rs)
	msg := verdictMessage(ok, missing)
	if opts.CheckJSON {
		out := checkJSON{Features: map[string]kerndat.Result{}, Verdict: &verdictJSON{OK: ok, Missing: missing, Message: msg}}
		if out.Verdict.Missing == nil {
			out.Verdict.Missing = []string{}
		}
		for _, r := range rs {
			out.Features[r.Name] = r
		}
		if err := writeJSON(stdout, out); err != nil {
			return err
		}
	} else {
		for _, r := range rs {
			fmt.Fprintln(stdout, checkLine(r, opts.Verbosity > config.DefaultVerbosity))
		}
		fmt.Fprintln(stdout, msg)
	}
	if !ok {
		return exitError{1}
	}
	return nil
}

func verdictMessage(ok bool, missing []string) string {
	if ok {
		return "Looks good."
	}
	return "Dump and restore cannot work here; missing: " + strings.Join(missing, "; ") + "."
}

// checkOne is --feature NAME.
func checkOne(opts *config.Options, stdout, stderr io.Writer) error {
	r, err := kerndat.Probe(opts.CheckFeature)
	if errors.Is(err, kerndat.ErrUnknownFeature) {
		// Exit 2 tells a script "you asked wrongly" apart from "not supported".
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return exitError{2}
	}
	if err != nil {
		return err
	}
	if opts.CheckJSON {
		if err := writeJSON(stdout, checkJSON{Features: map[string]kerndat.Result{r.Name: r}}); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(stdout, checkLine(r, true))
	}
	if !r.Supported {
		return exitError{1}
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// checkLine is one human line: "soft-dirty: no (why; what gives it)". A
// working feature shows its summary, or everything with verbose set.
func checkLine(r kerndat.Result, verbose bool) string {
	f, _ := kerndat.Lookup(r.Name)
	line := f.Label + ": " + r.Status()
	switch {
	case !r.Supported && r.State != "":
		// An observation ("not active"), not a missing feature.
		line += " (" + r.Detail + ")"
	case !r.Supported && r.Detail != "":
		line += " (" + r.Detail + "; requires " + r.Requires + ")"
	case verbose && r.Detail != "":
		line += " (" + r.Detail + ")"
	case r.Summary != "":
		line += " (" + r.Summary + ")"
	}
	return line
}
