// SPDX-License-Identifier: GPL-2.0
/*
 * kmmu.ko: the Linux host of the MMU core.  /dev/kmmu and the VM and vCPU
 * file descriptors, os.h over the kernel's allocators, gup and page tables,
 * and an mmu_notifier on the creating process's mm that feeds the core's
 * invalidation and aging entry points.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/anon_inodes.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/mmu_notifier.h>
#include <linux/module.h>
#include <linux/pgtable.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/swap.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/version.h>
#include <linux/vmalloc.h>
#include <asm/processor.h>

#include "../core/api.h"
#include "../core/dirty_ring.h"
#include "../core/kmmu.h"
#include "../core/stats.h"

/* Last: the core's headers read the tracepoints' header already. */
#define CREATE_TRACE_POINTS
#include "kmmu_trace.h"
#include "svm.h"

static uint spte_format;
module_param(spte_format, uint, 0444);
MODULE_PARM_DESC(spte_format, "Default SPTE format: 0 = by CPU vendor, 1 = EPT, 2 = NPT");

static bool nonpresent_ve;
module_param(nonpresent_ve, bool, 0444);
MODULE_PARM_DESC(nonpresent_ve, "EPT VMs mark non-present SPTEs with suppress-#VE (default: off)");

static ushort devmode = 0600;
module_param(devmode, ushort, 0444);
MODULE_PARM_DESC(devmode, "Mode of /dev/kmmu (default 0600)");

/* What the Linux host keeps per VM. */
struct kmmu_linux_vm {
	struct mmu_notifier mn;
	struct mm_struct *mm;	/* the creator's; every ioctl must come from it */
	struct kmmu *kmmu;
};

static struct kmmu_linux_vm *to_linux_vm(struct kmmu *kmmu)
{
	return kmmu->host;
}

/* ---- os.h: memory ---- */

void *os_zalloc(size_t size)
{
	return kvzalloc(size, GFP_KERNEL_ACCOUNT);
}

void os_free(void *p)
{
	kvfree(p);
}

void *os_ring_alloc(size_t size)
{
	/* VM_USERMAP, for remap_vmalloc_range(); zeroed. */
	return vmalloc_user(size);
}

void os_ring_free(void *p)
{
	vfree(p);
}

u64 *os_pt_alloc(void)
{
	return (u64 *)get_zeroed_page(GFP_KERNEL_ACCOUNT);
}

void os_pt_free(u64 *pt)
{
	free_page((unsigned long)pt);
}

kmmu_pfn_t os_pt_to_pfn(u64 *pt)
{
	return __pa(pt) >> PAGE_SHIFT;
}

u64 *os_pfn_to_pt(kmmu_pfn_t pfn)
{
	return __va(pfn << PAGE_SHIFT);
}

void os_pt_set_owner(u64 *pt, void *owner)
{
	set_page_private(virt_to_page(pt), (unsigned long)owner);
}

void *os_pt_owner(u64 *pt)
{
	return (void *)page_private(virt_to_page(pt));
}

/* ---- os.h: host pages ---- */

/*
 * A VM_PFNMAP/VM_IO mapping has no struct page we may count on (it may be
 * a tail of a non-compound allocation whose refcount is not ours to touch,
 * or have no struct page at all): read the pfn from the page table and
 * never take a reference.  The lookup API changed in 6.12.
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 12, 0)
static int kmmu_follow_pfn(struct vm_area_struct *vma, unsigned long hva, kmmu_pfn_t *pfn,
			   bool *writable)
{
	struct follow_pfnmap_args args = { .vma = vma, .address = hva };
	int ret = follow_pfnmap_start(&args);

	if (ret)
		return ret;
	*pfn = args.pfn;
	*writable = args.writable;
	follow_pfnmap_end(&args);
	return 0;
}
#else
static int kmmu_follow_pfn(struct vm_area_struct *vma, unsigned long hva, kmmu_pfn_t *pfn,
			   bool *writable)
{
	spinlock_t *ptl;
	pte_t *ptep;
	int ret = follow_pte(vma->vm_mm, hva, &ptep, &ptl);

	if (ret)
		return ret;
	/* follow_pte() returns with *ptl held; 6.1 does not annotate it. */
	__acquire(ptl);
	*pfn = pte_pfn(*ptep);
	*writable = pte_write(*ptep);
	pte_unmap_unlock(ptep, ptl);
	return 0;
}
#endif

static int kmmu_hva_to_pfn_remapped(struct mm_struct *mm, struct os_pfn_req *req)
{
	struct vm_area_struct *vma;
	bool unlocked = false;
	int ret = -EFAULT;

	mmap_read_lock(mm);
	vma = vma_lookup(mm, req->hva);
	if (!vma || !(vma->vm_flags & (VM_IO | VM_PFNMAP)))
		goto out;
	ret = kmmu_follow_pfn(vma, req->hva, &req->pfn, &req->writable);
	if (ret) {
		/*
		 * Not populated yet: let the mapping's fault handler do it.  If
		 * that dropped mmap_lock, the vma may be gone: fault again.
		 */
		ret = fixup_user_fault(mm, req->hva, req->write ? FAULT_FLAG_WRITE : 0, &unlocked);
		if (!ret && unlocked)
			ret = -EAGAIN;
		if (ret)
			goto out;
		ret = kmmu_follow_pfn(vma, req->hva, &req->pfn, &req->writable);
	}
	if (!ret && req->write && !req->writable)
		ret = -EFAULT;
out:
	mmap_read_unlock(mm);
	req->refcounted = false;
	return ret == -EAGAIN ? ret : ret ? -EFAULT : 0;
}

int os_hva_to_pfn(struct kmmu *kmmu, struct os_pfn_req *req)
{
	struct page *page;
	int npages;

	req->host = NULL;
	/* Try for a writable page even on a read, so the next write needs no fault. */
	if (req->slot_writable && get_user_page_fast_only(req->hva, FOLL_WRITE, &page)) {
		req->writable = true;
		goto found;
	}
	npages = get_user_pages_fast(req->hva, 1, req->write ? FOLL_WRITE : 0, &page);
	if (npages == -EHWPOISON || npages == -EINTR)
		return npages;
	if (fatal_signal_pending(current))
		return -EINTR;
	if (npages != 1)
		return kmmu_hva_to_pfn_remapped(to_linux_vm(kmmu)->mm, req);
	req->writable = req->write;
found:
	req->pfn = page_to_pfn(page);
	req->refcounted = true;
	return 0;
}

/* A page that can take a dirty or accessed mark (not the zero page, say). */
static bool kmmu_page_markable(kmmu_pfn_t pfn)
{
	return pfn_valid(pfn) && !PageReserved(pfn_to_page(pfn));
}

/* Called with mmu_lock held when @dirty (KVM's kvm_release_faultin_page()). */
void os_release_pfn(struct os_pfn_req *req, bool dirty)
{
	struct page *page;

	if (!req->refcounted)
		return;
	page = pfn_to_page(req->pfn);
	if (dirty && kmmu_page_markable(req->pfn))
		SetPageDirty(page);
	put_page(page);
}

/*
 * How the host maps hva, read from its page tables without locks (with
 * interrupts off, so they cannot be freed under us); a change after this
 * comes with an invalidation that makes the fault retry.
 */
int os_host_mapping_level(struct kmmu *kmmu, unsigned long hva)
{
	struct mm_struct *mm = to_linux_vm(kmmu)->mm;
	int level = KMMU_LEVEL_4K;
	unsigned long flags;
	pgd_t pgd;
	p4d_t p4d;
	pud_t pud;
	pmd_t pmd;

	local_irq_save(flags);
	pgd = READ_ONCE(*pgd_offset(mm, hva));
	if (pgd_none(pgd))
		goto out;
	p4d = READ_ONCE(*p4d_offset(&pgd, hva));
	if (p4d_none(p4d) || !p4d_present(p4d))
		goto out;
	pud = READ_ONCE(*pud_offset(&p4d, hva));
	if (pud_none(pud) || !pud_present(pud))
		goto out;
	if (pud_leaf(pud)) {
		level = KMMU_LEVEL_1G;
		goto out;
	}
	pmd = READ_ONCE(*pmd_offset(&pud, hva));
	if (pmd_none(pmd) || !pmd_present(pmd))
		goto out;
	if (pmd_leaf(pmd))
		level = KMMU_LEVEL_2M;
out:
	local_irq_restore(flags);
	return level;
}

void os_mark_pfn_accessed(kmmu_pfn_t pfn)
{
	if (kmmu_page_markable(pfn))
		mark_page_accessed(pfn_to_page(pfn));
}

void *os_guest_pfn_to_va(kmmu_pfn_t pfn)
{
	return pfn_valid(pfn) ? pfn_to_kaddr(pfn) : NULL;
}

/* ---- os.h: userspace memory ---- */

bool os_user_range_ok(unsigned long uaddr, u64 size)
{
	return access_ok((void __user *)uaddr, size);
}

int os_copy_from_user(void *dst, unsigned long uaddr, size_t size)
{
	return copy_from_user(dst, (void __user *)uaddr, size) ? -EFAULT : 0;
}

int os_copy_to_user(unsigned long uaddr, const void *src, size_t size)
{
	return copy_to_user((void __user *)uaddr, src, size) ? -EFAULT : 0;
}

/* As KVM: straight from the live bitmap, which copy_to_user() reads once. */
int os_copy_bitmap_to_user(unsigned long uaddr, const unsigned long *bitmap, unsigned long *buf,
			   size_t longs)
{
	return os_copy_to_user(uaddr, bitmap, longs * sizeof(long));
}

int os_read_user_u64(unsigned long uaddr, u64 *val)
{
	return get_user(*val, (u64 __user *)uaddr) ? -EFAULT : 0;
}

/* As KVM sets A/D bits in a guest's own page tables (paging_tmpl.h). */
int os_cmpxchg_user_u64(unsigned long uaddr, u64 old, u64 new)
{
	u64 __user *p = (u64 __user *)uaddr;
	int ret;

	if (!access_ok(p, sizeof(*p)))
		return -EFAULT;
	/* 0 when exchanged, 1 when *p was not @old, -EFAULT on a fault. */
	ret = __try_cmpxchg_user(p, &old, new, efault);
	return ret > 0 ? -EAGAIN : ret;
}

/* ---- os.h: the vCPU thread ---- */

void os_guest_enter(struct kmmu_vcpu *vcpu)
{
	preempt_disable();
}

void os_guest_exit(struct kmmu_vcpu *vcpu)
{
	preempt_enable();
}

bool os_signal_pending(void)
{
	return signal_pending(current);
}

bool os_need_resched(void)
{
	return need_resched();
}

u64 os_now_ns(void)
{
	return ktime_get_ns();
}

int os_current_pid(void)
{
	return task_pid_nr(current);
}

unsigned int os_stat_shard(void)
{
	return raw_smp_processor_id();
}

u32 os_host_spte_format(void)
{
	if (spte_format == KMMU_SPTE_FORMAT_EPT || spte_format == KMMU_SPTE_FORMAT_NPT)
		return spte_format;
	if (boot_cpu_data.x86_vendor == X86_VENDOR_AMD ||
	    boot_cpu_data.x86_vendor == X86_VENDOR_HYGON)
		return KMMU_SPTE_FORMAT_NPT;
	return KMMU_SPTE_FORMAT_EPT;
}

u32 os_host_vm_flags(u32 format)
{
	if (format == KMMU_SPTE_FORMAT_EPT && nonpresent_ve)
		return KMMU_VM_NONPRESENT_SUPPRESS_VE;
	return 0;
}

/* ---- mmu_notifier ---- */

static struct kmmu *mn_to_kmmu(struct mmu_notifier *mn)
{
	return container_of(mn, struct kmmu_linux_vm, mn)->kmmu;
}

static int kmmu_mn_invalidate_range_start(struct mmu_notifier *mn,
					  const struct mmu_notifier_range *range)
{
	kmmu_invalidate_range_start(mn_to_kmmu(mn), range->start, range->end,
				    mmu_notifier_range_blockable(range));
	return 0;
}

static void kmmu_mn_invalidate_range_end(struct mmu_notifier *mn,
					 const struct mmu_notifier_range *range)
{
	kmmu_invalidate_range_end(mn_to_kmmu(mn), range->start, range->end);
}

static int kmmu_mn_clear_flush_young(struct mmu_notifier *mn, struct mm_struct *mm,
				     unsigned long start, unsigned long end)
{
	return kmmu_age_hva_range(mn_to_kmmu(mn), start, end, true, true);
}

static int kmmu_mn_clear_young(struct mmu_notifier *mn, struct mm_struct *mm,
			       unsigned long start, unsigned long end)
{
	return kmmu_age_hva_range(mn_to_kmmu(mn), start, end, true, false);
}

static int kmmu_mn_test_young(struct mmu_notifier *mn, struct mm_struct *mm,
			      unsigned long address)
{
	return kmmu_age_hva_range(mn_to_kmmu(mn), address, address + PAGE_SIZE, false, false);
}

static void kmmu_mn_release(struct mmu_notifier *mn, struct mm_struct *mm)
{
	kmmu_release_all(mn_to_kmmu(mn));
}

static const struct mmu_notifier_ops kmmu_mmu_notifier_ops = {
	.invalidate_range_start	= kmmu_mn_invalidate_range_start,
	.invalidate_range_end	= kmmu_mn_invalidate_range_end,
	.clear_flush_young	= kmmu_mn_clear_flush_young,
	.clear_young		= kmmu_mn_clear_young,
	.test_young		= kmmu_mn_test_young,
	.release		= kmmu_mn_release,
};

int os_vm_host_attach(struct kmmu *kmmu)
{
	struct kmmu_linux_vm *lvm = kzalloc(sizeof(*lvm), GFP_KERNEL_ACCOUNT);
	int ret;

	if (!lvm)
		return -ENOMEM;
	lvm->kmmu = kmmu;
	lvm->mm = current->mm;
	lvm->mn.ops = &kmmu_mmu_notifier_ops;
	mmgrab(lvm->mm);
	kmmu->host = lvm;
	ret = mmu_notifier_register(&lvm->mn, lvm->mm);
	if (ret) {
		mmdrop(lvm->mm);
		kfree(lvm);
		kmmu->host = NULL;
	}
	return ret;
}

void os_vm_host_detach(struct kmmu *kmmu)
{
	struct kmmu_linux_vm *lvm = to_linux_vm(kmmu);

	mmu_notifier_unregister(&lvm->mn, lvm->mm);
	mmdrop(lvm->mm);
	kfree(lvm);
	kmmu->host = NULL;
}

/* ---- file descriptors ---- */

/* Like KVM: a VM belongs to the process that made it. */
static bool kmmu_caller_ok(struct kmmu *kmmu)
{
	return current->mm == to_linux_vm(kmmu)->mm;
}

static long kmmu_vm_fop_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct kmmu *kmmu = file->private_data;

	if (!kmmu_caller_ok(kmmu))
		return -EIO;
	return kmmu_vm_ioctl(kmmu, cmd, arg);
}

static int kmmu_vm_fop_release(struct inode *inode, struct file *file)
{
	kmmu_vm_release(file->private_data);
	return 0;
}

static const struct file_operations kmmu_vm_fops = {
	.owner		= THIS_MODULE,
	.unlocked_ioctl	= kmmu_vm_fop_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
	.release	= kmmu_vm_fop_release,
	.llseek		= noop_llseek,
};

static long kmmu_vcpu_fop_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct kmmu_vcpu *vcpu = file->private_data;

	if (!kmmu_caller_ok(vcpu->kmmu))
		return -EIO;
	return kmmu_vcpu_ioctl(vcpu, cmd, arg);
}

/*
 * The dirty ring.  The mapping holds the file, hence the vCPU and its
 * ring, until it goes away.  Userspace writes RESET into the entries:
 * the mapping must be shared, and is never executable.
 */
static int kmmu_vcpu_fop_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct kmmu_vcpu *vcpu = file->private_data;
	void *ring;

	if (!kmmu_caller_ok(vcpu->kmmu))
		return -EIO;
	if (!(vma->vm_flags & VM_SHARED) || (vma->vm_flags & VM_EXEC))
		return -EINVAL;
	ring = kmmu_dirty_ring_mmap(vcpu, vma->vm_pgoff, vma->vm_end - vma->vm_start);
	if (!ring)
		return -EINVAL;
	return remap_vmalloc_range(vma, ring, 0);
}

static int kmmu_vcpu_fop_release(struct inode *inode, struct file *file)
{
	kmmu_vcpu_release(file->private_data);
	return 0;
}

static const struct file_operations kmmu_vcpu_fops = {
	.owner		= THIS_MODULE,
	.unlocked_ioctl	= kmmu_vcpu_fop_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
	.mmap		= kmmu_vcpu_fop_mmap,
	.release	= kmmu_vcpu_fop_release,
	.llseek		= noop_llseek,
};

/* Like KVM's stats fds: readable from anywhere it is passed to, read-only. */
static ssize_t kmmu_stats_fop_read(struct file *file, char __user *buf, size_t size,
				   loff_t *ppos)
{
	u64 pos = *ppos;
	long ret;

	if (*ppos < 0)
		return -EINVAL;
	ret = kmmu_stats_read(file->private_data, (unsigned long)buf, size, &pos);
	if (ret > 0)
		*ppos = pos;
	return ret;
}

static int kmmu_stats_fop_release(struct inode *inode, struct file *file)
{
	kmmu_stats_fd_release(file->private_data);
	return 0;
}

static const struct file_operations kmmu_stats_fops = {
	.owner		= THIS_MODULE,
	.read		= kmmu_stats_fop_read,
	.release	= kmmu_stats_fop_release,
	.llseek		= noop_llseek,
};

/* As KVM's stats fds: pread() must work, which anon_inode_getfd() alone does not allow. */
int os_stats_fd_create(struct kmmu_stats_fd *sf)
{
	struct file *file;
	int fd;

	fd = get_unused_fd_flags(O_CLOEXEC);
	if (fd < 0)
		return fd;
	file = anon_inode_getfile("kmmu-stats", &kmmu_stats_fops, sf, O_RDONLY);
	if (IS_ERR(file)) {
		put_unused_fd(fd);
		return PTR_ERR(file);
	}
	file->f_mode |= FMODE_PREAD;
	fd_install(fd, file);
	return fd;
}

int os_vm_fd_create(struct kmmu *kmmu)
{
	return anon_inode_getfd("kmmu-vm", &kmmu_vm_fops, kmmu, O_RDWR | O_CLOEXEC);
}

int os_vcpu_fd_create(struct kmmu_vcpu *vcpu)
{
	return anon_inode_getfd("kmmu-vcpu", &kmmu_vcpu_fops, vcpu, O_RDWR | O_CLOEXEC);
}

static long kmmu_dev_fop_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	return kmmu_dev_ioctl(cmd, arg);
}

static const struct file_operations kmmu_dev_fops = {
	.owner		= THIS_MODULE,
	.unlocked_ioctl	= kmmu_dev_fop_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
	.llseek		= noop_llseek,
};

static struct miscdevice kmmu_dev = {
	.minor	= MISC_DYNAMIC_MINOR,
	.name	= "kmmu",
	.fops	= &kmmu_dev_fops,
};

static int __init kmmu_init(void)
{
	int ret;

	if (spte_format > KMMU_SPTE_FORMAT_NPT) {
		pr_err("spte_format=%u is not 0, 1 (EPT) or 2 (NPT)\n", spte_format);
		return -EINVAL;
	}
	kmmu_dev.mode = devmode;
	pr_info("SPTE format %s\n",
		os_host_spte_format() == KMMU_SPTE_FORMAT_EPT ? "EPT" : "NPT");
	/* Without it only the software vCPU runs: the reason is logged. */
	if (!kmmu_svm_init())
		kmmu_svm_selftest();
	ret = misc_register(&kmmu_dev);
	if (ret)
		kmmu_svm_exit();
	return ret;
}

static void __exit kmmu_exit(void)
{
	misc_deregister(&kmmu_dev);
	/* Page tables still waiting for a grace period are freed by our callback. */
	rcu_barrier();
	kmmu_svm_exit();
}

module_init(kmmu_init);
module_exit(kmmu_exit);
MODULE_DESCRIPTION("A KVM-style x86 TDP MMU with a software vCPU");
MODULE_LICENSE("GPL");
MODULE_VERSION(KMMU_VERSION);
