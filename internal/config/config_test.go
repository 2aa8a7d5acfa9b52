package config

import (
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// testFlags is a command's flag set as cobra would merge it: the global flags
// plus a few of the kinds commands add.
type testFlags struct {
	fs       *pflag.FlagSet
	o        Options
	leave    bool
	external []string
	port     int
}

func newTestFlags(t *testing.T, args ...string) *testFlags {
	t.Helper()
	tf := &testFlags{fs: pflag.NewFlagSet("gockpt", pflag.ContinueOnError)}
	tf.fs.SetOutput(io.Discard)
	tf.o.AddGlobalFlags(tf.fs)
	tf.fs.BoolVar(&tf.leave, "leave-running", false, "")
	tf.fs.StringSliceVar(&tf.external, "external", nil, "")
	tf.fs.IntVar(&tf.port, "port", 0, "")
	tf.fs.BoolP("help", "h", false, "")
	if err := tf.fs.Parse(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	return tf
}

// env is a fake environment: a temporary directory standing in for /etc and
// $HOME, and a map for the environment.
type env struct {
	dir  string
	vars map[string]string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{dir: t.TempDir(), vars: map[string]string{}}
	e.vars["HOME"] = filepath.Join(e.dir, "home")
	return e
}

func (e *env) sources() Sources {
	return Sources{
		SystemFile: filepath.Join(e.dir, "etc.conf"),
		Getenv:     func(k string) string { return e.vars[k] },
	}
}

func (e *env) write(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(e.dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const (
	etcConf  = "etc.conf"
	homeConf = "home/.gockpt/default.conf"
)

func TestVerbosityFlag(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		want    int
		wantErr string
	}{
		{args: nil, want: 2},
		{args: []string{"-v"}, want: 3},
		{args: []string{"-vv"}, want: 4},
		{args: []string{"-vvvv"}, want: 4},
		{args: []string{"-v", "-v"}, want: 4},
		{args: []string{"-v4"}, want: 4},
		{args: []string{"-v0"}, want: 0},
		{args: []string{"-v1"}, want: 1},
		{args: []string{"-v=1"}, want: 1},
		{args: []string{"--verbosity=3"}, want: 3},
		{args: []string{"--verbosity=0"}, want: 0},
		{args: []string{"--verbosity"}, want: 3},
		{args: []string{"-v7"}, wantErr: "verbosity 7 is out of range: use 0 (errors only) to 4 (debug)"},
		{args: []string{"--verbosity=5"}, wantErr: `invalid argument "5" for "-v, --verbosity" flag: verbosity 5 is out of range: use 0 (errors only) to 4 (debug)`},
		{args: []string{"--verbosity=-1"}, wantErr: `invalid argument "-1" for "-v, --verbosity" flag: verbosity -1 is out of range: use 0 (errors only) to 4 (debug)`},
		{args: []string{"--verbosity=lots"}, wantErr: `invalid argument "lots" for "-v, --verbosity" flag: verbosity must be a number from 0 to 4, got "lots"`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
			fs.SetOutput(io.Discard)
			var o Options
			o.AddGlobalFlags(fs)
			err := fs.Parse(tc.args)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.Verbosity != tc.want {
				t.Errorf("verbosity = %d, want %d", o.Verbosity, tc.want)
			}
			if len(tc.args) > 0 && !fs.Changed("verbosity") {
				t.Errorf("verbosity not marked as changed")
			}
		})
	}
}

func TestPrecedence(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string // relative path -> images-dir it sets
		env   string            // GOCKPT_CONFIG_FILE, relative to the env dir
		args  []string          // %s is replaced by the env dir
		want  string
	}{
		{name: "no files", want: "."},
		{name: "etc", files: map[string]string{etcConf: "etc"}, want: "etc"},
		{name: "home over etc", files: map[string]string{etcConf: "etc", homeConf: "home"}, want: "home"},
		{name: "home alone", files: map[string]string{homeConf: "home"}, want: "home"},
		{name: "env over home", files: map[string]string{etcConf: "etc", homeConf: "home", "env.conf": "env"}, env: "env.conf", want: "env"},
		{name: "--config replaces env", files: map[string]string{etcConf: "etc", "env.conf": "env", "cli.conf": "cli"}, env: "env.conf", args: []string{"--config=%s/cli.conf"}, want: "cli"},
		{name: "--config does not read env", files: map[string]string{"env.conf": "env", "cli.conf": ""}, env: "env.conf", args: []string{"--config=%s/cli.conf"}, want: "."},
		{name: "--config over home", files: map[string]string{homeConf: "home", "cli.conf": "cli"}, args: []string{"--config", "%s/cli.conf"}, want: "cli"},
		{name: "command line over all", files: map[string]string{etcConf: "etc", homeConf: "home", "cli.conf": "cli"}, args: []string{"--config=%s/cli.conf", "-D", "args"}, want: "args"},
		{name: "command line over env", files: map[string]string{"env.conf": "env"}, env: "env.conf", args: []string{"--images-dir=args"}, want: "args"},
		{name: "command line default value still wins", files: map[string]string{etcConf: "etc"}, args: []string{"-D", "."}, want: "."},
		{name: "no-default-config skips etc and home", files: map[string]string{etcConf: "etc", homeConf: "home"}, args: []string{"--no-default-config"}, want: "."},
		{name: "no-default-config keeps env", files: map[string]string{etcConf: "etc", homeConf: "home", "env.conf": "env"}, env: "env.conf", args: []string{"--no-default-config"}, want: "env"},
		{name: "no-default-config keeps --config", files: map[string]string{etcConf: "etc", "cli.conf": "cli"}, args: []string{"--no-default-config", "--config=%s/cli.conf"}, want: "cli"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			for p, v := range tc.files {
				content := "# set by " + p + "\n"
				if v != "" {
					content += "images-dir " + v + "\n"
				}
				e.write(t, p, content)
			}
			if tc.env != "" {
				e.vars[EnvConfigFile] = filepath.Join(e.dir, tc.env)
			}
			var args []string
			for _, a := range tc.args {
				args = append(args, strings.ReplaceAll(a, "%s", e.dir))
			}
			tf := newTestFlags(t, args...)
			if err := e.sources().Apply(tf.fs, &tf.o); err != nil {
				t.Fatal(err)
			}
			if tf.o.ImagesDir != tc.want {
				t.Errorf("images-dir = %q, want %q", tf.o.ImagesDir, tc.want)
			}
		})
	}
}

func TestApplyValues(t *testing.T) {
	e := newEnv(t)
	e.write(t, etcConf, `
# whole-line comment
   # indented comment
leave-running
verbosity 4   # trailing comment
log-file "my log.txt"
work-dir '/tmp/a dir # not a comment'
port=8080
external a
external b,c
`)
	e.write(t, homeConf, "external d\n")
	tf := newTestFlags(t)
	if err := e.sources().Apply(tf.fs, &tf.o); err != nil {
		t.Fatal(err)
	}
	if !tf.leave {
		t.Error("leave-running not set")
	}
	if tf.o.Verbosity != 4 {
		t.Errorf("verbosity = %d, want 4", tf.o.Verbosity)
	}
	if tf.o.LogFile != "my log.txt" {
		t.Errorf("log-file = %q", tf.o.LogFile)
	}
	if tf.o.WorkDir != "/tmp/a dir # not a comment" {
		t.Errorf("work-dir = %q", tf.o.WorkDir)
	}
	if tf.port != 8080 {
		t.Errorf("port = %d", tf.port)
	}
	// The home file replaces the list from /etc; it does not add to it.
	if want := []string{"d"}; !reflect.DeepEqual(tf.external, want) {
		t.Errorf("external = %q, want %q", tf.external, want)
	}
	if !tf.fs.Changed("leave-running") {
		t.Error("leave-running set from a file should count as changed")
	}
}

func TestListsWithinOneFileAppend(t *testing.T) {
	e := newEnv(t)
	e.write(t, etcConf, "external x\n")
	e.write(t, homeConf, "external a\nexternal b,c\n")
	tf := newTestFlags(t)
	if err := e.sources().Apply(tf.fs, &tf.o); err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "b", "c"}; !reflect.DeepEqual(tf.external, want) {
		t.Errorf("external = %q, want %q", tf.external, want)
	}
	// The command line's list wins whole.
	tf = newTestFlags(t, "--external=cli")
	if err := e.sources().Apply(tf.fs, &tf.o); err != nil {
		t.Fatal(err)
	}
	if want := []string{"cli"}; !reflect.DeepEqual(tf.external, want) {
		t.Errorf("external = %q, want %q", tf.external, want)
	}
}

func TestBoolForms(t *testing.T) {
	for _, tc := range []struct {
		line string
		args []string
		want bool
	}{
		{line: "leave-running", want: true},
		{line: "leave-running true", want: true},
		{line: "leave-running=true", want: true},
		{line: "leave-running false", want: false},
		{line: "leave-running \"false\"", want: false},
		{line: "--leave-running", want: true},
		{line: "leave-running false", args: []string{"--leave-running"}, want: true},
		{line: "leave-running", args: []string{"--leave-running=false"}, want: false},
	} {
		t.Run(tc.line+" "+strings.Join(tc.args, " "), func(t *testing.T) {
			e := newEnv(t)
			e.write(t, etcConf, "leave-running\n") // the lower file says true
			e.write(t, homeConf, tc.line+"\n")
			tf := newTestFlags(t, tc.args...)
			if err := e.sources().Apply(tf.fs, &tf.o); err != nil {
				t.Fatal(err)
			}
			if tf.leave != tc.want {
				t.Errorf("leave-running = %v, want %v", tf.leave, tc.want)
			}
		})
	}
}

func TestVerbosityFromFiles(t *testing.T) {
	for _, tc := range []struct {
		etc, home string
		args      []string
		want      int
	}{
		{etc: "verbosity 0", want: 0},
		{etc: "verbosity", want: 3},
		{etc: "verbosity 3", home: "verbosity", want: 4},
		{etc: "verbosity 4", home: "verbosity", want: 4},
		{etc: "verbosity 4", args: []string{"-v1"}, want: 1},
		{etc: "verbosity 4", args: []string{"-v"}, want: 3},
	} {
		e := newEnv(t)
		e.write(t, etcConf, tc.etc+"\n")
		e.write(t, homeConf, tc.home+"\n")
		tf := newTestFlags(t, tc.args...)
		if err := e.sources().Apply(tf.fs, &tf.o); err != nil {
			t.Fatal(err)
		}
		if tf.o.Verbosity != tc.want {
			t.Errorf("%+v: verbosity = %d, want %d", tc, tf.o.Verbosity, tc.want)
		}
	}
}

func TestApplyErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		content string // of the /etc file
		args    []string
		env     string
		want    string // %s is the env dir
	}{
		{name: "unknown", content: "# c\n\nleave-runing\n", want: `%s/etc.conf:3: unknown option "leave-runing" (did you mean "leave-running"?)`},
		{name: "unknown far", content: "frobnicate 1\n", want: `%s/etc.conf:1: unknown option "frobnicate"`},
		{name: "shorthand", content: "D /tmp\n", want: `%s/etc.conf:1: unknown option "D" (config files use long names: "images-dir")`},
		{name: "digit helper", content: "verbosity-level-4\n", want: `%s/etc.conf:1: unknown option "verbosity-level-4"`},
		{name: "unterminated double", content: "log-file \"my log\n", want: `%s/etc.conf:1: unterminated double quote in "\"my log"; add the closing "`},
		{name: "unterminated single", content: "\n\nlog-file 'my log\n", want: `%s/etc.conf:3: unterminated single quote in "'my log"; add the closing '`},
		{name: "trailing backslash", content: "log-file \"a\\\n", want: `%s/etc.conf:1: unterminated double quote in "\"a\\"; add the closing "`},
		{name: "bad escape", content: "log-file \"a\\qb\"\n", want: `%s/etc.conf:1: unknown escape \q in double quotes; write \\ for a backslash`},
		{name: "bool with value", content: "leave-running yes\n", want: `%s/etc.conf:1: option "leave-running" takes no value, got "yes"; write "leave-running", "leave-running true" or "leave-running false"`},
		{name: "bool with value overridden still checked", content: "leave-running 1\n", args: []string{"--leave-running"}, want: `%s/etc.conf:1: option "leave-running" takes no value, got "1"; write "leave-running", "leave-running true" or "leave-running false"`},
		{name: "missing value", content: "images-dir\n", want: `%s/etc.conf:1: option "images-dir" needs a value; write "images-dir VALUE"`},
		{name: "missing value after =", content: "images-dir=\n", want: `%s/etc.conf:1: option "images-dir" has "=" but no value; write a value after it, or "" for an empty one`},
		{name: "two values", content: "log-file my log.txt\n", want: `%s/etc.conf:1: option "log-file" has more than one value ("log.txt" follows "my"); quote a value that contains spaces`},
		{name: "config in file", content: "config /x\n", want: `%s/etc.conf:1: option "config" works only on the command line; remove it from the config file`},
		{name: "no-default-config in file", content: "no-default-config\n", want: `%s/etc.conf:1: option "no-default-config" works only on the command line; remove it from the config file`},
		{name: "help in file", content: "help\n", want: `%s/etc.conf:1: option "help" works only on the command line; remove it from the config file`},
		{name: "bad int", content: "port eighty\n", want: `%s/etc.conf:1: invalid value "eighty" for option "port": strconv.ParseInt: parsing "eighty": invalid syntax`},
		{name: "bad verbosity", content: "verbosity 9\n", want: `%s/etc.conf:1: invalid value "9" for option "verbosity": verbosity 9 is out of range: use 0 (errors only) to 4 (debug)`},
		{name: "quote after name", content: "log-file\"x\"\n", want: `%s/etc.conf:1: option name "log-file" is followed by a quote; put a space or "=" between the name and its value`},
		{name: "line starts with =", content: "=x\n", want: `%s/etc.conf:1: line starts with "=" instead of an option name`},
		{name: "missing --config", args: []string{"--config=%s/nope.conf"}, want: `config file %s/nope.conf (given by --config): no such file or directory`},
		{name: "missing env file", env: "nope.conf", want: `config file %s/nope.conf (given by GOCKPT_CONFIG_FILE): no such file or directory`},
		{name: "empty --config", args: []string{"--config="}, want: `--config needs a file name; drop it to read only the default files`},
		{name: "unreadable default", content: "<dir>", want: `config file %s/etc.conf: is a directory`},
		{name: "line too long", content: "log-file " + strings.Repeat("x", maxLineLen) + "\n", want: `%s/etc.conf:1: line longer than 65536 bytes`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			switch tc.content {
			case "":
			case "<dir>":
				if err := os.Mkdir(filepath.Join(e.dir, etcConf), 0o755); err != nil {
					t.Fatal(err)
				}
			default:
				e.write(t, etcConf, tc.content)
			}
			if tc.env != "" {
				e.vars[EnvConfigFile] = filepath.Join(e.dir, tc.env)
			}
			var args []string
			for _, a := range tc.args {
				args = append(args, strings.ReplaceAll(a, "%s", e.dir))
			}
			tf := newTestFlags(t, args...)
			err := e.sources().Apply(tf.fs, &tf.o)
			want := strings.ReplaceAll(tc.want, "%s", e.dir)
			if err == nil || err.Error() != want {
				t.Fatalf("err = %v\nwant  %s", err, want)
			}
		})
	}
}

func TestOtherCommandOption(t *testing.T) {
	e := newEnv(t)
	e.write(t, etcConf, "tcp-established\nleave-running\n")
	other := pflag.NewFlagSet("dump", pflag.ContinueOnError)
	other.Bool("tcp-established", false, "")
	src := e.sources()
	src.OtherCommandOption = OptionNames(other)
	tf := newTestFlags(t)
	if err := src.Apply(tf.fs, &tf.o); err != nil {
		t.Fatal(err)
	}
	if !tf.leave {
		t.Error("leave-running not set after a skipped line")
	}
	if OptionNames(tf.fs)("config") || OptionNames(tf.fs)("verbosity-level-1") {
		t.Error("OptionNames lists command-line-only or helper flags")
	}
}

func TestParseLine(t *testing.T) {
	for _, tc := range []struct {
		line string
		ok   bool
		want Entry
	}{
		{line: "", ok: false},
		{line: "   \t ", ok: false},
		{line: "# comment", ok: false},
		{line: "  # comment", ok: false},
		{line: "leave-running", ok: true, want: Entry{Name: "leave-running"}},
		{line: "  leave-running  ", ok: true, want: Entry{Name: "leave-running"}},
		{line: "leave-running # on", ok: true, want: Entry{Name: "leave-running"}},
		{line: "leave-running\r", ok: true, want: Entry{Name: "leave-running"}},
		{line: "images-dir /tmp/x", ok: true, want: Entry{Name: "images-dir", Value: "/tmp/x", HasValue: true}},
		{line: "images-dir\t/tmp/x\t# c", ok: true, want: Entry{Name: "images-dir", Value: "/tmp/x", HasValue: true}},
		{line: "images-dir /tmp/x#y", ok: true, want: Entry{Name: "images-dir", Value: "/tmp/x#y", HasValue: true}},
		{line: "images-dir=/tmp/x", ok: true, want: Entry{Name: "images-dir", Value: "/tmp/x", HasValue: true}},
		{line: "images-dir = /tmp/x", ok: true, want: Entry{Name: "images-dir", Value: "/tmp/x", HasValue: true}},
		{line: "images-dir=/a=b", ok: true, want: Entry{Name: "images-dir", Value: "/a=b", HasValue: true}},
		{line: `log-file "my log.txt"`, ok: true, want: Entry{Name: "log-file", Value: "my log.txt", HasValue: true}},
		{line: `log-file 'my "log".txt' # c`, ok: true, want: Entry{Name: "log-file", Value: `my "log".txt`, HasValue: true}},
		{line: `log-file "a\"b\\c\td\n#"`, ok: true, want: Entry{Name: "log-file", Value: "a\"b\\c\td\n#", HasValue: true}},
		{line: `log-file "a # b"`, ok: true, want: Entry{Name: "log-file", Value: "a # b", HasValue: true}},
		{line: `log-file /x/"my dir"/'y z'`, ok: true, want: Entry{Name: "log-file", Value: "/x/my dir/y z", HasValue: true}},
		{line: `log-file ""`, ok: true, want: Entry{Name: "log-file", Value: "", HasValue: true}},
		{line: `log-file a\b`, ok: true, want: Entry{Name: "log-file", Value: `a\b`, HasValue: true}},
		{line: `log-file 'a\b'`, ok: true, want: Entry{Name: "log-file", Value: `a\b`, HasValue: true}},
	} {
		got, ok, err := ParseLine(tc.line)
		if err != nil {
			t.Errorf("ParseLine(%q): %v", tc.line, err)
			continue
		}
		if ok != tc.ok || got != tc.want {
			t.Errorf("ParseLine(%q) = %+v, %v; want %+v, %v", tc.line, got, ok, tc.want, tc.ok)
		}
	}
}

func TestParseFileLineNumbers(t *testing.T) {
	entries, err := ParseFile(strings.NewReader("# x\n\nleave-running\r\nimages-dir /a\n"), "t")
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{{Line: 3, Name: "leave-running"}, {Line: 4, Name: "images-dir", Value: "/a", HasValue: true}}
	if !reflect.DeepEqual(entries, want) {
		t.Errorf("entries = %+v, want %+v", entries, want)
	}
}

func TestParseLineErrors(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{"--", `"" is not an option name; write the long flag name without dashes, e.g. "images-dir /tmp/x"`},
		{"--#0", `"#0" is not an option name; write the long flag name without dashes, e.g. "images-dir /tmp/x"`},
		{"leave-running#x", `"leave-running#x" is not an option name; write the long flag name without dashes, e.g. "images-dir /tmp/x"`},
		{"---x", `"-x" is not an option name; write the long flag name without dashes, e.g. "images-dir /tmp/x"`},
	} {
		_, _, err := ParseLine(tc.line)
		if err == nil || err.Error() != tc.want {
			t.Errorf("ParseLine(%q) err = %v, want %s", tc.line, err, tc.want)
		}
	}
}
