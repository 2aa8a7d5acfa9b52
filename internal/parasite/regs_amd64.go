package parasite

import "github.com/gockpt/gockpt/internal/ptrace"

// enterBlob points r at the blob code at pc, on the stack at sp, outside
// any syscall (no restart on the way out) and with the flags the blob's C
// code assumes clear: TF (single-step), DF (string direction), AC
// (alignment checks).
func enterBlob(r *ptrace.Regs, pc, sp uint64) {
	r.Rip = pc
	r.Rsp = sp
	r.Rax = 0
	ptrace.ClearSyscall(r)
	r.Eflags &^= 0x100 | 0x400 | 0x40000 // TF, DF, AC
}
