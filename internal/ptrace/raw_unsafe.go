package ptrace

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Requests golang.org/x/sys/unix does not wrap with the arguments we need.
const (
	reqGetRegset        = 0x4204
	reqSetRegset        = 0x4205
	reqSeize            = 0x4206
	reqPeekSiginfo      = 0x4209
	reqGetSigmask       = 0x420a
	reqSetSigmask       = 0x420b
	reqSeccompGetFilter = 0x420c
	reqGetRseqConfig    = 0x420f
	reqGetSUDConfig     = 0x4211 // PTRACE_GET_SYSCALL_USER_DISPATCH_CONFIG

	// NT_PRSTATUS is the general register set, NT_X86_XSTATE the xsave area.
	NTPrstatus  = 1
	NTX86Xstate = 0x202
)

func rawPtrace(req, tid int, addr, data uintptr) (uintptr, error) {
	r, _, e := unix.Syscall6(unix.SYS_PTRACE, uintptr(req), uintptr(tid), addr, data, 0, 0)
	if e != 0 {
		return 0, e
	}
	return r, nil
}

func seize(tid int, options int) error {
	_, err := rawPtrace(reqSeize, tid, 0, uintptr(options))
	return err
}

// getRegset reads note type nt into buf; the kernel reports how much it filled.
func getRegset(tid int, nt int, buf []byte) (int, error) {
	iov := unix.Iovec{Base: &buf[0]}
	iov.SetLen(len(buf))
	if _, err := rawPtrace(reqGetRegset, tid, uintptr(nt), uintptr(unsafe.Pointer(&iov))); err != nil {
		return 0, err
	}
	return int(iov.Len), nil
}

func setRegset(tid int, nt int, buf []byte) error {
	iov := unix.Iovec{Base: &buf[0]}
	iov.SetLen(len(buf))
	_, err := rawPtrace(reqSetRegset, tid, uintptr(nt), uintptr(unsafe.Pointer(&iov)))
	return err
}

func getSigmask(tid int) (uint64, error) {
	var m uint64
	_, err := rawPtrace(reqGetSigmask, tid, 8, uintptr(unsafe.Pointer(&m)))
	return m, err
}

func setSigmask(tid int, m uint64) error {
	_, err := rawPtrace(reqSetSigmask, tid, 8, uintptr(unsafe.Pointer(&m)))
	return err
}

// peekSiginfoArgs is struct ptrace_peeksiginfo_args.
type peekSiginfoArgs struct {
	off   uint64
	flags uint32
	nr    int32
}

const peekSiginfoShared = 1

// peekSiginfo copies up to len(buf)/SiginfoSize queued signals from offset off.
func peekSiginfo(tid int, off uint64, shared bool, buf []byte) (int, error) {
	a := peekSiginfoArgs{off: off, nr: int32(len(buf) / SiginfoSize)}
	if shared {
		a.flags = peekSiginfoShared
	}
	r, err := rawPtrace(reqPeekSiginfo, tid, uintptr(unsafe.Pointer(&a)), uintptr(unsafe.Pointer(&buf[0])))
	return int(r), err
}

// RseqConfig is struct ptrace_rseq_configuration.
type RseqConfig struct {
	RseqAbiPointer uint64
	RseqAbiSize    uint32
	Signature      uint32
	Flags          uint32
	Pad            uint32
}

func getRseqConfig(tid int) (RseqConfig, error) {
	var c RseqConfig
	_, err := rawPtrace(reqGetRseqConfig, tid, unsafe.Sizeof(c), uintptr(unsafe.Pointer(&c)))
	return c, err
}

// SUDConfig is struct ptrace_sud_config: a thread's syscall user dispatch
// (PR_SET_SYSCALL_USER_DISPATCH); Mode 0 means off.
type SUDConfig struct {
	Mode     uint64
	Selector uint64
	Offset   uint64
	Len      uint64
}

func getSUDConfig(tid int) (SUDConfig, error) {
	var c SUDConfig
	_, err := rawPtrace(reqGetSUDConfig, tid, unsafe.Sizeof(c), uintptr(unsafe.Pointer(&c)))
	return c, err
}

// seccompFilter returns the number of instructions of filter idx, or copies
// them into buf (8 bytes each) when buf is non-empty.
func seccompFilter(tid int, idx int, buf []byte) (int, error) {
	var p uintptr
	if len(buf) > 0 {
		p = uintptr(unsafe.Pointer(&buf[0]))
	}
	r, err := rawPtrace(reqSeccompGetFilter, tid, uintptr(idx), p)
	return int(r), err
}

// UserDesc is struct user_desc, a GDT TLS slot (set_thread_area).
type UserDesc struct {
	EntryNumber uint32
	BaseAddr    uint32
	Limit       uint32
	Flags       uint32 // seg_32bit:1 contents:2 read_exec_only:1 limit_in_pages:1 seg_not_present:1 useable:1
}

const (
	reqGetThreadArea = 25
	reqSetThreadArea = 26
)

func getThreadArea(tid int, idx int) (UserDesc, error) {
	var d UserDesc
	_, err := rawPtrace(reqGetThreadArea, tid, uintptr(idx), uintptr(unsafe.Pointer(&d)))
	return d, err
}

func setThreadArea(tid int, idx int, d UserDesc) error {
	_, err := rawPtrace(reqSetThreadArea, tid, uintptr(idx), uintptr(unsafe.Pointer(&d)))
	return err
}

// RobustList returns the thread's robust futex list head and its length
// (get_robust_list; needs ptrace access to tid, not a stop).
func RobustList(tid int) (head uint64, length uint64, err error) {
	var h uintptr
	var l uintptr
	_, _, e := unix.Syscall(unix.SYS_GET_ROBUST_LIST, uintptr(tid), uintptr(unsafe.Pointer(&h)), uintptr(unsafe.Pointer(&l)))
	if e != 0 {
		return 0, 0, &Error{"get_robust_list", tid, e}
	}
	return uint64(h), uint64(l), nil
}
