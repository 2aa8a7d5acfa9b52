package parasite

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/lsm"
	"github.com/gockpt/gockpt/internal/proc"
	"github.com/gockpt/gockpt/internal/ptrace"
)

// TestInjectSleepCure injects into sleep, asks it, and cures it both ways
// a waiting blob is cured: through the parking code's way out (GK_CMD_PARK)
// and from gockpt (quickCure, where the vDSO has no parking code). The
// task has its registers, xsave area, mask, mappings and fds back.
func TestInjectSleepCure(t *testing.T) {
	for _, way := range []string{"park", "quick"} {
		t.Run(way, func(t *testing.T) { testInjectSleepCure(t, way == "park") })
	}
}

func testInjectSleepCure(t *testing.T, park bool) {
	cmd := startChild(t, "sleep", "1000")
	pid := cmd.Process.Pid
	time.Sleep(50 * time.Millisecond)
	tr := newTracer(t)
	te, err := tr.Seize(pid)
	if err != nil {
		t.Fatal(err)
	}
	regs, _ := te.GetRegs()
	xs, _ := te.GetXstate()
	mask, _ := te.GetSigmask()
	maps := readMaps(t, pid)
	fds := readFds(t, pid)

	p, err := Inject(tr, te, Options{LSM: lsm.None{}})
	if err != nil {
		t.Fatal(err)
	}
	if p.park == 0 {
		t.Fatal("no parking code in the vDSO of sleep")
	}
	if !park {
		p.park = 0
	}
	// The memfd the code came from is closed by the blob; its socket is
	// the one fd it adds.
	if got := readFds(t, pid); len(got) != len(fds)+1 {
		t.Fatalf("fds with the parasite: %v, before %v", got, fds)
	}
	if !strings.Contains(readMaps(t, pid), fmt.Sprintf("%x-", p.area)) {
		t.Fatalf("parasite area %#x not in maps", p.area)
	}
	m, err := p.DumpMisc()
	if err != nil {
		t.Fatal(err)
	}
	if m.Dumpable != 1 || m.Pdeathsig != 0 || m.ChildSubreaper {
		t.Fatalf("misc of sleep: %+v", m)
	}
	if want, _ := strconv.ParseUint(statusField(t, pid, "Umask"), 8, 32); uint64(m.Umask) != want {
		t.Fatalf("umask %o, /proc says %o", m.Umask, want)
	}
	sas, err := p.DumpSigactions()
	if err != nil {
		t.Fatal(err)
	}
	if len(sas) != 64 || sas[unix.SIGKILL-1] != (Sigaction{}) {
		t.Fatalf("sigactions: %d entries, SIGKILL %+v", len(sas), sas[unix.SIGKILL-1])
	}
	its, err := p.DumpItimers()
	if err != nil {
		t.Fatal(err)
	}
	if its != [3]Itimer{} {
		t.Fatalf("sleep has itimers: %+v", its)
	}
	if err := p.Cure(); err != nil {
		t.Fatal(err)
	}
	if err := p.Cure(); !errors.Is(err, ErrCured) {
		t.Fatalf("second Cure: %v", err)
	}
	after, _ := te.GetRegs()
	if after != regs {
		t.Fatalf("registers after Cure:\n%+v\nwant\n%+v", after, regs)
	}
	if xa, _ := te.GetXstate(); !bytes.Equal(xa, xs) {
		t.Fatal("xstate changed by the parasite")
	}
	if ma, _ := te.GetSigmask(); ma != mask {
		t.Fatalf("sigmask %#x after Cure, want %#x", ma, mask)
	}
	if got := readMaps(t, pid); got != maps {
		t.Fatalf("maps after Cure:\n%s\nwant\n%s", got, maps)
	}
	if got := readFds(t, pid); !slices.Equal(got, fds) {
		t.Fatalf("fds after Cure: %v, want %v", got, fds)
	}
	if err := te.Detach(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if f := strings.Fields(string(st)); f[2] != "S" {
		t.Fatalf("after Cure and detach sleep is in state %s, want S", f[2])
	}
}

func TestSocketLabelOrder(t *testing.T) {
	cmd := startChild(t, "sleep", "1000")
	pid := cmd.Process.Pid
	tr := newTracer(t)
	te, err := tr.Seize(pid)
	if err != nil {
		t.Fatal(err)
	}
	const label = "system_u:system_r:container_t:s0:c1,c2"
	rec := &lsm.Recorder{Labels: map[int]string{pid: label}}
	testHookListening = func() { rec.Mark("listen") }
	defer func() { testHookListening = nil }()
	p, err := Inject(tr, te, Options{LSM: rec, SocketDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Cure(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		fmt.Sprintf("ProcessLabel(%d)", pid),
		fmt.Sprintf("SetSocketCreateLabel(%q)", label),
		"listen",
		`SetSocketCreateLabel("")`,
	}
	if got := rec.Calls(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("LSM calls:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// stateView is what testdata/state.c says about itself.
type stateView struct {
	handler  uint64
	patAddr  uint64
	patLen   int
	threads  map[int]ThreadInfo // tid -> its own view
	mainTid  int
	timerIDs []int32
	progress string
	out      string
}

func startState(t *testing.T) (*exec.Cmd, *stateView) {
	bin := buildC(t, "state")
	dir := t.TempDir()
	v := &stateView{out: filepath.Join(dir, "view"), progress: filepath.Join(dir, "progress"), threads: map[int]ThreadInfo{}}
	cmd := startChild(t, bin, v.out, v.progress)
	waitFile(t, v.out)
	b, err := os.ReadFile(v.out)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(l)
		num := func(i int) uint64 {
			n, err := strconv.ParseUint(f[i], 0, 64)
			if err != nil {
				t.Fatalf("bad line %q: %v", l, err)
			}
			return n
		}
		switch f[0] {
		case "sigusr1":
			v.handler = num(1)
		case "pattern":
			v.patAddr, v.patLen = num(1), int(num(2))
		case "thread":
			ti := ThreadInfo{Tid: int(num(2)), TidAddress: num(3), Altstack: Stack{SP: num(4), Flags: int32(num(5)), Size: num(6)},
				TimerSlack: num(7), Securebits: num(8), CPUID: num(9)}
			v.threads[ti.Tid] = ti
			if f[1] == "main" {
				v.mainTid = ti.Tid
			}
		}
	}
	tb, err := os.ReadFile(fmt.Sprintf("/proc/%d/timers", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(tb), "\n") {
		if id, ok := strings.CutPrefix(l, "ID: "); ok {
			n, _ := strconv.Atoi(id)
			v.timerIDs = append(v.timerIDs, int32(n))
		}
	}
	return cmd, v
}

func TestDumpState(t *testing.T) {
	cmd, v := startState(t)
	pid := cmd.Process.Pid
	if len(v.threads) != 3 || v.mainTid != pid || len(v.timerIDs) != 1 {
		t.Fatalf("test program view: %+v", v)
	}
	waitCounter(t, pid, v.progress, 2)
	tr := newTracer(t)
	tree, err := tr.SeizeTree(pid)
	if err != nil {
		t.Fatal(err)
	}
	threads := tree.Root.Threads
	if len(threads) != 3 {
		t.Fatalf("seized %d threads", len(threads))
	}
	leader := threads[0]
	regs, _ := leader.GetRegs()
	maps := readMaps(t, pid)

	p, err := Inject(tr, leader, Options{Threads: len(threads) - 1})
	if err != nil {
		t.Fatal(err)
	}
	cured := false
	defer func() {
		if !cured {
			p.Cure()
		}
	}()

	sas, err := p.DumpSigactions()
	if err != nil {
		t.Fatal(err)
	}
	usr1 := sas[unix.SIGUSR1-1]
	const saRestorer, saRestart = 0x04000000, 0x10000000
	wantMask := uint64(1)<<(unix.SIGUSR2-1) | uint64(1)<<(unix.SIGTERM-1)
	if usr1.Handler != v.handler || usr1.Flags != saRestart|saRestorer || usr1.Mask != wantMask || usr1.Restorer == 0 {
		t.Fatalf("SIGUSR1 action %+v, want handler %#x flags %#x mask %#x", usr1, v.handler, saRestart|saRestorer, wantMask)
	}
	if sas[unix.SIGUSR2-1].Handler != 0 {
		t.Fatalf("SIGUSR2 action %+v, want SIG_DFL", sas[unix.SIGUSR2-1])
	}

	its, err := p.DumpItimers()
	if err != nil {
		t.Fatal(err)
	}
	real, virt, prof := its[0], its[1], its[2]
	if real.Interval != (syscall.Timeval{Sec: 500}) || real.Value.Sec < 900 || real.Value.Sec > 1000 {
		t.Fatalf("ITIMER_REAL %+v", real)
	}
	if virt.Interval != (syscall.Timeval{Usec: 250000}) || virt.Value.Sec < 1990 || virt.Value.Sec > 2000 {
		t.Fatalf("ITIMER_VIRTUAL %+v", virt)
	}
	if prof != (Itimer{}) {
		t.Fatalf("ITIMER_PROF %+v", prof)
	}

	pts, err := p.DumpPosixTimers(v.timerIDs)
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 1 || pts[0].ID != v.timerIDs[0] || pts[0].Interval != (syscall.Timespec{Sec: 3}) || pts[0].Value.Sec < 2900 || pts[0].Value.Sec > 3000 {
		t.Fatalf("POSIX timers %+v", pts)
	}
	var re *RemoteError
	if _, err := p.DumpPosixTimers([]int32{v.timerIDs[0] + 1000}); !errors.As(err, &re) || re.Errno != unix.EINVAL ||
		err.Error() != fmt.Sprintf("task %d: parasite DumpPosixTimers: invalid argument", pid) {
		t.Fatalf("timer that does not exist: %v", err)
	}

	m, err := p.DumpMisc()
	if err != nil {
		t.Fatal(err)
	}
	mainView := v.threads[pid]
	if m.Pdeathsig != int32(unix.SIGHUP) || m.Dumpable != 1 || !m.ChildSubreaper || m.Umask != 0o027 ||
		m.TidAddress != mainView.TidAddress || m.Altstack != mainView.Altstack ||
		m.TimerSlack != mainView.TimerSlack || m.Securebits != mainView.Securebits || m.CPUID != mainView.CPUID ||
		m.MDWE != 0 || m.THPDisable != 0 || m.Membarrier != 0 {
		t.Fatalf("misc %+v, program says %+v", m, mainView)
	}
	// The brk the blob asks is the task's: it has not moved since.
	if st, err := proc.ReadStat(pid); err != nil {
		t.Fatal(err)
	} else if m.Brk < st.StartBrk {
		t.Fatalf("brk %#x below the start of the heap %#x", m.Brk, st.StartBrk)
	}
	// DumpTask answers what the three commands do.
	task, err := p.DumpTask()
	if err != nil {
		t.Fatal(err)
	}
	if task.Misc != m {
		t.Fatalf("DumpTask misc %+v, DumpMisc %+v", task.Misc, m)
	}
	if !slices.Equal(task.Sigactions, sas) {
		t.Fatalf("DumpTask sigactions %+v, DumpSigactions %+v", task.Sigactions, sas)
	}
	for i := range its {
		if task.Itimers[i].Interval != its[i].Interval || task.Itimers[i].Value.Sec > its[i].Value.Sec {
			t.Fatalf("DumpTask itimer %d %+v, DumpItimers %+v", i, task.Itimers[i], its[i])
		}
	}

	for _, te := range threads[1:] {
		ti, err := p.DumpThread(te)
		if err != nil {
			t.Fatal(err)
		}
		if want := v.threads[te.Tid]; ti != want {
			t.Fatalf("thread %d: %+v, program says %+v", te.Tid, ti, want)
		}
	}
	if _, err := p.DumpThread(leader); err == nil {
		t.Fatal("DumpThread accepted the thread running the parasite")
	}
	// All other threads at once, through the blob: the same answers, and
	// each thread is back where it was.
	before := map[int]ptrace.Regs{}
	masks := map[int]uint64{}
	for _, te := range threads[1:] {
		before[te.Tid], _ = te.GetRegs()
		masks[te.Tid], _ = te.GetSigmask()
	}
	tis, err := p.DumpThreads(threads[1:])
	if err != nil {
		t.Fatal(err)
	}
	for i, te := range threads[1:] {
		if want := v.threads[te.Tid]; tis[i] != want {
			t.Fatalf("DumpThreads, thread %d: %+v, program says %+v", te.Tid, tis[i], want)
		}
		if r, _ := te.GetRegs(); r != before[te.Tid] {
			t.Fatalf("thread %d: registers after DumpThreads\n%+v\nwant\n%+v", te.Tid, r, before[te.Tid])
		}
		if m, _ := te.GetSigmask(); m != masks[te.Tid] {
			t.Fatalf("thread %d: mask %#x after DumpThreads, want %#x", te.Tid, m, masks[te.Tid])
		}
	}
	if _, err := p.DumpThreads(threads); err == nil {
		t.Fatal("DumpThreads accepted the thread running the parasite")
	}

	// Pages: the exact bytes of the pattern, through a file (splice), a
	// buffer (copy) and process_vm_readv, with ranges that split pages.
	want := make([]byte, v.patLen)
	for i := range want {
		want[i] = byte(i*7 + i>>12)
	}
	ranges := []Range{{v.patAddr, 4096}, {v.patAddr + 4096, 3 * 4096}, {v.patAddr + 16*4096, uint64(v.patLen) - 16*4096}}
	wantR := append(append(append([]byte{}, want[:4096]...), want[4096:4*4096]...), want[16*4096:]...)
	f, err := os.Create(filepath.Join(t.TempDir(), "pages"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n, err := p.DumpPages(ranges, f)
	if err != nil || n != int64(len(wantR)) {
		t.Fatalf("DumpPages to a file: %d, %v", n, err)
	}
	if got, _ := os.ReadFile(f.Name()); !bytes.Equal(got, wantR) {
		t.Fatalf("DumpPages to a file: %d bytes differ from the pattern", len(got))
	}
	var buf bytes.Buffer
	if n, err := p.DumpPages(ranges, &buf); err != nil || n != int64(len(wantR)) || !bytes.Equal(buf.Bytes(), wantR) {
		t.Fatalf("DumpPages to a buffer: %d, %v, equal %v", n, err, bytes.Equal(buf.Bytes(), wantR))
	}
	// A chunk that takes longer than the timeout while its pages flow (a
	// slow disk, gigabytes of memory) is not given up on: eight times the
	// pattern overflows the pipe, so the blob's reply waits for the slow
	// writer to drain it.
	var eight []Range
	var wantEight []byte
	for i := 0; i < 8; i++ {
		eight = append(eight, Range{v.patAddr, uint64(v.patLen)})
		wantEight = append(wantEight, want...)
	}
	saved := p.timeout
	p.timeout = 50 * time.Millisecond
	slow := &slowWriter{delay: 40 * time.Millisecond}
	start := time.Now()
	n, err = p.DumpPages(eight, slow)
	took := time.Since(start)
	p.timeout = saved
	if err != nil || n != int64(len(wantEight)) || !bytes.Equal(slow.buf.Bytes(), wantEight) {
		t.Fatalf("DumpPages to a slow writer (%v, timeout 50ms): %d, %v, equal %v", took, n, err, bytes.Equal(slow.buf.Bytes(), wantEight))
	}
	if took < 4*50*time.Millisecond {
		t.Fatalf("the slow writer took %v in %d writes: the chunk did not outlast the timeout", took, slow.writes)
	}
	buf.Reset()
	if n, err := ReadPagesVM(pid, ranges, &buf); err != nil || n != int64(len(wantR)) || !bytes.Equal(buf.Bytes(), wantR) {
		t.Fatalf("ReadPagesVM: %d, %v, equal %v", n, err, bytes.Equal(buf.Bytes(), wantR))
	}
	// A range the task has not mapped fails with the errno, and the
	// parasite keeps serving.
	if _, err := p.DumpPages([]Range{{p.area - 1<<30, 4096}}, &buf); !errors.As(err, &re) || re.Errno != unix.EFAULT {
		t.Fatalf("DumpPages of unmapped memory: %v", err)
	}
	if _, err := p.DumpMisc(); err != nil {
		t.Fatalf("after a failed DumpPages: %v", err)
	}

	// An output that fails mid-way: gockpt closes the pipe, the blob's
	// vmsplice fails with EPIPE, and the SIGPIPE that raises must never
	// reach the task (it would kill it once its mask is back).
	// Eight times the pattern overflows the 1 MiB pipe: the blob is still
	// splicing when the output fails.
	var many []Range
	for i := 0; i < 8; i++ {
		many = append(many, Range{v.patAddr, uint64(v.patLen)})
	}
	fw := &failingWriter{left: 100 << 10}
	if _, err := p.DumpPages(many, fw); err == nil || !strings.Contains(err.Error(), "write pages: disk full") {
		t.Fatalf("DumpPages to a failing writer: %v", err)
	}
	if _, err := p.DumpMisc(); err != nil {
		t.Fatalf("after a failed output: %v", err)
	}

	cured = true
	if err := p.Cure(); err != nil {
		t.Fatal(err)
	}
	if after, _ := leader.GetRegs(); after != regs {
		t.Fatalf("registers after Cure:\n%+v\nwant\n%+v", after, regs)
	}
	if got := readMaps(t, pid); got != maps {
		t.Fatalf("maps after Cure:\n%s\nwant\n%s", got, maps)
	}
	if err := tree.Detach(); err != nil {
		t.Fatal(err)
	}
	assertProgress(t, pid, v.progress)
	if got := statusField(t, pid, "SigBlk"); got != "0000000000000000" {
		t.Fatalf("SigBlk %s after Cure", got)
	}
}

// TestCureVectors checks that Cure puts back vector registers the parasite
// changed (the test changes ymm7 as the parasite starts) and the general
// registers the blob's entry zeroes.
func TestCureVectors(t *testing.T) {
	bin := buildC(t, "vecloop")
	progress := filepath.Join(t.TempDir(), "progress")
	cmd := startChild(t, bin, progress)
	pid := cmd.Process.Pid
	waitCounter(t, pid, progress, 3)
	tr := newTracer(t)
	te, err := tr.Seize(pid)
	if err != nil {
		t.Fatal(err)
	}
	testHookBeforeStart = func(p *Parasite) error { return clobberYmm7(p.leader) }
	defer func() { testHookBeforeStart = nil }()
	p, err := Inject(tr, te, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DumpMisc(); err != nil {
		t.Fatal(err)
	}
	if err := p.Cure(); err != nil {
		t.Fatal(err)
	}
	if err := te.Detach(); err != nil {
		t.Fatal(err)
	}
	assertProgress(t, pid, progress)
}

// TestSelfCure kills gockpt's side while the parasite runs: the socket
// closes and the tracer thread dies (the kernel detaches the task), as when
// gockpt is SIGKILLed. The blob must put the task back by itself, vector
// registers included.
func TestSelfCure(t *testing.T) {
	bin := buildC(t, "vecloop")
	progress := filepath.Join(t.TempDir(), "progress")
	cmd := startChild(t, bin, progress)
	pid := cmd.Process.Pid
	waitCounter(t, pid, progress, 3)
	maps := readMaps(t, pid)
	fds := fdLinks(t, pid)
	tr := ptrace.NewTracer()
	defer tr.Close()
	te, err := tr.Seize(pid)
	if err != nil {
		t.Fatal(err)
	}
	testHookBeforeStart = func(p *Parasite) error { return clobberYmm7(p.leader) }
	defer func() { testHookBeforeStart = nil }()
	p, err := Inject(tr, te, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DumpMisc(); err != nil {
		t.Fatal(err)
	}
	before := readCounter(t, progress)
	time.Sleep(100 * time.Millisecond)
	if readCounter(t, progress) != before {
		t.Fatal("the program ran its loop while the parasite held it")
	}

	// gockpt dies: the kernel detaches the task and gockpt's descriptors
	// close. (Closing the Tracer is not enough here: its goroutine may sit
	// on the main thread, which Go never exits, so the attachment stays.)
	if err := tr.Do(func() error {
		if err := unix.PtraceInterrupt(pid); err != nil {
			return err
		}
		if _, err := waitStop(pid, time.Second); err != nil {
			return err
		}
		return unix.PtraceDetach(pid)
	}); err != nil {
		t.Fatal(err)
	}
	p.conn.Close()

	checkSelfCured(t, pid, progress, before, maps, fds, p.area, p.areaLen)
}

// checkSelfCured asserts that task pid cured itself: it runs its loop
// again, untraced, with its signal mask, descriptors and mappings as before
// except for the parasite area.
func checkSelfCured(t *testing.T, pid int, progress string, before uint64, maps, fds string, area, areaLen uint64) {
	t.Helper()
	waitCounter(t, pid, progress, before+1)
	assertProgress(t, pid, progress)
	if got := statusField(t, pid, "TracerPid"); got != "0" {
		st, _ := os.ReadFile("/proc/" + got + "/status")
		t.Fatalf("TracerPid %s after the tracer died:\n%s", got, st)
	}
	if got := statusField(t, pid, "SigBlk"); got != "0000000000000000" {
		t.Fatalf("SigBlk %s after self-cure, want the original empty mask", got)
	}
	// What stays behind: the parasite area, nothing else.
	after := readMaps(t, pid)
	var extra []string
	for _, l := range strings.Split(strings.TrimSpace(after), "\n") {
		if !strings.Contains(maps, l+"\n") {
			extra = append(extra, l)
		}
	}
	for _, l := range extra {
		rng, _, _ := strings.Cut(l, " ")
		lo, hi, _ := strings.Cut(rng, "-")
		a, _ := strconv.ParseUint(lo, 16, 64)
		b, _ := strconv.ParseUint(hi, 16, 64)
		if a < area || b > area+areaLen {
			t.Fatalf("self-cure left a mapping outside the parasite area %#x-%#x: %s", area, area+areaLen, l)
		}
	}
	// The blob unmaps its data, bss and stack on the way out: only its code
	// page and the frame rt_sigreturn read stay.
	var left uint64
	for _, l := range extra {
		rng, _, _ := strings.Cut(l, " ")
		lo, hi, _ := strings.Cut(rng, "-")
		a, _ := strconv.ParseUint(lo, 16, 64)
		b, _ := strconv.ParseUint(hi, 16, 64)
		left += b - a
	}
	frameOff := pageAlign(blobBSSEnd) + stackSize + scratchLen
	if want := pageAlign(blobDataStart) + areaLen - frameOff; left != want {
		t.Errorf("self-cure left %d bytes mapped, want %d (code and frame)", left, want)
	}
	t.Logf("left behind after self-cure:\n%s", strings.Join(extra, "\n"))
	if got := fdLinks(t, pid); got != fds {
		t.Fatalf("fds after self-cure:\n%s\nwant\n%s", got, fds)
	}
}

// TestSelfCureSIGKILL injects from a separate process and SIGKILLs it.
func TestSelfCureSIGKILL(t *testing.T) {
	bin := buildC(t, "vecloop")
	progress := filepath.Join(t.TempDir(), "progress")
	target := startChild(t, bin, progress)
	pid := target.Process.Pid
	waitCounter(t, pid, progress, 3)
	maps := readMaps(t, pid)
	fds := fdLinks(t, pid)

	helper := exec.Command(os.Args[0], "-test.run=^TestInjectorHelper$", "-test.v")
	helper.Env = append(os.Environ(), "GOCKPT_PARASITE_HELPER_TARGET="+strconv.Itoa(pid))
	helper.Stderr = os.Stderr
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	hpid := helper.Process.Pid
	t.Cleanup(func() {
		unix.Kill(hpid, unix.SIGKILL)
		helper.Wait()
	})
	var area, areaLen uint64
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if _, err := fmt.Sscanf(sc.Text(), "injected %x %x", &area, &areaLen); err == nil {
			break
		}
	}
	if area == 0 {
		t.Fatal("helper did not inject")
	}
	before := readCounter(t, progress)
	time.Sleep(100 * time.Millisecond)
	if readCounter(t, progress) != before {
		t.Fatal("the program ran its loop while the parasite held it")
	}
	unix.Kill(hpid, unix.SIGKILL)
	helper.Wait()
	checkSelfCured(t, pid, progress, before, maps, fds, area, areaLen)
}

// TestInjectorHelper is TestSelfCureSIGKILL's gockpt: it injects into the
// task named in its environment, clobbers ymm7 as it starts the blob, and
// waits to be killed.
func TestInjectorHelper(t *testing.T) {
	s := os.Getenv("GOCKPT_PARASITE_HELPER_TARGET")
	if s == "" {
		t.Skip("only run by TestSelfCureSIGKILL")
	}
	pid, _ := strconv.Atoi(s)
	tr := ptrace.NewTracer()
	te, err := tr.Seize(pid)
	if err != nil {
		t.Fatal(err)
	}
	testHookBeforeStart = func(p *Parasite) error { return clobberYmm7(p.leader) }
	p, err := Inject(tr, te, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DumpMisc(); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("injected %x %x\n", p.area, p.areaLen)
	select {}
}

type failingWriter struct{ left int }

func (w *failingWriter) Write(b []byte) (int, error) {
	if len(b) > w.left {
		return 0, errors.New("disk full")
	}
	w.left -= len(b)
	return len(b), nil
}

// TestInjectNoConnection: the blob cannot connect (the listener is gone).
// Inject fails, and the task is as it was: same mappings, same vector
// registers, running its loop.
func TestInjectNoConnection(t *testing.T) {
	bin := buildC(t, "vecloop")
	progress := filepath.Join(t.TempDir(), "progress")
	cmd := startChild(t, bin, progress)
	pid := cmd.Process.Pid
	waitCounter(t, pid, progress, 3)
	maps := readMaps(t, pid)
	tr := newTracer(t)
	te, err := tr.Seize(pid)
	if err != nil {
		t.Fatal(err)
	}
	testHookBeforeStart = func(p *Parasite) error {
		p.ln.Close()
		return clobberYmm7(p.leader)
	}
	defer func() { testHookBeforeStart = nil }()
	_, err = Inject(tr, te, Options{Timeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("task %d: parasite did not connect", pid)) {
		t.Fatalf("Inject without a listener: %v", err)
	}
	t.Log(err)
	if got := readMaps(t, pid); got != maps {
		t.Fatalf("maps after a failed Inject:\n%s\nwant\n%s", got, maps)
	}
	if err := te.Detach(); err != nil {
		t.Fatal(err)
	}
	assertProgress(t, pid, progress)
}

// readFds lists the fds of pid with what they point to.
func readFds(t *testing.T, pid int) []string {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		out = append(out, e.Name()+" "+l)
	}
	return out
}

// slowWriter takes what it is given, pausing before each write.
type slowWriter struct {
	buf    bytes.Buffer
	delay  time.Duration
	writes int
}

func (w *slowWriter) Write(b []byte) (int, error) {
	time.Sleep(w.delay)
	w.writes++
	return w.buf.Write(b)
}
