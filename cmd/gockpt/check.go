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
	"github.com/gockpt/gockpt/internal/support"
)

func init() { subcommands = append(subcommands, newCheckCmd) }

func newCheckCmd(opts *config.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check [--all] [--json] [--feature NAME]",
		Short: "Report what this kernel supports for checkpoint/restore, and why not",
		Long: `Probe the kernel features gockpt uses by really exercising them on helper
processes, memory and sockets of its own.

Without flags, check shows the features dump and restore need, then what
gockpt dumps and what it refuses (with what to do instead), and ends with
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
	Features map[string]featureJSON `json:"features"`
	// Objects is what gockpt dumps and refuses, whatever the kernel has.
	Objects []support.Object `json:"objects,omitempty"`
	Verdict *verdictJSON     `json:"verdict,omitempty"`
}

// featureJSON is a probe's result, with a note when gockpt has no use for
// the feature.
type featureJSON struct {
	kerndat.Result
	Note string `json:"note,omitempty"`
}

func newFeatureJSON(r kerndat.Result) featureJSON {
	return featureJSON{Result: r, Note: refusedNote(r.Name)}
}

// refusedNote says, for a feature that exists only for kinds of objects
// gockpt refuses, that gockpt does not dump them; "" otherwise.
func refusedNote(name string) string {
	f, _ := kerndat.Lookup(name)
	objs := f.Refused()
	if len(objs) == 0 {
		return ""
	}
	labels := make([]string, len(objs))
	for i, o := range objs {
		labels[i] = o.Label
	}
	list := labels[0]
	if n := len(labels); n > 1 {
		list = strings.Join(labels[:n-1], ", ") + " or " + labels[n-1]
	}
	return "gockpt does not dump " + list
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
		out := checkJSON{Features: map[string]featureJSON{}, Objects: support.Objects,
			Verdict: &verdictJSON{OK: ok, Missing: missing, Message: msg}}
		if out.Verdict.Missing == nil {
			out.Verdict.Missing = []string{}
		}
		for _, r := range rs {
			out.Features[r.Name] = newFeatureJSON(r)
		}
		if err := writeJSON(stdout, out); err != nil {
			return err
		}
	} else {
		for _, r := range rs {
			fmt.Fprintln(stdout, checkLine(r, opts.Verbosity > config.DefaultVerbosity))
		}
		writeObjects(stdout)
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
		if err := writeJSON(stdout, checkJSON{Features: map[string]featureJSON{r.Name: newFeatureJSON(r)}}); err != nil {
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
// working feature shows its summary, or everything with verbose set. A
// feature only refused objects need says so: "TCP repair: yes (the kernel
// has it; gockpt does not dump TCP sockets)".
func checkLine(r kerndat.Result, verbose bool) string {
	f, _ := kerndat.Lookup(r.Name)
	var parts []string
	switch {
	case !r.Supported && r.State != "":
		// An observation ("not active"), not a missing feature.
		parts = append(parts, r.Detail)
	case !r.Supported && r.Detail != "":
		parts = append(parts, r.Detail, "requires "+r.Requires)
	case verbose && r.Detail != "":
		parts = append(parts, r.Detail)
	case r.Summary != "":
		parts = append(parts, r.Summary)
	case refusedNote(r.Name) != "":
		parts = append(parts, "the kernel has it")
	}
	if note := refusedNote(r.Name); note != "" {
		parts = append(parts, note)
	}
	line := f.Label + ": " + r.Status()
	if len(parts) > 0 {
		line += " (" + strings.Join(parts, "; ") + ")"
	}
	return line
}

// objectLabel is an object's label, with the CRIU option that dumps it
// for those gockpt refuses.
func objectLabel(o support.Object) string {
	if !o.Dumped && o.CRIU != "" {
		return o.Label + " (CRIU: " + o.CRIU + ")"
	}
	return o.Label
}

// writeObjects prints what gockpt dumps, then what it refuses and what to
// do instead, each set apart by a blank line.
func writeObjects(w io.Writer) {
	for _, dumped := range []bool{true, false} {
		if dumped {
			fmt.Fprintln(w, "\ngockpt dumps:")
		} else {
			fmt.Fprintln(w, "\ngockpt refuses (and what to do):")
		}
		for _, o := range support.Objects {
			if o.Dumped == dumped {
				fmt.Fprintf(w, "  %s: %s\n", objectLabel(o), o.Detail)
			}
		}
	}
	fmt.Fprintln(w)
}
