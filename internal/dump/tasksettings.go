package dump

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/files"
	"github.com/gockpt/gockpt/internal/ptrace"
	"github.com/gockpt/gockpt/internal/support"
)

// Settings of a task that CRIU's images have no field for: restore could
// not bring them back, so a value other than the one a restored task gets
// anyway (the kernel's default, or what gockpt itself has and passes on)
// is refused rather than lost.

const (
	defaultTimerSlackNs = 50000 // the kernel's default_timer_slack_ns
	schedDeadline       = 6
	ioprioWhoProcess    = 1
	// thpExceptAdvised is the bit of PR_GET_THP_DISABLE's answer that
	// says PR_THP_DISABLE_EXCEPT_ADVISED (Linux 6.18+).
	thpExceptAdvised = 2
)

// lsmPendingAttrs are the /proc/PID/attr files that hold labels for what
// the task makes next; restore sets only the task's own label.
var lsmPendingAttrs = []string{"exec", "fscreate", "keycreate", "sockcreate"}

// lsmAttrUnsupported[i] is set once reading lsmPendingAttrs[i] answered
// EINVAL: no module on this kernel serves that file.
var lsmAttrUnsupported [4]atomic.Bool

// settingRefusals looks at a task from outside: per thread the scheduling
// policy, CPU affinity, I/O priority, NUMA policy and pending LSM labels;
// for the process its timer slack, core dump filter and autogroup nice.
// frozen leaves other threads' NUMA policy to threadSettingRefusal.
func settingRefusals(c *files.Checker, pid int, frozen bool) error {
	ref := func(where, object string, k support.Kind) error {
		return &support.Refusal{Pid: pid, Comm: c.Comm(pid), Where: where, Object: object, Kind: k}
	}
	tids, err := threadIDs(pid)
	if err != nil {
		return nil // gone or a zombie: the frozen pass looks again
	}
	// The main thread first: numaPolicy reads its whole numa_maps, and
	// only then the first line of the others'.
	sort.Slice(tids, func(i, j int) bool { return tids[i] == pid && tids[j] != pid })
	var mine unix.CPUSet
	haveMine := unix.SchedGetaffinity(0, &mine) == nil
	myIoprio, myIoprioErr := ioprio(0)
	for _, tid := range tids {
		where := ""
		if tid != pid {
			where = "thread " + strconv.Itoa(tid)
		}
		if pol, _, e := unix.RawSyscall(unix.SYS_SCHED_GETSCHEDULER, uintptr(tid), 0, 0); e == 0 && int(pol)&^unix.SCHED_RESET_ON_FORK == schedDeadline {
			return ref(where, "scheduling policy SCHED_DEADLINE", support.SchedDeadline)
		}
		var set unix.CPUSet
		if haveMine && unix.SchedGetaffinity(tid, &set) == nil && set != mine {
			return ref(where, fmt.Sprintf("CPU affinity %s (gockpt's is %s)", cpuList(&set), cpuList(&mine)), support.CPUAffinity)
		}
		if p, err := ioprio(tid); err == nil && myIoprioErr == nil && p != myIoprio {
			return ref(where, fmt.Sprintf("I/O priority %s (gockpt's is %s)", ioprioName(p), ioprioName(myIoprio)), support.IOPriority)
		}
		// Other threads' own policy is asked of them when frozen
		// (threadSettingRefusal): reading their numa_maps costs more.
		if tid == pid || !frozen {
			if err := numaRefusal(c, pid, tid, where); err != nil {
				return err
			}
		}
		for i, a := range lsmPendingAttrs {
			if lsmAttrUnsupported[i].Load() {
				continue
			}
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/attr/%s", pid, tid, a))
			if errors.Is(err, unix.EINVAL) {
				// No security module serves it: no thread of any task
				// can have one (1,024 threads read 4,096 files for
				// nothing).
				lsmAttrUnsupported[i].Store(true)
			}
			if v := strings.TrimRight(string(b), "\x00\n"); err == nil && v != "" {
				return ref(where, fmt.Sprintf("attr/%s label %s", a, v), support.LSMPending)
			}
		}
	}
	if v, err := readIntFile(fmt.Sprintf("/proc/%d/timerslack_ns", pid), 10); err == nil && !restoredSlack(pid, v) {
		return ref("", fmt.Sprintf("timer slack %d ns", v), support.TimerSlack)
	}
	// Empty: the task has no memory any more (it is exiting), nothing to keep.
	if theirs, err := os.ReadFile(fmt.Sprintf("/proc/%d/coredump_filter", pid)); err == nil && len(theirs) != 0 {
		if own, err := os.ReadFile("/proc/self/coredump_filter"); err == nil && string(own) != string(theirs) {
			return ref("", fmt.Sprintf("coredump_filter 0x%s (gockpt's is 0x%s)", strings.TrimSpace(string(theirs)), strings.TrimSpace(string(own))), support.CoredumpFilter)
		}
	}
	if ksmMergeAny(pid) {
		return ref("", "KSM merge-any (ksm_stat: ksm_merge_any: yes)", support.KSMMergeAny)
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/autogroup", pid)); err == nil {
		// "/autogroup-95165 nice 0"
		if f := strings.Fields(string(b)); len(f) == 3 && f[1] == "nice" && f[2] != "0" {
			return ref("", fmt.Sprintf("autogroup %s nice %s", strings.TrimPrefix(f[0], "/"), f[2]), support.Autogroup)
		}
	}
	return nil
}

// sudRefusal refuses a frozen thread with syscall user dispatch on. It is
// asked through ptrace before anything runs in the task: a syscall
// injected into a thread with it on and its selector at BLOCK would raise
// SIGSYS.
func sudRefusal(c *files.Checker, pid int, te *ptrace.Tracee) error {
	sud, err := te.SyscallUserDispatch()
	if err != nil && !errors.Is(err, unix.EIO) { // EIO: before Linux 6.4, which cannot tell
		return err
	}
	if err == nil && sud.Mode != 0 {
		return &support.Refusal{Pid: pid, Comm: c.Comm(pid), Where: threadWhere(pid, te.Tid), Kind: support.SyscallUserDispatch,
			Object: fmt.Sprintf("syscall user dispatch mode %d (selector at %#x, always allowed from %#x, %d bytes)", sud.Mode, sud.Selector, sud.Offset, sud.Len)}
	}
	return nil
}

// threadWhere names a thread other than the main one in a refusal.
func threadWhere(pid, tid int) string {
	if tid == pid {
		return ""
	}
	return "thread " + strconv.Itoa(tid)
}

// threadSettings is what only a thread itself can tell, as its own
// syscalls answer (raw: a negative errno where the kernel has no such
// call): the parasite asks the main thread, injected syscalls the others.
type threadSettings struct {
	timerSlack uint64 // prctl(PR_GET_TIMERSLACK); /proc shows the main thread's alone
	cpuid      uint64 // arch_prctl(ARCH_GET_CPUID), x86
	// Other threads': get_mempolicy's mode (the main thread's policy,
	// and each mapping's, come from its numa_maps).
	mempolicy uint64
	// The main thread's alone: the whole process's.
	mdwe       uint64 // prctl(PR_GET_MDWE)
	thpDisable uint64 // prctl(PR_GET_THP_DISABLE)
}

// threadSettingRefusal refuses what a thread's own answers show that
// restore could not bring back: CPUID faulting, a timer slack of its own
// and, for the main thread, memory that denies write+execute (PR_SET_MDWE)
// and THP disabled except where advised.
func threadSettingRefusal(c *files.Checker, pid, tid int, v threadSettings) error {
	where := threadWhere(pid, tid)
	if tid != pid && ptrace.Errno(v.mempolicy) == 0 && v.mempolicy != mpolDefault {
		if err := numaRefusal(c, pid, tid, where); err != nil {
			return err
		}
		return &support.Refusal{Pid: pid, Comm: c.Comm(pid), Where: where, Object: fmt.Sprintf("NUMA memory policy mode %d (get_mempolicy)", v.mempolicy), Kind: support.NUMAPolicy}
	}
	if err := archSettingRefusal(c, pid, where, v.cpuid); err != nil {
		return err
	}
	if ptrace.Errno(v.timerSlack) == 0 && !restoredSlack(tid, int64(v.timerSlack)) {
		return &support.Refusal{Pid: pid, Comm: c.Comm(pid), Where: where, Object: fmt.Sprintf("timer slack %d ns", v.timerSlack), Kind: support.TimerSlack}
	}
	if tid != pid {
		return nil
	}
	if ptrace.Errno(v.mdwe) == 0 && v.mdwe != 0 {
		return &support.Refusal{Pid: pid, Comm: c.Comm(pid), Object: fmt.Sprintf("PR_SET_MDWE flags %#x", v.mdwe), Kind: support.MDWE}
	}
	// CRIU's thp_disabled is a bool: THP disabled completely (1), not
	// only where madvise does not ask for it (Linux 6.18+ answers 3).
	if ptrace.Errno(v.thpDisable) == 0 && v.thpDisable&thpExceptAdvised != 0 {
		return &support.Refusal{Pid: pid, Comm: c.Comm(pid), Object: "PR_SET_THP_DISABLE with PR_THP_DISABLE_EXCEPT_ADVISED", Kind: support.THPExceptAdvised}
	}
	return nil
}

// mpolDefault is MPOL_DEFAULT.
const mpolDefault = 0

// numaRefusal refuses a NUMA policy other than the default that the
// thread's numa_maps shows.
func numaRefusal(c *files.Checker, pid, tid int, where string) error {
	if pol, start, ok := numaPolicy(pid, tid); ok {
		return &support.Refusal{Pid: pid, Comm: c.Comm(pid), Where: where, Object: fmt.Sprintf("NUMA memory policy %s (numa_maps, from %#x)", pol, start), Kind: support.NUMAPolicy}
	}
	return nil
}

// ksmMergeAny says whether the process asked KSM to merge all its memory
// (prctl(PR_SET_MEMORY_MERGE, 1)); kernels before 6.8 have no line for it
// in ksm_stat, and kernels without KSM no ksm_stat.
func ksmMergeAny(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/ksm_stat", pid))
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && k == "ksm_merge_any" {
			return strings.TrimSpace(v) == "yes"
		}
	}
	return false
}

// numaPolicy finds, in the thread's numa_maps, a memory policy other than
// the default: a mapping's (mbind) or, where it has none, the thread's own
// (set_mempolicy).
func numaPolicy(pid, tid int) (string, uint64, bool) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/task/%d/numa_maps", pid, tid))
	if err != nil {
		return "", 0, false // no CONFIG_NUMA, or gone
	}
	defer f.Close()
	// The main thread's lists every mapping: a policy of its own (mbind)
	// or else the thread's. settingRefusals asks it first, so when
	// another thread's is asked every mapping has none of its own, and
	// its first line shows that thread's policy: reading only that much
	// spares the kernel walking every mapping once per thread (a process
	// of 1,024 threads has over 2,000 mappings).
	return numaPolicyFrom(f, tid == pid)
}

// numaPolicyFrom finds the first policy other than default in numa_maps
// text: all of it, or with whole unset only the first line.
func numaPolicyFrom(r io.Reader, whole bool) (string, uint64, bool) {
	var b []byte
	var err error
	if whole {
		if b, err = io.ReadAll(r); err != nil {
			return "", 0, false
		}
	} else {
		// Up to the end of the first whole line: a read may stop
		// inside one.
		buf := make([]byte, 1024)
		for !bytes.Contains(b, []byte{'\n'}) {
			n, rerr := r.Read(buf)
			b = append(b, buf[:n]...)
			if rerr != nil {
				break
			}
		}
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return "", 0, false
		}
		b = b[:i+1]
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 || f[1] == "default" {
			continue
		}
		start, err := strconv.ParseUint(f[0], 16, 64)
		if err != nil {
			continue
		}
		return f[1], start, true
	}
	return "", 0, false
}

// restoredSlack says whether a thread's timer slack is what restore gives
// it anyway: the default, or 0, which the kernel sets for real-time
// policies (restore sets the policy).
func restoredSlack(tid int, slack int64) bool {
	if slack == defaultTimerSlackNs {
		return true
	}
	pol, _, e := unix.RawSyscall(unix.SYS_SCHED_GETSCHEDULER, uintptr(tid), 0, 0)
	rt := int(pol) &^ unix.SCHED_RESET_ON_FORK
	return slack == 0 && e == 0 && (rt == unix.SCHED_FIFO || rt == unix.SCHED_RR)
}

func threadIDs(pid int) ([]int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, tid)
		}
	}
	return out, nil
}

func ioprio(tid int) (int, error) {
	r, _, e := unix.RawSyscall(unix.SYS_IOPRIO_GET, ioprioWhoProcess, uintptr(tid), 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// ioprioName names an I/O priority as ionice(1) prints it.
func ioprioName(p int) string {
	class, data := p>>13, p&0xff
	switch class {
	case 1:
		return fmt.Sprintf("realtime: prio %d", data)
	case 2:
		return fmt.Sprintf("best-effort: prio %d", data)
	case 3:
		return "idle"
	}
	return fmt.Sprintf("none: prio %d", data)
}

// cpuList prints a CPU set as Cpus_allowed_list does: 0-3,6.
func cpuList(s *unix.CPUSet) string {
	var parts []string
	for i := 0; i < len(s)*64; i++ {
		if !s.IsSet(i) {
			continue
		}
		j := i
		for j+1 < len(s)*64 && s.IsSet(j+1) {
			j++
		}
		if j == i {
			parts = append(parts, strconv.Itoa(i))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", i, j))
		}
		i = j
	}
	return strings.Join(parts, ",")
}
