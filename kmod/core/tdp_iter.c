// SPDX-License-Identifier: GPL-2.0
/*
 * The TDP walker: step down into a child table, sideways to the next entry
 * of the same table, or up when a table is done; restart from the root after
 * a yield, because the tables walked through may be gone by then.
 */
#include "tdp_iter.h"
#include "tdp_mmu.h"

static void tdp_iter_refresh_sptep(struct tdp_iter *iter)
{
	iter->sptep = iter->pt_path[iter->level - 1] +
		      kmmu_spte_index(iter->gfn, iter->level);
	iter->old_spte = kmmu_tdp_read_spte(iter->sptep);
}

void tdp_iter_restart(struct tdp_iter *iter)
{
	iter->yielded = false;
	iter->yielded_gfn = iter->next_last_level_gfn;
	iter->level = iter->root_level;
	iter->gfn = kmmu_gfn_round_for_level(iter->next_last_level_gfn, iter->level);
	tdp_iter_refresh_sptep(iter);
	iter->valid = true;
}

/**
 * tdp_iter_start() - begin a walk of @root towards @next_last_level_gfn
 * @iter: the walker
 * @kmmu: the VM that owns @root
 * @root: a root page table
 * @min_level: do not step below this level
 * @next_last_level_gfn: first gfn of interest
 *
 * Must be called, like every step, under rcu_read_lock(): tables unlinked by
 * other threads stay readable until the grace period ends.
 */
void tdp_iter_start(struct tdp_iter *iter, struct kmmu *kmmu, struct kmmu_mmu_page *root,
		    int min_level, gfn_t next_last_level_gfn)
{
	iter->fmt = &kmmu->fmt;
	iter->next_last_level_gfn = next_last_level_gfn;
	iter->root_level = root->level;
	iter->min_level = min_level;
	iter->pt_path[iter->root_level - 1] = root->spt;
	iter->as_id = root->as_id;
	tdp_iter_restart(iter);
}

/**
 * spte_to_child_pt() - the table a non-leaf SPTE points to
 * @f: format
 * @spte: an SPTE at @level
 * @level: its level
 *
 * Return: the child table, or NULL for a leaf or a non-present SPTE.
 */
u64 *spte_to_child_pt(const struct kmmu_spte_fmt *f, u64 spte, int level)
{
	if (!is_shadow_present_spte(spte) || is_last_spte(f, spte, level))
		return NULL;
	return os_pfn_to_pt(spte_to_pfn(spte));
}

static bool try_step_down(struct tdp_iter *iter)
{
	u64 *child_pt;

	if (iter->level == iter->min_level)
		return false;

	/* Re-read: the entry may have been zapped since the walk reached it. */
	iter->old_spte = kmmu_tdp_read_spte(iter->sptep);
	child_pt = spte_to_child_pt(iter->fmt, iter->old_spte, iter->level);
	if (!child_pt)
		return false;

	iter->level--;
	iter->pt_path[iter->level - 1] = child_pt;
	iter->gfn = kmmu_gfn_round_for_level(iter->next_last_level_gfn, iter->level);
	tdp_iter_refresh_sptep(iter);
	return true;
}

static bool try_step_side(struct tdp_iter *iter)
{
	if (kmmu_spte_index(iter->gfn, iter->level) == KMMU_PT_ENTRIES - 1)
		return false;

	iter->gfn += kmmu_pages_per_level(iter->level);
	iter->next_last_level_gfn = iter->gfn;
	iter->sptep++;
	iter->old_spte = kmmu_tdp_read_spte(iter->sptep);
	return true;
}

static bool try_step_up(struct tdp_iter *iter)
{
	if (iter->level == iter->root_level)
		return false;

	iter->level++;
	iter->gfn = kmmu_gfn_round_for_level(iter->gfn, iter->level);
	tdp_iter_refresh_sptep(iter);
	return true;
}

/**
 * tdp_iter_next() - step to the next SPTE in pre-order
 * @iter: the walker
 *
 * Down if the current SPTE is a table and min_level allows, else sideways,
 * else up and sideways.  After a yield, restart from the root so no freed
 * table is walked.  Clears @iter->valid after the root's last entry.
 */
void tdp_iter_next(struct tdp_iter *iter)
{
	if (iter->yielded) {
		tdp_iter_restart(iter);
		return;
	}

	if (try_step_down(iter))
		return;

	do {
		if (try_step_side(iter))
			return;
	} while (try_step_up(iter));
	iter->valid = false;
}
