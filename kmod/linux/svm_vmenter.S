/* SPDX-License-Identifier: GPL-2.0 */
/*
 * void kmmu_svm_vmrun(unsigned long vmcb_pa, unsigned long host_save_pa,
 *		       unsigned long *regs)
 *
 * Called with GIF=0 and IF=1 (svm.c).  VMSAVE keeps the host's FS/GS/TR/
 * LDTR/KernelGSBase/STAR/LSTAR/CSTAR/SFMASK/SYSENTER state, VMLOAD gives the
 * guest its own, VMRUN runs it, and after #VMEXIT the guest's is VMSAVEd
 * and the host's VMLOADed back before anything uses per-CPU data (GS base).
 * The guest's general registers but RAX and RSP (which are in the VMCB) are
 * loaded from and stored to regs[] (enum kmmu_svm_reg).  No C runs between
 * the two VMLOADs.
 */
#include <linux/linkage.h>
#include <asm/asm.h>
#include <asm/nospec-branch.h>

#define REG(n)	((n) * 8)

	.section .text, "ax"

SYM_FUNC_START(kmmu_svm_vmrun)
	/* The host's callee-saved registers: the guest's replace them. */
	push	%rbp
	push	%r15
	push	%r14
	push	%r13
	push	%r12
	push	%rbx
	/* 16(%rsp): host_save_pa, 8(%rsp): regs, 0(%rsp): vmcb_pa */
	push	%rsi
	push	%rdx
	push	%rdi

	/* The host's state that VMRUN does not switch, then the guest's. */
	mov	%rsi, %rax
	vmsave	%rax
	mov	%rdi, %rax
	vmload	%rax

	mov	%rdx, %rax
	mov	REG(0)(%rax), %rcx
	mov	REG(1)(%rax), %rdx
	mov	REG(2)(%rax), %rbx
	mov	REG(3)(%rax), %rbp
	mov	REG(4)(%rax), %rsi
	mov	REG(5)(%rax), %rdi
	mov	REG(6)(%rax), %r8
	mov	REG(7)(%rax), %r9
	mov	REG(8)(%rax), %r10
	mov	REG(9)(%rax), %r11
	mov	REG(10)(%rax), %r12
	mov	REG(11)(%rax), %r13
	mov	REG(12)(%rax), %r14
	mov	REG(13)(%rax), %r15

	mov	(%rsp), %rax
	vmrun	%rax

	/* #VMEXIT: RSP, RIP and RAX are the host's again. */
	mov	8(%rsp), %rax
	mov	%rcx, REG(0)(%rax)
	mov	%rdx, REG(1)(%rax)
	mov	%rbx, REG(2)(%rax)
	mov	%rbp, REG(3)(%rax)
	mov	%rsi, REG(4)(%rax)
	mov	%rdi, REG(5)(%rax)
	mov	%r8, REG(6)(%rax)
	mov	%r9, REG(7)(%rax)
	mov	%r10, REG(8)(%rax)
	mov	%r11, REG(9)(%rax)
	mov	%r12, REG(10)(%rax)
	mov	%r13, REG(11)(%rax)
	mov	%r14, REG(12)(%rax)
	mov	%r15, REG(13)(%rax)

	/* The guest's segment and syscall state, then the host's back. */
	mov	(%rsp), %rax
	vmsave	%rax
	mov	16(%rsp), %rax
	vmload	%rax

	add	$24, %rsp
	pop	%rbx
	pop	%r12
	pop	%r13
	pop	%r14
	pop	%r15
	pop	%rbp
	RET
SYM_FUNC_END(kmmu_svm_vmrun)
