// SPDX-License-Identifier: GPL-2.0
/*
 * The shadow MMU for nested TDP.  A nested vCPU runs on a shadow root:
 * tables that translate L2 addresses straight to host pages, as EPT02 /
 * NPT02 do, built one fault at a time from a walk of L1's tables.  Every
 * leaf is in the rmap of the L1 gfn it maps, so the host's invalidations
 * and dirty logging find it from the gfn.
 *
 * Everything here runs under mmu_lock held for write (the shadow MMU has
 * no read-lock path, as in KVM); the vCPUs walk the tables under RCU, and
 * pages are freed after a grace period.  What L1 changes in its tables
 * is seen after KMMU_INVALIDATE_NESTED (or a zap of everything for
 * another reason): until write-tracking, nothing finds the shadow pages
 * of one L1 table, so every invalidation drops them all.
 */
#include "dirty_ring.h"
#include "fault.h"
#include "guest_walk.h"
#include "rmap.h"
#include "shadow_mmu.h"
#include "tdp_mmu.h"

#define SHADOW_HASH_BITS	10
#define SHADOW_HASH_SIZE	(1 << SHADOW_HASH_BITS)
/* Leaves map 4K, 2M and 1G: one rmap per level. */
#define SHADOW_RMAP_LEVELS	(KMMU_NR_HUGE_LEVELS + 1)

static struct list_head *shadow_bucket(struct kmmu *kmmu, gfn_t gfn)
{
	/* The kernel's hash_64(), which the user host does not have. */
	return &kmmu->shadow_hash[(gfn * 0x61C8864680B583EBULL) >> (64 - SHADOW_HASH_BITS)];
}

/* ---- rmaps in the memslots ---- */

static unsigned int rmap_shift(int level)
{
	return (level - 1) * KMMU_LEVEL_BITS;
}

static struct kmmu_rmap_head *slot_rmap(const struct kmmu_memory_slot *slot, gfn_t gfn, int level)
{
	unsigned int shift = rmap_shift(level);

	return &slot->shadow.rmap[level - 1][(gfn >> shift) - (slot->base_gfn >> shift)];
}

static int shadow_slot_alloc(struct kmmu_memory_slot *slot)
{
	gfn_t last = slot->base_gfn + slot->npages - 1;
	int level;

	for (level = KMMU_LEVEL_4K; level <= SHADOW_RMAP_LEVELS; level++) {
		unsigned int shift = rmap_shift(level);
		u64 n = (last >> shift) - (slot->base_gfn >> shift) + 1;

		if (slot->shadow.rmap[level - 1])
			continue;
		slot->shadow.rmap[level - 1] = os_zalloc(n * sizeof(struct kmmu_rmap_head));
		if (!slot->shadow.rmap[level - 1])
			goto fail;
	}
	if (!slot->shadow.track)
		slot->shadow.track = os_zalloc(slot->npages * sizeof(*slot->shadow.track));
	if (slot->shadow.track)
		return 0;
fail:
	kmmu_shadow_slot_free(slot);
	return -ENOMEM;
}

/**
 * kmmu_shadow_slot_alloc() - give a new slot its rmaps, if the VM has shadow pages
 * @kmmu: the VM, slots_lock held
 * @slot: a slot not published yet
 *
 * Return: 0, or -ENOMEM with the slot's rmaps freed.
 */
int kmmu_shadow_slot_alloc(struct kmmu *kmmu, struct kmmu_memory_slot *slot)
{
	return kmmu->shadow_enabled ? shadow_slot_alloc(slot) : 0;
}

void kmmu_shadow_slot_free(struct kmmu_memory_slot *slot)
{
	int i;

	for (i = 0; i < SHADOW_RMAP_LEVELS; i++) {
		os_free(slot->shadow.rmap[i]);
		slot->shadow.rmap[i] = NULL;
	}
	os_free(slot->shadow.track);
	slot->shadow.track = NULL;
}

/*
 * The first shadow root: every slot gets its rmaps, and slots made from
 * now on get theirs when they are made (KVM's shadow_root_allocated).
 * The rmaps go into published slots; a fault reads them only after this
 * vCPU, or another, saw shadow_enabled set.
 */
static int shadow_enable(struct kmmu *kmmu)
{
	int as, i, ret = 0;

	/* Acquire: the rmaps of every slot are seen (release below). */
	if (smp_load_acquire(&kmmu->shadow_enabled))
		return 0;
	mutex_lock(&kmmu->slots_lock);
	if (kmmu->shadow_enabled)
		goto out;
	if (!kmmu->shadow_hash) {
		struct list_head *hash = os_zalloc(SHADOW_HASH_SIZE * sizeof(*hash));

		if (!hash) {
			ret = -ENOMEM;
			goto out;
		}
		for (i = 0; i < SHADOW_HASH_SIZE; i++)
			INIT_LIST_HEAD(&hash[i]);
		kmmu->shadow_hash = hash;
	}
	/* A slot that got its rmaps before a failure keeps them for the next try. */
	for (as = 0; as < KMMU_ADDRESS_SPACE_NUM && !ret; as++) {
		struct kmmu_memslots *slots = rcu_dereference_protected(kmmu->memslots[as], 1);

		for (i = 0; i < slots->nr && !ret; i++)
			ret = shadow_slot_alloc(slots->by_gfn[i]);
	}
	if (!ret) {
		/* Release: the rmaps are set before the flag is seen outside slots_lock. */
		smp_store_release(&kmmu->shadow_enabled, true);
	}
out:
	mutex_unlock(&kmmu->slots_lock);
	return ret;
}

/* ---- shadow pages ---- */

static struct kmmu_shadow_page *shadow_page_alloc(void)
{
	struct kmmu_shadow_page *sp = os_zalloc(sizeof(*sp));

	if (!sp)
		return NULL;
	sp->spt = os_pt_alloc();
	sp->gfns = (gfn_t *)os_pt_alloc();
	if (!sp->spt || !sp->gfns) {
		if (sp->spt)
			os_pt_free(sp->spt);
		if (sp->gfns)
			os_pt_free((u64 *)sp->gfns);
		os_free(sp);
		return NULL;
	}
	return sp;
}

static void shadow_page_free(struct kmmu_shadow_page *sp)
{
	os_pt_set_owner(sp->spt, NULL);
	os_pt_free(sp->spt);
	os_pt_free((u64 *)sp->gfns);
	os_free(sp);
}

static void shadow_page_free_rcu_callback(struct rcu_head *head)
{
	shadow_page_free(container_of(head, struct kmmu_shadow_page, rcu_head));
}

/* @sp is out of the hash and nothing reaches it: freed after a grace period. */
static void shadow_page_release(struct kmmu *kmmu, struct kmmu_shadow_page *sp)
{
	list_del(&sp->link);
	kmmu_stat_add(kmmu, KMMU_STAT_SHADOW_PAGES, -1);
	call_rcu(&sp->rcu_head, shadow_page_free_rcu_callback);
}

/*
 * What shadow faults read of L1's tables may be stale: those that walked
 * before now retry (shadow_seq; release: a walk that reads the new value
 * sees L1 as it was before, pairs with the acquire in vcpu_nested_walk()),
 * and, with @reload, vCPUs on a dropped root load another.  mmu_lock held
 * for write.
 */
static void shadow_retry_faults(struct kmmu *kmmu, bool reload)
{
	/* Release: see above. */
	smp_store_release(&kmmu->shadow_seq, kmmu->shadow_seq + 1);
	if (reload)
		kmmu_make_all_vcpus_request(kmmu, KMMU_REQ_MMU_RELOAD);
}

/* Pages and rmap descriptors for one fault, allocated before mmu_lock. */
static int shadow_topup_caches(struct kmmu_vcpu *vcpu)
{
	while (vcpu->nr_shadow_cache < KMMU_SHADOW_CACHE_MIN) {
		struct kmmu_shadow_page *sp = shadow_page_alloc();

		if (!sp)
			return -ENOMEM;
		vcpu->shadow_cache[vcpu->nr_shadow_cache++] = sp;
	}
	/* The leaf's rmap and a parent link per level. */
	return kmmu_rmap_cache_topup(&vcpu->rmap_cache, KMMU_RMAP_CACHE_SIZE);
}

void kmmu_shadow_vcpu_free(struct kmmu_vcpu *vcpu)
{
	kmmu_shadow_put_root(vcpu);
	while (vcpu->nr_shadow_cache)
		shadow_page_free(vcpu->shadow_cache[--vcpu->nr_shadow_cache]);
	kmmu_rmap_cache_free(&vcpu->rmap_cache);
}

/*
 * Write-tracking of the L1 table @sp shadows: the first shadow page of a
 * gfn takes it out of huge mappings and zaps its TDP leaves, so that L1's
 * next access maps it read-only (kmmu_shadow_gfn_tracked()); faults that
 * looked at the disallow counts before retry.  kmmu->srcu held.  Return:
 * true if a TLB flush is owed.
 */
static bool shadow_track(struct kmmu *kmmu, struct kmmu_shadow_page *sp)
{
	struct kmmu_memory_slot *slot;
	gfn_t gfn = sp->gfn;
	bool flush;
	u16 *count;

	slot = kmmu_gfn_to_memslot(kmmu_memslots(kmmu, sp->role.as_id), gfn);
	/* A root where L1 has no memory: the walk faults, nothing to track. */
	if (sp->role.direct || !slot || !slot->shadow.track || kmmu_gfn_private(kmmu, gfn))
		return false;
	sp->tracked = true;
	count = &slot->shadow.track[gfn - slot->base_gfn];
	WRITE_ONCE(*count, *count + 1);
	kmmu_stat_inc(kmmu, KMMU_STAT_SHADOW_TRACKED);
	if (*count > 1)
		return false;
	kmmu_lpage_disallow_adjust(slot, gfn, 1);
	WRITE_ONCE(kmmu->mmu_invalidate_seq, kmmu->mmu_invalidate_seq + 1);
	/* L2 may map the table too: its leaves for it go, and come back read-only. */
	flush = kmmu_shadow_zap_gfn_range(kmmu, sp->role.as_id, gfn, gfn + 1);
	/*
	 * A walk that read the table before now is not to be trusted: L1
	 * wrote it untrapped until here.  Shadow faults that walked before
	 * retry (the one making @sp too, once it has linked it).
	 */
	shadow_retry_faults(kmmu, false);
	return kmmu_tdp_mmu_zap_leafs(kmmu, sp->role.as_id, gfn, gfn + 1, false, false) || flush;
}

static void shadow_untrack(struct kmmu *kmmu, struct kmmu_shadow_page *sp)
{
	struct kmmu_memory_slot *slot;
	u16 *count;

	if (!sp->tracked)
		return;
	sp->tracked = false;
	slot = kmmu_gfn_to_memslot(kmmu_memslots(kmmu, sp->role.as_id), sp->gfn);
	/* A slot's change drops every shadow page before the slot goes. */
	if (WARN_ON_ONCE(!slot || !slot->shadow.track))
		return;
	count = &slot->shadow.track[sp->gfn - slot->base_gfn];
	WRITE_ONCE(*count, *count - 1);
	kmmu_stat_add(kmmu, KMMU_STAT_SHADOW_TRACKED, -1);
	if (!*count)
		kmmu_lpage_disallow_adjust(slot, sp->gfn, -1);
}

/* The page for (@gfn, @role) in the hash, if any; mmu_lock held for write. */
static struct kmmu_shadow_page *shadow_find_page(struct kmmu *kmmu, gfn_t gfn,
						 union kmmu_sp_role role)
{
	struct kmmu_shadow_page *sp;

	lockdep_assert_held_write(&kmmu->mmu_lock);
	list_for_each_entry(sp, shadow_bucket(kmmu, gfn), hash_link)
		if (sp->gfn == gfn && sp->role.word == role.word)
			return sp;
	return NULL;
}

/*
 * @sp, fresh from a cache, becomes the empty page for (@gfn, @role), in
 * the hash; kmmu->srcu held.  *@flush is set when making it owes a TLB
 * flush.
 */
static void shadow_init_page(struct kmmu *kmmu, struct kmmu_shadow_page *sp, gfn_t gfn,
			     union kmmu_sp_role role, bool *flush)
{
	int i;

	for (i = 0; i < KMMU_PT_ENTRIES; i++)
		sp->spt[i] = kmmu->fmt.nonpresent;
	sp->gfn = gfn;
	sp->role = role;
	atomic_long_set(&sp->parent_ptes.val, 0);
	sp->root_count = 0;
	sp->tracked = false;
	sp->invalid = false;
	os_pt_set_owner(sp->spt, sp);
	list_add(&sp->hash_link, shadow_bucket(kmmu, gfn));
	list_add(&sp->link, &kmmu->shadow_pages);
	kmmu_stat_inc(kmmu, KMMU_STAT_SHADOW_PAGES);
	*flush |= shadow_track(kmmu, sp);
}

/*
 * The page for (@gfn, @role), made from the vCPU's cache if there is none;
 * kmmu->srcu held.  *@flush is set when making it owes a TLB flush.
 */
static struct kmmu_shadow_page *shadow_get_page(struct kmmu_vcpu *vcpu, gfn_t gfn,
						union kmmu_sp_role role, bool *flush)
{
	struct kmmu_shadow_page *sp = shadow_find_page(vcpu->kmmu, gfn, role);

	if (sp)
		return sp;
	if (WARN_ON_ONCE(!vcpu->nr_shadow_cache))
		return NULL;
	sp = vcpu->shadow_cache[--vcpu->nr_shadow_cache];
	shadow_init_page(vcpu->kmmu, sp, gfn, role, flush);
	return sp;
}

static struct kmmu_shadow_page *spte_to_child(u64 spte)
{
	return os_pt_owner(os_pfn_to_pt(spte_to_pfn(spte)));
}

/* The page an SPTE is in (sptep_to_sp() of the shadow MMU). */
static struct kmmu_shadow_page *sptep_to_shadow_page(u64 *sptep)
{
	return os_pt_owner((u64 *)((unsigned long)sptep & ~(unsigned long)(KMMU_PAGE_SIZE - 1)));
}

/* The slot of the L1 gfn a present leaf maps; kmmu->srcu held. */
static struct kmmu_memory_slot *leaf_slot(struct kmmu *kmmu, struct kmmu_shadow_page *sp,
					  unsigned int idx)
{
	struct kmmu_memory_slot *slot;

	slot = kmmu_gfn_to_memslot(kmmu_memslots(kmmu, sp->role.as_id), sp->gfns[idx]);
	/* Every slot change zaps the leaves of the slot first. */
	if (WARN_ON_ONCE(!slot || !slot->shadow.rmap[0]))
		return NULL;
	return slot;
}

/*
 * D-bit logging of the shadow leaves (bitmap logs only): a leaf of a
 * logging slot is writable with D clear, and GET and CLEAR harvest its D
 * through the rmaps.  Into dirty rings the leaves log by write protection,
 * as KVM's nested SPTEs do (SPTE_TDP_AD_WRPROT_ONLY) when PML is on: what a
 * vCPU's log of the D bits it sets would record is the L2 address.
 */
static bool shadow_log_dbit(const struct kmmu *kmmu)
{
	return kmmu->dirty_log_mode == KMMU_DIRTY_LOG_MODE_DBIT && !READ_ONCE(kmmu->dirty_ring_size);
}

/* A leaf that goes takes its D bit to the log first. */
static void shadow_log_dropped_dirty(struct kmmu *kmmu, const struct kmmu_memory_slot *slot,
				     gfn_t gfn, int level, u64 old_spte)
{
	u64 pages = kmmu_pages_per_level(level);

	if (!(old_spte & kmmu->fmt.dirty) || !slot->dirty_bitmap || !shadow_log_dbit(kmmu))
		return;
	kmmu_mark_dirty_range(kmmu, slot, gfn, min(pages, kmmu_slot_end(slot) - gfn));
}

/* Clear a present leaf and take it out of its rmap; kmmu->srcu held. */
static void shadow_drop_leaf(struct kmmu *kmmu, struct kmmu_shadow_page *sp, unsigned int idx)
{
	struct kmmu_memory_slot *slot = leaf_slot(kmmu, sp, idx);
	gfn_t gfn = sp->gfns[idx];
	int level = sp->role.level;
	u64 old;

	/* xchg: the vCPU's walker may be setting A or D. */
	old = xchg(&sp->spt[idx], kmmu->fmt.nonpresent);
	if (slot) {
		kmmu_rmap_remove(kmmu, slot_rmap(slot, gfn, level), &sp->spt[idx]);
		shadow_log_dropped_dirty(kmmu, slot, gfn, level, old);
	}
	kmmu_stat_add(kmmu, KMMU_STAT_SHADOW_LEAVES, -1);
}

/*
 * Clear every SPTE of @sp: leaves leave their rmaps, links leave their
 * child's parent_ptes.  kmmu->srcu held.  Return: true if one was present.
 */
static bool shadow_clear_page(struct kmmu *kmmu, struct kmmu_shadow_page *sp)
{
	const struct kmmu_spte_fmt *f = &kmmu->fmt;
	bool flush = false;
	unsigned int i;

	for (i = 0; i < KMMU_PT_ENTRIES; i++) {
		u64 spte = READ_ONCE(sp->spt[i]);

		if (!is_shadow_present_spte(spte))
			continue;
		flush = true;
		if (is_last_spte(f, spte, sp->role.level)) {
			shadow_drop_leaf(kmmu, sp, i);
			continue;
		}
		WRITE_ONCE(sp->spt[i], f->nonpresent);
		kmmu_rmap_remove(kmmu, &spte_to_child(spte)->parent_ptes, &sp->spt[i]);
	}
	return flush;
}

/*
 * @sp is empty and nothing links it: it leaves the hash and its L1 table
 * is no longer tracked for it; it is freed after a grace period, or, if
 * vCPUs run on it, when the last of them lets it go.  Return: true if a
 * vCPU must load another root.
 */
static bool shadow_free_page(struct kmmu *kmmu, struct kmmu_shadow_page *sp)
{
	if (!list_empty(&sp->hash_link)) {
		list_del(&sp->hash_link);
		INIT_LIST_HEAD(&sp->hash_link);
	}
	shadow_untrack(kmmu, sp);
	if (sp->root_count) {
		bool reload = !sp->invalid;

		WRITE_ONCE(sp->invalid, true);
		return reload;
	}
	shadow_page_release(kmmu, sp);
	return false;
}

/*
 * Zap one page: unlinked from its parents, emptied, freed.  Its children
 * stay, in the hash, for the next walk that needs them.  Return: true if a
 * TLB flush is owed; *@reload as shadow_free_page() says.
 */
static bool shadow_zap_page(struct kmmu *kmmu, struct kmmu_shadow_page *sp, bool *reload)
{
	struct kmmu_rmap_iter iter;
	bool flush = false;
	u64 *sptep;

	while ((sptep = kmmu_rmap_iter_first(kmmu_rmap_peek(kmmu, &sp->parent_ptes), &iter))) {
		WRITE_ONCE(*sptep, kmmu->fmt.nonpresent);
		kmmu_rmap_remove(kmmu, &sp->parent_ptes, sptep);
		flush = true;
	}
	flush |= shadow_clear_page(kmmu, sp);
	*reload |= shadow_free_page(kmmu, sp);
	return flush;
}

/**
 * kmmu_shadow_zap_all_locked() - drop every shadow page
 * @kmmu: the VM, mmu_lock held for write
 *
 * Every SPTE is cleared and every leaf leaves its rmap.  A root that
 * vCPUs run on stays until the last of them lets it go; they are asked to
 * load a new one.  The caller flushes the TLBs when told to.
 *
 * Return: true if a present SPTE was cleared.
 */
bool kmmu_shadow_zap_all_locked(struct kmmu *kmmu)
{
	struct kmmu_shadow_page *sp, *tmp;
	bool flush = false, reload = false;
	int idx;

	lockdep_assert_held_write(&kmmu->mmu_lock);
	if (list_empty(&kmmu->shadow_pages))
		return false;
	idx = srcu_read_lock(&kmmu->srcu);
	/* Emptied first, freed after: a page's child may come later in the list. */
	list_for_each_entry(sp, &kmmu->shadow_pages, link)
		flush |= shadow_clear_page(kmmu, sp);
	list_for_each_entry_safe(sp, tmp, &kmmu->shadow_pages, link)
		reload |= shadow_free_page(kmmu, sp);
	srcu_read_unlock(&kmmu->srcu, idx);
	shadow_retry_faults(kmmu, reload);
	return flush;
}

/**
 * kmmu_shadow_unprotect_gfn() - L1 is about to write @gfn: zap its shadow pages
 * @kmmu: the VM; takes mmu_lock for write
 * @as_id: address space
 * @gfn: an L1 frame the TDP MMU maps read-only for write-tracking
 *
 * Every shadow page of an L1 table at @gfn goes, so the gfn is no longer
 * tracked and L1's write, retried, proceeds; a walk that reads the table
 * again makes new shadow pages from what L1 wrote.  Called by the TDP fault
 * of L1's write, in its srcu section.
 */
void kmmu_shadow_unprotect_gfn(struct kmmu *kmmu, int as_id, gfn_t gfn)
{
	struct kmmu_shadow_page *sp, *tmp;
	bool flush = false, reload = false;

	kmmu_mmu_write_lock(kmmu);
	list_for_each_entry_safe(sp, tmp, shadow_bucket(kmmu, gfn), hash_link)
		if (sp->gfn == gfn && !sp->role.direct && sp->role.as_id == as_id)
			flush |= shadow_zap_page(kmmu, sp, &reload);
	shadow_retry_faults(kmmu, reload);
	if (flush)
		kmmu_flush_remote_tlbs(kmmu);
	kmmu_stat_inc(kmmu, KMMU_STAT_SHADOW_UNPROTECTS);
	kmmu_mmu_write_unlock(kmmu);
}

void kmmu_shadow_zap_all(struct kmmu *kmmu)
{
	bool flush;

	/* No shadow page is made before this is set. */
	if (!smp_load_acquire(&kmmu->shadow_enabled))
		return;
	kmmu_mmu_write_lock(kmmu);
	flush = kmmu_shadow_zap_all_locked(kmmu);
	if (flush)
		kmmu_flush_remote_tlbs(kmmu);
	kmmu_mmu_write_unlock(kmmu);
}

typedef bool (*shadow_rmap_fn)(struct kmmu *kmmu, struct kmmu_rmap_head *head, int level,
			       void *data);

/*
 * Call @fn on every rmap of @slot, at every level, that holds an SPTE
 * mapping one of the L1 gfns [start, end) (inside the slot); true if any
 * call returned true.  An empty rmap costs one load.
 */
static bool shadow_slot_rmaps(struct kmmu *kmmu, struct kmmu_memory_slot *slot, gfn_t start,
			      gfn_t end, shadow_rmap_fn fn, void *data)
{
	bool ret = false;
	int level;

	for (level = KMMU_LEVEL_4K; level <= SHADOW_RMAP_LEVELS; level++) {
		gfn_t gfn;

		for (gfn = kmmu_gfn_round_for_level(start, level); gfn < end;
		     gfn += kmmu_pages_per_level(level)) {
			struct kmmu_rmap_head *head = slot_rmap(slot, max(gfn, slot->base_gfn), level);

			if (atomic_long_read(&head->val))
				ret |= fn(kmmu, head, level, data);
		}
	}
	return ret;
}

/* Zap every leaf of an rmap; mmu_lock held for write. */
static bool shadow_zap_rmap(struct kmmu *kmmu, struct kmmu_rmap_head *head, int level, void *data)
{
	struct kmmu_rmap_iter iter;
	bool flush = false;
	u64 *sptep;

	if (kmmu_mutant(SHADOW_NOTIFIER_NO_ZAP))
		return false;
	while ((sptep = kmmu_rmap_iter_first(kmmu_rmap_peek(kmmu, head), &iter))) {
		struct kmmu_shadow_page *sp = sptep_to_shadow_page(sptep);

		shadow_drop_leaf(kmmu, sp, sptep - sp->spt);
		flush = true;
	}
	return flush;
}

/**
 * kmmu_shadow_zap_gfn_range() - zap the leaves that map L1 gfns [start, end)
 * @kmmu: the VM, mmu_lock held for write, kmmu->srcu held
 * @as_id: address space
 * @start: first gfn, in one slot with @end - 1
 * @end: gfn after the last
 *
 * Return: true if a TLB flush is owed.
 */
bool kmmu_shadow_zap_gfn_range(struct kmmu *kmmu, int as_id, gfn_t start, gfn_t end)
{
	struct kmmu_memory_slot *slot;

	lockdep_assert_held_write(&kmmu->mmu_lock);
	/* Acquire, here and below: with the flag, the slots' rmaps. */
	if (!smp_load_acquire(&kmmu->shadow_enabled) || list_empty(&kmmu->shadow_pages))
		return false;
	slot = kmmu_gfn_to_memslot(kmmu_memslots(kmmu, as_id), start);
	if (!slot || !slot->shadow.rmap[0])
		return false;
	return shadow_slot_rmaps(kmmu, slot, max(start, slot->base_gfn),
				 min(end, kmmu_slot_end(slot)), shadow_zap_rmap, NULL);
}

typedef bool (*shadow_slot_fn)(struct kmmu *kmmu, struct kmmu_memory_slot *slot, gfn_t start,
			       gfn_t end, void *data);

/*
 * Call @fn on the part of [start, end) in each slot of @as_id that has
 * rmaps, under the VM's srcu; true if any call returned true.
 */
static bool shadow_walk_slots(struct kmmu *kmmu, int as_id, gfn_t start, gfn_t end,
				 shadow_slot_fn fn, void *data)
{
	struct kmmu_memslots *slots;
	bool ret = false;
	int i, idx;

	/* Acquire: with the flag, the slots' rmaps. */
	if (!smp_load_acquire(&kmmu->shadow_enabled))
		return false;
	idx = srcu_read_lock(&kmmu->srcu);
	slots = kmmu_memslots(kmmu, as_id);
	for (i = 0; i < slots->nr; i++) {
		struct kmmu_memory_slot *slot = slots->by_gfn[i];
		gfn_t s = max(start, slot->base_gfn), e = min(end, kmmu_slot_end(slot));

		if (s < e && slot->shadow.rmap[0])
			ret |= fn(kmmu, slot, s, e, data);
	}
	srcu_read_unlock(&kmmu->srcu, idx);
	return ret;
}

static bool shadow_zap_slot_range(struct kmmu *kmmu, struct kmmu_memory_slot *slot, gfn_t start,
				  gfn_t end, void *data)
{
	return shadow_slot_rmaps(kmmu, slot, start, end, shadow_zap_rmap, NULL);
}

/**
 * kmmu_shadow_zap_range() - zap the leaves that map L1 gfns [start, end), any slot
 * @kmmu: the VM, mmu_lock held for write
 * @as_id: address space
 * @start: first gfn
 * @end: gfn after the last
 *
 * Return: true if a TLB flush is owed.
 */
bool kmmu_shadow_zap_range(struct kmmu *kmmu, int as_id, gfn_t start, gfn_t end)
{
	return shadow_walk_slots(kmmu, as_id, start, end, shadow_zap_slot_range, NULL);
}

struct shadow_age_args {
	bool clear;
	bool fast_only;
	struct kmmu_age_result *res;
	bool *incomplete;
};

/*
 * Age the rmaps of a slot for [start, end), each level's in one call: the
 * rmaps of consecutive gfns of a level are consecutive.
 */
static bool shadow_age_slot_range(struct kmmu *kmmu, struct kmmu_memory_slot *slot, gfn_t start,
				  gfn_t end, void *data)
{
	struct shadow_age_args *a = data;
	bool young = false;
	int level;

	for (level = KMMU_LEVEL_4K; level <= SHADOW_RMAP_LEVELS; level++) {
		struct kmmu_rmap_head *first = slot_rmap(slot, start, level);
		struct kmmu_rmap_age_result r = { 0 };

		kmmu_rmap_age_range(kmmu, first, slot_rmap(slot, end - 1, level) - first + 1,
				    !a->clear, a->fast_only, &r);
		a->res->young += r.young * kmmu_pages_per_level(level);
		a->res->old += r.old * kmmu_pages_per_level(level);
		*a->incomplete |= r.incomplete;
		young |= r.young;
	}
	return young;
}

/**
 * kmmu_shadow_age_gfn_range() - test, and optionally clear, accessed state
 *	of the shadow leaves that map L1 gfns [start, end)
 * @kmmu: the VM: mmu_lock held for write, or nothing at all
 * @as_id: address space
 * @start: first gfn
 * @end: gfn after the last
 * @clear: clear what was found accessed (age), or only look
 * @fast_only: never wait for an rmap's lock: skip the rmap, set *@incomplete
 * @res: in/out: 4 KiB pages found young and old are added here
 * @incomplete: out: set when a fast-only pass skipped an rmap
 *
 * Without mmu_lock each rmap is walked under its own lock (the lock bit),
 * so that a writer cannot change the list or free the SPTEs under the
 * walk; an rmap with no SPTE costs one load.  A huge leaf counts as the
 * 4 KiB pages it maps.
 *
 * Return: true if any leaf was accessed.
 */
bool kmmu_shadow_age_gfn_range(struct kmmu *kmmu, int as_id, gfn_t start, gfn_t end, bool clear,
			       bool fast_only, struct kmmu_age_result *res, bool *incomplete)
{
	struct shadow_age_args a = { clear, fast_only, res, incomplete };

	if (kmmu_mutant(SHADOW_AGING_SKIPPED))
		return false;
	return shadow_walk_slots(kmmu, as_id, start, end, shadow_age_slot_range, &a);
}

/* Clear @bit in a shadow SPTE.  Return: true if it had it. */
static bool shadow_clear_spte_bit(u64 *sptep, u64 bit)
{
	u64 spte = READ_ONCE(*sptep);

	/* The vCPU's walker may set A or D meanwhile. */
	while ((spte & bit) && !try_cmpxchg64(sptep, &spte, spte & ~bit))
		;
	return spte & bit;
}

/*
 * Does a leaf of a 4K rmap have @bit?  With @clear, it is cleared in every
 * leaf.  mmu_lock held for write.
 */
static bool shadow_rmap_bit(struct kmmu *kmmu, struct kmmu_rmap_head *head, u64 bit, bool clear)
{
	struct kmmu_rmap_iter iter;
	bool found = false;
	unsigned long val;
	u64 *sptep;

	if (!atomic_long_read(&head->val))
		return false;
	val = kmmu_rmap_peek(kmmu, head);
	for_each_rmap_spte(val, &iter, sptep)
		found |= clear ? shadow_clear_spte_bit(sptep, bit) : !!(READ_ONCE(*sptep) & bit);
	return found;
}

/* What protects a logged page's leaves again: no W, or, D-bit logging, no D. */
static u64 shadow_log_protect_bit(const struct kmmu *kmmu)
{
	return shadow_log_dbit(kmmu) ? kmmu->fmt.dirty : kmmu->fmt.writable;
}

/* Does the slot have rmaps? */
static bool shadow_slot_mapped(struct kmmu *kmmu, const struct kmmu_memory_slot *slot)
{
	/* Acquire: with the flag, the slot's rmaps. */
	return smp_load_acquire(&kmmu->shadow_enabled) && slot->shadow.rmap[0];
}

/**
 * kmmu_shadow_protect_gfns() - protect again the leaves of logged pages
 * @kmmu: the VM; takes mmu_lock for write
 * @slot: a slot that logs dirty pages, whose leaves all map 4K
 * @base: gfn of bit 0
 * @bits: the pages just taken from the log
 * @nbits: bits in @bits
 *
 * Write-protection logging (and logging into rings): a shadow leaf of a
 * logging slot is writable only after a write fault that logged its page,
 * so the leaves of the pages taken lose W.  D-bit logging: they lose D.
 *
 * Return: true if a TLB flush is owed.
 */
bool kmmu_shadow_protect_gfns(struct kmmu *kmmu, const struct kmmu_memory_slot *slot,
			      gfn_t base, const unsigned long *bits, u64 nbits)
{
	u64 bit = shadow_log_protect_bit(kmmu), i;
	bool flush = false;

	if (!shadow_slot_mapped(kmmu, slot) || kmmu_mutant(SHADOW_LOG_NO_PROTECT))
		return false;
	kmmu_mmu_write_lock(kmmu);
	for (i = 0; i < nbits; i++)
		if (bits[i / BITS_PER_LONG] & BIT(i % BITS_PER_LONG))
			flush |= shadow_rmap_bit(kmmu, slot_rmap(slot, base + i, KMMU_LEVEL_4K),
						 bit, true);
	kmmu_mmu_write_unlock(kmmu);
	return flush;
}

/**
 * kmmu_shadow_harvest_dirty() - D-bit logging: the log takes the D bits of
 *	a slot's shadow leaves
 * @kmmu: the VM; takes mmu_lock for write
 * @slot: a slot that logs into a bitmap, whose leaves all map 4K
 * @clear: clear the D bits taken (manual protection clears them on CLEAR)
 *
 * Return: true if a TLB flush is owed.
 */
bool kmmu_shadow_harvest_dirty(struct kmmu *kmmu, const struct kmmu_memory_slot *slot, bool clear)
{
	const struct kmmu_spte_fmt *f = &kmmu->fmt;
	bool flush = false;
	gfn_t gfn;

	if (!shadow_log_dbit(kmmu) || !shadow_slot_mapped(kmmu, slot) ||
	    kmmu_mutant(SHADOW_DBIT_NOT_HARVESTED))
		return false;
	kmmu_mmu_write_lock(kmmu);
	for (gfn = slot->base_gfn; gfn < kmmu_slot_end(slot); gfn++) {
		if (!shadow_rmap_bit(kmmu, slot_rmap(slot, gfn, KMMU_LEVEL_4K), f->dirty, clear))
			continue;
		kmmu_mark_page_dirty(kmmu, slot, gfn);
		flush |= clear;
	}
	kmmu_mmu_write_unlock(kmmu);
	return flush;
}

/* What an eager split of one huge leaf takes: a page, a descriptor per SPTE and the link. */
struct shadow_split_cache {
	struct kmmu_shadow_page *sp;
	struct kmmu_rmap_cache rmaps;
};

static int shadow_split_cache_topup(struct shadow_split_cache *c)
{
	if (!c->sp) {
		c->sp = shadow_page_alloc();
		if (!c->sp)
			return -ENOMEM;
	}
	return kmmu_rmap_cache_topup(&c->rmaps, KMMU_PT_ENTRIES + 1);
}

static void shadow_split_cache_free(struct shadow_split_cache *c)
{
	if (c->sp)
		shadow_page_free(c->sp);
	kmmu_rmap_cache_free(&c->rmaps);
}

/*
 * Split the huge leaf @idx of @sp (KVM's shadow_mmu_split_huge_page()):
 * a direct page of leaves one level down maps what it mapped, each leaf
 * in its rmap, and is linked where the huge leaf was.  The translations
 * are the same, so no TLB flush is owed.  kmmu->srcu held, mmu_lock held
 * for write, @c topped up.  Return: false when the leaf cannot be split
 * here (the caller zaps it).
 */
static bool shadow_split_leaf(struct kmmu *kmmu, struct kmmu_memory_slot *slot,
			      struct kmmu_shadow_page *sp, unsigned int idx,
			      struct shadow_split_cache *c)
{
	const struct kmmu_spte_fmt *f = &kmmu->fmt;
	int level = sp->role.level, child_level = level - 1;
	u64 pages = kmmu_pages_per_level(child_level), huge;
	union kmmu_sp_role role = sp->role;
	struct kmmu_shadow_page *child;
	gfn_t gfn = sp->gfns[idx];
	bool flush = false;
	unsigned int i;

	role.level = child_level;
	role.direct = 1;
	/* A leaf is inside its slot, as the fault made it. */
	if (WARN_ON_ONCE(gfn < slot->base_gfn ||
			 gfn + kmmu_pages_per_level(level) > kmmu_slot_end(slot)) ||
	    shadow_find_page(kmmu, gfn, role) || kmmu_mutant(SHADOW_SPLIT_ZAPS))
		return false;
	child = c->sp;
	c->sp = NULL;
	shadow_init_page(kmmu, child, gfn, role, &flush);

	/* xchg: the vCPU's walker may be setting A or D; until the link, it faults. */
	huge = xchg(&sp->spt[idx], f->nonpresent);
	kmmu_rmap_remove(kmmu, slot_rmap(slot, gfn, level), &sp->spt[idx]);
	for (i = 0; i < KMMU_PT_ENTRIES; i++) {
		child->gfns[i] = gfn + i * pages;
		child->spt[i] = make_huge_page_split_spte(f, huge, child_level, i);
		WARN_ON_ONCE(kmmu_rmap_add(kmmu, slot_rmap(slot, child->gfns[i], child_level),
					   &child->spt[i], &c->rmaps) < 0);
	}
	WARN_ON_ONCE(kmmu_rmap_add(kmmu, &child->parent_ptes, &sp->spt[idx], &c->rmaps) < 0);
	/* Release: the child's SPTEs are set before a walker can reach them. */
	smp_store_release(&sp->spt[idx], make_table_spte(f, os_pt_to_pfn(child->spt)));
	kmmu_stat_add(kmmu, KMMU_STAT_SHADOW_LEAVES, KMMU_PT_ENTRIES - 1);
	kmmu_stat_inc(kmmu, KMMU_STAT_SPLITS);
	return true;
}

/*
 * Every huge leaf of @slot at @level goes: split (@split), or zapped when
 * not or when memory runs out, one at a time under mmu_lock, the cache
 * topped up between them.  kmmu->srcu held.  Return: true if a TLB flush
 * is owed.
 */
static bool shadow_split_level(struct kmmu *kmmu, struct kmmu_memory_slot *slot, int level,
			       bool split, struct shadow_split_cache *c)
{
	gfn_t gfn, end = kmmu_slot_end(slot);
	bool flush = false;

	for (gfn = kmmu_gfn_round_for_level(slot->base_gfn, level); gfn < end;
	     gfn += kmmu_pages_per_level(level)) {
		struct kmmu_rmap_head *head = slot_rmap(slot, max(gfn, slot->base_gfn), level);

		/* Only faults fill an rmap, and none maps huge in a logging slot. */
		while (atomic_long_read(&head->val)) {
			struct kmmu_shadow_page *sp;
			struct kmmu_rmap_iter iter;
			u64 *sptep;

			split = split && !shadow_split_cache_topup(c);
			kmmu_mmu_write_lock(kmmu);
			sptep = kmmu_rmap_iter_first(kmmu_rmap_peek(kmmu, head), &iter);
			if (sptep) {
				sp = sptep_to_shadow_page(sptep);
				if (!split || !shadow_split_leaf(kmmu, slot, sp, sptep - sp->spt, c)) {
					/* Writes before logging began are not the log's. */
					shadow_clear_spte_bit(sptep, kmmu->fmt.dirty);
					shadow_drop_leaf(kmmu, sp, sptep - sp->spt);
					flush = true;
				}
			}
			kmmu_mmu_write_unlock(kmmu);
			cond_resched();
		}
	}
	return flush;
}

/**
 * kmmu_shadow_logging_start() - a slot starts logging: so do its shadow leaves
 * @kmmu: the VM, slots_lock held
 * @slot: the slot, published with its log
 * @split: eager splitting is on: huge leaves are split (else zapped, and
 *	the vCPUs' faults map 4K)
 * @protect: protect the leaves (no W, or, D-bit logging, no D); not when
 *	the log starts all set, which CLEAR_DIRTY_LOG protects page by page
 *
 * Huge leaves go whatever @protect says: the log and its protection work
 * on 4K leaves, and CLEAR_DIRTY_LOG, which splits the TDP MMU's leaves of
 * a log that started all set, finds the shadow MMU's through 4K rmaps.
 *
 * Return: true if a TLB flush is owed.
 */
bool kmmu_shadow_logging_start(struct kmmu *kmmu, struct kmmu_memory_slot *slot, bool split,
			       bool protect)
{
	struct shadow_split_cache c = {};
	u64 bit = shadow_log_protect_bit(kmmu);
	bool flush = false;
	int level, idx;
	gfn_t gfn;

	if (!shadow_slot_mapped(kmmu, slot))
		return false;
	idx = srcu_read_lock(&kmmu->srcu);
	/* From the top: a 1G leaf becomes 2M leaves, which the next level splits. */
	for (level = SHADOW_RMAP_LEVELS; level > KMMU_LEVEL_4K; level--)
		flush |= shadow_split_level(kmmu, slot, level, split, &c);
	srcu_read_unlock(&kmmu->srcu, idx);
	shadow_split_cache_free(&c);
	if (!protect || kmmu_mutant(SHADOW_LOG_NO_PROTECT))
		return flush;
	kmmu_mmu_write_lock(kmmu);
	for (gfn = slot->base_gfn; gfn < kmmu_slot_end(slot); gfn++)
		flush |= shadow_rmap_bit(kmmu, slot_rmap(slot, gfn, KMMU_LEVEL_4K), bit, true);
	kmmu_mmu_write_unlock(kmmu);
	return flush;
}

/* Called when the VM goes away, after its vCPUs. */
void kmmu_shadow_destroy(struct kmmu *kmmu)
{
	kmmu_mmu_write_lock(kmmu);
	kmmu_shadow_zap_all_locked(kmmu);
	kmmu_mmu_write_unlock(kmmu);
	WARN_ON_ONCE(!list_empty(&kmmu->shadow_pages));
	os_free(kmmu->shadow_hash);
}

/* ---- roots ---- */

void kmmu_shadow_put_root(struct kmmu_vcpu *vcpu)
{
	struct kmmu *kmmu = vcpu->kmmu;
	struct kmmu_shadow_page *sp = vcpu->shadow_root;

	if (!sp)
		return;
	vcpu->shadow_root = NULL;
	kmmu_mmu_write_lock(kmmu);
	/* A valid root stays in the hash for the next vCPU that loads it. */
	if (!--sp->root_count && sp->invalid)
		shadow_page_release(kmmu, sp);
	kmmu_mmu_write_unlock(kmmu);
}

/**
 * kmmu_shadow_load_root() - the shadow root of the vCPU's nested workload
 * @vcpu: the vCPU, outside guest mode and outside srcu
 *
 * Keeps the root it has if that is still the one for L1's root and A/D
 * setting, else lets it go and takes the one for them, made if need be.
 *
 * Return: 0 if the root changed or stayed, or -ENOMEM.
 */
int kmmu_shadow_load_root(struct kmmu_vcpu *vcpu)
{
	struct kmmu *kmmu = vcpu->kmmu;
	struct kmmu_wl_state *s = &vcpu->wls;
	gfn_t gfn = s->l1_root >> KMMU_PAGE_SHIFT;
	struct kmmu_shadow_page *sp = vcpu->shadow_root;
	union kmmu_sp_role role = { .word = 0 };
	bool flush = false;
	int ret, idx;

	role.level = KMMU_MAX_LEVEL;
	role.access = KMMU_ACC_ALL;
	role.ad = s->l1_ad;
	role.as_id = s->as_id;
	if (sp && !READ_ONCE(sp->invalid) && sp->gfn == gfn && sp->role.word == role.word)
		return 0;
	kmmu_shadow_put_root(vcpu);
	ret = shadow_enable(kmmu);
	if (!ret)
		ret = shadow_topup_caches(vcpu);
	if (ret)
		return ret;
	idx = srcu_read_lock(&kmmu->srcu);
	kmmu_mmu_write_lock(kmmu);
	sp = shadow_get_page(vcpu, gfn, role, &flush);
	if (sp)
		sp->root_count++;
	if (flush)
		kmmu_flush_remote_tlbs(kmmu);
	kmmu_mmu_write_unlock(kmmu);
	srcu_read_unlock(&kmmu->srcu, idx);
	if (!sp)
		return -ENOMEM;
	vcpu->shadow_root = sp;
	return 0;
}

/* ---- the fault ---- */

/*
 * The page below the entry of @sp that maps @l2_gfn, for the walk @gw:
 * the L1 table that entry's L1 entry points to, or, below L1's leaf, a
 * direct page for the L1 gfns that part of the leaf maps.
 */
static struct kmmu_shadow_page *shadow_child(struct kmmu_vcpu *vcpu, struct kmmu_shadow_page *sp,
					     const struct kmmu_guest_walk *gw, int level, bool *flush)
{
	union kmmu_sp_role role = sp->role;
	gfn_t gfn;

	role.level = level - 1;
	if (!sp->role.direct)
		role.access &= kmmu_gw_entry_access(gw->format, gw->pte[level]);
	if (level - 1 >= gw->level) {
		gfn = gw->table_gfn[level - 1];
	} else {
		role.direct = 1;
		gfn = kmmu_gfn_round_for_level(gw->l1_gpa >> KMMU_PAGE_SHIFT, level);
	}
	return shadow_get_page(vcpu, gfn, role, flush);
}

/* What a leaf made from @gw may do: a write needs D in L1's leaf first. */
static unsigned int shadow_leaf_access(const struct kmmu_guest_walk *gw, bool write)
{
	bool ept = gw->format == KMMU_SPTE_FORMAT_EPT;
	unsigned int access = gw->pte_access;

	if (!write && (!ept || gw->ad) && !(gw->pte[gw->level] & (ept ? EPT_D : NPT_D)) &&
	    !kmmu_mutant(NESTED_READ_WALK_WRITABLE))
		access &= ~KMMU_ACC_WRITE;
	return access;
}

/**
 * kmmu_shadow_page_fault() - map an L2 address as L1's tables translate it
 * @vcpu: the nested vCPU, outside guest mode, in an srcu read section
 * @gw: a successful walk of L1's tables for the access
 * @seq: kmmu->shadow_seq, read before that walk
 *
 * Looks the host page up without locks, then, under mmu_lock held for
 * write, links the shadow pages of the walk below the vCPU's root and
 * installs the leaf at the largest level that L1's leaf, the host and the
 * slot allow, in the rmap of the L1 gfn it maps.
 *
 * Return: RET_PF_FIXED; RET_PF_RETRY when an invalidation overtook the
 * fault; RET_PF_INVALID when the L1 page is not one the shadow MMU maps
 * (no memslot, a write to a read-only one, the private slot, a VM with
 * sub-page permissions): the vCPU then reaches it through the TDP MMU
 * that maps L1; or -errno from the host, with the same meaning.
 */
int kmmu_shadow_page_fault(struct kmmu_vcpu *vcpu, const struct kmmu_guest_walk *gw,
			   unsigned long seq)
{
	struct kmmu *kmmu = vcpu->kmmu;
	const struct kmmu_spte_fmt *f = &kmmu->fmt;
	bool write = gw->access & KMMU_ACC_WRITE;
	struct kmmu_page_fault fault = {
		.addr = gw->l1_gpa,
		.gfn = gw->l1_gpa >> KMMU_PAGE_SHIFT,
		.as_id = vcpu->wls.as_id,
		.write = write,
	};
	gfn_t l2_gfn = gw->l2_gpa >> KMMU_PAGE_SHIFT;
	struct kmmu_spte_args a = {};
	struct kmmu_shadow_page *sp;
	bool flush = false, spp, wrprot_log;
	int level, goal, ret;
	unsigned int idx;
	u64 spte, new_spte;
	gfn_t l1_base;

	fault.slot = kmmu_gfn_to_memslot(kmmu_memslots(kmmu, fault.as_id), fault.gfn);
	/* Acquire: pairs with kmmu_spp_enable(), as in the TDP fault. */
	spp = smp_load_acquire(&kmmu->spp_enabled);
	if (!fault.slot || kmmu_gfn_private(kmmu, fault.gfn) ||
	    (write && (fault.slot->flags & KMMU_MEM_READONLY)) || spp ||
	    !fault.slot->shadow.rmap[0])
		return RET_PF_INVALID;
	ret = shadow_topup_caches(vcpu);
	if (ret)
		return ret;
	ret = kmmu_faultin_pfn(vcpu, &fault);
	if (ret != RET_PF_CONTINUE)
		return ret;
	goal = min(fault.goal_level, gw->level);

	ret = RET_PF_RETRY;
	kmmu_mmu_write_lock(kmmu);
	sp = vcpu->shadow_root;
	if (sp->invalid || READ_ONCE(kmmu->shadow_seq) != seq ||
	    kmmu_invalidate_retry_hva(kmmu, fault.mmu_seq, fault.req.hva))
		goto out_unlock;

	for (level = KMMU_MAX_LEVEL; ; level--) {
		struct kmmu_shadow_page *child;
		bool table;

		idx = kmmu_spte_index(l2_gfn, level);
		spte = READ_ONCE(sp->spt[idx]);
		table = is_shadow_present_spte(spte) && !is_last_spte(f, spte, level);
		if (level <= goal && !table)
			break;
		/* Smaller leaves are in already: map this one beside them. */
		if (level <= goal)
			goal = level - 1;
		if (table) {
			sp = spte_to_child(spte);
			continue;
		}
		/* A huge leaf where this fault needs a table. */
		if (is_shadow_present_spte(spte)) {
			shadow_drop_leaf(kmmu, sp, idx);
			flush = true;
		}
		child = shadow_child(vcpu, sp, gw, level, &flush);
		if (!child || WARN_ON_ONCE(kmmu_rmap_add(kmmu, &child->parent_ptes, &sp->spt[idx],
							 &vcpu->rmap_cache))) {
			ret = -ENOMEM;
			goto out_unlock;
		}
		/* Release: the child's SPTEs are set before a walker can reach them. */
		smp_store_release(&sp->spt[idx], make_table_spte(f, os_pt_to_pfn(child->spt)));
		sp = child;
		/*
		 * The child's L1 table is write-tracked from now on, but this
		 * fault read it before: the link stands (its parent's entry was
		 * read after the parent was tracked), the rest waits for a walk
		 * made after the tracking.  KVM reads the entry again here
		 * (FNAME(gpte_changed)); reading L1 memory under mmu_lock is
		 * what kmmu does not do.
		 */
		if (READ_ONCE(kmmu->shadow_seq) != seq)
			goto out_unlock;
	}

	l1_base = kmmu_gfn_round_for_level(fault.gfn, goal);
	a.pfn = fault.req.pfn & ~(kmmu_pages_per_level(goal) - 1);
	a.level = goal;
	a.access = shadow_leaf_access(gw, write);
	/* L2 maps one of L1's shadowed tables: read-only, as it is to L1. */
	if (kmmu_shadow_gfn_tracked(fault.slot, fault.gfn) && !kmmu_mutant(SHADOW_TRACK_IGNORED)) {
		if (write) {
			ret = RET_PF_WRITE_TRACKED;
			goto out_unlock;
		}
		a.access &= ~KMMU_ACC_WRITE;
	}
	a.host_writable = fault.req.writable;
	a.refcounted = fault.req.refcounted;
	/*
	 * Write-protection logging: only a write makes (and logs) the leaf
	 * writable.  D-bit logging: the write sets D, which the log harvests.
	 */
	wrprot_log = kmmu_slot_logging(fault.slot) && !shadow_log_dbit(kmmu);
	a.wrprot = wrprot_log && !write;
	new_spte = make_spte(f, &a);

	if (is_shadow_present_spte(spte) &&
	    (spte_to_pfn(spte) != a.pfn || sp->gfns[idx] != l1_base)) {
		/* L1 maps the address elsewhere now: the old leaf goes. */
		shadow_drop_leaf(kmmu, sp, idx);
		flush = true;
		spte = f->nonpresent;
	}
	if (wrprot_log && spte_may_write(f, new_spte))
		kmmu_vcpu_mark_page_dirty(vcpu, fault.slot, fault.gfn);
	if (!is_shadow_present_spte(spte)) {
		sp->gfns[idx] = l1_base;
		ret = kmmu_rmap_add(kmmu, slot_rmap(fault.slot, l1_base, goal), &sp->spt[idx],
				    &vcpu->rmap_cache);
		if (WARN_ON_ONCE(ret))
			goto out_unlock;
		kmmu_stat_inc(kmmu, KMMU_STAT_SHADOW_LEAVES);
		/* Release: what the vCPU reads through the leaf is there (the rmap too). */
		smp_store_release(&sp->spt[idx], new_spte);
	} else {
		/* The same page with other rights: a D bit set meanwhile is logged. */
		spte = xchg(&sp->spt[idx], new_spte);
		flush |= spte_may_write(f, spte) && !spte_may_write(f, new_spte);
		shadow_log_dropped_dirty(kmmu, fault.slot, l1_base, goal, spte);
	}
	kmmu_stat_inc(kmmu, KMMU_STAT_SHADOW_FAULTS);
	ret = RET_PF_FIXED;

out_unlock:
	if (flush)
		kmmu_flush_remote_tlbs(kmmu);
	/* Under mmu_lock, as direct_page_fault() does: see there. */
	os_release_pfn(&fault.req, ret == RET_PF_FIXED && fault.req.writable);
	kmmu_mmu_write_unlock(kmmu);
	/* L2 writes a table of L1's that shadow pages shadow: they go first. */
	if (ret == RET_PF_WRITE_TRACKED) {
		kmmu_shadow_unprotect_gfn(kmmu, fault.as_id, fault.gfn);
		ret = RET_PF_RETRY;
	}
	return ret;
}
