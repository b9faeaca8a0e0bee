/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The VM and vCPU objects shared by every part of the core, and the
 * VM-wide operations (references, remote TLB flushes, invalidation
 * bookkeeping) that the rest builds on.
 */
#ifndef KMMU_KMMU_H
#define KMMU_KMMU_H

#include "os.h"
#include "rmap.h"
#include "spte.h"

#define KMMU_MAX_VCPUS			64
#define KMMU_ADDRESS_SPACE_NUM		2
#define KMMU_USER_MEM_SLOTS		512
/*
 * The hardware vCPU's guest code and page tables
 * (KMMU_CAP_HW_VCPU): a slot of kmmu's own in each address space, which
 * userspace cannot name, and which statistics, dirty logging and aging
 * leave out.
 */
#define KMMU_HW_MEM_SLOT		KMMU_USER_MEM_SLOTS
#define KMMU_MEM_SLOTS_NUM		(KMMU_USER_MEM_SLOTS + 1)
#define KMMU_PT_CACHE_MIN		(KMMU_MAX_LEVEL + 1)
#define KMMU_PT_CACHE_SIZE		16

struct kmmu_memslots;

/* Per-VM counters; sharded so that faulting vCPUs do not bounce one line. */
enum kmmu_stat {
	KMMU_STAT_PAGES_4K,
	KMMU_STAT_PAGES_2M,
	KMMU_STAT_PAGES_1G,
	KMMU_STAT_PT_PAGES,
	KMMU_STAT_FAULTS,		/* the five fault counts: the vCPUs' sums */
	KMMU_STAT_FAST_FAULTS,
	KMMU_STAT_SPURIOUS_FAULTS,
	KMMU_STAT_FAULT_RETRIES,
	KMMU_STAT_MMIO_FAULTS,
	KMMU_STAT_TLB_FLUSHES,
	KMMU_STAT_ZAPPED_LEAFS,
	KMMU_STAT_INVALIDATIONS,
	KMMU_STAT_DIRTY_PAGES,
	KMMU_STAT_SPLITS,
	KMMU_STAT_RECOVERIES,
	KMMU_STAT_COLLAPSIBLE_ZAPS,
	KMMU_STAT_AGING_PASSES,
	KMMU_STAT_YOUNG,
	KMMU_STAT_OLD,
	KMMU_STAT_SHADOW_PAGES,
	KMMU_STAT_SHADOW_LEAVES,
	KMMU_STAT_SHADOW_FAULTS,
	KMMU_STAT_SHADOW_TRACKED,
	KMMU_STAT_SHADOW_UNPROTECTS,
	KMMU_NR_STATS,
};

#define KMMU_STAT_SHARDS	8

struct kmmu_stat_shard {
	atomic64_t v[KMMU_NR_STATS];
} __aligned(64);

struct kmmu {
	refcount_t users;		/* fds: the VM's and one per vCPU */
	struct kmmu_spte_fmt fmt;	/* fixed at creation */
	int max_level;			/* largest mapping level allowed */

	/*
	 * Faults, and anything that only changes SPTEs with cmpxchg, take it
	 * for read; zaps that free page tables take it for write.
	 */
	rwlock_t mmu_lock;

	/*
	 * Roots of every address space, valid and invalid; see tdp_mmu.c.
	 * Changed under tdp_mmu_pages_lock, walked under RCU.
	 */
	struct list_head tdp_mmu_roots;
	spinlock_t tdp_mmu_pages_lock;

	/* Memslots, read under srcu, replaced under slots_lock. */
	struct mutex slots_lock;
	struct srcu_struct srcu;
	struct kmmu_memslots __rcu *memslots[KMMU_ADDRESS_SPACE_NUM];
	u64 slots_generation;		/* bumped with every memslot change */

	/* Invalidation in progress: faults racing with it must retry. */
	unsigned long mmu_invalidate_seq;
	long mmu_invalidate_in_progress;
	unsigned long mmu_invalidate_range_start;	/* hva */
	unsigned long mmu_invalidate_range_end;

	struct mutex lock;		/* vCPU creation */
	struct kmmu_vcpu __rcu *vcpus[KMMU_MAX_VCPUS];
	atomic_t online_vcpus;

	/* Set with KMMU_ENABLE_CAP. */
	bool manual_dirty_log_protect;	/* GET does not clear; CLEAR_DIRTY_LOG does */
	bool dirty_log_initially_set;	/* logging starts all dirty, protects on CLEAR */
	u32 dirty_log_mode;		/* KMMU_DIRTY_LOG_MODE_* */
	u64 eager_split_chunk;		/* bytes split per batch; 0 = split on fault */
	bool lockless_aging;		/* aging walks under RCU only */
	/*
	 * KMMU_CAP_HW_VCPU: vCPUs made from now on run on the CPU.  Set once,
	 * under slots_lock, before any vCPU exists; then read-only.  The
	 * private slot's frames are [hw_gfn, hw_gfn + hw_npages).
	 */
	bool hw_vcpu;
	gfn_t hw_gfn;
	u64 hw_npages;
	u64 hw_gpa_limit;		/* what the guest can address: 2^MAXPHYADDR */
	void *hw;			/* the host's per-VM hardware data */
	/*
	 * KMMU_CAP_SPP: set once, under slots_lock, then read-only.  The SPP
	 * tables, one per address space, only grow (under mmu_lock held for
	 * write) and are freed with the VM, so vCPUs read them with no lock.
	 */
	bool spp_enabled;
	u64 *sppt_root[KMMU_ADDRESS_SPACE_NUM];
	u32 dirty_ring_size;		/* entries per vCPU ring; 0 = bitmaps */
	int nr_logging_slots;		/* under slots_lock */

	/*
	 * The shadow MMU (shadow_mmu.c), set up when the first nested root is
	 * loaded: then every memslot has rmaps.  The hash and the list change
	 * under mmu_lock held for write; shadow_seq moves when every shadow
	 * page is dropped, so that a fault that walked L1's tables before
	 * retries.
	 */
	bool shadow_enabled;
	struct list_head *shadow_hash;
	struct list_head shadow_pages;
	unsigned long shadow_seq;

	struct kmmu_stat_shard stats[KMMU_STAT_SHARDS];
	int owner_pid;			/* of the process that created it, for the stats id */
	/* The longest mmu_lock write hold so far, and when the current one began. */
	atomic64_t max_write_hold_ns;
	u64 write_locked_at;		/* under mmu_lock for write */

	void *host;			/* the host's per-VM data (notifier, mm) */
};

/* vCPU modes, as KVM names them: requests need an ack only IN_GUEST_MODE. */
#define OUTSIDE_GUEST_MODE	0
#define IN_GUEST_MODE		1

/* Requests, as bit numbers in vcpu->requests. */
#define KMMU_REQ_TLB_FLUSH	0
#define KMMU_REQ_MMU_RELOAD	1
#define KMMU_REQ_DIRTY_RING_FULL 2	/* the vCPU's own: leave RUN before the next access */

#define KMMU_TLB_ENTRIES	512

/*
 * One soft-TLB entry: a 4 KiB translation with what the walk granted.
 * Tagged with the address space, as hardware tags entries with the root
 * they came from, so switching roots needs no flush.
 */
struct kmmu_tlb_entry {
	gfn_t gfn;			/* tag; KMMU_TLB_INVALID when empty */
	u8 *hva;			/* where the guest page's data is */
	u8 as_id;			/* tag: address space of the walk */
	bool writable;			/* write allowed without a walk */
	u32 spp_wmask;			/* SPP leaf: sub-pages writable without a walk */
};

#define KMMU_TLB_INVALID	(~0ULL)

/* Where a workload stands, so RUN can stop at an exit and go on later. */
struct kmmu_wl_state {
	struct kmmu_workload wl;
	bool valid;
	int as_id;			/* address space the accesses go to */
	u64 per_pass;			/* accesses in one pass */
	u64 total;			/* accesses in the whole workload */
	u64 step;			/* accesses done so far */
	u64 refaults;			/* faults taken by the access at @step */
	bool mmio_pending;		/* the access at @step exited as MMIO (or SPP, a write) */
	bool mmio_write;
	/* KMMU_WL_NESTED: L1's root and whether its EPTP turns A/D on. */
	bool nested;
	bool l1_ad;
	gpa_t l1_root;
};

/*
 * A nested vCPU's last walk of L1's tables, kept until it fills the TLB:
 * like the CPU's, it goes with a TLB flush.
 */
struct kmmu_nested_walk {
	bool valid;
	bool write;			/* made for a write: L1's D bits are set */
	gfn_t l2_gfn;
	gpa_t l1_gpa;
};

struct kmmu_mmu_page;
struct kmmu_shadow_page;

/* Per-vCPU counters, written by the vCPU's own thread only. */
enum kmmu_vcpu_stat {
	KMMU_VCPU_STAT_FAULTS,
	KMMU_VCPU_STAT_FAST_FAULTS,
	KMMU_VCPU_STAT_SPURIOUS_FAULTS,
	KMMU_VCPU_STAT_FAULT_RETRIES,
	KMMU_VCPU_STAT_MMIO_FAULTS,
	KMMU_VCPU_STAT_TLB_FLUSHES,	/* flush requests it acted on */
	KMMU_VCPU_STAT_ROOT_LOADS,
	KMMU_VCPU_STAT_EXITS,		/* RUNs that returned */
	KMMU_VCPU_STAT_HW_NPF_EXITS,	/* hardware vCPU: #VMEXITs for #NPF */
	KMMU_VCPU_STAT_HW_INTR_EXITS,	/* ... for interrupts (kicks among them) */
	KMMU_VCPU_STAT_HW_VMMCALL_EXITS, /* ... for the guest's reports */
	KMMU_VCPU_STAT_SPP_EXITS,	/* writes a sub-page permission refused */
	KMMU_VCPU_STAT_SPP_MISSES,	/* SPP table entries built on a miss */
	KMMU_VCPU_STAT_NESTED_WALKS,	/* walks of L1's tables */
	KMMU_VCPU_STAT_NESTED_FAULTS,	/* of those, KMMU_EXIT_NESTED_FAULT */
	KMMU_VCPU_NR_STATS,
};

/*
 * A vCPU's dirty ring.  @dirty_index is written by the vCPU's thread only
 * (the push), @reset_index by KMMU_RESET_DIRTY_RINGS only, under
 * slots_lock; each reads the other's with acquire.
 */
struct kmmu_dirty_ring {
	u32 dirty_index;		/* next entry to push */
	u32 reset_index;		/* next entry to reset */
	u32 size;			/* entries, a power of two; 0 = no ring */
	u32 soft_limit;			/* entries in use at which the vCPU exits */
	struct kmmu_dirty_gfn *gfns;
};

struct kmmu_vcpu {
	struct kmmu *kmmu;
	int id;
	int mode;			/* OUTSIDE_GUEST_MODE / IN_GUEST_MODE */
	unsigned long requests;
	int kick;			/* KMMU_KICK: leave RUN at the next check */
	void *hw;			/* the host's hardware vCPU, or NULL: software */
	int cpu;			/* where a hardware vCPU is IN_GUEST_MODE */
	atomic_t running;		/* one RUN at a time */

	struct kmmu_mmu_page *root[KMMU_ADDRESS_SPACE_NUM];

	/* Page tables and their descriptions, allocated before mmu_lock. */
	int nr_pt_cache;
	u64 *pt_cache[KMMU_PT_CACHE_SIZE];
	int nr_sp_cache;
	struct kmmu_mmu_page *sp_cache[KMMU_PT_CACHE_SIZE];

	/* Nested workloads: the shadow root, and what a shadow fault needs. */
	struct kmmu_shadow_page *shadow_root;
	int nr_shadow_cache;
	struct kmmu_shadow_page *shadow_cache[KMMU_MAX_LEVEL];
	struct kmmu_rmap_cache rmap_cache;

	struct kmmu_tlb_entry tlb[KMMU_TLB_ENTRIES];
	struct kmmu_nested_walk nested_walk;
	struct kmmu_wl_state wls;
	struct kmmu_dirty_ring dirty_ring;
	u64 stats[KMMU_VCPU_NR_STATS];
};

/* A frame of the hardware vCPU's private slot (never for a VM without one). */
static inline bool kmmu_gfn_private(const struct kmmu *kmmu, gfn_t gfn)
{
	return gfn - kmmu->hw_gfn < kmmu->hw_npages;
}

/* ---- statistics ---- */

static inline void kmmu_stat_add(struct kmmu *kmmu, enum kmmu_stat s, s64 n)
{
	atomic64_add(n, &kmmu->stats[os_stat_shard() % KMMU_STAT_SHARDS].v[s]);
}

static inline void kmmu_stat_inc(struct kmmu *kmmu, enum kmmu_stat s)
{
	kmmu_stat_add(kmmu, s, 1);
}

u64 kmmu_stat_read(struct kmmu *kmmu, enum kmmu_stat s);

/* Only the vCPU's thread writes; the stats fd reads at any time. */
static inline void kmmu_vcpu_stat_inc(struct kmmu_vcpu *vcpu, enum kmmu_vcpu_stat s)
{
	WRITE_ONCE(vcpu->stats[s], vcpu->stats[s] + 1);
}

/*
 * What a fault came to, counted for its vCPU, and so for its VM, whose
 * count is its vCPUs' sum (kmmu_stat_read()); a fault on the hardware
 * vCPU's private slot is kmmu's own business and is not counted.
 */
#define kmmu_fault_stat_inc(vcpu, fault, name)					\
	do {									\
		if (!kmmu_gfn_private((vcpu)->kmmu, (fault)->gfn))		\
			kmmu_vcpu_stat_inc(vcpu, KMMU_VCPU_STAT_##name);	\
	} while (0)

/* ---- mmu_lock for write, timed ---- */

/*
 * Every write hold of mmu_lock goes through these, so the longest one is
 * known (KMMU_GET_STATS, the stats fd): a hold stalls every fault and
 * every notifier, and the MMU is built so that none is long.
 */
static inline void kmmu_mmu_write_lock(struct kmmu *kmmu)
{
	write_lock(&kmmu->mmu_lock);
	kmmu->write_locked_at = os_now_ns();
}

static inline void kmmu_mmu_note_write_hold(struct kmmu *kmmu)
{
	s64 held = os_now_ns() - kmmu->write_locked_at;
	s64 max = atomic64_read(&kmmu->max_write_hold_ns);

	while (held > max && !atomic64_try_cmpxchg(&kmmu->max_write_hold_ns, &max, held))
		;
}

static inline void kmmu_mmu_write_unlock(struct kmmu *kmmu)
{
	kmmu_mmu_note_write_hold(kmmu);
	write_unlock(&kmmu->mmu_lock);
}

/* Let waiters have mmu_lock (held for write) for a moment. */
static inline void kmmu_mmu_cond_resched_write(struct kmmu *kmmu)
{
	kmmu_mmu_note_write_hold(kmmu);
	cond_resched_rwlock_write(&kmmu->mmu_lock);
	kmmu->write_locked_at = os_now_ns();
}

/*
 * Wait until every holder of mmu_lock for read that came before has left.
 * A fault logs a page and installs its writable SPTE in one read section:
 * after this, a page taken from the log has its SPTE there to protect.
 */
static inline void kmmu_mmu_lock_sync(struct kmmu *kmmu)
{
	kmmu_mmu_write_lock(kmmu);
	kmmu_mmu_write_unlock(kmmu);
}

/* ---- VM lifetime ---- */

struct kmmu *kmmu_create_vm(const struct kmmu_vm_config *cfg, u32 host_format, int *err);
void kmmu_get(struct kmmu *kmmu);
void kmmu_put(struct kmmu *kmmu);

/* ---- requests ---- */

void kmmu_flush_remote_tlbs(struct kmmu *kmmu);
void kmmu_make_all_vcpus_request(struct kmmu *kmmu, int req);
bool kmmu_check_request(struct kmmu_vcpu *vcpu, int req);

/* ---- invalidation from the host (mmu_notifier or the user host's hooks) ---- */

void kmmu_invalidate_range_start(struct kmmu *kmmu, unsigned long start, unsigned long end,
				 bool may_block);
void kmmu_invalidate_range_end(struct kmmu *kmmu, unsigned long start, unsigned long end);
bool kmmu_age_hva_range(struct kmmu *kmmu, unsigned long start, unsigned long end,
			bool clear, bool flush);
void kmmu_zap_all(struct kmmu *kmmu);
u32 kmmu_age_gfn_range_ioctl(struct kmmu *kmmu, int as_id, gfn_t start, gfn_t end, u32 flags,
			     u64 *young, u64 *old);
void kmmu_release_all(struct kmmu *kmmu);

static inline bool kmmu_invalidate_retry_hva(struct kmmu *kmmu, unsigned long mmu_seq,
					     unsigned long hva)
{
	lockdep_assert_held(&kmmu->mmu_lock);
	if (unlikely(kmmu->mmu_invalidate_in_progress) &&
	    hva >= kmmu->mmu_invalidate_range_start &&
	    hva < kmmu->mmu_invalidate_range_end && !kmmu_mutant(DROP_IN_PROGRESS_CHECK))
		return true;
	return READ_ONCE(kmmu->mmu_invalidate_seq) != mmu_seq && !kmmu_mutant(SKIP_INVAL_RETRY);
}

#endif /* KMMU_KMMU_H */
