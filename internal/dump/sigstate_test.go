package dump

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/proc"
	"github.com/gockpt/gockpt/internal/testproc"
	pb "github.com/gockpt/gockpt/proto"
)

// TestDumpSignalState checks what the parasite reads: handlers, itimers,
// POSIX timers, sigaltstacks per thread, and what ptrace reads: blocked and
// pending signals.
func TestDumpSignalState(t *testing.T) {
	bin := testproc.BuildC(t, "testdata/sigstate.c", "-lrt")
	dir := t.TempDir()
	p := testproc.Start(t, bin, dir)
	testproc.WaitFile(t, filepath.Join(dir, "ready"), 10*time.Second)
	raw, _ := os.ReadFile(filepath.Join(dir, "ready"))
	var handler, alt, thAlt, timerID uint64
	if _, err := fmt.Sscanf(string(raw), "%x %x %x %x", &handler, &alt, &thAlt, &timerID); err != nil {
		t.Fatal(err)
	}
	// ready is written just before sigsuspend: dump once the task is in it
	// (/proc shows the call's mask, with SIGWINCH), or the test proves
	// nothing. (Not after the dump: the parasite interrupts the call, which
	// the kernel restarts, with the task's own mask for a moment between.)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if st, err := proc.ReadStatus(p.Pid); err == nil && st.SigBlk&(1<<(syscall.SIGWINCH-1)) != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the task did not enter sigsuspend")
		}
	}
	d := dumpLeaveRunning(t, p.Pid)
	if !testproc.Alive(p.Pid) {
		t.Fatal("target died")
	}
	var core pb.CoreEntry
	if err := d.ReadOne(images.CoreFile(p.Pid), &core); err != nil {
		t.Fatal(err)
	}
	tc := core.GetTc()
	sas := tc.GetSigactions()
	if len(sas) != 62 {
		t.Fatalf("%d sigactions, want 62 (CRIU's: signals 1 to 64 without SIGKILL and SIGSTOP)", len(sas))
	}
	usr1 := sas[images.SigactionIndex(int(syscall.SIGUSR1))]
	if usr1.GetSigaction() != handler {
		t.Errorf("SIGUSR1 handler %#x, want %#x", usr1.GetSigaction(), handler)
	}
	const saRestart = 0x10000000
	if usr1.GetFlags()&saRestart == 0 {
		t.Errorf("SIGUSR1 flags %#x lack SA_RESTART", usr1.GetFlags())
	}
	if usr1.GetMask() != 1<<(syscall.SIGUSR2-1) {
		t.Errorf("SIGUSR1 mask %#x, want SIGUSR2", usr1.GetMask())
	}
	if usr2 := sas[images.SigactionIndex(int(syscall.SIGUSR2))]; usr2.GetSigaction() != 1 { // SIG_IGN
		t.Errorf("SIGUSR2 action %#x, want SIG_IGN", usr2.GetSigaction())
	}
	real := tc.GetTimers().GetReal()
	if real.GetIsec() != 100 || real.GetVsec() == 0 || real.GetVsec() > 100 {
		t.Errorf("ITIMER_REAL %v", real)
	}
	posix := tc.GetTimers().GetPosix()
	if len(posix) != 1 {
		t.Fatalf("%d POSIX timers, want 1", len(posix))
	}
	pt := posix[0]
	if uint64(pt.GetItId()) != timerID || pt.GetClockId() != 1 || pt.GetIsec() != 50 || pt.GetVsec() == 0 || pt.GetSivalPtr() != 0x1234 || pt.GetSiSigno() != 34 {
		t.Errorf("POSIX timer %v", pt)
	}
	if s := core.GetThreadCore().GetSas(); s.GetSsSp() != alt || s.GetSsSize() != 65536 {
		t.Errorf("main thread sigaltstack %v, want sp %#x", s, alt)
	}
	if core.GetThreadInfo().GetClearTidAddr() == 0 {
		t.Error("main thread tid address is 0; glibc sets one")
	}
	// SIGQUIT: blocked, and pending for the process. The main thread's
	// mask is the one it returns to from sigsuspend, in its thread core
	// and its task core alike (CRIU restores the task core's), not the
	// call's own that /proc shows.
	const quit = 1 << (syscall.SIGQUIT - 1)
	if m := core.GetThreadCore().GetBlkSigset(); m != quit {
		t.Errorf("thread core blocked mask %#x, want SIGQUIT alone (%#x)", m, quit)
	}
	if m := tc.GetBlkSigset(); m != quit {
		t.Errorf("task core blocked mask %#x, want SIGQUIT alone (%#x)", m, quit)
	}
	var pending []uint32
	for _, s := range append(tc.GetSignalsS().GetSignals(), core.GetThreadCore().GetSignalsP().GetSignals()...) {
		pending = append(pending, binary.LittleEndian.Uint32(s.GetSiginfo()))
	}
	if len(pending) != 1 || pending[0] != uint32(syscall.SIGQUIT) {
		t.Errorf("pending signals %v, want [SIGQUIT]", pending)
	}
	// The other thread's own sigaltstack.
	rd, _ := d.Open("pstree.img")
	var pe pb.PstreeEntry
	rd.ReadEntry(&pe)
	rd.Close()
	tids := pe.GetThreads()
	sort.Slice(tids, func(i, j int) bool { return tids[i] < tids[j] })
	if len(tids) != 2 {
		t.Fatalf("threads %v", tids)
	}
	var other pb.CoreEntry
	if err := d.ReadOne(images.CoreFile(int(tids[1])), &other); err != nil {
		t.Fatal(err)
	}
	if s := other.GetThreadCore().GetSas(); s.GetSsSp() != thAlt || s.GetSsSize() != 32768 {
		t.Errorf("second thread sigaltstack %v, want sp %#x", s, thAlt)
	}
	if other.GetThreadInfo().GetClearTidAddr() == 0 {
		t.Error("second thread tid address is 0")
	}
}
