// SPDX-License-Identifier: GPL-2.0
/*
 * Hardware vCPUs (KMMU_CAP_HW_VCPU): the os.h side in the Linux host.
 *
 * The VM's private slot holds the guest (hw_guest.S) and its page tables,
 * which map [0, hw_gpa_limit) 1:1 with 1 GiB pages, so that the TLB entry
 * size is kmmu's NPT leaf size alone.  Each vCPU keeps its workload in the
 * guest's registers; RUN enters the guest with VMRUN on the vCPU's NPT
 * root (svm.c), and decodes each #VMEXIT into the core's STOP_* codes.
 *
 * Private slot layout, from KMMU_HW_SLOT_GPA:
 *   page 0     the guest code
 *   page 1     the guest's PML4
 *   page 2...  its PDPTs, one per 512 GiB below hw_gpa_limit
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/mm.h>
#include <linux/mman.h>
#include <linux/moduleparam.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/smp.h>
#include <linux/uaccess.h>
#include <asm/pgtable.h>
#include <asm/svm.h>
#include <asm/trap_pf.h>

#include "../core/fault.h"
#include "../core/kmmu.h"
#include "../core/tdp_mmu.h"
#include "../core/vcpu.h"
#include "svm.h"

#define HW_CODE_GPA		KMMU_HW_SLOT_GPA
#define HW_PML4_GPA		(KMMU_HW_SLOT_GPA + PAGE_SIZE)
#define HW_PDPT_GPA(i)		(KMMU_HW_SLOT_GPA + (2 + (i)) * PAGE_SIZE)
#define HW_MAX_PDPTS		(KMMU_HW_SLOT_SIZE / PAGE_SIZE - 2)
/* A guest PDPT maps 512 GiB; the guest reaches at most this far. */
#define HW_GPA_LIMIT_MAX	(HW_MAX_PDPTS << 39)
#define HW_INSN_LEN		3	/* the store, the load and VMMCALL */

#define GPTE_P			_PAGE_PRESENT
#define GPTE_RW			_PAGE_RW
#define GPTE_PS			_PAGE_PSE

/*
 * A deliberate defect for kmmu/hw_test, which must see what it breaks: a
 * TLB flush or root reload then neither kicks a hardware vCPU in guest
 * mode nor waits for it, so the guest goes on with stale translations
 * until it happens to exit.
 */
static bool hw_test_no_kick;
module_param(hw_test_no_kick, bool, 0644);
MODULE_PARM_DESC(hw_test_no_kick,
		 "testing only: requests neither kick nor wait for hardware vCPUs in guest mode");

struct kmmu_hw_vm {
	struct mm_struct *mm;	/* grabbed: where the slot's memory is mapped */
	unsigned long hva;
};

struct kmmu_hw_vcpu {
	struct kmmu_svm_vcpu svm;
	struct kmmu_vcpu *vcpu;
	u64 root_pa;		/* the NPT root of the last VMRUN; another needs a flush */
	/*
	 * On a host with 5-level paging the CPU walks nested tables with five
	 * levels too (KVM's get_npt_level()): a PML5 whose entry 0 is kmmu's
	 * 4-level root, which covers every GPA below 2^48.
	 */
	u64 *pml5;
};

static u64 hw_gpa_limit(void)
{
	return min_t(u64, 1ULL << boot_cpu_data.x86_phys_bits, HW_GPA_LIMIT_MAX);
}

/*
 * The guest code's three 3-byte instructions, where kmmu resumes after
 * MMIO and VMMCALL: a check of what the assembler made.
 */
static bool hw_guest_ok(void)
{
	static const u8 store[] = { 0x48, 0x89, 0x16 }, load[] = { 0x48, 0x8b, 0x06 },
			vmmcall[] = { 0x0f, 0x01, 0xd9 };

	return !memcmp(kmmu_hw_guest_store, store, HW_INSN_LEN) &&
	       !memcmp(kmmu_hw_guest_load, load, HW_INSN_LEN) &&
	       !memcmp(kmmu_hw_guest_report, vmmcall, HW_INSN_LEN) &&
	       kmmu_hw_guest_end - kmmu_hw_guest <= PAGE_SIZE;
}

int os_hw_supported(void)
{
	static bool said;
	int ret = kmmu_svm_supported();

	if (ret)
		return ret;
	/* Reasons kmmu_svm_init() does not know about, said once. */
	if (boot_cpu_data.x86_phys_bits < 40) {
		if (!xchg(&said, true))
			pr_info("no hardware vCPU: MAXPHYADDR %u leaves no room for the private slot at 512 GiB\n",
				boot_cpu_data.x86_phys_bits);
		return -EOPNOTSUPP;
	}
	if (!hw_guest_ok()) {
		if (!xchg(&said, true))
			pr_err("no hardware vCPU: the guest code is not as built\n");
		return -EOPNOTSUPP;
	}
	return 0;
}

/* The private slot's contents: code, PML4 and PDPTs, written at @hva. */
static int hw_fill_slot(unsigned long hva, u64 limit)
{
	unsigned int nr_pdpt = DIV_ROUND_UP(limit, 1ULL << 39), i, j;
	u64 *page;
	int ret = 0;

	page = (u64 *)get_zeroed_page(GFP_KERNEL);
	if (!page)
		return -ENOMEM;
	memcpy(page, kmmu_hw_guest, kmmu_hw_guest_end - kmmu_hw_guest);
	if (copy_to_user((void __user *)hva, page, PAGE_SIZE))
		goto fault;

	memset(page, 0, PAGE_SIZE);
	for (i = 0; i < nr_pdpt; i++)
		page[i] = HW_PDPT_GPA(i) | GPTE_P | GPTE_RW;
	if (copy_to_user((void __user *)(hva + PAGE_SIZE), page, PAGE_SIZE))
		goto fault;

	for (i = 0; i < nr_pdpt; i++) {
		for (j = 0; j < 512; j++) {
			u64 gpa = ((u64)i << 39) + ((u64)j << 30);

			page[j] = gpa < limit ? gpa | GPTE_P | GPTE_RW | GPTE_PS : 0;
		}
		if (copy_to_user((void __user *)(hva + (2 + i) * PAGE_SIZE), page, PAGE_SIZE))
			goto fault;
	}
out:
	free_page((unsigned long)page);
	return ret;
fault:
	ret = -EFAULT;
	goto out;
}

int os_hw_vm_enable(struct kmmu *kmmu, unsigned long *hvap)
{
	struct kmmu_hw_vm *hvm;
	unsigned long hva;
	int ret;

	hvm = kzalloc(sizeof(*hvm), GFP_KERNEL_ACCOUNT);
	if (!hvm)
		return -ENOMEM;
	/* As KVM's private slots: shared anonymous memory in the owner's mm. */
	hva = vm_mmap(NULL, 0, KMMU_HW_SLOT_SIZE, PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS, 0);
	if (IS_ERR_VALUE(hva)) {
		kfree(hvm);
		return (int)hva;
	}
	ret = hw_fill_slot(hva, hw_gpa_limit());
	if (ret) {
		vm_munmap(hva, KMMU_HW_SLOT_SIZE);
		kfree(hvm);
		return ret;
	}
	hvm->mm = current->mm;
	mmgrab(hvm->mm);
	hvm->hva = hva;
	kmmu->hw = hvm;
	kmmu->hw_gpa_limit = hw_gpa_limit();
	*hvap = hva;
	return 0;
}

void os_hw_vm_disable(struct kmmu *kmmu)
{
	struct kmmu_hw_vm *hvm = kmmu->hw;

	/* From elsewhere (an fd closed at exit), the mapping goes with its mm. */
	if (current->mm == hvm->mm)
		vm_munmap(hvm->hva, KMMU_HW_SLOT_SIZE);
	mmdrop(hvm->mm);
	kfree(hvm);
	kmmu->hw = NULL;
}

int os_hw_vcpu_create(struct kmmu_vcpu *vcpu)
{
	struct kmmu_hw_vcpu *hv = kzalloc(sizeof(*hv), GFP_KERNEL_ACCOUNT);
	struct vmcb_save_area *s;
	int ret;

	if (!hv)
		return -ENOMEM;
	ret = kmmu_svm_vcpu_create(&hv->svm, vcpu->id);
	if (ret) {
		kfree(hv);
		return ret;
	}
	if (pgtable_l5_enabled()) {
		hv->pml5 = (u64 *)get_zeroed_page(GFP_KERNEL_ACCOUNT);
		if (!hv->pml5) {
			kmmu_svm_vcpu_destroy(&hv->svm);
			kfree(hv);
			return -ENOMEM;
		}
	}
	hv->vcpu = vcpu;
	s = &hv->svm.vmcb->save;
	s->cr3 = HW_PML4_GPA;
	s->rip = HW_CODE_GPA;
	s->rsp = HW_CODE_GPA;	/* never used: the guest has no stack */
	vcpu->hw = hv;
	return 0;
}

void os_hw_vcpu_destroy(struct kmmu_vcpu *vcpu)
{
	struct kmmu_hw_vcpu *hv = vcpu->hw;

	kmmu_svm_vcpu_destroy(&hv->svm);
	free_page((unsigned long)hv->pml5);
	kfree(hv);
	vcpu->hw = NULL;
}

void os_hw_set_workload(struct kmmu_vcpu *vcpu)
{
	struct kmmu_hw_vcpu *hv = vcpu->hw;
	const struct kmmu_wl_state *ws = &vcpu->wls;
	const struct kmmu_workload *wl = &ws->wl;
	unsigned long *r = hv->svm.regs;

	r[KMMU_SVM_R8] = wl->gpa;
	r[KMMU_SVM_R9] = ws->per_pass;
	r[KMMU_SVM_R10] = wl->pattern == KMMU_PATTERN_STRIDE ? wl->stride : KMMU_PAGE_SIZE;
	r[KMMU_SVM_R11] = wl->seed;
	r[KMMU_SVM_RBX] = wl->write_percent;
	r[KMMU_SVM_R15] = wl->value;
	r[KMMU_SVM_RBP] = (wl->flags & KMMU_WL_XOR_GPA ? 1 : 0) |
			  (wl->pattern == KMMU_PATTERN_RANDOM ? 2 : 0);
	r[KMMU_SVM_R12] = 0;
	r[KMMU_SVM_R13] = 0;
	r[KMMU_SVM_R14] = 0;
	hv->svm.vmcb->save.rip = HW_CODE_GPA;
}

static u64 hw_rip(const u8 *label)
{
	return HW_CODE_GPA + (label - kmmu_hw_guest);
}

void os_hw_complete_mmio(struct kmmu_vcpu *vcpu, u64 data)
{
	struct vmcb_save_area *s = &((struct kmmu_hw_vcpu *)vcpu->hw)->svm.vmcb->save;

	if (s->rip == hw_rip(kmmu_hw_guest_load))
		s->rax = data;
	s->rip += HW_INSN_LEN;
}

static void hw_kick_nop(void *info)
{
}

bool os_hw_kick_cpu(int cpu)
{
	if (READ_ONCE(hw_test_no_kick))
		return false;
	/* The IPI is what makes the guest exit (INTR); nothing to do in it. */
	smp_call_function_single(cpu, hw_kick_nop, NULL, 0);
	return true;
}

static int hw_window_enter(void *ctx, int cpu, bool *flush)
{
	return kmmu_vcpu_hw_enter(ctx, cpu, flush);
}

static void hw_window_leave(void *ctx)
{
	kmmu_vcpu_hw_exit(ctx);
}

/* The guest's registers into the workload's state and RUN's counters. */
static void hw_sync_from_guest(struct kmmu_hw_vcpu *hv, struct kmmu_run *run, u64 step0)
{
	struct kmmu_wl_state *ws = &hv->vcpu->wls;
	u64 step = hv->svm.regs[KMMU_SVM_R12];

	if (step != ws->step)
		ws->refaults = 0;
	ws->step = step;
	run->accesses = step - step0;
	run->read_sum = hv->svm.regs[KMMU_SVM_R13];
}

static int hw_internal(struct kmmu_run *run, const struct kmmu_svm_exit *e, u64 rip)
{
	run->internal.gpa = e->code == SVM_EXIT_NPF ? e->info2 : 0;
	run->internal.hw_exit_code = e->code;
	run->internal.hw_info1 = e->info1;
	run->internal.hw_info2 = e->info2;
	run->internal.hw_rip = rip;
	return STOP_INTERNAL;
}

int os_hw_vcpu_run(struct kmmu_vcpu *vcpu, struct kmmu_run *run, struct kmmu_page_fault *fault)
{
	struct kmmu_hw_vcpu *hv = vcpu->hw;
	struct kmmu_wl_state *ws = &vcpu->wls;
	const struct kmmu_svm_window win = {
		.enter = hw_window_enter,
		.leave = hw_window_leave,
		.ctx = vcpu,
	};
	/* run->accesses counts from the step RUN began at. */
	u64 step0 = ws->step - run->accesses;
	u64 stop = ws->total, root_pa, ncr3, rip;
	struct kmmu_svm_exit e;
	bool flush = false;
	int ret;

	if (run->max_accesses && run->max_accesses < stop - step0)
		stop = step0 + run->max_accesses;
	hv->svm.regs[KMMU_SVM_R14] = stop;
	hv->svm.regs[KMMU_SVM_R13] = run->read_sum;
	root_pa = os_pt_to_pfn(vcpu->root[ws->as_id]->spt) << PAGE_SHIFT;
	if (root_pa != hv->root_pa) {
		flush = true;
		hv->root_pa = root_pa;
		if (hv->pml5)
			WRITE_ONCE(hv->pml5[0], root_pa | _PAGE_PRESENT | _PAGE_RW | _PAGE_USER);
	}
	ncr3 = hv->pml5 ? __pa(hv->pml5) : root_pa;

	ret = kmmu_svm_run(&hv->svm, ncr3, flush, &win, &e);
	if (ret)
		return ret;
	hw_sync_from_guest(hv, run, step0);
	rip = hv->svm.vmcb->save.rip;

	switch (e.code) {
	case SVM_EXIT_NPF:
		kmmu_vcpu_stat_inc(vcpu, KMMU_VCPU_STAT_HW_NPF_EXITS);
		memset(fault, 0, sizeof(*fault));
		fault->addr = e.info2;
		fault->gfn = e.info2 >> KMMU_PAGE_SHIFT;
		fault->as_id = ws->as_id;
		fault->present = e.info1 & X86_PF_PROT;
		fault->write = e.info1 & X86_PF_WRITE;
		fault->exec = e.info1 & X86_PF_INSTR;
		/* QEMU reports RSVD without P: MMIO is decided from RSVD alone. */
		fault->rsvd = e.info1 & X86_PF_RSVD;
		/*
		 * Only the workload's store and load touch guest memory
		 * outside the private slot: anything else there means the
		 * guest is not the code kmmu wrote.
		 */
		if (!kmmu_gfn_private(vcpu->kmmu, fault->gfn) &&
		    rip != hw_rip(kmmu_hw_guest_store) && rip != hw_rip(kmmu_hw_guest_load))
			return hw_internal(run, &e, rip);
		return STOP_FAULT;
	case SVM_EXIT_VMMCALL:
		kmmu_vcpu_stat_inc(vcpu, KMMU_VCPU_STAT_HW_VMMCALL_EXITS);
		if (rip != hw_rip(kmmu_hw_guest_report))
			return hw_internal(run, &e, rip);
		hv->svm.vmcb->save.rip = rip + HW_INSN_LEN;
		return ws->step == ws->total ? STOP_DONE : STOP_BUDGET;
	case SVM_EXIT_INTR:
	case SVM_EXIT_NMI:
	case SVM_EXIT_SMI:
		kmmu_vcpu_stat_inc(vcpu, KMMU_VCPU_STAT_HW_INTR_EXITS);
		/* The host took the interrupt after STGI; RUN checks for signals. */
		return STOP_CHUNK;
	default:
		return hw_internal(run, &e, rip);
	}
}
