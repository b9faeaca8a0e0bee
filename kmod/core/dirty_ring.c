// SPDX-License-Identifier: GPL-2.0
/*
 * Per-vCPU dirty rings, with KVM's DIRTY_LOG_RING semantics: the pages a
 * vCPU dirties in logging slots are pushed, in order, into a ring that
 * userspace maps from the vCPU fd; userspace collects entries and marks
 * them RESET; KMMU_RESET_DIRTY_RINGS protects those pages again and hands
 * the entries back.  The ring replaces the slots' bitmaps.
 *
 * A page is pushed where it becomes dirty for the log: in write-protection
 * mode when a fault makes its SPTE writable, in D-bit mode when the vCPU's
 * walk sets the D bit of its leaf (what PML does in hardware).  For the
 * latter, huge leaves of a logging slot are write-protected rather than
 * cleaned, so the first write to one faults and maps 4 KiB.
 *
 * A vCPU pushes at most one entry per access, and checks before every
 * access whether its ring has reached the soft limit; it then exits with
 * KMMU_EXIT_DIRTY_RING_FULL and will not run again until a reset makes room.
 */
#include "dirty_ring.h"
#include "memslot.h"
#include "shadow_mmu.h"
#include "tdp_mmu.h"

/* Entries kept free below the ring's size; one access pushes at most one. */
#define KMMU_DIRTY_RING_RSVD_ENTRIES	8

/**
 * kmmu_dirty_ring_enable() - KMMU_CAP_DIRTY_LOG_RING
 * @kmmu: the VM, slots_lock held
 * @bytes: ring size in bytes
 *
 * Return: 0; -EINVAL for a size that is not a power of two of at least a
 * page, or when vCPUs exist or a ring size was already set; -E2BIG above
 * KMMU_DIRTY_RING_MAX_ENTRIES; -EBUSY while a slot logs into bitmaps.
 */
int kmmu_dirty_ring_enable(struct kmmu *kmmu, u64 bytes)
{
	u64 entries = bytes / sizeof(struct kmmu_dirty_gfn);
	int ret = 0;

	if (!bytes || (bytes & (bytes - 1)) || bytes < KMMU_PAGE_SIZE)
		return -EINVAL;
	if (entries > KMMU_DIRTY_RING_MAX_ENTRIES)
		return -E2BIG;
	if (kmmu->nr_logging_slots)
		return -EBUSY;

	mutex_lock(&kmmu->lock);
	if (kmmu->dirty_ring_size || atomic_read(&kmmu->online_vcpus))
		ret = -EINVAL;
	else
		kmmu->dirty_ring_size = entries;
	mutex_unlock(&kmmu->lock);
	return ret;
}

/* A new vCPU's ring, kmmu->lock held (so the size cannot change under it). */
int kmmu_dirty_ring_alloc(struct kmmu_vcpu *vcpu)
{
	struct kmmu_dirty_ring *ring = &vcpu->dirty_ring;
	u32 size = vcpu->kmmu->dirty_ring_size;

	if (!size)
		return 0;
	ring->gfns = os_ring_alloc(size * sizeof(struct kmmu_dirty_gfn));
	if (!ring->gfns)
		return -ENOMEM;
	ring->size = size;
	ring->soft_limit = size - KMMU_DIRTY_RING_RSVD_ENTRIES;
	return 0;
}

void kmmu_dirty_ring_free(struct kmmu_vcpu *vcpu)
{
	os_ring_free(vcpu->dirty_ring.gfns);
	vcpu->dirty_ring.gfns = NULL;
}

static u32 kmmu_dirty_ring_used(const struct kmmu_dirty_ring *ring)
{
	/* Acquire: the reset's "flags = 0" is seen before the room it makes. */
	return ring->dirty_index - smp_load_acquire(&ring->reset_index);
}

/* The vCPU's ring has reached its soft limit: RUN must exit. */
bool kmmu_dirty_ring_soft_full(struct kmmu_vcpu *vcpu)
{
	const struct kmmu_dirty_ring *ring = &vcpu->dirty_ring;

	return ring->size && kmmu_dirty_ring_used(ring) >= ring->soft_limit;
}

static void kmmu_dirty_ring_push(struct kmmu_vcpu *vcpu, const struct kmmu_memory_slot *slot,
				 gfn_t gfn)
{
	struct kmmu_dirty_ring *ring = &vcpu->dirty_ring;
	struct kmmu_dirty_gfn *e;

	/* The vCPU exits at the soft limit, well before this. */
	if (WARN_ON_ONCE(kmmu_dirty_ring_used(ring) >= ring->size))
		return;
	e = &ring->gfns[ring->dirty_index & (ring->size - 1)];
	WRITE_ONCE(e->slot, ((u32)slot->as_id << 16) | slot->id);
	WRITE_ONCE(e->offset, gfn - slot->base_gfn);
	/* Release: userspace that sees DIRTY sees slot and offset. */
	smp_store_release(&e->flags, KMMU_DIRTY_GFN_F_DIRTY);
	/* Release: the reset never reads past an entry that is not written. */
	smp_store_release(&ring->dirty_index, ring->dirty_index + 1);
	kmmu_stat_inc(vcpu->kmmu, KMMU_STAT_DIRTY_PAGES);
	if (kmmu_dirty_ring_used(ring) >= ring->soft_limit)
		set_bit(KMMU_REQ_DIRTY_RING_FULL, &vcpu->requests);
}

/**
 * kmmu_vcpu_mark_page_dirty() - the vCPU dirtied @gfn for the log
 * @vcpu: the vCPU, in its own thread
 * @slot: the slot of @gfn
 * @gfn: the page
 *
 * Into the vCPU's ring if the VM has rings, else into the slot's bitmap;
 * nothing if the slot does not log.
 */
void kmmu_vcpu_mark_page_dirty(struct kmmu_vcpu *vcpu, const struct kmmu_memory_slot *slot,
			       gfn_t gfn)
{
	if (!kmmu_slot_logging(slot))
		return;
	if (vcpu->dirty_ring.size)
		kmmu_dirty_ring_push(vcpu, slot, gfn);
	else
		kmmu_mark_page_dirty(vcpu->kmmu, slot, gfn);
}

/*
 * Protect again the pages of @mask, offsets from @offset in slot @slot_id
 * as the ring names it.  Userspace wrote the entry last: a slot that is
 * gone, does not log or is too small is skipped, like KVM does.
 */
static void kmmu_dirty_ring_reset_gfns(struct kmmu *kmmu, u32 slot_id, u64 offset,
				       unsigned long mask)
{
	u32 as_id = slot_id >> 16, id = slot_id & 0xffff;
	struct kmmu_memory_slot *slot;

	if (as_id >= KMMU_ADDRESS_SPACE_NUM || id >= KMMU_USER_MEM_SLOTS ||
	    kmmu_mutant(RING_RESET_NO_PROTECT))
		return;
	/* slots_lock held: the slots cannot change. */
	slot = rcu_dereference_protected(kmmu->memslots[as_id], 1)->by_id[id];
	if (!slot || !kmmu_slot_logging(slot) || offset >= slot->npages ||
	    __fls(mask) >= slot->npages - offset)
		return;

	/* The caller flushes whether or not an SPTE changed. */
	read_lock(&kmmu->mmu_lock);
	kmmu_tdp_mmu_clear_dirty_bitmap(kmmu, slot, slot->base_gfn + offset, &mask,
						min_t(u64, BITS_PER_LONG, slot->npages - offset),
						kmmu->dirty_log_mode == KMMU_DIRTY_LOG_MODE_DBIT);
	read_unlock(&kmmu->mmu_lock);
	kmmu_shadow_protect_gfns(kmmu, slot, slot->base_gfn + offset, &mask,
				 min_t(u64, BITS_PER_LONG, slot->npages - offset));
}

/*
 * Reset the collected entries of one ring, from its reset index on, up to
 * the first one userspace has not collected.  Consecutive pages of one
 * slot are protected in one walk, up to a word of them.
 */
static u64 kmmu_dirty_ring_reset(struct kmmu *kmmu, struct kmmu_dirty_ring *ring)
{
	u64 cur_offset = 0, offset, count = 0;
	u32 end, cur_slot = 0, slot, i;
	unsigned long mask = 0;
	struct kmmu_dirty_gfn *e;

	/* Acquire: pairs with the push; no entry past @end is read. */
	end = smp_load_acquire(&ring->dirty_index);
	for (i = ring->reset_index; i != end; i++) {
		/* Acquire: pairs with userspace's release of RESET. */
		if (!(smp_load_acquire(&ring->gfns[i & (ring->size - 1)].flags) &
		      KMMU_DIRTY_GFN_F_RESET))
			break;
	}
	end = i;
	/*
	 * Write-protection mode pushes a page before its writable SPTE is
	 * installed, in one read section: let those sections end first.
	 */
	if (end != ring->reset_index && kmmu->dirty_log_mode == KMMU_DIRTY_LOG_MODE_WRPROT)
		kmmu_mmu_lock_sync(kmmu);

	while (ring->reset_index != end) {
		e = &ring->gfns[ring->reset_index & (ring->size - 1)];
		slot = READ_ONCE(e->slot);
		offset = READ_ONCE(e->offset);
		WRITE_ONCE(e->flags, 0);
		/* Release: the vCPU sees the entry free before it may reuse it. */
		smp_store_release(&ring->reset_index, ring->reset_index + 1);
		count++;

		if (mask && slot == cur_slot && offset >= cur_offset &&
		    offset - cur_offset < BITS_PER_LONG) {
			mask |= BIT(offset - cur_offset);
			continue;
		}
		if (mask)
			kmmu_dirty_ring_reset_gfns(kmmu, cur_slot, cur_offset, mask);
		cur_slot = slot;
		cur_offset = offset;
		mask = 1;
		cond_resched();
	}
	if (mask)
		kmmu_dirty_ring_reset_gfns(kmmu, cur_slot, cur_offset, mask);
	return count;
}

/**
 * kmmu_reset_dirty_rings() - KMMU_RESET_DIRTY_RINGS
 * @kmmu: the VM
 *
 * Return: the number of entries reset, over every vCPU; -EINVAL, as KVM,
 * when the VM has no rings.
 */
long kmmu_reset_dirty_rings(struct kmmu *kmmu)
{
	struct kmmu_vcpu *vcpu;
	u64 count = 0;
	int i;

	if (!READ_ONCE(kmmu->dirty_ring_size))
		return -EINVAL;
	mutex_lock(&kmmu->slots_lock);
	mutex_lock(&kmmu->lock);
	for (i = 0; i < KMMU_MAX_VCPUS; i++) {
		vcpu = rcu_dereference_protected(kmmu->vcpus[i], 1);
		if (vcpu)
			count += kmmu_dirty_ring_reset(kmmu, &vcpu->dirty_ring);
	}
	mutex_unlock(&kmmu->lock);
	/*
	 * A write after this must fault (or set D) again, and be pushed
	 * again.  Whether or not an SPTE changed: one that aging made
	 * access-tracked lost W already, but a TLB may still allow writes.
	 */
	if (count)
		kmmu_flush_remote_tlbs(kmmu);
	mutex_unlock(&kmmu->slots_lock);
	/* At most KMMU_MAX_VCPUS full rings. */
	return count;
}

/**
 * kmmu_dirty_ring_mmap() - what userspace may map of a vCPU's ring
 * @vcpu: the vCPU
 * @pgoff: offset of the mapping in the vCPU fd, in pages
 * @len: length of the mapping in bytes
 *
 * Return: the ring, or NULL when the VM has no rings, @pgoff is not
 * KMMU_DIRTY_LOG_PAGE_OFFSET, or @len is 0 or exceeds the ring (-EINVAL).
 */
void *kmmu_dirty_ring_mmap(struct kmmu_vcpu *vcpu, unsigned long pgoff, size_t len)
{
	const struct kmmu_dirty_ring *ring = &vcpu->dirty_ring;

	if (!ring->size || pgoff != KMMU_DIRTY_LOG_PAGE_OFFSET || !len ||
	    len > ring->size * sizeof(struct kmmu_dirty_gfn))
		return NULL;
	return ring->gfns;
}
