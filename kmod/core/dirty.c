// SPDX-License-Identifier: GPL-2.0
/*
 * Dirty logging, with KVM's semantics: a bitmap per logging slot, filled
 * by the fault path (write-protection mode) or from the SPTEs' D bits
 * (D-bit mode); GET_DIRTY_LOG hands it out and, unless userspace asked for
 * manual protection, protects the reported pages again; CLEAR_DIRTY_LOG
 * protects the pages userspace names.  Either way the TLBs are flushed
 * before the log goes out, so no write after it can be missed.
 */
#include "dirty_ring.h"
#include "memslot.h"
#include "shadow_mmu.h"
#include "spp.h"
#include "vcpu.h"
#include "tdp_mmu.h"

void kmmu_mark_dirty_range(struct kmmu *kmmu, const struct kmmu_memory_slot *slot, gfn_t gfn,
			   u64 npages)
{
	unsigned long *bitmap = slot->dirty_bitmap;
	u64 rel = gfn - slot->base_gfn, i;

	if (!bitmap)
		return;
	for (i = rel; i < rel + npages; i++) {
		if (!test_bit(i, bitmap)) {
			set_bit(i, bitmap);
			kmmu_stat_inc(kmmu, KMMU_STAT_DIRTY_PAGES);
		}
	}
}

/* A new logging slot's bitmap: all set with KMMU_DIRTY_LOG_INITIALLY_SET. */
int kmmu_dirty_bitmap_alloc(struct kmmu *kmmu, struct kmmu_memory_slot *slot)
{
	unsigned long longs = kmmu_dirty_bitmap_longs(slot);

	/* The VM logs into its vCPUs' rings. */
	if (kmmu->dirty_ring_size)
		return 0;
	slot->dirty_bitmap = os_zalloc(2 * longs * sizeof(long));
	if (!slot->dirty_bitmap)
		return -ENOMEM;
	if (kmmu->manual_dirty_log_protect && kmmu->dirty_log_initially_set)
		bitmap_set(slot->dirty_bitmap, 0, slot->npages);
	return 0;
}

void kmmu_dirty_bitmap_free(struct kmmu_memory_slot *slot)
{
	os_free(slot->dirty_bitmap);
	slot->dirty_bitmap = NULL;
}

static bool kmmu_dirty_log_dbit(struct kmmu *kmmu)
{
	return kmmu->dirty_log_mode == KMMU_DIRTY_LOG_MODE_DBIT;
}

/**
 * kmmu_slot_logging_changed() - a published slot started or stopped logging
 * @kmmu: the VM, slots_lock held
 * @slot: the slot as it is now published
 * @on: logging was enabled (else disabled)
 *
 * Enabling splits huge mappings ahead of the vCPUs (eager split, when on)
 * and protects every page, unless the log starts all set, in which case
 * CLEAR_DIRTY_LOG protects pages as userspace clears them.  Disabling
 * brings back the largest mappings the backing allows.
 */
void kmmu_slot_logging_changed(struct kmmu *kmmu, struct kmmu_memory_slot *slot, bool on)
{
	bool protect = kmmu->dirty_ring_size ||
		       !(kmmu->manual_dirty_log_protect && kmmu->dirty_log_initially_set);
	bool flush = false;

	/*
	 * Shadow leaves: split (or zapped) and protected as the TDP MMU's
	 * are; logging off, they all go, and come back as large as L1 and
	 * the host map them.
	 */
	if (on)
		flush = kmmu_shadow_logging_start(kmmu, slot, kmmu->eager_split_chunk, protect);
	else
		kmmu_shadow_zap_all(kmmu);

	read_lock(&kmmu->mmu_lock);
	if (!on) {
		kmmu_tdp_mmu_recover_huge_pages(kmmu, slot);
	} else if (protect) {
		/* Split leaves start write-protected, so the pass after skips them. */
		if (kmmu->eager_split_chunk)
			kmmu_tdp_mmu_try_split_huge_pages(kmmu, slot, slot->base_gfn,
							  kmmu_slot_end(slot), KMMU_LEVEL_4K,
							  !kmmu_dirty_log_dbit(kmmu));
		kmmu_tdp_mmu_protect_slot(kmmu, slot, kmmu_dirty_log_dbit(kmmu));
		/* Unconditionally: a split may have write-protected what a TLB holds. */
		flush = true;
	}
	read_unlock(&kmmu->mmu_lock);
	if (flush)
		kmmu_flush_remote_tlbs(kmmu);
}

static struct kmmu_memory_slot *kmmu_logging_slot(struct kmmu *kmmu, u32 slot_id)
{
	struct kmmu_memslots *slots = rcu_dereference_protected(kmmu->memslots[slot_id >> 16], 1);
	struct kmmu_memory_slot *slot = slots->by_id[slot_id & 0xffff];

	return slot && slot->dirty_bitmap ? slot : NULL;
}

/* Without manual protection: hand out and reset the log, protect what it named. */
static int kmmu_get_and_reset_dirty_log(struct kmmu *kmmu, struct kmmu_memory_slot *slot,
					unsigned long uaddr)
{
	unsigned long longs = kmmu_dirty_bitmap_longs(slot), i;
	unsigned long *bitmap = slot->dirty_bitmap, *buf = bitmap + longs;
	bool dbit = kmmu_dirty_log_dbit(kmmu), flush = false;

	if (dbit) {
		read_lock(&kmmu->mmu_lock);
		flush = kmmu_tdp_mmu_harvest_dirty(kmmu, slot, !kmmu_mutant(HARVEST_KEEPS_D));
		read_unlock(&kmmu->mmu_lock);
		flush |= kmmu_shadow_harvest_dirty(kmmu, slot, true);
	}
	for (i = 0; i < longs; i++) {
		buf[i] = xchg(&bitmap[i], 0);
		/* A TLB may let a reported page be written even where no SPTE changes. */
		flush |= buf[i] != 0;
	}
	if (!dbit) {
		/* A fault that logged a page we took has installed its SPTE. */
		kmmu_mmu_lock_sync(kmmu);
		read_lock(&kmmu->mmu_lock);
		kmmu_tdp_mmu_clear_dirty_bitmap(kmmu, slot, slot->base_gfn, buf, slot->npages,
						false);
		read_unlock(&kmmu->mmu_lock);
		flush |= kmmu_shadow_protect_gfns(kmmu, slot, slot->base_gfn, buf, slot->npages);
	}

	/* A write after this must fault (or set D) again before anyone copies. */
	if (flush && !kmmu_mutant(NO_FLUSH_AFTER_GET))
		kmmu_flush_remote_tlbs(kmmu);
	if (!os_copy_to_user(uaddr, buf, longs * sizeof(long)))
		return 0;
	/* Nothing is lost to a bad pointer: the pages are logged again. */
	for (i = 0; i < longs; i++)
		if (buf[i])
			atomic_long_or(buf[i], (atomic_long_t *)&bitmap[i]);
	return -EFAULT;
}

/**
 * kmmu_get_dirty_log() - KMMU_GET_DIRTY_LOG
 * @kmmu: the VM
 * @log: slot and user bitmap, checked by api.c
 *
 * Return: 0, -ENOENT when the slot does not exist or does not log, -EFAULT,
 * -ENXIO when the VM logs into dirty rings.
 */
int kmmu_get_dirty_log(struct kmmu *kmmu, const struct kmmu_dirty_log *log)
{
	struct kmmu_memory_slot *slot;
	unsigned long longs;
	int ret = -ENOENT;

	if (READ_ONCE(kmmu->dirty_ring_size))
		return -ENXIO;
	mutex_lock(&kmmu->slots_lock);
	slot = kmmu_logging_slot(kmmu, log->slot);
	if (!slot)
		goto out;
	if (!kmmu->manual_dirty_log_protect) {
		ret = kmmu_get_and_reset_dirty_log(kmmu, slot, log->dirty_bitmap);
		goto out;
	}
	if (kmmu_dirty_log_dbit(kmmu)) {
		read_lock(&kmmu->mmu_lock);
		kmmu_tdp_mmu_harvest_dirty(kmmu, slot, false);
		read_unlock(&kmmu->mmu_lock);
		kmmu_shadow_harvest_dirty(kmmu, slot, false);
	}
	/*
	 * As KVM, straight from the log: slots_lock keeps CLEAR out, and the
	 * vCPUs only set bits meanwhile, each of which is copied once, before
	 * or after it was set.
	 */
	longs = kmmu_dirty_bitmap_longs(slot);
	ret = os_copy_bitmap_to_user(log->dirty_bitmap, slot->dirty_bitmap,
				     slot->dirty_bitmap + longs, longs);
out:
	mutex_unlock(&kmmu->slots_lock);
	return ret;
}

/**
 * kmmu_clear_dirty_log() - KMMU_CLEAR_DIRTY_LOG
 * @kmmu: the VM
 * @log: slot, range and user bitmap; alignment checked by api.c
 *
 * Clears the named bits and protects those pages again.  The first clear of
 * a range in a log that started all set also splits its huge mappings.
 *
 * Return: 0, -ENOENT when the slot does not log, -EINVAL for a range
 * outside the slot, -EFAULT, -ENXIO when the VM logs into dirty rings.
 */
int kmmu_clear_dirty_log(struct kmmu *kmmu, const struct kmmu_clear_dirty_log *log)
{
	bool dbit = kmmu_dirty_log_dbit(kmmu), flush = false;
	struct kmmu_memory_slot *slot;
	unsigned long n, i, *bitmap, *buf;
	int ret = -ENOENT;

	if (READ_ONCE(kmmu->dirty_ring_size))
		return -ENXIO;
	mutex_lock(&kmmu->slots_lock);
	slot = kmmu_logging_slot(kmmu, log->slot);
	if (!slot)
		goto out;
	ret = -EINVAL;
	/* As KVM: first_page may be the slot's end when num_pages is 0. */
	if (log->first_page > slot->npages || log->num_pages > slot->npages - log->first_page ||
	    (log->num_pages < slot->npages - log->first_page && (log->num_pages & 63)))
		goto out;
	ret = 0;
	if (!log->num_pages)
		goto out;

	n = DIV_ROUND_UP(log->num_pages, BITS_PER_LONG);
	bitmap = slot->dirty_bitmap + log->first_page / BITS_PER_LONG;
	buf = slot->dirty_bitmap + kmmu_dirty_bitmap_longs(slot) + log->first_page / BITS_PER_LONG;
	ret = os_copy_from_user(buf, log->dirty_bitmap, n * sizeof(long));
	if (ret)
		goto out;
	if (log->num_pages % BITS_PER_LONG)
		buf[n - 1] &= BIT(log->num_pages % BITS_PER_LONG) - 1;

	if (kmmu->dirty_log_initially_set && kmmu->eager_split_chunk) {
		read_lock(&kmmu->mmu_lock);
		kmmu_tdp_mmu_try_split_huge_pages(kmmu, slot, slot->base_gfn + log->first_page,
						  slot->base_gfn + log->first_page + log->num_pages,
						  KMMU_LEVEL_4K, false);
		read_unlock(&kmmu->mmu_lock);
	}
	/* Only what was set and is cleared now needs protecting again. */
	for (i = 0; i < n; i++) {
		if (buf[i])
			buf[i] &= atomic_long_fetch_andnot(buf[i], (atomic_long_t *)&bitmap[i]);
		/* A TLB may let a cleared page be written even where no SPTE changes. */
		flush |= buf[i] != 0;
	}
	if (!flush)
		goto out;
	/* A fault that logged a page we cleared has installed its SPTE. */
	if (!dbit)
		kmmu_mmu_lock_sync(kmmu);
	read_lock(&kmmu->mmu_lock);
	kmmu_tdp_mmu_clear_dirty_bitmap(kmmu, slot, slot->base_gfn + log->first_page, buf,
					log->num_pages, dbit);
	read_unlock(&kmmu->mmu_lock);
	kmmu_shadow_protect_gfns(kmmu, slot, slot->base_gfn + log->first_page, buf,
				 log->num_pages);
	if (flush)
		kmmu_flush_remote_tlbs(kmmu);
out:
	mutex_unlock(&kmmu->slots_lock);
	return ret;
}

/**
 * kmmu_enable_cap() - KMMU_ENABLE_CAP
 * @kmmu: the VM
 * @cap: the capability, flags and reserved fields already checked
 *
 * Return: 0; -EINVAL for an unknown capability or argument; -EBUSY for the
 * dirty-log mode or the eager split chunk changed while a slot is logging
 * (the uapi header says why KVM has no such rule); for the dirty ring, see
 * kmmu_dirty_ring_enable().
 */
int kmmu_enable_cap(struct kmmu *kmmu, const struct kmmu_enable_cap *cap)
{
	u64 arg = cap->args[0];
	int ret = 0;

	/* On NPT VMs every SPP call is -EOPNOTSUPP, whatever its arguments. */
	if (cap->cap == KMMU_CAP_SPP && kmmu->fmt.format != KMMU_SPTE_FORMAT_EPT)
		return -EOPNOTSUPP;
	if (cap->args[1] || cap->args[2] || cap->args[3])
		return -EINVAL;

	mutex_lock(&kmmu->slots_lock);
	switch (cap->cap) {
	case KMMU_CAP_MANUAL_DIRTY_LOG_PROTECT:
		/* As KVM, at any time: a slot logging now keeps its bitmap. */
		if ((arg & ~(KMMU_DIRTY_LOG_MANUAL_PROTECT_ENABLE | KMMU_DIRTY_LOG_INITIALLY_SET)) ||
		    arg == KMMU_DIRTY_LOG_INITIALLY_SET) {
			ret = -EINVAL;
		} else {
			kmmu->manual_dirty_log_protect = arg & KMMU_DIRTY_LOG_MANUAL_PROTECT_ENABLE;
			kmmu->dirty_log_initially_set = arg & KMMU_DIRTY_LOG_INITIALLY_SET;
		}
		break;
	case KMMU_CAP_DIRTY_LOG_MODE:
		if (arg > KMMU_DIRTY_LOG_MODE_DBIT ||
		    (arg == KMMU_DIRTY_LOG_MODE_DBIT && !kmmu->fmt.ad_enabled))
			ret = -EINVAL;
		else if (kmmu->nr_logging_slots)
			ret = -EBUSY;
		else if (arg == KMMU_DIRTY_LOG_MODE_DBIT && kmmu->hw_vcpu && kmmu->dirty_ring_size)
			ret = -EOPNOTSUPP;	/* no PML on AMD: see KMMU_CAP_HW_VCPU */
		else
			kmmu->dirty_log_mode = arg;
		break;
	case KMMU_CAP_EAGER_SPLIT_CHUNK_SIZE:
		if (arg && (arg & (arg - 1) || arg < KMMU_PAGE_SIZE || arg > (1ULL << 30)))
			ret = -EINVAL;
		else if (kmmu->nr_logging_slots)
			ret = -EBUSY;
		else
			kmmu->eager_split_chunk = arg;
		break;
	case KMMU_CAP_DIRTY_LOG_RING:
		if (kmmu->hw_vcpu && kmmu->dirty_log_mode == KMMU_DIRTY_LOG_MODE_DBIT)
			ret = -EOPNOTSUPP;
		else
			ret = kmmu_dirty_ring_enable(kmmu, arg);
		break;
	case KMMU_CAP_HW_VCPU:
		ret = kmmu_hw_vcpu_enable(kmmu, arg);
		break;
	case KMMU_CAP_SPP:
		ret = kmmu_spp_enable(kmmu, arg);
		break;
	case KMMU_CAP_LOCKLESS_AGING:
		if (arg > 1)
			ret = -EINVAL;
		else
			WRITE_ONCE(kmmu->lockless_aging, arg);
		break;
	default:
		ret = -EINVAL;
	}
	mutex_unlock(&kmmu->slots_lock);
	return ret;
}
