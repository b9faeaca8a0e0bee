// SPDX-License-Identifier: GPL-2.0
/*
 * The TDP iterator over real tables built by faults: pre-order, ranges and
 * min_level against an independent recursive walk, restart after a yield
 * (also when the tables it came through were freed meanwhile), and zaps
 * that yield mmu_lock over and over and must still zap everything.
 */
#include "unit_util.h"

#define ROOT_LEVEL	KMMU_MAX_LEVEL
#define GFN_END		(1ULL << 36)		/* gfns of a 48-bit guest */
#define PAGES(level)	(1ULL << (9 * ((level) - 1)))	/* 4K pages one SPTE maps */

/* Scattered slots (by gpa), so that every level has several tables and many holes. */
static const struct {
	u64 gpa;
	u64 size;
	enum kmmu_user_mem_kind kind;
} regions[] = {
	{ 0x1f0000, 32 * SZ_4K, KMMU_USER_MEM_ANON },		/* across the 2M line */
	{ 0x40003000, 8 * SZ_4K, KMMU_USER_MEM_ANON },		/* a 1G entry of its own */
	{ 0xc0000000, 2 * SZ_2M, KMMU_USER_MEM_THP },		/* two 2M leaves */
	{ 0x8000000000, 16 * SZ_4K, KMMU_USER_MEM_ANON },	/* the second root entry */
	{ 0xffffffff0000, 16 * SZ_4K, KMMU_USER_MEM_ANON },	/* the last gfns there are */
};

#define NR_REGIONS	ARRAY_SIZE(regions)
#define NR_4K_LEAVES	(32 + 8 + 16 + 16)
#define NR_2M_LEAVES	2
#define MMIO_GPA	0x50000000ULL	/* no slot: leaves one MMIO SPTE behind */

#define RGFN(i)		(regions[i].gpa >> 12)

/* One SPTE as a walk visited it. */
struct ent {
	int level;
	gfn_t gfn;
	u64 *sptep;
	u64 spte;
};

struct walk {
	struct ent *e;
	int nr;
	int cap;
};

static void walk_push(struct walk *w, int level, gfn_t gfn, u64 *sptep, u64 spte)
{
	if (w->nr == w->cap) {
		w->cap = w->cap ? 2 * w->cap : 4096;
		w->e = realloc(w->e, w->cap * sizeof(*w->e));
		if (!w->e)
			abort();
	}
	w->e[w->nr++] = (struct ent){ level, gfn, sptep, spte };
}

static void walk_free(struct walk *w)
{
	free(w->e);
	memset(w, 0, sizeof(*w));
}

static bool present(u64 spte)
{
	return spte & KSW_MMU_PRESENT;
}

static bool is_leaf(const struct spte_layout *l, const struct ent *e)
{
	return present(e->spte) && (e->level == KMMU_LEVEL_4K || (e->spte & l->ps));
}

static u64 *child_table(u64 spte)
{
	return os_pfn_to_pt((spte & KSW_PFN_MASK) >> 12);
}

/* The reference: plain recursion over the tables, decoded with the spec's bits. */
static void ref_walk(const struct spte_layout *l, u64 *pt, int level, gfn_t base, int min_level,
		     struct walk *w)
{
	int i;

	for (i = 0; i < KMMU_PT_ENTRIES; i++) {
		u64 spte = READ_ONCE(pt[i]);
		gfn_t gfn = base + i * PAGES(level);

		walk_push(w, level, gfn, &pt[i], spte);
		if (level > min_level && present(spte) && !(spte & l->ps))
			ref_walk(l, child_table(spte), level - 1, gfn, min_level, w);
	}
}

/* What a walk of [start, end) must visit: what contains or follows start, before end. */
static void ref_filter(const struct walk *all, gfn_t start, gfn_t end, struct walk *w)
{
	int i;

	for (i = 0; i < all->nr; i++) {
		const struct ent *e = &all->e[i];

		if (e->gfn + PAGES(e->level) > start && e->gfn < end)
			walk_push(w, e->level, e->gfn, e->sptep, e->spte);
	}
}

static void ref_leaves(const struct spte_layout *l, const struct walk *all, struct walk *w)
{
	const struct ent *e;

	for (e = all->e; e < all->e + all->nr; e++)
		if (is_leaf(l, e))
			walk_push(w, e->level, e->gfn, e->sptep, e->spte);
}

/*
 * More steps than any correct walk of the fixture's tables takes: a walk
 * that goes round in circles fails instead of hanging.
 */
#define MAX_STEPS	(1 << 20)

static void iter_walk(struct kmmu *kmmu, struct kmmu_mmu_page *root, int min_level, gfn_t start,
		      gfn_t end, struct walk *w)
{
	struct tdp_iter iter;

	unit_mmu_read_lock(kmmu);
	for_each_tdp_pte_min_level(iter, kmmu, root, min_level, start, end) {
		walk_push(w, iter.level, iter.gfn, iter.sptep, iter.old_spte);
		if (w->nr == MAX_STEPS)
			break;
	}
	unit_mmu_read_unlock(kmmu);
}

/* Index of the first difference between two walks, or -1. */
static int walk_diff(const struct walk *a, const struct walk *b)
{
	int i;

	for (i = 0; i < a->nr && i < b->nr; i++)
		if (a->e[i].level != b->e[i].level || a->e[i].gfn != b->e[i].gfn ||
		    a->e[i].sptep != b->e[i].sptep || a->e[i].spte != b->e[i].spte)
			return i;
	return a->nr == b->nr ? -1 : i;
}

#define ASSERT_SAME_WALK(expected, seen) do {					\
	int __d = walk_diff(expected, seen);					\
	if (__d >= 0)								\
		TH_LOG("walks differ at entry %d of %d/%d: level %d gfn %#llx",	\
		       __d, (expected)->nr, (seen)->nr,				\
		       __d < (seen)->nr ? (seen)->e[__d].level : -1,		\
		       __d < (seen)->nr ? (seen)->e[__d].gfn : 0ULL);		\
	ASSERT_EQ(-1, __d);							\
} while (0)

/* How many forced reschedules are still to be handed out; takes them all back. */
static long resched_left(void)
{
	long n = 0;

	while (need_resched())
		n++;
	return n;
}

FIXTURE(iter) {
	struct kmmu *kmmu;
	struct kmmu_vcpu *vcpu;
	struct kmmu_mmu_page *root;	/* the vCPU's, address space 0 */
	struct unit_mem mem[NR_REGIONS];
	struct walk ref;	/* the whole root, down to 4K */
	long warnings;
};

FIXTURE_VARIANT(iter) {
	const struct spte_layout *l;
};

UNIT_ADD_LAYOUT_VARIANTS(iter);

/* Fault in every page of every slot, writing its gpa there. */
static int populate(struct kmmu_vcpu *vcpu)
{
	struct kmmu_workload wl;
	struct kmmu_run run;
	unsigned int i;

	for (i = 0; i < NR_REGIONS; i++) {
		wl = unit_wl(regions[i].gpa, regions[i].size, 100, 0);
		wl.flags = KMMU_WL_XOR_GPA;
		if (unit_run(vcpu, &wl, &run) || run.exit_reason != KMMU_EXIT_DONE)
			return -1;
	}
	return 0;
}

FIXTURE_SETUP(iter)
{
	struct kmmu_vm_config cfg = {
		.spte_format = variant->l->format,
		.flags = variant->l->flags,
	};
	struct kmmu_workload wl = unit_wl(MMIO_GPA, 8, 0, 0);
	struct kmmu_vm_stats st;
	struct kmmu_run run;
	unsigned int i;
	int err;

	kmmu_user_thread_enter();
	self->warnings = kmmu_user_warnings();
	self->kmmu = kmmu_create_vm(&cfg, KMMU_SPTE_FORMAT_EPT, &err);
	ASSERT_NE(NULL, self->kmmu);
	for (i = 0; i < NR_REGIONS; i++) {
		ASSERT_EQ(0, unit_mem_alloc(&self->mem[i], regions[i].size, regions[i].kind,
					    regions[i].kind == KMMU_USER_MEM_THP ? SZ_2M : SZ_4K));
		ASSERT_EQ(0, unit_set_slot(self->kmmu, i, regions[i].gpa, regions[i].size,
					   self->mem[i].addr));
	}
	self->vcpu = kmmu_create_vcpu(self->kmmu, 0, &err);
	ASSERT_NE(NULL, self->vcpu);
	ASSERT_EQ(0, populate(self->vcpu));
	ASSERT_EQ(0, unit_run(self->vcpu, &wl, &run));
	ASSERT_EQ(KMMU_EXIT_MMIO, run.exit_reason);

	st = unit_stats(self->kmmu);
	ASSERT_EQ(NR_4K_LEAVES, st.pages_4k);
	ASSERT_EQ(NR_2M_LEAVES, st.pages_2m);
	self->root = self->vcpu->root[0];
	ASSERT_EQ(ROOT_LEVEL, self->root->level);

	unit_mmu_read_lock(self->kmmu);
	ref_walk(variant->l, self->root->spt, ROOT_LEVEL, 0, KMMU_LEVEL_4K, &self->ref);
	unit_mmu_read_unlock(self->kmmu);
}

FIXTURE_TEARDOWN(iter)
{
	unsigned int i;

	walk_free(&self->ref);
	if (self->kmmu)
		unit_vm_put(self->kmmu, self->vcpu ? 1 : 0);
	for (i = 0; i < NR_REGIONS; i++)
		if (self->mem[i].map)
			unit_mem_free(&self->mem[i]);
	EXPECT_EQ(0, kmmu_user_objects_alive());
	EXPECT_EQ(0, kmmu_user_pt_pages_alive());
	EXPECT_EQ(self->warnings, kmmu_user_warnings());
}

TEST_F(iter, preorder_matches_reference)
{
	const struct spte_layout *l = variant->l;
	int visits[ROOT_LEVEL + 2] = {}, tables[ROOT_LEVEL + 2] = {}, leaves[ROOT_LEVEL + 2] = {};
	const struct ent *last[ROOT_LEVEL + 2] = {};
	struct kmmu_vm_stats st = unit_stats(self->kmmu);
	struct walk got = {};
	int i, level, mmio = 0;

	iter_walk(self->kmmu, self->root, KMMU_LEVEL_4K, 0, GFN_END, &got);
	ASSERT_SAME_WALK(&self->ref, &got);

	/* The same, from the walk itself rather than from the reference. */
	for (i = 0; i < got.nr; i++) {
		const struct ent *e = &got.e[i];
		const struct ent *parent = last[e->level + 1];

		ASSERT_EQ(0, e->gfn % PAGES(e->level));
		/* Strictly forward at each level: nothing visited twice or backwards. */
		if (last[e->level])
			ASSERT_LT(last[e->level]->gfn, e->gfn);
		/* A table comes before its entries, and they lie inside it. */
		if (e->level < ROOT_LEVEL) {
			ASSERT_NE(NULL, parent);
			ASSERT_TRUE(present(parent->spte) && !is_leaf(l, parent));
			ASSERT_EQ(child_table(parent->spte),
				  (u64 *)((unsigned long)e->sptep & ~(SZ_4K - 1)));
			ASSERT_LE(parent->gfn, e->gfn);
			ASSERT_GT(parent->gfn + PAGES(e->level + 1), e->gfn);
		}
		last[e->level] = e;
		visits[e->level]++;
		if (is_leaf(l, e))
			leaves[e->level]++;
		else if (present(e->spte))
			tables[e->level]++;
		else if (is_mmio_spte(&self->kmmu->fmt, e->spte))
			mmio++;
		else
			ASSERT_EQ(l->nonpresent, e->spte);
	}

	/* Every entry of every table, once. */
	EXPECT_EQ(KMMU_PT_ENTRIES, visits[ROOT_LEVEL]);
	for (level = KMMU_LEVEL_4K; level < ROOT_LEVEL; level++)
		EXPECT_EQ(KMMU_PT_ENTRIES * tables[level + 1], visits[level]);
	EXPECT_EQ(st.pt_pages, 1 + tables[2] + tables[3] + tables[4]);
	EXPECT_EQ(st.pages_4k, leaves[1]);
	EXPECT_EQ(st.pages_2m, leaves[2]);
	EXPECT_EQ(0, leaves[3] + leaves[4]);
	EXPECT_EQ(1, mmio);
	/* The last region ends at the last gfn: the walk ends there, past the root. */
	EXPECT_EQ(KMMU_LEVEL_4K, got.e[got.nr - 1].level);
	EXPECT_EQ(GFN_END - 1, got.e[got.nr - 1].gfn);
	walk_free(&got);
}

TEST_F(iter, leaves_are_the_faulted_pages)
{
	const struct spte_layout *l = variant->l;
	struct walk leaves = {};
	unsigned int r;
	int n = 0;
	u64 off;

	ref_leaves(l, &self->ref, &leaves);
	ASSERT_EQ(NR_4K_LEAVES + NR_2M_LEAVES, leaves.nr);
	for (r = 0; r < NR_REGIONS; r++) {
		bool huge = regions[r].kind == KMMU_USER_MEM_THP;
		u64 step = huge ? SZ_2M : SZ_4K;

		for (off = 0; off < regions[r].size; off += step, n++) {
			uint64_t pfn;

			ASSERT_EQ(0, kmmu_user_mem_pfn((char *)self->mem[r].addr + off, &pfn));

			ASSERT_EQ(huge ? KMMU_LEVEL_2M : KMMU_LEVEL_4K, leaves.e[n].level);
			ASSERT_EQ((regions[r].gpa + off) >> 12, leaves.e[n].gfn);
			ASSERT_EQ(pfn, (leaves.e[n].spte & KSW_PFN_MASK) >> 12);
		}
	}
	walk_free(&leaves);
}

TEST_F(iter, min_level)
{
	const struct spte_layout *l = variant->l;
	int min_level, i, leaves;

	for (min_level = KMMU_LEVEL_2M; min_level <= ROOT_LEVEL; min_level++) {
		struct walk ref = {}, got = {};

		unit_mmu_read_lock(self->kmmu);
		ref_walk(l, self->root->spt, ROOT_LEVEL, 0, min_level, &ref);
		unit_mmu_read_unlock(self->kmmu);
		iter_walk(self->kmmu, self->root, min_level, 0, GFN_END, &got);
		ASSERT_SAME_WALK(&ref, &got);

		leaves = 0;
		for (i = 0; i < got.nr; i++) {
			ASSERT_LE(min_level, got.e[i].level);
			leaves += is_leaf(l, &got.e[i]);
		}
		/* Only the 2M leaves are at or above level 2. */
		EXPECT_EQ(min_level == KMMU_LEVEL_2M ? NR_2M_LEAVES : 0, leaves);
		walk_free(&ref);
		walk_free(&got);
	}
}

TEST_F(iter, ranges)
{
	const struct {
		gfn_t start, end;
	} ranges[] = {
		{ RGFN(0), RGFN(0) + 32 },		/* one slot exactly */
		{ RGFN(0) + 5, RGFN(0) + 6 },		/* one gfn */
		{ 0x1fe, 0x202 },			/* across a 2M line */
		{ RGFN(1) + 7, RGFN(3) + 1 },		/* a vast hole, across root entries */
		{ RGFN(2) + 3, RGFN(2) + 600 },		/* from one 2M leaf into the next */
		{ RGFN(4), GFN_END },			/* to the very end */
		{ 0, 1 },
		{ 0, GFN_END },
	};
	const struct spte_layout *l = variant->l;
	unsigned int r;
	int i;

	for (r = 0; r < ARRAY_SIZE(ranges); r++) {
		gfn_t start = ranges[r].start, end = ranges[r].end;
		struct walk ref = {}, got = {};
		int leaves = 0, expected = 0;
		unsigned int s;
		u64 off;

		ref_filter(&self->ref, start, end, &ref);
		iter_walk(self->kmmu, self->root, KMMU_LEVEL_4K, start, end, &got);
		if (walk_diff(&ref, &got) >= 0)
			TH_LOG("range [%#llx, %#llx)", start, end);
		ASSERT_SAME_WALK(&ref, &got);

		for (i = 0; i < got.nr; i++) {
			const struct ent *e = &got.e[i];

			if (!is_leaf(l, e))
				continue;
			ASSERT_GT(e->gfn + PAGES(e->level), start);
			ASSERT_LT(e->gfn, end);
			leaves++;
		}
		/* Every leaf of the range, counted from the slots. */
		for (s = 0; s < NR_REGIONS; s++) {
			u64 step = regions[s].kind == KMMU_USER_MEM_THP ? SZ_2M : SZ_4K;

			for (off = 0; off < regions[s].size; off += step) {
				gfn_t gfn = (regions[s].gpa + off) >> 12;

				expected += gfn + step / SZ_4K > start && gfn < end;
			}
		}
		if (expected != leaves)
			TH_LOG("range [%#llx, %#llx)", start, end);
		EXPECT_EQ(expected, leaves);
		walk_free(&ref);
		walk_free(&got);
	}
}

/*
 * Walk everything, yielding before the SPTE at @yield_at (as the zap path's
 * cond_resched does: drop the locks, mark the iterator, skip the SPTE so
 * the restart comes back to it), or wherever a new gfn is reached when
 * @yield_at is negative.  Collect the leaves processed.  Return the yields.
 */
static int walk_with_yields(struct __test_metadata *_metadata, struct kmmu *kmmu,
			    struct kmmu_mmu_page *root, const struct spte_layout *l, int yield_at,
			    struct walk *leaves)
{
	bool check_restart = false;
	struct tdp_iter iter;
	gfn_t nllg = 0;
	int k = 0, yields = 0, steps = 0;

	unit_mmu_read_lock(kmmu);
	for_each_tdp_pte(iter, kmmu, root, 0, GFN_END) {
		struct ent e = { iter.level, iter.gfn, iter.sptep, iter.old_spte };
		bool yield = yield_at < 0 ? iter.next_last_level_gfn != iter.yielded_gfn
					  : k++ == yield_at;

		if (++steps == MAX_STEPS)
			break;
		if (check_restart) {
			/* Back at the root, heading for where the walk stopped. */
			EXPECT_EQ(ROOT_LEVEL, iter.level);
			EXPECT_EQ(nllg & ~(PAGES(ROOT_LEVEL) - 1), iter.gfn);
			EXPECT_EQ(nllg, iter.yielded_gfn);
			EXPECT_FALSE(iter.yielded);
			check_restart = false;
		}
		/* The gfn the walk heads for lies inside the current SPTE. */
		EXPECT_LE(iter.gfn, iter.next_last_level_gfn);
		EXPECT_GT(iter.gfn + PAGES(iter.level), iter.next_last_level_gfn);
		if (yield) {
			nllg = iter.next_last_level_gfn;
			unit_mmu_read_unlock(kmmu);
			unit_mmu_read_lock(kmmu);
			iter.yielded = true;
			check_restart = true;
			yields++;
			continue;
		}
		if (is_leaf(l, &e))
			walk_push(leaves, e.level, e.gfn, e.sptep, e.spte);
	}
	unit_mmu_read_unlock(kmmu);
	EXPECT_GT(MAX_STEPS, steps);
	return yields;
}

TEST_F(iter, yield_restarts_without_skip_or_repeat)
{
	const struct spte_layout *l = variant->l;
	struct walk expected = {};
	int n = self->ref.nr, p, yields;

	ref_leaves(l, &self->ref, &expected);

	/* One yield anywhere: at the first few entries, then all over the walk. */
	for (p = 0; p < n; p += p < 16 ? 1 : n / 97) {
		struct walk got = {};

		yields = walk_with_yields(_metadata, self->kmmu, self->root, l, p, &got);
		ASSERT_EQ(1, yields);
		if (walk_diff(&expected, &got) >= 0)
			TH_LOG("yield before entry %d (level %d gfn %#llx)", p,
			       self->ref.e[p].level, self->ref.e[p].gfn);
		ASSERT_SAME_WALK(&expected, &got);
		walk_free(&got);
	}

	/* A yield at every new gfn, as when the lock is contended all along. */
	{
		struct walk got = {};

		yields = walk_with_yields(_metadata, self->kmmu, self->root, l, -1, &got);
		ASSERT_SAME_WALK(&expected, &got);
		EXPECT_LT(n / 2, yields);
		walk_free(&got);
	}
	walk_free(&expected);
}

/*
 * A yield lets a zap free the tables the walk came through; the restart
 * must not touch them (freed tables are poisoned for ASan) and sees only
 * the emptied root.
 */
TEST_F(iter, restart_after_tables_were_freed)
{
	struct kmmu_mmu_page *root = self->root;
	bool yielded = false;
	struct tdp_iter iter;
	int after = 0;

	unit_mmu_read_lock(self->kmmu);
	for_each_tdp_pte(iter, self->kmmu, root, 0, GFN_END) {
		if (!yielded && iter.level == KMMU_LEVEL_4K && iter.gfn == RGFN(3) + 3) {
			unit_mmu_read_unlock(self->kmmu);
			kmmu_zap_all(self->kmmu);
			/* Runs the RCU callbacks: the tables are freed and poisoned now. */
			kmmu_user_pt_pages_alive();
			unit_mmu_read_lock(self->kmmu);
			iter.yielded = true;
			yielded = true;
			continue;
		}
		if (!yielded)
			continue;
		EXPECT_EQ(ROOT_LEVEL, iter.level);
		EXPECT_EQ(self->kmmu->fmt.nonpresent, iter.old_spte);
		after++;
	}
	unit_mmu_read_unlock(self->kmmu);

	ASSERT_TRUE(yielded);
	/* From the root entry holding the 512G region to the end of the root. */
	EXPECT_EQ(KMMU_PT_ENTRIES - 1, after);
	EXPECT_EQ(1, unit_stats(self->kmmu).pt_pages);
	EXPECT_EQ(0, unit_stats(self->kmmu).pages_4k);
}

/* Every page of every region: its walk now ends in a non-present leaf. */
static int count_mapped(struct kmmu *kmmu, const struct spte_layout *l)
{
	unsigned int r;
	int mapped = 0;
	u64 off, sptes[5];

	for (r = 0; r < NR_REGIONS; r++) {
		int leaf = regions[r].kind == KMMU_USER_MEM_THP ? KMMU_LEVEL_2M : KMMU_LEVEL_4K;

		for (off = 0; off < regions[r].size; off += SZ_4K) {
			int level = unit_get_spte(kmmu, regions[r].gpa + off, 0, sptes);

			if (level != leaf || sptes[level] != l->nonpresent)
				mapped++;
		}
	}
	return mapped;
}

static int zap(struct kmmu *kmmu, u64 gpa, u64 size)
{
	struct kmmu_zap z = { .gpa = gpa, .size = size };

	return kmmu_vm_ioctl(kmmu, KMMU_ZAP, (unsigned long)&z);
}

TEST_F(iter, zap_yielding_everywhere_zaps_everything)
{
	const long credits = 100000;
	struct kmmu_vm_stats before = unit_stats(self->kmmu), st;
	struct kmmu_run run;
	struct kmmu_workload wl;
	long yields;
	unsigned int r;

	kmmu_user_force_resched(credits);
	ASSERT_EQ(0, zap(self->kmmu, 0, GFN_END << 12));
	yields = credits - resched_left();
	TH_LOG("%ld yields", yields);
	/* At least once per leaf; and it did not run out of credits. */
	EXPECT_LT(NR_4K_LEAVES + NR_2M_LEAVES, yields);
	EXPECT_GT(credits, yields);

	st = unit_stats(self->kmmu);
	EXPECT_EQ(0, st.pages_4k);
	EXPECT_EQ(0, st.pages_2m);
	/* Leaves go, tables stay. */
	EXPECT_EQ(before.pt_pages, st.pt_pages);
	EXPECT_EQ(0, count_mapped(self->kmmu, variant->l));

	/* The vCPU saw the flush: it faults everything back, and the data is there. */
	for (r = 0; r < NR_REGIONS; r++) {
		wl = unit_wl(regions[r].gpa, regions[r].size, 0, 0);
		ASSERT_EQ(0, unit_run(self->vcpu, &wl, &run));
		ASSERT_EQ(KMMU_EXIT_DONE, run.exit_reason);
		EXPECT_LT(0, run.faults);
		EXPECT_EQ(*unit_mem_word(&self->mem[r], 0), regions[r].gpa);
	}
	st = unit_stats(self->kmmu);
	EXPECT_EQ(NR_4K_LEAVES, st.pages_4k);
	EXPECT_EQ(NR_2M_LEAVES, st.pages_2m);
}

TEST_F(iter, zap_with_few_yields_zaps_everything)
{
	static const long credits[] = { 1, 2, 3, 5, 17, 64 };
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(credits); i++) {
		if (i)
			ASSERT_EQ(0, populate(self->vcpu));
		kmmu_user_force_resched(credits[i]);
		ASSERT_EQ(0, zap(self->kmmu, 0, GFN_END << 12));
		/* Every credit was a yield. */
		EXPECT_EQ(0, resched_left());
		EXPECT_EQ(0, unit_stats(self->kmmu).pages_4k);
		EXPECT_EQ(0, unit_stats(self->kmmu).pages_2m);
		EXPECT_EQ(0, count_mapped(self->kmmu, variant->l));
	}
}

/* A part of the range, yielding: exactly its leaves go, the others keep their value. */
TEST_F(iter, zap_range_yielding)
{
	const gfn_t start = RGFN(0) + 3, end = RGFN(2) + 1;
	const struct spte_layout *l = variant->l;
	struct walk leaves = {}, after = {};
	int i, zapped = 0;

	ref_leaves(l, &self->ref, &leaves);
	kmmu_user_force_resched(100000);
	ASSERT_EQ(0, zap(self->kmmu, start << 12, (end - start) << 12));
	EXPECT_LT(0, 100000 - resched_left());

	for (i = 0; i < leaves.nr; i++) {
		const struct ent *e = &leaves.e[i];
		bool inside = e->gfn + PAGES(e->level) > start && e->gfn < end;
		u64 now = READ_ONCE(*e->sptep);

		EXPECT_EQ(inside ? l->nonpresent : e->spte, now);
		zapped += inside;
	}
	/* 29 of the first region, the 8 of the second, the first 2M leaf. */
	EXPECT_EQ(29 + 8 + 1, zapped);
	EXPECT_EQ(NR_4K_LEAVES - 29 - 8, unit_stats(self->kmmu).pages_4k);
	EXPECT_EQ(NR_2M_LEAVES - 1, unit_stats(self->kmmu).pages_2m);
	iter_walk(self->kmmu, self->root, KMMU_LEVEL_4K, 0, GFN_END, &after);
	EXPECT_EQ(self->ref.nr, after.nr);
	walk_free(&leaves);
	walk_free(&after);
}

/* The other zaps that may yield: memslot deletion and host invalidation. */
TEST_F(iter, slot_delete_and_invalidate_yielding)
{
	struct kmmu_vm_stats st;
	u64 sptes[5];
	u64 off;

	kmmu_user_force_resched(100000);
	ASSERT_EQ(0, unit_set_slot(self->kmmu, 0, regions[0].gpa, 0, self->mem[0].addr));
	kmmu_user_invalidate(self->mem[3].addr, regions[3].size, false);
	kmmu_user_invalidate(self->mem[2].addr, SZ_2M, false);
	EXPECT_LT(0, 100000 - resched_left());

	st = unit_stats(self->kmmu);
	EXPECT_EQ(NR_4K_LEAVES - 32 - 16, st.pages_4k);
	EXPECT_EQ(NR_2M_LEAVES - 1, st.pages_2m);
	for (off = 0; off < regions[0].size; off += SZ_4K) {
		ASSERT_EQ(KMMU_LEVEL_4K, unit_get_spte(self->kmmu, regions[0].gpa + off, 0, sptes));
		EXPECT_EQ(variant->l->nonpresent, sptes[KMMU_LEVEL_4K]);
	}
	for (off = 0; off < regions[3].size; off += SZ_4K) {
		ASSERT_EQ(KMMU_LEVEL_4K, unit_get_spte(self->kmmu, regions[3].gpa + off, 0, sptes));
		EXPECT_EQ(variant->l->nonpresent, sptes[KMMU_LEVEL_4K]);
	}
	ASSERT_EQ(KMMU_LEVEL_2M, unit_get_spte(self->kmmu, regions[2].gpa, 0, sptes));
	EXPECT_EQ(variant->l->nonpresent, sptes[KMMU_LEVEL_2M]);
	ASSERT_EQ(KMMU_LEVEL_2M, unit_get_spte(self->kmmu, regions[2].gpa + SZ_2M, 0, sptes));
	EXPECT_TRUE(present(sptes[KMMU_LEVEL_2M]));
}

TEST_HARNESS_MAIN
