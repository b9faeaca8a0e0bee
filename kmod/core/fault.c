// SPDX-License-Identifier: GPL-2.0
/*
 * The TDP page-fault path.  A violation first tries the lockless fast path
 * (access tracking and write protection need only a cmpxchg on the leaf);
 * otherwise the host page is looked up without locks, the largest mapping
 * level is chosen, and the SPTE is installed under the read side of
 * mmu_lock -- unless an invalidation ran meanwhile, in which case the vCPU
 * simply faults again.
 */
#include "dirty_ring.h"
#include "fault.h"
#include "shadow_mmu.h"
#include "spp.h"
#include "tdp_mmu.h"

/*
 * An MMIO SPTE of the current generation needs nothing but an exit.  While
 * memslots are being updated none is current: the slow path decides.
 */
static int handle_mmio_page_fault(struct kmmu_vcpu *vcpu, struct kmmu_page_fault *fault)
{
	struct kmmu *kmmu = vcpu->kmmu;
	u64 gen = fault->slots_gen & MMIO_GEN_MASK;
	u64 spte = 0;
	u64 *sptep;

	if (fault->slots_gen & KMMU_MEMSLOT_GEN_UPDATE_IN_PROGRESS)
		return RET_PF_INVALID;

	rcu_read_lock();
	sptep = kmmu_tdp_mmu_fast_pf_get_last_sptep(vcpu, fault->as_id, fault->gfn, &spte, NULL);
	rcu_read_unlock();

	if (sptep && is_mmio_spte(&kmmu->fmt, spte) &&
	    (mmio_spte_gen(spte) == gen || kmmu_mutant(MMIO_GEN_IGNORED))) {
		kmmu_fault_stat_inc(vcpu, fault, MMIO_FAULTS);
		return RET_PF_EMULATE;
	}
	/* Stale (or already replaced): let the slow path decide again. */
	return RET_PF_INVALID;
}

/*
 * Without A/D bits an access-tracked SPTE looks non-present to the CPU; a
 * present leaf that denied the access may just be write-protected.  Both
 * are fixed by the fast path.
 */
static bool page_fault_can_be_fast(struct kmmu *kmmu, struct kmmu_page_fault *fault)
{
	if (fault->rsvd)
		return false;
	return fault->present || !kmmu->fmt.ad_enabled;
}

/**
 * fast_page_fault() - fix a fault with one cmpxchg, without mmu_lock
 * @vcpu: the vCPU
 * @fault: the fault
 *
 * Restores an access-tracked SPTE and/or makes an MMU-writable SPTE
 * writable.  The walk runs under RCU, so the leaf cannot be freed under us;
 * if it changes, the cmpxchg fails and the walk is repeated a few times.
 *
 * Return: RET_PF_FIXED, RET_PF_SPURIOUS, or RET_PF_INVALID for the slow path.
 */
static int fast_page_fault(struct kmmu_vcpu *vcpu, struct kmmu_page_fault *fault)
{
	struct kmmu *kmmu = vcpu->kmmu;
	const struct kmmu_spte_fmt *f = &kmmu->fmt;
	unsigned int access = fault->write ? KMMU_ACC_WRITE : KMMU_ACC_READ;
	int ret = RET_PF_INVALID, retries = 0, level = 0;
	u64 spte = 0, new_spte;
	u64 *sptep;

	rcu_read_lock();
	do {
		sptep = kmmu_tdp_mmu_fast_pf_get_last_sptep(vcpu, fault->as_id, fault->gfn,
							    &spte, &level);
		if (!sptep || !is_shadow_present_spte(spte) || !is_last_spte(f, spte, level))
			break;
		if (is_access_allowed(f, spte, access)) {
			ret = RET_PF_SPURIOUS;
			break;
		}

		new_spte = spte;
		if (is_access_track_spte(f, spte))
			new_spte = restore_acc_track_spte(new_spte);
		if (fault->write && is_mmu_writable_spte(f, spte)) {
			/* A logging slot is tracked per 4 KiB page: split on the slow path. */
			if (level > KMMU_LEVEL_4K && fault->slot && kmmu_slot_logging(fault->slot))
				break;
			new_spte |= f->writable;
		}
		if (new_spte == spte || !is_access_allowed(f, new_spte, access))
			break;
		if (kmmu_mutant(MARK_DIRTY_BEFORE_INSTALL) && fault->slot &&
		    (new_spte & ~spte & f->writable))
			kmmu_vcpu_mark_page_dirty(vcpu, fault->slot, fault->gfn);
		os_race_point(kmmu, KMMU_RACE_FAST_PF_READ, fault->gfn);

		if (try_cmpxchg64(sptep, &spte, new_spte)) {
			/*
			 * The first write since the page was protected: log it,
			 * after the SPTE is writable (a log handed out before
			 * still protects it again).  The host page is not
			 * touched: it was marked dirty when the SPTE was made.
			 */
			if (fault->slot && (new_spte & ~spte & f->writable) &&
			    !kmmu_mutant(MARK_DIRTY_BEFORE_INSTALL) && !kmmu_mutant(FAST_PF_NO_LOG))
				kmmu_vcpu_mark_page_dirty(vcpu, fault->slot, fault->gfn);
			ret = RET_PF_FIXED;
			break;
		}
	} while (++retries < 4);
	rcu_read_unlock();

	if (ret == RET_PF_FIXED)
		kmmu_fault_stat_inc(vcpu, fault, FAST_FAULTS);
	else if (ret == RET_PF_SPURIOUS)
		kmmu_fault_stat_inc(vcpu, fault, SPURIOUS_FAULTS);
	return ret;
}

/* Fill the vCPU's caches so that one walk can link a table at every level. */
static int mmu_topup_caches(struct kmmu_vcpu *vcpu)
{
	while (vcpu->nr_pt_cache < KMMU_PT_CACHE_MIN) {
		u64 *pt = os_pt_alloc();

		if (!pt)
			return -ENOMEM;
		vcpu->pt_cache[vcpu->nr_pt_cache++] = pt;
	}
	while (vcpu->nr_sp_cache < KMMU_PT_CACHE_MIN) {
		struct kmmu_mmu_page *sp = os_zalloc(sizeof(*sp));

		if (!sp)
			return -ENOMEM;
		vcpu->sp_cache[vcpu->nr_sp_cache++] = sp;
	}
	return 0;
}

/**
 * kmmu_max_mapping_level() - the largest level that may map @gfn
 * @kmmu: the VM
 * @slot: the slot that maps @gfn
 * @gfn: guest frame
 * @max_level: the caller's limit
 *
 * Limited by the slot (its edges and the alignment of its userspace
 * address) and by how the host maps the page.  The host's answer may change
 * at any time; a change comes with an invalidation, which makes the fault
 * retry, so reading it after the invalidation sequence is enough.
 *
 * Return: a level from KMMU_LEVEL_4K to @max_level.
 */
int kmmu_max_mapping_level(struct kmmu *kmmu, const struct kmmu_memory_slot *slot,
			   gfn_t gfn, int max_level)
{
	int host_level;

	/* Logging is per 4 KiB page: so are the mappings. */
	if (kmmu_slot_logging(slot))
		return KMMU_LEVEL_4K;
	for (; max_level > KMMU_LEVEL_4K; max_level--)
		if (!kmmu_lpage_disallowed(slot, gfn, max_level))
			break;
	if (max_level == KMMU_LEVEL_4K)
		return KMMU_LEVEL_4K;

	host_level = os_host_mapping_level(kmmu, kmmu_gfn_to_hva(slot, gfn));
	return min(host_level, max_level);
}

/*
 * Find the slot and the host page.  Return RET_PF_CONTINUE with the fault
 * filled in, another RET_PF_* that ends the fault, or -errno from the host.
 * Also the shadow MMU's, for the L1 gfn an L2 address translates to.
 */
int kmmu_faultin_pfn(struct kmmu_vcpu *vcpu, struct kmmu_page_fault *fault)
{
	struct kmmu *kmmu = vcpu->kmmu;
	/* Slot and generation were read from one set by kmmu_page_fault(). */
	struct kmmu_memory_slot *slot = fault->slot;
	int ret;

	fault->goal_level = KMMU_LEVEL_4K;

	/* No slot: an MMIO SPTE at 4K makes the next access exit at once. */
	if (!slot)
		return RET_PF_CONTINUE;
	/* Being deleted or moved: wait until it is gone or has moved. */
	if (slot->flags & KMMU_MEMSLOT_INVALID)
		return RET_PF_RETRY;
	/* Writes to read-only memory are MMIO, as in KVM. */
	if (fault->write && (slot->flags & KMMU_MEM_READONLY)) {
		kmmu_fault_stat_inc(vcpu, fault, MMIO_FAULTS);
		return RET_PF_EMULATE;
	}

	fault->mmu_seq = READ_ONCE(kmmu->mmu_invalidate_seq);
	/*
	 * Read the sequence before the host page: an invalidation that ends
	 * after this (smp_wmb() in kmmu_invalidate_range_end()) is then seen
	 * as a changed sequence under mmu_lock, and the fault retries.
	 */
	smp_rmb();

	fault->req.hva = kmmu_gfn_to_hva(slot, fault->gfn);
	/*
	 * An invalidation of this page is running: the fault would only be
	 * retried under mmu_lock, after making the zapper yield to it.  Read
	 * without the lock (as KVM's mmu_invalidate_retry_gfn_unsafe()): a
	 * stale answer costs one more fault, and the locked check stays.
	 */
	if (READ_ONCE(kmmu->mmu_invalidate_in_progress) &&
	    fault->req.hva >= READ_ONCE(kmmu->mmu_invalidate_range_start) &&
	    fault->req.hva < READ_ONCE(kmmu->mmu_invalidate_range_end) &&
	    !kmmu_mutant(DROP_IN_PROGRESS_CHECK))
		return RET_PF_RETRY;
	fault->req.write = fault->write;
	fault->req.slot_writable = !(slot->flags & KMMU_MEM_READONLY) ||
				   kmmu_mutant(READONLY_SLOT_WRITABLE);
	ret = os_hva_to_pfn(kmmu, &fault->req);
	if (ret == -EAGAIN)
		return RET_PF_RETRY;
	if (ret) {
		fault->host_error = ret;
		return ret;
	}
	fault->pfn_held = true;

	fault->max_level = kmmu->max_level;
	fault->goal_level = kmmu_max_mapping_level(kmmu, slot, fault->gfn, fault->max_level);
	return RET_PF_CONTINUE;
}

/* Did an invalidation or a root change overtake the host lookup? */
static bool is_page_fault_stale(struct kmmu_vcpu *vcpu, struct kmmu_page_fault *fault)
{
	struct kmmu_mmu_page *root = vcpu->root[fault->as_id];

	if (READ_ONCE(root->invalid) && !kmmu_mutant(IGNORE_INVALID_ROOT))
		return true;
	return fault->slot &&
	       kmmu_invalidate_retry_hva(vcpu->kmmu, fault->mmu_seq, fault->req.hva);
}

static int direct_page_fault(struct kmmu_vcpu *vcpu, struct kmmu_page_fault *fault)
{
	struct kmmu *kmmu = vcpu->kmmu;
	int ret;

	ret = kmmu_faultin_pfn(vcpu, fault);
	if (ret != RET_PF_CONTINUE)
		return ret;
	if (fault->pfn_held)
		os_race_point(kmmu, KMMU_RACE_FAULTIN_DONE, fault->gfn);

	ret = RET_PF_RETRY;
	read_lock(&kmmu->mmu_lock);
	if (!is_page_fault_stale(vcpu, fault))
		ret = kmmu_tdp_mmu_map(vcpu, fault);
	/*
	 * As KVM's kvm_release_faultin_page(): the page goes back under
	 * mmu_lock, marked dirty when the host let us write it and an SPTE
	 * now maps it, even read-only.  The fast path may make that SPTE
	 * writable later without mmu_lock, where a page's flags must not be
	 * touched (they race with writeback), so the mark is made now.
	 */
	if (fault->pfn_held)
		os_release_pfn(&fault->req, ret != RET_PF_RETRY && ret != RET_PF_WRITE_TRACKED &&
			       fault->req.writable && !kmmu_mutant(NO_HOST_DIRTY));
	fault->pfn_held = false;
	read_unlock(&kmmu->mmu_lock);

	/* L1 writes one of its tables that the shadow MMU shadows: they go first. */
	if (ret == RET_PF_WRITE_TRACKED) {
		kmmu_shadow_unprotect_gfn(kmmu, fault->as_id, fault->gfn);
		ret = RET_PF_RETRY;
	}

	if (ret == RET_PF_RETRY) {
		kmmu_fault_stat_inc(vcpu, fault, FAULT_RETRIES);
		os_race_point(kmmu, KMMU_RACE_FAULT_RETRY, fault->gfn);
	} else if (ret == RET_PF_SPURIOUS) {
		kmmu_fault_stat_inc(vcpu, fault, SPURIOUS_FAULTS);
	} else if (ret == RET_PF_EMULATE) {
		kmmu_fault_stat_inc(vcpu, fault, MMIO_FAULTS);
	}
	return ret;
}

/**
 * kmmu_page_fault() - handle one TDP violation or misconfiguration
 * @vcpu: the vCPU, outside guest mode, in an srcu read section
 * @fault: gpa, access and what the walk saw
 *
 * Return: a RET_PF_* code, or -ENOMEM, or the host's -errno for the page
 * (-EFAULT, -EHWPOISON, -EINTR) with fault->host_error set.
 */
int kmmu_page_fault(struct kmmu_vcpu *vcpu, struct kmmu_page_fault *fault)
{
	struct kmmu_memslots *slots;
	int ret;

	kmmu_fault_stat_inc(vcpu, fault, FAULTS);
	/*
	 * One read of the set for both: a set published in between would give
	 * "no slot" with the new generation, an MMIO SPTE that never goes stale.
	 */
	slots = kmmu_memslots(vcpu->kmmu, fault->as_id);
	fault->slot = kmmu_gfn_to_memslot(slots, fault->gfn);
	fault->slots_gen = READ_ONCE(slots->generation);

	/*
	 * SPP-related events.  A refused write exits to userspace, unless
	 * SET_ACCESS allowed it since the walk (the vCPU then walks again).
	 */
	if (fault->spp_miss)
		return kmmu_spp_handle_miss(vcpu, fault->as_id, fault->gfn);
	if (fault->spp)
		return kmmu_spp_write_allowed(vcpu, fault->as_id, fault->addr) ?
		       RET_PF_RETRY : RET_PF_SPP;

	if (fault->rsvd) {
		ret = handle_mmio_page_fault(vcpu, fault);
		if (ret != RET_PF_INVALID)
			return ret;
	}

	if (page_fault_can_be_fast(vcpu->kmmu, fault)) {
		ret = fast_page_fault(vcpu, fault);
		if (ret != RET_PF_INVALID)
			return ret;
	}

	ret = mmu_topup_caches(vcpu);
	if (ret)
		return ret;
	return direct_page_fault(vcpu, fault);
}
