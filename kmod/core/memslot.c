// SPDX-License-Identifier: GPL-2.0
/*
 * Memory slots: creation, deletion, moves and flag changes, published as
 * immutable sets through srcu; gfn lookup; huge-page disallow counts.
 *
 * Arguments that can be checked without looking at the VM were checked in
 * api.c.  What depends on the slots already there (overlaps, a slot that
 * does not exist, a change KVM does not allow) is checked here, under
 * slots_lock, before anything is changed.
 */
#include "memslot.h"
#include "shadow_mmu.h"
#include "spp.h"
#include "tdp_mmu.h"

static struct kmmu_memslots *memslots_alloc(void)
{
	return os_zalloc(sizeof(struct kmmu_memslots));
}

int kmmu_memslots_init(struct kmmu *kmmu)
{
	int i;

	for (i = 0; i < KMMU_ADDRESS_SPACE_NUM; i++) {
		struct kmmu_memslots *slots = memslots_alloc();

		if (!slots)
			return -ENOMEM;
		RCU_INIT_POINTER(kmmu->memslots[i], slots);
	}
	return 0;
}

static void memslot_free_lpage_info(struct kmmu_memory_slot *slot)
{
	int i;

	for (i = 0; i < KMMU_NR_HUGE_LEVELS; i++)
		os_free(slot->disallow_lpage[i]);
}

/* Called when the VM goes away: no reader is left. */
void kmmu_memslots_destroy(struct kmmu *kmmu)
{
	int as, i;

	for (as = 0; as < KMMU_ADDRESS_SPACE_NUM; as++) {
		struct kmmu_memslots *slots = rcu_dereference_protected(kmmu->memslots[as], 1);

		if (!slots)
			continue;
		for (i = 0; i < slots->nr; i++) {
			memslot_free_lpage_info(slots->by_gfn[i]);
			kmmu_dirty_bitmap_free(slots->by_gfn[i]);
			kmmu_spp_slot_free(slots->by_gfn[i]);
			kmmu_shadow_slot_free(slots->by_gfn[i]);
			os_free(slots->by_gfn[i]);
		}
		os_free(slots);
	}
}

/**
 * kmmu_gfn_to_memslot() - the slot that maps @gfn
 * @slots: a set of slots, read under srcu
 * @gfn: guest frame
 *
 * Return: the slot, or NULL when no slot maps @gfn.
 */
struct kmmu_memory_slot *kmmu_gfn_to_memslot(struct kmmu_memslots *slots, gfn_t gfn)
{
	int lo = 0, hi = slots->nr - 1;
	struct kmmu_memory_slot *slot;

	/* The last slot starting at or below gfn is the only candidate. */
	while (lo <= hi) {
		int mid = lo + (hi - lo) / 2;

		if (slots->by_gfn[mid]->base_gfn <= gfn)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	if (hi < 0)
		return NULL;
	slot = slots->by_gfn[hi];
	return gfn < kmmu_slot_end(slot) ? slot : NULL;
}

static unsigned int lpage_shift(int level)
{
	return (level - 1) * KMMU_LEVEL_BITS;
}

/* The disallow count of the @level huge page that holds @gfn. */
static int *lpage_disallow_count(const struct kmmu_memory_slot *slot, gfn_t gfn, int level)
{
	unsigned int shift = lpage_shift(level);
	u64 idx = (gfn >> shift) - (slot->base_gfn >> shift);

	return &slot->disallow_lpage[level - KMMU_LEVEL_2M][idx];
}

/**
 * kmmu_lpage_disallowed() - may @gfn be mapped by one SPTE at @level?
 * @slot: the slot that maps @gfn
 * @gfn: guest frame
 * @level: KMMU_LEVEL_2M or KMMU_LEVEL_1G
 *
 * Return: true if some reason forbids it.
 */
bool kmmu_lpage_disallowed(const struct kmmu_memory_slot *slot, gfn_t gfn, int level)
{
	return READ_ONCE(*lpage_disallow_count(slot, gfn, level)) != 0;
}

/**
 * kmmu_lpage_disallow_adjust() - add (@delta 1) or drop (-1) a reason to map @gfn 4K only
 * @slot: the slot that maps @gfn; slots_lock and mmu_lock held for write
 * @gfn: guest frame
 * @delta: 1 or -1
 *
 * As KVM's kvm_mmu_gfn_disallow_lpage(): every huge page holding @gfn, at
 * each huge level, counts the reason.
 */
void kmmu_lpage_disallow_adjust(struct kmmu_memory_slot *slot, gfn_t gfn, int delta)
{
	int level;

	for (level = KMMU_LEVEL_2M; level <= KMMU_LEVEL_1G; level++) {
		int *d = lpage_disallow_count(slot, gfn, level);

		WRITE_ONCE(*d, *d + delta);
	}
}

static int memslot_alloc_lpage_info(struct kmmu_memory_slot *slot)
{
	gfn_t last = slot->base_gfn + slot->npages - 1;
	gfn_t ugfn = slot->userspace_addr >> KMMU_PAGE_SHIFT;
	int level;

	for (level = KMMU_LEVEL_2M; level <= KMMU_LEVEL_1G; level++) {
		unsigned int shift = lpage_shift(level);
		u64 mask = kmmu_pages_per_level(level) - 1;
		u64 n = (last >> shift) - (slot->base_gfn >> shift) + 1;
		int *d = os_zalloc(n * sizeof(*d));
		u64 i;

		if (!d)
			goto fail;
		slot->disallow_lpage[level - KMMU_LEVEL_2M] = d;
		/* A huge page that the slot covers only in part. */
		if (slot->base_gfn & mask)
			d[0]++;
		if ((slot->base_gfn + slot->npages) & mask)
			d[n - 1]++;
		/* Host pages cannot line up with guest huge pages at all. */
		if ((slot->base_gfn ^ ugfn) & mask)
			for (i = 0; i < n; i++)
				d[i]++;
	}
	return 0;
fail:
	memslot_free_lpage_info(slot);
	return -ENOMEM;
}

static bool memslot_overlaps(struct kmmu_memslots *slots, gfn_t base, u64 npages, int skip_id)
{
	int i;

	for (i = 0; i < slots->nr; i++) {
		struct kmmu_memory_slot *s = slots->by_gfn[i];

		if (s->id == skip_id)
			continue;
		if (base < kmmu_slot_end(s) && s->base_gfn < base + npages)
			return true;
	}
	return false;
}

/*
 * Build a copy of @old with @remove taken out and @add put in (either may be
 * NULL), sorted by base gfn, at the next generation.
 */
static struct kmmu_memslots *memslots_copy(struct kmmu *kmmu, struct kmmu_memslots *old,
					   struct kmmu_memory_slot *remove,
					   struct kmmu_memory_slot *add)
{
	struct kmmu_memslots *slots = memslots_alloc();
	int i, n = 0;

	if (!slots)
		return NULL;
	for (i = 0; i < old->nr; i++) {
		struct kmmu_memory_slot *s = old->by_gfn[i];

		if (s == remove)
			continue;
		if (add && add->base_gfn < s->base_gfn) {
			slots->by_gfn[n++] = add;
			add = NULL;
		}
		slots->by_gfn[n++] = s;
	}
	if (add)
		slots->by_gfn[n++] = add;
	slots->nr = n;
	for (i = 0; i < n; i++)
		slots->by_id[slots->by_gfn[i]->id] = slots->by_gfn[i];
	return slots;
}

/*
 * Publish @slots and wait until no fault can still be using the old set;
 * then give it the next generation.  Only an installed set takes a
 * generation, so a change that fails before this leaves the generation as
 * it was.
 *
 * As KVM does: until the wait is over, the new set carries the old
 * generation marked in progress.  No MMIO SPTE is trusted meanwhile
 * (handle_mmio_page_fault()), and one made meanwhile has the old
 * generation, stale as soon as the update ends.  When the 19 bits MMIO
 * SPTEs keep wrap to zero, every SPTE is zapped before the new generation
 * is out, so that none made 2^19 updates ago looks current.
 */
static void memslots_install(struct kmmu *kmmu, int as_id, struct kmmu_memslots *slots)
{
	struct kmmu_memslots *old = rcu_dereference_protected(kmmu->memslots[as_id], 1);
	u64 gen = kmmu->slots_generation;

	WARN_ON_ONCE(gen & KMMU_MEMSLOT_GEN_UPDATE_IN_PROGRESS);
	slots->generation = gen | KMMU_MEMSLOT_GEN_UPDATE_IN_PROGRESS;
	rcu_assign_pointer(kmmu->memslots[as_id], slots);
	os_race_point(kmmu, KMMU_RACE_SLOTS_PUBLISHED, 0);
	synchronize_srcu(&kmmu->srcu);
	os_free(old);

	gen++;
	if (!(gen & MMIO_GEN_MASK)) {
		kmmu_tdp_mmu_invalidate_all_roots(kmmu);
		kmmu_tdp_mmu_zap_invalidated_roots(kmmu);
	}
	WRITE_ONCE(kmmu->slots_generation, gen);
	/* Faults read it under srcu, with the set. */
	WRITE_ONCE(slots->generation, gen);
}

/* A set replaced without waiting, and what went with it, freed after a grace period. */
struct memslots_retired {
	struct rcu_head rcu;
	struct kmmu_memslots *slots;
	struct kmmu_memory_slot *slot;	/* the slot's old copy, with the log it stopped */
};

static void memslots_retired_free(struct rcu_head *head)
{
	struct memslots_retired *r = container_of(head, struct memslots_retired, rcu);

	if (!kmmu_mutant(STOPPED_LOG_FREED_AT_ONCE))
		kmmu_dirty_bitmap_free(r->slot);
	os_free(r->slot);
	os_free(r->slots);
	os_free(r);
}

/*
 * Publish @slots without waiting for the faults that read the old set: @r
 * frees it after a grace period.  Only for a change no such fault can get
 * wrong (see memslot_change_flags()), and not where the generation's MMIO
 * bits wrap, which needs them all gone first.  A fault on the old set
 * makes MMIO SPTEs of its generation, stale as soon as this is out.  A
 * later change that waits for its readers waits for these faults too.
 */
static void memslots_install_nowait(struct kmmu *kmmu, int as_id, struct kmmu_memslots *slots,
				    struct memslots_retired *r)
{
	u64 gen = kmmu->slots_generation + 1;

	r->slots = rcu_dereference_protected(kmmu->memslots[as_id], 1);
	slots->generation = gen;
	rcu_assign_pointer(kmmu->memslots[as_id], slots);
	os_race_point(kmmu, KMMU_RACE_SLOTS_PUBLISHED, 0);
	WRITE_ONCE(kmmu->slots_generation, gen);
	call_srcu(&kmmu->srcu, &r->rcu, memslots_retired_free);
}

static struct kmmu_memory_slot *memslot_dup(const struct kmmu_memory_slot *old)
{
	struct kmmu_memory_slot *slot = os_zalloc(sizeof(*slot));

	if (slot)
		*slot = *old;
	return slot;
}

/*
 * Delete or move @old: first make it invalid so no fault maps it again,
 * then zap what it mapped, then publish the final set.  @moved, when not
 * NULL, is the slot at its new place, with disallow counts of its own.
 * Both new sets are built before the first is published, so nothing can
 * fail once the old slot starts going away.
 */
static int memslot_remove(struct kmmu *kmmu, int as_id, struct kmmu_memory_slot *old,
			  struct kmmu_memory_slot *moved)
{
	struct kmmu_memslots *cur = rcu_dereference_protected(kmmu->memslots[as_id], 1);
	struct kmmu_memslots *inval, *final;
	struct kmmu_memory_slot *invalid_slot;
	bool flush;

	invalid_slot = memslot_dup(old);
	if (!invalid_slot)
		return -ENOMEM;
	invalid_slot->flags |= KMMU_MEMSLOT_INVALID;
	inval = memslots_copy(kmmu, cur, old, invalid_slot);
	if (!inval)
		goto free_invalid;
	final = memslots_copy(kmmu, inval, invalid_slot, moved);
	if (!final)
		goto free_inval;

	memslots_install(kmmu, as_id, inval);

	kmmu_mmu_write_lock(kmmu);
	flush = kmmu_tdp_mmu_zap_leafs(kmmu, as_id, old->base_gfn, kmmu_slot_end(old), true, false);
	/*
	 * The slot may hold L1's tables as well as pages that shadow leaves
	 * map: until write-tracking finds the shadow pages of one table, they
	 * all go, as KVM's zap of every shadow page on a slot's deletion.
	 */
	flush |= kmmu_shadow_zap_all_locked(kmmu);
	if (flush)
		kmmu_flush_remote_tlbs(kmmu);
	kmmu_mmu_write_unlock(kmmu);

	memslots_install(kmmu, as_id, final);
	os_free(invalid_slot);
	memslot_free_lpage_info(old);
	/* Sub-page permissions belong to the frames: a moved slot starts afresh. */
	kmmu_spp_slot_free(old);
	kmmu_shadow_slot_free(old);
	/* The bitmap goes with the slot, unless the moved slot still logs into it. */
	if (!moved || moved->dirty_bitmap != old->dirty_bitmap)
		kmmu_dirty_bitmap_free(old);
	kmmu->nr_logging_slots += (moved && kmmu_slot_logging(moved)) - kmmu_slot_logging(old);
	os_free(old);
	return 0;

free_inval:
	os_free(inval);
free_invalid:
	os_free(invalid_slot);
	return -ENOMEM;
}

static int memslot_create(struct kmmu *kmmu, int as_id, int id,
			  const struct kmmu_userspace_memory_region *mem)
{
	struct kmmu_memslots *cur = rcu_dereference_protected(kmmu->memslots[as_id], 1);
	struct kmmu_memslots *next;
	struct kmmu_memory_slot *slot;
	gfn_t base = mem->guest_phys_addr >> KMMU_PAGE_SHIFT;
	u64 npages = mem->memory_size >> KMMU_PAGE_SHIFT;

	if (memslot_overlaps(cur, base, npages, -1))
		return -EEXIST;

	slot = os_zalloc(sizeof(*slot));
	if (!slot)
		return -ENOMEM;
	slot->base_gfn = base;
	slot->npages = npages;
	slot->userspace_addr = mem->userspace_addr;
	slot->flags = mem->flags;
	slot->id = id;
	slot->as_id = as_id;
	if (memslot_alloc_lpage_info(slot))
		goto free_slot;
	if ((slot->flags & KMMU_MEM_LOG_DIRTY_PAGES) && kmmu_dirty_bitmap_alloc(kmmu, slot))
		goto free_lpage;
	if (kmmu_spp_slot_alloc(kmmu, slot))
		goto free_bitmap;
	if (kmmu_shadow_slot_alloc(kmmu, slot))
		goto free_spp;
	next = memslots_copy(kmmu, cur, NULL, slot);
	if (!next)
		goto free_rmap;
	memslots_install(kmmu, as_id, next);
	if (kmmu_slot_logging(slot))
		kmmu->nr_logging_slots++;
	/* A shadow page whose L1 table had no memory until now was not write-tracked. */
	kmmu_shadow_zap_all(kmmu);
	return 0;

free_rmap:
	kmmu_shadow_slot_free(slot);
free_spp:
	kmmu_spp_slot_free(slot);
free_bitmap:
	kmmu_dirty_bitmap_free(slot);
free_lpage:
	memslot_free_lpage_info(slot);
free_slot:
	os_free(slot);
	return -ENOMEM;
}

/*
 * Move @old to a new base gfn: a new slot with new disallow counts, and,
 * as KVM has it, the flags of the request.  A log that goes on keeps its
 * bitmap; one that starts with the move gets a new one.  Nothing is mapped
 * at the new place yet, so nothing needs protecting.
 */
static int memslot_move(struct kmmu *kmmu, int as_id, struct kmmu_memory_slot *old,
			gfn_t new_base, u32 flags)
{
	struct kmmu_memslots *cur = rcu_dereference_protected(kmmu->memslots[as_id], 1);
	struct kmmu_memory_slot *moved;
	int ret;

	if (memslot_overlaps(cur, new_base, old->npages, old->id))
		return -EEXIST;

	moved = memslot_dup(old);
	if (!moved)
		return -ENOMEM;
	moved->base_gfn = new_base;
	moved->flags = flags;
	memset(moved->disallow_lpage, 0, sizeof(moved->disallow_lpage));
	memset(&moved->shadow, 0, sizeof(moved->shadow));
	ret = memslot_alloc_lpage_info(moved);
	if (ret)
		goto free_moved;
	/* All-ones at the new place, as the disallow counts are new. */
	ret = kmmu_spp_slot_alloc(kmmu, moved);
	if (ret)
		goto free_lpage;
	ret = kmmu_shadow_slot_alloc(kmmu, moved);
	if (ret)
		goto free_spp;
	if (!kmmu_slot_logging(moved)) {
		moved->dirty_bitmap = NULL;
	} else if (!kmmu_slot_logging(old)) {
		ret = kmmu_dirty_bitmap_alloc(kmmu, moved);
		if (ret)
			goto free_rmap;
	}
	ret = memslot_remove(kmmu, as_id, old, moved);
	if (!ret)
		return 0;

	if (moved->dirty_bitmap != old->dirty_bitmap)
		kmmu_dirty_bitmap_free(moved);
free_rmap:
	kmmu_shadow_slot_free(moved);
free_spp:
	kmmu_spp_slot_free(moved);
free_lpage:
	memslot_free_lpage_info(moved);
free_moved:
	os_free(moved);
	return ret;
}

static int memslot_change_flags(struct kmmu *kmmu, int as_id, struct kmmu_memory_slot *old,
				u32 flags)
{
	struct kmmu_memslots *cur = rcu_dereference_protected(kmmu->memslots[as_id], 1);
	bool log_on = (flags & ~old->flags) & KMMU_MEM_LOG_DIRTY_PAGES;
	bool log_off = (old->flags & ~flags) & KMMU_MEM_LOG_DIRTY_PAGES;
	struct kmmu_memory_slot *slot = memslot_dup(old);
	struct memslots_retired *r = NULL;
	struct kmmu_memslots *next;

	if (!slot)
		return -ENOMEM;
	/*
	 * KVM waits for the faults that read the old slot before it returns.
	 * Logging that stops need not: such a fault logs a page more, into
	 * the old log, freed after it, or maps 4K what is now mapped huge.
	 * Logging that starts waits: such a fault could map a page writable,
	 * unlogged, after the pass (or, all set, the first CLEAR) that
	 * protects it.
	 */
	if (log_off && ((kmmu->slots_generation + 1) & MMIO_GEN_MASK)) {
		r = os_zalloc(sizeof(*r));
		if (!r)
			goto free_slot;
	}
	slot->flags = flags;
	if (log_off)
		slot->dirty_bitmap = NULL;
	if (log_on && kmmu_dirty_bitmap_alloc(kmmu, slot))
		goto free_retired;
	next = memslots_copy(kmmu, cur, old, slot);
	if (!next)
		goto free_bitmap;
	kmmu->nr_logging_slots += log_on - log_off;
	/* The disallow counts (and a bitmap kept) now belong to the new copy. */
	if (r) {
		r->slot = old;
		if (kmmu_mutant(STOPPED_LOG_FREED_AT_ONCE))
			os_free(old->dirty_bitmap);
		memslots_install_nowait(kmmu, as_id, next, r);
	} else {
		memslots_install(kmmu, as_id, next);
		if (log_off)
			kmmu_dirty_bitmap_free(old);
		os_free(old);
	}
	if (log_on || log_off)
		kmmu_slot_logging_changed(kmmu, slot, log_on);
	return 0;

free_bitmap:
	if (log_on)
		kmmu_dirty_bitmap_free(slot);
free_retired:
	os_free(r);
free_slot:
	os_free(slot);
	return -ENOMEM;
}

/**
 * kmmu_set_memory_region() - create, delete, move or change a slot
 * @kmmu: the VM
 * @mem: the request, already checked for alignment, flags and ranges
 *
 * Like KVM: a size of 0 deletes; an existing slot may move (new gpa, and
 * new flags with it) or change flags, but not change size, userspace
 * address or READONLY.
 *
 * Return:
 * * 0       - done (or nothing to do)
 * * -EINVAL - deleting a slot that does not exist, or a change KVM forbids
 * * -EEXIST - the new range overlaps another slot
 * * -ENOMEM - out of memory; the slots are as they were
 */
int kmmu_set_memory_region(struct kmmu *kmmu, const struct kmmu_userspace_memory_region *mem)
{
	int ret;

	mutex_lock(&kmmu->slots_lock);
	ret = __kmmu_set_memory_region(kmmu, mem);
	mutex_unlock(&kmmu->slots_lock);
	return ret;
}

/* kmmu_set_memory_region() with slots_lock held; also for kmmu's private slot. */
int __kmmu_set_memory_region(struct kmmu *kmmu, const struct kmmu_userspace_memory_region *mem)
{
	int as_id = mem->slot >> 16, id = mem->slot & 0xffff;
	gfn_t base = mem->guest_phys_addr >> KMMU_PAGE_SHIFT;
	u64 npages = mem->memory_size >> KMMU_PAGE_SHIFT;
	struct kmmu_memory_slot *old;
	int ret;

	old = rcu_dereference_protected(kmmu->memslots[as_id], 1)->by_id[id];

	if (!npages)
		ret = old ? memslot_remove(kmmu, as_id, old, NULL) : -EINVAL;
	else if (!old)
		ret = memslot_create(kmmu, as_id, id, mem);
	else if (npages != old->npages || mem->userspace_addr != old->userspace_addr ||
		 ((mem->flags ^ old->flags) & KMMU_MEM_READONLY))
		ret = -EINVAL;
	else if (base != old->base_gfn)
		ret = memslot_move(kmmu, as_id, old, base, mem->flags);
	else if (mem->flags != old->flags)
		ret = memslot_change_flags(kmmu, as_id, old, mem->flags);
	else
		ret = 0;
	return ret;
}
