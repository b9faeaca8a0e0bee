// SPDX-License-Identifier: GPL-2.0
/*
 * The VM as a whole: creation and teardown, requests to vCPUs and remote
 * TLB flushes, and the invalidation and aging entry points through which
 * the host (mmu_notifier, or the user host's hooks) reaches the TDP MMU.
 */
#include "kmmu.h"
#include "memslot.h"
#include "shadow_mmu.h"
#include "spp.h"
#include "tdp_mmu.h"
#include "vcpu.h"

/*
 * Faults are counted by the vCPU that took them only, in counters no other
 * thread writes, as KVM counts them: a VM-wide counter would cost every
 * fault a locked add.  The VM's count is the sum over its vCPUs, which live
 * as long as the VM (the one unpublished at creation never ran).
 */
static u64 kmmu_vcpus_stat_sum(struct kmmu *kmmu, enum kmmu_vcpu_stat s)
{
	u64 sum = 0;
	int i;

	rcu_read_lock();
	for (i = 0; i < KMMU_MAX_VCPUS; i++) {
		struct kmmu_vcpu *vcpu = rcu_dereference(kmmu->vcpus[i]);

		if (vcpu)
			sum += READ_ONCE(vcpu->stats[s]);
	}
	rcu_read_unlock();
	return sum;
}

u64 kmmu_stat_read(struct kmmu *kmmu, enum kmmu_stat s)
{
	s64 sum = 0;
	int i;

	BUILD_BUG_ON(KMMU_STAT_MMIO_FAULTS - KMMU_STAT_FAULTS !=
		     KMMU_VCPU_STAT_MMIO_FAULTS - KMMU_VCPU_STAT_FAULTS);
	if (s >= KMMU_STAT_FAULTS && s <= KMMU_STAT_MMIO_FAULTS)
		return kmmu_vcpus_stat_sum(kmmu, KMMU_VCPU_STAT_FAULTS + (s - KMMU_STAT_FAULTS));
	for (i = 0; i < KMMU_STAT_SHARDS; i++)
		sum += atomic64_read(&kmmu->stats[i].v[s]);
	return sum;
}

/**
 * kmmu_create_vm() - a new VM with no memory and no vCPUs
 * @cfg: the configuration, already checked by api.c
 * @host_format: SPTE format to use for KMMU_SPTE_FORMAT_DEFAULT
 * @err: out: -errno when NULL is returned
 *
 * Return: the VM with one reference, or NULL.
 */
struct kmmu *kmmu_create_vm(const struct kmmu_vm_config *cfg, u32 host_format, int *err)
{
	u32 format = cfg->spte_format ? cfg->spte_format : host_format;
	struct kmmu *kmmu = os_zalloc(sizeof(*kmmu));

	if (!kmmu) {
		*err = -ENOMEM;
		return NULL;
	}
	*err = kmmu_spte_fmt_init(&kmmu->fmt, format, cfg->flags);
	if (*err)
		goto free;

	refcount_set(&kmmu->users, 1);
	kmmu->owner_pid = os_current_pid();
	kmmu->max_level = cfg->max_level ? cfg->max_level : KMMU_LEVEL_1G;
	/* Eager splitting is on by default, as KVM's eager_page_split is on x86. */
	kmmu->eager_split_chunk = 64ULL << 20;
	rwlock_init(&kmmu->mmu_lock);
	INIT_LIST_HEAD(&kmmu->tdp_mmu_roots);
	INIT_LIST_HEAD(&kmmu->shadow_pages);
	spin_lock_init(&kmmu->tdp_mmu_pages_lock);
	mutex_init(&kmmu->slots_lock);
	mutex_init(&kmmu->lock);
	init_srcu_struct(&kmmu->srcu);

	*err = kmmu_memslots_init(kmmu);
	if (*err)
		goto destroy;
	*err = os_vm_host_attach(kmmu);
	if (*err)
		goto destroy;
	return kmmu;

destroy:
	kmmu_memslots_destroy(kmmu);
	cleanup_srcu_struct(&kmmu->srcu);
	mutex_destroy(&kmmu->lock);
	mutex_destroy(&kmmu->slots_lock);
	rwlock_destroy(&kmmu->mmu_lock);
free:
	os_free(kmmu);
	return NULL;
}

static void kmmu_destroy_vm(struct kmmu *kmmu)
{
	int i;

	/* No notifier may reach the VM while it is torn down. */
	os_vm_host_detach(kmmu);

	for (i = 0; i < KMMU_MAX_VCPUS; i++) {
		struct kmmu_vcpu *vcpu = rcu_dereference_protected(kmmu->vcpus[i], 1);

		if (!vcpu)
			continue;
		/* Unlisted first: dropping its roots flushes the others' TLBs. */
		RCU_INIT_POINTER(kmmu->vcpus[i], NULL);
		kmmu_destroy_vcpu(vcpu);
	}
	/* The vCPUs' references are gone: the roots' own go with the zap. */
	kmmu_tdp_mmu_invalidate_all_roots(kmmu);
	kmmu_tdp_mmu_zap_invalidated_roots(kmmu);
	WARN_ON_ONCE(!list_empty(&kmmu->tdp_mmu_roots));
	kmmu_shadow_destroy(kmmu);
	WARN_ON_ONCE(kmmu_stat_read(kmmu, KMMU_STAT_PT_PAGES));

	/* Old sets still waiting for a grace period go first. */
	srcu_barrier(&kmmu->srcu);
	kmmu_memslots_destroy(kmmu);
	kmmu_spp_destroy(kmmu);
	if (kmmu->hw)
		os_hw_vm_disable(kmmu);
	cleanup_srcu_struct(&kmmu->srcu);
	mutex_destroy(&kmmu->lock);
	mutex_destroy(&kmmu->slots_lock);
	rwlock_destroy(&kmmu->mmu_lock);
	os_free(kmmu);
}

void kmmu_get(struct kmmu *kmmu)
{
	refcount_inc(&kmmu->users);
}

void kmmu_put(struct kmmu *kmmu)
{
	if (refcount_dec_and_test(&kmmu->users))
		kmmu_destroy_vm(kmmu);
}

/**
 * kmmu_make_all_vcpus_request() - post a request and wait for its ack
 * @kmmu: the VM
 * @req: KMMU_REQ_*
 *
 * A vCPU outside guest mode will see the request before it next enters;
 * one inside sees it before its next access.  Wait for those inside, the
 * way KVM waits for the IPI that kicks a vCPU out of the guest.
 */
void kmmu_make_all_vcpus_request(struct kmmu *kmmu, int req)
{
	struct kmmu_vcpu *vcpu;
	u64 unkicked = 0;
	int i;

	BUILD_BUG_ON(KMMU_MAX_VCPUS > 64);
	rcu_read_lock();
	for (i = 0; i < KMMU_MAX_VCPUS; i++) {
		vcpu = rcu_dereference(kmmu->vcpus[i]);
		if (vcpu)
			set_bit(req, &vcpu->requests);
	}
	/* Pairs with the barrier in vcpu_enter_guest() and kmmu_vcpu_hw_enter(). */
	smp_mb();
	/*
	 * A hardware vCPU in guest mode checks nothing until an interrupt
	 * exits it: an IPI to its CPU does, and it acknowledges (or leaves
	 * guest mode) before entering again, as KVM's vCPUs do.
	 */
	if (kmmu->hw_vcpu) {
		for (i = 0; i < KMMU_MAX_VCPUS; i++) {
			vcpu = rcu_dereference(kmmu->vcpus[i]);
			if (vcpu && READ_ONCE(vcpu->mode) == IN_GUEST_MODE &&
			    !os_hw_kick_cpu(READ_ONCE(vcpu->cpu)))
				unkicked |= BIT_ULL(i);
		}
	}
	for (i = 0; i < KMMU_MAX_VCPUS; i++) {
		vcpu = rcu_dereference(kmmu->vcpus[i]);
		if (!vcpu || kmmu_mutant(SKIP_KICK_ACK_WAIT) || (unkicked & BIT_ULL(i)))
			continue;
		/*
		 * Acquire, both: what the vCPU did before it left guest mode,
		 * or before it acknowledged (clear_bit_unlock()), is seen.
		 */
		while (smp_load_acquire(&vcpu->mode) == IN_GUEST_MODE &&
		       test_bit_acquire(req, &vcpu->requests)) {
			os_race_point(kmmu, KMMU_RACE_REQUEST_WAIT, vcpu->id);
			cpu_relax();
		}
	}
	rcu_read_unlock();
}

/**
 * kmmu_flush_remote_tlbs() - every vCPU drops its cached translations
 * @kmmu: the VM
 *
 * On return no vCPU can use a translation cached before the call.
 */
void kmmu_flush_remote_tlbs(struct kmmu *kmmu)
{
	kmmu_stat_inc(kmmu, KMMU_STAT_TLB_FLUSHES);
	os_trace_flush(kmmu->owner_pid);
	kmmu_make_all_vcpus_request(kmmu, KMMU_REQ_TLB_FLUSH);
}

typedef bool (*kmmu_gfn_range_handler)(struct kmmu *kmmu, int as_id, gfn_t start,
				       gfn_t end, void *data);

/*
 * Call @handler on the gfns that [start, end) of the host's address space
 * backs, slot by slot, in every address space.
 */
static bool kmmu_handle_hva_range(struct kmmu *kmmu, unsigned long start, unsigned long end,
				  kmmu_gfn_range_handler handler, void *data)
{
	bool ret = false;
	int as, i, idx;

	idx = srcu_read_lock(&kmmu->srcu);
	for (as = 0; as < KMMU_ADDRESS_SPACE_NUM; as++) {
		struct kmmu_memslots *slots = kmmu_memslots(kmmu, as);

		for (i = 0; i < slots->nr; i++) {
			struct kmmu_memory_slot *slot = slots->by_gfn[i];
			unsigned long s = max(start, slot->userspace_addr);
			unsigned long e = min(end, kmmu_gfn_to_hva(slot, kmmu_slot_end(slot)));

			if (s >= e)
				continue;
			ret |= handler(kmmu, as,
				       slot->base_gfn + ((s - slot->userspace_addr) >> KMMU_PAGE_SHIFT),
				       slot->base_gfn + DIV_ROUND_UP(e - slot->userspace_addr,
								     KMMU_PAGE_SIZE),
				       data);
		}
	}
	srcu_read_unlock(&kmmu->srcu, idx);
	return ret;
}

static bool kmmu_unmap_gfn_range(struct kmmu *kmmu, int as_id, gfn_t start, gfn_t end,
				 void *data)
{
	bool flush = kmmu_tdp_mmu_zap_leafs(kmmu, as_id, start, end, *(bool *)data, false);

	return kmmu_shadow_zap_gfn_range(kmmu, as_id, start, end) || flush;
}

/**
 * kmmu_invalidate_range_start() - the host is about to change [start, end)
 * @kmmu: the VM
 * @start: first host virtual address
 * @end: address after the last
 * @may_block: the caller may sleep, so the zap may yield mmu_lock
 *
 * From here until the matching end, faults on the range retry; every
 * mapping of it is zapped and flushed before this returns, so the host may
 * free or move the pages.
 */
void kmmu_invalidate_range_start(struct kmmu *kmmu, unsigned long start, unsigned long end,
				 bool may_block)
{
	bool flush;

	kmmu_mmu_write_lock(kmmu);
	/* WRITE_ONCE: faults peek at these without mmu_lock (kmmu_faultin_pfn()). */
	WRITE_ONCE(kmmu->mmu_invalidate_in_progress, kmmu->mmu_invalidate_in_progress + 1);
	if (kmmu->mmu_invalidate_in_progress == 1) {
		WRITE_ONCE(kmmu->mmu_invalidate_range_start, start);
		WRITE_ONCE(kmmu->mmu_invalidate_range_end, end);
	} else {
		/* Overlapping invalidations: cover them all, as KVM does. */
		WRITE_ONCE(kmmu->mmu_invalidate_range_start,
			   min(kmmu->mmu_invalidate_range_start, start));
		WRITE_ONCE(kmmu->mmu_invalidate_range_end,
			   max(kmmu->mmu_invalidate_range_end, end));
	}
	flush = kmmu_handle_hva_range(kmmu, start, end, kmmu_unmap_gfn_range, &may_block);
	if (flush && !kmmu_mutant(SKIP_FLUSH_AFTER_ZAP))
		kmmu_flush_remote_tlbs(kmmu);
	kmmu_mmu_write_unlock(kmmu);
	kmmu_stat_inc(kmmu, KMMU_STAT_INVALIDATIONS);
}

void kmmu_invalidate_range_end(struct kmmu *kmmu, unsigned long start, unsigned long end)
{
	kmmu_mmu_write_lock(kmmu);
	WRITE_ONCE(kmmu->mmu_invalidate_seq, kmmu->mmu_invalidate_seq + 1);
	/*
	 * The new sequence is visible before the range stops being "in
	 * progress", so a fault that races with the end sees one or the
	 * other; pairs with smp_rmb() in kmmu_faultin_pfn().
	 */
	smp_wmb();
	WRITE_ONCE(kmmu->mmu_invalidate_in_progress, kmmu->mmu_invalidate_in_progress - 1);
	WARN_ON_ONCE(kmmu->mmu_invalidate_in_progress < 0);
	kmmu_mmu_write_unlock(kmmu);
}

struct kmmu_age_args {
	bool clear;
	bool lockless;
	bool fast_only;		/* KMMU_AGE_FAST_ONLY: lockless, and no waiting on rmaps */
	bool incomplete;	/* out: fast-only skipped an rmap a writer held */
	struct kmmu_age_result res;
};

static bool kmmu_age_gfn_range(struct kmmu *kmmu, int as_id, gfn_t start, gfn_t end,
			       void *data)
{
	struct kmmu_age_args *a = data;
	bool young;

	young = kmmu_tdp_mmu_age_gfn_range(kmmu, as_id, start, end, a->clear, a->lockless,
					   &a->res);
	/* The shadow leaves that map the range: through the rmaps. */
	young |= kmmu_shadow_age_gfn_range(kmmu, as_id, start, end, a->clear, a->fast_only,
					   &a->res, &a->incomplete);
	return young;
}

/* Run one aging pass with the VM's choice of path, and count it. */
static bool kmmu_age(struct kmmu *kmmu, struct kmmu_age_args *a,
		     bool (*walk)(struct kmmu *kmmu, struct kmmu_age_args *a, void *data),
		     void *data, bool flush)
{
	bool young;

	a->lockless = a->fast_only || READ_ONCE(kmmu->lockless_aging);
	if (a->lockless) {
		young = walk(kmmu, a, data);
	} else {
		kmmu_mmu_write_lock(kmmu);
		young = walk(kmmu, a, data);
		kmmu_mmu_write_unlock(kmmu);
	}
	if (young && a->clear && flush)
		kmmu_flush_remote_tlbs(kmmu);

	kmmu_stat_inc(kmmu, KMMU_STAT_AGING_PASSES);
	kmmu_stat_add(kmmu, KMMU_STAT_YOUNG, a->res.young);
	kmmu_stat_add(kmmu, KMMU_STAT_OLD, a->res.old);
	return young;
}

struct kmmu_hva_range {
	unsigned long start, end;
};

static bool kmmu_age_hva_walk(struct kmmu *kmmu, struct kmmu_age_args *a, void *data)
{
	struct kmmu_hva_range *r = data;

	return kmmu_handle_hva_range(kmmu, r->start, r->end, kmmu_age_gfn_range, a);
}

/**
 * kmmu_age_hva_range() - was [start, end) accessed since the last clear?
 * @kmmu: the VM
 * @start: first host virtual address
 * @end: address after the last
 * @clear: clear the accessed state (age) instead of only testing it
 * @flush: flush TLBs after clearing, so the next access is seen
 *
 * Return: true if any mapping of the range was accessed.
 */
bool kmmu_age_hva_range(struct kmmu *kmmu, unsigned long start, unsigned long end,
			bool clear, bool flush)
{
	struct kmmu_age_args a = { .clear = clear };
	struct kmmu_hva_range r = { start, end };

	return kmmu_age(kmmu, &a, kmmu_age_hva_walk, &r, flush);
}

struct kmmu_gfn_range {
	int as_id;
	gfn_t start, end;
};

static bool kmmu_age_gfn_walk(struct kmmu *kmmu, struct kmmu_age_args *a, void *data)
{
	struct kmmu_gfn_range *r = data;

	return kmmu_age_gfn_range(kmmu, r->as_id, r->start, r->end, a);
}

/**
 * kmmu_age_gfn_range_ioctl() - KMMU_AGE: age guest frames directly
 * @kmmu: the VM
 * @as_id: address space
 * @start: first gfn
 * @end: gfn after the last
 * @flags: KMMU_AGE_*
 * @young: out: 4 KiB pages found accessed
 * @old: out: 4 KiB pages found mapped and not accessed
 *
 * Return: KMMU_AGE_INCOMPLETE when a fast-only pass skipped what a writer
 * held, else 0.
 */
u32 kmmu_age_gfn_range_ioctl(struct kmmu *kmmu, int as_id, gfn_t start, gfn_t end, u32 flags,
			     u64 *young, u64 *old)
{
	struct kmmu_age_args a = {
		.clear = !(flags & KMMU_AGE_TEST_ONLY),
		.fast_only = flags & KMMU_AGE_FAST_ONLY,
	};
	struct kmmu_gfn_range r = { as_id, start, end };

	kmmu_age(kmmu, &a, kmmu_age_gfn_walk, &r, flags & KMMU_AGE_FLUSH);
	*young = a.res.young;
	*old = a.res.old;
	return a.incomplete ? KMMU_AGE_INCOMPLETE : 0;
}

/**
 * kmmu_zap_all() - drop every mapping of the VM
 * @kmmu: the VM
 *
 * Invalidates the roots, so vCPUs move to fresh ones (a short write hold
 * of mmu_lock), then empties them under the read lock.  slots_lock keeps
 * a second caller from returning while the first still zaps.
 */
void kmmu_zap_all(struct kmmu *kmmu)
{
	os_trace_zap(0, 0, ~0ULL, true);
	mutex_lock(&kmmu->slots_lock);
	kmmu_tdp_mmu_invalidate_all_roots(kmmu);
	kmmu_tdp_mmu_zap_invalidated_roots(kmmu);
	kmmu_shadow_zap_all(kmmu);
	mutex_unlock(&kmmu->slots_lock);
}

/* The host address space is going away (mm exit): nothing may stay mapped. */
void kmmu_release_all(struct kmmu *kmmu)
{
	kmmu_zap_all(kmmu);
}
