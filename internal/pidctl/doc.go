// Package pidctl places new tasks at chosen PIDs: it injects clone3 into a
// stopped, traced task so that the child (a process or a thread) gets the PID
// it had at dump time, with set_tid (Linux 5.5+) or, without it, by writing
// ns_last_pid under a lock and verifying the result.
//
// Threading model: every ptrace and wait4 call for a task runs on its
// ptrace.Tracer's locked OS thread, inside Tracer.Do. A Task is a handle on
// one stopped thread that pidctl drives with injected syscalls through a
// known syscall instruction (Task.SyscallAddr), so tasks need neither a vDSO
// nor a stack. Nothing here takes a lock while inside Tracer.Do except the
// ns_last_pid file lock, which is always taken first.
//
// The children Clone creates are auto-attached by the kernel (PTRACE_O_TRACE*)
// to the parent's tracer thread and stop before running a single instruction;
// they stay stopped until the caller has given them their registers.
package pidctl
