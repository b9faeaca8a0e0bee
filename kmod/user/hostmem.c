// SPDX-License-Identifier: GPL-2.0
/*
 * A model of the host's memory for the userspace host, with page frames
 * of its own.
 *
 * Guest memory lives in "frames": pages of one memfd, numbered from
 * HM_PFN_BASE so that a frame number is never mistaken for an address.  A
 * registered range of the process is mapped onto frames with mmap(), so
 * what a test writes through its pointers is what the vCPU reads through
 * the frame, and the other way round.  The model then does to those
 * mappings what the kernel's mm does -- migration, compaction, THP split
 * and collapse, swap-out, discard, munmap -- moving a range to other
 * frames where the kernel would, and calling the VMs' invalidation hooks
 * around each change exactly where the kernel calls mmu_notifier.
 *
 * A frame that nothing maps or references any more is freed: it is filled
 * with poison (or left a hole, if it was never touched), and later given
 * to other data.  A stale SPTE or a missing TLB flush therefore reads
 * poison or someone else's data, and a write through one is found when the
 * frame is handed out again or by kmmu_user_check_frames().  Marking a
 * frame accessed or dirty is checked as the kernel needs it: only with
 * mmu_lock held, on a frame that is mapped or referenced.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../core/os.h"
#include "internal.h"
#include "kmmu_user.h"

/* ---- frames ---- */

#define HM_PFN_BASE	(1ULL << 36)	/* above every hva >> 12 and page-table pfn */
#define HM_FRAMES	(1ULL << 24)	/* 64 GiB, backed only where touched */
#define HM_POISON	0x6b		/* the kernel's POISON_FREE */
#define HM_NO_FRAME	(~0ULL)		/* in a region's map: the mm is moving the page */
#define HM_FAULTED	BIT_ULL(62)	/* in a region's map: see os_hva_to_pfn() */

enum hm_frame_state {
	HM_FRAME_FREE,		/* never written since it was freed (a hole) */
	HM_FRAME_POISONED,	/* freed, and filled with HM_POISON */
	HM_FRAME_IN_USE,
};

/* struct page, as far as the MMU can see it. */
#define HF_MAPPED	BIT(0)	/* a host page table maps it */
#define HF_ACCESSED	BIT(1)
#define HF_DIRTY	BIT(2)
#define HF_NOPAGE	BIT(3)	/* PFNMAP: no struct page to count or mark */
#define HF_BAD_MARK	BIT(4)	/* marked although HF_NOPAGE */

struct hm_frame {
	int refs;		/* the host mapping's, plus one per lookup held */
	u8 state;		/* enum hm_frame_state, under hm_pool.lock */
	u8 order;		/* the folio it belongs to: 0, 9 or 18 */
	u8 flags;		/* HF_*, changed atomically */
	u8 pad;
};

/* A run of free frames [start, start + n). */
struct hm_extent {
	u64 start, n;
};

static struct {
	pthread_mutex_t lock;		/* the free extents and frame states */
	pid_t pid;			/* the process that made them (see hm_atfork_child()) */
	int fd;
	u8 *view;			/* every frame, as the vCPU reads and writes it */
	struct hm_frame *frames;
	struct hm_extent *ext;		/* sorted by start, never adjacent */
	u64 low_end, high_start;	/* frames ever used: below the one, from the other */
	int nr_ext, cap_ext;
	long errors;			/* frames found written after they were freed */
} hm_pool = { .lock = PTHREAD_MUTEX_INITIALIZER };

static u8 hm_poison_page[KMMU_PAGE_SIZE];
static const u8 hm_zero_page[KMMU_PAGE_SIZE];

static void hm_atfork_child(void)
{
	/*
	 * The child shares the parent's frames (MAP_SHARED): it must not hand
	 * them out again.  A child that uses the model starts a pool of its own.
	 */
	pthread_mutex_init(&hm_pool.lock, NULL);
	hm_pool.view = NULL;
	hm_pool.frames = NULL;
	hm_pool.ext = NULL;
	hm_pool.nr_ext = hm_pool.cap_ext = 0;
}

static int hm_pool_init(void)
{
	int flags = MAP_SHARED | MAP_NORESERVE;

	if (hm_pool.view && hm_pool.pid == getpid())
		return 0;
	hm_pool.pid = getpid();
	hm_pool.fd = memfd_create("kmmu-frames", MFD_CLOEXEC);
	if (hm_pool.fd < 0 || ftruncate(hm_pool.fd, HM_FRAMES * KMMU_PAGE_SIZE))
		goto fail;
	hm_pool.view = mmap(NULL, HM_FRAMES * KMMU_PAGE_SIZE, PROT_READ | PROT_WRITE, flags,
			    hm_pool.fd, 0);
	hm_pool.frames = mmap(NULL, HM_FRAMES * sizeof(struct hm_frame), PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (hm_pool.view == MAP_FAILED || hm_pool.frames == MAP_FAILED)
		goto fail;
	hm_pool.cap_ext = 64;
	hm_pool.ext = calloc(hm_pool.cap_ext, sizeof(*hm_pool.ext));
	if (!hm_pool.ext)
		goto fail;
	hm_pool.ext[0] = (struct hm_extent){ 0, HM_FRAMES };
	hm_pool.nr_ext = 1;
	hm_pool.low_end = 0;
	hm_pool.high_start = HM_FRAMES;
	memset(hm_poison_page, HM_POISON, sizeof(hm_poison_page));
	pthread_atfork(NULL, NULL, hm_atfork_child);
	return 0;
fail:
	fprintf(stderr, "kmmu: cannot set up the host model's frames\n");
	abort();
}

static u8 *hm_frame_va(u64 idx)
{
	return hm_pool.view + idx * KMMU_PAGE_SIZE;
}

static void hm_frame_error(u64 idx, const char *what)
{
	__atomic_add_fetch(&hm_pool.errors, 1, __ATOMIC_RELAXED);
	fprintf(stderr, "kmmu: host model: frame %#llx %s\n", HM_PFN_BASE + idx, what);
	kmmu_user_warn(__FILE__, __LINE__, what);
}

#define HM_VEC	256

static bool hm_frame_resident(u64 idx)
{
	unsigned char vec;

	return !mincore(hm_frame_va(idx), KMMU_PAGE_SIZE, &vec) && (vec & 1);
}


/*
 * Free frames [start, start + n) still hold what they held when freed:
 * poison, or nothing at all for a frame that was never touched (it reads
 * as zeroes once something touches it).  Pool lock held.
 */
static void hm_check_free_run(u64 start, u64 n)
{
	unsigned char vec[HM_VEC];
	u64 i, j, chunk;

	for (i = start; i < start + n; i += chunk) {
		chunk = min_t(u64, start + n - i, HM_VEC);
		if (mincore(hm_frame_va(i), chunk * KMMU_PAGE_SIZE, vec))
			memset(vec, 1, chunk);
		for (j = 0; j < chunk; j++) {
			const struct hm_frame *f = &hm_pool.frames[i + j];
			const u8 *want = f->state == HM_FRAME_POISONED ? hm_poison_page :
								       hm_zero_page;

			if (!(vec[j] & 1))
				continue;
			if (memcmp(hm_frame_va(i + j), want, KMMU_PAGE_SIZE))
				hm_frame_error(i + j, "was written after it was freed");
		}
	}
}

static int hm_ext_insert(int at, u64 start, u64 n)
{
	if (hm_pool.nr_ext == hm_pool.cap_ext) {
		struct hm_extent *e = realloc(hm_pool.ext, 2 * hm_pool.cap_ext * sizeof(*e));

		if (!e)
			return -ENOMEM;
		hm_pool.ext = e;
		hm_pool.cap_ext *= 2;
	}
	memmove(&hm_pool.ext[at + 1], &hm_pool.ext[at],
		(hm_pool.nr_ext - at) * sizeof(*hm_pool.ext));
	hm_pool.ext[at] = (struct hm_extent){ start, n };
	hm_pool.nr_ext++;
	return 0;
}

static void hm_ext_remove(int at)
{
	hm_pool.nr_ext--;
	memmove(&hm_pool.ext[at], &hm_pool.ext[at + 1],
		(hm_pool.nr_ext - at) * sizeof(*hm_pool.ext));
}

/* Take [start, start + n) out of extent @at; pool lock held. */
static int hm_ext_carve(int at, u64 start, u64 n)
{
	struct hm_extent *e = &hm_pool.ext[at];
	u64 tail_start = start + n, tail_n = e->start + e->n - tail_start;

	if (start == e->start) {
		e->start += n;
		e->n -= n;
		if (!e->n)
			hm_ext_remove(at);
		return 0;
	}
	e->n = start - e->start;
	return tail_n ? hm_ext_insert(at + 1, tail_start, tail_n) : 0;
}

/*
 * @n frames aligned to @align frames, the first fit from the bottom (or
 * the last from the top), so that freed frames soon hold other data.
 */
static u64 hm_frames_alloc(u64 n, u64 align, bool from_top, u8 order, u8 flags)
{
	u64 start = HM_NO_FRAME, i;
	int at;

	pthread_mutex_lock(&hm_pool.lock);
	for (at = from_top ? hm_pool.nr_ext - 1 : 0; at >= 0 && at < hm_pool.nr_ext;
	     at += from_top ? -1 : 1) {
		struct hm_extent *e = &hm_pool.ext[at];
		u64 s = from_top ? ALIGN_DOWN(e->start + e->n - n, align) : ALIGN(e->start, align);

		if (e->n >= n && s >= e->start && s + n <= e->start + e->n) {
			start = s;
			break;
		}
	}
	if (start == HM_NO_FRAME || hm_ext_carve(at, start, n)) {
		pthread_mutex_unlock(&hm_pool.lock);
		return HM_NO_FRAME;
	}
	hm_check_free_run(start, n);
	for (i = start; i < start + n; i++) {
		struct hm_frame *f = &hm_pool.frames[i];

		/* A hole reads as zeroes (checked above); poison goes. */
		if (f->state == HM_FRAME_POISONED)
			memset(hm_frame_va(i), 0, KMMU_PAGE_SIZE);
		f->state = HM_FRAME_IN_USE;
		WRITE_ONCE(f->order, order);
		__atomic_store_n(&f->flags, flags, __ATOMIC_RELAXED);
		__atomic_store_n(&f->refs, 0, __ATOMIC_RELAXED);
	}
	if (from_top)
		hm_pool.high_start = min(hm_pool.high_start, start);
	else
		hm_pool.low_end = max(hm_pool.low_end, start + n);
	pthread_mutex_unlock(&hm_pool.lock);
	return start;
}

/* Give frame @idx back; its last reference is gone. */
static void hm_frame_free(u64 idx)
{
	struct hm_frame *f = &hm_pool.frames[idx];
	int at;

	pthread_mutex_lock(&hm_pool.lock);
	if (WARN_ON(f->state != HM_FRAME_IN_USE)) {
		pthread_mutex_unlock(&hm_pool.lock);
		return;
	}
	/* Poison what was touched; a frame never touched stays a hole. */
	if (hm_frame_resident(idx)) {
		memset(hm_frame_va(idx), HM_POISON, KMMU_PAGE_SIZE);
		f->state = HM_FRAME_POISONED;
	} else {
		f->state = HM_FRAME_FREE;
	}
	__atomic_store_n(&f->flags, 0, __ATOMIC_RELAXED);

	/* Into the sorted extents, merged with its neighbours. */
	for (at = 0; at < hm_pool.nr_ext && hm_pool.ext[at].start < idx; at++)
		;
	if (at > 0 && hm_pool.ext[at - 1].start + hm_pool.ext[at - 1].n == idx) {
		hm_pool.ext[at - 1].n++;
		if (at < hm_pool.nr_ext && hm_pool.ext[at].start == idx + 1) {
			hm_pool.ext[at - 1].n += hm_pool.ext[at].n;
			hm_ext_remove(at);
		}
	} else if (at < hm_pool.nr_ext && hm_pool.ext[at].start == idx + 1) {
		hm_pool.ext[at].start--;
		hm_pool.ext[at].n++;
	} else if (hm_ext_insert(at, idx, 1)) {
		/* Out of memory for the list: the frame is lost, not reused. */
	}
	pthread_mutex_unlock(&hm_pool.lock);
}

static void hm_frame_get(u64 idx)
{
	__atomic_add_fetch(&hm_pool.frames[idx].refs, 1, __ATOMIC_RELAXED);
}

static bool hm_frame_get_unless_zero(u64 idx)
{
	int *refs = &hm_pool.frames[idx].refs;
	int old = __atomic_load_n(refs, __ATOMIC_RELAXED);

	do {
		if (!old)
			return false;
	} while (!__atomic_compare_exchange_n(refs, &old, old + 1, false, __ATOMIC_ACQUIRE,
					      __ATOMIC_RELAXED));
	return true;
}

static void hm_frame_put(u64 idx)
{
	int refs = __atomic_sub_fetch(&hm_pool.frames[idx].refs, 1, __ATOMIC_ACQ_REL);

	WARN_ON(refs < 0);
	if (!refs)
		hm_frame_free(idx);
}

static u8 hm_frame_flags(u64 idx)
{
	return __atomic_load_n(&hm_pool.frames[idx].flags, __ATOMIC_RELAXED);
}

static void hm_frame_set(u64 idx, u8 flags)
{
	__atomic_fetch_or(&hm_pool.frames[idx].flags, flags, __ATOMIC_RELAXED);
}

static void hm_frame_clear(u64 idx, u8 flags)
{
	__atomic_fetch_and(&hm_pool.frames[idx].flags, (u8)~flags, __ATOMIC_RELAXED);
}

/* ---- regions: what the process maps where ---- */

struct hm_region {
	unsigned long start, end;
	enum kmmu_user_mem_kind kind;
	int level;			/* largest host mapping */
	bool refcounted;
	bool writable;
	u64 *frame;			/* per 4 KiB page: frame | HM_FAULTED, or HM_NO_FRAME */
	u8 *split;			/* THP: per 2 MiB, mapped by 4 KiB pages */
};

#define HM_MAX_REGIONS	256

/* Regions sorted by start; replaced whole under hm_lock, read under RCU. */
struct hm_table {
	int nr;
	struct hm_region *r[HM_MAX_REGIONS];
};

static struct hm_table *hm_table;
/* Serializes every change the mm makes, as mmap_lock would. */
static pthread_mutex_t hm_lock = PTHREAD_MUTEX_INITIALIZER;

/* VMs that want to hear about invalidations and aging. */
struct hm_vm {
	struct kmmu *kmmu;
	struct hm_vm *next;
};

static struct hm_vm *hm_vms;
static pthread_mutex_t hm_vms_lock = PTHREAD_MUTEX_INITIALIZER;

static struct hm_region *hm_find(unsigned long hva)
{
	struct hm_table *t = rcu_dereference(hm_table);
	int lo = 0, hi;

	if (!t)
		return NULL;
	hi = t->nr - 1;
	while (lo <= hi) {
		int mid = lo + (hi - lo) / 2;
		struct hm_region *r = t->r[mid];

		if (hva < r->start)
			hi = mid - 1;
		else if (hva >= r->end)
			lo = mid + 1;
		else
			return r;
	}
	return NULL;
}

static int kind_level(enum kmmu_user_mem_kind kind)
{
	switch (kind) {
	case KMMU_USER_MEM_THP:
	case KMMU_USER_MEM_HUGETLB_2M:
		return KMMU_LEVEL_2M;
	case KMMU_USER_MEM_HUGETLB_1G:
		return KMMU_LEVEL_1G;
	default:
		return KMMU_LEVEL_4K;
	}
}

static unsigned long hm_idx(const struct hm_region *r, unsigned long hva)
{
	return (hva - r->start) >> KMMU_PAGE_SHIFT;
}

static u64 hm_frame_at(const struct hm_region *r, unsigned long i)
{
	u64 v = __atomic_load_n(&r->frame[i], __ATOMIC_ACQUIRE);

	return v == HM_NO_FRAME ? v : v & ~HM_FAULTED;
}

static void hm_set_frame_at(struct hm_region *r, unsigned long i, u64 idx)
{
	__atomic_store_n(&r->frame[i], idx, __ATOMIC_RELEASE);
}

/*
 * Page @i of @r, on frame @idx, has been touched through the process's
 * mapping, so its PTE is there (see os_hva_to_pfn()).  Only while the page
 * is still on that frame: a mapping that changed is faulted in again.
 */
static void hm_set_faulted(struct hm_region *r, unsigned long i, u64 idx)
{
	__atomic_compare_exchange_n(&r->frame[i], &idx, idx | HM_FAULTED, false,
				    __ATOMIC_RELAXED, __ATOMIC_RELAXED);
}

/* The host page (folio) that holds page @i of @r: its first page and size. */
static void hm_folio(const struct hm_region *r, unsigned long i, unsigned long *first,
		     unsigned long *n)
{
	unsigned long pages = kmmu_pages_per_level(r->level);
	unsigned long base = ALIGN_DOWN(i, pages);

	if (r->level == KMMU_LEVEL_4K || (r->split && READ_ONCE(r->split[i / 512])) ||
	    r->start + (base + pages) * KMMU_PAGE_SIZE > r->end) {
		*first = i;
		*n = 1;
		return;
	}
	*first = base;
	*n = pages;
}

static u8 hm_folio_order(unsigned long n)
{
	return n == 1 ? 0 : n == 512 ? 9 : 18;
}

/*
 * Replace the process's mapping of [hva, hva + len).  The raw system
 * call: what the range holds is the same memory before and after, to the
 * process and so to the sanitizers, whose mmap() would start it afresh
 * under a concurrent reader.
 */
static int hm_remap(unsigned long hva, size_t len, int fd, u64 off)
{
	int flags = MAP_FIXED | (fd < 0 ? MAP_PRIVATE | MAP_ANONYMOUS : MAP_SHARED);
	long p = syscall(SYS_mmap, hva, len, PROT_READ | PROT_WRITE, flags, fd, off);

	return p == (long)hva ? 0 : -ENOMEM;
}

/* Map pages [i, i + n) of @r onto frames from @idx, as mmap would. */
static int hm_map(struct hm_region *r, unsigned long i, unsigned long n, u64 idx)
{
	unsigned long k;

	if (hm_remap(r->start + i * KMMU_PAGE_SIZE, n * KMMU_PAGE_SIZE, hm_pool.fd,
		     idx * KMMU_PAGE_SIZE))
		return -ENOMEM;
	for (k = 0; k < n; k++) {
		hm_frame_get(idx + k);
		hm_frame_set(idx + k, HF_MAPPED);
		hm_set_frame_at(r, i + k, idx + k);
	}
	return 0;
}

/*
 * Unmap pages [i, i + n) of @r: a fault on them now waits.  The frames
 * stay referenced by the caller, who puts them with hm_put_frames().
 */
static void hm_unmap(struct hm_region *r, unsigned long i, unsigned long n, u64 *old)
{
	unsigned long k;

	for (k = 0; k < n; k++) {
		old[k] = hm_frame_at(r, i + k);
		hm_set_frame_at(r, i + k, HM_NO_FRAME);
		if (old[k] != HM_NO_FRAME)
			hm_frame_clear(old[k], HF_MAPPED);
	}
}

static void hm_put_frames(const u64 *old, unsigned long n)
{
	unsigned long k;

	for (k = 0; k < n; k++)
		if (old[k] != HM_NO_FRAME)
			hm_frame_put(old[k]);
}

/* ---- mmu_notifier, as the mm calls it ---- */

static void hm_invalidate_start(unsigned long start, unsigned long end)
{
	struct hm_vm *v;

	for (v = hm_vms; v; v = v->next)
		kmmu_invalidate_range_start(v->kmmu, start, end, true);
}

static void hm_invalidate_end(unsigned long start, unsigned long end)
{
	struct hm_vm *v;

	for (v = hm_vms; v; v = v->next)
		kmmu_invalidate_range_end(v->kmmu, start, end);
}

/* ---- registration ---- */

static void hm_region_free(struct hm_region *r)
{
	free(r->frame);
	free(r->split);
	free(r);
}

static struct hm_region *hm_region_alloc(unsigned long start, size_t len,
					 enum kmmu_user_mem_kind kind, bool writable)
{
	size_t pages = len / KMMU_PAGE_SIZE;
	struct hm_region *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->start = start;
	r->end = start + len;
	r->kind = kind;
	r->level = kind_level(kind);
	r->refcounted = kind != KMMU_USER_MEM_PFNMAP;
	r->writable = writable;
	r->frame = malloc(pages * sizeof(*r->frame));
	if (kind == KMMU_USER_MEM_THP)
		r->split = calloc(DIV_ROUND_UP(pages, 512), 1);
	if (!r->frame || (kind == KMMU_USER_MEM_THP && !r->split)) {
		hm_region_free(r);
		return NULL;
	}
	memset(r->frame, 0xff, pages * sizeof(*r->frame));
	return r;
}

/* A copy of the table with @add inserted and/or @remove left out. */
static struct hm_table *hm_table_copy(struct hm_table *old, struct hm_region *add,
				      struct hm_region *remove)
{
	struct hm_table *t = calloc(1, sizeof(*t));
	int i;

	if (!t)
		return NULL;
	for (i = 0; old && i < old->nr; i++) {
		if (old->r[i] == remove)
			continue;
		if (add && add->start < old->r[i]->start) {
			t->r[t->nr++] = add;
			add = NULL;
		}
		t->r[t->nr++] = old->r[i];
	}
	if (add)
		t->r[t->nr++] = add;
	return t;
}

static void hm_table_publish(struct hm_table *t)
{
	struct hm_table *old = hm_table;

	rcu_assign_pointer(hm_table, t);
	synchronize_rcu();
	free(old);
}

static bool hm_overlaps(unsigned long start, unsigned long end)
{
	int i;

	for (i = 0; hm_table && i < hm_table->nr; i++)
		if (start < hm_table->r[i]->end && hm_table->r[i]->start < end)
			return true;
	return false;
}

/* Bring what the process had written at [start, end) into frames from @idx. */
static void hm_copy_in(unsigned long start, unsigned long end, u64 idx)
{
	unsigned long pages = (end - start) / KMMU_PAGE_SIZE, i;
	unsigned char *vec = malloc(pages);

	/* Only resident pages: a sparse range must not be filled in. */
	if (!vec || mincore((void *)start, end - start, vec)) {
		free(vec);
		return;
	}
	for (i = 0; i < pages; i++)
		if ((vec[i] & 1) && memcmp((void *)(start + i * KMMU_PAGE_SIZE), hm_zero_page,
					   KMMU_PAGE_SIZE))
			memcpy(hm_frame_va(idx + i), (void *)(start + i * KMMU_PAGE_SIZE),
			       KMMU_PAGE_SIZE);
	free(vec);
}

int kmmu_user_mem_register(void *addr, size_t len, enum kmmu_user_mem_kind kind,
			   bool writable)
{
	unsigned long start = (unsigned long)addr;
	u64 pages = len / KMMU_PAGE_SIZE, align, idx;
	struct hm_region *r;
	struct hm_table *t;
	int ret = -EINVAL;

	kmmu_user_thread_enter();
	if (!len || !IS_ALIGNED(start, KMMU_PAGE_SIZE) || !IS_ALIGNED(len, KMMU_PAGE_SIZE) ||
	    !os_user_range_ok(start, len) || kind > KMMU_USER_MEM_PFNMAP)
		return -EINVAL;

	pthread_mutex_lock(&hm_lock);
	hm_pool_init();
	if (hm_overlaps(start, start + len) || (hm_table && hm_table->nr == HM_MAX_REGIONS))
		goto out;
	ret = -ENOMEM;
	r = hm_region_alloc(start, len, kind, writable);
	if (!r)
		goto out;
	/* One run, aligned as the host's huge pages would be. */
	align = kmmu_pages_per_level(r->level);
	idx = hm_frames_alloc(pages, align, false, hm_folio_order(align),
			      r->refcounted ? 0 : HF_NOPAGE);
	if (idx == HM_NO_FRAME)
		goto free_region;
	hm_copy_in(start, start + len, idx);
	if (hm_map(r, 0, pages, idx))
		goto free_frames;
	t = hm_table_copy(hm_table, r, NULL);
	if (!t)
		goto unmap;
	hm_table_publish(t);
	ret = 0;
	goto out;

unmap:
	hm_remap(start, len, -1, 0);
	for (idx = 0; idx < pages; idx++)
		hm_frame_clear(r->frame[idx], HF_MAPPED);
	hm_put_frames(r->frame, pages);
	goto free_region;
free_frames:
	while (pages--)
		hm_frame_free(idx + pages);
free_region:
	hm_region_free(r);
out:
	pthread_mutex_unlock(&hm_lock);
	return ret;
}

/*
 * Like munmap: the invalidation starts, the range stops being mapped (a
 * fault in between finds no mapping), its frames go, and the invalidation
 * ends.  The process's range becomes plain anonymous memory again.
 */
int kmmu_user_mem_unregister(void *addr, size_t len)
{
	unsigned long start = (unsigned long)addr, pages = len / KMMU_PAGE_SIZE;
	struct hm_region *r;
	struct hm_table *t;
	u64 *old;
	int ret = -EINVAL;

	kmmu_user_thread_enter();
	pthread_mutex_lock(&hm_lock);
	rcu_read_lock();
	r = hm_find(start);
	rcu_read_unlock();
	if (!r || r->start != start || r->end != start + len)
		goto out;
	ret = -ENOMEM;
	old = malloc(pages * sizeof(*old));
	t = hm_table_copy(hm_table, NULL, r);
	if (!old || !t) {
		free(old);
		free(t);
		goto out;
	}

	pthread_mutex_lock(&hm_vms_lock);
	hm_invalidate_start(start, start + len);
	hm_table_publish(t);
	hm_unmap(r, 0, pages, old);
	hm_remap(start, len, -1, 0);
	hm_put_frames(old, pages);
	hm_invalidate_end(start, start + len);
	pthread_mutex_unlock(&hm_vms_lock);

	free(old);
	hm_region_free(r);
	ret = 0;
out:
	pthread_mutex_unlock(&hm_lock);
	return ret;
}

/* ---- what the mm does to mapped memory ---- */

/* The region that holds all of [start, start + len), page aligned; hm_lock held. */
static struct hm_region *hm_range(void *addr, size_t len)
{
	unsigned long start = (unsigned long)addr;
	struct hm_region *r;

	if (!len || !IS_ALIGNED(start, KMMU_PAGE_SIZE) || !IS_ALIGNED(len, KMMU_PAGE_SIZE))
		return NULL;
	rcu_read_lock();
	r = hm_find(start);
	rcu_read_unlock();
	if (!r || start + len > r->end || start + len < start)
		return NULL;
	return r;
}

enum hm_move {
	HM_MIGRATE,	/* to new frames, data copied, flags kept */
	HM_COMPACT,	/* the same, to frames taken from the top of memory */
	HM_SWAP,	/* out to swap and freed, then back in on new frames, clean */
	HM_DISCARD,	/* freed; the next touch finds new zeroed frames */
	HM_COLLAPSE,	/* a split THP onto one new huge page, data copied */
};

/*
 * Move the folio at pages [i, i + n) of @r, with one invalidation around
 * the unmapping as the kernel does (try_to_migrate(), zap_page_range(),
 * try_to_unmap() for swap), and then map it again on new frames.
 */
static int hm_move_folio(struct hm_region *r, unsigned long i, unsigned long n, enum hm_move how)
{
	unsigned long s = r->start + i * KMMU_PAGE_SIZE, e = s + n * KMMU_PAGE_SIZE, k;
	u64 old[512], *olds = n <= 512 ? old : malloc(n * sizeof(*olds));
	u64 idx = hm_frames_alloc(n, n, how == HM_COMPACT, hm_folio_order(n),
				  r->refcounted ? 0 : HF_NOPAGE);
	u8 keep = 0;
	int ret;

	if (!olds || idx == HM_NO_FRAME) {
		if (idx != HM_NO_FRAME)
			for (k = 0; k < n; k++)
				hm_frame_free(idx + k);
		if (olds != old)
			free(olds);
		return -ENOMEM;
	}

	hm_invalidate_start(s, e);
	hm_unmap(r, i, n, olds);
	/* The host maps it huge from now on: faults that saw it split retry. */
	if (how == HM_COLLAPSE)
		WRITE_ONCE(r->split[i / 512], 0);
	hm_invalidate_end(s, e);

	if (how != HM_SWAP && how != HM_DISCARD)
		keep = HF_ACCESSED | HF_DIRTY;
	for (k = 0; k < n; k++) {
		if (how != HM_DISCARD)
			memcpy(hm_frame_va(idx + k), hm_frame_va(olds[k]), KMMU_PAGE_SIZE);
		hm_frame_set(idx + k, hm_frame_flags(olds[k]) & keep);
	}
	/*
	 * The new frames are mapped before the old ones go (swapped out,
	 * discarded or migrated away): a reader of the range meanwhile sees
	 * the old data or the new, never a freed frame.
	 */
	ret = hm_map(r, i, n, idx);
	WARN_ON(ret);
	hm_put_frames(olds, n);
	if (olds != old)
		free(olds);
	return ret;
}

/* THP: map one 2 MiB page of @r with 4 KiB pages from now on (split_huge_pmd()). */
static void hm_thp_split_one(struct hm_region *r, unsigned long chunk)
{
	unsigned long s = r->start + chunk * 512 * KMMU_PAGE_SIZE, k;

	if (r->split[chunk])
		return;
	hm_invalidate_start(s, s + 512 * KMMU_PAGE_SIZE);
	WRITE_ONCE(r->split[chunk], 1);
	for (k = 0; k < 512; k++)
		WRITE_ONCE(hm_pool.frames[hm_frame_at(r, chunk * 512 + k)].order, 0);
	hm_invalidate_end(s, s + 512 * KMMU_PAGE_SIZE);
}

/* Does [i, i + n) of @r cut a huge page that cannot be split? */
static bool hm_cuts_huge(const struct hm_region *r, unsigned long i, unsigned long n)
{
	unsigned long pages = kmmu_pages_per_level(r->level);

	if (r->kind != KMMU_USER_MEM_HUGETLB_2M && r->kind != KMMU_USER_MEM_HUGETLB_1G)
		return false;
	return !IS_ALIGNED(r->start + i * KMMU_PAGE_SIZE, pages * KMMU_PAGE_SIZE) ||
	       !IS_ALIGNED(n, pages);
}

static int hm_move_range(void *addr, size_t len, enum hm_move how)
{
	unsigned long i, n, f, first, end;
	struct hm_region *r;
	int ret = -EINVAL;

	kmmu_user_thread_enter();
	pthread_mutex_lock(&hm_lock);
	r = hm_range(addr, len);
	if (!r || r->kind == KMMU_USER_MEM_PFNMAP)
		goto out;
	first = hm_idx(r, (unsigned long)addr);
	end = first + len / KMMU_PAGE_SIZE;
	if (hm_cuts_huge(r, first, end - first))
		goto out;

	pthread_mutex_lock(&hm_vms_lock);
	ret = 0;
	for (i = first; !ret && i < end; i = f + n) {
		hm_folio(r, i, &f, &n);
		/* A THP only partly in the range is split first, as the kernel does. */
		if (n > 1 && r->split && (f < i || f + n > end)) {
			hm_thp_split_one(r, f / 512);
			f = i;
			n = 1;
		}
		ret = hm_move_folio(r, f, n, how);
	}
	pthread_mutex_unlock(&hm_vms_lock);
out:
	pthread_mutex_unlock(&hm_lock);
	return ret;
}

int kmmu_user_mem_migrate(void *addr, size_t len)
{
	return hm_move_range(addr, len, HM_MIGRATE);
}

int kmmu_user_mem_compact(void *addr, size_t len)
{
	return hm_move_range(addr, len, HM_COMPACT);
}

int kmmu_user_mem_swap_out(void *addr, size_t len)
{
	return hm_move_range(addr, len, HM_SWAP);
}

int kmmu_user_mem_discard(void *addr, size_t len)
{
	return hm_move_range(addr, len, HM_DISCARD);
}

/*
 * THP split (every 2 MiB page the range touches: map it with 4 KiB pages)
 * or collapse (every split one wholly inside it: khugepaged, onto a new
 * huge page).
 */
static int hm_thp_range(void *addr, size_t len, bool collapse)
{
	unsigned long c, first, end, i;
	struct hm_region *r;
	int ret = -EINVAL;

	kmmu_user_thread_enter();
	pthread_mutex_lock(&hm_lock);
	r = hm_range(addr, len);
	if (!r || r->kind != KMMU_USER_MEM_THP)
		goto out;
	i = hm_idx(r, (unsigned long)addr);
	first = collapse ? DIV_ROUND_UP(i, 512) : i / 512;
	end = collapse ? (i + len / KMMU_PAGE_SIZE) / 512 :
			 DIV_ROUND_UP(i + len / KMMU_PAGE_SIZE, 512);
	pthread_mutex_lock(&hm_vms_lock);
	ret = 0;
	for (c = first; !ret && c < end; c++) {
		/* A tail shorter than 2 MiB is never huge. */
		if (r->start + (c + 1) * 512 * KMMU_PAGE_SIZE > r->end)
			break;
		if (!collapse)
			hm_thp_split_one(r, c);
		else if (r->split[c])
			ret = hm_move_folio(r, c * 512, 512, HM_COLLAPSE);
	}
	pthread_mutex_unlock(&hm_vms_lock);
out:
	pthread_mutex_unlock(&hm_lock);
	return ret;
}

int kmmu_user_mem_thp_split(void *addr, size_t len)
{
	return hm_thp_range(addr, len, false);
}

int kmmu_user_mem_thp_collapse(void *addr, size_t len)
{
	return hm_thp_range(addr, len, true);
}

void kmmu_user_invalidate(void *addr, size_t len, bool discard)
{
	unsigned long start = (unsigned long)addr, end = start + len;

	kmmu_user_thread_enter();
	if (discard) {
		WARN_ON(kmmu_user_mem_discard(addr, len));
		return;
	}
	/* A change of the mapping that keeps its frames (mprotect, say). */
	pthread_mutex_lock(&hm_vms_lock);
	hm_invalidate_start(start, end);
	hm_invalidate_end(start, end);
	pthread_mutex_unlock(&hm_vms_lock);
}

bool kmmu_user_age(void *addr, size_t len, bool clear, bool flush)
{
	unsigned long start = (unsigned long)addr, end = start + len;
	bool young = false;
	struct hm_vm *v;

	kmmu_user_thread_enter();
	pthread_mutex_lock(&hm_vms_lock);
	for (v = hm_vms; v; v = v->next)
		young |= kmmu_age_hva_range(v->kmmu, start, end, clear, flush);
	pthread_mutex_unlock(&hm_vms_lock);
	return young;
}

/* ---- what tests may ask of the model ---- */

int kmmu_user_mem_state(void *addr, size_t len, struct kmmu_user_mem_state *st)
{
	unsigned long hva, end = (unsigned long)addr + len, first, n;

	kmmu_user_thread_enter();
	memset(st, 0, sizeof(*st));
	rcu_read_lock();
	for (hva = (unsigned long)addr; hva < end; hva += KMMU_PAGE_SIZE) {
		struct hm_region *r = hm_find(hva);
		u64 idx;
		u8 flags;

		if (!r)
			continue;
		idx = hm_frame_at(r, hm_idx(r, hva));
		if (idx == HM_NO_FRAME)
			continue;
		flags = hm_frame_flags(idx);
		/* The host mapping's own reference is not one kmmu holds. */
		st->refs += __atomic_load_n(&hm_pool.frames[idx].refs, __ATOMIC_RELAXED) -
			    !!(flags & HF_MAPPED);
		st->accessed += !!(flags & HF_ACCESSED);
		st->dirty += !!(flags & HF_DIRTY);
		st->bad_marks += !!(flags & HF_BAD_MARK);
		hm_folio(r, hm_idx(r, hva), &first, &n);
		st->huge += n > 1;
	}
	rcu_read_unlock();
	return 0;
}

void kmmu_user_mem_clear_marks(void *addr, size_t len)
{
	unsigned long hva, end = (unsigned long)addr + len;

	kmmu_user_thread_enter();
	rcu_read_lock();
	for (hva = (unsigned long)addr; hva < end; hva += KMMU_PAGE_SIZE) {
		struct hm_region *r = hm_find(hva);
		u64 idx = r ? hm_frame_at(r, hm_idx(r, hva)) : HM_NO_FRAME;

		if (idx != HM_NO_FRAME)
			hm_frame_clear(idx, HF_ACCESSED | HF_DIRTY);
	}
	rcu_read_unlock();
}

void kmmu_user_mem_prefault(void *addr, size_t len)
{
	unsigned long hva, end = (unsigned long)addr + len;

	kmmu_user_thread_enter();
	rcu_read_lock();
	for (hva = (unsigned long)addr; hva < end; hva += KMMU_PAGE_SIZE) {
		struct hm_region *r = hm_find(hva);
		u64 idx = r ? hm_frame_at(r, hm_idx(r, hva)) : HM_NO_FRAME;
		volatile u8 *p = (u8 *)hva;

		*p = *p;
		if (idx != HM_NO_FRAME) {
			(void)__atomic_load_n(hm_frame_va(idx), __ATOMIC_RELAXED);
			hm_set_faulted(r, hm_idx(r, hva), idx);
		}
	}
	rcu_read_unlock();
}

int kmmu_user_mem_pfn(const void *addr, uint64_t *pfn)
{
	struct hm_region *r;
	int ret = -EFAULT;
	u64 idx;

	kmmu_user_thread_enter();
	rcu_read_lock();
	r = hm_find((unsigned long)addr);
	idx = r ? hm_frame_at(r, hm_idx(r, (unsigned long)addr)) : HM_NO_FRAME;
	if (idx != HM_NO_FRAME) {
		*pfn = HM_PFN_BASE + idx;
		ret = 0;
	}
	rcu_read_unlock();
	return ret;
}

long kmmu_user_check_frames(void)
{
	int at;

	kmmu_user_thread_enter();
	pthread_mutex_lock(&hm_pool.lock);
	for (at = 0; hm_pool.view && at < hm_pool.nr_ext; at++) {
		const struct hm_extent *e = &hm_pool.ext[at];
		u64 s = e->start, end = e->start + e->n;

		/* Frames never handed out hold nothing to check. */
		if (s < hm_pool.low_end)
			hm_check_free_run(s, min(end, hm_pool.low_end) - s);
		if (end > hm_pool.high_start) {
			s = max(s, max(hm_pool.high_start, hm_pool.low_end));
			if (end > s)
				hm_check_free_run(s, end - s);
		}
	}
	pthread_mutex_unlock(&hm_pool.lock);
	return __atomic_load_n(&hm_pool.errors, __ATOMIC_RELAXED);
}

/* ---- the mm's side of mmu_notifier ---- */

int os_vm_host_attach(struct kmmu *kmmu)
{
	struct hm_vm *v = os_zalloc(sizeof(*v));

	if (!v)
		return -ENOMEM;
	v->kmmu = kmmu;
	pthread_mutex_lock(&hm_vms_lock);
	v->next = hm_vms;
	hm_vms = v;
	pthread_mutex_unlock(&hm_vms_lock);
	kmmu->host = v;
	return 0;
}

void os_vm_host_detach(struct kmmu *kmmu)
{
	struct hm_vm **pp;

	pthread_mutex_lock(&hm_vms_lock);
	for (pp = &hm_vms; *pp; pp = &(*pp)->next) {
		if (*pp == kmmu->host) {
			*pp = (*pp)->next;
			break;
		}
	}
	pthread_mutex_unlock(&hm_vms_lock);
	os_free(kmmu->host);
	kmmu->host = NULL;
}

/* ---- os.h: host pages ---- */

static bool hm_pfn_ok(kmmu_pfn_t pfn)
{
	return pfn >= HM_PFN_BASE && pfn < HM_PFN_BASE + HM_FRAMES && hm_pool.view;
}

/*
 * As get_user_pages: the frame mapped at @req->hva, with a reference so
 * it cannot be freed before os_release_pfn().  While the mm moves the
 * page the fault is taken again, as gup would wait on a migration entry.
 */
int os_hva_to_pfn(struct kmmu *kmmu, struct os_pfn_req *req)
{
	struct hm_region *r;
	unsigned long i;
	int ret = 0;
	u64 idx;

	(void)kmmu;
	rcu_read_lock();
	r = hm_find(req->hva);
	if (!r || (req->write && !r->writable)) {
		ret = -EFAULT;
		goto out;
	}
	i = hm_idx(r, req->hva);
	for (;;) {
		idx = hm_frame_at(r, i);
		if (idx == HM_NO_FRAME) {
			ret = -EAGAIN;
			goto out;
		}
		if (!r->refcounted)
			break;
		/* The frame may be freed and reused meanwhile: look again once held. */
		if (!hm_frame_get_unless_zero(idx))
			continue;
		if (hm_frame_at(r, i) == idx)
			break;
		hm_frame_put(idx);
	}
	req->pfn = HM_PFN_BASE + idx;
	req->writable = r->writable && req->slot_writable;
	req->refcounted = r->refcounted;
	/*
	 * Fault the page in through the process's own mapping, as gup would:
	 * a userfaultfd on the range sees the fault.  Under RCU, so the range
	 * is still mapped (unregistering waits for us).  Only while the model
	 * does not know the PTE to be there: gup-fast then just reads the
	 * PTE, where a load here would add a TLB miss on a page the MMU never
	 * touches.  The vCPU's own access goes through the frames' view.
	 */
	if (!(READ_ONCE(r->frame[i]) & HM_FAULTED)) {
		(void)__atomic_load_n((u64 *)req->hva, __ATOMIC_RELAXED);
		hm_set_faulted(r, i, idx);
	}
out:
	rcu_read_unlock();
	return ret;
}

/* Only the struct page (and page flags) of a frame the MMU may touch now. */
static bool hm_frame_markable(kmmu_pfn_t pfn, bool held)
{
	u64 idx = pfn - HM_PFN_BASE;
	const struct hm_frame *f;

	if (!hm_pfn_ok(pfn)) {
		hm_frame_error(pfn - HM_PFN_BASE, "is not a frame of the host model");
		return false;
	}
	f = &hm_pool.frames[idx];
	if (hm_frame_flags(idx) & HF_NOPAGE) {
		hm_frame_set(idx, HF_BAD_MARK);
		kmmu_user_warn(__FILE__, __LINE__, "a page without struct page was marked");
		return false;
	}
	if (__atomic_load_n(&f->refs, __ATOMIC_RELAXED) <= 0 ||
	    (!held && !(hm_frame_flags(idx) & HF_MAPPED))) {
		hm_frame_error(idx, "was marked, but is neither mapped nor referenced");
		return false;
	}
	/* Folio flags race with writeback unless the MMU holds mmu_lock. */
	if (!kmmu_user_holds_rwlock()) {
		hm_frame_error(idx, "was marked without mmu_lock");
		return false;
	}
	return true;
}

/* Mark the whole folio, as the kernel marks a folio. */
static void hm_mark(kmmu_pfn_t pfn, u8 flag, bool held)
{
	u64 idx = pfn - HM_PFN_BASE, first, n, i;

	if (!hm_frame_markable(pfn, held))
		return;
	n = 1ULL << READ_ONCE(hm_pool.frames[idx].order);
	first = ALIGN_DOWN(idx, n);
	/* Marks come in whole folios: one marked at both ends is marked. */
	if ((hm_frame_flags(first) & flag) && (hm_frame_flags(first + n - 1) & flag))
		return;
	for (i = first; i < first + n; i++)
		hm_frame_set(i, flag);
}

void os_release_pfn(struct os_pfn_req *req, bool dirty)
{
	if (!req->refcounted)
		return;
	if (dirty)
		hm_mark(req->pfn, HF_DIRTY, true);
	hm_frame_put(req->pfn - HM_PFN_BASE);
}

/*
 * The u64 at @uaddr through the frame behind it, held as get_user() would
 * hold the page for the access (a page the mm is moving is waited for).
 */
static int hm_user_u64(unsigned long uaddr, bool write, struct os_pfn_req *req, u64 **p)
{
	int ret;

	if (uaddr & 7)
		return -EFAULT;
	*req = (struct os_pfn_req){ .hva = uaddr, .write = write, .slot_writable = true };
	do {
		ret = os_hva_to_pfn(NULL, req);
	} while (ret == -EAGAIN);
	if (ret)
		return -EFAULT;
	*p = (u64 *)((u8 *)os_guest_pfn_to_va(req->pfn) + (uaddr & (KMMU_PAGE_SIZE - 1)));
	return 0;
}

int os_read_user_u64(unsigned long uaddr, u64 *val)
{
	struct os_pfn_req req;
	u64 *p;

	if (hm_user_u64(uaddr, false, &req, &p))
		return -EFAULT;
	*val = __atomic_load_n(p, __ATOMIC_RELAXED);
	/* The process's own access: its page table's bits, not a mark. */
	os_release_pfn(&req, false);
	return 0;
}

int os_cmpxchg_user_u64(unsigned long uaddr, u64 old, u64 new)
{
	struct os_pfn_req req;
	bool done;
	u64 *p;

	/* A read-only mapping is -EFAULT, as __try_cmpxchg_user() faults. */
	if (hm_user_u64(uaddr, true, &req, &p))
		return -EFAULT;
	done = __atomic_compare_exchange_n(p, &old, new, false, __ATOMIC_SEQ_CST,
					   __ATOMIC_SEQ_CST);
	os_release_pfn(&req, false);
	return done ? 0 : -EAGAIN;
}

int os_host_mapping_level(struct kmmu *kmmu, unsigned long hva)
{
	unsigned long first, n;
	struct hm_region *r;
	int level = KMMU_LEVEL_4K;

	(void)kmmu;
	rcu_read_lock();
	r = hm_find(hva);
	if (r) {
		hm_folio(r, hm_idx(r, hva), &first, &n);
		level = n == 1 ? KMMU_LEVEL_4K : r->level;
	}
	rcu_read_unlock();
	return level;
}

void os_mark_pfn_accessed(kmmu_pfn_t pfn)
{
	hm_mark(pfn, HF_ACCESSED, false);
}

void os_mark_pfn_dirty(kmmu_pfn_t pfn)
{
	hm_mark(pfn, HF_DIRTY, false);
}

void *os_guest_pfn_to_va(kmmu_pfn_t pfn)
{
	u64 idx = pfn - HM_PFN_BASE;

	if (!hm_pfn_ok(pfn))
		return NULL;
	/* A walk that reaches a free frame went through a stale SPTE. */
	if (!__atomic_load_n(&hm_pool.frames[idx].refs, __ATOMIC_RELAXED))
		hm_frame_error(idx, "was reached by a vCPU's walk after it was freed");
	return hm_frame_va(idx);
}
