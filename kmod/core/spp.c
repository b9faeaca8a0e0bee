// SPDX-License-Identifier: GPL-2.0
/*
 * Sub-page write permissions (KMMU_CAP_SPP), EPT VMs only.
 *
 * Each memslot has a map, one u32 per page (bit i: sub-page i writable),
 * which is the only truth; everything else is derived from it and can be
 * rebuilt:
 *  - a page whose map is not all-ones is restricted: it counts once in
 *    its slot's 2M and 1G disallow counts, so it is only ever mapped by a
 *    4K leaf, and that leaf has W clear and SPP set (make_spte());
 *  - the SPP table (SPPT) holds each page's map as the 64-bit vector the
 *    CPU reads.  It is built lazily, 2 MiB of vectors at a time, when the
 *    vCPU takes an SPP miss, and changed in place by SET_ACCESS; it only
 *    grows, and is freed with the VM.
 * SPP.md has the reasons.
 */
#include "spp.h"
#include "fault.h"
#include "tdp_mmu.h"

/* Bit i of @map to bit 2i of the vector: spread with zeros between. */
u64 spp_map_to_vector(u32 map)
{
	u64 x = map;

	x = (x | (x << 16)) & 0x0000ffff0000ffffULL;
	x = (x | (x << 8)) & 0x00ff00ff00ff00ffULL;
	x = (x | (x << 4)) & 0x0f0f0f0f0f0f0f0fULL;
	x = (x | (x << 2)) & 0x3333333333333333ULL;
	x = (x | (x << 1)) & 0x5555555555555555ULL;
	return x;
}

/* Bit 2i of @vec to bit i: the inverse of spp_map_to_vector(). */
u32 spp_vector_to_map(u64 vec)
{
	u64 x = vec & SPPT_VECTOR_FULL;

	x = (x | (x >> 1)) & 0x3333333333333333ULL;
	x = (x | (x >> 2)) & 0x0f0f0f0f0f0f0f0fULL;
	x = (x | (x >> 4)) & 0x00ff00ff00ff00ffULL;
	x = (x | (x >> 8)) & 0x0000ffff0000ffffULL;
	x = (x | (x >> 16)) & 0x00000000ffffffffULL;
	return x;
}

static u32 *spp_map_alloc(u64 npages)
{
	u32 *map = os_zalloc(npages * sizeof(*map));
	u64 i;

	if (map)
		for (i = 0; i < npages; i++)
			map[i] = KMMU_SUBPAGE_FULL_ACCESS;
	return map;
}

/**
 * kmmu_spp_slot_alloc() - give a new slot its map, if the VM has SPP
 * @kmmu: the VM, slots_lock held
 * @slot: the slot, not yet published
 *
 * Return: 0, or -ENOMEM.
 */
int kmmu_spp_slot_alloc(struct kmmu *kmmu, struct kmmu_memory_slot *slot)
{
	slot->spp_access = NULL;
	if (!kmmu->spp_enabled)
		return 0;
	slot->spp_access = spp_map_alloc(slot->npages);
	return slot->spp_access ? 0 : -ENOMEM;
}

void kmmu_spp_slot_free(struct kmmu_memory_slot *slot)
{
	u32 *map = slot->spp_access;

	WRITE_ONCE(slot->spp_access, NULL);
	os_free(map);
}

/**
 * kmmu_spp_enable() - KMMU_CAP_SPP
 * @kmmu: the VM, EPT (kmmu_enable_cap() refused NPT first), slots_lock held
 * @arg: args[0] of the enable, which must be 1
 *
 * Every slot gets an all-ones map, and each address space an empty SPPT
 * root.  Errors are listed in the uapi header; on any, nothing changed.
 *
 * Return: 0 or -errno.
 */
int kmmu_spp_enable(struct kmmu *kmmu, u64 arg)
{
	struct kmmu_memslots *slots;
	struct kmmu_memory_slot *slot;
	int as, i;

	if (arg != 1)
		return -EINVAL;
	if (kmmu->spp_enabled)
		return 0;

	/*
	 * Nothing reads a map before spp_enabled is set, so the maps go
	 * straight into the slots; a failure takes them out again.
	 */
	for (as = 0; as < KMMU_ADDRESS_SPACE_NUM; as++) {
		slots = rcu_dereference_protected(kmmu->memslots[as], 1);
		kmmu->sppt_root[as] = os_pt_alloc();
		if (!kmmu->sppt_root[as])
			goto nomem;
		for (i = 0; i < slots->nr; i++) {
			u32 *map;

			slot = slots->by_gfn[i];
			map = spp_map_alloc(slot->npages);
			if (!map)
				goto nomem;
			WRITE_ONCE(slot->spp_access, map);
		}
	}
	/* Release: the maps and roots are seen by whoever sees it set. */
	smp_store_release(&kmmu->spp_enabled, true);
	return 0;

nomem:
	for (as = 0; as < KMMU_ADDRESS_SPACE_NUM; as++) {
		slots = rcu_dereference_protected(kmmu->memslots[as], 1);
		for (i = 0; i < slots->nr; i++)
			kmmu_spp_slot_free(slots->by_gfn[i]);
		if (kmmu->sppt_root[as])
			os_pt_free(kmmu->sppt_root[as]);
		kmmu->sppt_root[as] = NULL;
	}
	return -ENOMEM;
}

/* The slot of @gfn, trying @slot (the last one found) first. */
static struct kmmu_memory_slot *spp_slot(struct kmmu_memslots *slots,
					 struct kmmu_memory_slot *slot, gfn_t gfn)
{
	if (slot && gfn >= slot->base_gfn && gfn < kmmu_slot_end(slot))
		return slot;
	return kmmu_gfn_to_memslot(slots, gfn);
}

/* Every page of [gfn, gfn + npages) is in a slot of @slots. */
static bool spp_range_in_slots(struct kmmu_memslots *slots, gfn_t gfn, u64 npages)
{
	gfn_t end = gfn + npages;

	while (gfn < end) {
		struct kmmu_memory_slot *slot = kmmu_gfn_to_memslot(slots, gfn);

		if (!slot || !slot->spp_access)
			return false;
		gfn = kmmu_slot_end(slot);
	}
	return true;
}

/*
 * Take slots_lock for a GET or SET of @req, after checking that every page
 * is in a slot; the slots then stay as checked until the caller unlocks.
 * Return the address space's slots, or NULL (-ENOENT) with nothing held.
 */
static struct kmmu_memslots *spp_lock_request(struct kmmu *kmmu,
					      const struct kmmu_subpage_access *req)
{
	struct kmmu_memslots *slots;

	mutex_lock(&kmmu->slots_lock);
	slots = rcu_dereference_protected(kmmu->memslots[req->as_id], 1);
	if (spp_range_in_slots(slots, req->gfn_base, req->npages))
		return slots;
	mutex_unlock(&kmmu->slots_lock);
	return NULL;
}

/**
 * kmmu_spp_get_access() - KMMU_SUBPAGES_GET_ACCESS
 * @kmmu: the VM
 * @req: the request; api.c checked its fields, the VM's format and that
 *	 SPP is on
 * @map: out, @req->npages entries
 *
 * Return: 0, or -ENOENT when a page is in no memslot.
 */
int kmmu_spp_get_access(struct kmmu *kmmu, const struct kmmu_subpage_access *req, u32 *map)
{
	struct kmmu_memory_slot *slot = NULL;
	struct kmmu_memslots *slots;
	u32 i;

	slots = spp_lock_request(kmmu, req);
	if (!slots)
		return -ENOENT;
	for (i = 0; i < req->npages; i++) {
		gfn_t gfn = req->gfn_base + i;

		slot = spp_slot(slots, slot, gfn);
		map[i] = READ_ONCE(slot->spp_access[gfn - slot->base_gfn]);
	}
	mutex_unlock(&kmmu->slots_lock);
	return 0;
}

/* The SPPT vector of @gfn, if its leaf table exists (mmu_lock held for write). */
static u64 *sppt_vector_ptr(struct kmmu *kmmu, int as_id, gfn_t gfn)
{
	u64 *pt = kmmu->sppt_root[as_id], e;
	int level;

	for (level = SPPT_LEVELS; level > KMMU_LEVEL_4K; level--) {
		e = pt[kmmu_spte_index(gfn, level)];
		if (!(e & SPPT_VALID))
			return NULL;
		pt = sppt_child(e);
	}
	return pt + kmmu_spte_index(gfn, KMMU_LEVEL_4K);
}

/**
 * kmmu_spp_set_access() - KMMU_SUBPAGES_SET_ACCESS
 * @kmmu: the VM
 * @req: the request; api.c checked its fields, the VM's format and that
 *	 SPP is on
 * @map: @req->npages new maps
 *
 * Everything that can fail is checked before the first map changes.
 * Then, under mmu_lock held for write: the maps, the disallow counts and
 * the SPPT vectors change together; the leaves of pages that become
 * restricted or stop being so are zapped (the next fault maps them the
 * new way); faults that decided their level before are sent around again
 * (the invalidation sequence); and the TLBs are flushed when a leaf went
 * or a sub-page lost write access, since TLBs keep the vectors.
 *
 * Return: 0, or -ENOENT when a page is in no memslot (nothing changed).
 */
int kmmu_spp_set_access(struct kmmu *kmmu, const struct kmmu_subpage_access *req,
			const u32 *map)
{
	struct kmmu_memory_slot *slot = NULL;
	gfn_t zap_start = ~0ULL, zap_end = 0;
	struct kmmu_memslots *slots;
	bool flush = false;
	u32 i;

	slots = spp_lock_request(kmmu, req);
	if (!slots)
		return -ENOENT;

	kmmu_mmu_write_lock(kmmu);
	WRITE_ONCE(kmmu->mmu_invalidate_seq, kmmu->mmu_invalidate_seq + 1);
	for (i = 0; i < req->npages; i++) {
		gfn_t gfn = req->gfn_base + i;
		u32 *cur, old;
		u64 *vec;

		slot = spp_slot(slots, slot, gfn);
		cur = &slot->spp_access[gfn - slot->base_gfn];
		old = *cur;
		if (old == map[i])
			continue;
		if ((old == KMMU_SUBPAGE_FULL_ACCESS) != (map[i] == KMMU_SUBPAGE_FULL_ACCESS)) {
			/* A restricted page is mapped 4K only. */
			kmmu_lpage_disallow_adjust(slot, gfn,
						   old == KMMU_SUBPAGE_FULL_ACCESS ? 1 : -1);
			zap_start = min(zap_start, gfn);
			zap_end = max(zap_end, gfn + 1);
		}
		if (old & ~map[i])
			flush = true;
		WRITE_ONCE(*cur, map[i]);
		vec = sppt_vector_ptr(kmmu, req->as_id, gfn);
		if (vec)
			WRITE_ONCE(*vec, spp_map_to_vector(map[i]));
	}
	if (zap_start < zap_end)
		flush = kmmu_tdp_mmu_zap_leafs(kmmu, req->as_id, zap_start, zap_end, false,
					       flush);
	if (flush && !kmmu_mutant(SPP_NO_FLUSH))
		kmmu_flush_remote_tlbs(kmmu);
	kmmu_mmu_write_unlock(kmmu);
	mutex_unlock(&kmmu->slots_lock);
	return 0;
}

/*
 * Would SET_ACCESS now let the write at @gpa through?  Asked before an
 * SPP exit, so that a write refused by permissions that were changed
 * since the walk is tried again instead of reported.
 */
bool kmmu_spp_write_allowed(struct kmmu_vcpu *vcpu, int as_id, gpa_t gpa)
{
	gfn_t gfn = gpa >> KMMU_PAGE_SHIFT;
	struct kmmu_memory_slot *slot;
	u32 *map;

	slot = kmmu_gfn_to_memslot(kmmu_memslots(vcpu->kmmu, as_id), gfn);
	if (!slot)
		return true;
	map = READ_ONCE(slot->spp_access);
	return !map || (READ_ONCE(map[gfn - slot->base_gfn]) & BIT(spp_subpage_of(gpa)));
}

/* The vector of @gfn, from its slot's map; pages in no slot are never restricted. */
static u64 spp_vector_of(struct kmmu_memslots *slots, struct kmmu_memory_slot **slot,
			 gfn_t gfn)
{
	*slot = spp_slot(slots, *slot, gfn);
	if (!*slot || !(*slot)->spp_access)
		return SPPT_VECTOR_FULL;
	return spp_map_to_vector((*slot)->spp_access[gfn - (*slot)->base_gfn]);
}

/**
 * kmmu_spp_handle_miss() - build the SPPT down to @gfn's vector
 * @vcpu: the vCPU that took the miss, in an srcu read section
 * @as_id: its address space
 * @gfn: the page written
 *
 * The missing tables are allocated first, then linked under mmu_lock held
 * for write, which SET_ACCESS holds while it changes maps and vectors: a
 * new leaf table is filled from the maps of the 2 MiB it covers and
 * published with release, as the CPU reads the SPPT with no lock.
 *
 * Return: RET_PF_FIXED (the write is tried again), or -ENOMEM.
 */
int kmmu_spp_handle_miss(struct kmmu_vcpu *vcpu, int as_id, gfn_t gfn)
{
	struct kmmu *kmmu = vcpu->kmmu;
	struct kmmu_memslots *slots = kmmu_memslots(kmmu, as_id);
	struct kmmu_memory_slot *slot = NULL;
	u64 *new_pt[SPPT_LEVELS - 1] = {}, *pt, e;
	int level, n = 0, i, ret = -ENOMEM;

	kmmu_vcpu_stat_inc(vcpu, KMMU_VCPU_STAT_SPP_MISSES);
	for (i = 0; i < SPPT_LEVELS - 1; i++) {
		new_pt[i] = os_pt_alloc();
		if (!new_pt[i])
			goto out;
	}

	kmmu_mmu_write_lock(kmmu);
	pt = kmmu->sppt_root[as_id];
	for (level = SPPT_LEVELS; level > KMMU_LEVEL_4K; level--) {
		u64 *ep = pt + kmmu_spte_index(gfn, level);

		e = *ep;
		if (!(e & SPPT_VALID)) {
			u64 *child = new_pt[n++];

			if (level == KMMU_LEVEL_2M) {
				gfn_t base = kmmu_gfn_round_for_level(gfn, KMMU_LEVEL_2M);

				for (i = 0; i < KMMU_PT_ENTRIES; i++)
					child[i] = spp_vector_of(slots, &slot, base + i);
			}
			e = (os_pt_to_pfn(child) << KMMU_PAGE_SHIFT) | SPPT_VALID;
			/* Pairs with sppt_walk()'s acquire: the vectors before the link. */
			smp_store_release(ep, e);
		}
		pt = sppt_child(e);
	}
	kmmu_mmu_write_unlock(kmmu);
	ret = RET_PF_FIXED;
out:
	for (i = n; i < SPPT_LEVELS - 1; i++)
		if (new_pt[i])
			os_pt_free(new_pt[i]);
	return ret;
}

static void sppt_free(u64 *pt, int level)
{
	int i;

	if (level > KMMU_LEVEL_2M)
		for (i = 0; i < KMMU_PT_ENTRIES; i++)
			if (pt[i] & SPPT_VALID)
				sppt_free(sppt_child(pt[i]), level - 1);
	if (level == KMMU_LEVEL_2M)
		for (i = 0; i < KMMU_PT_ENTRIES; i++)
			if (pt[i] & SPPT_VALID)
				os_pt_free(sppt_child(pt[i]));
	os_pt_free(pt);
}

/* Called when the VM goes away, after every vCPU. */
void kmmu_spp_destroy(struct kmmu *kmmu)
{
	int as;

	for (as = 0; as < KMMU_ADDRESS_SPACE_NUM; as++)
		if (kmmu->sppt_root[as])
			sppt_free(kmmu->sppt_root[as], SPPT_LEVELS);
}
