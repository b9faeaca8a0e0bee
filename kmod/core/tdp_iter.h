/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A pre-order walker over one TDP root, which callers may stop at any SPTE
 * (to drop mmu_lock and yield) and restart from the root towards the gfn
 * where they stopped.
 */
#ifndef KMMU_TDP_ITER_H
#define KMMU_TDP_ITER_H

#include "kmmu.h"

struct kmmu_mmu_page;

/*
 * SPTEs are only ever read once, through this, because the CPU writes them
 * too.  With acquire: what is read through the SPTE (a child table, guest
 * data) is ordered after it, as the address dependency orders it on x86,
 * and as the user host's ThreadSanitizer build can then see.
 */
static inline u64 kmmu_tdp_read_spte(u64 *sptep)
{
	/* Pairs with the cmpxchg that installed the SPTE. */
	return smp_load_acquire(sptep);
}

struct tdp_iter {
	/* The walk heads for the leaf of this gfn; it moves as the walk does. */
	gfn_t next_last_level_gfn;
	/* next_last_level_gfn when the walk last yielded: yield once per gfn. */
	gfn_t yielded_gfn;
	/* The page tables walked through to reach sptep, by level - 1. */
	u64 *pt_path[KMMU_MAX_LEVEL];
	/* The current SPTE. */
	u64 *sptep;
	/* The first gfn the current SPTE maps. */
	gfn_t gfn;
	/* Level of the root the walk started from. */
	int root_level;
	/* The walk does not step below this level. */
	int min_level;
	/* Level of the current SPTE. */
	int level;
	/* Address space of the root. */
	int as_id;
	/* The value of *sptep when the walk read it. */
	u64 old_spte;
	/* False once the walk has gone past the last SPTE of the root. */
	bool valid;
	/* Set by a caller that dropped mmu_lock: the next step restarts at the root. */
	bool yielded;
	/* The VM's format, to tell leaves from tables. */
	const struct kmmu_spte_fmt *fmt;
};

/* Every SPTE mapping [start, end), from min_level up, in pre-order. */
#define for_each_tdp_pte_min_level(iter, kmmu, root, min_level, start, end)	\
	for (tdp_iter_start(&iter, kmmu, root, min_level, start);		\
	     iter.valid && iter.gfn < (end);					\
	     tdp_iter_next(&iter))

#define for_each_tdp_pte(iter, kmmu, root, start, end)				\
	for_each_tdp_pte_min_level(iter, kmmu, root, KMMU_LEVEL_4K, start, end)

u64 *spte_to_child_pt(const struct kmmu_spte_fmt *f, u64 spte, int level);
void tdp_iter_start(struct tdp_iter *iter, struct kmmu *kmmu, struct kmmu_mmu_page *root,
		    int min_level, gfn_t next_last_level_gfn);
void tdp_iter_next(struct tdp_iter *iter);
void tdp_iter_restart(struct tdp_iter *iter);

#endif /* KMMU_TDP_ITER_H */
