// SPDX-License-Identifier: GPL-2.0
/*
 * Sub-page write permissions (KMMU_CAP_SPP): the ABI and its errors, writes
 * at every sub-page boundary and the exits of refused ones, TLB flushes
 * after a permission is taken away, 4K mappings under restricted pages and
 * huge ones back after, dirty logging of permitted writes in both modes
 * while permissions change, and permissions that outlive zaps and aging
 * but not a memslot move or delete.
 */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "test_util.h"

#define SPP_GPA		0x40000000ULL	/* 1G aligned: 2M and 1G leaves can map it */
#define SPP_PAGES	512		/* one 2M page */
#define SPP_SIZE	(SPP_PAGES * SZ_4K)
#define SPP_GFN		(SPP_GPA >> 12)
#define FULL		KMMU_SUBPAGE_FULL_ACCESS

/* Rounds of the racing tests: fewer under TSan, which is ten times slower. */
#ifdef __SANITIZE_THREAD__
#define RACE_ROUNDS	6
#else
#define RACE_ROUNDS	12
#endif

/* As kmod/core/spte.h lays them out after the SDM. */
#define SPTE_PRESENT	(1ULL << 11)
#define EPT_W		(1ULL << 1)
#define EPT_D		(1ULL << 9)
#define EPT_SPP		(1ULL << 61)

struct flipper {
	struct kmmu_vm *vm;
	bool stop;		/* __atomic: set by the test, read by the thread */
	uint64_t changes;	/* __atomic: SET_ACCESS calls done */
};

FIXTURE(spp) {
	struct kmmu_vm *vm;
	struct kmmu_vcpu *vcpu;
	struct kmmu_mem mem;
	bool ad;
	/* A thread changing permissions (flip_start()), stopped before teardown frees. */
	struct flipper flip;
	pthread_t flip_thread;
	bool flipping;
};

FIXTURE_VARIANT(spp) {
	struct kmmu_vm_config cfg;
};

KMMU_ADD_FORMAT_VARIANTS(spp);

static bool is_ept(const FIXTURE_VARIANT(spp) *variant)
{
	return variant->cfg.spte_format == KMMU_SPTE_FORMAT_EPT;
}

FIXTURE_SETUP(spp)
{
	KMMU_REQUIRE_BACKEND();
	KMMU_REQUIRE_FORMAT(&variant->cfg);
	KMMU_VM_CREATE(&variant->cfg, &self->vm);
	ASSERT_EQ(0, kmmu_vcpu_create(self->vm, 0, &self->vcpu));
	ASSERT_EQ(0, kmmu_mem_alloc(&self->mem, KMMU_BACKING_ANON, SPP_SIZE));
	memset(self->mem.addr, 0, SPP_SIZE);
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 0, 0, SPP_GPA, SPP_SIZE, self->mem.addr));
	self->ad = !(variant->cfg.flags & KMMU_VM_AD_DISABLED);
	if (is_ept(variant))
		ASSERT_EQ(0, kmmu_vm_enable_cap(self->vm, KMMU_CAP_SPP, 1));
}

static void flip_stop(FIXTURE_DATA(spp) *self)
{
	if (!self->flipping)
		return;
	__atomic_store_n(&self->flip.stop, true, __ATOMIC_RELEASE);
	pthread_join(self->flip_thread, NULL);
	self->flipping = false;
}

FIXTURE_TEARDOWN(spp)
{
	flip_stop(self);
	kmmu_vm_free(self->vm);
	kmmu_mem_free(&self->mem);
}

#define REQUIRE_EPT()								\
	do {									\
		if (!is_ept(variant))						\
			SKIP(return, "SPP is EPT only (npt: see npt_refuses_spp)"); \
	} while (0)

static uint64_t *word_at(FIXTURE_DATA(spp) *self, uint64_t gpa)
{
	return (uint64_t *)((uint8_t *)self->mem.addr + (gpa - SPP_GPA));
}

static uint32_t map_of(FIXTURE_DATA(spp) *self, uint64_t gfn)
{
	uint32_t m = 0;

	if (kmmu_vm_subpages_get(self->vm, gfn, 1, 0, &m))
		return 0xdeadbeef;
	return m;
}

/* The leaf that maps @gpa now, 0 if none. */
static uint64_t leaf_of(FIXTURE_DATA(spp) *self, uint64_t gpa, uint32_t *level)
{
	struct kmmu_spte_query q;

	if (kmmu_vm_get_spte(self->vm, gpa, 0, &q) || !q.level ||
	    !(q.sptes[q.level] & SPTE_PRESENT))
		return 0;
	if (level)
		*level = q.level;
	return q.sptes[q.level];
}

/*
 * Write 8 bytes at @gpa + k * @stride for k < @n, RUN after every exit;
 * each SPP exit is checked and counted (the write then did not happen).
 */
static uint64_t write_stride(struct __test_metadata *_metadata, FIXTURE_DATA(spp) *self,
			     uint64_t gpa, uint64_t stride, uint64_t n, uint64_t value)
{
	struct kmmu_workload wl = kmmu_wl_stride_writes(gpa, stride, n, value);
	struct kmmu_run run;
	uint64_t exits = 0;
	int ret;

	ret = kmmu_vcpu_set_workload(self->vcpu, &wl);
	if (ret)
		return ~0ULL;
	for (;;) {
		memset(&run, 0, sizeof(run));
		ret = kmmu_vcpu_run(self->vcpu, &run);
		if (ret == -EINTR || (!ret && run.exit_reason == KMMU_EXIT_INTR))
			continue;
		if (ret || run.exit_reason == KMMU_EXIT_DONE)
			break;
		if (run.exit_reason != KMMU_EXIT_SPP)
			return ~0ULL;
		EXPECT_EQ(8, run.spp.len);
		EXPECT_EQ(value ^ run.spp.gpa, run.spp.data);
		EXPECT_EQ((run.spp.gpa >> 7) & 31, run.spp.subpage);
		exits++;
	}
	return ret ? ~0ULL : exits;
}

/* The capability: EPT VMs have it, NPT VMs do not, and enabling is idempotent. */
KMMU_TEST_F(spp, capability)
{
	EXPECT_EQ(1, kmmu_ioctl(self->vm->sys_fd, KMMU_CHECK_EXTENSION, KMMU_CAP_SPP));
	EXPECT_EQ(is_ept(variant), kmmu_ioctl(self->vm->fd, KMMU_CHECK_EXTENSION, KMMU_CAP_SPP));
	if (!is_ept(variant))
		return;
	EXPECT_EQ(0, kmmu_vm_enable_cap(self->vm, KMMU_CAP_SPP, 1));
	EXPECT_EQ(-EINVAL, kmmu_vm_enable_cap(self->vm, KMMU_CAP_SPP, 0));
	EXPECT_EQ(-EINVAL, kmmu_vm_enable_cap(self->vm, KMMU_CAP_SPP, 2));
}

/* On NPT every SPP call is -EOPNOTSUPP. */
KMMU_TEST_F(spp, npt_refuses_spp)
{
	uint32_t m = 0;

	if (is_ept(variant))
		SKIP(return, "an EPT VM has SPP");
	EXPECT_EQ(-EOPNOTSUPP, kmmu_vm_enable_cap(self->vm, KMMU_CAP_SPP, 1));
	EXPECT_EQ(-EOPNOTSUPP, kmmu_vm_enable_cap(self->vm, KMMU_CAP_SPP, 7));
	EXPECT_EQ(-EOPNOTSUPP, kmmu_vm_subpages_set(self->vm, SPP_GFN, 1, 0, &m));
	EXPECT_EQ(-EOPNOTSUPP, kmmu_vm_subpages_get(self->vm, SPP_GFN, 1, 0, &m));
}

/* Maps start all-ones and read back as set; a new slot starts all-ones too. */
KMMU_TEST_F(spp, round_trip)
{
	uint32_t set[SPP_PAGES], got[SPP_PAGES];
	struct kmmu_mem m2;
	int i;

	REQUIRE_EPT();
	ASSERT_EQ(0, kmmu_vm_subpages_get(self->vm, SPP_GFN, SPP_PAGES, 0, got));
	for (i = 0; i < SPP_PAGES; i++)
		ASSERT_EQ(FULL, got[i]);
	for (i = 0; i < SPP_PAGES; i++)
		set[i] = i % 3 ? 0x9e3779b9u * i : FULL;
	ASSERT_EQ(0, kmmu_vm_subpages_set(self->vm, SPP_GFN, SPP_PAGES, 0, set));
	ASSERT_EQ(0, kmmu_vm_subpages_get(self->vm, SPP_GFN, SPP_PAGES, 0, got));
	EXPECT_EQ(0, memcmp(set, got, sizeof(set)));
	/* One page in the middle. */
	set[100] = 0x80000001u;
	ASSERT_EQ(0, kmmu_vm_subpages_set(self->vm, SPP_GFN + 100, 1, 0, &set[100]));
	ASSERT_EQ(0, kmmu_vm_subpages_get(self->vm, SPP_GFN, SPP_PAGES, 0, got));
	EXPECT_EQ(0, memcmp(set, got, sizeof(set)));

	/* A slot made after the enable has a map; the other address space is its own. */
	ASSERT_EQ(0, kmmu_mem_alloc(&m2, KMMU_BACKING_ANON, 2 * SZ_4K));
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 1 | (1 << 16), 0, SPP_GPA, 2 * SZ_4K,
					 m2.addr));
	ASSERT_EQ(0, kmmu_vm_subpages_get(self->vm, SPP_GFN, 2, 1, got));
	EXPECT_EQ(FULL, got[0]);
	EXPECT_EQ(FULL, got[1]);
	EXPECT_EQ(set[1], map_of(self, SPP_GFN + 1));
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 1 | (1 << 16), 0, SPP_GPA, 0, NULL));
	kmmu_mem_free(&m2);
}

/* A raw request: the header, then @npages maps. */
static long raw(FIXTURE_DATA(spp) *self, unsigned long cmd, struct kmmu_subpage_access *req)
{
	return kmmu_ioctl(self->vm->fd, cmd, (unsigned long)req);
}

/* Every bad request fails with its errno and changes nothing. */
KMMU_TEST_F(spp, bad_requests_change_nothing)
{
	size_t sz = sizeof(struct kmmu_subpage_access) + 4 * sizeof(uint32_t);
	struct kmmu_subpage_access *req = calloc(1, sz);
	uint32_t before[SPP_PAGES], after[SPP_PAGES], m = 1;
	struct kmmu_vm *vm2;
	uint8_t *pages;
	int i;

	REQUIRE_EPT();
	ASSERT_NE(NULL, req);
	for (i = 0; i < SPP_PAGES; i++)
		before[i] = i & 1 ? 0x0f0f0f0fu : FULL;
	ASSERT_EQ(0, kmmu_vm_subpages_set(self->vm, SPP_GFN, SPP_PAGES, 0, before));

#define BAD(errno_, ...)							\
	do {									\
		memset(req, 0, sz);						\
		req->gfn_base = SPP_GFN;					\
		req->npages = 4;						\
		__VA_ARGS__;							\
		EXPECT_EQ(errno_, raw(self, KMMU_SUBPAGES_SET_ACCESS, req));	\
		EXPECT_EQ(errno_, raw(self, KMMU_SUBPAGES_GET_ACCESS, req));	\
	} while (0)
	memset(req, 0, sz);
	req->gfn_base = SPP_GFN;
	req->npages = 4;
	ASSERT_EQ(0, raw(self, KMMU_SUBPAGES_GET_ACCESS, req));
	ASSERT_EQ(0, raw(self, KMMU_SUBPAGES_SET_ACCESS, req));	/* writes them back */
	BAD(-EINVAL, req->flags = 1);
	BAD(-EINVAL, req->reserved0 = 1);
	BAD(-EINVAL, req->reserved[1] = 1);
	BAD(-EINVAL, req->npages = 0);
	BAD(-EINVAL, req->as_id = 2);
	BAD(-EINVAL, req->gfn_base = 1ULL << 36);
	BAD(-EINVAL, req->gfn_base = ~0ULL);
	BAD(-EINVAL, req->gfn_base = (1ULL << 36) - 2);
	BAD(-E2BIG, req->npages = KMMU_SUBPAGES_MAX_PAGES + 1);
	BAD(-ENOENT, req->gfn_base = SPP_GFN - 1);
	BAD(-ENOENT, req->gfn_base = SPP_GFN + SPP_PAGES - 3);
	BAD(-ENOENT, req->gfn_base = 0);
	BAD(-ENOENT, req->as_id = 1);
#undef BAD
	/* The maps cross into a page that cannot be read or written. */
	pages = mmap(NULL, 2 * SZ_4K, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, pages);
	ASSERT_EQ(0, mprotect(pages + SZ_4K, SZ_4K, PROT_NONE));
	{
		/* Two maps readable, the third not. */
		struct kmmu_subpage_access *edge = (void *)(pages + SZ_4K - sizeof(*edge) - 8);

		memset(edge, 0, sizeof(*edge));
		edge->gfn_base = SPP_GFN;
		edge->npages = 3;
		edge->access_map[0] = 0;
		edge->access_map[1] = 0;
		EXPECT_EQ(-EFAULT, raw(self, KMMU_SUBPAGES_SET_ACCESS, edge));
		EXPECT_EQ(-EFAULT, raw(self, KMMU_SUBPAGES_GET_ACCESS, edge));
	}
	munmap(pages, 2 * SZ_4K);

	ASSERT_EQ(0, kmmu_vm_subpages_get(self->vm, SPP_GFN, SPP_PAGES, 0, after));
	EXPECT_EQ(0, memcmp(before, after, sizeof(before)));

	/* A VM that never enabled SPP. */
	KMMU_VM_CREATE(&variant->cfg, &vm2);
	ASSERT_EQ(0, kmmu_vm_set_memslot(vm2, 0, 0, SPP_GPA, SPP_SIZE, self->mem.addr));
	EXPECT_EQ(-ENXIO, kmmu_vm_subpages_set(vm2, SPP_GFN, 1, 0, &m));
	EXPECT_EQ(-ENXIO, kmmu_vm_subpages_get(vm2, SPP_GFN, 1, 0, &m));
	kmmu_vm_free(vm2);
	free(req);
}

/*
 * A page whose even sub-pages are writable: the first and the last 8 bytes
 * of every sub-page are written; the odd ones exit with their gpa and
 * index and keep their old contents.
 */
KMMU_TEST_F(spp, writes_at_every_subpage_boundary)
{
	uint64_t gpa = SPP_GPA + 5 * SZ_4K, spte, off, exits, misses = 0, spp_exits = 0;
	uint32_t map = 0x55555555u, level = 0;
	int fd;

	REQUIRE_EPT();
	memset(word_at(self, gpa), 0xa5, SZ_4K);
	ASSERT_EQ(0, kmmu_vm_subpages_set(self->vm, gpa >> 12, 1, 0, &map));
	for (off = 0; off < 128; off += 120) {
		exits = write_stride(_metadata, self, gpa + off, 128, 32, 0x1111);
		EXPECT_EQ(16, exits);
	}
	for (off = 0; off < SZ_4K; off += 8) {
		unsigned int sub = off / 128;
		bool edge = off % 128 == 0 || off % 128 == 120;
		uint64_t want = sub % 2 == 0 && edge ? 0x1111 ^ (gpa + off) : 0xa5a5a5a5a5a5a5a5ULL;

		ASSERT_EQ(want, *word_at(self, gpa + off)) {
			TH_LOG("offset %llu, sub-page %u", (unsigned long long)off, sub);
		}
	}
	/* A 4K leaf, W clear, SPP set; D set by the permitted writes. */
	spte = leaf_of(self, gpa, &level);
	EXPECT_EQ(KMMU_LEVEL_4K, level);
	EXPECT_EQ(0, spte & EPT_W);
	EXPECT_EQ(EPT_SPP, spte & EPT_SPP);
	if (self->ad)
		EXPECT_EQ(EPT_D, spte & EPT_D);
	/* The neighbours are ordinary pages. */
	EXPECT_EQ(0, write_stride(_metadata, self, gpa + SZ_4K, 128, 32, 0x2222));
	EXPECT_EQ(0, leaf_of(self, gpa + SZ_4K, NULL) & EPT_SPP);

	fd = kmmu_vcpu_stats_fd(self->vcpu);
	ASSERT_LE(0, fd);
	EXPECT_EQ(0, kmmu_stats_get(fd, "spp_misses", &misses));
	EXPECT_EQ(0, kmmu_stats_get(fd, "spp_exits", &spp_exits));
	close(fd);
	EXPECT_EQ(1, misses);	/* one 2 MiB of vectors built, at the first write */
	EXPECT_EQ(32, spp_exits);
}

/*
 * A sub-page written once (the TLB now allows it) loses write access: the
 * next write exits.  Without the flush after SET_ACCESS the TLB would let
 * it through.  Both ways: from restricted to more restricted (the vector
 * changes in place) and from all-ones to restricted (the leaf goes).
 */
KMMU_TEST_F(spp, taking_write_access_flushes)
{
	uint64_t gpa = SPP_GPA + 7 * SZ_4K;
	uint32_t map = 0x3;

	REQUIRE_EPT();
	ASSERT_EQ(0, kmmu_vm_subpages_set(self->vm, gpa >> 12, 1, 0, &map));
	EXPECT_EQ(0, write_stride(_metadata, self, gpa, 128, 2, 1));
	map = 0x2;
	ASSERT_EQ(0, kmmu_vm_subpages_set(self->vm, gpa >> 12, 1, 0, &map));
	EXPECT_EQ(1, write_stride(_metadata, self, gpa, 128, 2, 2));
	EXPECT_EQ(1 ^ gpa, *word_at(self, gpa));
	EXPECT_EQ(2 ^ (gpa + 128), *word_at(self, gpa + 128));

	gpa += SZ_4K;
	EXPECT_EQ(0, write_stride(_metadata, self, gpa, 128, 32, 3));
	map = 0xfffffffe;
	ASSERT_EQ(0, kmmu_vm_subpages_set(self->vm, gpa >> 12, 1, 0, &map));
	EXPECT_EQ(1, write_stride(_metadata, self, gpa, 128, 32, 4));
	EXPECT_EQ(3 ^ gpa, *word_at(self, gpa));

	/* Back to all-ones: writable again, by W, without SPP. */
	map = FULL;
	ASSERT_EQ(0, kmmu_vm_subpages_set(self->vm, gpa >> 12, 1, 0, &map));
	EXPECT_EQ(0, write_stride(_metadata, self, gpa, 128, 32, 5));
	EXPECT_EQ(5 ^ gpa, *word_at(self, gpa));
	EXPECT_EQ(0, leaf_of(self, gpa, NULL) & EPT_SPP);
	EXPECT_EQ(EPT_W, leaf_of(self, gpa, NULL) & EPT_W);
}

/*
 * Zaps, aging and host invalidations drop leaves; the permissions stay and
 * the next walk obeys them.
 */
KMMU_TEST_F(spp, zap_and_aging_keep_permissions)
{
	uint64_t gpa = SPP_GPA + 9 * SZ_4K;
	uint32_t map = 0xfffffffe;

	REQUIRE_EPT();
	ASSERT_EQ(0, kmmu_vm_subpages_set(self->vm, gpa >> 12, 1, 0, &map));
	EXPECT_EQ(1, write_stride(_metadata, self, gpa, 128, 32, 1));
	ASSERT_EQ(0, kmmu_vm_age(self->vm, SPP_GPA, SPP_SIZE, 0, KMMU_AGE_FLUSH, NULL, NULL));
	EXPECT_EQ(1, write_stride(_metadata, self, gpa, 128, 32, 2));
	ASSERT_EQ(0, kmmu_vm_zap(self->vm, SPP_GPA, SPP_SIZE, 0, 0));
	EXPECT_EQ(1, write_stride(_metadata, self, gpa, 128, 32, 3));
	ASSERT_EQ(0, kmmu_vm_zap(self->vm, 0, 0, 0, KMMU_ZAP_ALL));
	EXPECT_EQ(1, write_stride(_metadata, self, gpa, 128, 32, 4));
	EXPECT_EQ(map, map_of(self, gpa >> 12));
	EXPECT_EQ(0, *word_at(self, gpa));
	EXPECT_EQ(4 ^ (gpa + 128), *word_at(self, gpa + 128));
	/* The host takes the page away (an invalidation) and gives a new one. */
	ASSERT_EQ(0, kmmu_host_discard(word_at(self, gpa), SZ_4K));
	EXPECT_EQ(1, write_stride(_metadata, self, gpa, 128, 32, 5));
	EXPECT_EQ(0, *word_at(self, gpa));
	EXPECT_EQ(5 ^ (gpa + 128), *word_at(self, gpa + 128));
	EXPECT_EQ(map, map_of(self, gpa >> 12));
}

/*
 * Huge mappings: a restricted page is mapped 4K, and so is the rest of its
 * 2M; once its map is all-ones again, the 2M page maps huge.
 */
KMMU_TEST_F(spp, restricted_pages_map_4k_until_released)
{
	uint64_t gpa = SPP_GPA + 3 * SZ_4K;
	struct kmmu_mem huge;
	uint32_t map = 0x1, level = 0;
	int ret;

	REQUIRE_EPT();
	ret = kmmu_mem_alloc(&huge, KMMU_BACKING_HUGETLB_2M, SZ_2M);
	if (ret == -EOPNOTSUPP)
		SKIP(return, "no 2M hugetlb memory on this host");
	ASSERT_EQ(0, ret);
	memset(huge.addr, 0, SZ_2M);
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 0, 0, SPP_GPA, 0, NULL));
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 0, 0, SPP_GPA, SZ_2M, huge.addr));
	EXPECT_EQ(0, write_stride(_metadata, self, SPP_GPA, SZ_4K, 4, 1));
	leaf_of(self, gpa, &level);
	if (kmmu_host_quiet())
		EXPECT_EQ(KMMU_LEVEL_2M, level);

	ASSERT_EQ(0, kmmu_vm_subpages_set(self->vm, gpa >> 12, 1, 0, &map));
	EXPECT_EQ(0, leaf_of(self, gpa, NULL));	/* the 2M leaf went */
	EXPECT_EQ(0, write_stride(_metadata, self, SPP_GPA, SZ_4K, 4, 2));
	EXPECT_EQ(2, write_stride(_metadata, self, gpa + 128, 128, 2, 2));
	leaf_of(self, gpa, &level);
	EXPECT_EQ(KMMU_LEVEL_4K, level);
	leaf_of(self, SPP_GPA, &level);
	EXPECT_EQ(KMMU_LEVEL_4K, level);
	/* Huge-page recovery (logging off) leaves the range 4K while it is restricted. */
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 0, KMMU_MEM_LOG_DIRTY_PAGES, SPP_GPA, SZ_2M,
					 huge.addr));
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 0, 0, SPP_GPA, SZ_2M, huge.addr));
	leaf_of(self, SPP_GPA, &level);
	EXPECT_EQ(KMMU_LEVEL_4K, level);
	EXPECT_EQ(1, write_stride(_metadata, self, gpa + 128, 128, 1, 4));

	map = FULL;
	ASSERT_EQ(0, kmmu_vm_subpages_set(self->vm, gpa >> 12, 1, 0, &map));
	EXPECT_EQ(0, write_stride(_metadata, self, gpa, 128, 32, 3));
	leaf_of(self, gpa, &level);
	if (kmmu_host_quiet())
		EXPECT_EQ(KMMU_LEVEL_2M, level);
	EXPECT_EQ(3 ^ gpa, *(uint64_t *)((uint8_t *)huge.addr + 3 * SZ_4K));
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 0, 0, SPP_GPA, 0, NULL));
	kmmu_mem_free(&huge);
}

/* A moved slot starts all-ones at its new place; a deleted one has no map. */
KMMU_TEST_F(spp, memslot_move_and_delete_drop_permissions)
{
	uint64_t gpa = SPP_GPA + SZ_1G;
	uint32_t map = 0, got = 0;

	REQUIRE_EPT();
	ASSERT_EQ(0, kmmu_vm_subpages_set(self->vm, SPP_GFN + 1, 1, 0, &map));
	/* A flags change keeps them. */
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 0, KMMU_MEM_LOG_DIRTY_PAGES, SPP_GPA,
					 SPP_SIZE, self->mem.addr));
	EXPECT_EQ(0, map_of(self, SPP_GFN + 1));
	EXPECT_EQ(1, write_stride(_metadata, self, SPP_GPA + SZ_4K, 128, 1, 1));

	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 0, 0, gpa, SPP_SIZE, self->mem.addr));
	EXPECT_EQ(-ENOENT, kmmu_vm_subpages_get(self->vm, SPP_GFN + 1, 1, 0, &got));
	EXPECT_EQ(FULL, map_of(self, (gpa >> 12) + 1));
	EXPECT_EQ(0, write_stride(_metadata, self, gpa + SZ_4K, 128, 32, 2));

	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 0, 0, gpa, 0, NULL));
	EXPECT_EQ(-ENOENT, kmmu_vm_subpages_get(self->vm, (gpa >> 12) + 1, 1, 0, &got));
}

/* Dirty logging: every page of @n written since the last GET is in the log. */
static void expect_logged(struct __test_metadata *_metadata, FIXTURE_DATA(spp) *self,
			  const bool *written, int round)
{
	uint64_t bitmap[SPP_PAGES / 64];
	int i;

	ASSERT_EQ(0, kmmu_vm_get_dirty_log(self->vm, 0, bitmap));
	for (i = 0; i < SPP_PAGES; i++) {
		if (!written[i])
			continue;
		ASSERT_TRUE(bitmap[i / 64] & (1ULL << (i % 64))) {
			TH_LOG("round %d: page %d written through SPP and not logged", round, i);
		}
	}
}

/*
 * Sub-page 0 of every page always writable; the others come and go.  The
 * even pages are always restricted, so their leaves stay and only their
 * vectors change; the odd ones go from all-ones to restricted and back,
 * zapping their leaves.
 */
static void *flip_permissions(void *arg)
{
	struct flipper *f = arg;
	uint32_t maps[SPP_PAGES];
	uint64_t n = 0;
	int i;

	while (!__atomic_load_n(&f->stop, __ATOMIC_ACQUIRE)) {
		for (i = 0; i < SPP_PAGES; i++) {
			uint32_t m = 1u | ((uint32_t)(n * 0x9e3779b9u + i) & 0x7fffffffu);

			/* Even pages stay restricted (their leaves stay), odd ones come and go. */
			maps[i] = i % 2 == 0 || (n + i) % 3 ? m : FULL;
		}
		if (kmmu_vm_subpages_set(f->vm, SPP_GFN, SPP_PAGES, 0, maps))
			break;
		__atomic_store_n(&f->changes, ++n, __ATOMIC_RELEASE);
	}
	return NULL;
}

/*
 * Wait until the thread changed the permissions again (a few seconds at
 * most), so that every round of the test overlaps a change.
 */
static uint64_t flip_wait(FIXTURE_DATA(spp) *self, uint64_t seen)
{
	uint64_t now, t0 = kmmu_now_ns();

	while ((now = __atomic_load_n(&self->flip.changes, __ATOMIC_ACQUIRE)) == seen &&
	       kmmu_now_ns() - t0 < 5000000000ULL)
		sched_yield();
	return now;
}

/*
 * Round @round of the racing dirty-log tests: @vcpu writes @round ^ gpa to
 * the first word of every other page, the even ones in even rounds and the
 * odd ones in odd rounds.  (Sub-page 0 is always writable: no exit.)
 */
static void write_half(struct __test_metadata *_metadata, struct kmmu_vcpu *vcpu, int round)
{
	struct kmmu_workload wl = kmmu_wl_stride_writes(SPP_GPA + (round % 2) * SZ_4K,
							2 * SZ_4K, SPP_PAGES / 2, round);
	struct kmmu_run run;

	ASSERT_EQ(0, kmmu_vcpu_run_workload(vcpu, &wl, &run));
	ASSERT_EQ(KMMU_EXIT_DONE, run.exit_reason);
}

static int flip_start(FIXTURE_DATA(spp) *self, struct kmmu_vm *vm)
{
	self->flip = (struct flipper){ .vm = vm };
	if (pthread_create(&self->flip_thread, NULL, flip_permissions, &self->flip))
		return -1;
	self->flipping = true;
	return 0;
}

static void dirty_log_round_trips(struct __test_metadata *_metadata, FIXTURE_DATA(spp) *self,
				  const FIXTURE_VARIANT(spp) *variant, uint32_t mode)
{
	bool written[SPP_PAGES];
	uint64_t seen = 0;
	int round, i;

	REQUIRE_EPT();
	if (mode == KMMU_DIRTY_LOG_MODE_DBIT && !self->ad)
		SKIP(return, "D-bit logging needs A/D bits");
	ASSERT_EQ(0, kmmu_vm_enable_cap(self->vm, KMMU_CAP_DIRTY_LOG_MODE, mode));
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 0, KMMU_MEM_LOG_DIRTY_PAGES, SPP_GPA,
					 SPP_SIZE, self->mem.addr));
	ASSERT_EQ(0, flip_start(self, self->vm));
	for (round = 0; round < RACE_ROUNDS; round++) {
		seen = flip_wait(self, seen);
		/* Every other page, then the others: each round a different half. */
		for (i = 0; i < SPP_PAGES; i++)
			written[i] = (i + round) % 2 == 0;
		write_half(_metadata, self->vcpu, round);
		expect_logged(_metadata, self, written, round);
		for (i = 0; i < SPP_PAGES; i++) {
			uint64_t gpa = SPP_GPA + (uint64_t)i * SZ_4K;

			if (written[i])
				ASSERT_EQ((uint64_t)round ^ gpa, *word_at(self, gpa));
		}
	}
	flip_stop(self);
	EXPECT_LE(RACE_ROUNDS, self->flip.changes);
}

KMMU_TEST_F(spp, dirty_log_wrprot_loses_no_permitted_write)
{
	dirty_log_round_trips(_metadata, self, variant, KMMU_DIRTY_LOG_MODE_WRPROT);
}

KMMU_TEST_F(spp, dirty_log_dbit_loses_no_permitted_write)
{
	dirty_log_round_trips(_metadata, self, variant, KMMU_DIRTY_LOG_MODE_DBIT);
}

static void ring_page(void *arg, uint32_t slot, uint64_t offset)
{
	bool *seen = arg;

	if (slot == 0 && offset < SPP_PAGES)
		seen[offset] = true;
}

/* The same with dirty rings: every page written is pushed, in both modes. */
static void dirty_ring_round_trips(struct __test_metadata *_metadata, FIXTURE_DATA(spp) *self,
				   const FIXTURE_VARIANT(spp) *variant, uint32_t mode)
{
	bool seen[SPP_PAGES];
	struct kmmu_vcpu *vcpu;
	struct kmmu_vm *vm;
	uint64_t flips = 0;
	int round, i;

	REQUIRE_EPT();
	if (mode == KMMU_DIRTY_LOG_MODE_DBIT && !self->ad)
		SKIP(return, "D-bit logging needs A/D bits");
	KMMU_VM_CREATE(&variant->cfg, &vm);
	ASSERT_EQ(0, kmmu_vm_enable_cap(vm, KMMU_CAP_SPP, 1));
	ASSERT_EQ(0, kmmu_vm_enable_cap(vm, KMMU_CAP_DIRTY_LOG_MODE, mode));
	/* 4096 entries: a round (256 pages) never fills it. */
	ASSERT_EQ(0, kmmu_vm_enable_cap(vm, KMMU_CAP_DIRTY_LOG_RING, 4096 * 16));
	ASSERT_EQ(0, kmmu_vcpu_create(vm, 0, &vcpu));
	ASSERT_EQ(0, kmmu_vm_set_memslot(vm, 0, KMMU_MEM_LOG_DIRTY_PAGES, SPP_GPA, SPP_SIZE,
					 self->mem.addr));
	ASSERT_EQ(0, flip_start(self, vm));
	for (round = 0; round < RACE_ROUNDS; round++) {
		flips = flip_wait(self, flips);
		write_half(_metadata, vcpu, round);
		memset(seen, 0, sizeof(seen));
		kmmu_vcpu_collect_dirty_ring(vcpu, ring_page, seen);
		for (i = round % 2; i < SPP_PAGES; i += 2) {
			ASSERT_TRUE(seen[i]) {
				TH_LOG("round %d: page %d written through SPP and not pushed",
				       round, i);
			}
		}
		ASSERT_LE(0, kmmu_vm_reset_dirty_rings(vm));
	}
	flip_stop(self);
	EXPECT_LE(RACE_ROUNDS, self->flip.changes);
	kmmu_vm_free(vm);
}

KMMU_TEST_F(spp, dirty_ring_wrprot_loses_no_permitted_write)
{
	dirty_ring_round_trips(_metadata, self, variant, KMMU_DIRTY_LOG_MODE_WRPROT);
}

KMMU_TEST_F(spp, dirty_ring_dbit_loses_no_permitted_write)
{
	dirty_ring_round_trips(_metadata, self, variant, KMMU_DIRTY_LOG_MODE_DBIT);
}

/* Write-protection for logging: the SPP leaf faults on its next write, which is logged. */
KMMU_TEST_F(spp, logging_protects_spp_leaves)
{
	uint64_t gpa = SPP_GPA + 11 * SZ_4K;
	uint32_t map = 0xffff;
	bool written[SPP_PAGES] = {};

	REQUIRE_EPT();
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 0, KMMU_MEM_LOG_DIRTY_PAGES, SPP_GPA,
					 SPP_SIZE, self->mem.addr));
	ASSERT_EQ(0, kmmu_vm_subpages_set(self->vm, gpa >> 12, 1, 0, &map));
	written[11] = true;
	EXPECT_EQ(0, write_stride(_metadata, self, gpa, 128, 16, 1));
	expect_logged(_metadata, self, written, 0);
	EXPECT_EQ(0, leaf_of(self, gpa, NULL) & (EPT_SPP | EPT_W));
	EXPECT_EQ(0, write_stride(_metadata, self, gpa, 128, 16, 2));
	EXPECT_EQ(EPT_SPP, leaf_of(self, gpa, NULL) & (EPT_SPP | EPT_W));
	expect_logged(_metadata, self, written, 1);
	EXPECT_EQ(16, write_stride(_metadata, self, gpa, 128, 32, 3));
}

/* Zaps racing SET_ACCESS (TSan on the user backend): data and maps as expected. */
KMMU_TEST_F(spp, zap_races_set_access)
{
	uint64_t seen = 0;
	int i;

	REQUIRE_EPT();
	ASSERT_EQ(0, flip_start(self, self->vm));
	for (i = 0; i < 4 * RACE_ROUNDS; i++) {
		seen = flip_wait(self, seen);
		ASSERT_EQ(0, kmmu_vm_zap(self->vm, SPP_GPA + (i % 8) * SZ_2M / 8, SZ_2M / 8, 0, 0));
		/* Sub-page 0 is always writable: no exit. */
		ASSERT_EQ(0, write_stride(_metadata, self, SPP_GPA, SZ_4K, SPP_PAGES, i));
	}
	flip_stop(self);
	EXPECT_LE(4 * RACE_ROUNDS, self->flip.changes);
	for (i = 0; i < SPP_PAGES; i++)
		ASSERT_EQ((4 * RACE_ROUNDS - 1) ^ (SPP_GPA + (uint64_t)i * SZ_4K),
			  *word_at(self, SPP_GPA + (uint64_t)i * SZ_4K));
}

TEST_HARNESS_MAIN
