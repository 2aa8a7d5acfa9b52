package parasite

import (
	"golang.org/x/sys/unix"

	"fmt"
	"math/bits"

	"github.com/gockpt/gockpt/internal/ptrace"
)

// The x86-64 rt_sigframe as rt_sigreturn reads it (arch/x86/include/uapi/
// asm/sigcontext.h, arch/x86/kernel/signal_64.c): the frame starts with the
// return address slot, rt_sigreturn finds it at rsp-8, so rsp points at uc.
const (
	frameUC        = 8             // struct ucontext
	ucStack        = frameUC + 16  // uc_stack (stack_t)
	ucMcontext     = frameUC + 40  // uc_mcontext (struct sigcontext)
	ucSigmask      = frameUC + 296 // uc_sigmask
	frameFPState   = 448           // 64-byte aligned xsave copy, after uc and siginfo
	scFPState      = ucMcontext + 184
	scCS           = ucMcontext + 144
	fxSwReserved   = 464 // struct _fpx_sw_bytes in the fxsave area
	xsaveHeader    = 512 // xstate_bv
	xsaveMinSize   = 576 // legacy area + header
	fpXstateMagic1 = 0x46505853
	fpXstateMagic2 = 0x46505845

	ucFPXstate         = 0x1
	ucSigcontextSS     = 0x2
	ucStrictRestoreSS  = 0x4
	errRestartSys      = 512
	errRestartNoIntr   = 513
	errRestartNoHand   = 514
	errRestartRestartB = 516
	eintr              = 4
)

// frameSize is the bytes the frame takes for an xsave area of n bytes: the
// kernel may read up to its own xstate size plus the 4-byte magic2, which is
// never more than the regset size, so n+64 always covers it.
func frameSize(n int) int { return frameFPState + n + 64 }

// restartedRegs returns the registers a task stopped in a syscall must
// resume with when it is sent back through rt_sigreturn, which disables
// syscall restart (orig_ax = -1): what the kernel would have done on the
// way out without a handler. ERESTART_RESTARTBLOCK cannot be restarted that
// way (rt_sigreturn resets the restart block), so that syscall returns
// EINTR, as if a handled signal had interrupted it.
func restartedRegs(r ptrace.Regs) ptrace.Regs {
	if int64(r.Orig_rax) < 0 {
		return r
	}
	switch -int64(r.Rax) {
	case errRestartSys, errRestartNoIntr, errRestartNoHand:
		r.Rax = r.Orig_rax
		r.Rip -= 2
	case errRestartRestartB:
		if ptrace.RerunsAfterRestartBlock(r.Orig_rax) {
			r.Rax = r.Orig_rax
			r.Rip -= 2
			break
		}
		r.Rax = negErrno(eintr)
	}
	return r
}

func negErrno(e uint64) uint64 { return -e }

// knownSyscall names, in the registers of task pid's main thread, the
// syscall it sleeps in when it was continued once through restart_syscall
// (after a pre-dump): the frame's sigreturn clears the restart block, so
// restartedRegs runs that syscall again instead.
func knownSyscall(pid int, r ptrace.Regs) ptrace.Regs {
	if r.Orig_rax == unix.SYS_RESTART_SYSCALL {
		if nr := ptrace.SleepingSyscall(pid, pid, &r); ptrace.RerunsAfterRestartBlock(nr) {
			r.Orig_rax = nr
		}
	}
	return r
}

// xstateLayout returns the xfeatures to restore from an NT_X86_XSTATE
// image and the bytes they span in the standard (non-compacted) format.
func xstateLayout(x []byte) (features uint64, size uint32) {
	xcr0 := le.Uint64(x[fxSwReserved:]) // ptrace puts XCR0 in the first sw_reserved word
	features = le.Uint64(x[xsaveHeader:])&xcr0 | 3
	size = xsaveMinSize
	for f := features &^ 3; f != 0; f &= f - 1 {
		i := uint32(bits.TrailingZeros64(f))
		off, sz := ptrace.XstateComponent(i)
		if end := off + sz; end > size {
			size = end
		}
	}
	return features, size
}

// buildSigframe lays out, for an area mapped at base, an rt_sigframe that
// brings back regs, sigmask, altstack and the xsave area x. It returns the
// frame and the address rsp must hold at rt_sigreturn.
func buildSigframe(base uint64, regs ptrace.Regs, sigmask uint64, alt Stack, x []byte) ([]byte, uint64, error) {
	if base%64 != 0 {
		return nil, 0, fmt.Errorf("sigframe at %#x is not 64-byte aligned", base)
	}
	f := make([]byte, frameSize(len(x)))
	r := restartedRegs(regs)
	le.PutUint64(f[frameUC:], ucFPXstate|ucSigcontextSS|ucStrictRestoreSS)
	encodeStack(f[ucStack:], alt)
	for i, v := range []uint64{
		r.R8, r.R9, r.R10, r.R11, r.R12, r.R13, r.R14, r.R15,
		r.Rdi, r.Rsi, r.Rbp, r.Rbx, r.Rdx, r.Rax, r.Rcx, r.Rsp, r.Rip, r.Eflags,
	} {
		le.PutUint64(f[ucMcontext+8*i:], v)
	}
	le.PutUint16(f[scCS:], uint16(r.Cs))
	le.PutUint16(f[scCS+2:], uint16(r.Gs))
	le.PutUint16(f[scCS+4:], uint16(r.Fs))
	le.PutUint16(f[scCS+6:], uint16(r.Ss))
	le.PutUint64(f[ucSigmask:], sigmask)
	if len(x) >= 512 {
		le.PutUint64(f[scFPState:], base+frameFPState)
		fp := f[frameFPState:]
		copy(fp, x)
		// Without the software bytes the kernel restores only the legacy
		// x87/SSE part (fxrstor): the upper halves of ymm/zmm would be lost.
		for i := fxSwReserved; i < xsaveHeader; i++ {
			fp[i] = 0
		}
		if len(x) >= xsaveMinSize {
			features, size := xstateLayout(x)
			if int(size) > len(x) {
				return nil, 0, fmt.Errorf("xsave features %#x span %d bytes, the regset has %d", features, size, len(x))
			}
			le.PutUint32(fp[fxSwReserved:], fpXstateMagic1)
			le.PutUint32(fp[fxSwReserved+4:], size+4) // extended_size
			le.PutUint64(fp[fxSwReserved+8:], features)
			le.PutUint32(fp[fxSwReserved+16:], size) // xstate_size
			le.PutUint32(fp[size:], fpXstateMagic2)
		}
	}
	return f, base + frameUC, nil
}
