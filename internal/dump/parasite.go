package dump

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/parasite"
	"github.com/gockpt/gockpt/internal/proc"
	"github.com/gockpt/gockpt/internal/ptrace"
	pb "github.com/gockpt/gockpt/proto"
)

// withParasite injects the parasite into the task's main thread, runs f
// with it, and cures it, also on error; if gockpt dies meanwhile, the
// parasite cures itself and the watchdog removes what it leaves.
func (d *dumper) withParasite(t *ptrace.Task, f func(p *parasite.Parasite) error) (err error) {
	leader := t.Threads[0]
	p, err := parasite.Inject(leader.Tracer(), leader, parasite.Options{LSM: d.opts.LSM, Watchdog: d.watchdog, Threads: len(t.Threads) - 1})
	if err != nil {
		return fmt.Errorf("task %d: inject parasite: %w", t.Pid, err)
	}
	d.cures = append(d.cures, p.Cure)
	defer func() {
		d.cures = d.cures[:len(d.cures)-1]
		if cerr := p.Cure(); cerr != nil && err == nil {
			err = fmt.Errorf("task %d: cure parasite: %w", t.Pid, cerr)
		}
	}()
	return f(p)
}

// fromParasite reads what only the task can tell: signal handlers,
// itimers, POSIX timers, pdeathsig, dumpable, child subreaper, and per
// thread the tid address and sigaltstack.
func (d *dumper) fromParasite(p *parasite.Parasite, t *ptrace.Task, cores []*pb.CoreEntry, mm *pb.MmEntry) (err error) {
	tc := cores[0].GetTc()
	task, err := p.DumpTask()
	if err != nil {
		return fmt.Errorf("task %d: %w", t.Pid, err)
	}
	sas, its, misc := task.Sigactions, task.Itimers, task.Misc
	if len(sas) < images.SigMax {
		return fmt.Errorf("task %d: sigactions: %d signals from the parasite, want %d", t.Pid, len(sas), images.SigMax)
	}
	for _, sig := range images.SigactionSignals() {
		sa := sas[sig-1]
		tc.Sigactions = append(tc.Sigactions, &pb.SaEntry{
			Sigaction: proto.Uint64(sa.Handler), Flags: proto.Uint64(sa.Flags),
			Restorer: proto.Uint64(sa.Restorer), Mask: proto.Uint64(sa.Mask),
		})
	}
	it := func(i parasite.Itimer) *pb.ItimerEntry {
		return &pb.ItimerEntry{Isec: proto.Uint64(uint64(i.Interval.Sec)), Iusec: proto.Uint64(uint64(i.Interval.Usec)),
			Vsec: proto.Uint64(uint64(i.Value.Sec)), Vusec: proto.Uint64(uint64(i.Value.Usec))}
	}
	tc.Timers = &pb.TaskTimersEntry{Real: it(its[0]), Virt: it(its[1]), Prof: it(its[2])}
	timers, err := proc.ReadTimers(t.Pid)
	if err != nil {
		return fmt.Errorf("task %d: %w", t.Pid, err)
	}
	if len(timers) > 0 {
		ids := make([]int32, len(timers))
		for i, tm := range timers {
			ids[i] = int32(tm.ID)
		}
		vals, err := p.DumpPosixTimers(ids)
		if err != nil {
			return fmt.Errorf("task %d: posix timers: %w", t.Pid, err)
		}
		for i, tm := range timers {
			v := vals[i]
			e := &pb.PosixTimerEntry{
				ItId: proto.Uint32(uint32(tm.ID)), ClockId: proto.Uint32(uint32(tm.ClockID)),
				SiSigno: proto.Uint32(uint32(tm.Signal)), ItSigevNotify: proto.Uint32(sigevNotify(tm)),
				SivalPtr: proto.Uint64(tm.SigevValue), Overrun: proto.Uint32(uint32(v.Overrun)),
				Isec: proto.Uint64(uint64(v.Interval.Sec)), Insec: proto.Uint64(uint64(v.Interval.Nsec)),
				Vsec: proto.Uint64(uint64(v.Value.Sec)), Vnsec: proto.Uint64(uint64(v.Value.Nsec)),
			}
			if tm.ThreadID {
				e.NotifyThreadId = proto.Int32(int32(tm.NotifyPID))
			}
			tc.Timers.Posix = append(tc.Timers.Posix, e)
		}
	}
	err = threadSettingRefusal(d.files.Checker, t.Pid, t.Pid, threadSettings{
		timerSlack: misc.TimerSlack, cpuid: misc.CPUID, mdwe: misc.MDWE, thpDisable: misc.THPDisable})
	if err != nil {
		return err
	}
	if e := ptrace.Errno(misc.Securebits); e != 0 {
		return fmt.Errorf("task %d: prctl(PR_GET_SECUREBITS): %w", t.Pid, e)
	}
	if e := ptrace.Errno(misc.Brk); e != 0 {
		return fmt.Errorf("task %d: brk: %w", t.Pid, e)
	}
	mask, err := membarrierRegistrations(misc.Membarrier, t.Threads[0])
	if err != nil {
		return fmt.Errorf("task %d: %w", t.Pid, err)
	}
	if mask != 0 {
		tc.MembarrierRegistrationMask = proto.Uint32(mask)
	}
	tc.ChildSubreaper = proto.Bool(misc.ChildSubreaper)
	mm.Dumpable = proto.Int32(misc.Dumpable)
	mm.MmBrk = proto.Uint64(misc.Brk)
	mm.ThpDisabled = proto.Bool(misc.THPDisable == 1)
	cores[0].ThreadCore.PdeathSig = proto.Uint32(uint32(misc.Pdeathsig))
	cores[0].ThreadCore.Creds.Secbits = proto.Uint32(uint32(misc.Securebits))
	cores[0].ThreadInfo.ClearTidAddr = proto.Uint64(misc.TidAddress)
	cores[0].ThreadCore.Sas = sasEntry(misc.Altstack)
	tis, err := p.DumpThreads(t.Threads[1:])
	if err != nil {
		return fmt.Errorf("task %d: %w", t.Pid, err)
	}
	for i, ti := range tis {
		if err := threadSettingRefusal(d.files.Checker, t.Pid, ti.Tid, threadSettings{timerSlack: ti.TimerSlack, cpuid: ti.CPUID, mempolicy: ti.Mempolicy}); err != nil {
			return err
		}
		c := cores[i+1]
		c.ThreadCore.Creds.Secbits = proto.Uint32(uint32(ti.Securebits))
		c.ThreadInfo.ClearTidAddr = proto.Uint64(ti.TidAddress)
		c.ThreadCore.Sas = sasEntry(ti.Altstack)
	}
	return nil
}

func sasEntry(s parasite.Stack) *pb.ThreadSasEntry {
	return &pb.ThreadSasEntry{SsSp: proto.Uint64(s.SP), SsSize: proto.Uint64(s.Size), SsFlags: proto.Uint32(uint32(s.Flags))}
}

// sigevNotify turns /proc/PID/timers' notify word into SIGEV_* numbers.
func sigevNotify(t proc.PosixTimer) uint32 {
	const (
		sigevSignal   = 0
		sigevNone     = 1
		sigevThread   = 2
		sigevThreadID = 4
	)
	n := uint32(sigevSignal)
	switch t.Notify {
	case "none":
		n = sigevNone
	case "thread":
		n = sigevThread
	}
	if t.ThreadID {
		n |= sigevThreadID
	}
	return n
}
