/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The userspace host of the kmmu core: an in-process /dev/kmmu, a model of
 * the host's memory with the hooks a kernel's mm would call
 * (invalidate, age), and the allocation shim used to find leaks and to
 * inject failures.  Used by selftests/lib's "user" backend.
 */
#ifndef KMMU_USER_H
#define KMMU_USER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- the in-process device; fds returned are not kernel fds ---- */

int kmmu_user_open(void);
/* Return the ioctl's value (>= 0) or -errno. */
long kmmu_user_ioctl(int fd, unsigned long cmd, unsigned long arg);
int kmmu_user_close(int fd);
/* pread() of a stats fd: bytes read, 0 at the end, or -errno. */
long kmmu_user_pread(int fd, void *buf, size_t size, long long off);
/*
 * mmap/munmap of a vCPU fd (its dirty ring, KMMU_DIRTY_LOG_PAGE_OFFSET):
 * the ring itself is returned; the mapping holds the fd's file until
 * unmapped.  Return 0 or -errno (-EBADF, -ENODEV, -EINVAL).
 */
int kmmu_user_mmap(int fd, unsigned long pgoff, size_t len, void **addr);
int kmmu_user_munmap(void *addr);

/* ---- host memory model ---- */

/*
 * Guest memory is held in frames of the model, not in the process's own
 * pages: a registered range is mapped onto frames, and a frame number (the
 * "pfn" kmmu sees) is never the address.  The operations below move a
 * range to other frames, or change how it is mapped, the way the kernel's
 * mm would, calling every VM's invalidation hooks where the kernel calls
 * mmu_notifier.  Freed frames are poisoned and given to other data later.
 */
enum kmmu_user_mem_kind {
	KMMU_USER_MEM_ANON,		/* 4 KiB pages */
	KMMU_USER_MEM_THP,		/* 2 MiB pages where aligned, until split */
	KMMU_USER_MEM_HUGETLB_2M,
	KMMU_USER_MEM_HUGETLB_1G,
	KMMU_USER_MEM_PFNMAP,		/* no struct page: never refcounted or marked */
};

/*
 * Declare [addr, addr + len) as host memory of @kind; both page aligned.
 * What the range held is kept.  A range not registered has no host
 * mapping: faults on it fail (-EFAULT).
 * Return 0, -EINVAL (bad range or kind, overlap) or -ENOMEM.
 */
int kmmu_user_mem_register(void *addr, size_t len, enum kmmu_user_mem_kind kind,
			   bool writable);
/* munmap: invalidate, unmap and free the frames.  Return 0 or -EINVAL. */
int kmmu_user_mem_unregister(void *addr, size_t len);

/*
 * What the mm does to mapped memory, on page-aligned parts of one
 * registered range; each returns 0, -EINVAL (not registered, a PFNMAP
 * range, a hugetlb page cut in two, a THP operation on another kind) or
 * -ENOMEM.  Contents are kept (discard: zeroed), on new frames.
 */
int kmmu_user_mem_migrate(void *addr, size_t len);	/* page migration, folio by folio */
int kmmu_user_mem_compact(void *addr, size_t len);	/* migration to the top of memory */
int kmmu_user_mem_swap_out(void *addr, size_t len);	/* out and freed, back in clean */
int kmmu_user_mem_discard(void *addr, size_t len);	/* MADV_DONTNEED */
int kmmu_user_mem_thp_split(void *addr, size_t len);	/* THP: map with 4 KiB pages */
int kmmu_user_mem_thp_collapse(void *addr, size_t len);	/* THP: khugepaged, new frames */

/*
 * Touch every page of the range (each written with what it holds), so
 * that neither the process nor the model's own view of the frames (the
 * kernel's direct map, so to say) faults on it later.
 */
void kmmu_user_mem_prefault(void *addr, size_t len);

/* The frame behind @addr, as kmmu sees it.  Return 0 or -EFAULT. */
int kmmu_user_mem_pfn(const void *addr, uint64_t *pfn);

/* What the host knows of the pages of [addr, addr + len). */
struct kmmu_user_mem_state {
	long refs;		/* references kmmu holds now (sum over the pages) */
	long accessed;		/* pages marked accessed */
	long dirty;		/* pages marked dirty */
	long bad_marks;		/* marks on pages that must never be marked */
	long huge;		/* pages the host maps with a 2M or 1G leaf */
};
int kmmu_user_mem_state(void *addr, size_t len, struct kmmu_user_mem_state *st);
/* Forget the accessed/dirty marks of the range. */
void kmmu_user_mem_clear_marks(void *addr, size_t len);

/*
 * What the kernel's mm does through mmu_notifier: invalidate a range
 * whose frames stay (as mprotect would), or discard it; or age it.
 */
void kmmu_user_invalidate(void *addr, size_t len, bool discard);
bool kmmu_user_age(void *addr, size_t len, bool clear, bool flush);

/*
 * Frames found used after they were freed (written, walked to, marked),
 * once every free frame has been checked for writes.
 */
long kmmu_user_check_frames(void);

/* ---- allocation shim and leak checks ---- */

/* The @n-th allocation from now (1 = the next one) fails; 0 disarms. */
void kmmu_user_fail_nth(long n);
/* Allocations failed on purpose so far. */
long kmmu_user_failed_allocs(void);
/* Objects and page-table pages alive now, after pending RCU frees ran. */
long kmmu_user_objects_alive(void);
long kmmu_user_pt_pages_alive(void);
/* WARNs the core hit so far. */
long kmmu_user_warnings(void);
/*
 * Call @fn at every race point the core passes (enum kmmu_race_point in
 * kmod/core/os.h), with the VM, the point, the gfn concerned and @data;
 * NULL stops.  @fn runs in the thread that reached the point, with what it
 * holds held: it may block to let another thread act right there.
 */
struct kmmu;
typedef void (*kmmu_user_race_fn)(struct kmmu *kmmu, int point, uint64_t gfn, void *data);
void kmmu_user_set_race_hook(kmmu_user_race_fn fn, void *data);

/* need_resched() says yes to the next @n callers (to exercise yields). */
void kmmu_user_force_resched(long n);

#endif /* KMMU_USER_H */
