// SPDX-License-Identifier: GPL-2.0
/*
 * The hardware vCPU on AMD SVM (see svm.h and ../shared/notes/hw-vcpu-svm.md).
 *
 * Coexistence with kvm_amd: EFER.SVME and VM_HSAVE_PA are set, if needed,
 * and restored inside one IRQs-off window around each VMRUN.  kvm_amd turns
 * SVM on and off from IPIs and CPU-hotplug callbacks, neither of which can
 * run inside that window, so it never finds them changed; kmmu never
 * registers the single emergency-disable callback, which KVM owns.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/io.h>
#include <linux/moduleparam.h>
#include <linux/sysfs.h>
#include <linux/percpu.h>
#include <linux/slab.h>
#include <linux/gfp.h>
#include <linux/mm.h>
#include <asm/cpufeature.h>
#include <asm/debugreg.h>
#include <asm/mem_encrypt.h>
#include <asm/msr.h>
#include <asm/processor.h>
#include <asm/svm.h>

#include "svm.h"

#define KMMU_IOPM_PAGES		3	/* 12 KiB: every I/O port */
#define KMMU_MSRPM_PAGES	2	/* 8 KiB: every MSR */
/* DR7 with only its always-one bit 10 (DR7_FIXED_1, not in 6.1's headers). */
#define KMMU_DR7_RESET		0x400

static int hw_mode = KMMU_HW_EXCLUSIVE;
static const char *const hw_mode_names[] = { "off", "exclusive", "borrow" };

static int hw_mode_set(const char *val, const struct kernel_param *kp)
{
	int i = sysfs_match_string(hw_mode_names, val);

	if (i < 0)
		return -EINVAL;
	/* Read at module load only: vCPUs made before a change would mix modes. */
	hw_mode = i;
	return 0;
}

static int hw_mode_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%s\n", hw_mode_names[hw_mode]);
}

static const struct kernel_param_ops hw_mode_ops = {
	.set = hw_mode_set,
	.get = hw_mode_get,
};
module_param_cb(hw_vcpu, &hw_mode_ops, NULL, 0444);
MODULE_PARM_DESC(hw_vcpu, "hardware vCPUs on AMD SVM: off, exclusive (the default) or borrow");

/* Per CPU: kmmu's VM_HSAVE_PA page, and where VMSAVE keeps the host's state. */
struct kmmu_svm_cpu {
	struct page	*hsave, *host_save;
	/* The vCPU whose ASID was last run here: another needs a flush. */
	struct kmmu_svm_vcpu *asid_owner[64];
};

static DEFINE_PER_CPU(struct kmmu_svm_cpu, svm_cpu);
static int svm_status = -ENODEV;	/* 0 once kmmu_svm_init() found all it needs */
static u32 svm_nasid;
/* An NPT root with nothing mapped: borrow mode's flushing VMRUN walks it. */
static struct page *svm_empty_root;

int kmmu_svm_supported(void)
{
	return svm_status;
}

enum kmmu_hw_mode kmmu_svm_mode(void)
{
	return hw_mode;
}

static int svm_refuse(int err, const char *why)
{
	pr_info("no hardware vCPU: %s\n", why);
	svm_status = err;
	return err;
}

static void svm_free_pages(void)
{
	int cpu;

	if (svm_empty_root)
		__free_page(svm_empty_root);
	svm_empty_root = NULL;
	for_each_possible_cpu(cpu) {
		struct kmmu_svm_cpu *sc = per_cpu_ptr(&svm_cpu, cpu);

		if (sc->hsave)
			__free_page(sc->hsave);
		if (sc->host_save)
			__free_page(sc->host_save);
		sc->hsave = NULL;
		sc->host_save = NULL;
	}
}

int kmmu_svm_init(void)
{
	u64 vm_cr;
	int cpu;

	if (hw_mode == KMMU_HW_OFF)
		return svm_refuse(-EOPNOTSUPP, "hw_vcpu=off");
	if (boot_cpu_data.x86_vendor != X86_VENDOR_AMD &&
	    boot_cpu_data.x86_vendor != X86_VENDOR_HYGON)
		return svm_refuse(-EOPNOTSUPP, "not an AMD CPU (Intel VMX is not supported)");
	if (!boot_cpu_has(X86_FEATURE_SVM))
		return svm_refuse(-EOPNOTSUPP, "the CPU has no SVM");
	if (!boot_cpu_has(X86_FEATURE_NPT))
		return svm_refuse(-EOPNOTSUPP, "the CPU has no nested paging (NPT)");
	rdmsrl(MSR_VM_CR, vm_cr);
	if (vm_cr & SVM_VM_CR_SVM_DIS_MASK)
		return svm_refuse(-EPERM, "SVM is disabled by the firmware (VM_CR.SVMDIS)");
	if (boot_cpu_data.x86_phys_bits >= 52)
		return svm_refuse(-EOPNOTSUPP,
				  "MAXPHYADDR is 52: no reserved bit is left for MMIO SPTEs");
	if (sme_me_mask)
		return svm_refuse(-EOPNOTSUPP, "SME is active: SPTEs would need the C-bit");
	svm_nasid = cpuid_ebx(SVM_CPUID_FUNC);
	if (svm_nasid < 2)
		return svm_refuse(-EOPNOTSUPP, "the CPU has no ASID for a guest");

	svm_empty_root = alloc_page(GFP_KERNEL | __GFP_ZERO);
	if (!svm_empty_root)
		return svm_refuse(-ENOMEM, "no memory for the empty NPT root");
	for_each_possible_cpu(cpu) {
		struct kmmu_svm_cpu *sc = per_cpu_ptr(&svm_cpu, cpu);

		sc->hsave = alloc_pages_node(cpu_to_node(cpu), GFP_KERNEL | __GFP_ZERO, 0);
		sc->host_save = alloc_pages_node(cpu_to_node(cpu), GFP_KERNEL | __GFP_ZERO, 0);
		if (!sc->hsave || !sc->host_save) {
			svm_free_pages();
			return svm_refuse(-ENOMEM, "no memory for the per-CPU save areas");
		}
	}
	svm_status = 0;
	pr_info("hardware vCPUs on SVM with NPT, %s mode, %u ASIDs\n", hw_mode_names[hw_mode],
		svm_nasid);
	return 0;
}

void kmmu_svm_exit(void)
{
	svm_free_pages();
	svm_status = -ENODEV;
}

static void set_intercept(struct vmcb *vmcb, unsigned int bit)
{
	vmcb->control.intercepts[bit / 32] |= 1u << (bit % 32);
}

/*
 * A 64-bit guest at CPL0 that can reach nothing of the host's: every
 * exception, port, MSR, CR and DR write, and every SVM instruction exits.
 * Its code, stack and tables are the caller's to write; rip, rsp, cr3 and
 * the registers are set before each RUN.
 */
static void svm_init_vmcb(struct kmmu_svm_vcpu *v)
{
	struct vmcb_control_area *c = &v->vmcb->control;
	struct vmcb_save_area *s = &v->vmcb->save;
	static const unsigned int intercepts[] = {
		INTERCEPT_CR0_WRITE, INTERCEPT_CR3_WRITE, INTERCEPT_CR4_WRITE,
		INTERCEPT_CR8_WRITE, INTERCEPT_INTR, INTERCEPT_NMI, INTERCEPT_SMI,
		INTERCEPT_INIT, INTERCEPT_CPUID, INTERCEPT_INVD, INTERCEPT_HLT,
		INTERCEPT_INVLPGA, INTERCEPT_IOIO_PROT, INTERCEPT_MSR_PROT,
		INTERCEPT_TASK_SWITCH, INTERCEPT_SHUTDOWN, INTERCEPT_VMRUN,
		INTERCEPT_VMMCALL, INTERCEPT_VMLOAD, INTERCEPT_VMSAVE, INTERCEPT_STGI,
		INTERCEPT_CLGI, INTERCEPT_SKINIT, INTERCEPT_WBINVD, INTERCEPT_MONITOR,
		INTERCEPT_MWAIT, INTERCEPT_XSETBV, INTERCEPT_RDPRU,
	};
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(intercepts); i++)
		set_intercept(v->vmcb, intercepts[i]);
	for (i = 0; i < 8; i++) {
		set_intercept(v->vmcb, INTERCEPT_DR0_READ + i);
		set_intercept(v->vmcb, INTERCEPT_DR0_WRITE + i);
	}
	c->intercepts[INTERCEPT_EXCEPTION] = ~0u;
	c->iopm_base_pa = __pa(v->iopm);
	c->msrpm_base_pa = __pa(v->msrpm);
	c->asid = v->asid;
	c->int_ctl = V_INTR_MASKING_MASK;
	c->nested_ctl = SVM_NESTED_CTL_NP_ENABLE;
	c->clean = 0;

	s->cs = (struct vmcb_seg){ .selector = 8, .attrib = 0xa9b, .limit = 0xffffffff };
	s->ds = (struct vmcb_seg){ .selector = 0x10, .attrib = 0xc93, .limit = 0xffffffff };
	s->es = s->ds;
	s->ss = s->ds;
	s->fs = (struct vmcb_seg){ .attrib = 0x93, .limit = 0xffff };
	s->gs = s->fs;
	s->ldtr = (struct vmcb_seg){ .attrib = 0x82, .limit = 0xffff };
	s->tr = (struct vmcb_seg){ .attrib = 0x8b, .limit = 0xffff };
	s->efer = EFER_SVME | EFER_LME | EFER_LMA | EFER_NX;
	s->cr0 = X86_CR0_PE | X86_CR0_ET | X86_CR0_NE | X86_CR0_WP | X86_CR0_PG;
	s->cr4 = X86_CR4_PAE;
	s->rflags = X86_EFLAGS_FIXED;
	s->cpl = 0;
	s->dr6 = DR6_RESERVED;
	s->dr7 = KMMU_DR7_RESET;
	s->g_pat = 0x0007040600070406ULL;
}

int kmmu_svm_vcpu_create(struct kmmu_svm_vcpu *v, unsigned int id)
{
	struct page *vmcb, *iopm, *msrpm;

	if (svm_status)
		return svm_status;
	memset(v, 0, sizeof(*v));
	vmcb = alloc_page(GFP_KERNEL_ACCOUNT | __GFP_ZERO);
	iopm = alloc_pages(GFP_KERNEL_ACCOUNT, get_order(KMMU_IOPM_PAGES * PAGE_SIZE));
	msrpm = alloc_pages(GFP_KERNEL_ACCOUNT, get_order(KMMU_MSRPM_PAGES * PAGE_SIZE));
	if (!vmcb || !iopm || !msrpm) {
		if (vmcb)
			__free_page(vmcb);
		if (iopm)
			__free_pages(iopm, get_order(KMMU_IOPM_PAGES * PAGE_SIZE));
		if (msrpm)
			__free_pages(msrpm, get_order(KMMU_MSRPM_PAGES * PAGE_SIZE));
		return -ENOMEM;
	}
	v->vmcb = page_address(vmcb);
	v->vmcb_pa = page_to_phys(vmcb);
	v->iopm = page_address(iopm);
	v->msrpm = page_address(msrpm);
	memset(v->iopm, 0xff, KMMU_IOPM_PAGES * PAGE_SIZE);
	memset(v->msrpm, 0xff, KMMU_MSRPM_PAGES * PAGE_SIZE);
	/* ASID 0 is the host's; they are shared out round robin. */
	v->asid = 1 + id % (min_t(u32, svm_nasid, 64) - 1);
	v->last_cpu = -1;
	svm_init_vmcb(v);
	return 0;
}

void kmmu_svm_vcpu_destroy(struct kmmu_svm_vcpu *v)
{
	int cpu;

	if (!v->vmcb)
		return;
	for_each_possible_cpu(cpu) {
		struct kmmu_svm_cpu *sc = per_cpu_ptr(&svm_cpu, cpu);

		cmpxchg(&sc->asid_owner[v->asid], v, NULL);
	}
	__free_page(virt_to_page(v->vmcb));
	__free_pages(virt_to_page(v->iopm), get_order(KMMU_IOPM_PAGES * PAGE_SIZE));
	__free_pages(virt_to_page(v->msrpm), get_order(KMMU_MSRPM_PAGES * PAGE_SIZE));
	v->vmcb = NULL;
}

static inline void svm_clgi(void)
{
	asm volatile("clgi" ::: "memory");
}

static inline void svm_stgi(void)
{
	asm volatile("stgi" ::: "memory");
}

/*
 * Borrow mode, before the CPU goes back to the other hypervisor: no TLB
 * entry of kmmu's guest may stay under an ASID that hypervisor hands to
 * its own guests without a flush.  A VMRUN that flushes every ASID, on an
 * NPT with nothing mapped, takes #NPF at the guest's first fetch and
 * caches nothing.  The guest's state is as the last exit left it and
 * nothing of it runs: the same registers come back.  Called with GIF=0
 * and IRQs off, right after the guest's own VMRUN.
 */
static void svm_flush_run(struct kmmu_svm_vcpu *v, struct kmmu_svm_cpu *sc)
{
	struct vmcb_control_area *c = &v->vmcb->control;
	u64 ncr3 = c->nested_cr3;

	c->nested_cr3 = page_to_phys(svm_empty_root);
	c->tlb_ctl = TLB_CONTROL_FLUSH_ALL_ASID;
	kmmu_svm_vmrun(v->vmcb_pa, page_to_phys(sc->host_save), v->regs);
	WARN_ONCE(c->exit_code != SVM_EXIT_NPF, "kmmu: the flushing VMRUN exited with %#x\n",
		  c->exit_code);
	c->nested_cr3 = ncr3;
	c->tlb_ctl = TLB_CONTROL_DO_NOTHING;
	/* The next entry flushes again: another hypervisor's guests come in between. */
}

int kmmu_svm_run(struct kmmu_svm_vcpu *v, u64 ncr3, bool flush,
		 const struct kmmu_svm_window *win, struct kmmu_svm_exit *exit)
{
	struct vmcb_control_area *c = &v->vmcb->control;
	struct kmmu_svm_cpu *sc;
	unsigned long flags;
	u64 efer, hsave;
	bool borrowed;
	int cpu;

	if (svm_status)
		return svm_status;
	local_irq_save(flags);
	cpu = smp_processor_id();
	sc = this_cpu_ptr(&svm_cpu);
	rdmsrl(MSR_EFER, efer);

	/* Another hypervisor has SVM on here: only borrow mode runs beside it. */
	borrowed = efer & EFER_SVME;
	if (borrowed && hw_mode != KMMU_HW_BORROW) {
		local_irq_restore(flags);
		return -EBUSY;
	}
	if (win) {
		int ret = win->enter(win->ctx, cpu, &flush);

		if (ret) {
			local_irq_restore(flags);
			return ret;
		}
	}
	/*
	 * A new CPU, another vCPU's entries under this ASID, a request, or
	 * the other hypervisor's guests, which may have used it meanwhile.
	 */
	if (flush || borrowed || v->last_cpu != cpu || sc->asid_owner[v->asid] != v)
		c->tlb_ctl = TLB_CONTROL_FLUSH_ALL_ASID;
	else
		c->tlb_ctl = TLB_CONTROL_DO_NOTHING;
	sc->asid_owner[v->asid] = v;
	v->last_cpu = cpu;
	c->nested_cr3 = ncr3;

	if (!borrowed)
		wrmsrl(MSR_EFER, efer | EFER_SVME);
	rdmsrl(MSR_VM_HSAVE_PA, hsave);
	wrmsrl(MSR_VM_HSAVE_PA, page_to_phys(sc->hsave));
	svm_clgi();
	/* IF=1 at VMRUN lets an interrupt exit the guest; GIF=0 holds it until STGI. */
	raw_local_irq_enable();
	kmmu_svm_vmrun(v->vmcb_pa, page_to_phys(sc->host_save), v->regs);
	raw_local_irq_disable();
	if (win)
		win->leave(win->ctx);
	exit->code = ((u64)c->exit_code_hi << 32) | c->exit_code;
	exit->info1 = c->exit_info_1;
	exit->info2 = c->exit_info_2;
	if (borrowed)
		svm_flush_run(v, sc);
	svm_stgi();
	wrmsrl(MSR_VM_HSAVE_PA, hsave);
	/* STGI needs SVME: it goes only after. */
	if (!borrowed)
		wrmsrl(MSR_EFER, efer);
	/* #VMEXIT clears the host's DR7 on real hardware. */
	if (hw_breakpoint_active())
		hw_breakpoint_restore();
	local_irq_restore(flags);

	c->tlb_ctl = TLB_CONTROL_DO_NOTHING;
	return 0;
}

/*
 * hw_selftest=1: at load, run a tiny guest on an NPT of its own and log
 * what the CPU did.  Guest physical layout: code at 0x1000, the guest's
 * PML4 at 0x2000 and PDPT (1 GiB pages, identity) at 0x3000, all mapped by
 * 4K NPT leaves; 0x200000 is left unmapped for a #NPF.
 */
static bool hw_selftest;
module_param(hw_selftest, bool, 0444);
MODULE_PARM_DESC(hw_selftest, "run a guest on SVM at load and log its exits (testing)");

#define ST_PAGES	4	/* GPA 0..0x4000 */
#define ST_NPT_PAGES	5	/* PML4, PDPT, PD, PT, and a PML5 on 5-level hosts */
#define NPT_P		(_PAGE_PRESENT | _PAGE_RW | _PAGE_USER)

static const u8 st_code[] = {
	0xb8, 0x34, 0x12, 0x00, 0x00,			/* mov $0x1234, %eax */
	0x89, 0x04, 0x25, 0x00, 0x08, 0x00, 0x00,	/* mov %eax, 0x800 */
	0x0f, 0x01, 0xd9,				/* vmmcall */
	0x48, 0x8b, 0x04, 0x25, 0x00, 0x00, 0x20, 0x00,	/* mov 0x200000, %rax */
	0xf4,						/* hlt */
};

/* One VMRUN, entered again after INTR exits: an interrupt can come anywhere. */
static int st_run(struct kmmu_svm_vcpu *v, u64 ncr3, bool flush, struct kmmu_svm_exit *e)
{
	int i, r;

	for (i = 0; i < 100; i++) {
		r = kmmu_svm_run(v, ncr3, flush && !i, NULL, e);
		if (r || e->code != SVM_EXIT_INTR)
			break;
	}
	return r;
}

void kmmu_svm_selftest(void)
{
	struct page *pg[ST_PAGES + ST_NPT_PAGES] = { NULL };
	u64 *npt[4], *gpa_page[ST_PAGES], ncr3;
	struct kmmu_svm_vcpu v;
	struct kmmu_svm_exit e1 = { 0 }, e2 = { 0 };
	int i, r1 = -1, r2 = -1;
	u64 rax1 = 0, leaf_code = 0, leaf_data = 0;

	if (!hw_selftest || svm_status)
		return;
	for (i = 0; i < ST_PAGES + ST_NPT_PAGES; i++) {
		pg[i] = alloc_page(GFP_KERNEL | __GFP_ZERO);
		if (!pg[i])
			goto out;
	}
	for (i = 0; i < 4; i++)
		npt[i] = page_address(pg[ST_PAGES + i]);	/* PML4, PDPT, PD, PT */
	for (i = 0; i < ST_PAGES; i++)
		gpa_page[i] = page_address(pg[i]);
	npt[0][0] = page_to_phys(pg[ST_PAGES + 1]) | NPT_P;
	npt[1][0] = page_to_phys(pg[ST_PAGES + 2]) | NPT_P;
	npt[2][0] = page_to_phys(pg[ST_PAGES + 3]) | NPT_P;
	for (i = 0; i < ST_PAGES; i++)
		npt[3][i] = page_to_phys(pg[i]) | NPT_P;
	/* With 5-level host paging the nested walk has five levels too. */
	ncr3 = page_to_phys(pg[ST_PAGES]);
	if (pgtable_l5_enabled()) {
		*(u64 *)page_address(pg[ST_PAGES + 4]) = ncr3 | NPT_P;
		ncr3 = page_to_phys(pg[ST_PAGES + 4]);
	}
	memcpy(gpa_page[1], st_code, sizeof(st_code));
	gpa_page[2][0] = 0x3000 | NPT_P;			/* guest PML4 -> PDPT */
	gpa_page[3][0] = 0x0 | NPT_P | _PAGE_PSE;		/* 1 GiB at 0 */

	if (kmmu_svm_vcpu_create(&v, 0))
		goto out;
	v.vmcb->save.rip = 0x1000;
	v.vmcb->save.rsp = 0x1000;
	v.vmcb->save.cr3 = 0x2000;
	r1 = st_run(&v, ncr3, true, &e1);
	rax1 = v.vmcb->save.rax;
	if (!r1 && e1.code == SVM_EXIT_VMMCALL) {
		v.vmcb->save.rip += 3;
		r2 = st_run(&v, ncr3, false, &e2);
	}
	leaf_code = npt[3][1];
	leaf_data = npt[3][0];
	pr_info("hw self-test: run %d exit %#llx rax %#llx; run %d exit %#llx info %#llx %#llx; leaves: code %#llx data %#llx\n",
		r1, e1.code, rax1, r2, e2.code, e2.info1, e2.info2, leaf_code, leaf_data);
	/*
	 * VMMCALL with the guest's RAX; a read of an unmapped GPA: #NPF, not
	 * present, on the final GPA (bit 32); the CPU set A on the code's
	 * leaf and A and D on the written page's, and the data is there.
	 */
	if (!r1 && e1.code == SVM_EXIT_VMMCALL && rax1 == 0x1234 && !r2 &&
	    e2.code == SVM_EXIT_NPF && e2.info2 == 0x200000 &&
	    (e2.info1 & (BIT_ULL(32) | BIT_ULL(1) | BIT_ULL(0))) == BIT_ULL(32) &&
	    (leaf_code & _PAGE_ACCESSED) && (leaf_data & (_PAGE_ACCESSED | _PAGE_DIRTY)) ==
	    (_PAGE_ACCESSED | _PAGE_DIRTY) && *(u32 *)((u8 *)gpa_page[0] + 0x800) == 0x1234)
		pr_info("hw self-test: ok, %d-level NPT\n", pgtable_l5_enabled() ? 5 : 4);
	else
		pr_info("hw self-test: failed\n");
	kmmu_svm_vcpu_destroy(&v);
out:
	for (i = 0; i < ST_PAGES + ST_NPT_PAGES; i++)
		if (pg[i])
			__free_page(pg[i]);
}
