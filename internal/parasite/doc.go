// Package parasite injects a small freestanding blob into a seized task and
// talks to it, to read the state only the task itself can see: signal
// handlers, interval and POSIX timers, pdeathsig, dumpable, subreaper, tid
// address, sigaltstack, and memory pages pushed out with vmsplice.
//
// The model:
//
//   - The caller seizes the task's threads (internal/ptrace) and calls
//     Inject on the leader. Inject maps one shared anonymous area (MAP_SHARED,
//     so it never merges with the task's own VMAs) with injected syscalls:
//     the blob's code (made r-x), its data and bss, a stack, a scratch
//     page for injected syscalls in other threads, and an rt_sigframe
//     holding the leader's original registers, signal mask,
//     sigaltstack and xsave area.
//   - gockpt listens on a SOCK_SEQPACKET unix socket, created with the
//     target's LSM socket label; the blob connects and serves one request
//     per packet (protocol.go, blob/protocol.h) while the leader runs freely
//     under ptrace with every signal blocked.
//   - Per-thread state of the other threads is read with injected syscalls
//     in each (stopped) thread; they never run blob code.
//   - Cure stops the leader, sends FINI, catches the blob at its
//     rt_sigreturn syscall-entry stop, cancels that syscall, puts the
//     original registers, xsave area and signal mask back with ptrace, and
//     unmaps the area. The task stays stopped under ptrace.
//   - If gockpt dies, the blob sees the socket close and executes that
//     rt_sigreturn itself: the kernel restores the original state from the
//     frame, and the task runs on. On the way out the blob unmaps its data,
//     bss and stack; its code page (r-x) and the frame page(s) (rw), one
//     shared anonymous mapping shown as "/dev/zero (deleted)", stay: the
//     rt_sigreturn needs both until it has run.
//
// Threading: every ptrace and wait4 call runs on the ptrace.Tracer's thread
// through Tracer.Do; nothing here calls a Tracee method from inside Do.
// A Parasite is used from one goroutine at a time.
package parasite
