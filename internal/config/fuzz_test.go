package config

import (
	"strings"
	"testing"
)

// FuzzParseLine checks that the line parser never panics, that an accepted
// line's value survives being written back quoted, and that errors stay on
// one line (they are printed after "file:line:").
func FuzzParseLine(f *testing.F) {
	for _, s := range []string{
		"", "# c", "leave-running", "images-dir /tmp/x", "images-dir=/tmp/x",
		`log-file "my log.txt" # c`, `log-file 'a b'`, `log-file "a\"b\\c"`,
		`log-file "unterminated`, `x 'y`, `x "a\q"`, "a b c", "=x", `a"b"`,
		`x /a/"b c"/'d'`, "verbosity\t4\r",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		e, ok, err := ParseLine(line)
		if err != nil {
			if strings.ContainsAny(err.Error(), "\n") && !strings.Contains(line, "\n") {
				t.Errorf("error spans lines: %q", err)
			}
			return
		}
		if !ok {
			return
		}
		if e.Name == "" || strings.ContainsAny(e.Name, " \t=\"'") {
			t.Fatalf("ParseLine(%q): bad name %q", line, e.Name)
		}
		if strings.ContainsAny(e.Name, "\n") {
			return // a single config line never holds one
		}
		// Writing the entry back in canonical form must parse to the same.
		back := e.Name
		if e.HasValue {
			back += " " + quote(e.Value)
		}
		e2, ok2, err2 := ParseLine(back)
		if err2 != nil || !ok2 || e2 != e {
			t.Fatalf("ParseLine(%q) = %+v; written back as %q it parses to %+v, %v, %v", line, e, back, e2, ok2, err2)
		}
	})
}

// quote writes v as a double-quoted config value.
func quote(v string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
