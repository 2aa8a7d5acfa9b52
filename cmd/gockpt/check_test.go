package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/gockpt/gockpt/internal/kerndat"
	"github.com/gockpt/gockpt/internal/support"
)

// runCheck runs `gockpt check ARGS` and returns stdout, stderr and the exit
// status. Config files of the machine stay out of it.
func runCheckCmd(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(append([]string{"check", "--no-default-config"}, args...), &stdout, &stderr)
	t.Cleanup(func() { assertNoChildren(t) })
	return stdout.String(), stderr.String(), code
}

// assertNoChildren fails if a probe left a process of ours behind.
func assertNoChildren(t *testing.T) {
	t.Helper()
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, task := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + task.Name() + "/children")
		if err == nil && len(bytes.TrimSpace(b)) > 0 {
			t.Errorf("child processes left behind: %s", b)
		}
	}
}

// kernelConfigSays reports whether the running kernel's config contains line;
// ok is false when no config is readable.
func kernelConfigSays(t *testing.T, line string) (has, ok bool) {
	t.Helper()
	f, err := os.Open("/proc/config.gz")
	if err != nil {
		return false, false
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		return false, false
	}
	b, err := io.ReadAll(z)
	if err != nil {
		return false, false
	}
	return bytes.Contains(b, []byte("\n"+line+"\n")), true
}

func labels(names []string) map[string]bool {
	out := map[string]bool{}
	for _, n := range names {
		f, _ := kerndat.Lookup(n)
		out[f.Label] = true
	}
	return out
}

// objectsText is the part of check's text output between the features and
// the verdict: what gockpt dumps, then what it refuses and what to do.
func objectsText() string {
	var b strings.Builder
	b.WriteString("\ngockpt dumps:\n")
	for _, o := range support.Objects {
		if o.Dumped {
			fmt.Fprintf(&b, "  %s: %s\n", o.Label, o.Detail)
		}
	}
	b.WriteString("\ngockpt refuses (and what to do):\n")
	for _, o := range support.Objects {
		if !o.Dumped {
			label := o.Label
			if o.CRIU != "" {
				label += " (CRIU: " + o.CRIU + ")"
			}
			fmt.Fprintf(&b, "  %s: %s\n", label, o.Detail)
		}
	}
	return b.String() + "\n"
}

// splitCheck cuts check's text output into its feature lines, the objects
// part and the verdict.
func splitCheck(t *testing.T, out string) (features []string, objects, verdict string) {
	t.Helper()
	i := strings.Index(out, "\ngockpt dumps:\n")
	if i < 0 {
		t.Fatalf("no \"gockpt dumps:\" section after the features:\n%s", out)
	}
	rest := out[i+1:]
	j := strings.LastIndex(strings.TrimSuffix(rest, "\n"), "\n")
	if j < 0 {
		t.Fatalf("no verdict after the objects:\n%s", out)
	}
	return strings.Split(strings.TrimSuffix(out[:i], "\n"), "\n"), "\n" + rest[:j+1], strings.TrimSuffix(rest[j+1:], "\n")
}

func TestCheckDefault(t *testing.T) {
	out, stderr, code := runCheckCmd(t)
	lines, objects, verdict := splitCheck(t, out)
	want := kerndat.DefaultNames()
	if len(lines) != len(want) {
		t.Fatalf("%d feature lines, want %d:\n%s", len(lines), len(want), out)
	}
	defaults := labels(want)
	for i, l := range lines {
		f, _ := kerndat.Lookup(want[i])
		if !strings.HasPrefix(l, f.Label+": yes") && !strings.HasPrefix(l, f.Label+": no (") {
			t.Errorf("line %d is %q, want %q: yes|no (...)", i, l, f.Label)
		}
	}
	for _, f := range kerndat.Features() {
		if !defaults[f.Label] && strings.Contains(out, "\n"+f.Label+": ") {
			t.Errorf("optional feature %s shown without --all", f.Name)
		}
	}
	if objects != objectsText() {
		t.Errorf("objects part:\n%s\nwant:\n%s", objects, objectsText())
	}
	switch code {
	case 0:
		if verdict != "Looks good." {
			t.Errorf("exit 0 with verdict %q", verdict)
		}
	case 1:
		if !strings.HasPrefix(verdict, "Dump and restore cannot work here; missing: ") {
			t.Errorf("exit 1 with verdict %q", verdict)
		}
	default:
		t.Errorf("exit %d", code)
	}
	if stderr != "" {
		t.Errorf("stderr: %q", stderr)
	}
	// This machine has everything dump and restore need.
	if v, err := kerndat.KernelVersion(); err == nil && v.AtLeast(5, 5) && os.Geteuid() == 0 && code != 0 {
		t.Errorf("root on Linux %s should pass check:\n%s", v, out)
	}
}

// TestCheckObjects pins the words of the objects part, whatever the
// support table holds: its headings, one line per kind, and a line for a
// kind that stays refused.
func TestCheckObjects(t *testing.T) {
	got := objectsText()
	for _, want := range []string{
		"\ngockpt dumps:\n  processes and threads: ",
		"\n  pipes: ",
		"\n\ngockpt refuses (and what to do):\n  ",
		"\n  established TCP connections: with --tcp-established (dump and restore), IPv4 and IPv6",
		"\n  TCP connections waiting to be accepted (CRIU: --skip-in-flight): let the listener accept them before dumping, or leave them out with --skip-in-flight (their clients see them reset)\n",
		"\n  file locks: with --file-locks (dump and restore): flock, POSIX",
		"\n  file leases (CRIU: --file-locks): release the lease (fcntl F_SETLEASE, F_UNLCK) before dumping\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("objects part lacks %q:\n%s", want, got)
		}
	}
	if n, want := strings.Count(got, "\n  "), len(support.Objects); n != want {
		t.Errorf("%d object lines, want one per kind, %d", n, want)
	}
}

// TestCheckAllAcceptance pins the lines the issue asks for on this kind of
// machine, each where the machine is known to be that kind.
func TestCheckAllAcceptance(t *testing.T) {
	out, _, code := runCheckCmd(t, "--all")
	t.Logf("exit %d:\n%s", code, out)
	lines, objects, _ := splitCheck(t, out)
	if got, want := len(lines), len(kerndat.Names()); got != want {
		t.Errorf("--all printed %d feature lines, want %d", got, want)
	}
	if objects != objectsText() {
		t.Errorf("--all objects part:\n%s\nwant:\n%s", objects, objectsText())
	}
	// The kernel has TCP repair here (root, Linux 3.5+), which
	// --tcp-established uses.
	if os.Geteuid() == 0 && !strings.Contains(out, "\nTCP repair: yes\n") {
		t.Error("want `TCP repair: yes`")
	}
	// nftables works for root here (Linux with CONFIG_NF_TABLES_INET),
	// for the network lock of --tcp-established.
	if os.Geteuid() == 0 {
		if on, ok := kernelConfigSays(t, "CONFIG_NF_TABLES_INET=y"); ok && on && !strings.Contains(out, "\nnetwork lock with nftables (for --tcp-established): yes\n") {
			t.Error("want `network lock with nftables (for --tcp-established): yes`")
		}
	}
	if strings.Contains(out, "\nsocket diag: yes") && !strings.Contains(out, "\nsocket diag: yes\n") {
		t.Error("want `socket diag: yes` (unix sockets are dumped with it)")
	}
	if off, ok := kernelConfigSays(t, "# CONFIG_MEM_SOFT_DIRTY is not set"); !ok {
		t.Log("no kernel config: soft-dirty line not checked")
	} else if off && !strings.Contains(out, "\nsoft-dirty: no (CONFIG_MEM_SOFT_DIRTY is not set in this kernel; ") {
		t.Error("kernel without soft-dirty: want a line `soft-dirty: no (CONFIG_MEM_SOFT_DIRTY is not set in this kernel; ...`")
	}
	if v, err := kerndat.KernelVersion(); err == nil && v.AtLeast(6, 7) {
		if on, ok := kernelConfigSays(t, "CONFIG_PTE_MARKER_UFFD_WP=y"); ok && on && !strings.Contains(out, "\nuffd-wp dirty tracking: yes\n") {
			t.Errorf("Linux %s with CONFIG_PTE_MARKER_UFFD_WP: want `uffd-wp dirty tracking: yes`", v)
		}
	}
	_, attrErr := os.ReadFile("/proc/self/attr/current")
	if _, err := os.Stat("/sys/fs/selinux"); err != nil && errors.Is(attrErr, syscall.EINVAL) {
		if !strings.Contains(out, "\nSELinux: not active (") {
			t.Error("SELinux is off here: want `SELinux: not active (...)`")
		}
	}
	if !strings.Contains(out, "\ndirty memory tracking: ") || !strings.Contains(out, "hashes") {
		t.Error("--all must show dirty memory tracking with the hash fallback")
	}
}

func TestCheckJSON(t *testing.T) {
	out, _, code := runCheckCmd(t, "--all", "--json")
	var got struct {
		Features map[string]map[string]any `json:"features"`
		Objects  []support.Object          `json:"objects"`
		Verdict  struct {
			OK      bool     `json:"ok"`
			Missing []string `json:"missing"`
			Message string   `json:"message"`
		} `json:"verdict"`
	}
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("--json output is not the documented object: %v\n%s", err, out)
	}
	if dec.More() {
		t.Fatal("--json printed more than one JSON value")
	}
	if len(got.Features) != len(kerndat.Names()) {
		t.Errorf("%d features in JSON, want %d", len(got.Features), len(kerndat.Names()))
	}
	for _, n := range kerndat.Names() {
		f, ok := got.Features[n]
		if !ok {
			t.Errorf("feature %s missing from JSON", n)
			continue
		}
		if _, ok := f["supported"].(bool); !ok {
			t.Errorf("%s: supported is %v", n, f["supported"])
		}
		for _, k := range []string{"detail", "requires"} {
			if s, _ := f[k].(string); s == "" {
				t.Errorf("%s: empty %s", n, k)
			}
		}
	}
	if !reflect.DeepEqual(got.Objects, support.Objects) {
		t.Errorf("objects in JSON:\n%+v\nwant support.Objects:\n%+v", got.Objects, support.Objects)
	}
	for name, want := range map[string]string{
		"tcp_repair": "",
		"nftables":   "",
		"sock_diag":  "",
		"memfd":      "",
	} {
		if note, _ := got.Features[name]["note"].(string); note != want {
			t.Errorf("%s: note %q, want %q", name, note, want)
		}
	}
	if got.Verdict.OK != (code == 0) || got.Verdict.Missing == nil {
		t.Errorf("verdict %+v with exit %d", got.Verdict, code)
	}
	if got.Verdict.OK && got.Verdict.Message != "Looks good." {
		t.Errorf("verdict message %q", got.Verdict.Message)
	}
}

func TestCheckFeature(t *testing.T) {
	// memfd is in every kernel gockpt supports.
	out, stderr, code := runCheckCmd(t, "--feature", "memfd")
	if code != 0 || !strings.HasPrefix(out, "memfd: yes (memfd_create gave ") || strings.Count(out, "\n") != 1 || stderr != "" {
		t.Errorf("--feature memfd: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	if off, ok := kernelConfigSays(t, "# CONFIG_MEM_SOFT_DIRTY is not set"); ok && off {
		// Hyphens work like underscores.
		out, _, code := runCheckCmd(t, "--feature", "soft-dirty")
		if code != 1 || !strings.HasPrefix(out, "soft-dirty: no (CONFIG_MEM_SOFT_DIRTY is not set in this kernel; ") {
			t.Errorf("--feature soft-dirty without the config: exit %d, %q", code, out)
		}
	}
	if os.Geteuid() == 0 {
		if on, ok := kernelConfigSays(t, "CONFIG_NF_TABLES_INET=y"); ok && on {
			out, _, code := runCheckCmd(t, "--feature", "nftables")
			want := "network lock with nftables (for --tcp-established): yes (made and deleted a scratch table inet gockpt-probe-*: sets with concatenated keys, input and output chains, the lock's rules)\n"
			if code != 0 || out != want {
				t.Errorf("--feature nftables: exit %d, %q; want exit 0, %q", code, out, want)
			}
		}
	}
	out, _, code = runCheckCmd(t, "--feature", "memfd", "--json")
	var got struct {
		Features map[string]struct {
			Supported bool `json:"supported"`
		} `json:"features"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || code != 0 || !got.Features["memfd"].Supported || len(got.Features) != 1 {
		t.Errorf("--feature memfd --json: exit %d, %v, %q", code, err, out)
	}
}

func TestCheckUnknownFeature(t *testing.T) {
	out, stderr, code := runCheckCmd(t, "--feature", "bogus")
	want := `Error: unknown feature "bogus"; valid names: ` + strings.Join(kerndat.Names(), ", ") + "\n"
	if code != 2 || out != "" || stderr != want {
		t.Errorf("--feature bogus: exit %d, stdout %q, stderr\n%q\nwant exit 2 and\n%q", code, out, stderr, want)
	}
}

func TestCheckRejectsArgs(t *testing.T) {
	_, stderr, code := runCheckCmd(t, "soft_dirty")
	if code != 1 || !strings.Contains(stderr, `unknown command "soft_dirty" for "gockpt check"`) {
		t.Errorf("check with an argument: exit %d, stderr %q", code, stderr)
	}
}

func TestCheckLine(t *testing.T) {
	for _, c := range []struct {
		r       kerndat.Result
		verbose bool
		want    string
	}{
		{kerndat.Result{Name: "memfd", Supported: true, Detail: "d"}, false, "memfd: yes"},
		{kerndat.Result{Name: "memfd", Supported: true, Detail: "d"}, true, "memfd: yes (d)"},
		{kerndat.Result{Name: "soft_dirty", Detail: "why", Requires: "CONFIG_X"}, false, "soft-dirty: no (why; requires CONFIG_X)"},
		{kerndat.Result{Name: "selinux", State: "not active", Detail: "why", Requires: "r"}, false, "SELinux: not active (why)"},
		{kerndat.Result{Name: "mem_dirty_track", Supported: true, Summary: "uffd-wp", Detail: "d"}, false, "dirty memory tracking: yes (uffd-wp)"},
		{kerndat.Result{Name: "tcp_repair", Supported: true, Detail: "d"}, false, "TCP repair: yes"},
		{kerndat.Result{Name: "tcp_repair", Supported: true, Detail: "d"}, true, "TCP repair: yes (d)"},
		{kerndat.Result{Name: "tcp_repair", Detail: "why", Requires: "CAP_NET_ADMIN"}, false, "TCP repair: no (why; requires CAP_NET_ADMIN)"},
		{kerndat.Result{Name: "nftables", Supported: true, Detail: "d"}, false, "network lock with nftables (for --tcp-established): yes"},
		{kerndat.Result{Name: "nftables", Detail: "nftables: create table inet gockpt-probe-1-ab: operation not permitted (CAP_NET_ADMIN needed)", Requires: "CAP_NET_ADMIN"}, false,
			"network lock with nftables (for --tcp-established): no (nftables: create table inet gockpt-probe-1-ab: operation not permitted (CAP_NET_ADMIN needed); requires CAP_NET_ADMIN)"},
		{kerndat.Result{Name: "sock_diag", Supported: true, Detail: "d"}, false, "socket diag: yes"},
	} {
		if got := checkLine(c.r, c.verbose); got != c.want {
			t.Errorf("checkLine(%+v, %v) = %q, want %q", c.r, c.verbose, got, c.want)
		}
	}
}
