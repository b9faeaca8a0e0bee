// SPDX-License-Identifier: GPL-2.0
/*
 * Building SPTEs: the per-VM format description, leaf and table entries,
 * MMIO entries with their memslot generation, and access tracking.
 */
#include "spte.h"

static void spte_fmt_init_ept(struct kmmu_spte_fmt *f, u32 vm_flags)
{
	f->readable = EPT_R;
	f->writable = EPT_W;
	f->executable = EPT_X;
	f->large = EPT_LARGE;
	f->host_writable = EPT_HOST_WRITABLE;
	f->mmu_writable = EPT_MMU_WRITABLE;
	f->refcounted = EPT_REFCOUNTED;
	f->spp = EPT_SPP;
	f->leaf_memtype = EPT_MT_WB | EPT_IPAT;
	f->table_bits = EPT_RWX;
	f->mmio_value = EPT_MMIO_VALUE;
	f->mmio_mask = EPT_MMIO_MASK;
	if (f->ad_enabled) {
		f->accessed = EPT_A;
		f->dirty = EPT_D;
	} else {
		f->acc_track_mask = EPT_RWX;
	}
	if (vm_flags & KMMU_VM_NONPRESENT_SUPPRESS_VE)
		f->nonpresent = EPT_SUPPRESS_VE;
}

static void spte_fmt_init_npt(struct kmmu_spte_fmt *f)
{
	f->readable = NPT_P;
	f->writable = NPT_RW;
	f->nx = NPT_NX;
	f->user = NPT_US;
	f->accessed = NPT_A;
	f->dirty = NPT_D;
	f->large = NPT_PS;
	f->host_writable = NPT_HOST_WRITABLE;
	f->mmu_writable = NPT_MMU_WRITABLE;
	f->refcounted = NPT_REFCOUNTED;
	f->table_bits = NPT_P | NPT_RW | NPT_US;
	f->mmio_value = NPT_MMIO_VALUE;
	f->mmio_mask = NPT_MMIO_MASK;
}

/**
 * kmmu_spte_fmt_init() - describe the SPTEs of one VM
 * @f: the description to fill
 * @format: KMMU_SPTE_FORMAT_EPT or KMMU_SPTE_FORMAT_NPT
 * @vm_flags: KMMU_VM_* flags already checked against KMMU_VM_VALID_FLAGS
 *
 * Return:
 * * 0       - @f describes the format
 * * -EINVAL - an EPT-only option was asked of NPT, or the format is unknown
 */
int kmmu_spte_fmt_init(struct kmmu_spte_fmt *f, u32 format, u32 vm_flags)
{
	memset(f, 0, sizeof(*f));
	f->format = format;
	f->ad_enabled = !(vm_flags & KMMU_VM_AD_DISABLED);

	switch (format) {
	case KMMU_SPTE_FORMAT_EPT:
		spte_fmt_init_ept(f, vm_flags);
		break;
	case KMMU_SPTE_FORMAT_NPT:
		/* NPT always has A/D bits and knows no #VE. */
		if (vm_flags & (KMMU_VM_AD_DISABLED | KMMU_VM_NONPRESENT_SUPPRESS_VE))
			return -EINVAL;
		spte_fmt_init_npt(f);
		break;
	default:
		return -EINVAL;
	}
	f->frozen = f->nonpresent | SPTE_FROZEN_BITS;
	return 0;
}

/**
 * spte_writable_invariants_ok() - the legal combinations of the writable bits
 * @f: format
 * @spte: a shadow-present SPTE
 *
 *   Writable  MMU-writable  Host-writable
 *      0           0             0/1      write-protected for good (host or slot)
 *      0           1              1       write-protected by kmmu, fast path may undo
 *      1           1              1       writable
 * Anything else would let the fast path make writable what must not be.
 *
 * Return: true when @spte is one of the rows above.
 */
bool spte_writable_invariants_ok(const struct kmmu_spte_fmt *f, u64 spte)
{
	if ((spte & f->mmu_writable) && !(spte & f->host_writable))
		return false;
	if ((spte & f->writable) && !(spte & f->mmu_writable))
		return false;
	return true;
}

/**
 * make_spte() - build a leaf SPTE
 * @f: format
 * @a: what to map and how
 *
 * Writes are allowed only when both the guest access and the host mapping
 * allow them; such SPTEs are MMU-writable too, so that a later
 * write-protection can be lifted by the fast page-fault path.
 *
 * A page with sub-page permissions (@a->spp, EPT 4K only) gets SPP instead
 * of W, and is never MMU-writable: the fast path must not make its whole
 * page writable.  Under write-protection logging (@a->wrprot) it gets
 * neither, so its first write faults and is logged like any other.
 *
 * Return: the SPTE.
 */
u64 make_spte(const struct kmmu_spte_fmt *f, const struct kmmu_spte_args *a)
{
	u64 spte = SPTE_MMU_PRESENT_MASK | (a->pfn << KMMU_PAGE_SHIFT);

	spte |= f->ad_enabled ? SPTE_TDP_AD_ENABLED : SPTE_TDP_AD_DISABLED;
	spte |= f->readable | f->user | f->leaf_memtype;
	if (a->access & KMMU_ACC_EXEC)
		spte |= f->executable;
	else
		spte |= f->nx;
	if (a->level > KMMU_LEVEL_4K)
		spte |= f->large;
	if (a->host_writable)
		spte |= f->host_writable;
	if (a->refcounted)
		spte |= f->refcounted;
	if (a->host_writable && (a->access & KMMU_ACC_WRITE)) {
		if (a->spp)
			spte |= a->wrprot ? 0 : f->spp;
		else
			spte |= (a->wrprot ? 0 : f->writable) | f->mmu_writable;
	}
	if (!a->prefetch)
		spte |= f->accessed;
	else if (!f->ad_enabled)
		spte = mark_spte_for_access_track(f, spte);

	WARN_ON_ONCE(!spte_writable_invariants_ok(f, spte));
	return spte;
}

/**
 * make_table_spte() - build a non-leaf SPTE pointing at a page table
 * @f: format
 * @child_pfn: the page table
 *
 * Table entries grant everything; permissions live in the leaves.
 *
 * Return: the SPTE.
 */
u64 make_table_spte(const struct kmmu_spte_fmt *f, kmmu_pfn_t child_pfn)
{
	u64 spte = SPTE_MMU_PRESENT_MASK | (child_pfn << KMMU_PAGE_SHIFT);

	spte |= f->table_bits;
	spte |= f->ad_enabled ? SPTE_TDP_AD_ENABLED : SPTE_TDP_AD_DISABLED;
	return spte;
}

/**
 * make_huge_page_split_spte() - one child of a huge leaf being split
 * @f: format
 * @huge_spte: the 2M/1G leaf
 * @child_level: level of the new table's entries
 * @index: which child, 0..511
 *
 * The child keeps every attribute of its parent (permissions, A/D, the
 * software bits) and maps its share of the parent's pfns.
 *
 * Return: the child SPTE.
 */
u64 make_huge_page_split_spte(const struct kmmu_spte_fmt *f, u64 huge_spte, int child_level,
			      int index)
{
	u64 child = huge_spte & ~SPTE_PFN_MASK;
	kmmu_pfn_t pfn = spte_to_pfn(huge_spte) + index * kmmu_pages_per_level(child_level);

	child |= pfn << KMMU_PAGE_SHIFT;
	if (child_level == KMMU_LEVEL_4K)
		child &= ~f->large;
	return child;
}

/**
 * make_mmio_spte() - an SPTE that makes the CPU exit on any access
 * @f: format
 * @gfn: guest frame it stands for
 * @gen: memslot generation when it was made
 *
 * Return: the SPTE; it is not shadow-present.
 */
u64 make_mmio_spte(const struct kmmu_spte_fmt *f, gfn_t gfn, u64 gen)
{
	u64 spte = f->mmio_value | (gfn << KMMU_PAGE_SHIFT);

	gen &= MMIO_GEN_MASK;
	spte |= (gen << MMIO_GEN_LOW_SHIFT) & MMIO_GEN_LOW_MASK;
	spte |= (gen << MMIO_GEN_HIGH_SHIFT) & MMIO_GEN_HIGH_MASK;
	return spte;
}

u64 mmio_spte_gen(u64 spte)
{
	u64 gen;

	gen = (spte & MMIO_GEN_LOW_MASK) >> MMIO_GEN_LOW_SHIFT;
	gen |= (spte & MMIO_GEN_HIGH_MASK) >> MMIO_GEN_HIGH_SHIFT;
	return gen;
}

gfn_t mmio_spte_gfn(u64 spte)
{
	return (spte & SPTE_PFN_MASK) >> KMMU_PAGE_SHIFT;
}

/**
 * mark_spte_for_access_track() - make the next access fault so it is seen
 * @f: format
 * @spte: a shadow-present leaf
 *
 * With A/D bits, clearing A is enough.  Without, R and X are saved in the
 * software bits and R/W/X cleared: the next access takes an EPT violation
 * that the fast page-fault path repairs.  W is not saved; the fast path
 * grants it again from MMU-writable on a write.
 *
 * Return: the new SPTE.
 */
u64 mark_spte_for_access_track(const struct kmmu_spte_fmt *f, u64 spte)
{
	if (spte_ad_enabled(spte))
		return spte & ~f->accessed;
	if (is_access_track_spte(f, spte))
		return spte;

	WARN_ON_ONCE(spte & SPTE_ACC_TRACK_SAVED_MASK);
	spte |= (spte & SPTE_ACC_TRACK_SAVED_BITS) << SPTE_ACC_TRACK_SAVED_SHIFT;
	return spte & ~f->acc_track_mask;
}

u64 restore_acc_track_spte(u64 spte)
{
	u64 saved = (spte >> SPTE_ACC_TRACK_SAVED_SHIFT) & SPTE_ACC_TRACK_SAVED_BITS;

	spte &= ~SPTE_ACC_TRACK_SAVED_MASK;
	return spte | saved;
}

/**
 * is_access_allowed() - would the CPU let @access through this leaf?
 * @f: format
 * @spte: a shadow-present leaf
 * @access: one KMMU_ACC_* kind
 *
 * Return: true if the access needs no fault.
 */
bool is_access_allowed(const struct kmmu_spte_fmt *f, u64 spte, unsigned int access)
{
	if (is_access_track_spte(f, spte))
		return false;
	if (access & KMMU_ACC_WRITE)
		return is_writable_spte(f, spte);
	if (access & KMMU_ACC_EXEC)
		return f->executable ? (spte & f->executable) : !(spte & f->nx);
	return spte & f->readable;
}
