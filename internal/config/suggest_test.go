package config

import (
	"slices"
	"testing"

	"github.com/spf13/pflag"
)

func TestSuggestFlags(t *testing.T) {
	fs := pflag.NewFlagSet("dump", pflag.ContinueOnError)
	var o Options
	o.AddGlobalFlags(fs)
	fs.IntP("tree", "t", 0, "")
	fs.BoolP("leave-running", "R", false, "")
	fs.BoolP("leave-stopped", "s", false, "")
	fs.Bool("secret", false, "")
	fs.MarkHidden("secret")
	for _, c := range []struct {
		typed string
		want  []string
	}{
		{"leave-runing", []string{"--leave-running"}},  // one letter missing
		{"Leave-Running", []string{"--leave-running"}}, // case
		{"leave", []string{"--leave-running", "--leave-stopped"}},
		{"tre", []string{"--tree"}},
		{"t", []string{"-t"}}, // a shorthand written as a long flag
		{"D", []string{"-D"}}, // also a global one
		{"secrte", nil},       // hidden flags are never offered
		{"frobnicate", nil},   // too far from anything
		{"4", nil},            // the hidden -4 of -v4 is not offered
		{"log", []string{"--log-file"}},
	} {
		if got := SuggestFlags(fs, c.typed); !slices.Equal(got, c.want) {
			t.Errorf("SuggestFlags(%q) = %q, want %q", c.typed, got, c.want)
		}
	}
}
