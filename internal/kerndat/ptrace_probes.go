package kerndat

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/ptrace"
)

func probePtraceSeize() Result {
	h, err := startSeized()
	if err != nil {
		return seizeFailure(err)
	}
	defer h.stop()
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", h.Pid))
	if err != nil {
		return fail(err)
	}
	state := statusField(string(st), "State:")
	tracer := statusField(string(st), "TracerPid:")
	if !strings.HasPrefix(state, "t") || tracer == "0" {
		return failf("task %d seized but not stopped by us: State %q, TracerPid %s", h.Pid, state, tracer)
	}
	return ok("seized and interrupted task %d: state %s, tracer thread %s", h.Pid, strings.Fields(state)[0], tracer)
}

// seizeFailure explains a failed seize.
func seizeFailure(err error) Result {
	r := fail(err)
	switch errnoOf(err) {
	case unix.EIO:
		r.Detail += " (PTRACE_SEIZE unknown: Linux 3.4+ needed)"
	case unix.EPERM:
		if b, e := os.ReadFile("/proc/sys/kernel/yama/ptrace_scope"); e == nil {
			r.Detail += fmt.Sprintf(" (kernel.yama.ptrace_scope is %s; CAP_SYS_PTRACE needed)", strings.TrimSpace(string(b)))
		} else {
			r.Detail += " (CAP_SYS_PTRACE needed)"
		}
	}
	return r
}

func statusField(status, key string) string {
	for _, l := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(l, key); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func probeSyscallInjection() Result {
	h, err := startSeized()
	if err != nil {
		return seizeFailure(err)
	}
	defer h.stop()
	before, err := h.te.GetRegs()
	if err != nil {
		return fail(err)
	}
	pid, err := h.syscall("getpid", unix.SYS_GETPID)
	if err != nil {
		return fail(err)
	}
	if int(pid) != h.Pid {
		return failf("injected getpid returned %d in task %d", pid, h.Pid)
	}
	addr, err := h.scratch()
	if err != nil {
		return fail(err)
	}
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", h.Pid))
	if err != nil {
		return fail(err)
	}
	if !mappedRW(string(maps), addr) {
		return failf("injected mmap returned %#x but /proc/%d/maps shows no rw-p mapping there", addr, h.Pid)
	}
	if _, err := h.syscall("munmap", unix.SYS_MUNMAP, addr, pageSize); err != nil {
		return fail(err)
	}
	after, err := h.te.GetRegs()
	if err != nil {
		return fail(err)
	}
	if before != after {
		return failf("registers of task %d changed across injected syscalls", h.Pid)
	}
	return ok("injected getpid (%d) and mmap (%#x) into task %d; registers restored", pid, addr, h.Pid)
}

// mappedRW reports whether a rw-p mapping in maps covers addr (the kernel
// may have merged a new mapping with a neighbour).
func mappedRW(maps string, addr uint64) bool {
	for _, l := range strings.Split(maps, "\n") {
		f := strings.Fields(l)
		if len(f) < 2 || f[1] != "rw-p" {
			continue
		}
		lo, hi, _ := strings.Cut(f[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 == nil && err2 == nil && start <= addr && addr < end {
			return true
		}
	}
	return false
}

func probeProcessVMRW() Result {
	h, err := startHelper()
	if err != nil {
		return fail(err)
	}
	defer h.stop()
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", h.Pid))
	if err != nil {
		return fail(err)
	}
	var image, stack uint64
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", h.Pid))
	if err != nil {
		return fail(err)
	}
	for _, l := range strings.Split(string(maps), "\n") {
		f := strings.Fields(l)
		if len(f) < 6 {
			continue
		}
		lo, _, _ := strings.Cut(f[0], "-")
		start, err := strconv.ParseUint(lo, 16, 64)
		if err != nil {
			continue
		}
		if image == 0 && f[5] == exe && f[2] == "00000000" && f[1][0] == 'r' {
			image = start
		}
		if f[5] == "[stack]" {
			stack = start
		}
	}
	if image == 0 || stack == 0 {
		return failf("task %d: no ELF header mapping of %s or no [stack] in /proc/%d/maps", h.Pid, exe, h.Pid)
	}
	hdr := make([]byte, 4)
	if err := ptrace.ReadMem(h.Pid, image, hdr); err != nil {
		return vmFailure(err)
	}
	if string(hdr) != "\x7fELF" {
		return failf("process_vm_readv of task %d at %#x gave %q, not the ELF magic", h.Pid, image, hdr)
	}
	// The lowest page of the stack VMA is far below anything sleep uses:
	// write a pattern there, read it back, put the old bytes back.
	old := make([]byte, 16)
	if err := ptrace.ReadMem(h.Pid, stack, old); err != nil {
		return vmFailure(err)
	}
	pattern := []byte("gockpt-kerndat!!")
	if err := ptrace.WriteMem(h.Pid, stack, pattern); err != nil {
		return vmFailure(err)
	}
	back := make([]byte, len(pattern))
	if err := ptrace.ReadMem(h.Pid, stack, back); err != nil {
		return vmFailure(err)
	}
	if err := ptrace.WriteMem(h.Pid, stack, old); err != nil {
		return vmFailure(err)
	}
	if !bytes.Equal(back, pattern) {
		return failf("process_vm_writev then readv of task %d at %#x gave %q, want %q", h.Pid, stack, back, pattern)
	}
	return ok("read the ELF header of task %d and wrote and read back its stack", h.Pid)
}

func vmFailure(err error) Result {
	r := fail(err)
	if errnoOf(err) == unix.ENOSYS {
		r.Detail += " (CONFIG_CROSS_MEMORY_ATTACH is not set)"
	}
	return r
}

func probeRseqPtrace() Result {
	h, err := startSeized()
	if err != nil {
		return seizeFailure(err)
	}
	defer h.stop()
	c, err := h.te.Rseq()
	if err != nil {
		r := fail(err)
		if e := errnoOf(err); e == unix.EIO || e == unix.EINVAL {
			r.Detail += " (PTRACE_GET_RSEQ_CONFIGURATION unknown: Linux 5.13+ needed)"
		}
		return r
	}
	if c.RseqAbiPointer == 0 {
		// Nothing to check against: glibc < 2.35 or glibc.pthread.rseq=0.
		return ok("PTRACE_GET_RSEQ_CONFIGURATION works; helper %s registered no rseq area (glibc < 2.35 or GLIBC_TUNABLES=glibc.pthread.rseq=0)", sleepPath())
	}
	// struct rseq: cpu_id_start u32, cpu_id u32. A registered thread that
	// ran has a real CPU number there, not RSEQ_CPU_ID_UNINITIALIZED (-1).
	buf := make([]byte, 8)
	if err := ptrace.ReadMem(h.Pid, c.RseqAbiPointer, buf); err != nil {
		return fail(fmt.Errorf("read rseq area of task %d: %w", h.Pid, err))
	}
	cpu := int32(binary.NativeEndian.Uint32(buf[4:]))
	if cpu < 0 {
		return failf("task %d: rseq area at %#x has cpu_id %d: the pointer does not name a registered area", h.Pid, c.RseqAbiPointer, cpu)
	}
	return ok("task %d: rseq area at %#x (size %d, signature %#x, cpu_id %d)", h.Pid, c.RseqAbiPointer, c.RseqAbiSize, c.Signature, cpu)
}

func probePeekSiginfo() Result {
	h, err := startSeized()
	if err != nil {
		return seizeFailure(err)
	}
	defer h.stop()
	// A stopped tracee keeps a non-fatal signal queued.
	if err := unix.Tgkill(h.Pid, h.Pid, unix.SIGUSR1); err != nil {
		return fail(fmt.Errorf("queue SIGUSR1 to task %d: %w", h.Pid, err))
	}
	sis, err := h.te.PendingSignals(false)
	if err != nil {
		r := fail(err)
		if errnoOf(err) == unix.EIO {
			r.Detail += " (PTRACE_PEEKSIGINFO unknown: Linux 3.10+ needed)"
		}
		return r
	}
	for _, si := range sis {
		if int32(binary.NativeEndian.Uint32(si)) == int32(unix.SIGUSR1) {
			return ok("task %d: saw the queued SIGUSR1 without dequeuing it", h.Pid)
		}
	}
	return failf("task %d: PTRACE_PEEKSIGINFO listed %d signals but not the queued SIGUSR1", h.Pid, len(sis))
}

func probeSeccompGetFilter() Result {
	h, err := startSeized()
	if err != nil {
		return seizeFailure(err)
	}
	defer h.stop()
	mem, err := h.scratch()
	if err != nil {
		return fail(err)
	}
	// One instruction: BPF_RET|BPF_K SECCOMP_RET_ALLOW. struct sock_fprog
	// {u16 len; struct sock_filter *filter} at mem, the filter at mem+64.
	insn := make([]byte, 8)
	binary.NativeEndian.PutUint16(insn[0:], 0x06)
	binary.NativeEndian.PutUint32(insn[4:], 0x7fff0000)
	prog := make([]byte, 16)
	binary.NativeEndian.PutUint16(prog[0:], 1)
	binary.NativeEndian.PutUint64(prog[8:], mem+64)
	if err := ptrace.WriteMem(h.Pid, mem+64, insn); err != nil {
		return fail(err)
	}
	if err := ptrace.WriteMem(h.Pid, mem, prog); err != nil {
		return fail(err)
	}
	// no_new_privs lets the helper install a filter without CAP_SYS_ADMIN,
	// so an unprivileged run learns what GET_FILTER itself says.
	if _, err := h.syscall("prctl(PR_SET_NO_NEW_PRIVS)", unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fail(err)
	}
	if _, err := h.syscall("seccomp(SECCOMP_SET_MODE_FILTER)", unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, mem); err != nil {
		r := fail(err)
		if errnoOf(err) == unix.EINVAL {
			r.Detail += " (CONFIG_SECCOMP_FILTER is not set)"
		}
		return r
	}
	filters, err := h.te.SeccompFilters()
	if err != nil {
		r := fail(err)
		switch errnoOf(err) {
		case unix.EIO:
			r.Detail += " (PTRACE_SECCOMP_GET_FILTER unknown: Linux 4.4+ with CONFIG_SECCOMP_FILTER and CONFIG_CHECKPOINT_RESTORE needed)"
		case unix.EACCES, unix.EPERM:
			r.Detail += " (CAP_SYS_ADMIN needed)"
		}
		return r
	}
	if len(filters) != 1 || !bytes.Equal(filters[0], insn) {
		return failf("task %d: installed one 1-instruction filter, PTRACE_SECCOMP_GET_FILTER returned %d filters", h.Pid, len(filters))
	}
	return ok("task %d: read back the seccomp filter installed by an injected seccomp()", h.Pid)
}

// ptrace_syscall_info: op u8, pad, arch u32 at 4, instruction_pointer u64
// at 8, stack_pointer u64 at 16.
const (
	syscallInfoNone = 0
	auditArchX86_64 = 0xc000003e
)

func probeGetSyscallInfo() Result {
	h, err := startSeized()
	if err != nil {
		return seizeFailure(err)
	}
	defer h.stop()
	regs, err := h.te.GetRegs()
	if err != nil {
		return fail(err)
	}
	buf := make([]byte, 128)
	var n int
	err = h.tr.Do(func() error {
		var err error
		n, err = getSyscallInfo(h.Pid, buf)
		return err
	})
	if err != nil {
		r := fail(fmt.Errorf("task %d: PTRACE_GET_SYSCALL_INFO: %w", h.Pid, err))
		if errnoOf(err) == unix.EIO {
			r.Detail += " (Linux 5.3+ needed)"
		}
		return r
	}
	ne := binary.NativeEndian
	op, arch := buf[0], ne.Uint32(buf[4:])
	ip, sp := ne.Uint64(buf[8:]), ne.Uint64(buf[16:])
	regIP, regSP := ptrace.PC(&regs), ptrace.SP(&regs)
	if n < 24 || op != syscallInfoNone || arch != auditArchX86_64 || ip != regIP || sp != regSP {
		return failf("task %d in a ptrace event stop: PTRACE_GET_SYSCALL_INFO gave %d bytes, op %d, arch %#x, ip %#x, sp %#x; registers say ip %#x, sp %#x",
			h.Pid, n, op, arch, ip, sp, regIP, regSP)
	}
	return ok("task %d: op NONE, arch x86_64, ip and sp match the registers", h.Pid)
}

// stat fields (1-based as in proc(5)) that PR_SET_MM_MAP sets.
var mmStatFields = []int{26, 27, 28, 45, 46, 47, 48, 49, 50, 51}

func mmFields(pid int) ([]uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3
	out := make([]uint64, len(mmStatFields))
	for j, n := range mmStatFields {
		if n-3 >= len(f) {
			return nil, fmt.Errorf("/proc/%d/stat has %d fields, want %d", pid, len(f)+2, n)
		}
		if out[j], err = strconv.ParseUint(f[n-3], 10, 64); err != nil {
			return nil, fmt.Errorf("/proc/%d/stat field %d: %w", pid, n, err)
		}
	}
	return out, nil
}

// struct prctl_mm_map: 11 u64 addresses, auxv pointer, auxv_size u32, exe_fd u32.
const prctlMMMapLen = 104

func probePrctlMMMap() Result {
	size, err := prctlMMMapSize()
	if err != nil {
		r := fail(fmt.Errorf("prctl(PR_SET_MM, PR_SET_MM_MAP_SIZE): %w", err))
		if errnoOf(err) == unix.EINVAL {
			r.Detail += " (CONFIG_CHECKPOINT_RESTORE is not set, or Linux < 3.18)"
		}
		return r
	}
	if size != prctlMMMapLen {
		return failf("kernel's struct prctl_mm_map is %d bytes, gockpt knows the %d-byte layout", size, prctlMMMapLen)
	}
	h, err := startSeized()
	if err != nil {
		return seizeFailure(err)
	}
	defer h.stop()
	before, err := mmFields(h.Pid)
	if err != nil {
		return fail(err)
	}
	brk, err := h.syscall("brk(0)", unix.SYS_BRK, 0)
	if err != nil {
		return fail(err)
	}
	auxv, err := os.ReadFile(fmt.Sprintf("/proc/%d/auxv", h.Pid))
	if err != nil {
		return fail(err)
	}
	if len(auxv) > pageSize-prctlMMMapLen {
		return failf("/proc/%d/auxv is %d bytes", h.Pid, len(auxv))
	}
	mem, err := h.scratch()
	if err != nil {
		return fail(err)
	}
	// Field order of struct prctl_mm_map.
	startCode, endCode, startStack := before[0], before[1], before[2]
	startData, endData, startBrk := before[3], before[4], before[5]
	argStart, argEnd, envStart, envEnd := before[6], before[7], before[8], before[9]
	m := make([]byte, prctlMMMapLen)
	ne := binary.NativeEndian
	for i, v := range []uint64{startCode, endCode, startData, endData, startBrk, brk, startStack,
		argStart, argEnd, envStart, envEnd, mem + prctlMMMapLen} {
		ne.PutUint64(m[i*8:], v)
	}
	ne.PutUint32(m[96:], uint32(len(auxv)))
	ne.PutUint32(m[100:], ^uint32(0)) // exe_fd -1: keep /proc/PID/exe
	if err := ptrace.WriteMem(h.Pid, mem, append(m, auxv...)); err != nil {
		return fail(err)
	}
	if _, err := h.syscall("prctl(PR_SET_MM, PR_SET_MM_MAP)", unix.SYS_PRCTL, unix.PR_SET_MM, unix.PR_SET_MM_MAP, mem, prctlMMMapLen, 0); err != nil {
		r := fail(err)
		if errnoOf(err) == unix.EPERM {
			r.Detail += " (changing exe_fd needs CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE; this call did not)"
		}
		return r
	}
	after, err := mmFields(h.Pid)
	if err != nil {
		return fail(err)
	}
	brkAfter, err := h.syscall("brk(0)", unix.SYS_BRK, 0)
	if err != nil {
		return fail(err)
	}
	auxvAfter, err := os.ReadFile(fmt.Sprintf("/proc/%d/auxv", h.Pid))
	if err != nil {
		return fail(err)
	}
	if !equalU64(before, after) || brk != brkAfter || !bytes.HasPrefix(auxvAfter, auxv) {
		return failf("task %d: PR_SET_MM_MAP with the task's own values changed them: stat %v -> %v, brk %#x -> %#x", h.Pid, before, after, brk, brkAfter)
	}
	return ok("PR_SET_MM_MAP_SIZE is %d; an injected PR_SET_MM_MAP set task %d's own mm fields and auxv back unchanged", size, h.Pid)
}

func equalU64(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
