// SPDX-License-Identifier: GPL-2.0
/*
 * The TDP MMU: roots and page-table pages, mapping on faults under the read
 * side of mmu_lock with cmpxchg, zapping under the write side, and the one
 * place (handle_changed_spte) that keeps the books when an SPTE changes.
 */
#include "dirty_ring.h"
#include "tdp_mmu.h"
#include "tdp_iter.h"
#include "fault.h"
#include "shadow_mmu.h"
#include "spp.h"

/* ---- page-table pages ---- */

static void tdp_mmu_init_sp_header(struct kmmu_mmu_page *sp, u64 *spt, gfn_t gfn, int level,
				   int as_id)
{
	sp->spt = spt;
	sp->gfn = gfn;
	sp->level = level;
	sp->as_id = as_id;
	os_pt_set_owner(spt, sp);
}

static void tdp_mmu_init_sp(struct kmmu *kmmu, struct kmmu_mmu_page *sp, u64 *spt,
			    gfn_t gfn, int level, int as_id)
{
	int i;

	for (i = 0; i < KMMU_PT_ENTRIES; i++)
		spt[i] = kmmu->fmt.nonpresent;
	tdp_mmu_init_sp_header(sp, spt, gfn, level, as_id);
}

/**
 * kmmu_tdp_mmu_alloc_sp() - describe a page-table page and fill it
 * @kmmu: the VM
 * @spt: a page from os_pt_alloc() (or a vCPU's cache of them)
 * @gfn: first gfn the table maps
 * @level: level of its entries
 * @as_id: address space
 *
 * Every entry starts as the VM's non-present value.
 *
 * Return: the description, or NULL when out of memory (@spt is not freed).
 */
struct kmmu_mmu_page *kmmu_tdp_mmu_alloc_sp(struct kmmu *kmmu, u64 *spt, gfn_t gfn,
					    int level, int as_id)
{
	struct kmmu_mmu_page *sp = os_zalloc(sizeof(*sp));

	if (!sp)
		return NULL;
	tdp_mmu_init_sp(kmmu, sp, spt, gfn, level, as_id);
	return sp;
}

static void tdp_mmu_free_sp(struct kmmu_mmu_page *sp)
{
	os_pt_set_owner(sp->spt, NULL);
	os_pt_free(sp->spt);
	os_free(sp);
}

static void tdp_mmu_free_sp_rcu_callback(struct rcu_head *head)
{
	tdp_mmu_free_sp(container_of(head, struct kmmu_mmu_page, rcu_head));
}

/* ---- writing SPTEs ---- */

/*
 * A leaf whose A/D or W bits the CPU or the fast path may set behind our
 * back is written with xchg, so the value we hand to handle_changed_spte()
 * is the last one anyone saw.
 */
static u64 kmmu_tdp_mmu_write_spte(const struct kmmu_spte_fmt *f, u64 *sptep, u64 old_spte,
				   u64 new_spte, int level)
{
	if (is_shadow_present_spte(old_spte) && is_last_spte(f, old_spte, level) &&
	    spte_has_volatile_bits(f, old_spte))
		return xchg(sptep, new_spte);

	WRITE_ONCE(*sptep, new_spte);
	return old_spte;
}

static void tdp_mmu_update_page_stats(struct kmmu *kmmu, gfn_t gfn, int level, s64 delta)
{
	if (!kmmu_gfn_private(kmmu, gfn))
		kmmu_stat_add(kmmu, KMMU_STAT_PAGES_4K + level - 1, delta);
}

static void __handle_changed_spte(struct kmmu *kmmu, int as_id, gfn_t gfn, u64 old_spte,
				  u64 new_spte, int level, bool shared);

/*
 * D-bit logging keeps a page's dirty state in its leaf until GET or CLEAR
 * harvests it: a dirty leaf that goes away first hands it to the log.
 */
static void tdp_mmu_log_zapped_dirty(struct kmmu *kmmu, int as_id, gfn_t gfn, u64 old_spte,
				     int level)
{
	struct kmmu_memory_slot *slot;
	u64 pages = kmmu_pages_per_level(level);
	gfn_t start, end;
	int idx;

	if (kmmu->dirty_log_mode != KMMU_DIRTY_LOG_MODE_DBIT || !(old_spte & kmmu->fmt.dirty))
		return;
	idx = srcu_read_lock(&kmmu->srcu);
	slot = kmmu_gfn_to_memslot(kmmu_memslots(kmmu, as_id), gfn);
	if (slot && slot->dirty_bitmap) {
		start = max(gfn, slot->base_gfn);
		end = min(gfn + pages, kmmu_slot_end(slot));
		kmmu_mark_dirty_range(kmmu, slot, start, end - start);
	}
	srcu_read_unlock(&kmmu->srcu, idx);
}

/**
 * handle_removed_pt() - tear down a page table that was unlinked
 * @kmmu: the VM
 * @pt: the table; its parent entry no longer points to it
 * @shared: mmu_lock is held for read only
 *
 * Each entry is frozen so that a fast-path cmpxchg that still holds a
 * pointer into the table fails, and its children are torn down in turn.
 * Accessed is not propagated from here: a whole subtree going away (a root,
 * a collapsible range) says nothing about the guest's use of it.  Dirty
 * needs nothing either: the host page was marked when the fault that
 * mapped it released it.
 * The page itself is freed after an RCU grace period, when no lockless
 * walker can be reading it.
 */
static void handle_removed_pt(struct kmmu *kmmu, u64 *pt, bool shared)
{
	const struct kmmu_spte_fmt *f = &kmmu->fmt;
	struct kmmu_mmu_page *sp = os_pt_owner(pt);
	int level = sp->level, leaves = 0;
	int i;

	kmmu_stat_add(kmmu, KMMU_STAT_PT_PAGES, -1);

	for (i = 0; i < KMMU_PT_ENTRIES; i++) {
		u64 *sptep = pt + i;
		gfn_t gfn = sp->gfn + i * kmmu_pages_per_level(level);
		u64 old_spte;

		if (shared) {
			/* Another thread may be freezing it to zap it: wait it out. */
			for (;;) {
				old_spte = xchg(sptep, f->frozen);
				if (!is_frozen_spte(f, old_spte))
					break;
				cpu_relax();
			}
			if (!is_shadow_present_spte(old_spte))
				continue;
		} else {
			old_spte = kmmu_tdp_read_spte(sptep);
			if (!is_shadow_present_spte(old_spte))
				continue;
			old_spte = kmmu_tdp_mmu_write_spte(f, sptep, old_spte, f->frozen, level);
		}
		/* A leaf going away only changes the statistics: count them once. */
		if (is_last_spte(f, old_spte, level)) {
			leaves += !kmmu_gfn_private(kmmu, gfn);
			if (kmmu_mutant(MARK_ACCESSED_ON_ROOT_ZAP) && is_refcounted_spte(f, old_spte) &&
			    is_accessed_spte(f, old_spte))
				os_mark_pfn_accessed(spte_to_pfn(old_spte));
			tdp_mmu_log_zapped_dirty(kmmu, sp->as_id, gfn, old_spte, level);
		} else
			__handle_changed_spte(kmmu, sp->as_id, gfn, old_spte, f->frozen, level,
					      shared);
	}
	kmmu_stat_add(kmmu, KMMU_STAT_PAGES_4K + level - 1, -leaves);

	if (kmmu_mutant(FREE_TABLE_AT_ONCE))
		tdp_mmu_free_sp(sp);
	else
		call_rcu(&sp->rcu_head, tdp_mmu_free_sp_rcu_callback);
}

/*
 * The bookkeeping of one SPTE change, except accessed/dirty propagation:
 * page-size statistics, and tearing down a table that is no longer linked.
 */
static void __handle_changed_spte(struct kmmu *kmmu, int as_id, gfn_t gfn, u64 old_spte,
				  u64 new_spte, int level, bool shared)
{
	const struct kmmu_spte_fmt *f = &kmmu->fmt;
	bool was_present = is_shadow_present_spte(old_spte);
	bool is_present = is_shadow_present_spte(new_spte);
	bool was_leaf = was_present && is_last_spte(f, old_spte, level);
	bool is_leaf = is_present && is_last_spte(f, new_spte, level);
	bool pfn_changed = spte_to_pfn(old_spte) != spte_to_pfn(new_spte);

	WARN_ON_ONCE(level > KMMU_MAX_LEVEL || level < KMMU_LEVEL_4K);
	WARN_ON_ONCE(gfn & (kmmu_pages_per_level(level) - 1));
	WARN_ON_ONCE(is_leaf && !spte_writable_invariants_ok(f, new_spte));

	if (old_spte == new_spte)
		return;
	os_trace_spte_changed(as_id, gfn, level, old_spte, new_spte);

	/* A present leaf never changes pfn in place: it is zapped first. */
	WARN_ON_ONCE(was_leaf && is_leaf && pfn_changed);

	if (was_leaf != is_leaf)
		tdp_mmu_update_page_stats(kmmu, gfn, level, is_leaf ? 1 : -1);

	if (!was_present && !is_present) {
		/* Only MMIO, frozen and non-present values live here. */
		WARN_ON_ONCE(!is_mmio_spte(f, old_spte) && !is_mmio_spte(f, new_spte) &&
			     old_spte != f->nonpresent && new_spte != f->nonpresent &&
			     !is_frozen_spte(f, old_spte) && !is_frozen_spte(f, new_spte));
		return;
	}

	if (was_present && !was_leaf && (is_leaf || !is_present || pfn_changed))
		handle_removed_pt(kmmu, spte_to_child_pt(f, old_spte, level), shared);
}

/*
 * A leaf went away: a D bit is all the dirty log may have of the page
 * (D-bit logging).  The host page is not marked here: it was marked dirty
 * when the fault that made the SPTE released it (see direct_page_fault()),
 * and only leaf zaps mark it accessed (tdp_mmu_zap_leafs()).
 */
static void handle_changed_spte_ad(struct kmmu *kmmu, int as_id, gfn_t gfn, u64 old_spte,
				   u64 new_spte, int level)
{
	const struct kmmu_spte_fmt *f = &kmmu->fmt;

	if (!is_shadow_present_spte(old_spte) || !is_last_spte(f, old_spte, level))
		return;
	/* Still mapped (a split, a permission change): nothing was zapped. */
	if (is_shadow_present_spte(new_spte))
		return;
	tdp_mmu_log_zapped_dirty(kmmu, as_id, gfn, old_spte, level);
	if (is_refcounted_spte(f, old_spte) && !kmmu_gfn_private(kmmu, gfn))
		kmmu_stat_inc(kmmu, KMMU_STAT_ZAPPED_LEAFS);
}

/**
 * handle_changed_spte() - keep the books after one SPTE changed
 * @kmmu: the VM
 * @as_id: address space of the SPTE
 * @gfn: first gfn it maps
 * @old_spte: its value before
 * @new_spte: its value now
 * @level: its level
 * @shared: mmu_lock is held for read only
 *
 * Updates the page-size statistics, tears down an unlinked table, and
 * hands the D bit of a zapped leaf to the dirty log.
 */
static void handle_changed_spte(struct kmmu *kmmu, int as_id, gfn_t gfn, u64 old_spte,
				u64 new_spte, int level, bool shared)
{
	__handle_changed_spte(kmmu, as_id, gfn, old_spte, new_spte, level, shared);
	handle_changed_spte_ad(kmmu, as_id, gfn, old_spte, new_spte, level);
}

/*
 * The cmpxchg alone: iter->old_spte is what the caller based @new_spte on,
 * and is refreshed when someone else changed the SPTE first.  A frozen
 * SPTE is never overwritten.
 */
static int __tdp_mmu_set_spte_atomic(struct kmmu *kmmu, struct tdp_iter *iter, u64 new_spte)
{
	if (is_frozen_spte(&kmmu->fmt, iter->old_spte))
		return -EBUSY;
	return try_cmpxchg64(iter->sptep, &iter->old_spte, new_spte) ? 0 : -EBUSY;
}

/**
 * tdp_mmu_set_spte_atomic() - change the SPTE under the walker, under the read lock
 * @kmmu: the VM
 * @iter: the walker; iter->old_spte is what the caller based @new_spte on
 * @new_spte: the value to install
 *
 * Return:
 * * 0      - installed, and the books kept
 * * -EBUSY - someone else changed the SPTE first; iter->old_spte holds the
 *            value now there (frozen SPTEs are never overwritten)
 */
static int tdp_mmu_set_spte_atomic(struct kmmu *kmmu, struct tdp_iter *iter, u64 new_spte)
{
	lockdep_assert_held_read(&kmmu->mmu_lock);

	if (__tdp_mmu_set_spte_atomic(kmmu, iter, new_spte))
		return -EBUSY;
	handle_changed_spte(kmmu, iter->as_id, iter->gfn, iter->old_spte, new_spte,
			    iter->level, true);
	return 0;
}

/*
 * Zap one SPTE under the read lock, in KVM's order: freeze it, so nobody
 * else builds on it; flush, so no vCPU still uses it; make it non-present
 * for good; and only then keep the books, with nothing left that could
 * still reach what it mapped.
 */
static int tdp_mmu_zap_spte_atomic(struct kmmu *kmmu, struct tdp_iter *iter)
{
	lockdep_assert_held_read(&kmmu->mmu_lock);

	if (__tdp_mmu_set_spte_atomic(kmmu, iter, kmmu->fmt.frozen))
		return -EBUSY;
	os_race_point(kmmu, KMMU_RACE_ZAP_FROZEN, iter->gfn);
	kmmu_flush_remote_tlbs(kmmu);
	/* Nobody overwrites a frozen SPTE: a plain store is enough. */
	WRITE_ONCE(*iter->sptep, kmmu->fmt.nonpresent);
	handle_changed_spte(kmmu, iter->as_id, iter->gfn, iter->old_spte, kmmu->fmt.nonpresent,
			    iter->level, true);
	return 0;
}

/* Change the SPTE under the write lock, where only the CPU can race with us. */
static void tdp_mmu_iter_set_spte(struct kmmu *kmmu, struct tdp_iter *iter, u64 new_spte)
{
	lockdep_assert_held_write(&kmmu->mmu_lock);
	WARN_ON_ONCE(is_frozen_spte(&kmmu->fmt, iter->old_spte));

	iter->old_spte = kmmu_tdp_mmu_write_spte(&kmmu->fmt, iter->sptep, iter->old_spte,
						 new_spte, iter->level);
	handle_changed_spte(kmmu, iter->as_id, iter->gfn, iter->old_spte, new_spte,
			    iter->level, false);
}

/**
 * tdp_mmu_iter_cond_resched() - yield mmu_lock if someone needs it
 * @kmmu: the VM
 * @iter: the walker, which restarts from the root after a yield
 * @flush: TLB flush owed for what the walk changed so far
 * @shared: mmu_lock is held for read
 *
 * Yields at most once per gfn, so the walk always makes progress.
 *
 * Return: true if mmu_lock was dropped (and the owed flush done).
 */
static bool tdp_mmu_iter_cond_resched(struct kmmu *kmmu, struct tdp_iter *iter, bool flush,
				      bool shared)
	__must_hold(RCU)
{
	if (iter->next_last_level_gfn == iter->yielded_gfn)
		return false;
	if (!need_resched() && !rwlock_needbreak(&kmmu->mmu_lock))
		return false;

	if (flush)
		kmmu_flush_remote_tlbs(kmmu);
	rcu_read_unlock();
	if (shared)
		cond_resched_rwlock_read(&kmmu->mmu_lock);
	else
		kmmu_mmu_cond_resched_write(kmmu);
	rcu_read_lock();

	iter->yielded = true;
	return true;
}

/* ---- roots ---- */

/*
 * Root lifetime, as KVM's: a root holds a reference of its own from its
 * allocation until it is invalidated, besides one per vCPU that uses it
 * and one per walker that may yield.  Only invalidation (under the write
 * lock, and brief) takes the root away from vCPUs; emptying it happens
 * later, under the read lock and yielding, while faults go on in other
 * roots (kmmu_tdp_mmu_zap_invalidated_roots()), and its own reference is
 * put only then.  The last reference can therefore only be put on an
 * invalid, empty root: freeing it is unlinking it and an RCU callback,
 * which needs no mmu_lock at all.
 */

static struct kmmu_mmu_page *tdp_mmu_alloc_root(struct kmmu *kmmu, int as_id)
{
	struct kmmu_mmu_page *root;
	u64 *spt = os_pt_alloc();

	if (!spt)
		return NULL;
	root = kmmu_tdp_mmu_alloc_sp(kmmu, spt, 0, KMMU_MAX_LEVEL, as_id);
	if (!root) {
		os_pt_free(spt);
		return NULL;
	}
	/* One for the vCPU that asked, one for the MMU until invalidation. */
	refcount_set(&root->root_refcount, 2);
	return root;
}

/* A valid root of @as_id with a reference taken, or NULL; mmu_lock held. */
static struct kmmu_mmu_page *tdp_mmu_get_valid_root(struct kmmu *kmmu, int as_id)
{
	struct kmmu_mmu_page *root;

	list_for_each_entry_rcu(root, &kmmu->tdp_mmu_roots, link, true) {
		if (root->as_id == as_id && !READ_ONCE(root->invalid) &&
		    refcount_inc_not_zero(&root->root_refcount))
			return root;
	}
	return NULL;
}

/**
 * kmmu_tdp_mmu_get_vcpu_root() - give the vCPU a valid root for @as_id
 * @vcpu: the vCPU; its old root, if any, must have been put
 * @as_id: address space
 *
 * Shares the valid root of the address space when there is one.  Takes
 * mmu_lock for read only: a new root is linked under tdp_mmu_pages_lock,
 * and invalidation, which takes the write lock, cannot run meanwhile.
 *
 * Return: 0, or -ENOMEM.
 */
int kmmu_tdp_mmu_get_vcpu_root(struct kmmu_vcpu *vcpu, int as_id)
{
	struct kmmu *kmmu = vcpu->kmmu;
	struct kmmu_mmu_page *root, *new = NULL;

	WARN_ON_ONCE(vcpu->root[as_id]);

	read_lock(&kmmu->mmu_lock);
	rcu_read_lock();
	root = tdp_mmu_get_valid_root(kmmu, as_id);
	rcu_read_unlock();
	read_unlock(&kmmu->mmu_lock);
	if (root)
		goto out;

	/* May sleep: outside the locks; another vCPU may link one first. */
	new = tdp_mmu_alloc_root(kmmu, as_id);
	if (!new)
		return -ENOMEM;
	read_lock(&kmmu->mmu_lock);
	spin_lock(&kmmu->tdp_mmu_pages_lock);
	rcu_read_lock();
	root = tdp_mmu_get_valid_root(kmmu, as_id);
	rcu_read_unlock();
	if (!root) {
		/* RCU: lockless aging walks the list with neither lock. */
		list_add_rcu(&new->link, &kmmu->tdp_mmu_roots);
		kmmu_stat_inc(kmmu, KMMU_STAT_PT_PAGES);
		root = new;
		new = NULL;
	}
	spin_unlock(&kmmu->tdp_mmu_pages_lock);
	read_unlock(&kmmu->mmu_lock);
	if (new)
		tdp_mmu_free_sp(new);
out:
	vcpu->root[as_id] = root;
	return 0;
}

/**
 * kmmu_tdp_mmu_put_root() - drop a reference to a root
 * @kmmu: the VM
 * @root: the root
 *
 * The last reference is only ever put on a root that was invalidated and
 * emptied: it is unlinked and freed after a grace period.  Needs no lock.
 */
void kmmu_tdp_mmu_put_root(struct kmmu *kmmu, struct kmmu_mmu_page *root)
{
	if (!refcount_dec_and_test(&root->root_refcount))
		return;

	WARN_ON_ONCE(!READ_ONCE(root->invalid));
	spin_lock(&kmmu->tdp_mmu_pages_lock);
	list_del_rcu(&root->link);
	spin_unlock(&kmmu->tdp_mmu_pages_lock);
	kmmu_stat_add(kmmu, KMMU_STAT_PT_PAGES, -1);
	call_rcu(&root->rcu_head, tdp_mmu_free_sp_rcu_callback);
}

/*
 * The next root after @prev (the first if NULL) of @as_id (any if < 0),
 * valid ones only if @only_valid, with a reference held so that it stays
 * listed while mmu_lock is dropped in a yield; @prev's reference is put
 * once the next one is held.  mmu_lock held, for read or write.
 */
static struct kmmu_mmu_page *tdp_mmu_next_root(struct kmmu *kmmu,
					       struct kmmu_mmu_page *prev, int as_id,
					       bool only_valid)
{
	struct kmmu_mmu_page *next = NULL;
	struct list_head *pos;

	lockdep_assert_held(&kmmu->mmu_lock);
	rcu_read_lock();
	pos = rcu_dereference(list_next_rcu(prev ? &prev->link : &kmmu->tdp_mmu_roots));
	for (; pos != &kmmu->tdp_mmu_roots; pos = rcu_dereference(list_next_rcu(pos))) {
		struct kmmu_mmu_page *root = list_entry(pos, struct kmmu_mmu_page, link);

		if ((as_id < 0 || root->as_id == as_id) &&
		    (!only_valid || !READ_ONCE(root->invalid)) &&
		    refcount_inc_not_zero(&root->root_refcount)) {
			next = root;
			break;
		}
	}
	rcu_read_unlock();
	if (prev)
		kmmu_tdp_mmu_put_root(kmmu, prev);
	return next;
}

#define __for_each_tdp_mmu_root_yield_safe(kmmu, root, as_id, only_valid)	\
	for (root = tdp_mmu_next_root(kmmu, NULL, as_id, only_valid); root;	\
	     root = tdp_mmu_next_root(kmmu, root, as_id, only_valid))

/* Every root, valid or not: what maps host pages, for zaps. */
#define for_each_tdp_mmu_root_yield_safe(kmmu, root, as_id)			\
	__for_each_tdp_mmu_root_yield_safe(kmmu, root, as_id, false)

/* Valid roots only: what vCPUs use, for protection and splits. */
#define for_each_valid_tdp_mmu_root_yield_safe(kmmu, root, as_id)		\
	__for_each_tdp_mmu_root_yield_safe(kmmu, root, as_id, true)

/*
 * One pass over @root: every present SPTE at @zap_level goes (a table with
 * all below it), yielding between SPTEs.
 */
static void __tdp_mmu_zap_root(struct kmmu *kmmu, struct kmmu_mmu_page *root, bool shared,
			       int zap_level)
{
	struct tdp_iter iter;

	for_each_tdp_pte_min_level(iter, kmmu, root, zap_level, 0, ~0ULL) {
retry:
		if (tdp_mmu_iter_cond_resched(kmmu, &iter, false, shared))
			continue;
		if (!is_shadow_present_spte(iter.old_spte) || iter.level > zap_level)
			continue;
		os_race_point(kmmu, KMMU_RACE_ROOT_ZAP_STEP, iter.gfn);
		if (!shared)
			tdp_mmu_iter_set_spte(kmmu, &iter, kmmu->fmt.nonpresent);
		else if (tdp_mmu_set_spte_atomic(kmmu, &iter, kmmu->fmt.nonpresent))
			goto retry;
	}
}

/*
 * Empty a root, in passes of 4K, 2M, 1G and then its top level, so that
 * no step holds mmu_lock for long: zapping a table tears down all of it
 * at once, so the walk goes down to the leaves first.  Tables go through
 * handle_removed_pt(), which tells the host pages nothing: a root going
 * away says nothing about the guest's use of them.
 */
static void tdp_mmu_zap_root(struct kmmu *kmmu, struct kmmu_mmu_page *root, bool shared)
{
	int level;

	/* Reachable by notifiers while mmu_lock is dropped: it holds a reference. */
	WARN_ON_ONCE(!refcount_read(&root->root_refcount));
	rcu_read_lock();
	for (level = KMMU_LEVEL_4K; level <= root->level; level++)
		__tdp_mmu_zap_root(kmmu, root, shared, level);
	rcu_read_unlock();
}

/**
 * kmmu_tdp_mmu_invalidate_all_roots() - stop every root from being used
 * @kmmu: the VM
 *
 * Marks each valid root invalid and schedules it for
 * kmmu_tdp_mmu_zap_invalidated_roots(), which will put the root's own
 * reference; vCPUs are told to load a new root, and waited for.
 */
void kmmu_tdp_mmu_invalidate_all_roots(struct kmmu *kmmu)
{
	struct kmmu_mmu_page *root;

	kmmu_mmu_write_lock(kmmu);
	list_for_each_entry(root, &kmmu->tdp_mmu_roots, link) {
		if (root->invalid)
			continue;
		/* Lockless aging and the fault path read it without the write lock. */
		WRITE_ONCE(root->invalid, true);
		root->scheduled_to_zap = true;
	}
	kmmu_mmu_write_unlock(kmmu);
	kmmu_make_all_vcpus_request(kmmu, KMMU_REQ_MMU_RELOAD);
}

/**
 * kmmu_tdp_mmu_zap_invalidated_roots() - empty and release invalid roots
 * @kmmu: the VM; slots_lock held, so that no other caller zaps meanwhile
 *
 * Under the read lock, yielding: faults in the new roots go on.  No TLB
 * flush is needed: every vCPU left these roots at the reload request, and
 * flushes its TLB when it loads a new one (vcpu_load_root()).  A root's
 * own reference is put after it is empty, as notifiers must reach it until
 * then.
 */
void kmmu_tdp_mmu_zap_invalidated_roots(struct kmmu *kmmu)
{
	struct kmmu_mmu_page *root;

	read_lock(&kmmu->mmu_lock);
	for_each_tdp_mmu_root_yield_safe(kmmu, root, -1) {
		if (!READ_ONCE(root->scheduled_to_zap))
			continue;
		WRITE_ONCE(root->scheduled_to_zap, false);
		WARN_ON_ONCE(!root->invalid);
		tdp_mmu_zap_root(kmmu, root, true);
		kmmu_tdp_mmu_put_root(kmmu, root);
	}
	read_unlock(&kmmu->mmu_lock);
}

/* ---- faults ---- */

/*
 * Link a new table where the walk found nothing.  On a lost race the table
 * goes back to the vCPU's cache.
 */
static int tdp_mmu_link_sp(struct kmmu *kmmu, struct tdp_iter *iter, struct kmmu_mmu_page *sp)
{
	u64 spte = make_table_spte(&kmmu->fmt, os_pt_to_pfn(sp->spt));
	int ret;

	ret = tdp_mmu_set_spte_atomic(kmmu, iter, spte);
	if (ret)
		return ret;
	kmmu_stat_inc(kmmu, KMMU_STAT_PT_PAGES);
	return 0;
}

/*
 * Replace the huge leaf under the walker by @sp, filled with the leaf's 512
 * pieces, @clear_bits cleared in each: the same translations, so no TLB
 * flush is needed.
 */
static int tdp_mmu_split_huge_page(struct kmmu *kmmu, struct tdp_iter *iter,
				   struct kmmu_mmu_page *sp, u64 clear_bits)
{
	const struct kmmu_spte_fmt *f = &kmmu->fmt;
	int i;

	for (i = 0; i < KMMU_PT_ENTRIES; i++)
		sp->spt[i] = make_huge_page_split_spte(f, iter->old_spte, sp->level, i) &
			     ~clear_bits;
	if (tdp_mmu_link_sp(kmmu, iter, sp))
		return -EBUSY;
	tdp_mmu_update_page_stats(kmmu, sp->gfn, sp->level, KMMU_PT_ENTRIES);
	kmmu_stat_inc(kmmu, KMMU_STAT_SPLITS);
	return 0;
}

static struct kmmu_mmu_page *tdp_mmu_alloc_sp_from_cache(struct kmmu_vcpu *vcpu,
							 struct tdp_iter *iter)
{
	struct kmmu_mmu_page *sp;
	u64 *spt;

	if (WARN_ON_ONCE(!vcpu->nr_pt_cache || !vcpu->nr_sp_cache))
		return NULL;
	spt = vcpu->pt_cache[--vcpu->nr_pt_cache];
	sp = vcpu->sp_cache[--vcpu->nr_sp_cache];
	memset(sp, 0, sizeof(*sp));
	tdp_mmu_init_sp(vcpu->kmmu, sp, spt, kmmu_gfn_round_for_level(iter->gfn, iter->level),
			iter->level - 1, iter->as_id);
	return sp;
}

static void tdp_mmu_return_sp_to_cache(struct kmmu_vcpu *vcpu, struct kmmu_mmu_page *sp)
{
	os_pt_set_owner(sp->spt, NULL);
	vcpu->pt_cache[vcpu->nr_pt_cache++] = sp->spt;
	vcpu->sp_cache[vcpu->nr_sp_cache++] = sp;
}

/* Install the leaf (or MMIO SPTE) the fault asked for, where the walk stopped. */
static int tdp_mmu_map_handle_target_level(struct kmmu_vcpu *vcpu,
					   struct kmmu_page_fault *fault,
					   struct tdp_iter *iter)
{
	struct kmmu *kmmu = vcpu->kmmu;
	const struct kmmu_spte_fmt *f = &kmmu->fmt;
	unsigned int access = fault->write ? KMMU_ACC_WRITE : KMMU_ACC_READ;
	struct kmmu_spte_args a = {};
	u64 new_spte;

	if (is_shadow_present_spte(iter->old_spte) &&
	    is_last_spte(f, iter->old_spte, iter->level) &&
	    is_access_allowed(f, iter->old_spte, access))
		return RET_PF_SPURIOUS;

	if (!fault->slot) {
		new_spte = make_mmio_spte(f, fault->gfn, fault->slots_gen);
	} else {
		a.pfn = fault->req.pfn & ~(kmmu_pages_per_level(fault->goal_level) - 1);
		a.level = fault->goal_level;
		a.access = KMMU_ACC_ALL;
		if ((fault->slot->flags & KMMU_MEM_READONLY) && !kmmu_mutant(READONLY_SLOT_WRITABLE))
			a.access &= ~KMMU_ACC_WRITE;
		a.host_writable = fault->req.writable;
		a.refcounted = fault->req.refcounted;
		a.prefetch = false;
		/* Write-protection logging: only a write makes (and logs) it writable. */
		a.wrprot = kmmu_slot_logging(fault->slot) && !fault->write &&
			   kmmu->dirty_log_mode == KMMU_DIRTY_LOG_MODE_WRPROT;
		/*
		 * Read under mmu_lock, which SET_ACCESS holds for write while
		 * it changes a map; its disallow counts kept the level at 4K
		 * (a fault that read them before saw the sequence change).
		 */
		/* Acquire: pairs with kmmu_spp_enable(), which filled the maps first. */
		a.spp = smp_load_acquire(&kmmu->spp_enabled) &&
			kmmu_spp_restricted(fault->slot, fault->gfn);
		/*
		 * An L1 table the shadow MMU shadows is read-only to L1: a
		 * write zaps those shadow pages first (its fault's caller).
		 */
		if (kmmu_shadow_gfn_tracked(fault->slot, fault->gfn) &&
		    !kmmu_mutant(SHADOW_TRACK_IGNORED)) {
			if (fault->write)
				return RET_PF_WRITE_TRACKED;
			a.access &= ~KMMU_ACC_WRITE;
		}
		new_spte = make_spte(f, &a);
	}

	if (new_spte == iter->old_spte)
		return RET_PF_SPURIOUS;
	/*
	 * Write-protection logging: the page is in the log before the
	 * writable SPTE exists, as KVM's make_spte() does.  GET, CLEAR and the
	 * ring reset take the write lock after taking pages from the log and
	 * before protecting them again, so this mark and the install below
	 * are seen together, or both after the log was handed out.
	 */
	if (fault->slot && spte_may_write(f, new_spte) &&
	    kmmu->dirty_log_mode == KMMU_DIRTY_LOG_MODE_WRPROT)
		kmmu_vcpu_mark_page_dirty(vcpu, fault->slot, fault->gfn);
	if (tdp_mmu_set_spte_atomic(kmmu, iter, new_spte))
		return RET_PF_RETRY;
	os_race_point(kmmu, KMMU_RACE_LEAF_INSTALLED, fault->gfn);
	/* A huge leaf replaced a table: its old translations must go. */
	if (is_shadow_present_spte(iter->old_spte) &&
	    !is_last_spte(f, iter->old_spte, iter->level))
		kmmu_flush_remote_tlbs(kmmu);

	return fault->slot ? RET_PF_FIXED : RET_PF_EMULATE;
}

/**
 * kmmu_tdp_mmu_map() - map the faulting gfn, under the read lock
 * @vcpu: the vCPU, whose caches hold enough tables for one walk
 * @fault: the fault, with pfn and goal level decided
 *
 * Walks down to the goal level, linking new tables where there are none
 * and splitting a huge leaf that sits above the goal, then installs the leaf.
 * Every change is a cmpxchg; any lost race sends the vCPU around again.
 *
 * Return: RET_PF_FIXED, RET_PF_SPURIOUS, RET_PF_EMULATE or RET_PF_RETRY.
 */
int kmmu_tdp_mmu_map(struct kmmu_vcpu *vcpu, struct kmmu_page_fault *fault)
{
	struct kmmu *kmmu = vcpu->kmmu;
	const struct kmmu_spte_fmt *f = &kmmu->fmt;
	struct kmmu_mmu_page *root = vcpu->root[fault->as_id];
	struct kmmu_mmu_page *sp;
	struct tdp_iter iter;
	int ret = RET_PF_RETRY;

	lockdep_assert_held_read(&kmmu->mmu_lock);

	rcu_read_lock();
	for_each_tdp_pte(iter, kmmu, root, fault->gfn, fault->gfn + 1) {
		if (iter.level == fault->goal_level)
			break;
		if (is_frozen_spte(f, iter.old_spte))
			goto out;
		/* A table: step down into it. */
		if (is_shadow_present_spte(iter.old_spte) && !is_large_spte(f, iter.old_spte))
			continue;

		sp = tdp_mmu_alloc_sp_from_cache(vcpu, &iter);
		if (!sp)
			goto out;
		/*
		 * A huge leaf above the goal is split in place, as KVM does:
		 * its other pieces stay mapped, and no vCPU loses them.
		 */
		if (is_shadow_present_spte(iter.old_spte))
			ret = tdp_mmu_split_huge_page(kmmu, &iter, sp, 0);
		else
			ret = tdp_mmu_link_sp(kmmu, &iter, sp);
		if (ret) {
			ret = RET_PF_RETRY;
			tdp_mmu_return_sp_to_cache(vcpu, sp);
			goto out;
		}
		ret = RET_PF_RETRY;
	}

	if (iter.level != fault->goal_level)
		goto out;
	ret = tdp_mmu_map_handle_target_level(vcpu, fault, &iter);
out:
	rcu_read_unlock();
	return ret;
}

/**
 * kmmu_tdp_mmu_fast_pf_get_last_sptep() - the leaf for @gfn, without mmu_lock
 * @vcpu: the vCPU
 * @as_id: address space
 * @gfn: the gfn
 * @spte: out: the last SPTE the walk read
 * @level: out, may be NULL: its level
 *
 * The caller holds rcu_read_lock(), which keeps the returned pointer
 * readable; the SPTE may change under it at any time, so it is only ever
 * updated with cmpxchg against *@spte.
 *
 * Return: pointer to the last SPTE walked, or NULL without a root.
 */
u64 *kmmu_tdp_mmu_fast_pf_get_last_sptep(struct kmmu_vcpu *vcpu, int as_id, gfn_t gfn,
					 u64 *spte, int *level)
{
	struct kmmu_mmu_page *root = vcpu->root[as_id];
	struct tdp_iter iter;
	u64 *sptep = NULL;

	if (!root)
		return NULL;
	for_each_tdp_pte(iter, vcpu->kmmu, root, gfn, gfn + 1) {
		sptep = iter.sptep;
		*spte = iter.old_spte;
		if (level)
			*level = iter.level;
	}
	return sptep;
}

/* ---- zapping and aging ---- */

/*
 * The guest used the page of a leaf that is being zapped: tell the host, as
 * it would learn from a young PTE it unmaps.  Only leaf zaps do this (the
 * mmu_notifier's unmap, KMMU_ZAP), under the write lock with the SPTE still
 * there a moment ago, so the page cannot be gone yet.
 */
static void tdp_mmu_zap_leaf_accessed(struct kmmu *kmmu, u64 old_spte)
{
	const struct kmmu_spte_fmt *f = &kmmu->fmt;

	if (kmmu_mutant(NO_ACCESSED_ON_LEAF_ZAP))
		return;
	if ((is_refcounted_spte(f, old_spte) || kmmu_mutant(FORGET_REFCOUNTED_CHECK)) &&
	    is_accessed_spte(f, old_spte))
		os_mark_pfn_accessed(spte_to_pfn(old_spte));
}

static bool tdp_mmu_zap_leafs(struct kmmu *kmmu, struct kmmu_mmu_page *root, gfn_t start,
			      gfn_t end, bool can_yield, bool flush)
{
	struct tdp_iter iter;

	rcu_read_lock();
	for_each_tdp_pte(iter, kmmu, root, start, end) {
		if (can_yield && tdp_mmu_iter_cond_resched(kmmu, &iter, flush, false)) {
			flush = false;
			continue;
		}
		if (!is_shadow_present_spte(iter.old_spte) ||
		    !is_last_spte(&kmmu->fmt, iter.old_spte, iter.level))
			continue;
		tdp_mmu_iter_set_spte(kmmu, &iter, kmmu->fmt.nonpresent);
		tdp_mmu_zap_leaf_accessed(kmmu, iter.old_spte);
		flush = true;
	}
	rcu_read_unlock();
	return flush;
}

/**
 * kmmu_tdp_mmu_zap_leafs() - zap every leaf mapping [start, end) in @as_id
 * @kmmu: the VM, mmu_lock held for write
 * @as_id: address space
 * @start: first gfn
 * @end: gfn after the last
 * @can_yield: the caller allows mmu_lock to be dropped in between
 * @flush: a TLB flush is already owed
 *
 * Zaps the leaves of every root, valid or not, so that no vCPU can reach
 * the pages afterwards.  The emptied tables stay linked.
 *
 * Return: true if a TLB flush is owed.
 */
bool kmmu_tdp_mmu_zap_leafs(struct kmmu *kmmu, int as_id, gfn_t start, gfn_t end,
			    bool can_yield, bool flush)
{
	struct kmmu_mmu_page *root;

	os_trace_zap(as_id, start, end, false);
	for_each_tdp_mmu_root_yield_safe(kmmu, root, as_id)
		flush = tdp_mmu_zap_leafs(kmmu, root, start, end, can_yield, flush);
	return flush;
}

/*
 * Age one young leaf: clear A (or access-track it).  Always a cmpxchg on
 * the value the walk read, because the lockless pass races with
 * everything: a D bit the CPU sets meanwhile makes the cmpxchg fail and is
 * kept on the retry, and an SPTE zapped or frozen meanwhile is left alone.
 * @accessed is f->accessed (see spte_aged()).
 */
static __always_inline void tdp_mmu_age_spte(struct kmmu *kmmu, u64 *sptep, u64 spte, int level,
					     gfn_t gfn, u64 accessed)
{
	const struct kmmu_spte_fmt *f = &kmmu->fmt;
	u64 new_spte;

	os_race_point(kmmu, KMMU_RACE_AGE_READ, gfn);
	do {
		if (!is_shadow_present_spte(spte) || !is_last_spte(f, spte, level))
			return;
		new_spte = spte_aged(f, accessed, spte);
		if (new_spte == spte)
			return;
		if (kmmu_mutant(CLEAR_A_WITHOUT_D)) {
			WRITE_ONCE(*sptep, new_spte);
			return;
		}
	} while (!try_cmpxchg64(sptep, &spte, new_spte));
}

static void tdp_mmu_age_leaf(struct kmmu *kmmu, struct tdp_iter *iter, gfn_t start, gfn_t end,
			     bool clear, struct kmmu_age_result *res)
{
	const struct kmmu_spte_fmt *f = &kmmu->fmt;
	/* A huge leaf counts for the part of it the caller asked about. */
	u64 pages = min(end, iter->gfn + kmmu_pages_per_level(iter->level)) -
		    max(start, iter->gfn);

	if (!is_shadow_present_spte(iter->old_spte) ||
	    !is_last_spte(f, iter->old_spte, iter->level))
		return;
	/* The hardware vCPU's own code and tables are not the guest's memory. */
	if (kmmu_gfn_private(kmmu, iter->gfn))
		return;
	if (!is_accessed_spte(f, iter->old_spte)) {
		res->old += pages;
		return;
	}
	res->young += pages;
	if (clear)
		tdp_mmu_age_spte(kmmu, iter->sptep, iter->old_spte, iter->level, iter->gfn,
				 f->accessed);
}

/*
 * Age the 4K leaves of the table the walker points to, in a plain loop:
 * this is where an aging pass spends its time, and a step of the generic
 * walker, or a call, per SPTE would cost more than the cmpxchg itself.
 * Every present SPTE of a 4K table is a leaf.
 */
static void tdp_mmu_age_leaf_table(struct kmmu *kmmu, struct tdp_iter *iter, gfn_t start,
				   gfn_t end, bool clear, struct kmmu_age_result *res)
{
	const struct kmmu_spte_fmt *f = &kmmu->fmt;
	u64 *pt = spte_to_child_pt(f, iter->old_spte, iter->level);
	gfn_t gfn = max(start, iter->gfn);
	gfn_t last = min(end, iter->gfn + kmmu_pages_per_level(iter->level));
	/* In registers, for the reason spte_aged() gives. */
	const u64 accessed = f->accessed;
	const gfn_t hw_gfn = kmmu->hw_gfn;
	const u64 hw_npages = kmmu->hw_npages;
	u64 young = 0, old = 0, next;

	if (gfn >= last)
		return;
	next = kmmu_tdp_read_spte(pt + kmmu_spte_index(gfn, KMMU_LEVEL_4K));
	for (; gfn < last; gfn++) {
		u64 *sptep = pt + kmmu_spte_index(gfn, KMMU_LEVEL_4K);
		u64 spte = next;

		/*
		 * Read the next SPTE before this one's cmpxchg, which would hold
		 * the load back: it is only read earlier, as a lockless pass may
		 * read it at any time, and a cmpxchg of a stale value fails.
		 */
		if (gfn + 1 < last)
			next = kmmu_tdp_read_spte(sptep + 1);
		/* The hardware vCPU's own code and tables are not the guest's memory. */
		if (!is_shadow_present_spte(spte) || gfn - hw_gfn < hw_npages)
			continue;
		if (!spte_young(f, accessed, spte)) {
			old++;
			continue;
		}
		young++;
		if (!clear)
			continue;
		if (!spte_ad_enabled(spte)) {
			tdp_mmu_age_spte(kmmu, sptep, spte, KMMU_LEVEL_4K, gfn, accessed);
			continue;
		}
		/*
		 * With A/D bits, tdp_mmu_age_spte() cut to what a present 4K
		 * leaf needs: its general loop here spills the loop's counters,
		 * and a load after a locked instruction waits for it (the pass
		 * took 7.8-8.4 ns/4K with it, 6.0-6.2 without).
		 */
		os_race_point(kmmu, KMMU_RACE_AGE_READ, gfn);
		if (kmmu_mutant(CLEAR_A_WITHOUT_D)) {
			WRITE_ONCE(*sptep, spte & ~accessed);
			continue;
		}
		/* A D bit the CPU sets meanwhile fails the cmpxchg and is kept. */
		while (!try_cmpxchg64(sptep, &spte, spte & ~accessed)) {
			if (!is_shadow_present_spte(spte) || !(spte & accessed))
				break;
		}
	}
	res->young += young;
	res->old += old;
}

static void tdp_mmu_age_root(struct kmmu *kmmu, struct kmmu_mmu_page *root, gfn_t start,
			     gfn_t end, bool clear, struct kmmu_age_result *res)
{
	const struct kmmu_spte_fmt *f = &kmmu->fmt;
	struct tdp_iter iter;

	for_each_tdp_pte_min_level(iter, kmmu, root, KMMU_LEVEL_2M, start, end) {
		if (iter.level == KMMU_LEVEL_2M && is_shadow_present_spte(iter.old_spte) &&
		    !is_last_spte(f, iter.old_spte, iter.level))
			tdp_mmu_age_leaf_table(kmmu, &iter, start, end, clear, res);
		else
			tdp_mmu_age_leaf(kmmu, &iter, start, end, clear, res);
	}
}

/**
 * kmmu_tdp_mmu_age_gfn_range() - test, and optionally clear, accessed state
 * @kmmu: the VM: mmu_lock held for write, or nothing but RCU for a lockless pass
 * @as_id: address space
 * @start: first gfn
 * @end: gfn after the last
 * @clear: clear what was found accessed (age), or only look (test_age)
 * @lockless: walk under RCU only; every change is a cmpxchg
 * @res: in/out: 4 KiB pages found young and old are added here
 *
 * Return: true if any leaf in the range was accessed.
 */
bool kmmu_tdp_mmu_age_gfn_range(struct kmmu *kmmu, int as_id, gfn_t start, gfn_t end,
				bool clear, bool lockless, struct kmmu_age_result *res)
{
	struct kmmu_mmu_page *root;
	u64 young = res->young;

	u64 old = res->old;

	if (!lockless)
		lockdep_assert_held_write(&kmmu->mmu_lock);
	rcu_read_lock();
	/* Roots are unlisted with list_del_rcu() and freed after a grace period. */
	list_for_each_entry_rcu(root, &kmmu->tdp_mmu_roots, link, true) {
		if (root->as_id == as_id && !READ_ONCE(root->invalid))
			tdp_mmu_age_root(kmmu, root, start, end, clear, res);
	}
	rcu_read_unlock();
	os_trace_age(as_id, start, end, clear, lockless, res->young - young, res->old - old);
	return res->young != young;
}

/**
 * kmmu_tdp_mmu_get_walk() - the SPTEs a CPU walk of @gpa reads
 * @kmmu: the VM
 * @as_id: address space
 * @gpa: guest physical address
 * @sptes: out: sptes[level] for each level walked (index 0 unused)
 *
 * Uses the first valid root of @as_id.
 *
 * Return: the level of the last SPTE read, or 0 when there is no root.
 */
int kmmu_tdp_mmu_get_walk(struct kmmu *kmmu, int as_id, gpa_t gpa, u64 *sptes)
{
	gfn_t gfn = gpa >> KMMU_PAGE_SHIFT;
	struct kmmu_mmu_page *root;
	struct tdp_iter iter;
	int leaf = 0;

	read_lock(&kmmu->mmu_lock);
	rcu_read_lock();
	list_for_each_entry_rcu(root, &kmmu->tdp_mmu_roots, link, true) {
		if (root->as_id != as_id || READ_ONCE(root->invalid))
			continue;
		for_each_tdp_pte(iter, kmmu, root, gfn, gfn + 1) {
			leaf = iter.level;
			sptes[leaf] = iter.old_spte;
		}
		break;
	}
	rcu_read_unlock();
	read_unlock(&kmmu->mmu_lock);
	return leaf;
}

/* ---- dirty logging ---- */

/*
 * Clear a permission or dirty bit of a present leaf.  Nothing structural
 * changes, so there are no books to keep: one cmpxchg, which fails (and
 * the caller looks again) if the SPTE changed or was frozen meanwhile.
 */
static int tdp_mmu_clear_leaf_bit(struct tdp_iter *iter, u64 bit)
{
	return try_cmpxchg64(iter->sptep, &iter->old_spte, iter->old_spte & ~bit) ? 0 : -EBUSY;
}

/* Visit one SPTE; -EBUSY when a cmpxchg lost (iter->old_spte is then fresh). */
typedef int (*tdp_spte_fn)(struct kmmu *kmmu, struct tdp_iter *iter, void *data);

/*
 * Walk every root of @as_id over [start, end) under the read lock, holding
 * a reference to the root so the walk may yield.  @fn sees each SPTE with
 * level >= @min_level, again after each lost race.  A caller that changed
 * SPTEs flushes once at the end: nothing here frees a page.
 */
static void tdp_mmu_walk_shared(struct kmmu *kmmu, int as_id, gfn_t start, gfn_t end,
				int min_level, tdp_spte_fn fn, void *data)
{
	const struct kmmu_spte_fmt *f = &kmmu->fmt;
	struct kmmu_mmu_page *root;
	struct tdp_iter iter, leaf;

	lockdep_assert_held_read(&kmmu->mmu_lock);
	for_each_valid_tdp_mmu_root_yield_safe(kmmu, root, as_id) {
		rcu_read_lock();
		/* 4K leaves are visited by the plain loop below, a table at a time. */
		for_each_tdp_pte_min_level(iter, kmmu, root, max(min_level, KMMU_LEVEL_2M),
					   start, end) {
			if (tdp_mmu_iter_cond_resched(kmmu, &iter, false, true))
				continue;
			if (min_level == KMMU_LEVEL_4K && iter.level == KMMU_LEVEL_2M &&
			    is_shadow_present_spte(iter.old_spte) &&
			    !is_last_spte(f, iter.old_spte, iter.level)) {
				u64 *pt = spte_to_child_pt(f, iter.old_spte, iter.level);
				gfn_t last = min(end, iter.gfn + kmmu_pages_per_level(KMMU_LEVEL_2M));

				leaf = iter;
				leaf.level = KMMU_LEVEL_4K;
				for (leaf.gfn = max(start, iter.gfn); leaf.gfn < last; leaf.gfn++) {
					leaf.sptep = pt + kmmu_spte_index(leaf.gfn, KMMU_LEVEL_4K);
					leaf.old_spte = kmmu_tdp_read_spte(leaf.sptep);
					while (fn(kmmu, &leaf, data) == -EBUSY)
						;
				}
				continue;
			}
			while (fn(kmmu, &iter, data) == -EBUSY)
				;
		}
		rcu_read_unlock();
	}
}

static int tdp_mmu_wrprot_spte(struct kmmu *kmmu, struct tdp_iter *iter, void *data)
{
	const struct kmmu_spte_fmt *f = &kmmu->fmt;
	bool *flush = data;

	if (!is_shadow_present_spte(iter->old_spte) ||
	    !is_last_spte(f, iter->old_spte, iter->level) ||
	    !spte_may_write(f, iter->old_spte) ||
	    (kmmu_mutant(PROTECT_SKIPS_HUGE) && iter->level > KMMU_LEVEL_4K))
		return 0;
	/*
	 * MMU-writable stays: the first write is fixed, and logged, by the
	 * fast path.  A leaf with sub-page permissions loses SPP: its first
	 * write then faults, is logged, and gets SPP back on the slow path.
	 */
	if (tdp_mmu_clear_leaf_bit(iter, f->writable |
				   (kmmu_mutant(SPP_WRPROT_KEEPS_SPP) ? 0 : f->spp)))
		return -EBUSY;
	*flush = true;
	return 0;
}

static int tdp_mmu_clear_dirty_spte(struct kmmu *kmmu, struct tdp_iter *iter, void *data)
{
	const struct kmmu_spte_fmt *f = &kmmu->fmt;
	bool *flush = data;

	if (!is_shadow_present_spte(iter->old_spte) ||
	    !is_last_spte(f, iter->old_spte, iter->level) || !(iter->old_spte & f->dirty))
		return 0;
	if (tdp_mmu_clear_leaf_bit(iter, f->dirty))
		return -EBUSY;
	*flush = true;
	return 0;
}

/*
 * D-bit logging into dirty rings pushes a page when its D bit is set, one
 * 4 KiB page per access: a huge leaf cannot say which of its pages are
 * written after the first, so it is write-protected and faults to 4K.
 */
static int tdp_mmu_protect_ring_dbit_spte(struct kmmu *kmmu, struct tdp_iter *iter, void *data)
{
	if (iter->level > KMMU_LEVEL_4K)
		return tdp_mmu_wrprot_spte(kmmu, iter, data);
	return tdp_mmu_clear_dirty_spte(kmmu, iter, data);
}

/**
 * kmmu_tdp_mmu_protect_slot() - start tracking writes to a slot
 * @kmmu: the VM, mmu_lock held for read
 * @slot: the slot
 * @dbit: clear D bits (D-bit mode) instead of write-protecting
 *
 * Return: true if a TLB flush is owed before the log may be trusted.
 */
bool kmmu_tdp_mmu_protect_slot(struct kmmu *kmmu, const struct kmmu_memory_slot *slot,
			       bool dbit)
{
	tdp_spte_fn fn = tdp_mmu_wrprot_spte;
	bool flush = false;

	if (dbit)
		fn = kmmu->dirty_ring_size ? tdp_mmu_protect_ring_dbit_spte :
					     tdp_mmu_clear_dirty_spte;
	tdp_mmu_walk_shared(kmmu, slot->as_id, slot->base_gfn, kmmu_slot_end(slot),
			    KMMU_LEVEL_4K, fn, &flush);
	return flush;
}

/* The pages (bits from gfn @base on) that a walk should act on. */
struct tdp_bitmap_args {
	const struct kmmu_memory_slot *slot;
	gfn_t base;
	const unsigned long *bits;
	u64 nbits;
	bool dbit;
	bool flush;
};

static bool tdp_bitmap_hits(const struct tdp_bitmap_args *a, gfn_t gfn, int level)
{
	u64 first = gfn > a->base ? gfn - a->base : 0;
	u64 last = min_t(u64, gfn + kmmu_pages_per_level(level) - a->base, a->nbits);

	if (level == KMMU_LEVEL_4K)
		return first < a->nbits && test_bit(first, a->bits);
	for (; first < last; first++)
		if (test_bit(first, a->bits))
			return true;
	return false;
}

/*
 * D-bit logging, a huge leaf whose pages are being cleared: one D bit
 * cannot say which 4K pages are written next, so the leaf goes and faults
 * map 4K.  Its D bit first goes to the pages outside the bitmap, which
 * keep their word; the pages inside start clean.
 */
static int tdp_mmu_clear_huge_dbit(struct kmmu *kmmu, struct tdp_iter *iter,
				   struct tdp_bitmap_args *a)
{
	const struct kmmu_spte_fmt *f = &kmmu->fmt;
	gfn_t gfn, end = min(iter->gfn + kmmu_pages_per_level(iter->level),
			     kmmu_slot_end(a->slot));

	if (iter->old_spte & f->dirty) {
		for (gfn = max(iter->gfn, a->slot->base_gfn); gfn < end; gfn++)
			if (gfn < a->base || gfn - a->base >= a->nbits ||
			    !test_bit(gfn - a->base, a->bits))
				kmmu_mark_page_dirty(kmmu, a->slot, gfn);
		if (tdp_mmu_clear_leaf_bit(iter, f->dirty))
			return -EBUSY;
	}
	if (tdp_mmu_zap_spte_atomic(kmmu, iter))
		return -EBUSY;
	a->flush = true;
	return 0;
}

static int tdp_mmu_clear_bitmap_spte(struct kmmu *kmmu, struct tdp_iter *iter, void *data)
{
	const struct kmmu_spte_fmt *f = &kmmu->fmt;
	struct tdp_bitmap_args *a = data;
	/* Write-protection: W, or SPP on a leaf with sub-page permissions. */
	u64 bit = a->dbit ? f->dirty :
		  f->writable | (kmmu_mutant(SPP_WRPROT_KEEPS_SPP) ? 0 : f->spp);

	if (!is_shadow_present_spte(iter->old_spte) ||
	    !is_last_spte(f, iter->old_spte, iter->level) ||
	    !tdp_bitmap_hits(a, iter->gfn, iter->level))
		return 0;
	if (a->dbit && iter->level > KMMU_LEVEL_4K)
		return tdp_mmu_clear_huge_dbit(kmmu, iter, a);
	if (!(iter->old_spte & bit))
		return 0;
	if (tdp_mmu_clear_leaf_bit(iter, bit))
		return -EBUSY;
	a->flush = true;
	return 0;
}

/**
 * kmmu_tdp_mmu_clear_dirty_bitmap() - protect again the pages of a bitmap
 * @kmmu: the VM, mmu_lock held for read
 * @slot: the slot
 * @base: gfn of bit 0
 * @bits: pages whose dirty state was just handed to userspace
 * @nbits: bits in @bits
 * @dbit: clear D bits instead of W
 *
 * One walk over the range the bitmap spans, however many words it has.
 *
 * Return: true if a TLB flush is owed before the log is handed back.
 */
bool kmmu_tdp_mmu_clear_dirty_bitmap(struct kmmu *kmmu, const struct kmmu_memory_slot *slot,
				     gfn_t base, const unsigned long *bits, u64 nbits, bool dbit)
{
	struct tdp_bitmap_args a = { slot, base, bits, nbits, dbit, false };
	u64 first = 0, last = nbits;

	while (first < nbits && !bits[first / BITS_PER_LONG])
		first += BITS_PER_LONG;
	while (last > first && !bits[(last - 1) / BITS_PER_LONG])
		last = ALIGN_DOWN(last - 1, BITS_PER_LONG);
	if (first >= last)
		return false;
	tdp_mmu_walk_shared(kmmu, slot->as_id, base + first, base + last, KMMU_LEVEL_4K,
			    tdp_mmu_clear_bitmap_spte, &a);
	return a.flush;
}

struct tdp_harvest_args {
	const struct kmmu_memory_slot *slot;
	bool clear;
	bool flush;
};

static int tdp_mmu_harvest_spte(struct kmmu *kmmu, struct tdp_iter *iter, void *data)
{
	const struct kmmu_spte_fmt *f = &kmmu->fmt;
	struct tdp_harvest_args *a = data;
	gfn_t start, end;

	if (!is_shadow_present_spte(iter->old_spte) ||
	    !is_last_spte(f, iter->old_spte, iter->level) || !(iter->old_spte & f->dirty))
		return 0;
	if (a->clear) {
		if (tdp_mmu_clear_leaf_bit(iter, f->dirty))
			return -EBUSY;
		a->flush = true;
	}
	start = max(iter->gfn, a->slot->base_gfn);
	end = min(iter->gfn + kmmu_pages_per_level(iter->level), kmmu_slot_end(a->slot));
	kmmu_mark_dirty_range(kmmu, a->slot, start, end - start);
	return 0;
}

/**
 * kmmu_tdp_mmu_harvest_dirty() - D-bit mode: move D bits into the bitmap
 * @kmmu: the VM, mmu_lock held for read
 * @slot: the slot, which is logging
 * @clear: clear the D bits that were harvested
 *
 * Return: true if a TLB flush is owed (D bits were cleared).
 */
bool kmmu_tdp_mmu_harvest_dirty(struct kmmu *kmmu, const struct kmmu_memory_slot *slot,
				bool clear)
{
	struct tdp_harvest_args a = { slot, clear, false };

	tdp_mmu_walk_shared(kmmu, slot->as_id, slot->base_gfn, kmmu_slot_end(slot),
			    KMMU_LEVEL_4K, tdp_mmu_harvest_spte, &a);
	return a.flush;
}

/* ---- eager huge-page splitting ---- */

#define KMMU_SPLIT_BATCH_MAX	64

/* Page tables for splitting, allocated with mmu_lock dropped. */
struct kmmu_split_cache {
	int want;
	int nr;
	u64 clear_bits;		/* cleared in every new child: W when logging starts */
	u64 *pt[KMMU_SPLIT_BATCH_MAX];
	struct kmmu_mmu_page *sp[KMMU_SPLIT_BATCH_MAX];
};

static int split_cache_topup(struct kmmu_split_cache *c)
{
	while (c->nr < c->want) {
		u64 *pt = os_pt_alloc();
		struct kmmu_mmu_page *sp = pt ? os_zalloc(sizeof(*sp)) : NULL;

		if (!sp) {
			if (pt)
				os_pt_free(pt);
			return -ENOMEM;
		}
		c->pt[c->nr] = pt;
		c->sp[c->nr++] = sp;
	}
	return 0;
}

static void split_cache_free(struct kmmu_split_cache *c)
{
	while (c->nr) {
		c->nr--;
		os_pt_free(c->pt[c->nr]);
		os_free(c->sp[c->nr]);
	}
}

/* Eager splitting: the same with a table from the split cache. */
static int tdp_mmu_split_from_cache(struct kmmu *kmmu, struct tdp_iter *iter,
				    struct kmmu_split_cache *c)
{
	struct kmmu_mmu_page *sp;

	c->nr--;
	sp = c->sp[c->nr];
	memset(sp, 0, sizeof(*sp));
	/* Every entry is written by the split: no non-present fill first. */
	tdp_mmu_init_sp_header(sp, c->pt[c->nr], iter->gfn, iter->level - 1, iter->as_id);
	if (!tdp_mmu_split_huge_page(kmmu, iter, sp, c->clear_bits))
		return 0;
	os_pt_set_owner(sp->spt, NULL);
	c->nr++;
	return -EBUSY;
}

static int tdp_mmu_split_root(struct kmmu *kmmu, struct kmmu_mmu_page *root, gfn_t start,
			      gfn_t end, int target_level, struct kmmu_split_cache *c)
{
	const struct kmmu_spte_fmt *f = &kmmu->fmt;
	struct tdp_iter iter;
	int ret = 0;

	rcu_read_lock();
	for_each_tdp_pte_min_level(iter, kmmu, root, target_level + 1, start, end) {
retry:
		if (tdp_mmu_iter_cond_resched(kmmu, &iter, false, true))
			continue;
		if (!is_shadow_present_spte(iter.old_spte) || !is_large_spte(f, iter.old_spte))
			continue;
		if (!c->nr) {
			/* Allocations may sleep: not under mmu_lock. */
			rcu_read_unlock();
			read_unlock(&kmmu->mmu_lock);
			ret = split_cache_topup(c);
			read_lock(&kmmu->mmu_lock);
			rcu_read_lock();
			iter.yielded = true;
			if (ret)
				break;
			continue;
		}
		if (tdp_mmu_split_from_cache(kmmu, &iter, c))
			goto retry;
	}
	rcu_read_unlock();
	return ret;
}

/**
 * kmmu_tdp_mmu_try_split_huge_pages() - split huge mappings of a range ahead of vCPUs
 * @kmmu: the VM, mmu_lock held for read
 * @slot: the slot the range belongs to
 * @start: first gfn
 * @end: gfn after the last
 * @target_level: split down to this level
 * @wrprot: write-protect the new leaves (logging starts); the caller flushes
 *
 * Page tables come in batches of the VM's eager-split chunk, allocated with
 * mmu_lock dropped.  When memory runs short, what is left stays huge and is
 * split by the fault path instead.
 *
 * Return: 0, or -ENOMEM when the split stopped early.
 */
int kmmu_tdp_mmu_try_split_huge_pages(struct kmmu *kmmu, const struct kmmu_memory_slot *slot,
				      gfn_t start, gfn_t end, int target_level, bool wrprot)
{
	u64 tables = kmmu->eager_split_chunk >> (KMMU_PAGE_SHIFT + KMMU_LEVEL_BITS);
	struct kmmu_split_cache c = {
		.want = clamp_t(u64, tables, 1, KMMU_SPLIT_BATCH_MAX),
		.clear_bits = wrprot ? kmmu->fmt.writable : 0,
	};
	struct kmmu_mmu_page *root;
	int ret = 0;

	lockdep_assert_held_read(&kmmu->mmu_lock);
	for_each_valid_tdp_mmu_root_yield_safe(kmmu, root, slot->as_id) {
		if (!ret)
			ret = tdp_mmu_split_root(kmmu, root, start, end, target_level, &c);
	}
	split_cache_free(&c);
	return ret;
}

/* ---- huge-page recovery ---- */

/*
 * The huge leaf that maps what the table under the walker maps, if its 512
 * children are present leaves over contiguous, aligned pfns with the same
 * attributes.  A, D and W are merged; D is also set where the result is
 * writable, since a D bit set by the CPU between the read and the swap
 * would otherwise be lost.
 */
static bool tdp_mmu_make_huge_spte(struct kmmu *kmmu, struct tdp_iter *iter, u64 *huge)
{
	const struct kmmu_spte_fmt *f = &kmmu->fmt;
	u64 *pt = spte_to_child_pt(f, iter->old_spte, iter->level);
	u64 same = ~(SPTE_PFN_MASK | f->accessed | f->dirty | f->writable);
	int child_level = iter->level - 1, i;
	u64 first = READ_ONCE(pt[0]), spte = first;
	kmmu_pfn_t pfn = spte_to_pfn(first);

	if (pfn & (kmmu_pages_per_level(iter->level) - 1))
		return false;
	for (i = 0; i < KMMU_PT_ENTRIES; i++) {
		u64 c = READ_ONCE(pt[i]);

		if (!is_shadow_present_spte(c) || !is_last_spte(f, c, child_level) ||
		    is_access_track_spte(f, c) || (c & same) != (first & same) ||
		    spte_to_pfn(c) != pfn + i * kmmu_pages_per_level(child_level))
			return false;
		spte |= c & (f->accessed | f->dirty);
		spte &= c | ~f->writable;
	}
	if (spte & f->writable)
		spte |= f->dirty;
	*huge = spte | f->large;
	return true;
}

/* Does any child of the table under the walker still point to a table? */
static bool tdp_mmu_has_child_tables(struct kmmu *kmmu, struct tdp_iter *iter)
{
	const struct kmmu_spte_fmt *f = &kmmu->fmt;
	u64 *pt = spte_to_child_pt(f, iter->old_spte, iter->level);
	int i;

	for (i = 0; i < KMMU_PT_ENTRIES; i++) {
		u64 c = READ_ONCE(pt[i]);

		if (is_shadow_present_spte(c) && !is_last_spte(f, c, iter->level - 1))
			return true;
	}
	return false;
}

#define KMMU_RECOVER_FLUSH_BATCH	64

struct tdp_recover_args {
	const struct kmmu_memory_slot *slot;
	int level;		/* the level being rebuilt in this pass */
	int pending;		/* recoveries since the last flush */
};

static int tdp_mmu_recover_spte(struct kmmu *kmmu, struct tdp_iter *iter, void *data)
{
	const struct kmmu_spte_fmt *f = &kmmu->fmt;
	struct tdp_recover_args *a = data;
	gfn_t end = iter->gfn + kmmu_pages_per_level(iter->level);
	u64 huge;

	if (iter->level != a->level || !is_shadow_present_spte(iter->old_spte) ||
	    is_last_spte(f, iter->old_spte, iter->level) ||
	    iter->gfn < a->slot->base_gfn || end > kmmu_slot_end(a->slot) ||
	    (kmmu_max_mapping_level(kmmu, a->slot, iter->gfn, iter->level) < iter->level &&
	     !kmmu_mutant(RECOVER_IGNORES_LIMITS)))
		return 0;

	if (tdp_mmu_make_huge_spte(kmmu, iter, &huge)) {
		if (tdp_mmu_set_spte_atomic(kmmu, iter, huge))
			return -EBUSY;
		kmmu_stat_inc(kmmu, KMMU_STAT_RECOVERIES);
		/* The old tables go after a grace period; stale 4K entries are flushed in batches. */
		if (++a->pending == KMMU_RECOVER_FLUSH_BATCH) {
			kmmu_flush_remote_tlbs(kmmu);
			a->pending = 0;
		}
		return 0;
	}
	/* Not rebuildable in place: zap it, and the next fault maps it huge. */
	if (tdp_mmu_has_child_tables(kmmu, iter))
		return 0;
	if (tdp_mmu_zap_spte_atomic(kmmu, iter))
		return -EBUSY;
	kmmu_stat_inc(kmmu, KMMU_STAT_COLLAPSIBLE_ZAPS);
	return 0;
}

/**
 * kmmu_tdp_mmu_recover_huge_pages() - map a slot with the largest leaves again
 * @kmmu: the VM, mmu_lock held for read
 * @slot: the slot, no longer logging
 *
 * 2M leaves first, then 1G from them; one TLB flush per batch of
 * recoveries, not one per huge page.
 */
void kmmu_tdp_mmu_recover_huge_pages(struct kmmu *kmmu, const struct kmmu_memory_slot *slot)
{
	struct tdp_recover_args a = { .slot = slot };

	for (a.level = KMMU_LEVEL_2M; a.level <= min(kmmu->max_level, KMMU_LEVEL_1G); a.level++)
		tdp_mmu_walk_shared(kmmu, slot->as_id, slot->base_gfn, kmmu_slot_end(slot),
				    a.level, tdp_mmu_recover_spte, &a);
	if (a.pending)
		kmmu_flush_remote_tlbs(kmmu);
}
