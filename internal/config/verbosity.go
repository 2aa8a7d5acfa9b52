package config

import (
	"fmt"
	"strconv"

	"github.com/spf13/pflag"
)

// Verbosity levels, CRIU's numbering.
const (
	MinVerbosity     = 0 // errors only
	DefaultVerbosity = 2 // errors and warnings
	MaxVerbosity     = 4 // debug
)

// incrementVerbosity is the value pflag passes for a bare -v or --verbosity.
const incrementVerbosity = "+1"

// annotationHelper marks flags that exist only to make a command-line spelling
// work; config files do not know them.
const annotationHelper = "gockpt-flag-helper"

// verbosityValue gives the verbosity flag CRIU's meaning: a bare -v adds one
// (so -vvvv counts), a number sets the level. pflag's IntVar cannot do this:
// its parser rejects the "+1" that a bare flag passes.
type verbosityValue struct{ p *int }

func (v verbosityValue) Set(s string) error {
	if s == incrementVerbosity {
		// Extra v's are "more", not a mistake: stop at the top.
		if *v.p < MaxVerbosity {
			*v.p++
		}
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("verbosity must be a number from %d to %d, got %q", MinVerbosity, MaxVerbosity, s)
	}
	if n < MinVerbosity || n > MaxVerbosity {
		return fmt.Errorf("verbosity %d is out of range: use %d (errors only) to %d (debug)", n, MinVerbosity, MaxVerbosity)
	}
	*v.p = n
	return nil
}

func (v verbosityValue) String() string {
	if v.p == nil {
		return strconv.Itoa(DefaultVerbosity)
	}
	return strconv.Itoa(*v.p)
}

func (v verbosityValue) Type() string { return "int" }

// verbosityDigit makes "-v4" work. pflag reads "-v4" as -v (increment, because
// the flag's value is optional) followed by the shorthand "-4"; each hidden
// digit flag then sets the level outright. "-4" alone therefore means "-v4".
type verbosityDigit struct {
	fs    *pflag.FlagSet
	digit string
}

func (d verbosityDigit) Set(s string) error {
	if s != d.digit {
		return fmt.Errorf("-%s takes no value; write -v%s", d.digit, d.digit)
	}
	// Through fs.Set so that "verbosity" counts as given on the command line.
	err := d.fs.Set("verbosity", d.digit)
	if ive, ok := err.(*pflag.InvalidValueError); ok {
		return ive.Unwrap()
	}
	return err
}

func (d verbosityDigit) String() string { return "" }
func (d verbosityDigit) Type() string   { return "verbosity-level" }

// AddVerbosityFlag registers --verbosity/-v on fs, storing into p (which it
// sets to DefaultVerbosity). Accepted forms: -v, -vvvv, -v4, --verbosity,
// --verbosity=3, and "verbosity 3" or a bare "verbosity" in config files.
// "--verbosity 3" (with a space) does not set 3: the value is optional, so
// pflag leaves "3" as an argument, as for every optional-value flag.
func AddVerbosityFlag(fs *pflag.FlagSet, p *int) {
	*p = DefaultVerbosity
	f := fs.VarPF(verbosityValue{p}, "verbosity", "v",
		fmt.Sprintf("log level %d (errors only) to %d (debug); -v adds one, -vvvv or -v4 gives 4", MinVerbosity, MaxVerbosity))
	f.NoOptDefVal = incrementVerbosity
	for d := 0; d <= 9; d++ {
		digit := strconv.Itoa(d)
		h := fs.VarPF(verbosityDigit{fs: fs, digit: digit}, "verbosity-level-"+digit, digit, "same as -v"+digit)
		h.NoOptDefVal = digit
		h.Hidden = true
		h.Annotations = map[string][]string{annotationHelper: {"verbosity"}}
	}
}
