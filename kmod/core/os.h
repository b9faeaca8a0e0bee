/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The one door between the MMU core and its host.
 *
 * The core is written against the kernel's own vocabulary (u64, READ_ONCE,
 * rwlock_t, rcu_read_lock, set_bit, ...).  In the kernel those come from
 * <linux/...> through os_linux.h; in userspace os_user.h provides them over
 * liburcu, pthreads and the compiler's atomics, the way the kernel's
 * tools/testing/radix-tree builds lib/xarray.c.  Everything else the core
 * needs from its host is declared below and implemented once per host.
 */
#ifndef KMMU_OS_H
#define KMMU_OS_H

#ifdef __KERNEL__
#include "../linux/os_linux.h"
#else
#include "../user/os_user.h"
#endif

#include "../include/uapi/linux/kmmu.h"

struct kmmu;
struct kmmu_vcpu;

typedef u64 gfn_t;
typedef u64 gpa_t;
typedef u64 kmmu_pfn_t;

#define KMMU_PAGE_SHIFT		12
#define KMMU_PAGE_SIZE		(1ULL << KMMU_PAGE_SHIFT)

/* ---- memory for the core's own objects ---- */

/* Zeroed, may sleep; NULL on failure (the user host can inject failures). */
void *os_zalloc(size_t size);
void os_free(void *p);

/*
 * Memory userspace maps (the dirty rings): zeroed, page aligned, @size a
 * multiple of the page size.  NULL on failure.
 */
void *os_ring_alloc(size_t size);
void os_ring_free(void *p);

/*
 * Page-table pages.  os_pt_alloc() returns one zeroed, 4 KiB aligned page
 * whose pfn the hardware walker can follow; os_pt_set_owner() records the
 * struct that describes it so the core can go from an SPTE back to its page.
 */
u64 *os_pt_alloc(void);
void os_pt_free(u64 *pt);
kmmu_pfn_t os_pt_to_pfn(u64 *pt);
u64 *os_pfn_to_pt(kmmu_pfn_t pfn);
void os_pt_set_owner(u64 *pt, void *owner);
void *os_pt_owner(u64 *pt);

/* ---- host pages behind guest memory ---- */

/* One request for the host page behind a userspace address. */
struct os_pfn_req {
	unsigned long hva;	/* in */
	bool write;		/* in: the access that faulted is a write */
	bool slot_writable;	/* in: the memslot allows writes */
	kmmu_pfn_t pfn;		/* out */
	bool writable;		/* out: the host maps it writable for us */
	bool refcounted;	/* out: a reference was taken and must be dropped */
	void *host;		/* out: the host's own note, for os_release_pfn() */
};

/*
 * Look up (and fault in) the page at @req->hva.  Return 0, -EFAULT when there
 * is no usable mapping, -EINTR when a signal is pending, -EHWPOISON, or
 * -EAGAIN when the fault should simply be taken again.
 */
int os_hva_to_pfn(struct kmmu *kmmu, struct os_pfn_req *req);
/*
 * Drop what os_hva_to_pfn() took, marking the page dirty when @dirty.  A
 * page is marked dirty only here, with mmu_lock held: a page's flags must
 * not change where writeback could race (see tdp_mmu_map_handle_target_level()).
 */
void os_release_pfn(struct os_pfn_req *req, bool dirty);
/* Largest level at which the host maps @hva (1 = 4K, 2 = 2M, 3 = 1G). */
int os_host_mapping_level(struct kmmu *kmmu, unsigned long hva);
/*
 * Called only for refcounted pages, with mmu_lock held, while an SPTE maps
 * them: the host's invalidation cannot have finished, so the page is alive.
 */
void os_mark_pfn_accessed(kmmu_pfn_t pfn);
/* The address through which the vCPU reads and writes guest data, or NULL. */
void *os_guest_pfn_to_va(kmmu_pfn_t pfn);

/* ---- userspace memory named by ioctl arguments ---- */

/* Could [uaddr, uaddr + size) be userspace memory of the caller at all? */
bool os_user_range_ok(unsigned long uaddr, u64 size);
/* Return 0, or -EFAULT when the range cannot be read or written. */
int os_copy_from_user(void *dst, unsigned long uaddr, size_t size);
int os_copy_to_user(unsigned long uaddr, const void *src, size_t size);
/*
 * @longs words that other threads may set bits in meanwhile (a dirty log),
 * each bit copied once, as it was before or after it was set; @buf has room
 * for as many words, which the copy may use.
 */
int os_copy_bitmap_to_user(unsigned long uaddr, const unsigned long *bitmap, unsigned long *buf,
			   size_t longs);
/*
 * One aligned u64 of the caller's memory, as the CPU reads and locks it
 * (L1's own page tables, read by the shadow MMU's walker); may sleep to
 * fault the page in.  Return 0, or -EFAULT; the exchange returns -EAGAIN
 * when *@uaddr was not @old.
 */
int os_read_user_u64(unsigned long uaddr, u64 *val);
int os_cmpxchg_user_u64(unsigned long uaddr, u64 old, u64 new);

/* ---- the vCPU's thread ---- */

/* Enter and leave "guest mode": no sleeping in between (preemption off). */
void os_guest_enter(struct kmmu_vcpu *vcpu);
void os_guest_exit(struct kmmu_vcpu *vcpu);
/* A signal is pending for the calling thread: RUN must return. */
bool os_signal_pending(void);
/* The calling thread should give the CPU up (checked with IRQs off). */
bool os_need_resched(void);

/*
 * ---- hardware vCPUs (KMMU_CAP_HW_VCPU) ----
 *
 * The Linux host runs them on AMD SVM (linux/hw_vcpu.c); the user host has
 * none, and os_hw_supported() says -EOPNOTSUPP there.
 */

/* 0 when this host can run hardware vCPUs, else -errno (and why, logged once). */
int os_hw_supported(void);
/*
 * Make the VM's private slot memory (the guest's code and page tables) in
 * the owner's address space; its address in @hva.
 */
int os_hw_vm_enable(struct kmmu *kmmu, unsigned long *hva);
/* Undo os_hw_vm_enable(); also when the VM goes away. */
void os_hw_vm_disable(struct kmmu *kmmu);
/* Give @vcpu its hardware side (vcpu->hw), or -errno. */
int os_hw_vcpu_create(struct kmmu_vcpu *vcpu);
void os_hw_vcpu_destroy(struct kmmu_vcpu *vcpu);
/* A new workload: the guest starts over (vcpu->wls is set). */
void os_hw_set_workload(struct kmmu_vcpu *vcpu);
/* The access that exited as MMIO is done; @data is what a read loads. */
void os_hw_complete_mmio(struct kmmu_vcpu *vcpu, u64 data);
/*
 * Enter the guest once (kmmu_vcpu_hw_enter() with IRQs off, VMRUN,
 * kmmu_vcpu_hw_exit()) and say why it stopped: a STOP_*, with @fault or
 * @run->internal filled for STOP_FAULT and STOP_INTERNAL, or -errno.
 */
struct kmmu_run;
struct kmmu_page_fault;
int os_hw_vcpu_run(struct kmmu_vcpu *vcpu, struct kmmu_run *run, struct kmmu_page_fault *fault);
/*
 * Make @cpu leave guest mode soon (an IPI).  False only when a test asked
 * for kicks to be left out (hw_test_no_kick): the requester must then not
 * wait for an acknowledgement that may never come.
 */
bool os_hw_kick_cpu(int cpu);

/*
 * Tracing (os_linux.h, os_user.h): os_trace_fault(), os_trace_spte_changed(),
 * os_trace_zap(), os_trace_flush() and os_trace_age(), tracepoints in the
 * Linux host, nothing in the user host.
 */

/* Monotonic time in nanoseconds. */
u64 os_now_ns(void);
/* The calling process's id, as the host shows it. */
int os_current_pid(void);

/* A small number, stable for a while, that spreads counters over cache lines. */
unsigned int os_stat_shard(void);

/* ---- race points ---- */

/*
 * Places where two paths of the core can interleave in a way that matters:
 * a test of the user host may run something else right there, so that the
 * race happens every time instead of once in a while.  The Linux host
 * compiles them to nothing.
 */
enum kmmu_race_point {
	KMMU_RACE_FAULTIN_DONE,		/* a fault holds its host page, mmu_lock not taken */
	KMMU_RACE_LEAF_INSTALLED,	/* a fault installed its leaf, mmu_lock held for read */
	KMMU_RACE_FAULT_RETRY,		/* a fault gave up under mmu_lock, to be taken again */
	KMMU_RACE_FAST_PF_READ,		/* the fast path read a leaf it may change (RCU) */
	KMMU_RACE_ROOT_ZAP_STEP,	/* an invalidated root is being emptied */
	KMMU_RACE_ZAP_FROZEN,		/* an SPTE frozen to be zapped, TLBs not flushed yet */
	KMMU_RACE_AGE_READ,		/* an aging pass read a young leaf it will age */
	KMMU_RACE_RMAP_AGE_READ,	/* aging read the SPTE of a one-SPTE rmap, no lock */
	KMMU_RACE_SLOTS_PUBLISHED,	/* new memslots are out, the old still in use */
	KMMU_RACE_GUEST_ACCESS,		/* in guest mode, a walk filled the TLB; the access next */
	KMMU_RACE_REQUEST_WAIT,		/* a request waits for a vCPU in guest mode */
	KMMU_NR_RACE_POINTS,
};

#ifdef __KERNEL__
static inline void os_race_point(struct kmmu *kmmu, enum kmmu_race_point p, gfn_t gfn)
{
}
#else
/* Non-zero while a test's hook is set: an unarmed race point is one load. */
extern int os_race_armed;
void os_race_point_hook(struct kmmu *kmmu, enum kmmu_race_point p, gfn_t gfn);

static inline void os_race_point(struct kmmu *kmmu, enum kmmu_race_point p, gfn_t gfn)
{
	if (__atomic_load_n(&os_race_armed, __ATOMIC_RELAXED))
		os_race_point_hook(kmmu, p, gfn);
}
#endif

/* ---- mutation testing ---- */

/*
 * Deliberate defects, for make mutation-test: a build of the core with
 * -DKMMU_MUTANT=KMMU_MUTANT_<NAME> has the one defect named, and the
 * suites must fail on it (selftests/mutation/mutants.txt says which test
 * kills each).  In every other build kmmu_mutant() is false and the code
 * it guards is gone.
 */
enum kmmu_mutant {
	KMMU_MUTANT_NONE,
	KMMU_MUTANT_SKIP_INVAL_RETRY,		/* a fault ignores a finished invalidation */
	KMMU_MUTANT_DROP_IN_PROGRESS_CHECK,	/* ... and one still running */
	KMMU_MUTANT_SKIP_FLUSH_AFTER_ZAP,	/* an invalidation zaps without a TLB flush */
	KMMU_MUTANT_SKIP_KICK_ACK_WAIT,		/* requests do not wait for vCPUs in guest mode */
	KMMU_MUTANT_SKIP_FLUSH_ON_ROOT_LOAD,	/* a vCPU keeps its TLB across a new root */
	KMMU_MUTANT_MARK_DIRTY_BEFORE_INSTALL,	/* the fast path logs before its cmpxchg */
	KMMU_MUTANT_CLEAR_A_WITHOUT_D,		/* aging writes back a stale SPTE */
	KMMU_MUTANT_FORGET_REFCOUNTED_CHECK,	/* a leaf zap marks a page with no struct page */
	KMMU_MUTANT_MARK_ACCESSED_ON_ROOT_ZAP,	/* tearing down a table marks its pages */
	KMMU_MUTANT_NO_ACCESSED_ON_LEAF_ZAP,	/* a leaf zap tells the host nothing */
	KMMU_MUTANT_FREE_TABLE_AT_ONCE,		/* a removed table is freed without RCU */
	KMMU_MUTANT_IGNORE_INVALID_ROOT,	/* a fault installs into an invalidated root */
	KMMU_MUTANT_NO_HOST_DIRTY,		/* a fault never marks its page dirty */
	KMMU_MUTANT_NO_FLUSH_AFTER_GET,		/* GET_DIRTY_LOG protects without a flush */
	KMMU_MUTANT_FAST_PF_NO_LOG,		/* the fast path makes a page writable unlogged */
	KMMU_MUTANT_PROTECT_SKIPS_HUGE,		/* logging starts with huge leaves writable */
	KMMU_MUTANT_RECOVER_IGNORES_LIMITS,	/* recovery maps huge what must stay small */
	KMMU_MUTANT_HARVEST_KEEPS_D,		/* GET in D-bit mode leaves the D bits set */
	KMMU_MUTANT_MMIO_GEN_IGNORED,		/* a stale MMIO SPTE passes for current */
	KMMU_MUTANT_RING_RESET_NO_PROTECT,	/* the ring reset frees entries, protects nothing */
	KMMU_MUTANT_READONLY_SLOT_WRITABLE,	/* a read-only slot is mapped writable */
	KMMU_MUTANT_SPP_NO_FLUSH,		/* SET_ACCESS takes write access without a flush */
	KMMU_MUTANT_SPP_WRPROT_KEEPS_SPP,	/* write-protection leaves SPP leaves writable */
	KMMU_MUTANT_GW_LEAF_PERMS_ONLY,		/* L1's walk takes the leaf's permissions alone */
	KMMU_MUTANT_GW_KEEPS_STALE_ENTRY,	/* a failed A/D update keeps the entry it read */
	KMMU_MUTANT_GW_HIGH_BITS_IGNORED,	/* L1 entries' bits 51:48 are not checked */
	KMMU_MUTANT_GW_AD_NOT_LOGGED,		/* A/D bits set in L1 memory are not logged dirty */
	KMMU_MUTANT_RMAP_READER_NO_LOCK,	/* lockless rmap readers do not take the lock bit */
	KMMU_MUTANT_RMAP_KEEP_SINGLE_DESC,	/* an rmap down to one SPTE keeps its descriptor */
	KMMU_MUTANT_RMAP_SINGLE_NO_RECHECK,	/* lockless aging of one SPTE trusts a stale head */
	KMMU_MUTANT_NESTED_READ_WALK_WRITABLE,	/* an L2 read's walk caches a writable entry */
	KMMU_MUTANT_NESTED_INVALIDATE_NOOP,	/* KMMU_INVALIDATE_NESTED flushes nothing */
	KMMU_MUTANT_SHADOW_NOTIFIER_NO_ZAP,	/* host invalidations leave shadow leaves */
	KMMU_MUTANT_SHADOW_LOG_NO_PROTECT,	/* a harvested page's shadow leaves stay writable */
	KMMU_MUTANT_SHADOW_TRACK_IGNORED,	/* L1 writes to its shadowed tables are not trapped */
	KMMU_MUTANT_SHADOW_AGING_SKIPPED,	/* aging does not look at shadow leaves */
	KMMU_MUTANT_SHADOW_DBIT_NOT_HARVESTED,	/* D-bit logging ignores shadow leaves' D bits */
	KMMU_MUTANT_SHADOW_SPLIT_ZAPS,		/* logging zaps huge shadow leaves it could split */
	KMMU_MUTANT_STOPPED_LOG_FREED_AT_ONCE,	/* a log is freed while faults may write it */
	KMMU_NR_MUTANTS,
};

#ifdef KMMU_MUTANT
#define kmmu_mutant(name)	(KMMU_MUTANT == KMMU_MUTANT_##name)
#else
#define kmmu_mutant(name)	false
#endif

/* ---- host objects created for the core ---- */

struct kmmu_stats_fd;

/* Return a new fd for a VM or vCPU (taking over one reference), or -errno. */
int os_vm_fd_create(struct kmmu *kmmu);
int os_vcpu_fd_create(struct kmmu_vcpu *vcpu);
/* A read-only fd whose reads go to kmmu_stats_read(); -errno when none is made. */
int os_stats_fd_create(struct kmmu_stats_fd *sf);
/* Hook the VM to the host's address-space notifications, and unhook it. */
int os_vm_host_attach(struct kmmu *kmmu);
void os_vm_host_detach(struct kmmu *kmmu);
/* Default SPTE format of this host's CPU (KMMU_SPTE_FORMAT_EPT or _NPT). */
u32 os_host_spte_format(void);
/* KMMU_VM_* flags every VM of @format gets from the host's configuration. */
u32 os_host_vm_flags(u32 format);

#endif /* KMMU_OS_H */
