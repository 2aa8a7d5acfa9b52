package restore

import (
	"github.com/gockpt/gockpt/internal/ptrace"
	pb "github.com/gockpt/gockpt/proto"
)

// imageRegs returns the general registers a thread's core image holds (the
// reverse of dump's gpregsEntry).
func imageRegs(ti *pb.ThreadInfoX86) ptrace.Regs {
	g := ti.GetGpregs()
	return ptrace.Regs{
		R15: g.GetR15(), R14: g.GetR14(), R13: g.GetR13(), R12: g.GetR12(), Rbp: g.GetBp(), Rbx: g.GetBx(),
		R11: g.GetR11(), R10: g.GetR10(), R9: g.GetR9(), R8: g.GetR8(), Rax: g.GetAx(), Rcx: g.GetCx(),
		Rdx: g.GetDx(), Rsi: g.GetSi(), Rdi: g.GetDi(), Orig_rax: g.GetOrigAx(), Rip: g.GetIp(), Cs: g.GetCs(),
		Eflags: g.GetFlags(), Rsp: g.GetSp(), Ss: g.GetSs(), Fs_base: g.GetFsBase(), Gs_base: g.GetGsBase(),
		Ds: g.GetDs(), Es: g.GetEs(), Fs: g.GetFs(), Gs: g.GetGs(),
	}
}
