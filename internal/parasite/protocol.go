package parasite

import (
	"encoding/binary"
	"fmt"
	"syscall"
)

// Wire constants; blob/protocol.h is the other half.
const (
	protoMagic   = 0x54504b47 // "GKPT"
	protoVersion = 2
	argsMagic    = 0x41504b47 // "GKPA"
	maxMsg       = 65536
	hdrSize      = 16
	argsSize     = 192 // struct gk_args
	argsMemfd    = 184 // offsetof(struct gk_args, memfd)
	argsStatus   = 136 // offsetof(struct gk_args, status)
	argsSock     = 20  // offsetof(struct gk_args, sock)
)

type command uint16

const (
	cmdSigactions   command = 1
	cmdItimers      command = 2
	cmdPosixTimers  command = 3
	cmdMisc         command = 4
	cmdPages        command = 5
	cmdFini         command = 6
	cmdPark         command = 7
	cmdTask         command = 8
	sigactionSize           = 32
	itimerSize              = 32
	posixTimerSize          = 40
	miscSize                = 104
	rangeSize               = 16
	countSize               = 8
	maxRangesPerReq         = (maxMsg - hdrSize - countSize) / rangeSize
	maxTimersPerReq         = (maxMsg - hdrSize) / posixTimerSize
)

func (c command) String() string {
	switch c {
	case cmdSigactions:
		return "DumpSigactions"
	case cmdItimers:
		return "DumpItimers"
	case cmdPosixTimers:
		return "DumpPosixTimers"
	case cmdMisc:
		return "DumpMisc"
	case cmdPages:
		return "DumpPages"
	case cmdFini:
		return "Fini"
	case cmdPark:
		return "Park"
	case cmdTask:
		return "DumpTask"
	}
	return fmt.Sprintf("command %d", uint16(c))
}

// RemoteError is a failure the blob reported: the errno of the syscall that
// failed inside the task.
type RemoteError struct {
	Pid   int
	Cmd   string
	Errno syscall.Errno
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("task %d: parasite %s: %v", e.Pid, e.Cmd, e.Errno)
}

func (e *RemoteError) Unwrap() error { return e.Errno }

var le = binary.LittleEndian

func encodeRequest(c command, payload []byte) []byte {
	b := make([]byte, hdrSize+len(payload))
	le.PutUint32(b[0:], protoMagic)
	le.PutUint16(b[4:], protoVersion)
	le.PutUint16(b[6:], uint16(c))
	le.PutUint32(b[12:], uint32(len(payload)))
	copy(b[hdrSize:], payload)
	return b
}

// decodeReply checks a reply to c and returns its payload and the errno it
// carries (0 on success).
func decodeReply(c command, b []byte) ([]byte, syscall.Errno, error) {
	if len(b) < hdrSize {
		return nil, 0, fmt.Errorf("short reply to %v: %d bytes", c, len(b))
	}
	if m, v := le.Uint32(b), le.Uint16(b[4:]); m != protoMagic || v != protoVersion {
		return nil, 0, fmt.Errorf("reply to %v: magic %#x version %d, want %#x version %d", c, m, v, protoMagic, protoVersion)
	}
	if got := command(le.Uint16(b[6:])); got != c {
		return nil, 0, fmt.Errorf("reply to %v is for %v", c, got)
	}
	n := le.Uint32(b[12:])
	if int(n) != len(b)-hdrSize {
		return nil, 0, fmt.Errorf("reply to %v: header says %d payload bytes, packet has %d", c, n, len(b)-hdrSize)
	}
	return b[hdrSize:], syscall.Errno(int32(le.Uint32(b[8:]))), nil
}

// Sigaction is the kernel's struct sigaction for one signal.
type Sigaction struct {
	Handler  uint64
	Flags    uint64
	Restorer uint64
	Mask     uint64
}

// Itimer is one interval timer (struct itimerval).
type Itimer struct {
	Interval syscall.Timeval
	Value    syscall.Timeval
}

// PosixTimer is one POSIX timer's setting and overrun count.
type PosixTimer struct {
	ID       int32
	Overrun  int32
	Interval syscall.Timespec
	Value    syscall.Timespec
}

// Stack is a sigaltstack (stack_t).
type Stack struct {
	SP    uint64
	Flags int32
	Size  uint64
}

// Misc is per-process and leader state read by DumpMisc.
type Misc struct {
	Pdeathsig      int32
	Dumpable       int32
	ChildSubreaper bool
	Umask          uint32
	TidAddress     uint64 // the leader's clear_child_tid
	Altstack       Stack  // the leader's sigaltstack
	// The leader's own answers, raw: a negative errno (ptrace.Errno) where
	// the kernel has no such call.
	TimerSlack uint64 // prctl(PR_GET_TIMERSLACK)
	Securebits uint64 // prctl(PR_GET_SECUREBITS)
	MDWE       uint64 // prctl(PR_GET_MDWE)
	THPDisable uint64 // prctl(PR_GET_THP_DISABLE)
	Brk        uint64 // brk(0)
	CPUID      uint64 // arch_prctl(ARCH_GET_CPUID)
	Membarrier uint64 // membarrier(MEMBARRIER_CMD_GET_REGISTRATIONS)
}

// ThreadInfo is per-thread state read by DumpThread; the raw answers are
// as in Misc.
type ThreadInfo struct {
	Tid        int
	TidAddress uint64
	Altstack   Stack
	TimerSlack uint64 // prctl(PR_GET_TIMERSLACK)
	Securebits uint64 // prctl(PR_GET_SECUREBITS)
	CPUID      uint64 // arch_prctl(ARCH_GET_CPUID), x86
	// Mempolicy is the thread's own NUMA policy mode (get_mempolicy with
	// no address: MPOL_DEFAULT is 0), or a negative errno.
	Mempolicy uint64
}

// Range is a span of the task's memory.
type Range struct {
	Addr uint64
	Len  uint64
}

func decodeSigactions(b []byte) ([]Sigaction, error) {
	if len(b) != 64*sigactionSize {
		return nil, fmt.Errorf("sigactions reply has %d bytes, want %d", len(b), 64*sigactionSize)
	}
	out := make([]Sigaction, 64)
	for i := range out {
		e := b[i*sigactionSize:]
		out[i] = Sigaction{le.Uint64(e), le.Uint64(e[8:]), le.Uint64(e[16:]), le.Uint64(e[24:])}
	}
	return out, nil
}

func decodeItimers(b []byte) ([3]Itimer, error) {
	var out [3]Itimer
	if len(b) != 3*itimerSize {
		return out, fmt.Errorf("itimers reply has %d bytes, want %d", len(b), 3*itimerSize)
	}
	for i := range out {
		e := b[i*itimerSize:]
		out[i].Interval = syscall.Timeval{Sec: int64(le.Uint64(e)), Usec: int64(le.Uint64(e[8:]))}
		out[i].Value = syscall.Timeval{Sec: int64(le.Uint64(e[16:])), Usec: int64(le.Uint64(e[24:]))}
	}
	return out, nil
}

func encodeTimerIDs(ids []int32) []byte {
	b := make([]byte, countSize+4*len(ids))
	le.PutUint32(b, uint32(len(ids)))
	for i, id := range ids {
		le.PutUint32(b[countSize+4*i:], uint32(id))
	}
	return b
}

func decodePosixTimers(b []byte, n int) ([]PosixTimer, error) {
	if len(b) != n*posixTimerSize {
		return nil, fmt.Errorf("posix timers reply has %d bytes, want %d", len(b), n*posixTimerSize)
	}
	out := make([]PosixTimer, n)
	for i := range out {
		e := b[i*posixTimerSize:]
		out[i] = PosixTimer{
			ID:       int32(le.Uint32(e)),
			Overrun:  int32(le.Uint32(e[4:])),
			Interval: syscall.Timespec{Sec: int64(le.Uint64(e[8:])), Nsec: int64(le.Uint64(e[16:]))},
			Value:    syscall.Timespec{Sec: int64(le.Uint64(e[24:])), Nsec: int64(le.Uint64(e[32:]))},
		}
	}
	return out, nil
}

func decodeMisc(b []byte) (Misc, error) {
	if len(b) != miscSize {
		return Misc{}, fmt.Errorf("misc reply has %d bytes, want %d", len(b), miscSize)
	}
	return Misc{
		Pdeathsig:      int32(le.Uint32(b)),
		Dumpable:       int32(le.Uint32(b[4:])),
		ChildSubreaper: le.Uint32(b[8:]) != 0,
		Umask:          le.Uint32(b[12:]),
		TidAddress:     le.Uint64(b[16:]),
		Altstack:       decodeStack(b[24:]),
		TimerSlack:     le.Uint64(b[48:]),
		Securebits:     le.Uint64(b[56:]),
		MDWE:           le.Uint64(b[64:]),
		THPDisable:     le.Uint64(b[72:]),
		Brk:            le.Uint64(b[80:]),
		CPUID:          le.Uint64(b[88:]),
		Membarrier:     le.Uint64(b[96:]),
	}, nil
}

// decodeStack reads a stack_t: sp, int flags, pad, size.
func decodeStack(b []byte) Stack {
	return Stack{SP: le.Uint64(b), Flags: int32(le.Uint32(b[8:])), Size: le.Uint64(b[16:])}
}

func encodeStack(b []byte, s Stack) {
	le.PutUint64(b, s.SP)
	le.PutUint32(b[8:], uint32(s.Flags))
	le.PutUint32(b[12:], 0)
	le.PutUint64(b[16:], s.Size)
}

func encodeRanges(rs []Range) []byte {
	b := make([]byte, countSize+rangeSize*len(rs))
	le.PutUint32(b, uint32(len(rs)))
	for i, r := range rs {
		le.PutUint64(b[countSize+rangeSize*i:], r.Addr)
		le.PutUint64(b[countSize+rangeSize*i+8:], r.Len)
	}
	return b
}

// encodeArgs fills struct gk_args.
func encodeArgs(sockaddr []byte, sigframe, trim, trimLen, park, area, areaLen uint64, memfd int) ([]byte, error) {
	if len(sockaddr) > 112 {
		return nil, fmt.Errorf("socket address of %d bytes does not fit the parasite's 112", len(sockaddr))
	}
	b := make([]byte, argsSize)
	le.PutUint32(b, argsMagic)
	le.PutUint32(b[4:], protoVersion)
	le.PutUint64(b[8:], sigframe)
	le.PutUint32(b[16:], uint32(len(sockaddr)))
	le.PutUint32(b[argsSock:], ^uint32(0)) // -1 until the blob has its socket
	copy(b[24:], sockaddr)
	le.PutUint64(b[144:], trim)
	le.PutUint64(b[152:], trimLen)
	le.PutUint64(b[160:], park)
	le.PutUint64(b[168:], area)
	le.PutUint64(b[176:], areaLen)
	le.PutUint32(b[argsMemfd:], uint32(int32(memfd)))
	return b, nil
}
