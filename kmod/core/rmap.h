/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Reverse maps of the shadow MMU: for one L1 gfn at one level, the shadow
 * SPTEs that map it, so that invalidation, dirty logging and aging can
 * find them from the gfn.  The head is one word: 0 (no SPTE), the address
 * of the only SPTE, or the address of a list of descriptors with
 * KMMU_RMAP_MANY set; KMMU_RMAP_LOCKED is a lock in the same word, taken by
 * writers (under mmu_lock held for write) and by readers that walk a list
 * without mmu_lock (aging), so that a lockless reader never sees a list
 * being changed or a descriptor being freed (the scheme of Linux 6.15's
 * kvm_rmap_lock()).  An empty rmap is never locked: it costs a reader one
 * load.  Aging reads an rmap of one SPTE without taking the lock, only
 * waiting while it is held: shadow tables are freed after a grace period,
 * so under RCU the SPTE may be read even after it left the rmap, and it is
 * changed only while the head still holds it (see kmmu_rmap_age_range()).
 */
#ifndef KMMU_RMAP_H
#define KMMU_RMAP_H

#include "spte.h"

#define KMMU_RMAP_MANY		BIT(0)
#define KMMU_RMAP_LOCKED	BIT(1)

struct kmmu_rmap_head {
	atomic_long_t val;
};

/*
 * SPTEs per descriptor: with the counts and the link, a descriptor fills
 * two cache lines.  Only the first descriptor of a list has free slots;
 * the rest are full, so a removal fills its hole from the first.
 */
#define KMMU_RMAP_DESC_SPTES	14

struct kmmu_rmap_desc {
	u32 count;			/* SPTEs in this descriptor */
	u32 tail_count;			/* SPTEs in the descriptors after it */
	struct kmmu_rmap_desc *more;
	u64 *sptes[KMMU_RMAP_DESC_SPTES];
};

/*
 * Descriptors allocated before mmu_lock is taken, for the adds made under
 * it (each add needs one at most), chained through their ->more: a
 * fault's few, or the 513 of an eager split.
 */
#define KMMU_RMAP_CACHE_SIZE	4

struct kmmu_rmap_cache {
	int nr;
	struct kmmu_rmap_desc *free;
};

int kmmu_rmap_cache_topup(struct kmmu_rmap_cache *cache, int min);
void kmmu_rmap_cache_free(struct kmmu_rmap_cache *cache);

/* Writers: mmu_lock held for write. */
int kmmu_rmap_add(struct kmmu *kmmu, struct kmmu_rmap_head *head, u64 *sptep,
		  struct kmmu_rmap_cache *cache);
bool kmmu_rmap_remove(struct kmmu *kmmu, struct kmmu_rmap_head *head, u64 *sptep);
unsigned long kmmu_rmap_count(struct kmmu *kmmu, struct kmmu_rmap_head *head);
unsigned long kmmu_rmap_peek(struct kmmu *kmmu, struct kmmu_rmap_head *head);

/* Lockless readers: no mmu_lock; the rmap is read-only between these. */
unsigned long kmmu_rmap_lock_readonly(struct kmmu_rmap_head *head);
void kmmu_rmap_unlock_readonly(struct kmmu_rmap_head *head, unsigned long val);

/*
 * Where a walk of a locked rmap is: the descriptor and the index in it,
 * or, for a head holding one SPTE, that SPTE alone.
 */
struct kmmu_rmap_iter {
	struct kmmu_rmap_desc *desc;
	unsigned int pos;
	u64 *single;
};

u64 *kmmu_rmap_iter_first(unsigned long val, struct kmmu_rmap_iter *iter);
u64 *kmmu_rmap_iter_next(struct kmmu_rmap_iter *iter);

/* Every SPTE of an rmap whose value @val was returned by a lock. */
#define for_each_rmap_spte(val, iter, sptep)					\
	for (sptep = kmmu_rmap_iter_first(val, iter); sptep;			\
	     sptep = kmmu_rmap_iter_next(iter))

/* What kmmu_rmap_age_range() found. */
struct kmmu_rmap_age_result {
	unsigned long young;		/* accessed SPTEs (cleared unless test only) */
	unsigned long old;
	bool incomplete;		/* fast only: SPTEs left that need mmu_lock */
};

void kmmu_rmap_age_range(struct kmmu *kmmu, struct kmmu_rmap_head *heads, unsigned long n,
			 bool test_only, bool fast_only, struct kmmu_rmap_age_result *res);

#endif /* KMMU_RMAP_H */
