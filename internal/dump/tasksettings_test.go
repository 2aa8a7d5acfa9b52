package dump

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/files"
	"github.com/gockpt/gockpt/internal/parasite"
	"github.com/gockpt/gockpt/internal/ptrace"
	"github.com/gockpt/gockpt/internal/testproc"
)

// TestSettingRefusals: settings CRIU's images have no field for are
// refused, naming the task (and thread) and the value, with what to do;
// the tree runs on untouched.
func TestSettingRefusals(t *testing.T) {
	who := func(pid int) string { return fmt.Sprintf("task %d (sleep): ", pid) }
	cases := []struct {
		name string
		set  func(t *testing.T, pid int) string // makes the setting, returns the refusal
	}{
		{"timerslack", func(t *testing.T, pid int) string {
			writeProc(t, pid, "timerslack_ns", "70000")
			return who(pid) + "timer slack 70000 ns: gockpt does not dump timer slack other than the default 50000 ns; set it back before dumping (prctl(PR_SET_TIMERSLACK, 0) in the thread, or echo 0 > /proc/PID/timerslack_ns)"
		}},
		{"coredump_filter", func(t *testing.T, pid int) string {
			writeProc(t, pid, "coredump_filter", "0x7f")
			own, _ := os.ReadFile("/proc/self/coredump_filter")
			return who(pid) + fmt.Sprintf("coredump_filter 0x0000007f (gockpt's is 0x%s): gockpt does not dump core dump filters other than gockpt's own; write gockpt's value back to /proc/PID/coredump_filter before dumping", strings.TrimSpace(string(own)))
		}},
		{"autogroup", func(t *testing.T, pid int) string {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d/autogroup", pid)); err != nil {
				t.Skip("no autogroups in this kernel (CONFIG_SCHED_AUTOGROUP off)")
			}
			writeProc(t, pid, "autogroup", "3")
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/autogroup", pid))
			name := strings.TrimPrefix(strings.Fields(string(b))[0], "/")
			return who(pid) + fmt.Sprintf("autogroup %s nice 3: gockpt does not dump autogroup nice values; reset it before dumping (echo 0 > /proc/PID/autogroup)", name)
		}},
		{"ioprio", func(t *testing.T, pid int) string {
			// idle class
			if _, _, e := unix.RawSyscall(unix.SYS_IOPRIO_SET, 1, uintptr(pid), 3<<13); e != 0 {
				t.Fatalf("ioprio_set: %v", e)
			}
			own, err := ioprio(0)
			if err != nil {
				t.Fatal(err)
			}
			return who(pid) + fmt.Sprintf("I/O priority idle (gockpt's is %s): gockpt does not dump I/O priorities other than gockpt's own; run gockpt with the same I/O priority (ionice), or reset the thread's (ionice -c 0 -p TID) before dumping", ioprioName(own))
		}},
		{"affinity", func(t *testing.T, pid int) string {
			var mine, one unix.CPUSet
			if err := unix.SchedGetaffinity(0, &mine); err != nil || mine.Count() < 2 {
				t.Skip("gockpt runs on one CPU: no other affinity to give")
			}
			cpu := 0
			for !mine.IsSet(cpu) {
				cpu++
			}
			one.Set(cpu)
			if err := unix.SchedSetaffinity(pid, &one); err != nil {
				t.Fatal(err)
			}
			return who(pid) + fmt.Sprintf("CPU affinity %d (gockpt's is %s): gockpt does not dump CPU affinities other than gockpt's own; run gockpt with the same affinity (taskset), or widen the thread's (taskset -p) before dumping", cpu, cpuList(&mine))
		}},
		{"deadline", func(t *testing.T, pid int) string {
			attr := &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: schedDeadline, Runtime: 1000000, Deadline: 10000000, Period: 10000000}
			if err := unix.SchedSetAttr(pid, attr, 0); err != nil {
				t.Skipf("sched_setattr(SCHED_DEADLINE): %v", err)
			}
			return who(pid) + "scheduling policy SCHED_DEADLINE: gockpt does not dump SCHED_DEADLINE scheduling; switch the thread to another policy before dumping (chrt --other -p 0 TID)"
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := testproc.Start(t, "sleep", "1000")
			time.Sleep(20 * time.Millisecond) // exec'd
			want := c.set(t, p.Pid)
			mapsBefore, _ := os.ReadFile(fmt.Sprintf("/proc/%d/maps", p.Pid))
			img := filepath.Join(t.TempDir(), "img")
			_, err := Run(Options{Pid: p.Pid, ImagesDir: img, LeaveRunning: true})
			if err == nil || err.Error() != want {
				t.Fatalf("error\n %v\nwant\n %s", err, want)
			}
			if _, err := os.Lstat(img); err == nil {
				t.Errorf("a dump refused before touching the tree made %s", img)
			}
			expectUntouched(t, p.Pid, mapsBefore)
		})
	}
}

// TestFrozenSettingRefusals: what only the frozen thread tells (a
// thread's own timer slack and syscall user dispatch, PR_SET_MDWE) is
// refused too, and what only the program itself can set (a memory policy,
// KSM merge-any); the tree runs on untouched.
func TestFrozenSettingRefusals(t *testing.T) {
	bin := testproc.BuildC(t, "testdata/settings.c", "-pthread")
	for _, c := range []struct{ mode, want string }{
		{"thread-slack", "task %d (%s) thread %s: timer slack 12345 ns: gockpt does not dump timer slack other than the default 50000 ns; set it back before dumping (prctl(PR_SET_TIMERSLACK, 0) in the thread, or echo 0 > /proc/PID/timerslack_ns)"},
		{"thp-advised", "task %d (%s): PR_SET_THP_DISABLE with PR_THP_DISABLE_EXCEPT_ADVISED: gockpt does not dump THP disabled except where advised; disable THP completely (prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0)) or not at all before dumping"},
		{"mempolicy", "task %d (%s): NUMA memory policy prefer:0 (numa_maps, from %s): gockpt does not dump NUMA memory policies (set_mempolicy, mbind); run the program without a memory policy (numactl), or set the default back (MPOL_DEFAULT) before dumping"},
		{"thread-mempolicy", "task %d (%s) thread %s: NUMA memory policy prefer:0 (numa_maps, from %s): gockpt does not dump NUMA memory policies (set_mempolicy, mbind); run the program without a memory policy (numactl), or set the default back (MPOL_DEFAULT) before dumping"},
		{"mbind", "task %d (%s): NUMA memory policy prefer:0 (numa_maps, from %s): gockpt does not dump NUMA memory policies (set_mempolicy, mbind); run the program without a memory policy (numactl), or set the default back (MPOL_DEFAULT) before dumping"},
		{"mdwe", "task %d (%s): PR_SET_MDWE flags 0x1: gockpt does not dump memory-deny-write-execute (PR_SET_MDWE); run the program without PR_SET_MDWE (systemd: MemoryDenyWriteExecute=no)"},
		{"thread-sud", "task %d (%s) thread %s: syscall user dispatch mode 1 (selector at %s, always allowed from 0x1000, 4096 bytes): gockpt does not dump syscall user dispatch (PR_SET_SYSCALL_USER_DISPATCH); turn it off in the thread before dumping (prctl(PR_SET_SYSCALL_USER_DISPATCH, PR_SYS_DISPATCH_OFF, 0, 0, 0))"},
		{"thread-cpuid", "task %d (%s) thread %s: CPUID faulting (arch_prctl ARCH_SET_CPUID 0): gockpt does not dump CPUID faulting (arch_prctl ARCH_SET_CPUID); turn it off in the thread before dumping (arch_prctl(ARCH_SET_CPUID, 1))"},
		{"ksm", "task %d (%s): KSM merge-any (ksm_stat: ksm_merge_any: yes): gockpt does not dump KSM merge-any (PR_SET_MEMORY_MERGE); turn it off in the process before dumping (prctl(PR_SET_MEMORY_MERGE, 0, 0, 0, 0)); madvise(MADV_MERGEABLE) areas are dumped"},
	} {
		t.Run(c.mode, func(t *testing.T) {
			if _, err := os.Stat("/sys/kernel/mm/ksm"); err != nil && c.mode == "ksm" {
				t.Skip("no KSM in this kernel (CONFIG_KSM off)")
			}
			dir := t.TempDir()
			p := testproc.Start(t, bin, dir, c.mode)
			testproc.WaitFile(t, filepath.Join(dir, "ready"), 10*time.Second)
			info, _ := os.ReadFile(filepath.Join(dir, "info"))
			tid := strings.TrimSpace(strings.TrimPrefix(string(info), "tid "))
			want := fmt.Sprintf(c.want, p.Pid, comm(p.Pid), tid)
			switch c.mode {
			case "mdwe", "thp-advised", "ksm":
				want = fmt.Sprintf(c.want, p.Pid, comm(p.Pid))
			case "thread-sud":
				sel, _ := os.ReadFile(filepath.Join(dir, "sel"))
				want = fmt.Sprintf(c.want, p.Pid, comm(p.Pid), tid, sel)
			case "mempolicy":
				want = fmt.Sprintf(c.want, p.Pid, comm(p.Pid), firstMapping(t, p.Pid))
			case "thread-mempolicy":
				want = fmt.Sprintf(c.want, p.Pid, comm(p.Pid), tid, firstMapping(t, p.Pid))
			case "mbind":
				at, _ := os.ReadFile(filepath.Join(dir, "mbind"))
				want = fmt.Sprintf(c.want, p.Pid, comm(p.Pid), at)
			}
			mapsBefore, _ := os.ReadFile(fmt.Sprintf("/proc/%d/maps", p.Pid))
			_, err := Run(Options{Pid: p.Pid, ImagesDir: filepath.Join(t.TempDir(), "img"), LeaveRunning: true})
			if err == nil || err.Error() != want {
				t.Fatalf("error\n %v\nwant\n %s", err, want)
			}
			if c.mode == "thread-sud" {
				time.Sleep(20 * time.Millisecond) // a SIGSYS would have killed it by now
			}
			expectUntouched(t, p.Pid, mapsBefore)
		})
	}
}

// firstMapping is the start of the task's first mapping, as numa_maps
// prints it (0x-prefixed here).
func firstMapping(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	start, _, _ := strings.Cut(string(b), "-")
	return "0x" + start
}

func writeProc(t *testing.T, pid int, name, v string) {
	t.Helper()
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/%s", pid, name), []byte(v), 0); err != nil {
		t.Fatal(err)
	}
}

// TestNumaPolicyDefault: a process without memory policies shows none in
// any thread, though only the first line of other threads' numa_maps is
// read (a read that stops inside a line must not count that line).
func TestNumaPolicyDefault(t *testing.T) {
	if _, err := os.Stat("/proc/self/numa_maps"); err != nil {
		t.Skip("no numa_maps (CONFIG_NUMA off)")
	}
	pid := os.Getpid()
	tids, err := threadIDs(pid)
	if err != nil {
		t.Fatal(err)
	}
	if len(tids) < 2 {
		t.Fatalf("%d threads: the test needs the Go runtime's", len(tids))
	}
	for _, tid := range tids {
		if pol, at, ok := numaPolicy(pid, tid); ok {
			t.Errorf("thread %d: policy %q at %#x, want none", tid, pol, at)
		}
	}
	// Read a byte at a time: every read stops inside a line.
	const maps = "55d0c4a00000 default file=/usr/bin/x mapped=1 N0=1 kernelpagesize_kB=4\n" +
		"7f0000000000 prefer:0 anon=2 dirty=2 N0=2 kernelpagesize_kB=4\n"
	for _, whole := range []bool{false, true} {
		pol, at, ok := numaPolicyFrom(iotest.OneByteReader(strings.NewReader(maps)), whole)
		if whole != ok || whole && (pol != "prefer:0" || at != 0x7f0000000000) {
			t.Errorf("whole %v: %q %#x %v", whole, pol, at, ok)
		}
	}
	if pol, _, ok := numaPolicyFrom(iotest.OneByteReader(strings.NewReader(maps[strings.Index(maps, "\n")+1:])), false); !ok || pol != "prefer:0" {
		t.Errorf("first line prefer:0: %q %v", pol, ok)
	}
}

// TestThreadMempolicyFrozen: when frozen, another thread's memory policy
// is what the thread itself answers (get_mempolicy, run by the blob with
// all the other threads), and its refusal reads as the one made before
// the freeze from numa_maps.
func TestThreadMempolicyFrozen(t *testing.T) {
	if _, err := os.Stat("/proc/self/numa_maps"); err != nil {
		t.Skip("no numa_maps (CONFIG_NUMA off)")
	}
	bin := testproc.BuildC(t, "testdata/settings.c", "-pthread")
	dir := t.TempDir()
	p := testproc.Start(t, bin, dir, "thread-mempolicy")
	testproc.WaitFile(t, filepath.Join(dir, "ready"), 10*time.Second)
	info, _ := os.ReadFile(filepath.Join(dir, "info"))
	tid, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(string(info), "tid ")))
	if err != nil {
		t.Fatalf("info %q: %v", info, err)
	}
	tr := ptrace.NewTracer()
	defer tr.Close()
	tree, err := tr.SeizeTree(p.Pid)
	if err != nil {
		t.Fatal(err)
	}
	defer tree.Detach()
	task := tree.Tasks()[0]
	leader := task.Threads[0]
	par, err := parasite.Inject(tr, leader, parasite.Options{Threads: len(task.Threads) - 1})
	if err != nil {
		t.Fatal(err)
	}
	tis, err := par.DumpThreads(task.Threads[1:])
	if cerr := par.Cure(); cerr != nil {
		t.Fatal(cerr)
	}
	if err != nil {
		t.Fatal(err)
	}
	c := files.NewChecker(0, []int{p.Pid})
	defer c.Close()
	var refused error
	for _, ti := range tis {
		err := threadSettingRefusal(c, p.Pid, ti.Tid, threadSettings{timerSlack: ti.TimerSlack, cpuid: ti.CPUID, mempolicy: ti.Mempolicy})
		if ti.Tid != tid {
			if err != nil {
				t.Errorf("thread %d without a policy: %v", ti.Tid, err)
			}
			continue
		}
		if ti.Mempolicy != 1 { // MPOL_PREFERRED
			t.Errorf("thread %d: mempolicy %d, want 1 (MPOL_PREFERRED)", ti.Tid, ti.Mempolicy)
		}
		refused = err
	}
	want := fmt.Sprintf("task %d (%s) thread %d: NUMA memory policy prefer:0 (numa_maps, from %s): gockpt does not dump NUMA memory policies (set_mempolicy, mbind); run the program without a memory policy (numactl), or set the default back (MPOL_DEFAULT) before dumping",
		p.Pid, comm(p.Pid), tid, firstMapping(t, p.Pid))
	if refused == nil || refused.Error() != want {
		t.Fatalf("error\n %v\nwant\n %s", refused, want)
	}
}
