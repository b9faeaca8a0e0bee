/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Memory slots: which guest frames are backed by which userspace range.
 * A set of slots is immutable once published; a change builds a new set and
 * publishes it through srcu, so lookups take no lock.
 */
#ifndef KMMU_MEMSLOT_H
#define KMMU_MEMSLOT_H

#include "kmmu.h"

/* Pages in one slot at most, as KVM_MEM_MAX_NR_PAGES (8 TiB). */
#define KMMU_MEM_MAX_NR_PAGES	((1ULL << 31) - 1)

/* Number of huge levels that carry disallow counts: 2M and 1G. */
#define KMMU_NR_HUGE_LEVELS	2

/* The slot is being deleted or moved: faults on it retry until it is gone. */
#define KMMU_MEMSLOT_INVALID	(1u << 16)

/*
 * Set in the generation of a memslot set while its update is in progress
 * (memslots_install()): no MMIO SPTE is trusted, and the ones made carry
 * the previous generation.
 */
#define KMMU_MEMSLOT_GEN_UPDATE_IN_PROGRESS	BIT_ULL(63)

struct kmmu_memory_slot {
	gfn_t base_gfn;
	u64 npages;
	unsigned long userspace_addr;
	u32 flags;		/* KMMU_MEM_* and KMMU_MEMSLOT_INVALID */
	u16 id;
	u16 as_id;
	/*
	 * Per huge level, per huge page the slot touches: how many reasons
	 * forbid mapping it with one huge SPTE (a slot edge inside it, or a
	 * userspace address not aligned like the gfn).  Shared between the
	 * old and new copy of a slot whose flags change.
	 */
	int *disallow_lpage[KMMU_NR_HUGE_LEVELS];
	/*
	 * With KMMU_MEM_LOG_DIRTY_PAGES, unless the VM logs into dirty rings:
	 * one bit per page, then as many words again used as the buffer
	 * GET_DIRTY_LOG hands out.
	 */
	unsigned long *dirty_bitmap;
	/*
	 * With KMMU_CAP_SPP: per page, which 128-byte sub-pages the guest
	 * may write (KMMU_SUBPAGE_FULL_ACCESS: all).  Changed under slots_lock
	 * and mmu_lock held for write; shared, like the disallow counts, with
	 * the new copy of a slot whose flags change.
	 */
	u32 *spp_access;
	/*
	 * Once the VM has shadow pages (kmmu->shadow_enabled), see
	 * shadow_mmu.c.  Shared, like the disallow counts, with the new copy
	 * of a slot whose flags change; a moved slot gets its own.
	 */
	struct {
		/* Per level (4K, 2M, 1G), per frame of that size: the leaves that map it. */
		struct kmmu_rmap_head *rmap[KMMU_NR_HUGE_LEVELS + 1];
		/* Per 4K frame: the shadow pages whose L1 table is there (write-tracking). */
		u16 *track;
	} shadow;
};

/* The slot logs dirty pages (into its bitmap, or into the vCPUs' rings). */
static inline bool kmmu_slot_logging(const struct kmmu_memory_slot *slot)
{
	return slot->flags & KMMU_MEM_LOG_DIRTY_PAGES;
}

static inline unsigned long kmmu_dirty_bitmap_longs(const struct kmmu_memory_slot *slot)
{
	return DIV_ROUND_UP(slot->npages, BITS_PER_LONG);
}

struct kmmu_memslots {
	u64 generation;		/* written once more at the end of the update */
	int nr;					/* slots in by_gfn */
	struct kmmu_memory_slot *by_gfn[KMMU_MEM_SLOTS_NUM];	/* sorted by base_gfn */
	struct kmmu_memory_slot *by_id[KMMU_MEM_SLOTS_NUM];
};

static inline struct kmmu_memslots *kmmu_memslots(struct kmmu *kmmu, int as_id)
{
	return srcu_dereference(kmmu->memslots[as_id], &kmmu->srcu);
}

static inline gfn_t kmmu_slot_end(const struct kmmu_memory_slot *slot)
{
	return slot->base_gfn + slot->npages;
}

static inline unsigned long kmmu_gfn_to_hva(const struct kmmu_memory_slot *slot, gfn_t gfn)
{
	return slot->userspace_addr + ((gfn - slot->base_gfn) << KMMU_PAGE_SHIFT);
}

int kmmu_memslots_init(struct kmmu *kmmu);
void kmmu_memslots_destroy(struct kmmu *kmmu);
struct kmmu_memory_slot *kmmu_gfn_to_memslot(struct kmmu_memslots *slots, gfn_t gfn);
int kmmu_set_memory_region(struct kmmu *kmmu, const struct kmmu_userspace_memory_region *mem);
int __kmmu_set_memory_region(struct kmmu *kmmu, const struct kmmu_userspace_memory_region *mem);
bool kmmu_lpage_disallowed(const struct kmmu_memory_slot *slot, gfn_t gfn, int level);
void kmmu_lpage_disallow_adjust(struct kmmu_memory_slot *slot, gfn_t gfn, int delta);

/* dirty.c */
void kmmu_mark_dirty_range(struct kmmu *kmmu, const struct kmmu_memory_slot *slot, gfn_t gfn,
			   u64 npages);
static inline void kmmu_mark_page_dirty(struct kmmu *kmmu, const struct kmmu_memory_slot *slot,
					gfn_t gfn)
{
	kmmu_mark_dirty_range(kmmu, slot, gfn, 1);
}

int kmmu_dirty_bitmap_alloc(struct kmmu *kmmu, struct kmmu_memory_slot *slot);
void kmmu_dirty_bitmap_free(struct kmmu_memory_slot *slot);
void kmmu_slot_logging_changed(struct kmmu *kmmu, struct kmmu_memory_slot *slot, bool on);
int kmmu_get_dirty_log(struct kmmu *kmmu, const struct kmmu_dirty_log *log);
int kmmu_clear_dirty_log(struct kmmu *kmmu, const struct kmmu_clear_dirty_log *log);
int kmmu_enable_cap(struct kmmu *kmmu, const struct kmmu_enable_cap *cap);

#endif /* KMMU_MEMSLOT_H */
