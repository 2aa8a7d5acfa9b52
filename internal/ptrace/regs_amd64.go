package ptrace

// What portable code reads and sets in a thread's registers, named for what
// it is rather than for the x86-64 register that holds it.

// PC returns the instruction pointer (rip).
func PC(r *Regs) uint64 { return r.Rip }

// SP returns the stack pointer (rsp).
func SP(r *Regs) uint64 { return r.Rsp }

// ClearSyscall marks r as outside any syscall (orig_rax = -1): the kernel
// restarts no syscall when the thread goes back to user space with r, and
// a thread in a syscall-entry stop skips the syscall it entered.
func ClearSyscall(r *Regs) { r.Orig_rax = ^uint64(0) }

// SetSyscall sets r to run syscall nr with args (at most six; missing ones
// are 0) at the syscall instruction at pc, as a syscall of its own, not a
// restart of the one r may have been in.
func SetSyscall(r *Regs, pc, nr uint64, args ...uint64) {
	var a [6]uint64
	copy(a[:], args)
	r.Rip = pc
	r.Rax = nr
	ClearSyscall(r)
	r.Rdi, r.Rsi, r.Rdx, r.R10, r.R8, r.R9 = a[0], a[1], a[2], a[3], a[4], a[5]
}
