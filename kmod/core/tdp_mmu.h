/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The TDP MMU: roots, page-table pages, and every change of an SPTE with
 * the bookkeeping that goes with it.
 */
#ifndef KMMU_TDP_MMU_H
#define KMMU_TDP_MMU_H

#include "kmmu.h"
#include "memslot.h"

struct kmmu_page_fault;

/* One page-table page, root or not. */
struct kmmu_mmu_page {
	/* In kmmu->tdp_mmu_roots, for roots only. */
	struct list_head link;
	/* The 512 SPTEs. */
	u64 *spt;
	/* First gfn the table maps. */
	gfn_t gfn;
	/* Level of the SPTEs in spt. */
	u8 level;
	/* Address space the table belongs to. */
	u8 as_id;
	/* Roots only: no new user may take it; set under mmu_lock for write. */
	bool invalid;
	/* Roots only: invalidated, not emptied yet; its own reference is still held. */
	bool scheduled_to_zap;
	/* Roots only: its own until invalidated, each vCPU's, each walker's. */
	refcount_t root_refcount;
	/* Frees the page after every lockless walker is done with it. */
	struct rcu_head rcu_head;
};

static inline struct kmmu_mmu_page *sptep_to_sp(u64 *sptep)
{
	u64 *pt = (u64 *)((unsigned long)sptep & ~(unsigned long)(KMMU_PAGE_SIZE - 1));

	return os_pt_owner(pt);
}

struct kmmu_mmu_page *kmmu_tdp_mmu_alloc_sp(struct kmmu *kmmu, u64 *spt, gfn_t gfn,
					    int level, int as_id);
int kmmu_tdp_mmu_get_vcpu_root(struct kmmu_vcpu *vcpu, int as_id);
void kmmu_tdp_mmu_put_root(struct kmmu *kmmu, struct kmmu_mmu_page *root);

int kmmu_tdp_mmu_map(struct kmmu_vcpu *vcpu, struct kmmu_page_fault *fault);
u64 *kmmu_tdp_mmu_fast_pf_get_last_sptep(struct kmmu_vcpu *vcpu, int as_id, gfn_t gfn,
					 u64 *spte, int *level);

bool kmmu_tdp_mmu_zap_leafs(struct kmmu *kmmu, int as_id, gfn_t start, gfn_t end,
			    bool can_yield, bool flush);
void kmmu_tdp_mmu_invalidate_all_roots(struct kmmu *kmmu);
void kmmu_tdp_mmu_zap_invalidated_roots(struct kmmu *kmmu);
/* What an aging pass found, in 4 KiB pages. */
struct kmmu_age_result {
	u64 young;
	u64 old;
};

bool kmmu_tdp_mmu_age_gfn_range(struct kmmu *kmmu, int as_id, gfn_t start, gfn_t end,
				bool clear, bool lockless, struct kmmu_age_result *res);
int kmmu_tdp_mmu_get_walk(struct kmmu *kmmu, int as_id, gpa_t gpa, u64 *sptes);

bool kmmu_tdp_mmu_protect_slot(struct kmmu *kmmu, const struct kmmu_memory_slot *slot,
			       bool dbit);
bool kmmu_tdp_mmu_clear_dirty_bitmap(struct kmmu *kmmu, const struct kmmu_memory_slot *slot,
				     gfn_t base, const unsigned long *bits, u64 nbits, bool dbit);
bool kmmu_tdp_mmu_harvest_dirty(struct kmmu *kmmu, const struct kmmu_memory_slot *slot,
				bool clear);
int kmmu_tdp_mmu_try_split_huge_pages(struct kmmu *kmmu, const struct kmmu_memory_slot *slot,
				      gfn_t start, gfn_t end, int target_level, bool wrprot);
void kmmu_tdp_mmu_recover_huge_pages(struct kmmu *kmmu, const struct kmmu_memory_slot *slot);

#endif /* KMMU_TDP_MMU_H */
