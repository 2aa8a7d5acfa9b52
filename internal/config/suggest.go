package config

import (
	"strings"

	"github.com/spf13/pflag"
)

// SuggestionsMinimumDistance is the largest edit distance at which a flag
// is offered for a misspelt one, as cobra's field of the same name does
// for commands.
const SuggestionsMinimumDistance = 2

// SuggestFlags returns the flags of fs a user who typed --typed most likely
// meant, spelt as on the command line ("--leave-running", "-t"): flags
// within SuggestionsMinimumDistance edits of it, and flags it begins, the
// way cobra suggests commands. A one-letter name also finds the flag with
// that shorthand: --t means -t. Hidden flags are never offered.
func SuggestFlags(fs *pflag.FlagSet, typed string) []string {
	var out []string
	if len(typed) == 1 {
		if f := fs.ShorthandLookup(typed); f != nil && !f.Hidden {
			return []string{"-" + typed}
		}
	}
	lower := strings.ToLower(typed)
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		name := strings.ToLower(f.Name)
		if editDistance(lower, name) <= SuggestionsMinimumDistance || strings.HasPrefix(name, lower) {
			out = append(out, "--"+f.Name)
		}
	})
	return out
}
