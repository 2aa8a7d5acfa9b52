/*
 * The restore runner: runs a list of syscalls inside a task being restored,
 * in one stop of ptrace instead of one per syscall. gockpt writes the list
 * into the task's scratch area, points %r12 at it, puts the number of
 * entries in %r13 and continues the task at runner; the task stops at the
 * int3 with %r13 the number of entries not run.
 *
 * An entry is 64 bytes: a control word, six arguments, and the result,
 * which the runner writes. The control word holds the syscall number in
 * bits 0-31; bit 32+j set makes argument j a reference: the argument is k,
 * and the syscall gets the result of the entry k entries before this one
 * (an fd opened earlier in the same list, say). Bit 63 set: go on if the
 * syscall fails. The first failure of an entry without bit 63 ends the
 * list there (%r13 counts it as not run). The runner needs no stack and
 * no memory of its own, and touches only %rax, %rdi, %rsi, %rdx, %r10,
 * %r8, %r9, %r12-%r15, and %rcx and %r11, which syscall clobbers.
 */

/* ref reg, bit: if bit of the control word (%r15) is set, replace reg (k)
 * by the result of the entry k entries back. */
.macro ref reg, bit
	bt	$\bit, %r15
	jnc	10f
	shl	$6, \reg
	neg	\reg
	mov	56(%r12,\reg,1), \reg
10:
.endm

	.text
	.globl	runner
runner:
1:	test	%r13, %r13
	jz	3f
	mov	(%r12), %r15
	mov	%r15d, %eax		/* the syscall number, zero-extended */
	bt	$63, %r15		/* CF: this entry may fail */
	setc	%r14b
	mov	8(%r12), %rdi
	ref	%rdi, 32
	mov	16(%r12), %rsi
	ref	%rsi, 33
	mov	24(%r12), %rdx
	ref	%rdx, 34
	mov	32(%r12), %r10
	ref	%r10, 35
	mov	40(%r12), %r8
	ref	%r8, 36
	mov	48(%r12), %r9
	ref	%r9, 37
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
