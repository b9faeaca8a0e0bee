/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The shadow MMU for nested TDP: tables that map an L2 guest's addresses
 * straight to host pages, built from L1's own EPT/NPT tables and found
 * again from L1 gfns through rmaps.  NESTED.md has the design.
 */
#ifndef KMMU_SHADOW_MMU_H
#define KMMU_SHADOW_MMU_H

#include "kmmu.h"
#include "memslot.h"

struct kmmu_guest_walk;
struct kmmu_age_result;

/*
 * What a shadow page is besides the L1 gfn it shadows: two walks that
 * reach one L1 table with different permissions above it, or through an
 * EPTP with A/D on and one with A/D off, need two shadow pages.
 */
union kmmu_sp_role {
	u32 word;
	struct {
		u32 level:4;	/* of the SPTEs in the page */
		u32 access:3;	/* KMMU_ACC_* that the L1 entries above grant */
		u32 ad:1;	/* EPT: L1's EPTP turns A/D on */
		u32 direct:1;	/* maps part of an L1 huge leaf: no L1 table behind it */
		u32 as_id:1;
	};
};

struct kmmu_shadow_page {
	struct list_head hash_link;	/* in kmmu->shadow_hash; empty once zapped */
	struct list_head link;		/* in kmmu->shadow_pages until freed */
	u64 *spt;			/* the 512 SPTEs */
	gfn_t *gfns;			/* per present leaf SPTE: the first L1 gfn it maps */
	gfn_t gfn;			/* the L1 table; direct: the first L1 gfn it maps */
	union kmmu_sp_role role;
	struct kmmu_rmap_head parent_ptes;	/* the SPTEs that link it */
	int root_count;			/* vCPUs running on it; mmu_lock held for write */
	bool tracked;			/* L1 writes to gfn are write-tracked for it */
	bool invalid;			/* zapped while a vCPU ran on it */
	struct rcu_head rcu_head;
};

/* A fault links a page at every level below the root, at most. */
#define KMMU_SHADOW_CACHE_MIN	KMMU_MAX_LEVEL

int kmmu_shadow_load_root(struct kmmu_vcpu *vcpu);
void kmmu_shadow_put_root(struct kmmu_vcpu *vcpu);
int kmmu_shadow_page_fault(struct kmmu_vcpu *vcpu, const struct kmmu_guest_walk *gw,
			   unsigned long seq);
void kmmu_shadow_vcpu_free(struct kmmu_vcpu *vcpu);

bool kmmu_shadow_zap_all_locked(struct kmmu *kmmu);
void kmmu_shadow_zap_all(struct kmmu *kmmu);
bool kmmu_shadow_zap_gfn_range(struct kmmu *kmmu, int as_id, gfn_t start, gfn_t end);
bool kmmu_shadow_zap_range(struct kmmu *kmmu, int as_id, gfn_t start, gfn_t end);
bool kmmu_shadow_age_gfn_range(struct kmmu *kmmu, int as_id, gfn_t start, gfn_t end, bool clear,
			       bool fast_only, struct kmmu_age_result *res, bool *incomplete);
bool kmmu_shadow_protect_gfns(struct kmmu *kmmu, const struct kmmu_memory_slot *slot,
			      gfn_t base, const unsigned long *bits, u64 nbits);
bool kmmu_shadow_harvest_dirty(struct kmmu *kmmu, const struct kmmu_memory_slot *slot, bool clear);
bool kmmu_shadow_logging_start(struct kmmu *kmmu, struct kmmu_memory_slot *slot, bool split,
			       bool protect);
void kmmu_shadow_destroy(struct kmmu *kmmu);

int kmmu_shadow_slot_alloc(struct kmmu *kmmu, struct kmmu_memory_slot *slot);
void kmmu_shadow_slot_free(struct kmmu_memory_slot *slot);

/*
 * Does an L1 table that a shadow page shadows live in @gfn?  Then the TDP
 * MMU maps it read-only, and an L1 write to it zaps those shadow pages
 * first (kmmu_shadow_unprotect_gfn()).  Under mmu_lock, either side.
 */
static inline bool kmmu_shadow_gfn_tracked(const struct kmmu_memory_slot *slot, gfn_t gfn)
{
	return slot->shadow.track && READ_ONCE(slot->shadow.track[gfn - slot->base_gfn]);
}

void kmmu_shadow_unprotect_gfn(struct kmmu *kmmu, int as_id, gfn_t gfn);

#endif /* KMMU_SHADOW_MMU_H */
