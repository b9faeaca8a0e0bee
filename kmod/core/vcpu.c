// SPDX-License-Identifier: GPL-2.0
/*
 * The software vCPU.  RUN executes the workload in the caller's thread:
 * each access goes through the soft TLB or a hardware-style walk, a walk
 * that fails leaves guest mode and calls the fault handler, and the access
 * is retried until it goes through or an exit needs userspace.
 *
 * Guest mode is entered for a bounded chunk of accesses at a time: inside
 * it the vCPU never sleeps and answers requests at every access, so a
 * remote TLB flush only ever waits a few accesses for its ack.
 */
#include "vcpu.h"
#include "dirty_ring.h"
#include "fault.h"
#include "guest_walk.h"
#include "shadow_mmu.h"
#include "spp.h"
#include "tdp_mmu.h"
#include "walker.h"

#define KMMU_GUEST_CHUNK	256	/* accesses per stay in guest mode */
#define KMMU_MAX_REFAULTS	(1 << 20) /* faults on one access before giving up */

struct kmmu_vcpu *kmmu_create_vcpu(struct kmmu *kmmu, int id, int *err)
{
	struct kmmu_vcpu *vcpu = os_zalloc(sizeof(*vcpu));
	int i;

	if (!vcpu) {
		*err = -ENOMEM;
		return NULL;
	}
	vcpu->kmmu = kmmu;
	vcpu->id = id;
	for (i = 0; i < KMMU_TLB_ENTRIES; i++)
		vcpu->tlb[i].gfn = KMMU_TLB_INVALID;

	mutex_lock(&kmmu->lock);
	if (rcu_access_pointer(kmmu->vcpus[id])) {
		mutex_unlock(&kmmu->lock);
		os_free(vcpu);
		*err = -EEXIST;
		return NULL;
	}
	*err = kmmu_dirty_ring_alloc(vcpu);
	if (!*err && kmmu->hw_vcpu) {
		*err = os_hw_vcpu_create(vcpu);
		if (*err)
			kmmu_dirty_ring_free(vcpu);
	}
	if (*err) {
		mutex_unlock(&kmmu->lock);
		os_free(vcpu);
		return NULL;
	}
	/* The vCPU's fd holds a reference to the VM. */
	kmmu_get(kmmu);
	rcu_assign_pointer(kmmu->vcpus[id], vcpu);
	atomic_inc(&kmmu->online_vcpus);
	mutex_unlock(&kmmu->lock);
	return vcpu;
}

static void vcpu_free(struct kmmu_vcpu *vcpu)
{
	int as;

	for (as = 0; as < KMMU_ADDRESS_SPACE_NUM; as++)
		if (vcpu->root[as])
			kmmu_tdp_mmu_put_root(vcpu->kmmu, vcpu->root[as]);
	kmmu_shadow_vcpu_free(vcpu);
	while (vcpu->nr_pt_cache)
		os_pt_free(vcpu->pt_cache[--vcpu->nr_pt_cache]);
	while (vcpu->nr_sp_cache)
		os_free(vcpu->sp_cache[--vcpu->nr_sp_cache]);
	kmmu_dirty_ring_free(vcpu);
	if (vcpu->hw)
		os_hw_vcpu_destroy(vcpu);
	os_free(vcpu);
}

/* Undo kmmu_create_vcpu() when no fd could be made for the vCPU. */
void kmmu_unpublish_vcpu(struct kmmu_vcpu *vcpu)
{
	struct kmmu *kmmu = vcpu->kmmu;

	mutex_lock(&kmmu->lock);
	RCU_INIT_POINTER(kmmu->vcpus[vcpu->id], NULL);
	atomic_dec(&kmmu->online_vcpus);
	mutex_unlock(&kmmu->lock);
	/* Requesters look at vCPUs under RCU. */
	synchronize_rcu();
	vcpu_free(vcpu);
	kmmu_put(kmmu);
}

/* Called when the VM goes away, after every fd is closed. */
void kmmu_destroy_vcpu(struct kmmu_vcpu *vcpu)
{
	vcpu_free(vcpu);
}

void kmmu_kick_vcpu(struct kmmu_vcpu *vcpu)
{
	WRITE_ONCE(vcpu->kick, 1);
	/* A hardware vCPU inside VMRUN sees nothing until an interrupt exits it. */
	if (vcpu->hw) {
		/*
		 * Pairs with the barrier in kmmu_vcpu_hw_enter(): either it
		 * sees the kick before VMRUN or this sees it in guest mode.
		 */
		smp_mb();
		if (READ_ONCE(vcpu->mode) == IN_GUEST_MODE)
			(void)os_hw_kick_cpu(READ_ONCE(vcpu->cpu));
	}
}

static u64 splitmix64(u64 x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static u64 wl_step_bytes(const struct kmmu_workload *wl)
{
	return wl->pattern == KMMU_PATTERN_STRIDE ? wl->stride : KMMU_PAGE_SIZE;
}

/* Accesses in one pass; api.c made sure a whole workload's count fits. */
static u64 wl_steps_per_pass(const struct kmmu_workload *wl)
{
	return (wl->size - sizeof(u64)) / wl_step_bytes(wl) + 1;
}

/*
 * One thread at a time runs the vCPU or changes its workload: taking it
 * is an acquire and giving it back a release, so the next thread sees
 * everything the last one left in the vCPU.
 */
bool kmmu_vcpu_get_exclusive(struct kmmu_vcpu *vcpu)
{
	return atomic_cmpxchg_acquire(&vcpu->running, 0, 1) == 0;
}

void kmmu_vcpu_put_exclusive(struct kmmu_vcpu *vcpu)
{
	atomic_set_release(&vcpu->running, 0);
}

static void vcpu_flush_tlb(struct kmmu_vcpu *vcpu);

void kmmu_set_workload(struct kmmu_vcpu *vcpu, const struct kmmu_workload *wl)
{
	struct kmmu_wl_state *s = &vcpu->wls;
	bool was_nested = s->nested;

	memset(s, 0, sizeof(*s));
	s->wl = *wl;
	s->per_pass = wl_steps_per_pass(wl);
	s->total = s->per_pass * wl->iterations;
	s->as_id = (wl->flags & KMMU_WL_SMM) ? 1 : 0;
	if (wl->flags & KMMU_WL_NESTED) {
		s->nested = true;
		s->l1_root = wl->nested_root & KMMU_NESTED_ROOT_ADDR;
		s->l1_ad = vcpu->kmmu->fmt.format == KMMU_SPTE_FORMAT_EPT &&
			   (wl->nested_root & KMMU_EPTP_AD);
	}
	/*
	 * The TLB is tagged by gfn alone: an L2 gfn and an L1 one must not
	 * meet in it, nor the translations of two L1 roots (a new EPTP).
	 */
	if (was_nested || s->nested)
		vcpu_flush_tlb(vcpu);
	s->valid = true;
	if (vcpu->hw)
		os_hw_set_workload(vcpu);
}

/* The access number @step of the workload; a pure function of the step. */
static void wl_access_at(const struct kmmu_wl_state *s, u64 step, gpa_t *gpa, bool *write)
{
	const struct kmmu_workload *wl = &s->wl;
	u64 i = step % s->per_pass;

	if (wl->pattern == KMMU_PATTERN_RANDOM)
		i = splitmix64(wl->seed ^ (step << 1)) % s->per_pass;
	*gpa = wl->gpa + i * wl_step_bytes(wl);
	*write = wl->write_percent >= 100 ||
		 (wl->write_percent &&
		  splitmix64(wl->seed ^ ((step << 1) | 1)) % 100 < wl->write_percent);
}

static u64 wl_value(const struct kmmu_workload *wl, gpa_t gpa)
{
	return (wl->flags & KMMU_WL_XOR_GPA) ? wl->value ^ gpa : wl->value;
}

static void vcpu_flush_tlb(struct kmmu_vcpu *vcpu)
{
	int i;

	for (i = 0; i < KMMU_TLB_ENTRIES; i++)
		vcpu->tlb[i].gfn = KMMU_TLB_INVALID;
	vcpu->nested_walk.valid = false;
}

/*
 * Flush, then acknowledge with release: every access made through the old
 * translations is done before the requester, who loads the bit with
 * acquire, goes on to free what they pointed to.
 */
static void vcpu_ack_tlb_flush(struct kmmu_vcpu *vcpu)
{
	vcpu_flush_tlb(vcpu);
	kmmu_vcpu_stat_inc(vcpu, KMMU_VCPU_STAT_TLB_FLUSHES);
	clear_bit_unlock(KMMU_REQ_TLB_FLUSH, &vcpu->requests);
}

static void vcpu_enter_guest(struct kmmu_vcpu *vcpu)
{
	os_guest_enter(vcpu);
	/* Pairs with the barrier in kmmu_make_all_vcpus_request(). */
	smp_store_mb(vcpu->mode, IN_GUEST_MODE);
	if (test_bit(KMMU_REQ_TLB_FLUSH, &vcpu->requests))
		vcpu_ack_tlb_flush(vcpu);
}

static void vcpu_exit_guest(struct kmmu_vcpu *vcpu)
{
	/* Release: every access of the chunk is done before a requester stops waiting. */
	smp_store_release(&vcpu->mode, OUTSIDE_GUEST_MODE);
	os_guest_exit(vcpu);
}

/*
 * One access, as the CPU does it: through the TLB when it has a usable
 * entry, else through a walk that fills it.  Returns 0 or STOP_*.
 */
static int vcpu_access(struct kmmu_vcpu *vcpu, gpa_t gpa, bool write, struct kmmu_run *run,
		       struct kmmu_page_fault *fault)
{
	struct kmmu *kmmu = vcpu->kmmu;
	struct kmmu_wl_state *s = &vcpu->wls;
	struct kmmu_nested_walk *nw = &vcpu->nested_walk;
	gfn_t gfn = gpa >> KMMU_PAGE_SHIFT;
	struct kmmu_tlb_entry *e = &vcpu->tlb[gfn % KMMU_TLB_ENTRIES];
	bool shadow = false;
	u64 *p;

	if (e->gfn != gfn || e->as_id != s->as_id ||
	    (write && !e->writable && !(e->spp_wmask & BIT(spp_subpage_of(gpa))))) {
		struct kmmu_walk w = {
			.gpa = gpa,
			.access = write ? KMMU_ACC_WRITE : KMMU_ACC_READ,
			.sppt = READ_ONCE(kmmu->sppt_root[s->as_id]),
		};
		u64 *root_pt = vcpu->root[s->as_id]->spt;
		enum kmmu_walk_result res;
		u8 *hva;

		/*
		 * A nested access goes through the shadow root, which maps L2
		 * gpas to host pages; a miss walks L1's tables (out of guest
		 * mode: it may sleep) and fills it.  An L1 page the shadow MMU
		 * does not map is reached as hardware with nested paging does:
		 * L1's walk gave the L1 gpa, and kmmu's TDP MMU maps that.  A
		 * read's walk set no D bit in L1's tables: a write walks again.
		 */
		if (s->nested) {
			if (nw->valid && nw->l2_gfn == gfn && (!write || nw->write)) {
				w.gpa = (nw->l1_gpa & ~(gpa_t)(KMMU_PAGE_SIZE - 1)) |
					(gpa & (KMMU_PAGE_SIZE - 1));
			} else {
				root_pt = vcpu->shadow_root->spt;
				w.sppt = NULL;
				shadow = true;
			}
		}

		rcu_read_lock();
		res = kmmu_walk_tdp(&kmmu->fmt, root_pt, &w);
		rcu_read_unlock();
		/* The shadow MMU has no MMIO SPTEs: anything else is a miss. */
		if (shadow && res != KMMU_WALK_OK)
			return STOP_NESTED_WALK;
		if (res == KMMU_WALK_SPP_MISCONFIG) {
			run->internal.gpa = gpa;
			run->internal.spte = w.spte;
			run->internal.level = w.level;
			return STOP_INTERNAL;
		}
		if (res != KMMU_WALK_OK) {
			memset(fault, 0, sizeof(*fault));
			fault->addr = w.gpa;
			fault->gfn = w.gpa >> KMMU_PAGE_SHIFT;
			fault->as_id = s->as_id;
			fault->write = write;
			fault->present = w.present;
			fault->rsvd = res == KMMU_WALK_MISCONFIG;
			fault->spp = w.spp;
			fault->spp_miss = res == KMMU_WALK_SPP_MISS;
			return STOP_FAULT;
		}
		hva = os_guest_pfn_to_va(w.pfn);
		if (!hva) {
			run->internal.gpa = gpa;
			run->internal.spte = w.spte;
			run->internal.level = w.level;
			return STOP_INTERNAL;
		}
		/* D-bit logging into rings: the walk logs what it dirtied, as PML does. */
		if (w.dirtied && !shadow && vcpu->dirty_ring.size &&
		    kmmu->dirty_log_mode == KMMU_DIRTY_LOG_MODE_DBIT) {
			gfn_t l1_gfn = w.gpa >> KMMU_PAGE_SHIFT;
			struct kmmu_memory_slot *slot =
				kmmu_gfn_to_memslot(kmmu_memslots(kmmu, s->as_id), l1_gfn);

			if (slot)
				kmmu_vcpu_mark_page_dirty(vcpu, slot, l1_gfn);
		}
		e->gfn = gfn;
		e->hva = hva;
		e->as_id = s->as_id;
		e->writable = w.writable;
		e->spp_wmask = w.spp_wmask;
		if (s->nested && !shadow) {
			/* Only what L1's walk granted, and wrote D for. */
			if (!nw->write && !kmmu_mutant(NESTED_READ_WALK_WRITABLE)) {
				e->writable = false;
				e->spp_wmask = 0;
			}
			nw->valid = false;
		}
		os_race_point(kmmu, KMMU_RACE_GUEST_ACCESS, gfn);
	}

	p = (u64 *)(e->hva + (gpa & (KMMU_PAGE_SIZE - 1)));
	if (write)
		WRITE_ONCE(*p, wl_value(&s->wl, gpa));
	else
		run->read_sum += READ_ONCE(*p);
	return 0;
}

static int vcpu_guest_chunk(struct kmmu_vcpu *vcpu, struct kmmu_run *run,
			    struct kmmu_page_fault *fault)
{
	struct kmmu_wl_state *s = &vcpu->wls;
	int n, ret;

	for (n = 0; n < KMMU_GUEST_CHUNK; n++) {
		gpa_t gpa;
		bool write;

		if (unlikely(READ_ONCE(vcpu->requests))) {
			if (test_bit(KMMU_REQ_MMU_RELOAD, &vcpu->requests))
				return STOP_RELOAD;
			if (test_bit(KMMU_REQ_DIRTY_RING_FULL, &vcpu->requests))
				return STOP_RING_FULL;
			if (test_bit(KMMU_REQ_TLB_FLUSH, &vcpu->requests))
				vcpu_ack_tlb_flush(vcpu);
		}
		if (s->step == s->total)
			return STOP_DONE;
		if (run->max_accesses && run->accesses == run->max_accesses)
			return STOP_BUDGET;

		wl_access_at(s, s->step, &gpa, &write);
		ret = vcpu_access(vcpu, gpa, write, run, fault);
		if (ret)
			return ret;
		s->step++;
		s->refaults = 0;
		run->accesses++;
	}
	return STOP_CHUNK;
}

/* Replace roots that were invalidated, and load one where there is none. */
static int vcpu_load_root(struct kmmu_vcpu *vcpu)
{
	struct kmmu_mmu_page *root;
	int as = vcpu->wls.as_id;

	if (test_bit(KMMU_REQ_MMU_RELOAD, &vcpu->requests) &&
	    test_and_clear_bit(KMMU_REQ_MMU_RELOAD, &vcpu->requests)) {
		for (as = 0; as < KMMU_ADDRESS_SPACE_NUM; as++) {
			root = vcpu->root[as];
			if (root && READ_ONCE(root->invalid)) {
				vcpu->root[as] = NULL;
				kmmu_tdp_mmu_put_root(vcpu->kmmu, root);
			}
		}
		if (vcpu->shadow_root && READ_ONCE(vcpu->shadow_root->invalid))
			kmmu_shadow_put_root(vcpu);
		as = vcpu->wls.as_id;
		/* The old root's translations must not outlive it. */
		if (!kmmu_mutant(SKIP_FLUSH_ON_ROOT_LOAD))
			vcpu_flush_tlb(vcpu);
	}
	/* A nested vCPU runs on a shadow root too: L1's pages behind it are the TDP MMU's. */
	if (vcpu->wls.nested) {
		struct kmmu_shadow_page *old = vcpu->shadow_root;
		int ret = kmmu_shadow_load_root(vcpu);

		if (ret)
			return ret;
		if (vcpu->shadow_root != old) {
			vcpu_flush_tlb(vcpu);
			kmmu_vcpu_stat_inc(vcpu, KMMU_VCPU_STAT_ROOT_LOADS);
		}
	}
	if (vcpu->root[as])
		return 0;
	if (!kmmu_mutant(SKIP_FLUSH_ON_ROOT_LOAD))
		vcpu_flush_tlb(vcpu);
	kmmu_vcpu_stat_inc(vcpu, KMMU_VCPU_STAT_ROOT_LOADS);
	return kmmu_tdp_mmu_get_vcpu_root(vcpu, as);
}

/* Finish an access that exited as MMIO or SPP: userspace has done its part. */
static void vcpu_complete_mmio(struct kmmu_vcpu *vcpu, struct kmmu_run *run, u64 data)
{
	struct kmmu_wl_state *s = &vcpu->wls;

	if (!s->mmio_pending)
		return;
	/* The guest code finishes the access itself, with the data. */
	if (vcpu->hw) {
		os_hw_complete_mmio(vcpu, s->mmio_write ? 0 : data);
		s->mmio_pending = false;
		return;
	}
	if (!s->mmio_write)
		run->read_sum += data;
	s->mmio_pending = false;
	s->step++;
	run->accesses++;
}

/*
 * A nested access missed the TLB and the shadow root: walk L1's tables for
 * it, with kmmu->srcu held, outside guest mode, and map what they say.
 * Returns 0 to retry the access, 1 for an exit, or -errno.
 */
static int vcpu_nested_walk(struct kmmu_vcpu *vcpu, struct kmmu_run *run)
{
	struct kmmu *kmmu = vcpu->kmmu;
	struct kmmu_wl_state *s = &vcpu->wls;
	struct kmmu_nested_walk *nw = &vcpu->nested_walk;
	struct kmmu_guest_walk gw = {
		.root = s->l1_root,
		.format = kmmu->fmt.format,
		.ad = s->l1_ad,
	};
	unsigned long seq;
	bool write;
	int ret;

	wl_access_at(s, s->step, &gw.l2_gpa, &write);
	gw.access = write ? KMMU_ACC_WRITE : KMMU_ACC_READ;

	BUILD_BUG_ON(KMMU_GW_NOT_PRESENT != KMMU_NESTED_NOT_PRESENT ||
		     KMMU_GW_PERMISSION != KMMU_NESTED_PERMISSION ||
		     KMMU_GW_MISCONFIG != KMMU_NESTED_MISCONFIG ||
		     KMMU_GW_NO_MEMORY != KMMU_NESTED_NO_MEMORY);
	kmmu_vcpu_stat_inc(vcpu, KMMU_VCPU_STAT_NESTED_WALKS);
	/*
	 * A drop of the shadow pages after this makes the fault retry; one
	 * before it is seen with the L1 edits that preceded it (acquire:
	 * pairs with the release in shadow_retry_faults()).
	 */
	seq = smp_load_acquire(&kmmu->shadow_seq);
	/* SET_WORKLOAD checked the root and the range: -EINVAL is kmmu's bug. */
	ret = kmmu_guest_walk_vcpu(vcpu, s->as_id, &gw);
	if (WARN_ON_ONCE(ret))
		return ret;
	if (gw.fault == KMMU_GW_OK) {
		ret = kmmu_shadow_page_fault(vcpu, &gw, seq);
		if (ret == RET_PF_FIXED) {
			run->faults++;
			/* The access should go through now; if it keeps missing, kmmu is broken. */
			if (++s->refaults < KMMU_MAX_REFAULTS)
				return 0;
			run->exit_reason = KMMU_EXIT_INTERNAL_ERROR;
			run->internal.gpa = gw.l2_gpa;
			return 1;
		}
		if (ret == RET_PF_RETRY)
			return 0;
		if (ret == -ENOMEM)
			return ret;
		/*
		 * Not the shadow MMU's (or the host said no): through L1's
		 * gpa and the TDP MMU, whose fault gives the exit if any.
		 */
		nw->valid = true;
		nw->write = write;
		nw->l2_gfn = gw.l2_gpa >> KMMU_PAGE_SHIFT;
		nw->l1_gpa = gw.l1_gpa;
		return 0;
	}
	kmmu_vcpu_stat_inc(vcpu, KMMU_VCPU_STAT_NESTED_FAULTS);
	run->exit_reason = KMMU_EXIT_NESTED_FAULT;
	run->nested.gpa = gw.l2_gpa;
	run->nested.pte_gpa = gw.pte_gpa[gw.level];
	run->nested.pte = gw.fault == KMMU_GW_NO_MEMORY ? 0 : gw.pte[gw.level];
	run->nested.level = gw.level;
	run->nested.reason = gw.fault;
	run->nested.flags = write ? KMMU_ACCESS_WRITE : 0;
	return 1;
}

/* Turn the outcome of a fault into "go on" (0), an exit (1), or -errno. */
static int vcpu_handle_fault_result(struct kmmu_vcpu *vcpu, struct kmmu_run *run,
				    struct kmmu_page_fault *fault, int ret)
{
	struct kmmu_wl_state *s = &vcpu->wls;
	/* What the workload's values are made of: the L2 gpa when nested. */
	gpa_t wl_gpa = fault->addr;
	bool write;

	if (s->nested)
		wl_access_at(s, s->step, &wl_gpa, &write);

	/* A hardware vCPU's faults on its own code and tables are kmmu's. */
	if (!kmmu_gfn_private(vcpu->kmmu, fault->gfn))
		run->faults++;
	switch (ret) {
	case RET_PF_RETRY:
		/*
		 * Waiting out an invalidation or a memslot change, however
		 * long it takes: not a sign of a broken MMU.
		 */
		return 0;
	case RET_PF_FIXED:
	case RET_PF_SPURIOUS:
		/* The access should go through now; if it keeps faulting, kmmu is broken. */
		if (++s->refaults < KMMU_MAX_REFAULTS)
			return 0;
		run->exit_reason = KMMU_EXIT_INTERNAL_ERROR;
		run->internal.gpa = fault->addr;
		return 1;
	case RET_PF_EMULATE:
		run->exit_reason = KMMU_EXIT_MMIO;
		run->mmio.gpa = fault->addr;
		run->mmio.len = sizeof(u64);
		run->mmio.flags = fault->write ? KMMU_ACCESS_WRITE : 0;
		run->mmio.data = fault->write ? wl_value(&s->wl, wl_gpa) : 0;
		s->mmio_pending = true;
		s->mmio_write = fault->write;
		return 1;
	case RET_PF_SPP:
		/* Like an MMIO write: the next RUN goes on after it. */
		run->exit_reason = KMMU_EXIT_SPP;
		run->spp.gpa = fault->addr;
		run->spp.data = wl_value(&s->wl, wl_gpa);
		run->spp.len = sizeof(u64);
		run->spp.subpage = spp_subpage_of(fault->addr);
		s->mmio_pending = true;
		s->mmio_write = true;
		kmmu_vcpu_stat_inc(vcpu, KMMU_VCPU_STAT_SPP_EXITS);
		return 1;
	case -EINTR:
		run->exit_reason = KMMU_EXIT_INTR;
		return -EINTR;
	case -EFAULT:
	case -EHWPOISON:
		run->exit_reason = KMMU_EXIT_MEMORY_FAULT;
		run->memory_fault.gpa = fault->addr & ~(KMMU_PAGE_SIZE - 1);
		run->memory_fault.size = KMMU_PAGE_SIZE;
		run->memory_fault.flags = fault->write ? KMMU_ACCESS_WRITE : 0;
		run->memory_fault.error = ret;
		return 1;
	default:
		return ret < 0 ? ret : -EIO;
	}
}

/* Run guest chunks and faults until something needs userspace; 1 = exit. */
static int vcpu_run_loop(struct kmmu_vcpu *vcpu, struct kmmu_run *run)
{
	struct kmmu *kmmu = vcpu->kmmu;
	struct kmmu_page_fault fault;
	int stop, ret, idx;

	for (;;) {
		if (READ_ONCE(vcpu->kick) && xchg(&vcpu->kick, 0)) {
			run->exit_reason = KMMU_EXIT_INTR;
			return 1;
		}
		/* Like KVM: a signal ends RUN with -EINTR and an INTR exit. */
		if (os_signal_pending()) {
			run->exit_reason = KMMU_EXIT_INTR;
			return -EINTR;
		}
		/* Like KVM: no guest entry while the ring has no room left. */
		if (unlikely(vcpu->dirty_ring.size)) {
			if (test_bit(KMMU_REQ_DIRTY_RING_FULL, &vcpu->requests))
				clear_bit(KMMU_REQ_DIRTY_RING_FULL, &vcpu->requests);
			if (kmmu_dirty_ring_soft_full(vcpu)) {
				run->exit_reason = KMMU_EXIT_DIRTY_RING_FULL;
				return 1;
			}
		}
		ret = vcpu_load_root(vcpu);
		if (ret)
			return ret;

		if (vcpu->hw) {
			/*
			 * As KVM: no SRCU while the guest runs, which could be
			 * long between exits; a memslot update then waits for
			 * the faults in flight only, not for the guest to exit.
			 */
			stop = os_hw_vcpu_run(vcpu, run, &fault);
			idx = srcu_read_lock(&kmmu->srcu);
		} else {
			idx = srcu_read_lock(&kmmu->srcu);
			vcpu_enter_guest(vcpu);
			stop = vcpu_guest_chunk(vcpu, run, &fault);
			vcpu_exit_guest(vcpu);
		}
		ret = 0;
		if (stop == STOP_FAULT) {
			ret = kmmu_page_fault(vcpu, &fault);
			os_trace_fault(vcpu->id, fault.addr, fault.write, ret);
		} else if (stop == STOP_NESTED_WALK) {
			ret = vcpu_nested_walk(vcpu, run);
		}
		srcu_read_unlock(&kmmu->srcu, idx);

		switch (stop) {
		case STOP_FAULT:
			ret = vcpu_handle_fault_result(vcpu, run, &fault, ret);
			if (ret)
				return ret;
			break;
		case STOP_DONE:
			run->exit_reason = KMMU_EXIT_DONE;
			return 1;
		case STOP_BUDGET:
			run->exit_reason = KMMU_EXIT_BUDGET;
			return 1;
		case STOP_INTERNAL:
			run->exit_reason = KMMU_EXIT_INTERNAL_ERROR;
			return 1;
		case STOP_NESTED_WALK:
			if (ret)
				return ret;
			break;
		default:
			/* Only the host's errors are negative: -EBUSY, -ENOMEM. */
			if (stop < 0)
				return stop;
			break;
		}
		cond_resched();
	}
}

/**
 * kmmu_run_vcpu() - run the vCPU's workload until an exit
 * @vcpu: the vCPU
 * @run: in: max_accesses and, after an MMIO read exit, mmio.data; out: the exit
 *
 * Return:
 * * 0       - @run->exit_reason says why RUN returned
 * * -EINTR  - a signal is pending; @run holds a KMMU_EXIT_INTR exit
 * * -EINVAL - no workload was set
 * * -EBUSY  - another thread is running this vCPU (or setting its workload)
 * * -ENOMEM - no memory for page tables; RUN may be called again
 */
int kmmu_run_vcpu(struct kmmu_vcpu *vcpu, struct kmmu_run *run)
{
	u64 mmio_data = run->mmio.data;
	int ret;

	if (!kmmu_vcpu_get_exclusive(vcpu))
		return -EBUSY;
	if (!vcpu->wls.valid) {
		kmmu_vcpu_put_exclusive(vcpu);
		return -EINVAL;
	}

	run->exit_reason = 0;
	run->accesses = 0;
	run->read_sum = 0;
	run->faults = 0;
	memset(run->exit_pad, 0, sizeof(run->exit_pad));
	vcpu_complete_mmio(vcpu, run, mmio_data);

	ret = vcpu_run_loop(vcpu, run);
	kmmu_vcpu_stat_inc(vcpu, KMMU_VCPU_STAT_EXITS);
	kmmu_vcpu_put_exclusive(vcpu);
	return ret == 1 ? 0 : ret;
}

/* ---- hardware vCPUs (KMMU_CAP_HW_VCPU) ---- */

/*
 * Could the VM turn hardware vCPUs on now?  Its SPTEs must be NPT's, which
 * the CPU walks, and D-bit logging into rings is out: the software walker
 * logs what it dirties as PML would, and AMD's CPUs have no such log.
 */
bool kmmu_hw_vcpu_possible(struct kmmu *kmmu)
{
	return !os_hw_supported() && kmmu->fmt.format == KMMU_SPTE_FORMAT_NPT &&
	       !(kmmu->dirty_log_mode == KMMU_DIRTY_LOG_MODE_DBIT && kmmu->dirty_ring_size);
}

/**
 * kmmu_hw_vcpu_enable() - KMMU_CAP_HW_VCPU
 * @kmmu: the VM, slots_lock held
 * @arg: args[0] of the enable, which must be 1
 *
 * Maps the private slot (the guest's code and page tables, made by the
 * host) in every address space; from then on new vCPUs are hardware
 * ones.  Errors are listed in the uapi header; on any, nothing changed.
 */
int kmmu_hw_vcpu_enable(struct kmmu *kmmu, u64 arg)
{
	struct kmmu_userspace_memory_region mem = {
		.guest_phys_addr = KMMU_HW_SLOT_GPA,
		.memory_size = KMMU_HW_SLOT_SIZE,
	};
	unsigned long hva;
	int as, ret;

	if (arg != 1)
		return -EINVAL;
	ret = os_hw_supported();
	if (ret)
		return ret;
	if (kmmu->fmt.format != KMMU_SPTE_FORMAT_NPT)
		return -EINVAL;
	if (kmmu->dirty_log_mode == KMMU_DIRTY_LOG_MODE_DBIT && kmmu->dirty_ring_size)
		return -EOPNOTSUPP;

	mutex_lock(&kmmu->lock);
	if (kmmu->hw_vcpu || atomic_read(&kmmu->online_vcpus)) {
		ret = -EBUSY;
		goto out;
	}
	ret = os_hw_vm_enable(kmmu, &hva);
	if (ret)
		goto out;
	mem.userspace_addr = hva;
	/* Left out of the statistics from the first fault on. */
	kmmu->hw_gfn = KMMU_HW_SLOT_GPA >> KMMU_PAGE_SHIFT;
	kmmu->hw_npages = KMMU_HW_SLOT_SIZE >> KMMU_PAGE_SHIFT;
	for (as = 0; as < KMMU_ADDRESS_SPACE_NUM; as++) {
		mem.slot = (as << 16) | KMMU_HW_MEM_SLOT;
		ret = __kmmu_set_memory_region(kmmu, &mem);
		if (ret)
			break;
	}
	if (ret) {
		mem.memory_size = 0;
		while (as-- > 0) {
			mem.slot = (as << 16) | KMMU_HW_MEM_SLOT;
			__kmmu_set_memory_region(kmmu, &mem);
		}
		kmmu->hw_gfn = 0;
		kmmu->hw_npages = 0;
		os_hw_vm_disable(kmmu);
		goto out;
	}
	kmmu->hw_vcpu = true;
out:
	mutex_unlock(&kmmu->lock);
	return ret;
}

/**
 * kmmu_vcpu_hw_enter() - a hardware vCPU enters guest mode
 * @vcpu: the vCPU
 * @cpu: the CPU it is about to run on
 * @flush: out: its TLB entries must go at this VMRUN
 *
 * Called by the host with IRQs off, right before VMRUN, in KVM's order:
 * the mode first, then the requests.  A requester that posts after the
 * check sees IN_GUEST_MODE and kicks the CPU with an IPI, which IRQs off
 * (and GIF=0) hold until VMRUN, where it exits the guest at once.
 *
 * Return: 0 to run the guest, or the STOP_* that keeps it out (the vCPU
 * is then outside guest mode again).
 */
int kmmu_vcpu_hw_enter(struct kmmu_vcpu *vcpu, int cpu, bool *flush)
{
	WRITE_ONCE(vcpu->cpu, cpu);
	/* Pairs with the barrier in kmmu_make_all_vcpus_request() and kmmu_kick_vcpu(). */
	smp_store_mb(vcpu->mode, IN_GUEST_MODE);
	if (READ_ONCE(vcpu->kick) || os_signal_pending() || os_need_resched()) {
		kmmu_vcpu_hw_exit(vcpu);
		return STOP_CHUNK;
	}
	if (unlikely(READ_ONCE(vcpu->requests))) {
		if (test_bit(KMMU_REQ_MMU_RELOAD, &vcpu->requests)) {
			kmmu_vcpu_hw_exit(vcpu);
			return STOP_RELOAD;
		}
		if (test_bit(KMMU_REQ_DIRTY_RING_FULL, &vcpu->requests)) {
			kmmu_vcpu_hw_exit(vcpu);
			return STOP_RING_FULL;
		}
		/*
		 * The CPU drops the entries at this VMRUN, before the guest
		 * runs; until then nothing uses them: acknowledge now.
		 */
		if (test_bit(KMMU_REQ_TLB_FLUSH, &vcpu->requests)) {
			*flush = true;
			kmmu_vcpu_stat_inc(vcpu, KMMU_VCPU_STAT_TLB_FLUSHES);
			clear_bit_unlock(KMMU_REQ_TLB_FLUSH, &vcpu->requests);
		}
	}
	return 0;
}

/* After #VMEXIT, IRQs still off. */
void kmmu_vcpu_hw_exit(struct kmmu_vcpu *vcpu)
{
	/* Release: every guest access is done before a requester stops waiting. */
	smp_store_release(&vcpu->mode, OUTSIDE_GUEST_MODE);
}
