package restore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/lsm"
	"github.com/gockpt/gockpt/internal/ptrace"
)

// runnerStub starts the restore stub with its runner page, as a restore
// does, and returns a remote driving it through the runner.
func runnerStub(t *testing.T) (*restorer, *remote) {
	t.Helper()
	rs := &restorer{tracer: ptrace.NewTracer(), plan: &Plan{}, opts: Options{LSM: lsm.Detect()}}
	t.Cleanup(rs.tracer.Close)
	if err := rs.startStub(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs.stub.Kill() })
	r := rs.remoteFor(rs.stub.Tracee, rs.stub.Pid)
	if r.runner == 0 {
		t.Fatal("no runner")
	}
	return rs, r
}

// TestRunnerBatch: queued syscalls run in order in one stop, arguments put
// in the scratch area reach them, one that may fail does not end the list,
// and call returns its own result after them.
func TestRunnerBatch(t *testing.T) {
	_, r := runnerStub(t)
	// umask(0o27) queued, then umask(0o22) called: its result is the
	// first's mask, so the first ran before it.
	if err := r.q("umask", unix.SYS_UMASK, 0o27); err != nil {
		t.Fatal(err)
	}
	r.queueMayFail("close a closed fd", unix.SYS_CLOSE, 999)
	// prctl(PR_SET_NAME) reads a string put in the scratch area before.
	name, err := r.str("runner-test")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.q("prctl(PR_SET_NAME)", unix.SYS_PRCTL, unix.PR_SET_NAME, name, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	old, err := r.call("umask", unix.SYS_UMASK, 0o22)
	if err != nil {
		t.Fatal(err)
	}
	if old != 0o27 {
		t.Errorf("umask returned %#o, want 027 (the queued umask did not run first)", old)
	}
	got := make([]byte, 16)
	out, err := r.put(got)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.call("prctl(PR_GET_NAME)", unix.SYS_PRCTL, unix.PR_GET_NAME, out, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	b, err := r.read(out, 16)
	if err != nil {
		t.Fatal(err)
	}
	if s := string(b[:len("runner-test")]); s != "runner-test" {
		t.Errorf("comm %q, want runner-test", s)
	}
	// A list ending in a syscall that may fail is no error when it does.
	r.queueMayFail("close a closed fd", unix.SYS_CLOSE, 999)
	if err := r.flush(); err != nil {
		t.Errorf("flush of a failed close that may fail: %v", err)
	}
}

// TestRunnerError: the first failure ends the list, names the syscall and
// carries its hint; what was queued after it does not run.
func TestRunnerError(t *testing.T) {
	_, r := runnerStub(t)
	if err := r.q("umask", unix.SYS_UMASK, 0o77); err != nil {
		t.Fatal(err)
	}
	if err := r.queue("close(999)", ": a hint for the user", unix.SYS_CLOSE, 999); err != nil {
		t.Fatal(err)
	}
	if err := r.q("umask", unix.SYS_UMASK, 0o11); err != nil {
		t.Fatal(err)
	}
	err := r.flush()
	want := fmt.Sprintf("task %d thread %d: close(999): bad file descriptor: a hint for the user", r.pid, r.te.Tid)
	if err == nil || err.Error() != want {
		t.Fatalf("flush: %v, want %q", err, want)
	}
	if !errors.Is(err, unix.EBADF) {
		t.Errorf("%v does not wrap EBADF", err)
	}
	old, err := r.call("umask", unix.SYS_UMASK, 0)
	if err != nil {
		t.Fatal(err)
	}
	if old != 0o77 {
		t.Errorf("umask %#o, want 077: the entry after the failure ran, or the one before did not", old)
	}
}

// TestRunnerFullList: more syscalls than the list holds run in several
// stops, in order, and arguments beyond the scratch area's size flush what
// is queued before the area is used again.
func TestRunnerFullList(t *testing.T) {
	_, r := runnerStub(t)
	const n = runnerOps*2 + 7
	for i := 0; i < n; i++ {
		// Each umask returns the one before: the last call sees n-1.
		if err := r.q(fmt.Sprintf("umask #%d", i), unix.SYS_UMASK, uint64(i&0o777)); err != nil {
			t.Fatal(err)
		}
	}
	old, err := r.call("umask", unix.SYS_UMASK, 0)
	if err != nil {
		t.Fatal(err)
	}
	if old != uint64((n-1)&0o777) {
		t.Errorf("umask %#o, want %#o", old, (n-1)&0o777)
	}
	// Put more arguments than the area holds: the queued syscalls run
	// before it is used again, each with its own sa_mask; the last one
	// set is what rt_sigaction reads back.
	var want []uint64
	for i := 0; i < int(r.argSize()/16)*3/2; i++ {
		v := uint64(i) << 32
		a, err := r.u64s(0, 0, 0, v&^(1<<(unix.SIGKILL-1)|1<<(unix.SIGSTOP-1)))
		if err != nil {
			t.Fatal(err)
		}
		if err := r.q("rt_sigaction(SIGUSR1)", unix.SYS_RT_SIGACTION, uint64(unix.SIGUSR1), a, 0, 8); err != nil {
			t.Fatal(err)
		}
		want = append(want, v)
	}
	oldp, err := r.put(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.call("rt_sigaction(SIGUSR1) read", unix.SYS_RT_SIGACTION, uint64(unix.SIGUSR1), 0, oldp, 8); err != nil {
		t.Fatal(err)
	}
	b, err := r.read(oldp, 32)
	if err != nil {
		t.Fatal(err)
	}
	if got, w := binary.LittleEndian.Uint64(b[24:]), want[len(want)-1]; got != w {
		t.Errorf("SIGUSR1 mask %#x, want %#x (the last one set)", got, w)
	}
}

// TestRunnerRefs: a syscall takes the result of an earlier one in the same
// list as an argument (the runner resolves it), or of one that ran in an
// earlier list (gockpt passes the value), and value returns each result.
func TestRunnerRefs(t *testing.T) {
	_, r := runnerStub(t)
	name, err := r.str("refs")
	if err != nil {
		t.Fatal(err)
	}
	mfd, err := r.qop("memfd_create", unix.SYS_MEMFD_CREATE, val(name), val(0))
	if err != nil {
		t.Fatal(err)
	}
	high, err := r.qop("fcntl(F_DUPFD)", unix.SYS_FCNTL, mfd.res(), val(unix.F_DUPFD), val(100))
	if err != nil {
		t.Fatal(err)
	}
	seek, err := r.qop("lseek", unix.SYS_LSEEK, high.res(), val(777), val(unix.SEEK_SET))
	if err != nil {
		t.Fatal(err)
	}
	r.qopMayFail("close", unix.SYS_CLOSE, mfd.res())
	if len(r.ops) != 4 {
		t.Fatalf("%d ops queued, want 4 (a ref ran the list early)", len(r.ops))
	}
	h, err := r.value(high)
	if err != nil {
		t.Fatal(err)
	}
	if h < 100 {
		t.Errorf("F_DUPFD gave fd %d, want 100 or more", h)
	}
	if s, _ := r.value(seek); s != 777 {
		t.Errorf("lseek on the dup returned %d, want 777", s)
	}
	// high ran in an earlier list: its value is passed.
	pos, err := r.qop("lseek", unix.SYS_LSEEK, high.res(), val(0), val(unix.SEEK_CUR))
	if err != nil {
		t.Fatal(err)
	}
	if p, err := r.value(pos); err != nil || p != 777 {
		t.Errorf("offset %d (%v), want 777", p, err)
	}
	// The memfd was closed: a ref to the dup survives, one to a failed
	// op that may fail gets its -errno.
	if _, err := r.qop("close", unix.SYS_CLOSE, mfd.res()); err != nil {
		t.Fatal(err)
	}
	if err := r.flush(); err == nil || !errors.Is(err, unix.EBADF) {
		t.Errorf("close of the closed memfd: %v, want EBADF", err)
	}
	// A ref across a full list: the list runs when it is full, the ref
	// then carries the value.
	dup, err := r.qop("dup", unix.SYS_DUP, val(h))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < runnerOps; i++ {
		if err := r.q("umask", unix.SYS_UMASK, 0o22); err != nil {
			t.Fatal(err)
		}
	}
	c, err := r.qop("close the dup", unix.SYS_CLOSE, dup.res())
	if err != nil {
		t.Fatal(err)
	}
	if v, err := r.value(c); err != nil || v != 0 {
		t.Errorf("close of the dup: %d, %v", v, err)
	}
	if _, err := r.qop("self", unix.SYS_CLOSE, op(len(r.results)+len(r.ops)+1).res()); err == nil {
		t.Error("an op took its own result")
	}
}

// TestRunnerCheck: a check sees the result of an op that may fail once the
// list ran, and its error is the flush's.
func TestRunnerCheck(t *testing.T) {
	_, r := runnerStub(t)
	o, err := r.enqueue("close(999)", "", unix.SYS_CLOSE, true, vals([]uint64{999}))
	if err != nil {
		t.Fatal(err)
	}
	var seen uint64
	if err := r.checkResult(o, func(ret uint64) error {
		seen = ret
		return fmt.Errorf("checked %v", ptrace.Errno(ret))
	}); err != nil {
		t.Fatalf("checked before the list ran: %v", err)
	}
	err = r.flush()
	if err == nil || err.Error() != "checked bad file descriptor" {
		t.Errorf("flush: %v, want the check's error", err)
	}
	if ptrace.Errno(seen) != unix.EBADF {
		t.Errorf("check saw %#x, want -EBADF", seen)
	}
	// An op that ran already is checked at once.
	if err := r.checkResult(o, func(uint64) error { return errors.New("now") }); err == nil || err.Error() != "now" {
		t.Errorf("check of an op that ran: %v", err)
	}
}
