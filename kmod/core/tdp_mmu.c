// SPDX-License-Identifier: GPL-2.0
/*
 * The TDP MMU: roots and page-table pages, mapping on faults under the read
 * side of mmu_lock with cmpxchg, zapping under the write side, and the one
 * place (handle_changed_spte) that keeps the books when an SPTE changes.
 */
#include "tdp_mmu.h"
#include "tdp_iter.h"
#include "fault.h"

/* ---- page-table pages ---- */

static void tdp_mmu_init_sp(struct kmmu *kmmu, struct kmmu_mmu_page *sp, u64 *spt,
			    gfn_t gfn, int level, int as_id)
{
	int i;

	for (i = 0; i < KMMU_PT_ENTRIES; i++)
		spt[i] = kmmu->fmt.nonpresent;
	sp->spt = spt;
	sp->gfn = gfn;
	sp->level = level;
	sp->as_id = as_id;
	os_pt_set_owner(spt, sp);
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

static void tdp_mmu_update_page_stats(struct kmmu *kmmu, int level, s64 delta)
{
	kmmu_stat_add(kmmu, KMMU_STAT_PAGES_4K + level - 1, delta);
}

static void __handle_changed_spte(struct kmmu *kmmu, int as_id, gfn_t gfn, u64 old_spte,
				  u64 new_spte, int level, bool shared);

/**
 * handle_removed_pt() - tear down a page table that was unlinked
 * @kmmu: the VM
 * @pt: the table; its parent entry no longer points to it
 * @shared: mmu_lock is held for read only
 *
 * Each entry is frozen so that a fast-path cmpxchg that still holds a
 * pointer into the table fails, and its children are torn down in turn.
 * Accessed/dirty are not propagated from here: a whole subtree going away
 * (a root, a collapsible range) says nothing about the guest's use of it.
 * The page itself is freed after an RCU grace period, when no lockless
 * walker can be reading it.
 */
static void handle_removed_pt(struct kmmu *kmmu, u64 *pt, bool shared)
{
	const struct kmmu_spte_fmt *f = &kmmu->fmt;
	struct kmmu_mmu_page *sp = os_pt_owner(pt);
	int level = sp->level;
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
		__handle_changed_spte(kmmu, sp->as_id, gfn, old_spte, f->frozen, level, shared);
	}

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

	/* A present leaf never changes pfn in place: it is zapped first. */
	WARN_ON_ONCE(was_leaf && is_leaf && pfn_changed);

	if (was_leaf != is_leaf)
		tdp_mmu_update_page_stats(kmmu, level, is_leaf ? 1 : -1);

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
 * A leaf stops mapping its page: tell the host what the guest did with it,
 * for pages whose struct page may be touched.
 */
static void handle_changed_spte_ad(struct kmmu *kmmu, u64 old_spte, u64 new_spte, int level)
{
	const struct kmmu_spte_fmt *f = &kmmu->fmt;

	if (!is_shadow_present_spte(old_spte) || !is_last_spte(f, old_spte, level))
		return;
	if (is_shadow_present_spte(new_spte) && spte_to_pfn(old_spte) == spte_to_pfn(new_spte))
		return;
	if (!is_refcounted_spte(f, old_spte))
		return;

	kmmu_stat_inc(kmmu, KMMU_STAT_ZAPPED_LEAFS);
	if (is_accessed_spte(f, old_spte))
		os_mark_pfn_accessed(spte_to_pfn(old_spte));
	if (is_dirty_spte(f, old_spte))
		os_mark_pfn_dirty(spte_to_pfn(old_spte));
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
 * Updates the page-size statistics, tears down an unlinked table, and, when
 * a leaf is zapped, marks its page accessed/dirty in the host (refcounted
 * pages only).
 */
static void handle_changed_spte(struct kmmu *kmmu, int as_id, gfn_t gfn, u64 old_spte,
				u64 new_spte, int level, bool shared)
{
	__handle_changed_spte(kmmu, as_id, gfn, old_spte, new_spte, level, shared);
	handle_changed_spte_ad(kmmu, old_spte, new_spte, level);
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

	if (is_frozen_spte(&kmmu->fmt, iter->old_spte))
		return -EBUSY;
	if (!try_cmpxchg64(iter->sptep, &iter->old_spte, new_spte))
		return -EBUSY;

	handle_changed_spte(kmmu, iter->as_id, iter->gfn, iter->old_spte, new_spte,
			    iter->level, true);
	return 0;
}

/*
 * Zap one SPTE under the read lock: freeze it, so nobody else builds on
 * it, keep the books, flush so no vCPU still uses it, then make it
 * non-present for good.
 */
static int tdp_mmu_zap_spte_atomic(struct kmmu *kmmu, struct tdp_iter *iter)
{
	int ret;

	ret = tdp_mmu_set_spte_atomic(kmmu, iter, kmmu->fmt.frozen);
	if (ret)
		return ret;

	kmmu_flush_remote_tlbs(kmmu);
	WRITE_ONCE(*iter->sptep, kmmu->fmt.nonpresent);
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

/*
 * Clear bits the CPU may set concurrently (A, and D next to it) without
 * losing the ones it sets meanwhile: one atomic AND instead of a
 * read-modify-write that could drop a D bit set in between.
 */
static u64 tdp_mmu_clear_spte_bits(const struct kmmu_spte_fmt *f, struct tdp_iter *iter,
				   u64 mask)
{
	if (spte_has_volatile_bits(f, iter->old_spte))
		return atomic64_fetch_and(~mask, (atomic64_t *)iter->sptep) & ~mask;

	WRITE_ONCE(*iter->sptep, iter->old_spte & ~mask);
	return iter->old_spte & ~mask;
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
		cond_resched_rwlock_write(&kmmu->mmu_lock);
	rcu_read_lock();

	iter->yielded = true;
	return true;
}

/* ---- roots ---- */

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
	refcount_set(&root->root_refcount, 1);
	kmmu_stat_inc(kmmu, KMMU_STAT_PT_PAGES);
	return root;
}

/**
 * kmmu_tdp_mmu_get_vcpu_root() - give the vCPU a valid root for @as_id
 * @vcpu: the vCPU; its old root, if any, must have been put
 * @as_id: address space
 *
 * Shares the valid root of the address space when there is one.
 *
 * Return: 0, or -ENOMEM.
 */
int kmmu_tdp_mmu_get_vcpu_root(struct kmmu_vcpu *vcpu, int as_id)
{
	struct kmmu *kmmu = vcpu->kmmu;
	struct kmmu_mmu_page *root;

	WARN_ON_ONCE(vcpu->root[as_id]);

	write_lock(&kmmu->mmu_lock);
	list_for_each_entry(root, &kmmu->tdp_mmu_roots, link) {
		if (root->as_id == as_id && !root->invalid &&
		    refcount_inc_not_zero(&root->root_refcount))
			goto out;
	}
	root = tdp_mmu_alloc_root(kmmu, as_id);
	if (!root) {
		write_unlock(&kmmu->mmu_lock);
		return -ENOMEM;
	}
	list_add(&root->link, &kmmu->tdp_mmu_roots);
out:
	vcpu->root[as_id] = root;
	write_unlock(&kmmu->mmu_lock);
	return 0;
}

/*
 * Zap everything under a root whose last user is gone.  Top-level entries
 * are tables, so their leaves go through handle_removed_pt(), which does not
 * touch the host pages' accessed/dirty state.
 */
static void tdp_mmu_zap_root(struct kmmu *kmmu, struct kmmu_mmu_page *root)
{
	struct tdp_iter iter;

	lockdep_assert_held_write(&kmmu->mmu_lock);

	rcu_read_lock();
	for_each_tdp_pte_min_level(iter, kmmu, root, root->level, 0, ~0ULL) {
		if (!is_shadow_present_spte(iter.old_spte))
			continue;
		tdp_mmu_iter_set_spte(kmmu, &iter, kmmu->fmt.nonpresent);
	}
	rcu_read_unlock();
}

static void tdp_mmu_put_root_locked(struct kmmu *kmmu, struct kmmu_mmu_page *root)
{
	lockdep_assert_held_write(&kmmu->mmu_lock);
	if (!refcount_dec_and_test(&root->root_refcount))
		return;

	list_del(&root->link);
	tdp_mmu_zap_root(kmmu, root);
	kmmu_flush_remote_tlbs(kmmu);
	kmmu_stat_add(kmmu, KMMU_STAT_PT_PAGES, -1);
	call_rcu(&root->rcu_head, tdp_mmu_free_sp_rcu_callback);
}

/**
 * kmmu_tdp_mmu_put_root() - drop a reference to a root
 * @kmmu: the VM
 * @root: the root
 *
 * The last reference unlinks the root, zaps it and frees it after a grace
 * period.  Takes mmu_lock for write.
 */
void kmmu_tdp_mmu_put_root(struct kmmu *kmmu, struct kmmu_mmu_page *root)
{
	write_lock(&kmmu->mmu_lock);
	tdp_mmu_put_root_locked(kmmu, root);
	write_unlock(&kmmu->mmu_lock);
}

/**
 * kmmu_tdp_mmu_invalidate_all_roots() - stop every root from being used
 * @kmmu: the VM
 *
 * Marks each root invalid and takes a reference for the zapper, so
 * kmmu_tdp_mmu_zap_invalidated_roots() can empty it while vCPUs let go of
 * it.  vCPUs are told to load a new root.
 */
void kmmu_tdp_mmu_invalidate_all_roots(struct kmmu *kmmu)
{
	struct kmmu_mmu_page *root;

	write_lock(&kmmu->mmu_lock);
	list_for_each_entry(root, &kmmu->tdp_mmu_roots, link) {
		if (!root->invalid && refcount_inc_not_zero(&root->root_refcount)) {
			root->invalid = true;
			root->zap_pending = true;
		}
	}
	write_unlock(&kmmu->mmu_lock);
	kmmu_make_all_vcpus_request(kmmu, KMMU_REQ_MMU_RELOAD);
}

/**
 * kmmu_tdp_mmu_zap_invalidated_roots() - empty and release invalid roots
 * @kmmu: the VM
 *
 * Drops the references taken by kmmu_tdp_mmu_invalidate_all_roots(); a
 * root no vCPU uses any more is freed here.
 */
void kmmu_tdp_mmu_zap_invalidated_roots(struct kmmu *kmmu)
{
	struct kmmu_mmu_page *root, *next;

	write_lock(&kmmu->mmu_lock);
	list_for_each_entry(root, &kmmu->tdp_mmu_roots, link) {
		if (root->zap_pending)
			tdp_mmu_zap_root(kmmu, root);
	}
	kmmu_flush_remote_tlbs(kmmu);
	list_for_each_entry_safe(root, next, &kmmu->tdp_mmu_roots, link) {
		if (!root->zap_pending)
			continue;
		root->zap_pending = false;
		tdp_mmu_put_root_locked(kmmu, root);
	}
	write_unlock(&kmmu->mmu_lock);
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
	struct kmmu_spte_args a;
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
		if (fault->slot->flags & KMMU_MEM_READONLY)
			a.access &= ~KMMU_ACC_WRITE;
		a.host_writable = fault->req.writable;
		a.refcounted = fault->req.refcounted;
		a.prefetch = false;
		new_spte = make_spte(f, &a);
	}

	if (new_spte == iter->old_spte)
		return RET_PF_SPURIOUS;
	if (tdp_mmu_set_spte_atomic(kmmu, iter, new_spte))
		return RET_PF_RETRY;
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
 * and zapping a huge leaf that sits above the goal, then installs the leaf.
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
		/* A huge leaf above the goal: it must go before a table replaces it. */
		if (is_shadow_present_spte(iter.old_spte)) {
			if (tdp_mmu_zap_spte_atomic(kmmu, &iter))
				goto out;
			iter.old_spte = kmmu_tdp_read_spte(iter.sptep);
		}

		sp = tdp_mmu_alloc_sp_from_cache(vcpu, &iter);
		if (!sp)
			goto out;
		if (tdp_mmu_link_sp(kmmu, &iter, sp)) {
			tdp_mmu_return_sp_to_cache(vcpu, sp);
			goto out;
		}
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
		flush = true;
	}
	rcu_read_unlock();
	return flush;
}

/*
 * Step to the next root of @as_id, holding a reference to it so that it
 * stays listed while mmu_lock is dropped in a yield; the reference to
 * @prev is dropped (which may free it) only once the next one is held.
 */
static struct kmmu_mmu_page *tdp_mmu_next_root(struct kmmu *kmmu,
					       struct kmmu_mmu_page *prev, int as_id)
{
	struct list_head *pos = prev ? prev->link.next : kmmu->tdp_mmu_roots.next;
	struct kmmu_mmu_page *next = NULL;

	lockdep_assert_held_write(&kmmu->mmu_lock);
	for (; pos != &kmmu->tdp_mmu_roots; pos = pos->next) {
		struct kmmu_mmu_page *root = list_entry(pos, struct kmmu_mmu_page, link);

		if (root->as_id == as_id && refcount_inc_not_zero(&root->root_refcount)) {
			next = root;
			break;
		}
	}
	if (prev)
		tdp_mmu_put_root_locked(kmmu, prev);
	return next;
}

#define for_each_tdp_mmu_root_yield_safe(kmmu, root, as_id)		\
	for (root = tdp_mmu_next_root(kmmu, NULL, as_id); root;		\
	     root = tdp_mmu_next_root(kmmu, root, as_id))

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

	for_each_tdp_mmu_root_yield_safe(kmmu, root, as_id)
		flush = tdp_mmu_zap_leafs(kmmu, root, start, end, can_yield, flush);
	return flush;
}

/* Age one leaf: clear A (or access-track it) without losing a racing D. */
static void tdp_mmu_age_spte(struct kmmu *kmmu, struct tdp_iter *iter)
{
	const struct kmmu_spte_fmt *f = &kmmu->fmt;
	u64 new_spte;

	if (spte_ad_enabled(iter->old_spte)) {
		iter->old_spte = tdp_mmu_clear_spte_bits(f, iter, f->accessed);
		return;
	}

	do {
		/* Without a D bit, writable means dirty: record it before W goes. */
		if (is_writable_spte(f, iter->old_spte) && is_refcounted_spte(f, iter->old_spte))
			os_mark_pfn_dirty(spte_to_pfn(iter->old_spte));
		new_spte = mark_spte_for_access_track(f, iter->old_spte);
		if (new_spte == iter->old_spte)
			return;
	} while (!try_cmpxchg64(iter->sptep, &iter->old_spte, new_spte));
}

/**
 * kmmu_tdp_mmu_age_gfn_range() - test, and optionally clear, accessed state
 * @kmmu: the VM, mmu_lock held for write
 * @as_id: address space
 * @start: first gfn
 * @end: gfn after the last
 * @clear: clear what was found accessed (age), or only look (test_age)
 *
 * Return: true if any leaf in the range was accessed.
 */
bool kmmu_tdp_mmu_age_gfn_range(struct kmmu *kmmu, int as_id, gfn_t start, gfn_t end,
				bool clear)
{
	const struct kmmu_spte_fmt *f = &kmmu->fmt;
	struct kmmu_mmu_page *root;
	struct tdp_iter iter;
	bool young = false;

	lockdep_assert_held_write(&kmmu->mmu_lock);
	rcu_read_lock();
	list_for_each_entry(root, &kmmu->tdp_mmu_roots, link) {
		if (root->as_id != as_id)
			continue;
		for_each_tdp_pte(iter, kmmu, root, start, end) {
			if (!is_shadow_present_spte(iter.old_spte) ||
			    !is_last_spte(f, iter.old_spte, iter.level) ||
			    !is_accessed_spte(f, iter.old_spte))
				continue;
			young = true;
			if (!clear)
				goto out;
			tdp_mmu_age_spte(kmmu, &iter);
		}
	}
out:
	rcu_read_unlock();
	return young;
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
	list_for_each_entry(root, &kmmu->tdp_mmu_roots, link) {
		if (root->as_id != as_id || root->invalid)
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
