package restore

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/ptrace"
	pb "github.com/gockpt/gockpt/proto"
)

const (
	prSetName            = 15
	prSetPdeathsig       = 1
	prSetDumpable        = 4
	prSetChildSubreaper  = 36
	prSetSecurebits      = 28
	prCapbsetDrop        = 24
	prCapAmbient         = 47
	prCapAmbientRaise    = 2
	prCapAmbientClearAll = 4
	prSetNoNewPrivs      = 38
	prTimerCreateRestore = 77
	secbitNoSetuidFixup  = 1 << 2
	secbitKeepCaps       = 1 << 4
	linuxCapabilityV3    = 0x20080522
	lastCap              = 40 // CAP_CHECKPOINT_RESTORE
	rlimitCount          = 16
	ssDisable            = 2
)

// restoreFS sets the task's root, cwd and umask.
func (rs *restorer) restoreFS(t *Task, r *remote) error {
	path := func(id uint32, what string) (string, error) {
		reg := rs.plan.Files[id].GetReg()
		if reg == nil {
			return "", fmt.Errorf("task %d: %s file id %d is not in files.img", t.Pid, what, id)
		}
		return reg.GetName(), nil
	}
	root, err := path(t.FS.GetRootId(), "root")
	if err != nil {
		return err
	}
	cwd, err := path(t.FS.GetCwdId(), "cwd")
	if err != nil {
		return err
	}
	// The root first, through an fd (a child of a chrooted parent starts
	// inside its parent's root), then the cwd, which may lie outside it.
	if ok, err := rs.remappedDir(t, r, t.FS.GetRootId(), "root directory"); err != nil {
		return err
	} else if ok {
		// A deleted root: entered above, made the root here.
		dot, err := r.str(".")
		if err != nil {
			return err
		}
		if err := r.q("chroot to the deleted root", unix.SYS_CHROOT, dot); err != nil {
			return err
		}
	} else if root != "/" || t.Parent != nil && rs.chrooted(t.Parent) {
		if err := rs.enterDir(r, "root", root, true); err != nil {
			return err
		}
	}
	if ok, err := rs.remappedDir(t, r, t.FS.GetCwdId(), "working directory"); err != nil {
		return err
	} else if !ok {
		if err := rs.enterDir(r, "cwd", cwd, false); err != nil {
			return fmt.Errorf("%w (the working directory must exist at restore)", err)
		}
	}
	if t.FS.Umask != nil {
		if err := r.q("umask", unix.SYS_UMASK, uint64(t.FS.GetUmask())); err != nil {
			return err
		}
	}
	return nil
}

// chrooted tells whether task t's root is not gockpt's.
func (rs *restorer) chrooted(t *Task) bool {
	reg := rs.plan.Files[t.FS.GetRootId()].GetReg()
	return reg != nil && reg.GetName() != "/" || rs.opener.Remapped(t.FS.GetRootId())
}

// restoreTaskState puts back handlers, itimers, rlimits, personality,
// task-wide prctl state, oom_score_adj and loginuid. POSIX timers come
// once the threads exist (restorePosixTimers): one may signal a thread.
func (rs *restorer) restoreTaskState(t *Task, r *remote) error {
	tc := t.Core().GetTc()
	sigs := images.SigactionSignals()
	for i, sa := range tc.GetSigactions() {
		sig := uint64(sigs[i]) // LoadPlan checked the count
		// struct kernel_sigaction: handler, flags, restorer, mask.
		a, err := r.u64s(sa.GetSigaction(), sa.GetFlags(), sa.GetRestorer(), sa.GetMask())
		if err != nil {
			return err
		}
		if err := r.q(fmt.Sprintf("rt_sigaction(%d)", sig), unix.SYS_RT_SIGACTION, sig, a, 0, 8); err != nil {
			return err
		}
	}
	if tm := tc.GetTimers(); tm != nil {
		for which, it := range []*pb.ItimerEntry{tm.GetReal(), tm.GetVirt(), tm.GetProf()} {
			if it == nil || it.GetVsec() == 0 && it.GetVusec() == 0 && it.GetIsec() == 0 && it.GetIusec() == 0 {
				continue
			}
			// A value of 0 with an interval: the timer expired while the
			// task was frozen, its signal is pending, and the kernel would
			// re-arm it when the task takes the signal. setitimer with value
			// 0 would disarm it for good, so let it expire again at once:
			// the second signal merges with the pending one.
			vsec, vusec := it.GetVsec(), it.GetVusec()
			if vsec == 0 && vusec == 0 {
				vusec = 1
			}
			v, err := r.u64s(it.GetIsec(), it.GetIusec(), vsec, vusec)
			if err != nil {
				return err
			}
			if err := r.q(fmt.Sprintf("setitimer(%d)", which), unix.SYS_SETITIMER, uint64(which), v, 0); err != nil {
				return err
			}
		}
	}
	for i, rl := range tc.GetRlimits().GetRlimits() {
		if i >= rlimitCount {
			break
		}
		v, err := r.u64s(rl.GetCur(), rl.GetMax())
		if err != nil {
			return err
		}
		if err := r.queue(fmt.Sprintf("prlimit(resource %d, %d/%d)", i, rl.GetCur(), rl.GetMax()),
			": gockpt's own hard limit must be at least the dumped one (raising a hard limit needs CAP_SYS_RESOURCE)",
			unix.SYS_PRLIMIT64, 0, uint64(i), v, 0); err != nil {
			return err
		}
	}
	if err := r.q("personality", unix.SYS_PERSONALITY, uint64(tc.GetPersonality())); err != nil {
		return err
	}
	if tc.GetChildSubreaper() {
		if err := r.q("prctl(PR_SET_CHILD_SUBREAPER)", unix.SYS_PRCTL, prSetChildSubreaper, 1, 0, 0, 0); err != nil {
			return err
		}
	}
	if d := t.MM.Dumpable; d != nil {
		if err := r.q("prctl(PR_SET_DUMPABLE)", unix.SYS_PRCTL, prSetDumpable, uint64(*d), 0, 0, 0); err != nil {
			return err
		}
	}
	if err := restoreOomScoreAdj(t); err != nil {
		return err
	}
	return restoreLoginuid(t, r)
}

// restorePosixTimers recreates timers with their IDs (PR_TIMER_CREATE_RESTORE_IDS,
// Linux 6.16+) and arms them as they were. It runs once the task's threads
// exist: a SIGEV_THREAD_ID timer names its thread, which timer_create
// checks.
func (rs *restorer) restorePosixTimers(t *Task, r *remote, timers []*pb.PosixTimerEntry) error {
	if len(timers) == 0 {
		return nil
	}
	if err := r.queue("prctl(PR_TIMER_CREATE_RESTORE_IDS, on)", ": restoring POSIX timer IDs needs Linux 6.16 or later",
		unix.SYS_PRCTL, prTimerCreateRestore, 1, 0, 0, 0); err != nil {
		return err
	}
	for _, tm := range timers {
		// struct sigevent: sigev_value, sigev_signo, sigev_notify, tid.
		ev := make([]byte, 64)
		binary.LittleEndian.PutUint64(ev[0:], tm.GetSivalPtr())
		binary.LittleEndian.PutUint32(ev[8:], tm.GetSiSigno())
		binary.LittleEndian.PutUint32(ev[12:], tm.GetItSigevNotify())
		binary.LittleEndian.PutUint32(ev[16:], uint32(tm.GetNotifyThreadId()))
		evp, err := r.put(ev)
		if err != nil {
			return err
		}
		idp, err := r.u64s(uint64(tm.GetItId()))
		if err != nil {
			return err
		}
		if err := r.q(fmt.Sprintf("timer_create(id %d)", tm.GetItId()), sysTimerCreate, uint64(tm.GetClockId()), evp, idp); err != nil {
			return err
		}
		// Expired while frozen (value 0, an interval): let it expire again
		// at once, as the itimers do; its pending signal is left out of
		// the queue (rearmedTimer), the kernel makes a fresh one.
		vsec, vnsec := tm.GetVsec(), tm.GetVnsec()
		if vsec == 0 && vnsec == 0 && (tm.GetIsec() != 0 || tm.GetInsec() != 0) {
			vnsec = 1
			rs.rearmed[timerKey{r.pid, int32(tm.GetItId())}] = true
		}
		spec, err := r.u64s(tm.GetIsec(), tm.GetInsec(), vsec, vnsec)
		if err != nil {
			return err
		}
		if err := r.q(fmt.Sprintf("timer_settime(id %d)", tm.GetItId()), sysTimerSettime, uint64(tm.GetItId()), 0, spec, 0); err != nil {
			return err
		}
	}
	_, err := r.call("prctl(PR_TIMER_CREATE_RESTORE_IDS, off)", unix.SYS_PRCTL, prTimerCreateRestore, 0, 0, 0, 0)
	return err
}

// siTimer is the si_code of POSIX timer signals.
const siTimer = -2

// timerKey names a POSIX timer of a task.
type timerKey struct {
	pid int
	id  int32
}

// queueSignals puts back pending signals: shared ones to the process,
// per-thread ones to their thread, queued on r: the caller flushes.
func (rs *restorer) queueSignals(r *remote, tid int, q *pb.SignalQueueEntry, shared bool) error {
	for _, s := range q.GetSignals() {
		si := s.GetSiginfo()
		if len(si) < 4 {
			return fmt.Errorf("task %d: a pending signal's siginfo is %d bytes", r.pid, len(si))
		}
		sig := uint64(binary.LittleEndian.Uint32(si))
		if sig == uint64(unix.SIGTRAP) && r.runner != 0 {
			// The runner stops on int3, which would take a pending
			// SIGTRAP's place: it is queued once the runner is done
			// with the task (trapFixups).
			rs.lateTraps[r.pid] = append(rs.lateTraps[r.pid], lateTrap{tid: tid, si: si, shared: shared})
			continue
		}
		if code := int32(binary.LittleEndian.Uint32(si[8:])); code == siTimer && len(si) >= 20 &&
			rs.rearmed[timerKey{r.pid, int32(binary.LittleEndian.Uint32(si[16:]))}] {
			continue // the re-armed timer sends its own
		}
		p, err := r.put(si)
		if err != nil {
			return err
		}
		if shared {
			err = r.q(fmt.Sprintf("rt_sigqueueinfo(%d)", sig), unix.SYS_RT_SIGQUEUEINFO, uint64(r.pid), sig, p)
		} else {
			err = r.q(fmt.Sprintf("rt_tgsigqueueinfo(%d, %d)", tid, sig), unix.SYS_RT_TGSIGQUEUEINFO, uint64(r.pid), uint64(tid), sig, p)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// lateTrap is a pending SIGTRAP kept for trapFixups.
type lateTrap struct {
	tid    int
	si     []byte
	shared bool
}

// trapFixups puts back what the restore runner changed in the task: its
// int3 resets the SIGTRAP action to the default (the kernel does so for a
// trap it forces while SIGTRAP is blocked, as it is while the runner runs),
// and pending SIGTRAPs were kept out of the queue while it ran. r must no
// longer use the runner: each syscall is injected on its own, with no trap.
func (rs *restorer) trapFixups(t *Task, r *remote) error {
	if r.runner != 0 {
		return fmt.Errorf("task %d: SIGTRAP state put back while the runner is still in use", t.Pid)
	}
	sigs := images.SigactionSignals()
	for i, sa := range t.Core().GetTc().GetSigactions() {
		if sigs[i] != int(unix.SIGTRAP) || sa.GetSigaction() == 0 {
			// The int3 the runner stops at puts back SIG_DFL and
			// nothing else: a default action is in place already.
			continue
		}
		a, err := r.u64s(sa.GetSigaction(), sa.GetFlags(), sa.GetRestorer(), sa.GetMask())
		if err != nil {
			return err
		}
		if _, err := r.call("rt_sigaction(SIGTRAP)", unix.SYS_RT_SIGACTION, uint64(unix.SIGTRAP), a, 0, 8); err != nil {
			return err
		}
	}
	for _, lt := range rs.lateTraps[t.Pid] {
		p, err := r.put(lt.si)
		if err != nil {
			return err
		}
		if lt.shared {
			_, err = r.call("rt_sigqueueinfo(SIGTRAP)", unix.SYS_RT_SIGQUEUEINFO, uint64(t.Pid), uint64(unix.SIGTRAP), p)
		} else {
			_, err = r.call(fmt.Sprintf("rt_tgsigqueueinfo(%d, SIGTRAP)", lt.tid), unix.SYS_RT_TGSIGQUEUEINFO, uint64(t.Pid), uint64(lt.tid), uint64(unix.SIGTRAP), p)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// threadState restores what each thread has of its own, injected in that
// thread: comm, sigaltstack, robust list, tid address, rseq, pdeathsig.
// The syscalls stay queued on r: the caller flushes.
func (rs *restorer) threadState(r *remote, c *pb.CoreEntry) error {
	tc := c.GetThreadCore()
	if comm := tc.GetComm(); comm != "" {
		p, err := r.str(comm)
		if err != nil {
			return err
		}
		if err := r.q("prctl(PR_SET_NAME)", unix.SYS_PRCTL, prSetName, p, 0, 0, 0); err != nil {
			return err
		}
	}
	if sas := tc.GetSas(); sas != nil && sas.GetSsFlags()&ssDisable == 0 {
		p, err := r.u64s(sas.GetSsSp(), uint64(sas.GetSsFlags()), sas.GetSsSize())
		if err != nil {
			return err
		}
		if err := r.q("sigaltstack", unix.SYS_SIGALTSTACK, p, 0); err != nil {
			return err
		}
	}
	if head := tc.GetFutexRla(); head != 0 {
		if err := r.q("set_robust_list", unix.SYS_SET_ROBUST_LIST, head, uint64(tc.GetFutexRlaLen())); err != nil {
			return err
		}
	}
	if err := r.q("set_tid_address", unix.SYS_SET_TID_ADDRESS, c.GetThreadInfo().GetClearTidAddr()); err != nil {
		return err
	}
	if s := tc.GetPdeathSig(); s != 0 {
		if err := r.q("prctl(PR_SET_PDEATHSIG)", unix.SYS_PRCTL, prSetPdeathsig, uint64(s), 0, 0, 0); err != nil {
			return err
		}
	}
	if rseq := tc.GetRseqEntry(); rseq.GetRseqAbiPointer() != 0 {
		if err := r.q("rseq", sysRseq, rseq.GetRseqAbiPointer(), uint64(rseq.GetRseqAbiSize()), 0, uint64(rseq.GetSignature())); err != nil {
			return err
		}
		// A thread dumped inside an rseq critical section had rseq_cs set;
		// the kernel aborts such sections on the next preemption.
		if cs := rseq.GetRseqCsPointer(); cs != 0 {
			if err := r.flush(); err != nil {
				return err
			}
			var b [8]byte
			binary.LittleEndian.PutUint64(b[:], cs)
			if err := ptrace.WriteMem(r.pid, rseq.GetRseqAbiPointer()+8, b[:]); err != nil {
				return err
			}
		}
	}
	if tc.GetSchedPolicy() != 0 || tc.GetSchedPrio() != 0 {
		p, err := r.u64s(uint64(tc.GetSchedPrio()))
		if err != nil {
			return err
		}
		if err := r.q("sched_setscheduler", unix.SYS_SCHED_SETSCHEDULER, 0, uint64(tc.GetSchedPolicy()), p); err != nil {
			return err
		}
	}
	if n := tc.GetSchedNice(); n != 0 {
		if err := r.q("setpriority", unix.SYS_SETPRIORITY, unix.PRIO_PROCESS, 0, uint64(int64(n))); err != nil {
			return err
		}
	}
	return nil
}

// restoreCreds gives one thread its credentials. The order matters: the
// bounding set and securebits need CAP_SETPCAP, which the thread holds until
// the final capset; NO_SETUID_FIXUP keeps the uid changes from touching
// capabilities in between.
func (rs *restorer) restoreCreds(r *remote, c *pb.CredsEntry) error {
	if c == nil {
		return nil
	}
	if err := r.q("prctl(PR_SET_SECUREBITS)", unix.SYS_PRCTL, prSetSecurebits, secbitNoSetuidFixup|secbitKeepCaps, 0, 0, 0); err != nil {
		return err
	}
	bnd := capSet(c.GetCapBnd())
	for cap := uint64(0); cap <= lastCap; cap++ {
		if bnd&(1<<cap) == 0 {
			if err := r.q(fmt.Sprintf("prctl(PR_CAPBSET_DROP, %d)", cap), unix.SYS_PRCTL, prCapbsetDrop, cap, 0, 0, 0); err != nil {
				return err
			}
		}
	}
	groups := make([]byte, 4*len(c.GetGroups()))
	for i, g := range c.GetGroups() {
		binary.LittleEndian.PutUint32(groups[i*4:], g)
	}
	gp, err := r.put(groups)
	if err != nil {
		return err
	}
	if err := r.q("setgroups", unix.SYS_SETGROUPS, uint64(len(c.GetGroups())), gp); err != nil {
		return err
	}
	if err := r.q("setresgid", unix.SYS_SETRESGID, uint64(c.GetGid()), uint64(c.GetEgid()), uint64(c.GetSgid())); err != nil {
		return err
	}
	if err := r.q("setfsgid", unix.SYS_SETFSGID, uint64(c.GetFsgid())); err != nil {
		return err
	}
	if err := r.q("setresuid", unix.SYS_SETRESUID, uint64(c.GetUid()), uint64(c.GetEuid()), uint64(c.GetSuid())); err != nil {
		return err
	}
	if err := r.q("setfsuid", unix.SYS_SETFSUID, uint64(c.GetFsuid())); err != nil {
		return err
	}
	inh, prm, eff := capSet(c.GetCapInh()), capSet(c.GetCapPrm()), capSet(c.GetCapEff())
	// Inheritable first, with what the thread holds now kept, so that
	// ambient capabilities can be raised; then securebits; then the final
	// sets.
	_, curPrm, curEff, err := rs.capget(r)
	if err != nil {
		return err
	}
	if err := rs.capset(r, inh, curPrm, curEff); err != nil {
		return err
	}
	if err := r.q("prctl(PR_CAP_AMBIENT_CLEAR_ALL)", unix.SYS_PRCTL, prCapAmbient, prCapAmbientClearAll, 0, 0, 0); err != nil {
		return err
	}
	amb := capSet(c.GetCapAmb())
	for cap := uint64(0); cap <= lastCap; cap++ {
		if amb&(1<<cap) != 0 {
			if err := r.q(fmt.Sprintf("prctl(PR_CAP_AMBIENT_RAISE, %d)", cap), unix.SYS_PRCTL, prCapAmbient, prCapAmbientRaise, cap, 0, 0); err != nil {
				return err
			}
		}
	}
	if err := r.q("prctl(PR_SET_SECUREBITS)", unix.SYS_PRCTL, prSetSecurebits, uint64(c.GetSecbits()), 0, 0, 0); err != nil {
		return err
	}
	if err := rs.capset(r, inh, prm, eff); err != nil {
		return err
	}
	if c.GetNoNewPrivs() != 0 {
		if err := r.q("prctl(PR_SET_NO_NEW_PRIVS)", unix.SYS_PRCTL, prSetNoNewPrivs, 1, 0, 0, 0); err != nil {
			return err
		}
	}
	return r.flush()
}

func capSet(words []uint32) uint64 {
	var v uint64
	for i, w := range words {
		if i < 2 {
			v |= uint64(w) << (32 * i)
		}
	}
	return v
}

// capget reads the thread's own capability sets.
func (rs *restorer) capget(r *remote) (inh, prm, eff uint64, err error) {
	hdr := make([]byte, 8)
	binary.LittleEndian.PutUint32(hdr[0:], linuxCapabilityV3)
	hp, err := r.put(hdr)
	if err != nil {
		return 0, 0, 0, err
	}
	dp, err := r.put(make([]byte, 24))
	if err != nil {
		return 0, 0, 0, err
	}
	if _, err := r.call("capget", unix.SYS_CAPGET, hp, dp); err != nil {
		return 0, 0, 0, err
	}
	data, err := r.read(dp, 24)
	if err != nil {
		return 0, 0, 0, err
	}
	for i := 0; i < 2; i++ {
		eff |= uint64(binary.LittleEndian.Uint32(data[i*12+0:])) << (32 * i)
		prm |= uint64(binary.LittleEndian.Uint32(data[i*12+4:])) << (32 * i)
		inh |= uint64(binary.LittleEndian.Uint32(data[i*12+8:])) << (32 * i)
	}
	return inh, prm, eff, nil
}

// capset sets the calling thread's capabilities (v3: two 32-bit words).
func (rs *restorer) capset(r *remote, inh, prm, eff uint64) error {
	hdr := make([]byte, 8)
	binary.LittleEndian.PutUint32(hdr[0:], linuxCapabilityV3)
	hp, err := r.put(hdr)
	if err != nil {
		return err
	}
	data := make([]byte, 24)
	for i := 0; i < 2; i++ {
		binary.LittleEndian.PutUint32(data[i*12+0:], uint32(eff>>(32*i)))
		binary.LittleEndian.PutUint32(data[i*12+4:], uint32(prm>>(32*i)))
		binary.LittleEndian.PutUint32(data[i*12+8:], uint32(inh>>(32*i)))
	}
	dp, err := r.put(data)
	if err != nil {
		return err
	}
	return r.q("capset", unix.SYS_CAPSET, hp, dp)
}

// finalRegisters sets a thread's registers, vector state, TLS slots and
// signal mask as they were at dump.
func finalRegisters(te *ptrace.Tracee, c *pb.CoreEntry) error {
	regs := imageRegs(c.GetThreadInfo())
	if err := setFPState(te, c.GetThreadInfo()); err != nil {
		return err
	}
	for _, d := range c.GetThreadInfo().GetTls() {
		if d.GetBaseAddr() == 0 && d.GetLimit() == 0 && d.GetSegNotPresent() {
			continue
		}
		var flags uint32
		for i, b := range []bool{d.GetSeg_32Bit(), d.GetContentsL(), d.GetContentsH(), d.GetReadExecOnly(), d.GetLimitInPages(), d.GetSegNotPresent(), d.GetUsable()} {
			if b {
				flags |= 1 << i
			}
		}
		if err := te.SetThreadArea(ptrace.UserDesc{EntryNumber: d.GetEntryNumber(), BaseAddr: d.GetBaseAddr(), Limit: d.GetLimit(), Flags: flags}); err != nil {
			return err
		}
	}
	// The main thread's mask is its task core's, as CRIU writes it (its
	// thread core has none); every other thread's is its thread core's.
	mask := c.GetThreadCore().GetBlkSigset()
	if c.GetTc() != nil {
		mask = c.GetTc().GetBlkSigset()
	}
	if err := te.SetSigmask(mask); err != nil {
		return err
	}
	return te.SetRegs(&regs)
}
