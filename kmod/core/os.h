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

/* ---- the vCPU's thread ---- */

/* Enter and leave "guest mode": no sleeping in between (preemption off). */
void os_guest_enter(struct kmmu_vcpu *vcpu);
void os_guest_exit(struct kmmu_vcpu *vcpu);
/* A signal is pending for the calling thread: RUN must return. */
bool os_signal_pending(void);

/* Monotonic time in nanoseconds. */
u64 os_now_ns(void);

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
	KMMU_RACE_FAST_PF_READ,		/* the fast path read a leaf it may change (RCU) */
	KMMU_RACE_ROOT_ZAP_STEP,	/* an invalidated root is being emptied */
	KMMU_RACE_ZAP_FROZEN,		/* an SPTE frozen to be zapped, TLBs not flushed yet */
	KMMU_RACE_AGE_READ,		/* an aging pass read a young leaf it will age */
	KMMU_RACE_SLOTS_PUBLISHED,	/* new memslots are out, the old still in use */
	KMMU_NR_RACE_POINTS,
};

#ifdef __KERNEL__
static inline void os_race_point(struct kmmu *kmmu, enum kmmu_race_point p, gfn_t gfn)
{
}
#else
void os_race_point(struct kmmu *kmmu, enum kmmu_race_point p, gfn_t gfn);
#endif

/* ---- host objects created for the core ---- */

/* Return a new fd for a VM or vCPU (taking over one reference), or -errno. */
int os_vm_fd_create(struct kmmu *kmmu);
int os_vcpu_fd_create(struct kmmu_vcpu *vcpu);
/* Hook the VM to the host's address-space notifications, and unhook it. */
int os_vm_host_attach(struct kmmu *kmmu);
void os_vm_host_detach(struct kmmu *kmmu);
/* Default SPTE format of this host's CPU (KMMU_SPTE_FORMAT_EPT or _NPT). */
u32 os_host_spte_format(void);
/* KMMU_VM_* flags every VM of @format gets from the host's configuration. */
u32 os_host_vm_flags(u32 format);

#endif /* KMMU_OS_H */
