// SPDX-License-Identifier: GPL-2.0
/*
 * kmmu_test.ko: memory that has a struct page but must not be refcounted.
 * Each mmap() of /dev/kmmu_test allocates a higher-order page without
 * __GFP_COMP -- its tail pages have a refcount of 0 and belong to the head
 * -- and maps the tail pages with remap_pfn_range() (VM_PFNMAP | VM_IO).
 * An MMU that took a reference on such a pfn and dropped it would free a
 * tail page on its own; the GET_REFCOUNTS ioctl lets a test check that the
 * counts never move.
 *
 * GET_PAGES reports what the kernel knows of the caller's own pages (dirty,
 * referenced, counts): what kmmu told the host about them.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/version.h>

#include "../include/uapi/linux/kmmu_test.h"

struct kmmu_test_block {
	struct page *head;
	unsigned int order;
	unsigned long npages;	/* tail pages mapped */
};

static void kmmu_test_vma_close(struct vm_area_struct *vma)
{
	struct kmmu_test_block *b = vma->vm_private_data;

	__free_pages(b->head, b->order);
	kfree(b);
}

/* One vma, one block: a split would free the block twice. */
static int kmmu_test_vma_may_split(struct vm_area_struct *vma, unsigned long addr)
{
	return -EINVAL;
}

static const struct vm_operations_struct kmmu_test_vm_ops = {
	.close = kmmu_test_vma_close,
	.may_split = kmmu_test_vma_may_split,
};

static int kmmu_test_mmap(struct file *file, struct vm_area_struct *vma)
{
	unsigned long size = vma->vm_end - vma->vm_start;
	struct kmmu_test_block *b;
	int ret;

	if (vma->vm_pgoff || !size || size > KMMU_TEST_MAX_MAP)
		return -EINVAL;
	b = kzalloc(sizeof(*b), GFP_KERNEL);
	if (!b)
		return -ENOMEM;
	b->npages = size >> PAGE_SHIFT;
	b->order = get_order(size + PAGE_SIZE);
	/* No __GFP_COMP: the tail pages keep refcount 0, as in the bug this guards. */
	b->head = alloc_pages(GFP_KERNEL | __GFP_ZERO, b->order);
	if (!b->head) {
		kfree(b);
		return -ENOMEM;
	}
	ret = remap_pfn_range(vma, vma->vm_start, page_to_pfn(b->head) + 1, size,
			      vma->vm_page_prot);
	if (ret) {
		__free_pages(b->head, b->order);
		kfree(b);
		return ret;
	}
	/* Nor may a fork share it. */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
	vm_flags_set(vma, VM_DONTCOPY);
#else
	vma->vm_flags |= VM_DONTCOPY;
#endif
	vma->vm_private_data = b;
	vma->vm_ops = &kmmu_test_vm_ops;
	return 0;
}

static long kmmu_test_get_refcounts(unsigned long arg)
{
	struct kmmu_test_refcounts r;
	struct vm_area_struct *vma;
	struct kmmu_test_block *b;
	s32 __user *out;
	long ret = 0;
	u32 i;

	if (copy_from_user(&r, (void __user *)arg, sizeof(r)))
		return -EFAULT;
	if (r.reserved)
		return -EINVAL;
	out = u64_to_user_ptr(r.refs);

	mmap_read_lock(current->mm);
	vma = vma_lookup(current->mm, r.addr);
	if (!vma || vma->vm_ops != &kmmu_test_vm_ops || vma->vm_start != r.addr) {
		ret = -EINVAL;
		goto out;
	}
	b = vma->vm_private_data;
	if (r.nr > b->npages + 1) {
		ret = -EINVAL;
		goto out;
	}
	for (i = 0; i < r.nr; i++) {
		if (put_user(page_ref_count(b->head + i), out + i)) {
			ret = -EFAULT;
			break;
		}
	}
out:
	mmap_read_unlock(current->mm);
	return ret;
}

/*
 * The page mapped at @addr in the caller's page tables, with a reference on
 * its folio, or NULL.  Not gup: since 6.3 gup-fast marks every page it
 * returns referenced (and the slow path touches them), which would hide the
 * very mark a test reads.  Walked as gup-fast does, with interrupts off so
 * the tables cannot be freed, and the entry read again once the reference
 * is taken.
 */
static struct page *kmmu_test_page_get(unsigned long addr, bool *huge)
{
	struct mm_struct *mm = current->mm;
	struct page *page = NULL;
	u64 entry, *entryp;
	unsigned long flags;
	pmd_t pmd, *pmdp;
	pud_t pud, *pudp;
	pte_t pte, *ptep;
	p4d_t p4d;
	pgd_t pgd;

	*huge = true;
	local_irq_save(flags);
	pgd = READ_ONCE(*pgd_offset(mm, addr));
	if (!pgd_present(pgd))
		goto out;
	p4d = READ_ONCE(*p4d_offset(&pgd, addr));
	if (!p4d_present(p4d))
		goto out;
	pudp = pud_offset(&p4d, addr);
	pud = READ_ONCE(*pudp);
	if (!pud_present(pud))
		goto out;
	if (pud_leaf(pud)) {
		page = pud_page(pud) + ((addr & ~PUD_MASK) >> PAGE_SHIFT);
		entryp = (u64 *)pudp;
		entry = pud_val(pud);
		goto grab;
	}
	pmdp = pmd_offset(&pud, addr);
	pmd = READ_ONCE(*pmdp);
	if (!pmd_present(pmd))
		goto out;
	if (pmd_leaf(pmd)) {
		page = pmd_page(pmd) + ((addr & ~PMD_MASK) >> PAGE_SHIFT);
		entryp = (u64 *)pmdp;
		entry = pmd_val(pmd);
		goto grab;
	}
	*huge = false;
	ptep = pte_offset_kernel(&pmd, addr);
	pte = READ_ONCE(*ptep);
	if (!pte_present(pte) || pte_special(pte) || !pfn_valid(pte_pfn(pte)))
		goto out;
	page = pte_page(pte);
	entryp = (u64 *)ptep;
	entry = pte_val(pte);
grab:
	if (!folio_try_get(page_folio(page))) {
		page = NULL;
	} else if (READ_ONCE(*entryp) != entry) {
		folio_put(page_folio(page));
		page = NULL;
	}
out:
	local_irq_restore(flags);
	return page;
}

/*
 * One page of the caller's, without faulting anything in (an unmapped page
 * reads as pfn 0): the folio's state.
 */
static void kmmu_test_page_state(unsigned long addr, bool clear, struct kmmu_test_page *p)
{
	struct folio *folio;
	struct page *page;
	bool huge;

	memset(p, 0, sizeof(*p));
	page = kmmu_test_page_get(addr, &huge);
	if (!page)
		return;
	folio = page_folio(page);
	if (huge)
		p->flags |= KMMU_TEST_PAGE_HOST_HUGE;
	p->pfn = page_to_pfn(page);
	p->refcount = folio_ref_count(folio) - 1;
	/* The one mapcount helper each kernel has for modules. */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 12, 0)
	p->mapcount = folio_mapcount(folio);
#else
	p->mapcount = page_mapcount(page);
#endif
	if (folio_test_dirty(folio))
		p->flags |= KMMU_TEST_PAGE_DIRTY;
	if (folio_test_referenced(folio))
		p->flags |= KMMU_TEST_PAGE_REFERENCED;
	if (folio_test_active(folio))
		p->flags |= KMMU_TEST_PAGE_ACTIVE;
	if (folio_test_large(folio))
		p->flags |= KMMU_TEST_PAGE_LARGE;
	if (folio_test_mlocked(folio))
		p->flags |= KMMU_TEST_PAGE_MLOCKED;
	/* A hint only: clearing it takes nothing from the kernel. */
	if (clear)
		folio_clear_referenced(folio);
	put_page(page);
}

static long kmmu_test_get_pages(unsigned long arg)
{
	struct kmmu_test_pages r;
	struct kmmu_test_page p;
	u32 i;

	if (copy_from_user(&r, (void __user *)arg, sizeof(r)))
		return -EFAULT;
	if ((r.flags & ~KMMU_TEST_CLEAR_REFERENCED) || !r.nr || r.nr > KMMU_TEST_MAX_PAGES ||
	    !PAGE_ALIGNED(r.addr))
		return -EINVAL;
	for (i = 0; i < r.nr; i++) {
		kmmu_test_page_state(r.addr + i * PAGE_SIZE, r.flags & KMMU_TEST_CLEAR_REFERENCED,
				     &p);
		if (copy_to_user(u64_to_user_ptr(r.pages) + i * sizeof(p), &p, sizeof(p)))
			return -EFAULT;
		cond_resched();
	}
	return 0;
}

static long kmmu_test_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	switch (cmd) {
	case KMMU_TEST_GET_REFCOUNTS:
		return kmmu_test_get_refcounts(arg);
	case KMMU_TEST_GET_PAGES:
		return kmmu_test_get_pages(arg);
	default:
		return -ENOTTY;
	}
}

static const struct file_operations kmmu_test_fops = {
	.owner		= THIS_MODULE,
	.mmap		= kmmu_test_mmap,
	.unlocked_ioctl	= kmmu_test_ioctl,
	.llseek		= noop_llseek,
};

static struct miscdevice kmmu_test_dev = {
	.minor	= MISC_DYNAMIC_MINOR,
	.name	= "kmmu_test",
	.fops	= &kmmu_test_fops,
	.mode	= 0600,
};

module_misc_device(kmmu_test_dev);
MODULE_DESCRIPTION("Test helper for kmmu: non-refcounted VM_PFNMAP memory");
MODULE_LICENSE("GPL");
