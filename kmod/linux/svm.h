/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The hardware vCPU on AMD SVM: kmmu's NPT tables walked by the CPU.
 *
 * svm.c owns everything that touches SVM: whether this host can run it
 * (kmmu_svm_init), the per-CPU host save areas, a VMCB per vCPU, and the
 * window around VMRUN (kmmu_svm_run) that sets EFER.SVME and VM_HSAVE_PA
 * only with IRQs off, so kvm_amd never sees them changed
 * (../shared/notes/hw-vcpu-svm.md, section 3).
 */
#ifndef KMMU_LINUX_SVM_H
#define KMMU_LINUX_SVM_H

#include <linux/types.h>

enum kmmu_hw_mode {
	KMMU_HW_OFF,		/* no hardware vCPU */
	KMMU_HW_EXCLUSIVE,	/* only on a CPU where no hypervisor has SVM on */
	KMMU_HW_BORROW,		/* also beside one, leaving no TLB entry behind */
};

/* The guest's general registers that VMRUN does not switch (RAX, RSP are in the VMCB). */
enum kmmu_svm_reg {
	KMMU_SVM_RCX, KMMU_SVM_RDX, KMMU_SVM_RBX, KMMU_SVM_RBP, KMMU_SVM_RSI, KMMU_SVM_RDI,
	KMMU_SVM_R8, KMMU_SVM_R9, KMMU_SVM_R10, KMMU_SVM_R11, KMMU_SVM_R12, KMMU_SVM_R13,
	KMMU_SVM_R14, KMMU_SVM_R15, KMMU_SVM_NR_REGS,
};

struct vmcb;

struct kmmu_svm_vcpu {
	struct vmcb	*vmcb;
	unsigned long	vmcb_pa;
	void		*iopm, *msrpm;
	unsigned long	regs[KMMU_SVM_NR_REGS];
	u32		asid;
	int		last_cpu;	/* -1: never ran */
};

/* What the last VMRUN ended with. */
struct kmmu_svm_exit {
	u64	code;		/* SVM_EXIT_* */
	u64	info1, info2;
};

/*
 * 0 when this host can run hardware vCPUs, else -errno, with the reason
 * logged once: no SVM or NPT, SVM disabled by the firmware, MAXPHYADDR 52
 * (no reserved bit for MMIO SPTEs), SME on, or hw_vcpu=off.
 */
int kmmu_svm_init(void);
void kmmu_svm_exit(void);
int kmmu_svm_supported(void);
enum kmmu_hw_mode kmmu_svm_mode(void);

int kmmu_svm_vcpu_create(struct kmmu_svm_vcpu *v, unsigned int id);
void kmmu_svm_vcpu_destroy(struct kmmu_svm_vcpu *v);

/*
 * What the caller does inside the IRQs-off window: @enter right before
 * VMRUN, on the CPU it will run on (a non-zero return skips VMRUN, and is
 * kmmu_svm_run()'s; it may ask for a flush); @leave right after #VMEXIT.
 */
struct kmmu_svm_window {
	int (*enter)(void *ctx, int cpu, bool *flush);
	void (*leave)(void *ctx);
	void *ctx;
};

/*
 * One VMRUN of @v on nested CR3 @ncr3, flushing its ASID first when @flush
 * (or @win's enter asks): 0, or @win's enter's return, or -EBUSY when
 * another hypervisor has SVM on this CPU and the mode is not borrow.  In
 * borrow mode a flushing VMRUN follows, which leaves no TLB entry of
 * kmmu's guest behind.  Called with preemption enabled; the window
 * itself runs with IRQs off.  @win may be NULL.
 */
int kmmu_svm_run(struct kmmu_svm_vcpu *v, u64 ncr3, bool flush,
		 const struct kmmu_svm_window *win, struct kmmu_svm_exit *exit);

/* hw_selftest=1: a guest run at load, its exits logged. */
void kmmu_svm_selftest(void);

/*
 * In hw_guest.S: the guest code of hardware vCPUs (data, copied into the
 * VM's private slot), and the places in it kmmu resumes after.
 */
extern const u8 kmmu_hw_guest[], kmmu_hw_guest_end[];
extern const u8 kmmu_hw_guest_load[], kmmu_hw_guest_store[], kmmu_hw_guest_report[];

/* In svm_vmenter.S: VMSAVE host, VMLOAD/VMRUN/VMSAVE guest, VMLOAD host. */
void kmmu_svm_vmrun(unsigned long vmcb_pa, unsigned long host_save_pa, unsigned long *regs);

#endif
