/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The guest a hardware vCPU runs: the software vCPU's workload
 * (core/vcpu.c, wl_access_at() and wl_value()) as 64-bit code, copied into
 * the VM's private slot (hw_vcpu.c) and never run by the host.  It is data
 * here, in .rodata, position independent, and touches no memory but the
 * accesses themselves: its parameters are in registers, it has no stack.
 *
 * Registers, kept across every exit (the trampoline saves them all):
 *   R8   the workload's first GPA        R9   accesses per pass
 *   R10  bytes from one access to the next (stride, or 4 KiB)
 *   R11  seed    RBX  write percentage    R15  the value writes store
 *   RBP  bit 0: writes store value ^ GPA; bit 1: the random pattern
 *   R12  the step: accesses done since the workload was set
 *   R13  the sum of what reads loaded since RUN began
 *   R14  the step to stop at: the end of the workload or of RUN's budget
 *   RSI  the access's GPA, RDX the value a write stores, RAX what a read
 *        loads; RCX scratch
 *
 * At R12 >= R14 it reports with VMMCALL; the host moves R14 on, or returns
 * to userspace, and resumes it after the VMMCALL.  A #NPF at the store or
 * the load that the host completes as MMIO resumes after that instruction,
 * a read with RAX set to the data userspace gave.  The store, the load and
 * VMMCALL are 3 bytes each (hw_vcpu.c checks).
 */
#include <linux/linkage.h>

/* RAX = splitmix64(RAX), with RCX as scratch. */
.macro SPLITMIX64
	movabs	$0x9e3779b97f4a7c15, %rcx
	add	%rcx, %rax
	mov	%rax, %rcx
	shr	$30, %rcx
	xor	%rcx, %rax
	movabs	$0xbf58476d1ce4e5b9, %rcx
	imul	%rcx, %rax
	mov	%rax, %rcx
	shr	$27, %rcx
	xor	%rcx, %rax
	movabs	$0x94d049bb133111eb, %rcx
	imul	%rcx, %rax
	mov	%rax, %rcx
	shr	$31, %rcx
	xor	%rcx, %rax
.endm

	.section .rodata, "a"
	.balign	64
SYM_DATA_START(kmmu_hw_guest)
.Lloop:
	cmp	%r14, %r12
	jae	.Lreport
	/* i = step % per_pass, or splitmix64(seed ^ (step << 1)) % per_pass */
	mov	%r12, %rax
	test	$2, %ebp
	jz	1f
	lea	(%r12, %r12), %rax
	xor	%r11, %rax
	SPLITMIX64
1:	xor	%edx, %edx
	div	%r9
	mov	%rdx, %rsi
	imul	%r10, %rsi
	add	%r8, %rsi
	/* write = pct >= 100 || (pct && splitmix64(seed ^ (step << 1 | 1)) % 100 < pct) */
	cmp	$100, %rbx
	jae	.Lwrite
	test	%rbx, %rbx
	jz	.Lread
	lea	1(%r12, %r12), %rax
	xor	%r11, %rax
	SPLITMIX64
	xor	%edx, %edx
	mov	$100, %ecx
	div	%rcx
	cmp	%rbx, %rdx
	jae	.Lread
.Lwrite:
	mov	%r15, %rdx
	test	$1, %ebp
	jz	2f
	xor	%rsi, %rdx
2:
SYM_INNER_LABEL(kmmu_hw_guest_store, SYM_L_GLOBAL)
	mov	%rdx, (%rsi)
	jmp	.Lnext
.Lread:
SYM_INNER_LABEL(kmmu_hw_guest_load, SYM_L_GLOBAL)
	mov	(%rsi), %rax
	add	%rax, %r13
.Lnext:
	inc	%r12
	jmp	.Lloop
.Lreport:
SYM_INNER_LABEL(kmmu_hw_guest_report, SYM_L_GLOBAL)
	vmmcall
	jmp	.Lloop
SYM_INNER_LABEL(kmmu_hw_guest_end, SYM_L_GLOBAL)
SYM_DATA_END(kmmu_hw_guest)
