/*
 * The restore runner: runs a list of syscalls inside a task being restored,
 * in one stop of ptrace instead of one per syscall. gockpt writes the list
 * into the task's scratch area, points %r12 at it, puts the number of
 * entries in %r13 and continues the task at runner; the task stops at the
 * int3 with %r13 the number of entries not run.
 *
 * An entry is 64 bytes: the syscall number (bit 63 set: go on if it fails),
 * six arguments, and the result, which the runner writes. The first failure
 * of an entry without bit 63 ends the list there (%r13 counts it as not
 * run). The runner needs no stack and no memory of its own, and touches
 * only %rax, %rdi, %rsi, %rdx, %r10, %r8, %r9, %r12-%r14, and %rcx and %r11,
 * which syscall clobbers.
 */
	.text
	.globl	runner
runner:
1:	test	%r13, %r13
	jz	3f
	mov	(%r12), %rax
	btr	$63, %rax		/* CF: this entry may fail */
	setc	%r14b
	mov	8(%r12), %rdi
	mov	16(%r12), %rsi
	mov	24(%r12), %rdx
	mov	32(%r12), %r10
	mov	40(%r12), %r8
	mov	48(%r12), %r9
	syscall
	mov	%rax, 56(%r12)
	cmp	$-4095, %rax		/* -4095..-1 is an errno */
	jb	2f
	test	%r14b, %r14b
	jz	3f
2:	add	$64, %r12
	dec	%r13
	jmp	1b
3:	int3
