// SPDX-License-Identifier: GPL-2.0
/*
 * The shadow MMU's rmaps (rmap.c): adds and removes against a model set,
 * with the head's encoding (empty, one SPTE, a list) and the lock bit
 * checked after each; aging of the SPTEs of an rmap in every format, with
 * and without mmu_lock; the fast-only pass that does not wait for a held
 * rmap lock but says so; aging of a one-SPTE rmap, which takes no lock,
 * made to race a writer at the moment it read the SPTE; and lockless
 * readers racing a writer, where each SPTE a reader sees under the rmap
 * lock must still be in the rmap (built under TSan as well, and under ASan
 * a reader that walked without the lock reads freed descriptors).
 */
#include <pthread.h>

#include "unit_util.h"
#include "../../kmod/core/rmap.h"

#define NR_SPTES	100
#define NR_HEADS	4
/*
 * Writer operations, and reader passes over the rmaps, that the race lasts
 * for at least: each rmap goes through its one-SPTE, one-descriptor and
 * many-descriptor forms many times under the reader.
 */
#define RACE_OPS	20000
#define RACE_PASSES	20000

FIXTURE(rmap) {
	struct kmmu *kmmu;
	struct kmmu_rmap_head head[NR_HEADS];
	struct kmmu_rmap_cache cache;
	u64 sptes[NR_SPTES];
	/* The model: which head each SPTE is in, -1 for none. */
	int in[NR_SPTES];
	long warnings;
	/* The race: readers stop when this is set. */
	int stop;
	unsigned long passes, seen, bad;
};

FIXTURE_VARIANT(rmap) {
	const struct spte_layout *l;
};

UNIT_ADD_LAYOUT_VARIANTS(rmap);

FIXTURE_SETUP(rmap)
{
	const struct kmmu_vm_config cfg = {
		.spte_format = variant->l->format, .flags = variant->l->flags,
	};
	int i, err;

	kmmu_user_thread_enter();
	self->warnings = kmmu_user_warnings();
	self->kmmu = kmmu_create_vm(&cfg, variant->l->format, &err);
	ASSERT_NE(NULL, self->kmmu);
	memset(self->head, 0, sizeof(self->head));
	memset(&self->cache, 0, sizeof(self->cache));
	for (i = 0; i < NR_SPTES; i++) {
		struct kmmu_spte_args a = {
			.pfn = 0x1000 + i, .level = 1, .access = KMMU_ACC_ALL,
			.host_writable = true, .refcounted = true,
		};

		self->sptes[i] = make_spte(&self->kmmu->fmt, &a);
		self->in[i] = -1;
	}
}

FIXTURE_TEARDOWN(rmap)
{
	int i;

	write_lock(&self->kmmu->mmu_lock);
	for (i = 0; i < NR_SPTES; i++)
		if (self->in[i] >= 0)
			kmmu_rmap_remove(self->kmmu, &self->head[self->in[i]], &self->sptes[i]);
	write_unlock(&self->kmmu->mmu_lock);
	kmmu_rmap_cache_free(&self->cache);
	unit_vm_put(self->kmmu, 0);
	EXPECT_EQ(self->warnings, kmmu_user_warnings());
}

static u64 rnd(u64 *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 7;
	*state ^= *state << 17;
	return *state;
}

/* Add or remove SPTE @i (mmu_lock held for write); 0 or the add's error. */
static int flip(struct _test_data_rmap *self, int i, int h)
{
	int ret;

	if (self->in[i] >= 0) {
		if (!kmmu_rmap_remove(self->kmmu, &self->head[h], &self->sptes[i]))
			return -ENOENT;
		/* Unmarked once out: no reader can see it any more. */
		__atomic_store_n(&self->in[i], -1, __ATOMIC_RELAXED);
		return 0;
	}
	ret = kmmu_rmap_cache_topup(&self->cache, 1);
	if (ret)
		return ret;
	/* Marked before it is added: a reader that sees it finds it marked. */
	__atomic_store_n(&self->in[i], h, __ATOMIC_RELAXED);
	ret = kmmu_rmap_add(self->kmmu, &self->head[h], &self->sptes[i], &self->cache);
	return ret < 0 ? ret : 0;
}

/* What a reader of @h finds, against the model: the same set, each once. */
static void check_head(struct __test_metadata *_metadata, struct _test_data_rmap *self, int h)
{
	unsigned long val, raw, want = 0, n = 0;
	struct kmmu_rmap_iter iter;
	u8 seen[NR_SPTES] = {};
	u64 *sptep;
	int i;

	for (i = 0; i < NR_SPTES; i++)
		want += self->in[i] == h;
	raw = atomic_long_read(&self->head[h].val);
	EXPECT_EQ(0, raw & KMMU_RMAP_LOCKED);
	/* The encoding: empty, the SPTE itself, or a list. */
	if (want == 0) {
		EXPECT_EQ(0, raw);
	} else if (want == 1) {
		EXPECT_EQ(0, raw & KMMU_RMAP_MANY);
	} else {
		EXPECT_EQ(KMMU_RMAP_MANY, raw & KMMU_RMAP_MANY);
	}

	val = kmmu_rmap_lock_readonly(&self->head[h]);
	for_each_rmap_spte(val, &iter, sptep) {
		i = sptep - self->sptes;
		ASSERT_TRUE(i >= 0 && i < NR_SPTES);
		EXPECT_EQ(h, self->in[i]);
		EXPECT_EQ(0, seen[i]++);
		n++;
	}
	kmmu_rmap_unlock_readonly(&self->head[h], val);
	EXPECT_EQ(want, n);
	write_lock(&self->kmmu->mmu_lock);
	EXPECT_EQ(want, kmmu_rmap_count(self->kmmu, &self->head[h]));
	write_unlock(&self->kmmu->mmu_lock);
}

/* Random adds and removes, each followed by a full check of its rmap. */
TEST_F(rmap, adds_and_removes_match_a_model)
{
	u64 state = 0x2545f4914f6cdd1dULL;
	int op, i, h;

	for (op = 0; op < 3000; op++) {
		/* Mostly one rmap, so that it grows to several descriptors. */
		i = rnd(&state) % NR_SPTES;
		h = self->in[i];
		if (h < 0)
			h = rnd(&state) % 4 ? 0 : 1 + (int)(rnd(&state) % 3);
		write_lock(&self->kmmu->mmu_lock);
		ASSERT_EQ(0, flip(self, i, h));
		write_unlock(&self->kmmu->mmu_lock);
		check_head(_metadata, self, h);
	}
	/* And back down to nothing, in order. */
	for (i = 0; i < NR_SPTES; i++) {
		h = self->in[i];
		if (h < 0)
			continue;
		write_lock(&self->kmmu->mmu_lock);
		ASSERT_EQ(0, flip(self, i, h));
		write_unlock(&self->kmmu->mmu_lock);
		check_head(_metadata, self, h);
	}
}

/* Without a descriptor in the cache, an add that needs one changes nothing. */
TEST_F(rmap, add_without_a_descriptor)
{
	write_lock(&self->kmmu->mmu_lock);
	ASSERT_EQ(0, kmmu_rmap_add(self->kmmu, &self->head[0], &self->sptes[0], &self->cache));
	self->in[0] = 0;
	EXPECT_EQ(-ENOMEM, kmmu_rmap_add(self->kmmu, &self->head[0], &self->sptes[1],
					 &self->cache));
	write_unlock(&self->kmmu->mmu_lock);
	check_head(_metadata, self, 0);
	EXPECT_EQ((unsigned long)&self->sptes[0], atomic_long_read(&self->head[0].val));
}

/* Removing an SPTE that is not there is kmmu's bug: it WARNs, changes nothing. */
TEST_F(rmap, remove_of_a_stranger_warns)
{
	write_lock(&self->kmmu->mmu_lock);
	ASSERT_EQ(0, flip(self, 0, 0));
	ASSERT_EQ(0, flip(self, 1, 0));
	EXPECT_FALSE(kmmu_rmap_remove(self->kmmu, &self->head[0], &self->sptes[2]));
	write_unlock(&self->kmmu->mmu_lock);
	EXPECT_EQ(self->warnings + 1, kmmu_user_warnings());
	self->warnings++;
	check_head(_metadata, self, 0);
}

/*
 * Aging through an rmap: test only counts, clearing makes every SPTE old
 * (A cleared, or access-tracked without A/D) and keeps the rest of it.
 */
TEST_F(rmap, aging_clears_accessed_state)
{
	const struct kmmu_spte_fmt *f = &self->kmmu->fmt;
	struct kmmu_rmap_age_result res = {};
	int i;

	write_lock(&self->kmmu->mmu_lock);
	for (i = 0; i < 40; i++)
		ASSERT_EQ(0, flip(self, i, 0));
	write_unlock(&self->kmmu->mmu_lock);

	kmmu_rmap_age_range(self->kmmu, &self->head[0], 1, true, false, &res);
	EXPECT_EQ(40, res.young);
	EXPECT_EQ(0, res.old);
	for (i = 0; i < 40; i++)
		EXPECT_TRUE(is_accessed_spte(f, self->sptes[i]));

	res = (struct kmmu_rmap_age_result){};
	kmmu_rmap_age_range(self->kmmu, &self->head[0], 1, false, false, &res);
	EXPECT_EQ(40, res.young);
	for (i = 0; i < 40; i++) {
		EXPECT_FALSE(is_accessed_spte(f, self->sptes[i]));
		EXPECT_TRUE(is_shadow_present_spte(self->sptes[i]));
		EXPECT_EQ(0x1000 + i, spte_to_pfn(self->sptes[i]));
	}
	EXPECT_EQ(0x1000 + 40, spte_to_pfn(self->sptes[40]));
	EXPECT_TRUE(is_accessed_spte(f, self->sptes[40]));

	res = (struct kmmu_rmap_age_result){};
	kmmu_rmap_age_range(self->kmmu, &self->head[0], 1, false, true, &res);
	EXPECT_EQ(0, res.young);
	EXPECT_EQ(40, res.old);
	EXPECT_FALSE(res.incomplete);

	/* An empty rmap: nothing, and nothing locked. */
	res = (struct kmmu_rmap_age_result){};
	kmmu_rmap_age_range(self->kmmu, &self->head[1], 1, false, false, &res);
	EXPECT_EQ(0, res.young + res.old);
	EXPECT_EQ(0, atomic_long_read(&self->head[1].val));
}

/*
 * Fast only: an rmap someone holds is skipped, not waited for (this thread
 * holds it, so waiting would never end), and the pass says it skipped.
 */
TEST_F(rmap, fast_only_does_not_wait)
{
	struct kmmu_rmap_age_result res = {};
	unsigned long val;
	int i;

	write_lock(&self->kmmu->mmu_lock);
	for (i = 0; i < 3; i++)
		ASSERT_EQ(0, flip(self, i, 0));
	write_unlock(&self->kmmu->mmu_lock);

	val = kmmu_rmap_lock_readonly(&self->head[0]);
	ASSERT_NE(0, val);
	kmmu_rmap_age_range(self->kmmu, &self->head[0], 1, false, true, &res);
	EXPECT_TRUE(res.incomplete);
	EXPECT_EQ(0, res.young + res.old);
	kmmu_rmap_unlock_readonly(&self->head[0], val);

	res = (struct kmmu_rmap_age_result){};
	kmmu_rmap_age_range(self->kmmu, &self->head[0], 1, false, true, &res);
	EXPECT_FALSE(res.incomplete);
	EXPECT_EQ(3, res.young);
	check_head(_metadata, self, 0);
}

/*
 * What the race hook does, once, when aging has read the SPTE of a one-SPTE
 * rmap: move SPTE 0 to rmap 1 (as a remap of L1 moves a shadow leaf's slot
 * to another gfn), or set its D bit (as the CPU may).
 */
static struct {
	struct _test_data_rmap *self;
	bool move;
	int hits;
} hook;

static void single_age_hook(struct kmmu *kmmu, int point, uint64_t gfn, void *data)
{
	struct _test_data_rmap *self = hook.self;

	if (point != KMMU_RACE_RMAP_AGE_READ || hook.hits++)
		return;
	if (!hook.move) {
		__atomic_or_fetch(&self->sptes[0], self->kmmu->fmt.dirty, __ATOMIC_SEQ_CST);
		return;
	}
	write_lock(&self->kmmu->mmu_lock);
	flip(self, 0, 0);
	flip(self, 0, 1);
	write_unlock(&self->kmmu->mmu_lock);
}

/*
 * An rmap of one SPTE is aged without its lock: the SPTE leaves the rmap
 * right after aging read it, still young.  Aging must see the head moved
 * and leave the SPTE alone: it maps another gfn now.
 */
TEST_F(rmap, single_spte_moved_under_aging)
{
	const struct kmmu_spte_fmt *f = &self->kmmu->fmt;
	struct kmmu_rmap_age_result res = {};

	write_lock(&self->kmmu->mmu_lock);
	ASSERT_EQ(0, flip(self, 0, 0));
	write_unlock(&self->kmmu->mmu_lock);
	hook = (typeof(hook)){ .self = self, .move = true };
	kmmu_user_set_race_hook(single_age_hook, NULL);
	kmmu_rmap_age_range(self->kmmu, &self->head[0], 1, false, false, &res);
	kmmu_user_set_race_hook(NULL, NULL);
	ASSERT_EQ(1, hook.hits);
	EXPECT_EQ(0, res.young + res.old);
	EXPECT_TRUE(is_accessed_spte(f, self->sptes[0]));
	check_head(_metadata, self, 0);
	check_head(_metadata, self, 1);

	/* Where it is now, it is aged. */
	kmmu_rmap_age_range(self->kmmu, &self->head[1], 1, false, false, &res);
	EXPECT_EQ(1, res.young);
	EXPECT_FALSE(is_accessed_spte(f, self->sptes[0]));
}

/*
 * The CPU sets D between aging's read of the SPTE and its cmpxchg: the
 * cmpxchg fails, and the retry clears A and keeps D.
 */
TEST_F(rmap, single_spte_keeps_a_d_bit_set_meanwhile)
{
	const struct kmmu_spte_fmt *f = &self->kmmu->fmt;
	struct kmmu_rmap_age_result res = {};

	if (variant->l->ad_type)
		SKIP(return, "no D bits without A/D");
	self->sptes[0] &= ~f->dirty;
	write_lock(&self->kmmu->mmu_lock);
	ASSERT_EQ(0, flip(self, 0, 0));
	write_unlock(&self->kmmu->mmu_lock);
	hook = (typeof(hook)){ .self = self };
	kmmu_user_set_race_hook(single_age_hook, NULL);
	kmmu_rmap_age_range(self->kmmu, &self->head[0], 1, false, false, &res);
	kmmu_user_set_race_hook(NULL, NULL);
	EXPECT_LE(1, hook.hits);
	EXPECT_EQ(1, res.young);
	EXPECT_FALSE(is_accessed_spte(f, self->sptes[0]));
	EXPECT_TRUE(self->sptes[0] & f->dirty);
	EXPECT_EQ(0x1000, spte_to_pfn(self->sptes[0]));
}

/* A lockless reader: every SPTE it sees under the lock is in the model. */
static void *reader(void *arg)
{
	struct _test_data_rmap *self = arg;
	struct kmmu_rmap_age_result res;
	struct kmmu_rmap_iter iter;
	unsigned long val;
	u64 *sptep;
	int h = 0, i;

	kmmu_user_thread_enter();
	while (!__atomic_load_n(&self->stop, __ATOMIC_RELAXED)) {
		h = (h + 1) % NR_HEADS;
		val = kmmu_rmap_lock_readonly(&self->head[h]);
		for_each_rmap_spte(val, &iter, sptep) {
			i = sptep - self->sptes;
			self->seen++;
			if (i < 0 || i >= NR_SPTES ||
			    __atomic_load_n(&self->in[i], __ATOMIC_RELAXED) != h)
				self->bad++;
		}
		kmmu_rmap_unlock_readonly(&self->head[h], val);
		res = (struct kmmu_rmap_age_result){};
		kmmu_rmap_age_range(self->kmmu, &self->head[h], 1, false, h & 1, &res);
		__atomic_add_fetch(&self->passes, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

/*
 * A writer adds and removes under mmu_lock while a reader walks and ages
 * the rmaps with no lock but theirs.
 */
TEST_F(rmap, lockless_readers_race_a_writer)
{
	u64 state = 0x9e3779b97f4a7c15ULL;
	pthread_t t;
	int op, i, h;

	ASSERT_EQ(0, pthread_create(&t, NULL, reader, self));
	for (op = 0; op < RACE_OPS ||
		     __atomic_load_n(&self->passes, __ATOMIC_RELAXED) < RACE_PASSES; op++) {
		i = rnd(&state) % NR_SPTES;
		h = self->in[i] >= 0 ? self->in[i] : (int)(rnd(&state) % NR_HEADS);
		write_lock(&self->kmmu->mmu_lock);
		ASSERT_EQ(0, flip(self, i, h));
		write_unlock(&self->kmmu->mmu_lock);
	}
	__atomic_store_n(&self->stop, 1, __ATOMIC_RELAXED);
	pthread_join(t, NULL);
	TH_LOG("%d writes; %lu reader passes saw %lu SPTEs", op, self->passes, self->seen);
	EXPECT_EQ(0, self->bad);
	for (h = 0; h < NR_HEADS; h++)
		check_head(_metadata, self, h);
}

TEST_HARNESS_MAIN
