/*
 * Entry and exit of the parasite. gockpt starts the blob at parasite_entry
 * with rsp at the top of the parasite stack; the blob never returns: it
 * leaves through parasite_sigreturn, which gockpt catches at the
 * rt_sigreturn syscall stop when it is alive, and which restores the task's
 * original state by itself when it is not.
 */
	.section .head.text, "ax"
	.globl parasite_entry
	.type parasite_entry, @function
parasite_entry:
	/* Nothing of the task's register state leaks into the blob. */
	xor %eax, %eax
	xor %ebx, %ebx
	xor %ecx, %ecx
	xor %edx, %edx
	xor %esi, %esi
	xor %ebp, %ebp
	xor %r8d, %r8d
	xor %r9d, %r9d
	xor %r10d, %r10d
	xor %r11d, %r11d
	xor %r12d, %r12d
	xor %r13d, %r13d
	xor %r14d, %r14d
	xor %r15d, %r15d
	cld
	and $-16, %rsp
	lea parasite_args(%rip), %rdi
	call parasite_main
	ud2
	.size parasite_entry, . - parasite_entry

	.text
	.globl parasite_sigreturn
	.type parasite_sigreturn, @function
	/*
	 * void parasite_sigreturn(u64 uc, u64 trim, u64 trim_len):
	 * unmap [trim, trim+trim_len) (data, bss, the stack we run on), then
	 * rt_sigreturn, which reads the frame at rsp-8. Nothing here touches
	 * the stack once it is gone.
	 */
parasite_sigreturn:
	test %rdx, %rdx
	jz 1f
	mov %rdi, %r12
	mov %rsi, %rdi
	mov %rdx, %rsi
	mov $11, %eax
	syscall
	mov %r12, %rdi
1:
	mov %rdi, %rsp
	mov $15, %eax
	syscall
	ud2
	.size parasite_sigreturn, . - parasite_sigreturn

	.globl parasite_thread_entry
	.type parasite_thread_entry, @function
	/*
	 * Another thread's way in: rdi = its slot, rsi = the count, rdx =
	 * the parking code's pause loop, rsp = the top of its own stack.
	 * parasite_thread fills the slot; then the thread sleeps in pause.
	 */
parasite_thread_entry:
	mov %rdx, %r12
	and $-16, %rsp
	call parasite_thread
	jmp *%r12
	.size parasite_thread_entry, . - parasite_thread_entry

	.globl parasite_park
	.type parasite_park, @function
	/*
	 * void parasite_park(u64 park, u64 area, u64 area_len, long sock):
	 * jump to the parking code's way out (munmap, close(r12), then pause
	 * forever) with munmap(area, area_len) loaded. The blob's code, data
	 * and stack go with the munmap; nothing after it touches them.
	 */
parasite_park:
	mov %rcx, %r12
	mov %rdi, %r11
	mov %rsi, %rdi
	mov %rdx, %rsi
	mov $11, %eax
	jmp *%r11
	.size parasite_park, . - parasite_park

	.section .note.GNU-stack, "", @progbits
