package dump

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/gockpt/gockpt/internal/proc"
	"github.com/gockpt/gockpt/internal/ptrace"
	pb "github.com/gockpt/gockpt/proto"
)

// threadCore collects what ptrace and /proc tell about one stopped thread.
// What only the thread itself can tell (sigaltstack, tid address,
// pdeathsig, securebits) is filled in later from the parasite.
func threadCore(pid int, te *ptrace.Tracee, lsmLabel func(tid int) (string, error), filters *seccompChain) (*pb.CoreEntry, error) {
	tid := te.Tid
	regs, err := te.GetRegs()
	if err != nil {
		return nil, err
	}
	xs, err := te.GetXstate()
	if err != nil {
		return nil, err
	}
	tls, err := te.ThreadAreas()
	if err != nil {
		return nil, err
	}
	st, err := proc.ReadTaskStatus(pid, tid)
	if err != nil {
		return nil, fmt.Errorf("task %d thread %d: %w", pid, tid, err)
	}
	sigmask, err := te.GetSigmask()
	if err != nil {
		return nil, err
	}
	head, hlen, err := ptrace.RobustList(tid)
	if err != nil {
		return nil, err
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/comm", pid, tid))
	if err != nil {
		return nil, fmt.Errorf("task %d thread %d: %w", pid, tid, err)
	}
	label, err := lsmLabel(tid)
	if err != nil {
		return nil, fmt.Errorf("task %d thread %d: security label: %w", pid, tid, err)
	}

	creds := &pb.CredsEntry{
		Uid: proto.Uint32(st.Uid[0]), Euid: proto.Uint32(st.Uid[1]), Suid: proto.Uint32(st.Uid[2]), Fsuid: proto.Uint32(st.Uid[3]),
		Gid: proto.Uint32(st.Gid[0]), Egid: proto.Uint32(st.Gid[1]), Sgid: proto.Uint32(st.Gid[2]), Fsgid: proto.Uint32(st.Gid[3]),
		CapInh:     capWords(st.CapInh),
		CapPrm:     capWords(st.CapPrm),
		CapEff:     capWords(st.CapEff),
		CapBnd:     capWords(st.CapBnd),
		CapAmb:     capWords(st.CapAmb),
		Groups:     st.Groups,
		NoNewPrivs: proto.Uint32(boolU32(st.NoNewPrivs)),
	}
	if creds.Groups == nil {
		creds.Groups = []uint32{}
	}
	if label != "" {
		creds.LsmProfile = proto.String(label)
	}

	tc := &pb.ThreadCoreEntry{
		FutexRla:    proto.Uint64(head),
		FutexRlaLen: proto.Uint32(uint32(hlen)),
		BlkSigset:   proto.Uint64(sigmask),
		Creds:       creds,
		Comm:        proto.String(strings.TrimSuffix(string(comm), "\n")),
		SeccompMode: pb.SeccompMode(st.Seccomp).Enum(),
	}
	if pol, err := schedPolicy(tid); err == nil {
		tc.SchedPolicy = proto.Uint32(uint32(pol.policy))
		tc.SchedPrio = proto.Uint32(uint32(pol.prio))
		tc.SchedNice = proto.Int32(int32(pol.nice))
	} else {
		return nil, fmt.Errorf("task %d thread %d: %w", pid, tid, err)
	}
	if st.Seccomp == 2 {
		fs, err := te.SeccompFilters()
		if err != nil {
			return nil, err
		}
		tc.SeccompFilter = proto.Uint32(filters.add(fs))
	}
	rs, err := te.Rseq()
	if err != nil {
		return nil, err
	}
	if rs.RseqAbiPointer != 0 {
		re := &pb.RseqEntry{
			RseqAbiPointer: proto.Uint64(rs.RseqAbiPointer),
			RseqAbiSize:    proto.Uint32(rs.RseqAbiSize),
			Signature:      proto.Uint32(rs.Signature),
		}
		// rseq_cs (offset 8) is set while the thread is inside a critical
		// section; restore needs it to abort the section correctly.
		var cs [8]byte
		if err := ptrace.ReadMem(pid, rs.RseqAbiPointer+8, cs[:]); err == nil {
			if v := binary.LittleEndian.Uint64(cs[:]); v != 0 {
				re.RseqCsPointer = proto.Uint64(v)
			}
		}
		tc.RseqEntry = re
	}

	restartSyscall(&regs, pid, tid)
	ti := &pb.ThreadInfoX86{
		ClearTidAddr: proto.Uint64(0),
		Gpregs:       gpregsEntry(&regs),
		Fpregs:       fpregsEntry(xs),
	}
	for i, d := range tls {
		ti.Tls = append(ti.Tls, userDesc(uint32(ptrace.TLSMinEntry+i), d))
	}
	return &pb.CoreEntry{
		Mtype:      pb.CoreEntry_X86_64.Enum(),
		ThreadInfo: ti,
		ThreadCore: tc,
	}, nil
}

// userDesc unpacks struct user_desc's bitfields into CRIU's user_desc_t.
func userDesc(entry uint32, d ptrace.UserDesc) *pb.UserDescT {
	bit := func(n uint) bool { return d.Flags&(1<<n) != 0 }
	return &pb.UserDescT{
		EntryNumber:   proto.Uint32(entry),
		BaseAddr:      proto.Uint32(d.BaseAddr),
		Limit:         proto.Uint32(d.Limit),
		Seg_32Bit:     proto.Bool(bit(0)),
		ContentsH:     proto.Bool(bit(2)),
		ContentsL:     proto.Bool(bit(1)),
		ReadExecOnly:  proto.Bool(bit(3)),
		LimitInPages:  proto.Bool(bit(4)),
		SegNotPresent: proto.Bool(bit(5)),
		Usable:        proto.Bool(bit(6)),
	}
}

func signalQueue(infos [][]byte) *pb.SignalQueueEntry {
	q := &pb.SignalQueueEntry{}
	for _, si := range infos {
		q.Signals = append(q.Signals, &pb.SiginfoEntry{Siginfo: si})
	}
	return q
}

// capWords splits a 64-bit capability set into CRIU's two u32 words.
func capWords(c uint64) []uint32 { return []uint32{uint32(c), uint32(c >> 32)} }

func boolU32(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

type sched struct{ policy, prio, nice int }

func schedPolicy(tid int) (sched, error) {
	pol, _, e := unix.RawSyscall(unix.SYS_SCHED_GETSCHEDULER, uintptr(tid), 0, 0)
	if e != 0 {
		return sched{}, fmt.Errorf("sched_getscheduler: %w", e)
	}
	prio, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
	if err != nil {
		return sched{}, fmt.Errorf("getpriority: %w", err)
	}
	// The policy keeps SCHED_RESET_ON_FORK, as CRIU records it:
	// sched_setscheduler takes it back the same way.
	s := sched{policy: int(pol), nice: 20 - prio}
	if rt := s.policy &^ unix.SCHED_RESET_ON_FORK; rt == unix.SCHED_FIFO || rt == unix.SCHED_RR {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", tid))
		if err == nil {
			// rt_priority is field 40.
			if i := bytes.LastIndexByte(b, ')'); i > 0 {
				f := strings.Fields(string(b[i+1:]))
				if len(f) > 37 {
					s.prio, _ = strconv.Atoi(f[37])
				}
			}
		}
	}
	return s, nil
}

// seccompChain stores the seccomp filters of all threads once each, chained
// as CRIU's seccomp.img does: a thread's seccomp_filter is the 0-based index
// of its innermost (newest) filter, each entry's prev the index of the
// filter installed before it; the first one installed has no prev.
type seccompChain struct {
	entries []*pb.SeccompFilter
}

// add records a thread's filters (innermost first, as ptrace lists them)
// and returns the index of the innermost one.
func (c *seccompChain) add(filters [][]byte) uint32 {
	var prev *uint32
	for i := len(filters) - 1; i >= 0; i-- {
		found := -1
		for j, e := range c.entries {
			if samePrev(e.Prev, prev) && bytes.Equal(e.GetFilter(), filters[i]) {
				found = j
				break
			}
		}
		if found < 0 {
			c.entries = append(c.entries, &pb.SeccompFilter{Filter: filters[i], Prev: prev, Flags: proto.Uint32(0)})
			found = len(c.entries) - 1
		}
		prev = proto.Uint32(uint32(found))
	}
	return *prev
}

func samePrev(a, b *uint32) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}

// rlimits reads the task's resource limits from /proc/PID/limits: prlimit on
// a task of another user needs CAP_SYS_RESOURCE, which gockpt may lack.
func rlimits(pid int) (*pb.TaskRlimitsEntry, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		return nil, fmt.Errorf("task %d: %w", pid, err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	out := &pb.TaskRlimitsEntry{}
	for i, l := range lines[1:] { // lines follow RLIMIT_* order after a header
		f := strings.Fields(l)
		var vals []uint64
		for _, w := range f {
			if w == "unlimited" {
				vals = append(vals, ^uint64(0))
			} else if n, err := strconv.ParseUint(w, 10, 64); err == nil {
				vals = append(vals, n)
			}
			if len(vals) == 2 {
				break
			}
		}
		if len(vals) != 2 {
			return nil, fmt.Errorf("/proc/%d/limits:%d: cannot read limits from %q", pid, i+2, l)
		}
		out.Rlimits = append(out.Rlimits, &pb.RlimitEntry{Cur: proto.Uint64(vals[0]), Max: proto.Uint64(vals[1])})
	}
	return out, nil
}

// readIntFile reads a /proc file holding one number in the given base.
func readIntFile(path string, base int) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), base, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}
