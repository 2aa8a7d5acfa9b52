package main

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseHeader(t *testing.T) {
	src := `// zdtm: desc: a test of things
// zdtm: modes: restore twice
// zdtm: needs: cpu:avx512f pagemap_scan
// zdtm: uid: 65534
// zdtm: env: A=b = c
// zdtm: cflags: -mavx -O1
int main(void) { return 0; }
`
	tt := &Test{Source: "x.c"}
	if err := ParseHeader(strings.NewReader(src), tt); err != nil {
		t.Fatal(err)
	}
	if tt.Desc != "a test of things" || !reflect.DeepEqual(tt.Modes, []string{"restore", "twice"}) ||
		!reflect.DeepEqual(tt.Needs, []string{"cpu:avx512f", "pagemap_scan"}) || tt.UID != 65534 || tt.GID != -1 ||
		!reflect.DeepEqual(tt.Env, []string{"A=b = c"}) || !reflect.DeepEqual(tt.CFlags, []string{"-mavx", "-O1"}) {
		t.Errorf("parsed %+v", tt)
	}
	if !tt.Supports("none") || !tt.Supports("twice") || tt.Supports("snapshot") {
		t.Error("Supports")
	}
}

func TestModesWith(t *testing.T) {
	for _, c := range []struct {
		modes string
		want  []string
	}{
		{"restore snapshot twice predump", []string{"restore", "snapshot", "twice", "predump", "page-server", "predump-page-server", "lazy", "lazy-faults", "predump-lazy"}},
		{"restore snapshot twice predump -page-server", []string{"restore", "snapshot", "twice", "predump", "predump-page-server", "lazy", "lazy-faults", "predump-lazy"}},
		{"restore snapshot twice predump -lazy-faults -predump-lazy", []string{"restore", "snapshot", "twice", "predump", "page-server", "predump-page-server", "lazy"}},
		{"restore criu-restore criu-dump", []string{"restore", "page-server", "lazy", "lazy-faults", "criu-restore", "criu-dump", "criu-page-server", "criu-dump-page-server"}},
		{"restore criu-restore criu-dump -criu-page-server -page-server -lazy", []string{"restore", "lazy-faults", "criu-restore", "criu-dump", "criu-dump-page-server"}},
		// Opt-in: only where named.
		{"restore make-lazy", []string{"restore", "page-server", "lazy", "lazy-faults", "make-lazy"}},
		// Named without the mode it comes with: it runs all the same.
		{"snapshot page-server", []string{"snapshot", "page-server"}},
	} {
		tt := &Test{Source: "x.c"}
		if err := ParseHeader(strings.NewReader("// zdtm: desc: d\n// zdtm: modes: "+c.modes+"\n"), tt); err != nil {
			t.Fatal(err)
		}
		if got := tt.RunModes(); !reflect.DeepEqual(got, c.want) {
			t.Errorf("modes %q: runs %v, want %v", c.modes, got, c.want)
		}
	}
}

func TestParseHeaderPythonAndDefaults(t *testing.T) {
	tt := &Test{Source: "x.py"}
	if err := ParseHeader(strings.NewReader("# zdtm: desc: py\nimport os\n"), tt); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(tt.Modes, defaultModes) {
		t.Errorf("modes %v", tt.Modes)
	}
}

func TestParseHeaderErrors(t *testing.T) {
	for _, src := range []string{
		"int x;\n",
		"// zdtm: desc: d\n// zdtm: modes: restore warp\n",
		"// zdtm: desc: d\n// zdtm: colour: red\n",
		"// zdtm: desc: d\n// zdtm: uid: nobody\n",
		"// zdtm: desc: d\n// zdtm: env: NOVALUE\n",
		"// zdtm: desc: d\n// zdtm: threads: static\n",
		// Only a mode that comes with another can be excluded, and not named too.
		"// zdtm: desc: d\n// zdtm: modes: restore -snapshot\n",
		"// zdtm: desc: d\n// zdtm: modes: restore -warp\n",
		"// zdtm: desc: d\n// zdtm: modes: restore page-server -page-server\n",
	} {
		if err := ParseHeader(strings.NewReader(src), &Test{Source: "bad.c"}); err == nil {
			t.Errorf("accepted %q", src)
		}
	}
}

func TestEveryTestHasAValidHeader(t *testing.T) {
	tests, err := Discover("..")
	if err != nil {
		t.Fatal(err)
	}
	if len(tests) < 32 {
		t.Errorf("%d tests, want at least 32", len(tests))
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		if seen[tt.Name] {
			t.Errorf("duplicate test name %s", tt.Name)
		}
		seen[tt.Name] = true
	}
}

func TestFeaturesCPU(t *testing.T) {
	f := &Features{Gockpt: "/nonexistent", cpu: map[string]bool{"avx": true}}
	why, err := f.Missing(&Test{Needs: []string{"cpu:avx"}})
	if why != "" || err != nil {
		t.Errorf("cpu:avx present: %q %v", why, err)
	}
	why, err = f.Missing(&Test{Needs: []string{"cpu:avx", "cpu:avx512f"}})
	if !strings.Contains(why, "avx512f") || err != nil {
		t.Errorf("cpu:avx512f absent: %q %v", why, err)
	}
	// A gockpt feature that cannot be asked about is an error, not a skip.
	if why, err := f.Missing(&Test{Needs: []string{"pagemap_scan"}}); err == nil {
		t.Errorf("no gockpt binary: skipped with %q", why)
	}
	f.CPUOnly = true
	if why, err := f.Missing(&Test{Needs: []string{"pagemap_scan"}}); why != "" || err != nil {
		t.Errorf("CPUOnly: %q %v", why, err)
	}
}
