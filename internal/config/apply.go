package config

import (
	"bytes"
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"
)

// Sources says where config files come from. DefaultSources is the real
// system; tests build their own so that they never read /etc or $HOME.
type Sources struct {
	// SystemFile is read first, unless --no-default-config.
	SystemFile string
	// Getenv looks up HOME (for $HOME/.gockpt/default.conf) and
	// GOCKPT_CONFIG_FILE.
	Getenv func(string) string
	// OtherCommandOption reports whether name is an option of some other
	// gockpt command. The default files are shared by all commands, so such
	// a line is skipped instead of refused. Nil: every unknown name is an error.
	OtherCommandOption func(name string) bool
}

// DefaultSources reads the real default files and environment.
var DefaultSources = Sources{
	SystemFile: "/etc/gockpt/default.conf",
	Getenv:     os.Getenv,
}

// EnvConfigFile names the config file to read when --config is not given.
const EnvConfigFile = "GOCKPT_CONFIG_FILE"

// userConfigFile is relative to $HOME.
const userConfigFile = ".gockpt/default.conf"

// commandLineOnly are flags a config file cannot set: they choose the config
// files, or act before config files are read.
var commandLineOnly = map[string]bool{
	"config":            true,
	"no-default-config": true,
	"help":              true,
	"version":           true,
}

// ApplyFiles sets the flags in fs from the config files, as DefaultSources
// finds them. Call it after the command line is parsed: flags set there win.
func ApplyFiles(fs *pflag.FlagSet, o *Options) error {
	return DefaultSources.Apply(fs, o)
}

// configFile is one file to read and whether it may be missing.
type configFile struct {
	path     string
	optional bool
	origin   string // how the file was named, for errors
}

// files lists the config files to read, lowest precedence first. o must hold
// the parsed --config and --no-default-config; fs tells whether --config was
// given at all.
func (s Sources) files(fs *pflag.FlagSet, o *Options) ([]configFile, error) {
	getenv := s.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	var files []configFile
	if !o.NoDefaultConfig {
		if s.SystemFile != "" {
			files = append(files, configFile{path: s.SystemFile, optional: true})
		}
		if home := getenv("HOME"); home != "" {
			files = append(files, configFile{path: filepath.Join(home, userConfigFile), optional: true})
		}
	}
	configGiven := o.ConfigFile != ""
	if f := fs.Lookup("config"); f != nil && f.Changed {
		configGiven = true
		if o.ConfigFile == "" {
			return nil, errors.New("--config needs a file name; drop it to read only the default files")
		}
	}
	switch {
	case configGiven:
		files = append(files, configFile{path: o.ConfigFile, origin: "--config"})
	case getenv(EnvConfigFile) != "":
		files = append(files, configFile{path: getenv(EnvConfigFile), origin: EnvConfigFile})
	}
	return files, nil
}

// Apply reads the files that files lists and sets the flags in fs from them.
func (s Sources) Apply(fs *pflag.FlagSet, o *Options) error {
	files, err := s.files(fs, o)
	if err != nil {
		return err
	}
	// Changed is about to be set by the files too; remember the command line.
	// VisitAll, not Visit: cobra shares *Flag between a command's flag set
	// and its parents', and "-4" marks verbosity through the parent's set.
	fromCommandLine := map[string]bool{}
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed {
			fromCommandLine[f.Name] = true
		}
	})
	for _, cf := range files {
		data, err := os.ReadFile(cf.path)
		if err != nil {
			if cf.optional && errors.Is(err, iofs.ErrNotExist) {
				continue
			}
			return readError(cf, err)
		}
		entries, err := ParseFile(bytes.NewReader(data), cf.path)
		if err != nil {
			return err
		}
		if err := s.applyEntries(fs, cf.path, entries, fromCommandLine); err != nil {
			return err
		}
	}
	return nil
}

func readError(cf configFile, err error) error {
	var pe *iofs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	if cf.origin != "" {
		return fmt.Errorf("config file %s (given by %s): %v", cf.path, cf.origin, err)
	}
	return fmt.Errorf("config file %s: %v", cf.path, err)
}

// applyEntries sets flags from already parsed entries of the file named file.
// Flags in fromCommandLine keep their values, but their lines are still
// checked.
func (s Sources) applyEntries(fs *pflag.FlagSet, file string, entries []Entry, fromCommandLine map[string]bool) error {
	// A list option in a later file replaces the earlier files' list; repeated
	// lines within one file add to it, as repeated flags do.
	listStarted := map[string]bool{}
	for _, e := range entries {
		f := fs.Lookup(e.Name)
		if f == nil || f.Annotations[annotationHelper] != nil {
			if s.OtherCommandOption != nil && s.OtherCommandOption(e.Name) {
				continue
			}
			return &FileError{File: file, Line: e.Line, Msg: unknownOption(fs, e.Name)}
		}
		if commandLineOnly[f.Name] {
			return &FileError{File: file, Line: e.Line, Msg: fmt.Sprintf("option %q works only on the command line; remove it from the config file", e.Name)}
		}
		value := e.Value
		switch {
		case !e.HasValue && f.NoOptDefVal == "":
			return &FileError{File: file, Line: e.Line, Msg: fmt.Sprintf("option %q needs a value; write \"%s VALUE\"", e.Name, e.Name)}
		case !e.HasValue:
			value = f.NoOptDefVal
		case isBool(f) && value != "true" && value != "false":
			return &FileError{File: file, Line: e.Line, Msg: fmt.Sprintf("option %q takes no value, got %q; write \"%s\", \"%s true\" or \"%s false\"", e.Name, value, e.Name, e.Name, e.Name)}
		}
		if fromCommandLine[f.Name] {
			continue
		}
		if sv, ok := f.Value.(pflag.SliceValue); ok && !listStarted[f.Name] {
			listStarted[f.Name] = true
			if err := sv.Replace(nil); err != nil {
				return &FileError{File: file, Line: e.Line, Msg: fmt.Sprintf("option %q: %v", e.Name, err)}
			}
		}
		if err := fs.Set(f.Name, value); err != nil {
			if ive, ok := err.(*pflag.InvalidValueError); ok {
				err = ive.Unwrap()
			}
			return &FileError{File: file, Line: e.Line, Msg: fmt.Sprintf("invalid value %q for option %q: %v", value, e.Name, err)}
		}
	}
	return nil
}

func isBool(f *pflag.Flag) bool {
	if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
		return true
	}
	return f.Value.Type() == "bool"
}

// unknownOption words the error for a name fs does not know, with the most
// likely intended name when there is one.
func unknownOption(fs *pflag.FlagSet, name string) string {
	msg := fmt.Sprintf("unknown option %q", name)
	if len(name) == 1 {
		if f := fs.ShorthandLookup(name); f != nil && f.Annotations[annotationHelper] == nil {
			return msg + fmt.Sprintf(" (config files use long names: %q)", f.Name)
		}
	}
	best, bestDist := "", 3 // suggest only close misspellings
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden || commandLineOnly[f.Name] {
			return
		}
		if d := editDistance(name, f.Name); d < bestDist {
			best, bestDist = f.Name, d
		}
	})
	if best != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", best)
	}
	return msg
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		if a == b {
			return 0
		}
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// OptionNames returns a lookup of every long flag name in the given flag
// sets, meant for Sources.OtherCommandOption: pass the flag sets of all
// commands so that a default file may hold options of any of them.
func OptionNames(sets ...*pflag.FlagSet) func(string) bool {
	names := map[string]bool{}
	for _, s := range sets {
		s.VisitAll(func(f *pflag.Flag) {
			if f.Annotations[annotationHelper] == nil && !commandLineOnly[f.Name] {
				names[f.Name] = true
			}
		})
	}
	return func(name string) bool { return names[name] }
}
