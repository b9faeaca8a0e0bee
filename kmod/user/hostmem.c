// SPDX-License-Identifier: GPL-2.0
/*
 * A model of the host's memory for the userspace host.  Guest memory is
 * real memory of the process; a page's "pfn" is its address >> 12.  What
 * the kernel would know and the process cannot see -- page size, whether a
 * page has a refcounted struct page, reference counts, accessed and dirty
 * marks -- is kept here per registered region, and the invalidation and
 * aging hooks stand in for the mm's mmu_notifier calls.
 */
#include <stdlib.h>
#include <sys/mman.h>

#include "../core/os.h"
#include "internal.h"
#include "kmmu_user.h"

struct hm_region {
	unsigned long start, end;
	enum kmmu_user_mem_kind kind;
	int level;			/* largest host mapping */
	bool refcounted;
	bool writable;
	int *refs;			/* per 4 KiB page */
	unsigned long *accessed;	/* bitmaps, per 4 KiB page */
	unsigned long *dirty;
	long bad_marks;
};

#define HM_MAX_REGIONS	256

/* Regions sorted by start; replaced whole under hm_lock, read under RCU. */
struct hm_table {
	int nr;
	struct hm_region *r[HM_MAX_REGIONS];
};

static struct hm_table *hm_table;
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

static void hm_region_free(struct hm_region *r)
{
	free(r->refs);
	free(r->accessed);
	free(r->dirty);
	free(r);
}

static struct hm_region *hm_region_alloc(unsigned long start, size_t len,
					 enum kmmu_user_mem_kind kind, bool writable)
{
	size_t pages = len / KMMU_PAGE_SIZE;
	size_t words = DIV_ROUND_UP(pages, BITS_PER_LONG);
	struct hm_region *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->start = start;
	r->end = start + len;
	r->kind = kind;
	r->level = kind_level(kind);
	r->refcounted = kind != KMMU_USER_MEM_PFNMAP;
	r->writable = writable;
	r->refs = calloc(pages, sizeof(*r->refs));
	r->accessed = calloc(words, sizeof(long));
	r->dirty = calloc(words, sizeof(long));
	if (!r->refs || !r->accessed || !r->dirty) {
		hm_region_free(r);
		return NULL;
	}
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

int kmmu_user_mem_register(void *addr, size_t len, enum kmmu_user_mem_kind kind,
			   bool writable)
{
	unsigned long start = (unsigned long)addr;
	struct hm_region *r;
	struct hm_table *t;
	int ret = -EINVAL;

	kmmu_user_thread_enter();
	if (!len || !IS_ALIGNED(start, KMMU_PAGE_SIZE) || !IS_ALIGNED(len, KMMU_PAGE_SIZE) ||
	    !os_user_range_ok(start, len) || kind > KMMU_USER_MEM_PFNMAP)
		return -EINVAL;

	pthread_mutex_lock(&hm_lock);
	if (hm_overlaps(start, start + len) || (hm_table && hm_table->nr == HM_MAX_REGIONS))
		goto out;
	ret = -ENOMEM;
	r = hm_region_alloc(start, len, kind, writable);
	if (!r)
		goto out;
	t = hm_table_copy(hm_table, r, NULL);
	if (!t) {
		hm_region_free(r);
		goto out;
	}
	hm_table_publish(t);
	ret = 0;
out:
	pthread_mutex_unlock(&hm_lock);
	return ret;
}

int kmmu_user_mem_unregister(void *addr, size_t len)
{
	unsigned long start = (unsigned long)addr;
	struct hm_region *r;
	struct hm_table *t;

	kmmu_user_thread_enter();
	rcu_read_lock();
	r = hm_find(start);
	rcu_read_unlock();
	if (!r || r->start != start || r->end != start + len)
		return -EINVAL;

	/* Like munmap: every VM lets go of the pages first. */
	kmmu_user_invalidate(addr, len, false);

	pthread_mutex_lock(&hm_lock);
	t = hm_table_copy(hm_table, NULL, r);
	if (!t) {
		pthread_mutex_unlock(&hm_lock);
		return -ENOMEM;
	}
	hm_table_publish(t);
	pthread_mutex_unlock(&hm_lock);
	hm_region_free(r);
	return 0;
}

int kmmu_user_mem_state(void *addr, size_t len, struct kmmu_user_mem_state *st)
{
	unsigned long hva, end = (unsigned long)addr + len;
	struct hm_region *last = NULL;

	kmmu_user_thread_enter();
	memset(st, 0, sizeof(*st));
	rcu_read_lock();
	for (hva = (unsigned long)addr; hva < end; hva += KMMU_PAGE_SIZE) {
		struct hm_region *r = hm_find(hva);
		unsigned long idx;

		if (!r)
			continue;
		idx = (hva - r->start) / KMMU_PAGE_SIZE;
		st->refs += __atomic_load_n(&r->refs[idx], __ATOMIC_RELAXED);
		st->accessed += test_bit(idx, r->accessed);
		st->dirty += test_bit(idx, r->dirty);
		if (r != last)
			st->bad_marks += __atomic_load_n(&r->bad_marks, __ATOMIC_RELAXED);
		last = r;
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

		if (r) {
			clear_bit((hva - r->start) / KMMU_PAGE_SIZE, r->accessed);
			clear_bit((hva - r->start) / KMMU_PAGE_SIZE, r->dirty);
		}
	}
	rcu_read_unlock();
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

void kmmu_user_invalidate(void *addr, size_t len, bool discard)
{
	unsigned long start = (unsigned long)addr, end = start + len;
	struct hm_vm *v;

	kmmu_user_thread_enter();
	pthread_mutex_lock(&hm_vms_lock);
	for (v = hm_vms; v; v = v->next)
		kmmu_invalidate_range_start(v->kmmu, start, end, true);
	if (discard)
		madvise(addr, len, MADV_DONTNEED);
	for (v = hm_vms; v; v = v->next)
		kmmu_invalidate_range_end(v->kmmu, start, end);
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

/* ---- os.h: host pages ---- */

int os_hva_to_pfn(struct kmmu *kmmu, struct os_pfn_req *req)
{
	struct hm_region *r;
	int ret = 0;

	(void)kmmu;
	rcu_read_lock();
	r = hm_find(req->hva);
	if (!r || (req->write && !r->writable)) {
		ret = -EFAULT;
		goto out;
	}
	req->pfn = req->hva >> KMMU_PAGE_SHIFT;
	req->writable = r->writable && req->slot_writable;
	req->refcounted = r->refcounted;
	req->host = r;
	if (r->refcounted)
		__atomic_add_fetch(&r->refs[(req->hva - r->start) / KMMU_PAGE_SIZE], 1,
				   __ATOMIC_RELAXED);
	/*
	 * Fault the page in, as get_user_pages would.  A read is enough: the
	 * pfn does not depend on it, and a write could race with the guest's.
	 */
	(void)__atomic_load_n((u64 *)req->hva, __ATOMIC_RELAXED);
out:
	rcu_read_unlock();
	return ret;
}

/* The fault that holds the reference runs in an RCU section: r is alive. */
void os_release_pfn(struct os_pfn_req *req)
{
	struct hm_region *r = req->host;

	if (r->refcounted)
		__atomic_sub_fetch(&r->refs[(req->hva - r->start) / KMMU_PAGE_SIZE], 1,
				   __ATOMIC_RELAXED);
}

int os_host_mapping_level(struct kmmu *kmmu, unsigned long hva)
{
	struct hm_region *r;
	int level = KMMU_LEVEL_4K;

	(void)kmmu;
	rcu_read_lock();
	r = hm_find(hva);
	for (level = r ? r->level : KMMU_LEVEL_4K; level > KMMU_LEVEL_4K; level--) {
		unsigned long size = kmmu_pages_per_level(level) * KMMU_PAGE_SIZE;
		unsigned long base = hva & ~(size - 1);

		if (base >= r->start && base + size <= r->end)
			break;
	}
	rcu_read_unlock();
	return level;
}

/* The host page (folio) that holds @hva: 4K, or the region's huge page. */
static void hm_host_page(struct hm_region *r, unsigned long hva, unsigned long *first,
			 unsigned long *n)
{
	unsigned long size = kmmu_pages_per_level(r->level) * KMMU_PAGE_SIZE;
	unsigned long base = hva & ~(size - 1);

	if (r->level == KMMU_LEVEL_4K || base < r->start || base + size > r->end) {
		base = hva & ~(KMMU_PAGE_SIZE - 1);
		size = KMMU_PAGE_SIZE;
	}
	*first = (base - r->start) / KMMU_PAGE_SIZE;
	*n = size / KMMU_PAGE_SIZE;
}

/*
 * Mark @n pages from @first, the way a folio is marked: all at once.  A
 * folio already marked at both ends is taken as marked (marks only ever
 * come in whole folios), so a write to a 1G page does not walk 262144 bits.
 */
static void hm_mark_folio(unsigned long *bits, unsigned long first, unsigned long n)
{
	unsigned long i;

	if (test_bit(first, bits) && test_bit(first + n - 1, bits))
		return;
	for (i = first; i < first + n; i++)
		if (!test_bit(i, bits))
			set_bit(i, bits);
}

/* Mark the whole host page, as the kernel marks a folio. */
static void hm_mark(kmmu_pfn_t pfn, bool dirty)
{
	unsigned long hva = pfn << KMMU_PAGE_SHIFT, first, n;
	struct hm_region *r;
	unsigned long *bits;

	rcu_read_lock();
	r = hm_find(hva);
	if (WARN_ON(!r))
		goto out;
	if (!r->refcounted) {
		__atomic_add_fetch(&r->bad_marks, 1, __ATOMIC_RELAXED);
		WARN_ON(1);
		goto out;
	}
	bits = dirty ? r->dirty : r->accessed;
	hm_host_page(r, hva, &first, &n);
	hm_mark_folio(bits, first, n);
out:
	rcu_read_unlock();
}

void os_mark_pfn_accessed(kmmu_pfn_t pfn)
{
	hm_mark(pfn, false);
}

void os_mark_pfn_dirty(kmmu_pfn_t pfn)
{
	hm_mark(pfn, true);
}

/* The region is known (the request holds it alive): no lookup. */
void os_mark_req_dirty(struct os_pfn_req *req)
{
	struct hm_region *r = req->host;
	unsigned long first, n;

	hm_host_page(r, req->hva, &first, &n);
	hm_mark_folio(r->dirty, first, n);
}

void *os_guest_pfn_to_va(kmmu_pfn_t pfn)
{
	return (void *)(unsigned long)(pfn << KMMU_PAGE_SHIFT);
}
