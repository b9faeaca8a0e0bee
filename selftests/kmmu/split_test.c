// SPDX-License-Identifier: GPL-2.0
/*
 * Huge mappings across dirty logging: enabling logging splits a slot's 2M
 * and 1G mappings down to 4K before any vCPU runs (eager split, whatever
 * the chunk size) or, with eager split off, on the first write to each
 * page; disabling it rebuilds the huge mappings in place where all 512
 * children are there, and zaps the tables that cannot be rebuilt so that
 * the next fault maps huge again.  Data and pfns must survive every step.
 */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>

#include "kmmu_user.h"
#include "test_util.h"

/* 1G aligned, so every backing's pages can line up with guest pages. */
#define SPLIT_GPA	0x100000000ULL

/* What each phase writes (xor the gpa, so each word is different). */
#define POPULATE_VALUE	0x5000000000000000ULL
#define LOG_VALUE	0x4c00000000000000ULL
#define FINAL_VALUE	0x4600000000000000ULL

/*
 * SPTE bits as kmod/core/spte.h lays them out after the SDM and the APM
 * (the tests see the core only through selftests/lib).
 */
#define SPTE_PRESENT	(1ULL << 11)	/* software: shadow-present */
#define SPTE_PFN_MASK	(((1ULL << 51) - 1) & ~0xfffULL)
#define SPTE_READABLE	(1ULL << 0)	/* EPT R, NPT P */
#define SPTE_WRITABLE	(1ULL << 1)	/* EPT W, NPT RW */
#define SPTE_LARGE	(1ULL << 7)	/* EPT bit 7, NPT PS */
#define EPT_A		(1ULL << 8)
#define EPT_D		(1ULL << 9)
#define NPT_A		(1ULL << 5)
#define NPT_D		(1ULL << 6)

#define MAX_HUGE	4	/* huge pages per slot in these tests */

/*
 * In this harness ASSERT_*() and EXPECT_*() expand to two statements, so
 * a loop or an if around one takes braces or it does not bail out in time.
 */

/*
 * One slot over one backing, and what the test knows it must hold.  The
 * workloads write one word every @stride bytes; @want mirrors those words.
 */
struct split_ctx {
	struct kmmu_vm *vm;
	struct kmmu_vcpu *vcpu;
	struct kmmu_mem mem;
	uint8_t *hva;			/* of the slot: mem.addr unless a test moves it */
	bool ad;			/* the VM's SPTEs have A/D bits */
	uint64_t accessed, dirty;	/* and which ones */
	uint64_t size;			/* of the slot */
	uint64_t huge;			/* bytes per huge page of the backing */
	int level;			/* their mapping level */
	uint64_t stride;
	uint64_t nr_words;
	uint64_t *want;
	/*
	 * The host keeps each page where and how big it first mapped it: not
	 * so for THP on dev, which the kernel may split or migrate any time.
	 */
	bool stable;
	uint64_t nr_huge;		/* huge leaves after the first write pass */
	uint64_t huge_pfn[MAX_HUGE];	/* their pfns, 0 where the host gave 4K (dev THP) */
};

/* Exact levels and counts: the host leaves the memory alone (test_util.h). */
static bool host_quiet(void)
{
	return kmmu_host_quiet();
}

static uint64_t *word(void *base, uint64_t off)
{
	return (uint64_t *)((uint8_t *)base + off);
}

/* Splits (or recoveries) one huge leaf of @level takes: a 1G one goes via 512 2M ones. */
static uint64_t steps_per_huge(int level)
{
	return level == KMMU_LEVEL_1G ? 1 + 512 : 1;
}

static void ctx_free(struct split_ctx *c)
{
	kmmu_vm_free(c->vm);
	c->vm = NULL;
	kmmu_mem_free(&c->mem);
	free(c->want);
	c->want = NULL;
}

/*
 * A VM of @cfg with one vCPU, and @size bytes of @backing.  The 2M
 * backings get a word in every 4K page; the 1G one a word every 2M + 4K,
 * so each 2M range has one, each at another 4K page.  Return false after
 * a SKIP when the host has no such memory (huge pages not reserved).
 */
static bool ctx_start(struct __test_metadata *_metadata, struct split_ctx *c,
		      const struct kmmu_vm_config *cfg, enum kmmu_backing backing, uint64_t size)
{
	int ret;

	ret = kmmu_mem_alloc(&c->mem, backing, size);
	if (ret == -EOPNOTSUPP)
		SKIP(return false, "no %s memory on this host (huge pages not reserved?)",
		     kmmu_backing_name(backing));
	ASSERT_EQ(0, ret);
	KMMU_VM_CREATE(cfg, &c->vm);
	ASSERT_EQ(0, kmmu_vcpu_create(c->vm, 0, &c->vcpu));

	c->ad = kmmu_vm_format(c->vm) == KMMU_SPTE_FORMAT_NPT ||
		!(cfg->flags & KMMU_VM_AD_DISABLED);
	c->accessed = kmmu_vm_format(c->vm) == KMMU_SPTE_FORMAT_EPT ? EPT_A : NPT_A;
	c->dirty = kmmu_vm_format(c->vm) == KMMU_SPTE_FORMAT_EPT ? EPT_D : NPT_D;
	c->hva = c->mem.addr;
	c->stable = host_quiet() || backing != KMMU_BACKING_ANON_THP;
	c->size = size;
	c->huge = kmmu_backing_page_size(backing);
	c->level = c->huge == SZ_1G ? KMMU_LEVEL_1G : KMMU_LEVEL_2M;
	c->stride = c->huge == SZ_1G ? SZ_2M + SZ_4K : SZ_4K;
	c->nr_words = (size - sizeof(uint64_t)) / c->stride + 1;
	c->want = calloc(c->nr_words, sizeof(*c->want));
	ASSERT_NE(NULL, c->want);
	ASSERT_GE(MAX_HUGE, size / c->huge);
	return true;
}

static uint64_t word_gpa(const struct split_ctx *c, uint64_t i)
{
	return SPLIT_GPA + i * c->stride;
}

static int set_logging(struct split_ctx *c, bool on)
{
	return kmmu_vm_set_memslot(c->vm, 0, on ? KMMU_MEM_LOG_DIRTY_PAGES : 0, SPLIT_GPA,
				   c->size, c->hva);
}

/* Words [first, first + n) get @value ^ gpa, written by the vCPU. */
static struct kmmu_run write_words(struct __test_metadata *_metadata, struct split_ctx *c,
				   uint64_t first, uint64_t n, uint64_t value)
{
	struct kmmu_workload wl = kmmu_wl_stride_writes(word_gpa(c, first), c->stride, n, value);
	struct kmmu_run run;
	uint64_t i;

	ASSERT_EQ(0, kmmu_vcpu_run_workload(c->vcpu, &wl, &run));
	ASSERT_EQ(KMMU_EXIT_DONE, run.exit_reason);
	EXPECT_EQ(n, run.accesses);
	for (i = first; i < first + n; i++)
		c->want[i] = value ^ word_gpa(c, i);
	return run;
}

/* The vCPU reads words [first, first + n) and sees what was last written there. */
static struct kmmu_run read_words(struct __test_metadata *_metadata, struct split_ctx *c,
				  uint64_t first, uint64_t n)
{
	struct kmmu_workload wl = {
		.gpa = word_gpa(c, first),
		.size = (n - 1) * c->stride + sizeof(uint64_t),
		.stride = c->stride,
		.iterations = 1,
		.pattern = KMMU_PATTERN_STRIDE,
	};
	struct kmmu_run run;
	uint64_t i, sum = 0;

	ASSERT_EQ(0, kmmu_vcpu_run_workload(c->vcpu, &wl, &run));
	ASSERT_EQ(KMMU_EXIT_DONE, run.exit_reason);
	EXPECT_EQ(n, run.accesses);
	for (i = first; i < first + n; i++)
		sum += c->want[i];
	EXPECT_EQ(sum, run.read_sum);
	return run;
}

/* Every word holds what the last write to it stored: nothing was lost or moved. */
static void check_data(struct __test_metadata *_metadata, struct split_ctx *c)
{
	uint64_t i;

	for (i = 0; i < c->nr_words; i++) {
		ASSERT_EQ(c->want[i], *word(c->hva, i * c->stride)) {
			TH_LOG("word %llu, gpa %#llx", (unsigned long long)i,
			       (unsigned long long)word_gpa(c, i));
		}
	}
}

/* The leaf that maps @gpa: its level, or 0 when the walk ends on a non-present entry. */
static int leaf_at(struct __test_metadata *_metadata, struct split_ctx *c, uint64_t gpa,
		   uint64_t *spte)
{
	struct kmmu_spte_query q;

	ASSERT_EQ(0, kmmu_vm_get_spte(c->vm, gpa, 0, &q));
	*spte = q.sptes[q.level];
	if (!q.level || !(*spte & SPTE_PRESENT))
		return 0;
	return q.level;
}

static uint64_t spte_pfn(uint64_t spte)
{
	return (spte & SPTE_PFN_MASK) >> 12;
}

/*
 * Pages of each size mapped now: exactly these on the user backend; on dev
 * at most these, as the host may take pages away at any time (the QEMU
 * bench runs the suite under memory pressure too).
 */
static void expect_pages(struct __test_metadata *_metadata, struct split_ctx *c,
			 uint64_t n4k, uint64_t n2m, uint64_t n1g)
{
	struct kmmu_vm_stats st;

	ASSERT_EQ(0, kmmu_vm_stats(c->vm, &st));
	if (host_quiet()) {
		EXPECT_EQ(n4k, st.pages_4k);
		EXPECT_EQ(n2m, st.pages_2m);
		EXPECT_EQ(n1g, st.pages_1g);
	} else {
		EXPECT_GE(n4k, st.pages_4k);
		EXPECT_GE(n2m, st.pages_2m);
		EXPECT_GE(n1g, st.pages_1g);
	}
}

/* Huge pages of the slot as huge leaves: @n of the backing's size, none of the other. */
static void expect_huge_pages(struct __test_metadata *_metadata, struct split_ctx *c,
			      uint64_t n4k, uint64_t n)
{
	expect_pages(_metadata, c, n4k, c->level == KMMU_LEVEL_2M ? n : 0,
		     c->level == KMMU_LEVEL_1G ? n : 0);
}

/*
 * After write faults split one huge page in place: 512 4K leaves where it
 * was (a 1G page: 512 4K leaves for each of @n2m 2M pieces written, and
 * the other 2M pieces as 2M leaves), the other huge pages as they were.
 */
static void expect_split_huge_page(struct __test_metadata *_metadata, struct split_ctx *c,
				   uint64_t n2m)
{
	if (c->level == KMMU_LEVEL_1G)
		expect_pages(_metadata, c, 512 * n2m, 512 - n2m, c->nr_huge - 1);
	else
		expect_huge_pages(_metadata, c, 512, c->nr_huge - 1);
}

/* On dev a counter may fall short (pages zapped by the host first); never beyond. */
static void expect_count(struct __test_metadata *_metadata, uint64_t want, uint64_t seen,
			 const char *what)
{
	if (host_quiet()) {
		EXPECT_EQ(want, seen) {
			TH_LOG("%s", what);
		}
	} else {
		EXPECT_GE(want, seen) {
			TH_LOG("%s", what);
		}
	}
}

/*
 * Map the slot with one write pass and note which huge pages came out as
 * huge leaves, and their pfns.  The user backend gives huge leaves
 * everywhere; a dev host may give 4K for THP.  On dev a leaf may also be
 * zapped just after the write: touch it again a few times.
 */
static void populate(struct __test_metadata *_metadata, struct split_ctx *c)
{
	uint64_t h, spte;
	int level, try;

	ASSERT_EQ(0, set_logging(c, false));
	write_words(_metadata, c, 0, c->nr_words, POPULATE_VALUE);
	for (h = 0; h < c->size / c->huge; h++) {
		uint64_t gpa = SPLIT_GPA + h * c->huge;

		for (try = 0; ; try++) {
			level = leaf_at(_metadata, c, gpa, &spte);
			if (level || host_quiet() || try == 5)
				break;
			/* A write, so that the leaf is dirty like the others. */
			write_words(_metadata, c, h * c->huge / c->stride, 1, POPULATE_VALUE);
		}
		if (level == c->level) {
			c->huge_pfn[h] = spte_pfn(spte);
			c->nr_huge++;
		} else {
			ASSERT_FALSE(host_quiet()) {
				TH_LOG("huge page %llu mapped at level %d", (unsigned long long)h,
				       level);
			}
		}
		if (level == c->level) {
			uint64_t pfn;

			/* The leaf maps the host's huge page. */
			ASSERT_EQ(0, kmmu_host_pfn((uint8_t *)c->mem.addr + h * c->huge, &pfn));
			EXPECT_EQ(pfn, c->huge_pfn[h]);
		}
	}
	if (host_quiet()) {
		expect_huge_pages(_metadata, c, 0, c->size / c->huge);
	}
}

/*
 * The 4K pages whose leaves are checked after a split: every page of the
 * first 2M of each huge page, and one page in each further 2M.
 */
static uint64_t nr_probes(const struct split_ctx *c)
{
	return 512 + c->huge / SZ_2M - 1;
}

static uint64_t probe_off(uint64_t i)
{
	if (i < 512)
		return i * SZ_4K;
	i -= 511;
	return i * SZ_2M + ((i * 37) % 512) * SZ_4K;
}

/*
 * After an eager split: each probed page of a huge page that was mapped
 * huge is a 4K leaf of the same pfn plus its offset, write-protected for
 * logging, with every other attribute of the huge leaf it came from.  On
 * dev a leaf the host zapped meanwhile is not there, which is fine.
 */
static void expect_split_leaves(struct __test_metadata *_metadata, struct split_ctx *c)
{
	uint64_t h, i, spte;
	int level;

	for (h = 0; h < c->size / c->huge; h++) {
		if (!c->huge_pfn[h])
			continue;
		for (i = 0; i < nr_probes(c); i++) {
			uint64_t off = probe_off(i);

			level = leaf_at(_metadata, c, SPLIT_GPA + h * c->huge + off, &spte);
			if (!level && !host_quiet())
				continue;
			ASSERT_EQ(KMMU_LEVEL_4K, level) {
				TH_LOG("huge page %llu, offset %#llx", (unsigned long long)h,
				       (unsigned long long)off);
			}
			ASSERT_EQ(c->huge_pfn[h] + off / SZ_4K, spte_pfn(spte));
			EXPECT_FALSE(spte & SPTE_LARGE);
			/*
			 * Without A/D bits, aging on a busy host makes a leaf
			 * access-tracked: its R bit goes, saved in the SPTE.
			 */
			if (c->ad || host_quiet()) {
				EXPECT_TRUE(spte & SPTE_READABLE);
			}
			EXPECT_FALSE(spte & SPTE_WRITABLE);
			/* Written through the huge leaf: D came along (A may be aged on dev). */
			if (c->ad) {
				EXPECT_TRUE(spte & c->dirty);
			}
			if (c->ad && host_quiet()) {
				EXPECT_TRUE(spte & c->accessed);
			}
		}
	}
}

/*
 * Each huge page that was mapped huge is a huge leaf of its first pfn
 * again (on dev: if the host still maps it, and maps it huge).
 */
static void expect_huge_leaves(struct __test_metadata *_metadata, struct split_ctx *c,
			       bool written)
{
	uint64_t h, spte;
	int level;

	for (h = 0; h < c->size / c->huge; h++) {
		if (!c->huge_pfn[h])
			continue;
		level = leaf_at(_metadata, c, SPLIT_GPA + h * c->huge + c->huge / 2, &spte);
		if ((!level && !host_quiet()) || (level != c->level && !c->stable))
			continue;
		ASSERT_EQ(c->level, level) {
			TH_LOG("huge page %llu", (unsigned long long)h);
		}
		EXPECT_EQ(c->huge_pfn[h], spte_pfn(spte));
		EXPECT_TRUE(spte & SPTE_LARGE);
		EXPECT_TRUE(spte & SPTE_READABLE);
		if (written) {
			EXPECT_TRUE(spte & SPTE_WRITABLE);
		}
		if (written && c->ad) {
			EXPECT_TRUE(spte & c->dirty);
		}
	}
}

/* The dirty log names exactly the pages of the @nr words in @words. */
static void expect_dirty_log(struct __test_metadata *_metadata, struct split_ctx *c,
			     const uint64_t *words, unsigned int nr)
{
	uint64_t pages = c->size / SZ_4K, longs = (pages + 63) / 64, i;
	uint64_t *bitmap = calloc(longs, sizeof(uint64_t));
	uint64_t *want = calloc(longs, sizeof(uint64_t));

	ASSERT_NE(NULL, bitmap);
	ASSERT_NE(NULL, want);
	for (i = 0; i < nr; i++) {
		uint64_t page = words[i] * c->stride / SZ_4K;

		want[page / 64] |= 1ULL << (page % 64);
	}
	ASSERT_EQ(0, kmmu_vm_get_dirty_log(c->vm, 0, bitmap));
	for (i = 0; i < longs; i++) {
		EXPECT_EQ(want[i], bitmap[i]) {
			TH_LOG("pages %llu..%llu", (unsigned long long)i * 64,
			       (unsigned long long)i * 64 + 63);
		}
	}
	free(bitmap);
	free(want);
}

/* ---- eager split, for every format and chunk size ---- */

FIXTURE(eager_split) {
	struct split_ctx c;
};

FIXTURE_VARIANT(eager_split) {
	struct kmmu_vm_config cfg;
	uint64_t chunk;		/* KMMU_CAP_EAGER_SPLIT_CHUNK_SIZE, 0: the default 64 MiB */
};

#define CFG_EPT		{ .spte_format = KMMU_SPTE_FORMAT_EPT }
#define CFG_EPT_AD_OFF	{ .spte_format = KMMU_SPTE_FORMAT_EPT, .flags = KMMU_VM_AD_DISABLED }
#define CFG_EPT_VE	{ .spte_format = KMMU_SPTE_FORMAT_EPT,				\
			  .flags = KMMU_VM_NONPRESENT_SUPPRESS_VE }
#define CFG_NPT		{ .spte_format = KMMU_SPTE_FORMAT_NPT }

#define EAGER_SPLIT_VARIANT(name, config, bytes)					\
FIXTURE_VARIANT_ADD(eager_split, name) {						\
	.cfg = config,									\
	.chunk = bytes,									\
}

/* One table per batch, 1 per batch (2M of mappings), and the most the core batches. */
EAGER_SPLIT_VARIANT(ept, CFG_EPT, 0);
EAGER_SPLIT_VARIANT(ept_chunk_4k, CFG_EPT, SZ_4K);
EAGER_SPLIT_VARIANT(ept_chunk_2m, CFG_EPT, SZ_2M);
EAGER_SPLIT_VARIANT(ept_chunk_1g, CFG_EPT, SZ_1G);
EAGER_SPLIT_VARIANT(ept_ad_disabled, CFG_EPT_AD_OFF, 0);
EAGER_SPLIT_VARIANT(ept_ad_disabled_chunk_4k, CFG_EPT_AD_OFF, SZ_4K);
EAGER_SPLIT_VARIANT(ept_ad_disabled_chunk_2m, CFG_EPT_AD_OFF, SZ_2M);
EAGER_SPLIT_VARIANT(ept_ad_disabled_chunk_1g, CFG_EPT_AD_OFF, SZ_1G);
EAGER_SPLIT_VARIANT(ept_suppress_ve, CFG_EPT_VE, 0);
EAGER_SPLIT_VARIANT(ept_suppress_ve_chunk_4k, CFG_EPT_VE, SZ_4K);
EAGER_SPLIT_VARIANT(ept_suppress_ve_chunk_2m, CFG_EPT_VE, SZ_2M);
EAGER_SPLIT_VARIANT(ept_suppress_ve_chunk_1g, CFG_EPT_VE, SZ_1G);
EAGER_SPLIT_VARIANT(npt, CFG_NPT, 0);
EAGER_SPLIT_VARIANT(npt_chunk_4k, CFG_NPT, SZ_4K);
EAGER_SPLIT_VARIANT(npt_chunk_2m, CFG_NPT, SZ_2M);
EAGER_SPLIT_VARIANT(npt_chunk_1g, CFG_NPT, SZ_1G);

FIXTURE_SETUP(eager_split)
{
	KMMU_REQUIRE_BACKEND();
}

/*
 * EXPECT, not ASSERT: a failed ASSERT here would jump back into the
 * harness, which runs the teardown again.
 */
FIXTURE_TEARDOWN(eager_split)
{
	ctx_free(&self->c);
	EXPECT_EQ(0, kmmu_lib_leak_check());
}

/*
 * Populate, log, write half while logging, stop logging, write it all:
 * the split happens when logging starts, before any vCPU runs; the
 * recovery when it stops, in place, with no table zapped.
 */
static void check_eager_split(struct __test_metadata *_metadata, struct split_ctx *c,
			      const FIXTURE_VARIANT(eager_split) *variant,
			      enum kmmu_backing backing, uint64_t size)
{
	uint64_t pages = size / SZ_4K, half, steps, *logged, i;
	struct kmmu_vm_stats st0, st1, st2, st3;
	struct kmmu_run run;

	if (!ctx_start(_metadata, c, &variant->cfg, backing, size))
		return;
	if (variant->chunk) {
		ASSERT_EQ(0, kmmu_vm_enable_cap(c->vm, KMMU_CAP_EAGER_SPLIT_CHUNK_SIZE,
						variant->chunk));
	}
	populate(_metadata, c);
	if (!c->nr_huge)
		SKIP(return, "the host mapped no %s page huge (THP off here?)",
		     kmmu_backing_name(backing));
	steps = c->nr_huge * steps_per_huge(c->level);
	ASSERT_EQ(0, kmmu_vm_stats(c->vm, &st0));

	/* Logging on: every huge leaf is 4K before the vCPU runs again. */
	ASSERT_EQ(0, set_logging(c, true));
	ASSERT_EQ(0, kmmu_vm_stats(c->vm, &st1));
	EXPECT_EQ(0, st1.pages_2m);
	EXPECT_EQ(0, st1.pages_1g);
	expect_count(_metadata, pages, st1.pages_4k, "4K leaves after the split");
	expect_count(_metadata, steps, st1.splits - st0.splits, "splits");
	EXPECT_EQ(st0.faults, st1.faults);
	expect_split_leaves(_metadata, c);
	check_data(_metadata, c);

	/* Each first write is fixed by the fast path: there is nothing left to split. */
	half = c->nr_words / 2;
	run = write_words(_metadata, c, 0, half, LOG_VALUE);
	ASSERT_EQ(0, kmmu_vm_stats(c->vm, &st2));
	/*
	 * Without A/D bits, the host's aging under pressure marks leaves for
	 * access tracking, and the next access to one is one fast fault more.
	 */
	if (c->ad || host_quiet())
		expect_count(_metadata, half, st2.fast_faults - st1.fast_faults, "fast faults");
	if (host_quiet()) {
		EXPECT_EQ(half, run.faults);
	}
	EXPECT_EQ(st1.splits, st2.splits);
	expect_pages(_metadata, c, pages, 0, 0);
	logged = calloc(half, sizeof(*logged));
	ASSERT_NE(NULL, logged);
	for (i = 0; i < half; i++)
		logged[i] = i;
	expect_dirty_log(_metadata, c, logged, half);
	free(logged);

	/* Logging off: the 512 children of each table are one huge leaf again. */
	ASSERT_EQ(0, set_logging(c, false));
	ASSERT_EQ(0, kmmu_vm_stats(c->vm, &st3));
	expect_huge_pages(_metadata, c, 0, c->nr_huge);
	expect_count(_metadata, steps, st3.recoveries - st2.recoveries, "recoveries");
	if (host_quiet()) {
		EXPECT_EQ(st2.collapsible_zaps, st3.collapsible_zaps);
	}
	expect_huge_leaves(_metadata, c, false);
	check_data(_metadata, c);

	/*
	 * The log re-protected every page, so each huge leaf came back
	 * read-only but MMU-writable: one fast fault per huge page, no split.
	 */
	ASSERT_EQ(0, kmmu_vm_stats(c->vm, &st0));
	run = write_words(_metadata, c, 0, c->nr_words, FINAL_VALUE);
	ASSERT_EQ(0, kmmu_vm_stats(c->vm, &st1));
	if (host_quiet()) {
		EXPECT_EQ(c->nr_huge, run.faults);
		EXPECT_EQ(c->nr_huge, st1.fast_faults - st0.fast_faults);
	}
	EXPECT_EQ(st0.splits, st1.splits);
	expect_huge_pages(_metadata, c, 0, c->nr_huge);
	expect_huge_leaves(_metadata, c, true);
	check_data(_metadata, c);
}

KMMU_TEST_F(eager_split, thp)
{
	check_eager_split(_metadata, &self->c, variant, KMMU_BACKING_ANON_THP, 4 * SZ_2M);
}

KMMU_TEST_F(eager_split, hugetlb_2m)
{
	check_eager_split(_metadata, &self->c, variant, KMMU_BACKING_HUGETLB_2M, 4 * SZ_2M);
}

KMMU_TEST_F(eager_split, hugetlb_1g)
{
	check_eager_split(_metadata, &self->c, variant, KMMU_BACKING_HUGETLB_1G, SZ_1G);
}

/* ---- split on fault, and tables that cannot be rebuilt ---- */

/* A vCPU thread writing its words pass after pass, each pass a new value. */
struct writer {
	struct split_ctx *c;
	struct kmmu_vcpu *vcpu;
	unsigned int idx;
	uint64_t first, n;		/* its words */
	const int *stop;
	uint64_t passes;		/* completed; read by the test while running */
	int err;			/* -errno from the library */
	uint32_t bad_exit;		/* an exit other than DONE */
	pthread_t thread;
	bool started;
};

FIXTURE(split) {
	struct split_ctx c;
	struct writer w[2];
	int stop;
};

FIXTURE_VARIANT(split) {
	struct kmmu_vm_config cfg;
};

KMMU_ADD_FORMAT_VARIANTS(split);

FIXTURE_SETUP(split)
{
	KMMU_REQUIRE_BACKEND();
}

static void stop_writers(FIXTURE_DATA(split) *self)
{
	unsigned int i;

	__atomic_store_n(&self->stop, 1, __ATOMIC_RELEASE);
	for (i = 0; i < ARRAY_SIZE(self->w); i++) {
		if (self->w[i].started)
			pthread_join(self->w[i].thread, NULL);
		self->w[i].started = false;
	}
}

FIXTURE_TEARDOWN(split)
{
	/* A failed ASSERT may leave writers running: they go first. */
	stop_writers(self);
	ctx_free(&self->c);
	EXPECT_EQ(0, kmmu_lib_leak_check());
}

/*
 * Eager split off: enabling logging only write-protects the huge leaves.
 * Reads go through them; the first write to a page zaps its huge leaf and
 * maps that page alone, 4K.  Disabling logging cannot rebuild a table with
 * holes, so it zaps it, and the next access maps huge again.
 */
static void check_split_on_fault(struct __test_metadata *_metadata, struct split_ctx *c,
				 const struct kmmu_vm_config *cfg, enum kmmu_backing backing,
				 uint64_t size)
{
	bool gig = backing == KMMU_BACKING_HUGETLB_1G;
	struct kmmu_vm_stats st0, st1, st2;
	uint64_t spte, h, w[2], words_per_huge;
	struct kmmu_run run;
	int level, i;

	if (!ctx_start(_metadata, c, cfg, backing, size))
		return;
	ASSERT_EQ(0, kmmu_vm_enable_cap(c->vm, KMMU_CAP_EAGER_SPLIT_CHUNK_SIZE, 0));
	populate(_metadata, c);
	if (!c->nr_huge)
		SKIP(return, "the host mapped no %s page huge (THP off here?)",
		     kmmu_backing_name(backing));
	/* The last huge page that is mapped huge takes the writes. */
	for (h = size / c->huge - 1; !c->huge_pfn[h]; h--)
		;
	words_per_huge = c->huge / c->stride;
	w[0] = h * words_per_huge + 5;
	w[1] = h * words_per_huge + 6;
	ASSERT_EQ(0, kmmu_vm_stats(c->vm, &st0));

	ASSERT_EQ(0, set_logging(c, true));
	ASSERT_EQ(0, kmmu_vm_stats(c->vm, &st1));
	EXPECT_EQ(st0.splits, st1.splits);
	expect_huge_pages(_metadata, c, 0, c->nr_huge);
	level = leaf_at(_metadata, c, word_gpa(c, w[0]), &spte);
	if (level || host_quiet()) {
		ASSERT_EQ(c->level, level);
		EXPECT_FALSE(spte & SPTE_WRITABLE);
	}

	/* Reads need no write access: not a single fault. */
	run = read_words(_metadata, c, 0, c->nr_words);
	if (host_quiet()) {
		EXPECT_EQ(0, run.faults);
	}
	expect_huge_pages(_metadata, c, 0, c->nr_huge);

	/*
	 * The first write takes the slow path, which splits the huge leaf in
	 * place (a 1G one down to 2M, then that 2M to 4K): every piece stays
	 * mapped, write-protected, and the written page is made writable.
	 */
	ASSERT_EQ(0, kmmu_vm_stats(c->vm, &st1));
	run = write_words(_metadata, c, w[0], 1, LOG_VALUE);
	if (host_quiet()) {
		EXPECT_EQ(1, run.faults);
	}
	expect_split_huge_page(_metadata, c, 1);
	/*
	 * The next write, to the next page of a 2M backing, finds a 4K leaf:
	 * the fast path.  Under 1G the words are 2M apart: it splits another
	 * 2M piece.
	 */
	run = write_words(_metadata, c, w[1], 1, LOG_VALUE);
	ASSERT_EQ(0, kmmu_vm_stats(c->vm, &st2));
	if (host_quiet()) {
		EXPECT_EQ(st1.fast_faults + (gig ? 0 : 1), st2.fast_faults);
		EXPECT_EQ(st1.splits + (gig ? 3 : 1), st2.splits);
	}
	expect_split_huge_page(_metadata, c, 2);
	for (i = 0; i < 2; i++) {
		uint64_t off = w[i] * c->stride - h * c->huge;

		level = leaf_at(_metadata, c, word_gpa(c, w[i]), &spte);
		if (!level && !host_quiet())
			continue;
		ASSERT_EQ(KMMU_LEVEL_4K, level);
		if (c->stable) {
			EXPECT_EQ(c->huge_pfn[h] + off / SZ_4K, spte_pfn(spte));
		}
		EXPECT_TRUE(spte & SPTE_WRITABLE);
	}
	/* The rest of that huge page stayed mapped, write-protected. */
	if (host_quiet()) {
		EXPECT_EQ(gig ? KMMU_LEVEL_2M : KMMU_LEVEL_4K,
			  leaf_at(_metadata, c, word_gpa(c, w[0]) + 2 * c->stride, &spte));
		EXPECT_FALSE(spte & SPTE_WRITABLE);
	}
	expect_dirty_log(_metadata, c, w, 2);
	check_data(_metadata, c);

	/* The split huge page is whole again at once: rebuilt in place. */
	ASSERT_EQ(0, set_logging(c, false));
	ASSERT_EQ(0, kmmu_vm_stats(c->vm, &st1));
	if (c->stable) {
		EXPECT_EQ(st2.recoveries + (gig ? 3 : 1), st1.recoveries);
		EXPECT_EQ(st2.collapsible_zaps, st1.collapsible_zaps);
		expect_huge_pages(_metadata, c, 0, c->nr_huge);
	}
	check_data(_metadata, c);
	write_words(_metadata, c, 0, c->nr_words, FINAL_VALUE);
	expect_huge_pages(_metadata, c, 0, c->nr_huge);
	expect_huge_leaves(_metadata, c, true);
	check_data(_metadata, c);
}

KMMU_TEST_F(split, on_fault_thp)
{
	check_split_on_fault(_metadata, &self->c, &variant->cfg, KMMU_BACKING_ANON_THP,
			     4 * SZ_2M);
}

KMMU_TEST_F(split, on_fault_hugetlb_2m)
{
	check_split_on_fault(_metadata, &self->c, &variant->cfg, KMMU_BACKING_HUGETLB_2M,
			     4 * SZ_2M);
}

KMMU_TEST_F(split, on_fault_hugetlb_1g)
{
	check_split_on_fault(_metadata, &self->c, &variant->cfg, KMMU_BACKING_HUGETLB_1G, SZ_1G);
}

/*
 * A slot that logs from the start: the vCPU maps a few 4K pages of each
 * 2M range.  Stopping the log finds tables with holes, zaps them, and the
 * next access maps 2M.
 */
static void check_partial_tables(struct __test_metadata *_metadata, struct split_ctx *c,
				 const struct kmmu_vm_config *cfg, enum kmmu_backing backing)
{
	const uint64_t touched[] = { 0, 1, 100, 512 + 511 };
	const uint64_t size = 2 * SZ_2M;
	struct kmmu_vm_stats st0, st1;
	uint64_t spte, h;
	unsigned int i;
	int level;

	if (!ctx_start(_metadata, c, cfg, backing, size))
		return;
	ASSERT_EQ(0, set_logging(c, true));
	for (i = 0; i < ARRAY_SIZE(touched); i++)
		write_words(_metadata, c, touched[i], 1, POPULATE_VALUE);
	expect_pages(_metadata, c, ARRAY_SIZE(touched), 0, 0);
	ASSERT_EQ(0, kmmu_vm_stats(c->vm, &st0));

	ASSERT_EQ(0, set_logging(c, false));
	ASSERT_EQ(0, kmmu_vm_stats(c->vm, &st1));
	expect_count(_metadata, 2, st1.collapsible_zaps - st0.collapsible_zaps,
		     "collapsible zaps");
	EXPECT_EQ(st0.recoveries, st1.recoveries);
	expect_pages(_metadata, c, 0, 0, 0);
	check_data(_metadata, c);

	/* One read per 2M range maps it whole (a dev host may have split a THP). */
	read_words(_metadata, c, 2, 1);
	read_words(_metadata, c, 512 + 7, 1);
	for (h = 0; h < 2; h++) {
		level = leaf_at(_metadata, c, SPLIT_GPA + h * SZ_2M + 3 * SZ_4K, &spte);
		if (host_quiet() || backing == KMMU_BACKING_HUGETLB_2M) {
			EXPECT_EQ(KMMU_LEVEL_2M, level);
		}
		if (level == KMMU_LEVEL_2M) {
			uint64_t pfn;

			ASSERT_EQ(0, kmmu_host_pfn((uint8_t *)c->mem.addr + h * SZ_2M, &pfn));
			EXPECT_EQ(pfn, spte_pfn(spte));
		}
	}
	if (host_quiet()) {
		expect_pages(_metadata, c, 0, 2, 0);
	}
	write_words(_metadata, c, 0, c->nr_words, FINAL_VALUE);
	check_data(_metadata, c);
}

KMMU_TEST_F(split, partial_tables_zapped_thp)
{
	check_partial_tables(_metadata, &self->c, &variant->cfg, KMMU_BACKING_ANON_THP);
}

KMMU_TEST_F(split, partial_tables_zapped_hugetlb_2m)
{
	check_partial_tables(_metadata, &self->c, &variant->cfg, KMMU_BACKING_HUGETLB_2M);
}

/*
 * After an eager split the host discards one 4K page of a THP.  As the
 * kernel does, it first splits the THP (an invalidation of all 2M of it),
 * then frees the page: that table is empty, and the host maps those 2M
 * with 4K pages now, so stopping the log leaves it as it is (nothing to
 * rebuild, nothing a fault could map huge) and rebuilds the other one.
 * The first 2M is mapped with 4K pages until khugepaged collapses the
 * host's again.  The discarded page reads back as zero.
 */
KMMU_TEST_F(split, discarded_page_blocks_recovery)
{
	struct split_ctx *c = &self->c;
	struct kmmu_vm_stats st0, st1;
	uint64_t spte;

	if (!ctx_start(_metadata, c, &variant->cfg, KMMU_BACKING_ANON_THP, 2 * SZ_2M))
		return;
	populate(_metadata, c);
	if (c->nr_huge != 2)
		SKIP(return, "the host did not map both THPs huge");
	ASSERT_EQ(0, set_logging(c, true));
	expect_pages(_metadata, c, 1024, 0, 0);

	ASSERT_EQ(0, kmmu_host_discard(word(c->mem.addr, 3 * SZ_4K), SZ_4K));
	c->want[3] = 0;
	if (host_quiet()) {
		expect_pages(_metadata, c, 512, 0, 0);
	}
	EXPECT_EQ(0, leaf_at(_metadata, c, word_gpa(c, 3), &spte));
	ASSERT_EQ(0, kmmu_vm_stats(c->vm, &st0));

	ASSERT_EQ(0, set_logging(c, false));
	ASSERT_EQ(0, kmmu_vm_stats(c->vm, &st1));
	if (host_quiet()) {
		EXPECT_EQ(1, st1.recoveries - st0.recoveries);
		EXPECT_EQ(0, st1.collapsible_zaps - st0.collapsible_zaps);
		expect_pages(_metadata, c, 0, 1, 0);
		EXPECT_EQ(KMMU_LEVEL_2M, leaf_at(_metadata, c, SPLIT_GPA + SZ_2M, &spte));
		EXPECT_EQ(0, leaf_at(_metadata, c, word_gpa(c, 0), &spte));
	}
	check_data(_metadata, c);
	read_words(_metadata, c, 0, c->nr_words);
	write_words(_metadata, c, 0, c->nr_words, FINAL_VALUE);
	check_data(_metadata, c);
	/* The host model's collapse: the kernel's khugepaged collapses at its own time. */
	if (kmmu_backend() != KMMU_BACKEND_USER)
		return;
	/* The host's first 2M is 4K pages now, and so are the guest's. */
	expect_pages(_metadata, c, 512, 1, 0);
	/* khugepaged collapses it onto a new huge page: the next faults map it 2M. */
	ASSERT_EQ(0, kmmu_host_mm(KMMU_HOST_THP_COLLAPSE, c->mem.addr, SZ_2M));
	expect_pages(_metadata, c, 0, 1, 0);
	read_words(_metadata, c, 0, c->nr_words);
	expect_pages(_metadata, c, 0, 2, 0);
	check_data(_metadata, c);
}

/*
 * The chunk size is a power of two from 4K to 1G, or 0 for off; it may
 * not change while a slot logs, as the split it steers is under way.
 */
KMMU_TEST_F(split, chunk_size_cap)
{
	const uint64_t bad[] = { 1, 3, 2048, SZ_4K + SZ_4K / 2, 3 * SZ_2M, 2 * SZ_1G,
				 1ULL << 63, ~0ULL };
	const uint64_t good[] = { SZ_4K, 8 * SZ_4K, SZ_2M, SZ_1G, 0, 64 << 20 };
	struct split_ctx *c = &self->c;
	struct kmmu_enable_cap cap = { .cap = KMMU_CAP_EAGER_SPLIT_CHUNK_SIZE };
	unsigned int i;

	if (!ctx_start(_metadata, c, &variant->cfg, KMMU_BACKING_ANON_THP, SZ_2M))
		return;
	EXPECT_EQ(1, kmmu_ioctl(c->vm->sys_fd, KMMU_CHECK_EXTENSION,
				KMMU_CAP_EAGER_SPLIT_CHUNK_SIZE));
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		EXPECT_EQ(-EINVAL, kmmu_vm_enable_cap(c->vm, KMMU_CAP_EAGER_SPLIT_CHUNK_SIZE,
						      bad[i])) {
			TH_LOG("chunk %#llx", (unsigned long long)bad[i]);
		}
	}
	for (i = 0; i < ARRAY_SIZE(good); i++) {
		EXPECT_EQ(0, kmmu_vm_enable_cap(c->vm, KMMU_CAP_EAGER_SPLIT_CHUNK_SIZE, good[i])) {
			TH_LOG("chunk %#llx", (unsigned long long)good[i]);
		}
	}
	cap.args[0] = SZ_2M;
	cap.args[1] = 1;
	EXPECT_EQ(-EINVAL, kmmu_ioctl(c->vm->fd, KMMU_ENABLE_CAP, (unsigned long)&cap));

	ASSERT_EQ(0, kmmu_vm_set_memslot(c->vm, 0, KMMU_MEM_LOG_DIRTY_PAGES, SPLIT_GPA, c->size,
					 c->mem.addr));
	EXPECT_EQ(-EBUSY, kmmu_vm_enable_cap(c->vm, KMMU_CAP_EAGER_SPLIT_CHUNK_SIZE, SZ_2M));
	/* A bad value is still a bad value, logging or not. */
	EXPECT_EQ(-EINVAL, kmmu_vm_enable_cap(c->vm, KMMU_CAP_EAGER_SPLIT_CHUNK_SIZE, 3));
	ASSERT_EQ(0, kmmu_vm_set_memslot(c->vm, 0, 0, SPLIT_GPA, c->size, c->mem.addr));
	EXPECT_EQ(0, kmmu_vm_enable_cap(c->vm, KMMU_CAP_EAGER_SPLIT_CHUNK_SIZE, SZ_2M));
}

/*
 * A slot whose userspace address is 4K off the huge-page alignment can
 * only ever be mapped 4K: stopping the log neither rebuilds nor zaps.
 */
KMMU_TEST_F(split, misaligned_slot_stays_4k)
{
	struct split_ctx *c = &self->c;
	struct kmmu_vm_stats st0, st1;

	if (!ctx_start(_metadata, c, &variant->cfg, KMMU_BACKING_ANON_THP, 3 * SZ_2M))
		return;
	/* The slot, and so its words, start 4K into the memory. */
	c->hva += SZ_4K;
	c->size = 2 * SZ_2M;
	c->nr_words = c->size / c->stride;
	ASSERT_EQ(0, set_logging(c, false));
	write_words(_metadata, c, 0, c->nr_words, POPULATE_VALUE);
	expect_pages(_metadata, c, c->nr_words, 0, 0);
	ASSERT_EQ(0, kmmu_vm_stats(c->vm, &st0));

	ASSERT_EQ(0, set_logging(c, true));
	ASSERT_EQ(0, set_logging(c, false));
	ASSERT_EQ(0, kmmu_vm_stats(c->vm, &st1));
	EXPECT_EQ(st0.splits, st1.splits);
	EXPECT_EQ(st0.recoveries, st1.recoveries);
	EXPECT_EQ(st0.collapsible_zaps, st1.collapsible_zaps);
	expect_pages(_metadata, c, c->nr_words, 0, 0);
	check_data(_metadata, c);
}

/*
 * Aging while the slot logs: with A/D bits it only clears A, and the
 * children are rebuilt into huge leaves with A clear; without, it makes
 * the children access-tracked, which cannot be merged into one huge leaf,
 * so their tables are zapped instead.  Either way the next access maps
 * huge again and nothing is lost.
 */
KMMU_TEST_F(split, aged_children)
{
	struct split_ctx *c = &self->c;
	struct kmmu_vm_stats st0, st1;
	uint64_t young, old, spte;
	int level;

	if (!ctx_start(_metadata, c, &variant->cfg, KMMU_BACKING_ANON_THP, 2 * SZ_2M))
		return;
	populate(_metadata, c);
	if (c->nr_huge != 2)
		SKIP(return, "the host did not map both THPs huge");
	ASSERT_EQ(0, set_logging(c, true));
	ASSERT_EQ(0, kmmu_vm_age(c->vm, SPLIT_GPA, c->size, 0, KMMU_AGE_FLUSH, &young, &old));
	expect_count(_metadata, 1024, young, "young pages");
	/* On dev the kernel may have aged some first. */
	expect_count(_metadata, 1024, young + old, "pages found");
	ASSERT_EQ(0, kmmu_vm_stats(c->vm, &st0));

	ASSERT_EQ(0, set_logging(c, false));
	ASSERT_EQ(0, kmmu_vm_stats(c->vm, &st1));
	if (c->ad) {
		expect_count(_metadata, 2, st1.recoveries - st0.recoveries, "recoveries");
		if (host_quiet()) {
			EXPECT_EQ(st0.collapsible_zaps, st1.collapsible_zaps);
		}
		expect_pages(_metadata, c, 0, 2, 0);
		level = leaf_at(_metadata, c, SPLIT_GPA, &spte);
		if (host_quiet()) {
			EXPECT_EQ(KMMU_LEVEL_2M, level);
			EXPECT_FALSE(spte & c->accessed);
		}
	} else {
		EXPECT_EQ(st0.recoveries, st1.recoveries);
		expect_count(_metadata, 2, st1.collapsible_zaps - st0.collapsible_zaps,
			     "collapsible zaps");
		expect_pages(_metadata, c, 0, 0, 0);
	}
	check_data(_metadata, c);
	read_words(_metadata, c, 0, c->nr_words);
	expect_pages(_metadata, c, 0, 2, 0);
	expect_huge_leaves(_metadata, c, false);
	write_words(_metadata, c, 0, c->nr_words, FINAL_VALUE);
	check_data(_metadata, c);
}

/*
 * What the guest wrote before and while logging must still reach the host
 * when the split leaves are zapped: protecting them for the log may not
 * drop the only record that they were written -- W itself without A/D
 * bits, D in D-bit mode.  The user backend's host model shows what the
 * host was told; a kernel keeps no such book.
 */
static void check_logging_keeps_host_dirty(struct __test_metadata *_metadata,
					   struct split_ctx *c, const struct kmmu_vm_config *cfg,
					   uint64_t mode)
{
	const uint64_t logged[] = { 0, 1, 2, 700 };
	struct kmmu_user_mem_state ms;
	unsigned int i;
	int ret;

	if (kmmu_backend() != KMMU_BACKEND_USER)
		SKIP(return, "cleaning pages as writeback does is the host model's to do");
	if (!ctx_start(_metadata, c, cfg, KMMU_BACKING_ANON_THP, 2 * SZ_2M))
		return;
	ret = kmmu_vm_enable_cap(c->vm, KMMU_CAP_DIRTY_LOG_MODE, mode);
	if (ret == -EINVAL && mode == KMMU_DIRTY_LOG_MODE_DBIT && !c->ad)
		SKIP(return, "D-bit logging needs A/D bits");
	ASSERT_EQ(0, ret);
	populate(_metadata, c);
	/*
	 * The host cleans the pages the way writeback does: the mappings go
	 * first (an invalidation), then the marks.  Only the writes after
	 * this may make a page dirty again.
	 */
	kmmu_user_invalidate(c->mem.addr, c->size, false);
	kmmu_user_mem_clear_marks(c->mem.addr, c->size);
	ASSERT_EQ(0, set_logging(c, true));
	for (i = 0; i < ARRAY_SIZE(logged); i++)
		write_words(_metadata, c, logged[i], 1, LOG_VALUE);
	/* Hands out the log and protects those pages again. */
	expect_dirty_log(_metadata, c, logged, ARRAY_SIZE(logged));

	ASSERT_EQ(0, kmmu_vm_zap(c->vm, SPLIT_GPA, c->size, 0, 0));
	ASSERT_EQ(0, kmmu_user_mem_state(c->mem.addr, c->size, &ms));
	EXPECT_EQ(0, ms.bad_marks);
	EXPECT_EQ((long)(c->size / SZ_4K), ms.dirty) {
		TH_LOG("the host knows %ld of %llu written pages as dirty", ms.dirty,
		       (unsigned long long)(c->size / SZ_4K));
	}
	check_data(_metadata, c);
}

KMMU_TEST_F(split, wrprot_logging_keeps_host_dirty)
{
	check_logging_keeps_host_dirty(_metadata, &self->c, &variant->cfg,
				       KMMU_DIRTY_LOG_MODE_WRPROT);
}

KMMU_TEST_F(split, dbit_logging_keeps_host_dirty)
{
	check_logging_keeps_host_dirty(_metadata, &self->c, &variant->cfg,
				       KMMU_DIRTY_LOG_MODE_DBIT);
}

#define WRITER_MAX_PASSES	100000
#define TOGGLES			8
/* How long the test waits for writers to make progress before going on anyway. */
#define PROGRESS_SPINS		200000

static uint64_t pass_value(unsigned int idx, uint64_t pass)
{
	return 0x5700000000000000ULL | (uint64_t)idx << 56 | pass << 36;
}

static void *writer_fn(void *arg)
{
	struct writer *w = arg;
	struct kmmu_run run;
	uint64_t pass;

	for (pass = 1; pass <= WRITER_MAX_PASSES; pass++) {
		struct kmmu_workload wl = {
			.gpa = word_gpa(w->c, w->first),
			.size = (w->n - 1) * w->c->stride + sizeof(uint64_t),
			.stride = w->c->stride,
			.iterations = 1,
			.value = pass_value(w->idx, pass),
			.pattern = KMMU_PATTERN_STRIDE,
			.write_percent = 100,
			.flags = KMMU_WL_XOR_GPA,
		};

		if (__atomic_load_n(w->stop, __ATOMIC_ACQUIRE))
			break;
		w->err = kmmu_vcpu_run_workload(w->vcpu, &wl, &run);
		if (w->err)
			break;
		if (run.exit_reason != KMMU_EXIT_DONE) {
			w->bad_exit = run.exit_reason;
			break;
		}
		__atomic_store_n(&w->passes, pass, __ATOMIC_RELEASE);
	}
	return NULL;
}

/* Let every writer finish at least one more pass, within a bounded wait. */
static void wait_writers(FIXTURE_DATA(split) *self)
{
	uint64_t seen[2];
	unsigned int i;
	long spins;

	for (i = 0; i < 2; i++)
		seen[i] = __atomic_load_n(&self->w[i].passes, __ATOMIC_ACQUIRE);
	for (spins = 0; spins < PROGRESS_SPINS; spins++) {
		if (__atomic_load_n(&self->w[0].passes, __ATOMIC_ACQUIRE) > seen[0] &&
		    __atomic_load_n(&self->w[1].passes, __ATOMIC_ACQUIRE) > seen[1])
			return;
		sched_yield();
	}
}

/*
 * Logging goes on and off while two vCPUs write: the splits and the
 * rebuilds race with faults and fast-path writes.  Nothing may WARN (the
 * leak check counts WARNs), every write of the last pass lands, and once
 * it is all over the slot is mapped 2M again.
 */
KMMU_TEST_F(split, toggle_logging_under_writes)
{
	struct split_ctx *c = &self->c;
	uint64_t *bitmap, i;
	unsigned int t;

	if (!ctx_start(_metadata, c, &variant->cfg, KMMU_BACKING_ANON_THP, 4 * SZ_2M))
		return;
	bitmap = calloc(c->size / SZ_4K / 64, sizeof(uint64_t));
	ASSERT_NE(NULL, bitmap);
	populate(_metadata, c);
	for (t = 0; t < 2; t++) {
		struct writer *w = &self->w[t];

		w->c = c;
		w->idx = t;
		w->first = t * c->nr_words / 2;
		w->n = c->nr_words / 2;
		w->stop = &self->stop;
		if (t == 0) {
			w->vcpu = c->vcpu;
		} else {
			ASSERT_EQ(0, kmmu_vcpu_create(c->vm, 1, &w->vcpu));
		}
	}
	for (t = 0; t < 2; t++) {
		ASSERT_EQ(0, pthread_create(&self->w[t].thread, NULL, writer_fn, &self->w[t]));
		self->w[t].started = true;
	}

	for (t = 0; t < TOGGLES; t++) {
		wait_writers(self);
		if (set_logging(c, true))
			break;
		wait_writers(self);
		if (kmmu_vm_get_dirty_log(c->vm, 0, bitmap) || set_logging(c, false))
			break;
	}
	stop_writers(self);
	free(bitmap);
	ASSERT_EQ(TOGGLES, t);

	for (t = 0; t < 2; t++) {
		struct writer *w = &self->w[t];

		EXPECT_EQ(0, w->err);
		EXPECT_EQ(0, w->bad_exit);
		ASSERT_LT(0, w->passes);
		for (i = w->first; i < w->first + w->n; i++)
			c->want[i] = pass_value(t, w->passes) ^ word_gpa(c, i);
	}
	check_data(_metadata, c);
	read_words(_metadata, c, 0, c->nr_words);
	if (host_quiet()) {
		expect_pages(_metadata, c, 0, 4, 0);
	}
}

TEST_HARNESS_MAIN
