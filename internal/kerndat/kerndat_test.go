package kerndat

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gockpt/gockpt/internal/support"
)

// TestMain fails the run if any probe left a child process behind, zombie or
// not: every helper must be killed and reaped.
func TestMain(m *testing.M) {
	code := m.Run()
	if kids := ourChildren(); len(kids) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: probes left child processes behind: %v\n", kids)
		code = 1
	}
	os.Exit(code)
}

func ourChildren() []int {
	var out []int
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, t := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + t.Name() + "/children")
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			n, _ := strconv.Atoi(f)
			out = append(out, n)
		}
	}
	return out
}

// capEff reads our effective capabilities from /proc, independently of the
// capget the cap_sys_resource probe uses.
func capEff(t *testing.T) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	v, err := strconv.ParseUint(statusField(string(b), "CapEff:"), 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

const (
	capNetAdmin = 12
	capSysAdmin = 21
)

// expectation says whether this kernel must have a feature: "" when it
// must, else the reason to skip.
type expectation func(t *testing.T) string

func kernelAtLeast(major, minor int) expectation {
	return func(t *testing.T) string {
		v, err := KernelVersion()
		if err != nil {
			t.Fatal(err)
		}
		if !v.AtLeast(major, minor) {
			return fmt.Sprintf("Linux %s is older than %d.%d", v, major, minor)
		}
		return ""
	}
}

func configSet(name string) expectation {
	return func(t *testing.T) string {
		switch configOption(name) {
		case "n":
			return name + " is not set in this kernel"
		case "":
			return "kernel config unreadable; cannot tell whether " + name + " is set"
		}
		return ""
	}
}

func hasCap(bit int, name string) expectation {
	return func(t *testing.T) string {
		if capEff(t)&(1<<bit) == 0 {
			return name + " is not in our effective set"
		}
		return ""
	}
}

// mustHave fails when the feature is unsupported although every expectation
// holds, and skips (with the reason) when one does not.
func mustHave(t *testing.T, name string, exps ...expectation) Result {
	t.Helper()
	r, err := Probe(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %s: %s", name, r.Status(), r.Detail)
	if r.Name != name || r.Requires == "" || r.Detail == "" {
		t.Errorf("%s: incomplete result %+v", name, r)
	}
	if r.Supported {
		if r.Err != nil {
			t.Errorf("%s: supported but Err = %v", name, r.Err)
		}
		return r
	}
	if r.Err == nil {
		t.Errorf("%s: unsupported without Err", name)
	}
	for _, e := range exps {
		if why := e(t); why != "" {
			t.Skipf("%s unsupported here, as expected: %s (%s)", name, why, r.Detail)
		}
	}
	t.Fatalf("%s unsupported on a kernel that should have it: %s", name, r.Detail)
	return r
}

func TestPtraceSeize(t *testing.T) { mustHave(t, "ptrace_seize", kernelAtLeast(3, 4)) }

func TestSyscallInjection(t *testing.T) { mustHave(t, "syscall_injection", kernelAtLeast(3, 4)) }

func TestProcessVMRW(t *testing.T) {
	mustHave(t, "process_vm_rw", kernelAtLeast(3, 2), configSet("CONFIG_CROSS_MEMORY_ATTACH"))
}

func TestPrctlMMMap(t *testing.T) {
	mustHave(t, "prctl_mm_map", kernelAtLeast(3, 18), configSet("CONFIG_CHECKPOINT_RESTORE"))
}

func TestClone3SetTid(t *testing.T) {
	mustHave(t, "clone3_set_tid", kernelAtLeast(5, 5), hasCap(capSysAdmin, "CAP_SYS_ADMIN"))
}

func TestNsLastPid(t *testing.T) {
	r := mustHave(t, "ns_last_pid", configSet("CONFIG_CHECKPOINT_RESTORE"), hasCap(capSysAdmin, "CAP_SYS_ADMIN"))
	if r.Summary != "" && !strings.Contains(r.Detail, "raced") {
		t.Errorf("ns_last_pid summary %q without a race in the detail", r.Summary)
	}
}

func TestPidfdGetfd(t *testing.T) { mustHave(t, "pidfd_getfd", kernelAtLeast(5, 6)) }

func TestMemfd(t *testing.T) {
	mustHave(t, "memfd", kernelAtLeast(3, 17), configSet("CONFIG_MEMFD_CREATE"))
}

func TestRseqPtrace(t *testing.T) {
	r := mustHave(t, "rseq_ptrace", kernelAtLeast(5, 13), configSet("CONFIG_RSEQ"))
	// glibc 2.35+ registers rseq, and the probe must then have seen it.
	glibc := glibcVersion()
	t.Logf("glibc %q", glibc)
	if glibc != "" && versionAtLeast(glibc, 2, 35) && !strings.Contains(r.Detail, "rseq area at 0x") {
		t.Errorf("glibc %s registers rseq, but the probe saw no area: %s", glibc, r.Detail)
	}
}

// glibcVersion reads the version of the libc sleep uses, "" when unknown.
func glibcVersion() string {
	for _, p := range []string{"/lib/x86_64-linux-gnu/libc.so.6", "/lib64/libc.so.6", "/usr/lib64/libc.so.6"} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		const mark = "GNU C Library (" // "... stable release version 2.36."
		i := strings.Index(string(b), mark)
		if i < 0 {
			continue
		}
		s := string(b[i:min(len(b), i+200)])
		if j := strings.Index(s, "version "); j >= 0 {
			v := strings.TrimRight(strings.Fields(s[j+8:])[0], ".")
			return v
		}
	}
	return ""
}

func versionAtLeast(v string, major, minor int) bool {
	a, b, _ := strings.Cut(v, ".")
	ma, _ := strconv.Atoi(a)
	mi, _ := strconv.Atoi(strings.TrimRightFunc(b, func(r rune) bool { return r < '0' || r > '9' }))
	return ma > major || ma == major && mi >= minor
}

func TestPeekSiginfo(t *testing.T) { mustHave(t, "ptrace_peeksiginfo", kernelAtLeast(3, 10)) }

func TestSeccompGetFilter(t *testing.T) {
	mustHave(t, "seccomp_get_filter", kernelAtLeast(4, 4), configSet("CONFIG_SECCOMP_FILTER"),
		configSet("CONFIG_CHECKPOINT_RESTORE"), hasCap(capSysAdmin, "CAP_SYS_ADMIN"))
}

func TestGetSyscallInfo(t *testing.T) { mustHave(t, "ptrace_get_syscall_info", kernelAtLeast(5, 3)) }

func TestUserfaultfd(t *testing.T) {
	mustHave(t, "userfaultfd", kernelAtLeast(4, 3), configSet("CONFIG_USERFAULTFD"))
	if UffdFeatures() == 0 {
		t.Errorf("userfaultfd works but UffdFeatures() is 0")
	}
}

func TestUffdWPAsync(t *testing.T) {
	mustHave(t, "uffd_wp_async", kernelAtLeast(6, 7), configSet("CONFIG_USERFAULTFD"), configSet("CONFIG_PTE_MARKER_UFFD_WP"))
	if UffdFeatures()&UffdFeatureWPAsync == 0 || !HasUffdWPAsync() {
		t.Errorf("uffd_wp_async supported but feature bits %s", UffdFeatureString(UffdFeatures()))
	}
}

func TestPagemapScan(t *testing.T) {
	mustHave(t, "pagemap_scan", kernelAtLeast(6, 7), configSet("CONFIG_USERFAULTFD"), configSet("CONFIG_PTE_MARKER_UFFD_WP"))
	if !HasPagemapScan() {
		t.Error("HasPagemapScan disagrees with Probe")
	}
}

func TestSoftDirty(t *testing.T) {
	r, err := Probe("soft_dirty")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("soft_dirty: %s: %s", r.Status(), r.Detail)
	switch configOption("CONFIG_MEM_SOFT_DIRTY") {
	case "n":
		if r.Supported || !strings.HasPrefix(r.Detail, "CONFIG_MEM_SOFT_DIRTY is not set in this kernel") {
			t.Fatalf("kernel without CONFIG_MEM_SOFT_DIRTY: got %s (%s)", r.Status(), r.Detail)
		}
	case "":
		t.Skip("kernel config unreadable: cannot tell what soft_dirty should say")
	default:
		if !r.Supported {
			t.Fatalf("CONFIG_MEM_SOFT_DIRTY is set but soft_dirty: %s", r.Detail)
		}
	}
}

func TestMemDirtyTrack(t *testing.T) {
	r, err := Probe("mem_dirty_track")
	if err != nil {
		t.Fatal(err)
	}
	trackers := DirtyTrackers()
	if trackers[len(trackers)-1] != TrackerHashes {
		t.Errorf("DirtyTrackers() = %v, want hashes last", trackers)
	}
	if r.Supported != (len(trackers) > 1) {
		t.Errorf("mem_dirty_track %v but trackers %v", r.Supported, trackers)
	}
	if !strings.Contains(r.Detail, "content hashes") {
		t.Errorf("mem_dirty_track does not mention the hash fallback: %s", r.Detail)
	}
	if HasPagemapScan() && !strings.Contains(r.Summary, TrackerUffdWP) {
		t.Errorf("uffd-wp works but summary is %q", r.Summary)
	}
}

func TestTCPRepair(t *testing.T) {
	mustHave(t, "tcp_repair", kernelAtLeast(3, 5), hasCap(capNetAdmin, "CAP_NET_ADMIN"))
}

func TestNftables(t *testing.T) {
	r := mustHave(t, "nftables", hasCap(capNetAdmin, "CAP_NET_ADMIN"), configSet("CONFIG_NF_TABLES"), configSet("CONFIG_NF_TABLES_INET"))
	if want := "made and deleted a scratch table inet gockpt-probe-*: sets with concatenated keys, input and output chains, the lock's rules"; r.Detail != want {
		t.Errorf("detail %q, want %q", r.Detail, want)
	}
	if !HasNftables() {
		t.Error("HasNftables disagrees with Probe")
	}
}

func TestSockDiag(t *testing.T) {
	mustHave(t, "sock_diag", configSet("CONFIG_UNIX_DIAG"), configSet("CONFIG_INET_DIAG"))
}

func TestSELinux(t *testing.T) {
	r, err := Probe("selinux")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("selinux: %s: %s", r.Status(), r.Detail)
	_, attrErr := os.ReadFile("/proc/self/attr/current")
	_, fsErr := os.Stat("/sys/fs/selinux/enforce")
	if fsErr == nil {
		t.Skip("selinuxfs is mounted: SELinux is active here; nothing known to compare with")
	}
	if errnoOf(attrErr) != 22 { // EINVAL: no LSM provides attr/current
		t.Skipf("/proc/self/attr/current: %v; another LSM may own it", attrErr)
	}
	if r.Supported || r.Status() != "not active" || !strings.Contains(r.Detail, "invalid argument") {
		t.Fatalf("SELinux not enabled here, got %s (%s)", r.Status(), r.Detail)
	}
	if SELinuxActive() {
		t.Error("SELinuxActive() true")
	}
}

func TestCapSysResource(t *testing.T) {
	r, err := Probe("cap_sys_resource")
	if err != nil {
		t.Fatal(err)
	}
	has := capEff(t)&(1<<capSysResource) != 0
	if r.Supported != has {
		t.Fatalf("cap_sys_resource %v, /proc/self/status CapEff says %v", r.Supported, has)
	}
	if !has && !strings.Contains(r.Detail, "PR_SET_MM_*") {
		t.Errorf("detail does not say what is lost: %s", r.Detail)
	}
}

func TestProbeUnknown(t *testing.T) {
	_, err := Probe("no_such_thing")
	if !errors.Is(err, ErrUnknownFeature) || !strings.Contains(err.Error(), "ptrace_seize, syscall_injection") {
		t.Fatalf("Probe(unknown) = %v", err)
	}
	if r, err := Probe("soft-dirty"); err != nil || r.Name != "soft_dirty" {
		t.Fatalf("Probe(soft-dirty) = %+v, %v", r, err)
	}
}

func TestAllAndVerdict(t *testing.T) {
	start := time.Now()
	rs, err := All()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("All() took %v", time.Since(start))
	if len(rs) != len(features) {
		t.Fatalf("All() gave %d results for %d features", len(rs), len(features))
	}
	for i, r := range rs {
		if r.Name != features[i].Name {
			t.Errorf("result %d is %q, want %q (table order)", i, r.Name, features[i].Name)
		}
	}
	okNow, missing := Verdict(rs)
	t.Logf("verdict %v, missing %v", okNow, missing)
	if kids := ourChildren(); len(kids) > 0 {
		t.Errorf("children left after All(): %v", kids)
	}
}

func TestVerdict(t *testing.T) {
	res := func(kv ...any) []Result {
		var out []Result
		for i := 0; i < len(kv); i += 2 {
			out = append(out, Result{Name: kv[i].(string), Supported: kv[i+1].(bool)})
		}
		return out
	}
	all := res("ptrace_seize", true, "syscall_injection", true, "process_vm_rw", true, "prctl_mm_map", true)
	if ok, m := Verdict(append(all, res("clone3_set_tid", false, "ns_last_pid", true)...)); !ok {
		t.Errorf("ns_last_pid alone should do: missing %v", m)
	}
	if ok, m := Verdict(append(all, res("clone3_set_tid", true)...)); !ok {
		t.Errorf("clone3_set_tid alone should do: missing %v", m)
	}
	ok, m := Verdict(append(res("ptrace_seize", true, "process_vm_rw", false, "prctl_mm_map", true), res("clone3_set_tid", false, "ns_last_pid", false)...))
	want := "syscall_injection, process_vm_rw, clone3_set_tid or ns_last_pid"
	if ok || strings.Join(m, ", ") != want {
		t.Errorf("Verdict = %v, %q; want false, %q", ok, strings.Join(m, ", "), want)
	}
}

func TestParseVersion(t *testing.T) {
	for in, want := range map[string]Version{
		"6.18.44-fc-v669":   {6, 18, 44},
		"5.4.0-150-generic": {5, 4, 0},
		"6.7":               {6, 7, 0},
		"6.7-rc1":           {6, 7, 0},
	} {
		got, err := ParseVersion(in)
		if err != nil || got != want {
			t.Errorf("ParseVersion(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "6", "x.y", "6."} {
		if _, err := ParseVersion(bad); err == nil {
			t.Errorf("ParseVersion(%q) succeeded", bad)
		}
	}
	v := Version{6, 7, 0}
	if !v.AtLeast(6, 7) || !v.AtLeast(5, 19) || v.AtLeast(6, 8) || v.AtLeast(7, 0) {
		t.Error("AtLeast is wrong")
	}
}

// TestRefused: a feature only refused kinds of objects need says which;
// a feature gockpt uses names none.
func TestRefused(t *testing.T) {
	for name, want := range map[string][]support.Kind{
		"tcp_repair":   nil, // --tcp-established dumps with it
		"nftables":     nil, // the network lock of --tcp-established
		"sock_diag":    nil, // unix sockets are dumped with it
		"memfd":        nil,
		"pagemap_scan": nil,
	} {
		f, _ := Lookup(name)
		var got []support.Kind
		for _, o := range f.Refused() {
			got = append(got, o.Kind)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: Refused() = %v, want %v", name, got, want)
		}
	}
	// A feature for refused kinds alone names them.
	f := Feature{For: []support.Kind{support.SysVShm, support.Hugetlb}}
	if got := f.Refused(); len(got) != 2 || got[0].Kind != support.SysVShm || got[1].Kind != support.Hugetlb {
		t.Errorf("Refused() = %v, want sysv-shm and hugetlb", got)
	}
}
