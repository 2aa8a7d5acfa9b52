// Package kerndat finds out what the running kernel can do for checkpoint and
// restore, by really doing it: each feature has a small probe that exercises
// the kernel interface the way dump, pre-dump or restore will, on a helper
// child process or on memory and sockets of our own, and reports a Result.
//
// API:
//
//	kerndat.Probe(name)     one feature's Result (ErrUnknownFeature for bad names)
//	kerndat.All(names...)   Results in table order; all features when no names
//	kerndat.Features()      the feature table: names, labels, classes, requirements
//	kerndat.Verdict(rs)     can dump and restore work here, and if not, what is missing
//	kerndat.HasUffdWPAsync(), HasPagemapScan(), HasSoftDirty(), HasClone3SetTid(),
//	HasNsLastPid(), HasPidfdGetfd(), HasNftables(), DirtyTrackers(), UffdFeatures(), ...
//	                        cached answers for code that picks a strategy
//
// Results are cached for the life of the process: the kernel does not change
// under us, and later callers (dump choosing a dirty tracker, restore choosing
// between clone3 set_tid and ns_last_pid) must not pay for a probe twice.
// Probe and the accessors are safe for concurrent use; concurrent callers of
// one feature wait for a single run of its probe.
//
// All ptrace requests of all probes run on one tracer thread
// (internal/ptrace.Tracer) that lives as long as the process: internal/ptrace
// keeps per-process state that only one tracer thread may use. Helpers are
// forked from another thread that never exits, because their parent-death
// signal (SIGKILL, so a dying gockpt leaves nothing behind) fires when the
// forking thread exits.
//
// Probes that need a process start `sleep 1000` (a glibc program, so it has an
// rseq area), seize it with internal/ptrace and inject syscalls into it. Every
// child is killed by PID and reaped before the probe returns, whatever the
// outcome; processes a probe makes a helper create (clone3 set_tid, the
// ns_last_pid fork) are killed and reaped too. Probes of PID allocation
// (clone3_set_tid, ns_last_pid) run one after the other and after every other
// probe of the same All call, since the helper processes the others start
// would take the PIDs they aim for.
package kerndat

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/gockpt/gockpt/internal/support"
)

// Class says who needs a feature.
type Class int

const (
	// Required features are needed for any dump and restore; gockpt check
	// fails without them. (clone3_set_tid and ns_last_pid are alternatives:
	// one of them is enough.)
	Required Class = iota
	// Needed features are used by dump or restore in common cases; their
	// absence limits what can be checkpointed but is not fatal.
	Needed
	// Optional features enable optional modes: dirty tracking, lazy pages,
	// TCP connections, security labels.
	Optional
)

func (c Class) String() string {
	switch c {
	case Required:
		return "required"
	case Needed:
		return "needed"
	default:
		return "optional"
	}
}

// Result is the outcome of one probe.
type Result struct {
	// Name is the feature's name, as in Features.
	Name string `json:"-"`
	// Supported says the feature works here.
	Supported bool `json:"supported"`
	// State, when set, replaces "yes"/"no" in human output for features
	// whose answer is not a plain yes or no ("not active", "enforcing").
	State string `json:"state,omitempty"`
	// Summary, when set, is a short phrase human output shows after the
	// status even when the feature works ("uffd-wp; hashes as fallback").
	Summary string `json:"summary,omitempty"`
	// Detail says what was observed: on success what was verified, otherwise
	// the errno or observation that made the probe fail.
	Detail string `json:"detail"`
	// Requires says what provides the feature: minimum kernel version,
	// CONFIG_ options, capabilities.
	Requires string `json:"requires"`
	// Err is the error behind an unsupported result, for errors.Is; nil on
	// success.
	Err error `json:"-"`
}

// Status is the short human answer: State if set, else "yes" or "no".
func (r Result) Status() string {
	if r.State != "" {
		return r.State
	}
	if r.Supported {
		return "yes"
	}
	return "no"
}

// Feature describes one probe.
type Feature struct {
	Name  string
	Label string // what a user reads: "soft-dirty", "SELinux"
	Class Class
	// Requires says what provides the feature; copied into Results.
	Requires string
	// For, when set, names the only kinds of objects that need the
	// feature. When gockpt refuses all of them, gockpt check says the
	// feature is of no use to it.
	For []support.Kind
	// pidAlloc marks probes that aim at particular PIDs: they run alone.
	pidAlloc bool
	probe    func() Result
}

// ErrUnknownFeature is returned for a name not in the feature table.
var ErrUnknownFeature = errors.New("unknown feature")

var features = []*Feature{
	{Name: "ptrace_seize", Label: "ptrace seize/interrupt", Class: Required,
		Requires: "Linux 3.4+ (PTRACE_SEIZE, PTRACE_INTERRUPT); CAP_SYS_PTRACE or same credentials; Yama ptrace_scope <= 2",
		probe:    probePtraceSeize},
	{Name: "syscall_injection", Label: "syscall injection", Class: Required,
		Requires: "ptrace seize and a [vdso] mapping in the target (not booted with vdso=0)",
		probe:    probeSyscallInjection},
	{Name: "process_vm_rw", Label: "process_vm_readv/writev", Class: Required,
		Requires: "Linux 3.2+, CONFIG_CROSS_MEMORY_ATTACH; ptrace access to the target",
		probe:    probeProcessVMRW},
	{Name: "prctl_mm_map", Label: "PR_SET_MM_MAP", Class: Required,
		Requires: "Linux 3.18+, CONFIG_CHECKPOINT_RESTORE (no CAP_SYS_RESOURCE needed)",
		probe:    probePrctlMMMap},
	{Name: "clone3_set_tid", Label: "clone3 set_tid", Class: Required, pidAlloc: true,
		Requires: "Linux 5.5+ (clone3 with set_tid); CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE (Linux 5.9+) over the PID namespace",
		probe:    probeClone3SetTid},
	{Name: "ns_last_pid", Label: "ns_last_pid", Class: Required, pidAlloc: true,
		Requires: "Linux 3.3+, CONFIG_CHECKPOINT_RESTORE; CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE over the PID namespace",
		probe:    probeNsLastPid},
	{Name: "pidfd_getfd", Label: "pidfd_getfd", Class: Needed,
		Requires: "Linux 5.6+ (pidfd_open 5.3+); ptrace access to the target",
		probe:    probePidfdGetfd},
	{Name: "memfd", Label: "memfd", Class: Needed,
		Requires: "Linux 3.17+, CONFIG_MEMFD_CREATE",
		probe:    probeMemfd},
	{Name: "rseq_ptrace", Label: "rseq via ptrace", Class: Needed,
		Requires: "Linux 5.13+ (PTRACE_GET_RSEQ_CONFIGURATION), CONFIG_RSEQ",
		probe:    probeRseqPtrace},
	{Name: "ptrace_peeksiginfo", Label: "PTRACE_PEEKSIGINFO", Class: Needed,
		Requires: "Linux 3.10+",
		probe:    probePeekSiginfo},
	{Name: "seccomp_get_filter", Label: "PTRACE_SECCOMP_GET_FILTER", Class: Needed,
		Requires: "Linux 4.4+, CONFIG_SECCOMP_FILTER and CONFIG_CHECKPOINT_RESTORE; CAP_SYS_ADMIN",
		probe:    probeSeccompGetFilter},
	{Name: "ptrace_get_syscall_info", Label: "PTRACE_GET_SYSCALL_INFO", Class: Optional,
		Requires: "Linux 5.3+",
		probe:    probeGetSyscallInfo},
	{Name: "userfaultfd", Label: "userfaultfd", Class: Optional,
		Requires: "Linux 4.3+, CONFIG_USERFAULTFD; CAP_SYS_PTRACE, vm.unprivileged_userfaultfd=1 or access to /dev/userfaultfd (Linux 6.1+)",
		probe:    probeUserfaultfd},
	{Name: "uffd_wp_async", Label: "uffd-wp async", Class: Optional,
		Requires: "Linux 6.7+ (UFFD_FEATURE_WP_ASYNC), CONFIG_USERFAULTFD, CONFIG_PTE_MARKER_UFFD_WP",
		probe:    probeUffdWPAsync},
	{Name: "pagemap_scan", Label: "uffd-wp dirty tracking", Class: Optional,
		Requires: "Linux 6.7+ (PAGEMAP_SCAN ioctl on /proc/PID/pagemap), CONFIG_PROC_PAGE_MONITOR, and uffd_wp_async",
		probe:    probePagemapScan},
	{Name: "soft_dirty", Label: "soft-dirty", Class: Optional,
		Requires: "CONFIG_MEM_SOFT_DIRTY (x86-64, arm64, ppc64, s390, riscv); /proc/PID/clear_refs",
		probe:    probeSoftDirty},
	{Name: "mem_dirty_track", Label: "dirty memory tracking", Class: Optional,
		Requires: "a kernel tracker: uffd-wp (userfaultfd WP_ASYNC + PAGEMAP_SCAN, Linux 6.7+) or soft-dirty (CONFIG_MEM_SOFT_DIRTY)",
		probe:    probeMemDirtyTrack},
	{Name: "tcp_repair", Label: "TCP repair", Class: Optional,
		Requires: "Linux 3.5+; CAP_NET_ADMIN in the socket's network namespace",
		For:      []support.Kind{support.TCPSockets},
		probe:    probeTCPRepair},
	{Name: "nftables", Label: "network lock with nftables (for --tcp-established)", Class: Optional,
		Requires: "CONFIG_NF_TABLES and CONFIG_NF_TABLES_INET (Linux 3.14+); CAP_NET_ADMIN in the network namespace",
		For:      []support.Kind{support.TCPSockets},
		probe:    probeNftables},
	{Name: "sock_diag", Label: "socket diag", Class: Optional,
		Requires: "CONFIG_UNIX_DIAG and CONFIG_INET_DIAG (CONFIG_INET_TCP_DIAG)",
		For:      []support.Kind{support.UnixSockets, support.TCPSockets, support.UDPSockets},
		probe:    probeSockDiag},
	{Name: "selinux", Label: "SELinux", Class: Optional,
		Requires: "CONFIG_SECURITY_SELINUX, selinux in the active LSM list (CONFIG_LSM or lsm= boot parameter), a loaded policy",
		probe:    probeSELinux},
	{Name: "cap_sys_resource", Label: "CAP_SYS_RESOURCE", Class: Optional,
		Requires: "CAP_SYS_RESOURCE in gockpt's effective capability set",
		probe:    probeCapSysResource},
}

// byName indexes features. It is filled in init: probes look features up
// by name, so a map built from the table in its initializer would be an
// initialization cycle.
var byName = map[string]*Feature{}

func init() {
	for _, f := range features {
		byName[f.Name] = f
	}
}

// Refused lists the kinds of objects the feature exists for when gockpt
// refuses every one of them (the kernel may have TCP repair, but gockpt
// does not dump TCP sockets); nil when gockpt uses the feature.
func (f Feature) Refused() []support.Object {
	var out []support.Object
	for _, k := range f.For {
		o := support.Lookup(k)
		if o.Dumped {
			return nil
		}
		out = append(out, o)
	}
	return out
}

// Features returns the feature table in display order.
func Features() []Feature {
	out := make([]Feature, len(features))
	for i, f := range features {
		out[i] = *f
	}
	return out
}

// Names lists every feature name in display order.
func Names() []string {
	out := make([]string, len(features))
	for i, f := range features {
		out[i] = f.Name
	}
	return out
}

// Lookup finds a feature by name; "soft-dirty" finds "soft_dirty".
func Lookup(name string) (Feature, bool) {
	f, ok := byName[strings.ReplaceAll(name, "-", "_")]
	if !ok {
		return Feature{}, false
	}
	return *f, true
}

type cached struct {
	once sync.Once
	r    Result
}

var cache sync.Map // name -> *cached

// Probe runs (once per process) and returns the probe of one feature.
func Probe(name string) (Result, error) {
	f, ok := byName[strings.ReplaceAll(name, "-", "_")]
	if !ok {
		return Result{}, fmt.Errorf("%w %q; valid names: %s", ErrUnknownFeature, name, strings.Join(Names(), ", "))
	}
	return get(f), nil
}

// get returns f's cached result, running its probe the first time.
func get(f *Feature) Result {
	v, _ := cache.LoadOrStore(f.Name, &cached{})
	c := v.(*cached)
	c.once.Do(func() { c.r = run(f) })
	return c.r
}

// must is get by name, for probes that build on other probes.
func must(name string) Result { return get(byName[name]) }

// run calls the probe and fills in what every Result carries.
func run(f *Feature) (r Result) {
	defer func() {
		// A probe bug must not take gockpt down: report it as the answer.
		if p := recover(); p != nil {
			r = Result{Detail: fmt.Sprintf("probe failed: %v", p), Err: fmt.Errorf("probe %s: %v", f.Name, p)}
		}
		r.Name = f.Name
		if r.Requires == "" {
			r.Requires = f.Requires
		}
		if !r.Supported && r.Err == nil {
			r.Err = errors.New(r.Detail)
		}
	}()
	return f.probe()
}

// All probes the named features (every feature when none are named) and
// returns their results in table order. Probes that do not interfere run
// concurrently; PID-allocation probes run afterwards, one at a time.
func All(names ...string) ([]Result, error) {
	var fs []*Feature
	if len(names) == 0 {
		fs = features
	} else {
		seen := map[string]bool{}
		for _, n := range names {
			f, ok := byName[strings.ReplaceAll(n, "-", "_")]
			if !ok {
				return nil, fmt.Errorf("%w %q; valid names: %s", ErrUnknownFeature, n, strings.Join(Names(), ", "))
			}
			if !seen[f.Name] {
				seen[f.Name] = true
				fs = append(fs, f)
			}
		}
		sort.SliceStable(fs, func(i, j int) bool { return index(fs[i]) < index(fs[j]) })
	}
	out := make([]Result, len(fs))
	var wg sync.WaitGroup
	for i, f := range fs {
		if f.pidAlloc {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = get(f)
		}()
	}
	wg.Wait()
	for i, f := range fs {
		if f.pidAlloc {
			out[i] = get(f)
		}
	}
	return out, nil
}

func index(f *Feature) int {
	for i, g := range features {
		if g == f {
			return i
		}
	}
	return len(features)
}

// DefaultNames lists the features gockpt check shows without --all: those
// dump and restore use.
func DefaultNames() []string {
	var out []string
	for _, f := range features {
		if f.Class != Optional {
			out = append(out, f.Name)
		}
	}
	return out
}

// Verdict says whether dump and restore can work with these results, and if
// not, lists what is missing (a feature name, or "clone3_set_tid or
// ns_last_pid"). Features not among rs count as missing.
func Verdict(rs []Result) (ok bool, missing []string) {
	have := map[string]bool{}
	for _, r := range rs {
		have[r.Name] = r.Supported
	}
	for _, f := range features {
		if f.Class != Required || f.Name == "clone3_set_tid" || f.Name == "ns_last_pid" {
			continue
		}
		if !have[f.Name] {
			missing = append(missing, f.Name)
		}
	}
	if !have["clone3_set_tid"] && !have["ns_last_pid"] {
		missing = append(missing, "clone3_set_tid or ns_last_pid")
	}
	return len(missing) == 0, missing
}

func supported(name string) bool { return must(name).Supported }

// HasPtraceSeize reports whether PTRACE_SEIZE and PTRACE_INTERRUPT work.
func HasPtraceSeize() bool { return supported("ptrace_seize") }

// HasClone3SetTid reports whether clone3 can create a process with a chosen
// PID; restore falls back to ns_last_pid otherwise.
func HasClone3SetTid() bool { return supported("clone3_set_tid") }

// HasNsLastPid reports whether writing ns_last_pid places the next PID.
func HasNsLastPid() bool { return supported("ns_last_pid") }

// HasPidfdGetfd reports whether pidfd_getfd can copy a target's fd.
func HasPidfdGetfd() bool { return supported("pidfd_getfd") }

// HasUserfaultfd reports whether a userfaultfd can be created and handshaken.
func HasUserfaultfd() bool { return supported("userfaultfd") }

// HasUffdWPAsync reports whether UFFD_FEATURE_WP_ASYNC can be enabled.
func HasUffdWPAsync() bool { return supported("uffd_wp_async") }

// HasPagemapScan reports whether PAGEMAP_SCAN reports written pages of a
// uffd-wp area: the uffd-wp dirty tracker works.
func HasPagemapScan() bool { return supported("pagemap_scan") }

// HasSoftDirty reports whether soft-dirty bits work.
func HasSoftDirty() bool { return supported("soft_dirty") }

// HasRseqPtrace reports whether PTRACE_GET_RSEQ_CONFIGURATION works.
func HasRseqPtrace() bool { return supported("rseq_ptrace") }

// HasSeccompGetFilter reports whether PTRACE_SECCOMP_GET_FILTER works.
func HasSeccompGetFilter() bool { return supported("seccomp_get_filter") }

// HasTCPRepair reports whether TCP_REPAIR works.
func HasTCPRepair() bool { return supported("tcp_repair") }

// HasNftables reports whether the network lock (internal/netlock) can be
// set: nftables tables can be made and deleted over netlink.
func HasNftables() bool { return supported("nftables") }

// HasCapSysResource reports whether gockpt holds CAP_SYS_RESOURCE.
func HasCapSysResource() bool { return supported("cap_sys_resource") }

// SELinuxActive reports whether SELinux is enabled, so labels must be dumped
// and restored.
func SELinuxActive() bool { return supported("selinux") }

// UffdFeatures returns the UFFD_FEATURE_* bits the kernel offers, 0 when
// userfaultfd does not work.
func UffdFeatures() uint64 {
	must("userfaultfd")
	return uffdFeatureBits.Load()
}

// Dirty-tracker backend names, strongest first.
const (
	TrackerUffdWP    = "uffd-wp"
	TrackerSoftDirty = "soft-dirty"
	TrackerHashes    = "hashes"
)

// DirtyTrackers lists the dirty-tracking backends that work here, preferred
// first. It always ends with TrackerHashes, which needs no kernel help.
func DirtyTrackers() []string {
	var out []string
	if HasPagemapScan() {
		out = append(out, TrackerUffdWP)
	}
	if HasSoftDirty() {
		out = append(out, TrackerSoftDirty)
	}
	return append(out, TrackerHashes)
}
