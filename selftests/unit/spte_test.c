// SPDX-License-Identifier: GPL-2.0
/*
 * SPTE encoding and decoding, field by field, for every VM configuration:
 * what make_*_spte() build and what the predicates of spte.h read, checked
 * against the Intel SDM / AMD APM layouts (unit_util.h), and against the
 * hardware walker where what matters is how the CPU reads an entry.
 */
#include "unit_util.h"

/* The highest pfn bits 12-50 can hold, and the last gfn of a 48-bit guest. */
#define PFN_MAX		((1ULL << 39) - 1)
#define GFN_MAX		((1ULL << 36) - 1)

#define MMIO_GEN_BITS	(0x7f8ULL | 0x7ff0000000000000ULL)	/* 3-10 and 52-62 */

/* Mask of the single bits b for which @expr, evaluated with v = BIT(b), holds. */
#define BITS_WHERE(expr) ({							\
	u64 __mask = 0;								\
	int __b;								\
	for (__b = 0; __b < 64; __b++) {					\
		u64 v = 1ULL << __b;						\
		if (expr)							\
			__mask |= v;						\
	}									\
	__mask;									\
})

FIXTURE(fmt) {
	struct kmmu_spte_fmt f;
	long warnings;
};

FIXTURE_VARIANT(fmt) {
	const struct spte_layout *l;
};

UNIT_ADD_LAYOUT_VARIANTS(fmt);

FIXTURE_SETUP(fmt)
{
	kmmu_user_thread_enter();
	self->warnings = kmmu_user_warnings();
	ASSERT_EQ(0, kmmu_spte_fmt_init(&self->f, variant->l->format, variant->l->flags));
}

FIXTURE_TEARDOWN(fmt)
{
	/* Every input below is legal: no helper may WARN on it. */
	EXPECT_EQ(self->warnings, kmmu_user_warnings());
}

/*
 * The leaf make_spte() must build, from the spec bits: readable (and US on
 * NPT) always, X or NX from the access, PS above 4K, MMU-writable if both
 * guest and host allow writes and W too unless write-protected for dirty
 * logging, A unless prefetched; without A/D a prefetched leaf starts
 * access-tracked, with R and X parked in bits 54 and 56.
 */
static u64 expect_leaf(const struct spte_layout *l, const struct kmmu_spte_args *a)
{
	u64 e = KSW_MMU_PRESENT | (a->pfn << 12) | l->r | l->us | l->memtype | l->ad_type;

	e |= (a->access & KMMU_ACC_EXEC) ? l->x : l->nx;
	if (a->level > KMMU_LEVEL_4K)
		e |= l->ps;
	if (a->host_writable)
		e |= l->host_writable;
	if (a->refcounted)
		e |= l->refcounted;
	if (a->host_writable && (a->access & KMMU_ACC_WRITE))
		e |= (a->wrprot ? 0 : l->w) | l->mmu_writable;
	if (!a->prefetch) {
		e |= l->a;
	} else if (l->ad_type) {
		e |= ((e & l->r) ? KSW_SAVED_R : 0) | ((e & l->x) ? KSW_SAVED_X : 0);
		e &= ~(l->r | l->w | l->x);
	}
	return e;
}

static u64 leaf(const struct kmmu_spte_fmt *f, kmmu_pfn_t pfn, int level, unsigned int access,
		bool host_writable)
{
	struct kmmu_spte_args a = {
		.pfn = pfn,
		.level = level,
		.access = access,
		.host_writable = host_writable,
		.refcounted = true,
	};

	return make_spte(f, &a);
}

TEST(fmt_init_rejects_what_npt_lacks)
{
	static const u32 npt_bad[] = {
		KMMU_VM_AD_DISABLED,
		KMMU_VM_NONPRESENT_SUPPRESS_VE,
		KMMU_VM_AD_DISABLED | KMMU_VM_NONPRESENT_SUPPRESS_VE,
	};
	struct kmmu_spte_fmt f;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(npt_bad); i++)
		EXPECT_EQ(-EINVAL, kmmu_spte_fmt_init(&f, KMMU_SPTE_FORMAT_NPT, npt_bad[i]));
	/* The default is resolved by the caller from the host CPU, never here. */
	EXPECT_EQ(-EINVAL, kmmu_spte_fmt_init(&f, KMMU_SPTE_FORMAT_DEFAULT, 0));
	EXPECT_EQ(-EINVAL, kmmu_spte_fmt_init(&f, 3, 0));

	/* Both EPT options together: access tracking and #VE-suppressing holes. */
	ASSERT_EQ(0, kmmu_spte_fmt_init(&f, KMMU_SPTE_FORMAT_EPT,
					KMMU_VM_AD_DISABLED | KMMU_VM_NONPRESENT_SUPPRESS_VE));
	EXPECT_FALSE(f.ad_enabled);
	EXPECT_EQ(0x8000000000000000ULL, f.nonpresent);
	EXPECT_EQ(0x80000000000005a0ULL, f.frozen);
	EXPECT_EQ(0, f.accessed);
	EXPECT_EQ(0, f.dirty);
}

TEST_F(fmt, layout)
{
	const struct spte_layout *l = variant->l;
	const struct kmmu_spte_fmt *f = &self->f;

	EXPECT_EQ(l->format, f->format);
	EXPECT_EQ(!l->ad_type, f->ad_enabled);
	EXPECT_EQ(l->r, f->readable);
	EXPECT_EQ(l->w, f->writable);
	EXPECT_EQ(l->x, f->executable);
	EXPECT_EQ(l->nx, f->nx);
	EXPECT_EQ(l->us, f->user);
	EXPECT_EQ(l->a, f->accessed);
	EXPECT_EQ(l->d, f->dirty);
	EXPECT_EQ(l->ps, f->large);
	EXPECT_EQ(l->memtype, f->leaf_memtype);
	EXPECT_EQ(l->host_writable, f->host_writable);
	EXPECT_EQ(l->mmu_writable, f->mmu_writable);
	EXPECT_EQ(l->refcounted, f->refcounted);
	EXPECT_EQ(l->table, f->table_bits);
	EXPECT_EQ(l->mmio_value, f->mmio_value);
	EXPECT_EQ(l->nonpresent, f->nonpresent);
	EXPECT_EQ(l->nonpresent | KSW_FROZEN, f->frozen);
	/* Access tracking takes away everything that makes an EPT entry present. */
	EXPECT_EQ(l->ad_type ? SDM_EPT_R | SDM_EPT_W | SDM_EPT_X : 0, f->acc_track_mask);
	/* EPT WB with IPAT is 0x70 (type 6 in bits 5:3, bit 6). */
	EXPECT_EQ(l->format == KMMU_SPTE_FORMAT_EPT ? 0x70 : 0, f->leaf_memtype);
}

TEST_F(fmt, nonpresent_and_frozen)
{
	const struct spte_layout *l = variant->l;
	const struct kmmu_spte_fmt *f = &self->f;
	const u64 values[] = { f->nonpresent, f->frozen };
	const u64 present_bits = l->format == KMMU_SPTE_FORMAT_EPT ?
				 SDM_EPT_R | SDM_EPT_W | SDM_EPT_X : APM_P;
	unsigned int i;

	EXPECT_EQ(l->flags & KMMU_VM_NONPRESENT_SUPPRESS_VE ? 0x8000000000000000ULL : 0,
		  f->nonpresent);
	EXPECT_EQ(f->nonpresent | 0x5a0, f->frozen);

	for (i = 0; i < ARRAY_SIZE(values); i++) {
		u64 v = values[i];

		EXPECT_FALSE(is_shadow_present_spte(v));
		EXPECT_FALSE(is_mmio_spte(f, v));
		/* Not present to the CPU: EPT bits 2:0 clear, NPT P clear. */
		EXPECT_EQ(0, v & present_bits);
	}
	EXPECT_TRUE(is_frozen_spte(f, f->frozen));
	EXPECT_FALSE(is_frozen_spte(f, f->nonpresent));
	EXPECT_FALSE(is_frozen_spte(f, f->frozen | SDM_EPT_R));
}

TEST_F(fmt, leaf_every_argument)
{
	static const unsigned int accesses[] = {
		KMMU_ACC_READ,
		KMMU_ACC_READ | KMMU_ACC_WRITE,
		KMMU_ACC_READ | KMMU_ACC_EXEC,
		KMMU_ACC_ALL,
	};
	/* 1G-aligned, so every level can map them; and the extremes of bits 12-50. */
	static const kmmu_pfn_t pfns[] = { 0, 0x40000, PFN_MAX & ~0x3ffffULL };
	const struct spte_layout *l = variant->l;
	const struct kmmu_spte_fmt *f = &self->f;
	const unsigned int nr = ARRAY_SIZE(accesses) * ARRAY_SIZE(pfns) * KMMU_LEVEL_1G * 16;
	unsigned int i;

	for (i = 0; i < nr; i++) {
		unsigned int bits = i % 16;
		int level = KMMU_LEVEL_4K + i / 16 % KMMU_LEVEL_1G;
		struct kmmu_spte_args a = {
			.pfn = pfns[i / 16 / KMMU_LEVEL_1G % ARRAY_SIZE(pfns)],
			.level = level,
			.access = accesses[i / 16 / KMMU_LEVEL_1G / ARRAY_SIZE(pfns)],
			.host_writable = bits & 1,
			.refcounted = bits & 2,
			.prefetch = bits & 4,
			.wrprot = bits & 8,
		};
		u64 v = make_spte(f, &a);

		if (v != expect_leaf(l, &a))
			TH_LOG("access %x pfn %llx level %d hw %d rc %d prefetch %d wrprot %d",
			       a.access, a.pfn, level, a.host_writable, a.refcounted,
			       a.prefetch, a.wrprot);
		ASSERT_EQ(expect_leaf(l, &a), v);
		EXPECT_TRUE(is_shadow_present_spte(v));
		EXPECT_TRUE(is_last_spte(f, v, level));
		EXPECT_EQ(level > KMMU_LEVEL_4K, is_large_spte(f, v));
		EXPECT_EQ(a.pfn, spte_to_pfn(v));
		EXPECT_TRUE(spte_writable_invariants_ok(f, v));
		EXPECT_EQ(a.refcounted, is_refcounted_spte(f, v));
		EXPECT_EQ(a.host_writable && (a.access & KMMU_ACC_WRITE) && !a.wrprot &&
			  !(a.prefetch && l->ad_type), is_writable_spte(f, v));
		EXPECT_EQ(a.host_writable && (a.access & KMMU_ACC_WRITE),
			  is_mmu_writable_spte(f, v));
		EXPECT_EQ(!l->ad_type, spte_ad_enabled(v));
		EXPECT_FALSE(is_mmio_spte(f, v));
		EXPECT_FALSE(is_frozen_spte(f, v));
		/* Freshly made leaves are accessed unless prefetched, and never dirty. */
		EXPECT_EQ(!a.prefetch, is_accessed_spte(f, v));
		if (!l->ad_type)
			EXPECT_FALSE(is_dirty_spte(f, v));
	}

	/* 4K leaves may map the very last pfn. */
	EXPECT_EQ(PFN_MAX, spte_to_pfn(leaf(f, PFN_MAX, KMMU_LEVEL_4K, KMMU_ACC_ALL, true)));
}

/* pfn, level, access, host writable, refcounted, prefetch */
#define ARGS(_pfn, _level, _access, _hw, _rc, _prefetch)			\
	{ .pfn = _pfn, .level = _level, .access = _access, .host_writable = _hw,	\
	  .refcounted = _rc, .prefetch = _prefetch }

/* A few leaves written out in full, so a wrong model above cannot hide a wrong encoder. */
TEST(leaf_literal_values)
{
	static const struct {
		u32 format, flags;
		struct kmmu_spte_args a;
		u64 spte;
	} cases[] = {
		/* EPT: RWX 0x7 | WB 0x30 | IPAT 0x40 | A 0x100 | present 0x800 | 57, 58, 59 */
		{ KMMU_SPTE_FORMAT_EPT, 0, ARGS(0x12345, 1, KMMU_ACC_ALL, true, true, false),
		  0x0e00000012345977ULL },
		/* EPT 2M, RW: + PS 0x80, no X, not refcounted */
		{ KMMU_SPTE_FORMAT_EPT, 0,
		  ARGS(0x12400, 2, KMMU_ACC_READ | KMMU_ACC_WRITE, true, false, false),
		  0x06000000124009f3ULL },
		/* EPT prefetch, read-only host page: no A, no software writable bits */
		{ KMMU_SPTE_FORMAT_EPT, 0, ARGS(0x12345, 1, KMMU_ACC_ALL, false, false, true),
		  0x0000000012345875ULL },
		/* EPT without A/D: no A, A/D type "disabled" in bit 52 */
		{ KMMU_SPTE_FORMAT_EPT, KMMU_VM_AD_DISABLED,
		  ARGS(0x12345, 1, KMMU_ACC_ALL, true, true, false), 0x0e10000012345877ULL },
		/* ... prefetched: RWX cleared, R and X parked in 54 and 56 */
		{ KMMU_SPTE_FORMAT_EPT, KMMU_VM_AD_DISABLED,
		  ARGS(0x12345, 1, KMMU_ACC_ALL, true, true, true), 0x0f50000012345870ULL },
		/* NPT: P|RW|US 0x7 | A 0x20 | HW 0x200 | MW 0x400 | present 0x800 | 58 */
		{ KMMU_SPTE_FORMAT_NPT, 0, ARGS(0x12345, 1, KMMU_ACC_ALL, true, true, false),
		  0x0400000012345e27ULL },
		/* NPT read-only, no execute: P|US|A, NX in 63 */
		{ KMMU_SPTE_FORMAT_NPT, 0, ARGS(0x12345, 1, KMMU_ACC_READ, false, false, false),
		  0x8000000012345825ULL },
		/* NPT 1G RW no execute: + PS 0x80 */
		{ KMMU_SPTE_FORMAT_NPT, 0,
		  ARGS(0x40000, 3, KMMU_ACC_READ | KMMU_ACC_WRITE, true, false, false),
		  0x8000000040000ea7ULL },
	};
	struct kmmu_spte_fmt f;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		ASSERT_EQ(0, kmmu_spte_fmt_init(&f, cases[i].format, cases[i].flags));
		if (make_spte(&f, &cases[i].a) != cases[i].spte)
			TH_LOG("case %u: got %#llx", i, make_spte(&f, &cases[i].a));
		EXPECT_EQ(cases[i].spte, make_spte(&f, &cases[i].a));
	}
}

TEST_F(fmt, table_spte)
{
	static const kmmu_pfn_t pfns[] = { 0, 1, 0x12345, PFN_MAX };
	const struct spte_layout *l = variant->l;
	const struct kmmu_spte_fmt *f = &self->f;
	unsigned int i;
	int level;

	for (i = 0; i < ARRAY_SIZE(pfns); i++) {
		u64 v = make_table_spte(f, pfns[i]);

		EXPECT_EQ((pfns[i] << 12) | KSW_MMU_PRESENT | l->table | l->ad_type, v);
		EXPECT_EQ(pfns[i], spte_to_pfn(v));
		EXPECT_TRUE(is_shadow_present_spte(v));
		EXPECT_FALSE(is_large_spte(f, v));
		for (level = KMMU_LEVEL_2M; level <= KMMU_MAX_LEVEL; level++)
			EXPECT_FALSE(is_last_spte(f, v, level));
		/* The CPU sets A on tables; kmmu never pre-sets A or D. */
		EXPECT_EQ(0, v & (l->a | l->d));
		if (l->format == KMMU_SPTE_FORMAT_EPT) {
			/* Bits 7:3 of an entry referencing a table are reserved. */
			EXPECT_EQ(0, v & SDM_EPT_TABLE_RSVD);
			EXPECT_EQ(SDM_EPT_R | SDM_EPT_W | SDM_EPT_X, v & 7);
		} else {
			/* Nested walks are user accesses: US at every level, no NX. */
			EXPECT_EQ(APM_P | APM_RW | APM_US, v & 7);
			EXPECT_EQ(0, v & (APM_NX | APM_PS));
		}
	}
	EXPECT_EQ(l->ad_type | 0x12345807ULL, make_table_spte(f, 0x12345));
}

TEST_F(fmt, predicates_bit_by_bit)
{
	const struct spte_layout *l = variant->l;
	const struct kmmu_spte_fmt *f = &self->f;

	EXPECT_EQ(KSW_MMU_PRESENT, BITS_WHERE(is_shadow_present_spte(v)));
	EXPECT_EQ(l->ps, BITS_WHERE(is_large_spte(f, v)));
	EXPECT_EQ(l->w, BITS_WHERE(is_writable_spte(f, v)));
	EXPECT_EQ(l->mmu_writable, BITS_WHERE(is_mmu_writable_spte(f, v)));
	EXPECT_EQ(l->refcounted, BITS_WHERE(is_refcounted_spte(f, v)));
	EXPECT_EQ(KSW_PFN_MASK, BITS_WHERE(spte_to_pfn(v) != 0));
	EXPECT_EQ(KSW_PFN_MASK, BITS_WHERE(spte_to_pfn(v) && spte_to_pfn(v) == v >> 12));
	EXPECT_EQ(PFN_MAX, spte_to_pfn(~0ULL));
	/* Bits 52-53 name the A/D type; any value but 0 means "no A/D bits". */
	EXPECT_EQ(~(3ULL << 52), BITS_WHERE(spte_ad_enabled(v)));
	EXPECT_EQ(3ULL << 52, BITS_WHERE(is_access_track_spte(f, v)));
	EXPECT_EQ(~0ULL, BITS_WHERE(is_last_spte(f, v, KMMU_LEVEL_4K)));
	EXPECT_EQ(l->ps, BITS_WHERE(is_last_spte(f, v, KMMU_LEVEL_2M)));
	EXPECT_EQ(l->ps, BITS_WHERE(is_last_spte(f, v, KMMU_LEVEL_1G)));
	EXPECT_EQ(0, BITS_WHERE(is_frozen_spte(f, v)));
	EXPECT_EQ(0, BITS_WHERE(is_mmio_spte(f, v)));

	/*
	 * The MMIO value plus any one bit stays MMIO, except the present bit
	 * (then it is a real SPTE) and, on EPT, R (then it is no longer the
	 * W-without-R misconfiguration).  Taking away one of its bits ends it.
	 */
	EXPECT_EQ(~(KSW_MMU_PRESENT | (l->format == KMMU_SPTE_FORMAT_EPT ? SDM_EPT_R : 0)),
		  BITS_WHERE(is_mmio_spte(f, l->mmio_value | v)));
	EXPECT_EQ(l->mmio_value, BITS_WHERE(!is_mmio_spte(f, l->mmio_value & ~v)));
}

TEST_F(fmt, writable_invariants_table)
{
	static const struct {
		bool w, mmu_w, host_w, ok;
	} rows[] = {
		{ 0, 0, 0, true },	/* read-only for good */
		{ 0, 0, 1, true },	/* write-protected for good, host would allow */
		{ 0, 1, 0, false },	/* fast path would grant what the host denies */
		{ 0, 1, 1, true },	/* write-protected by kmmu, fast path may undo */
		{ 1, 0, 0, false },
		{ 1, 0, 1, false },	/* writable behind a write-protection */
		{ 1, 1, 0, false },
		{ 1, 1, 1, true },	/* writable */
	};
	const struct spte_layout *l = variant->l;
	const struct kmmu_spte_fmt *f = &self->f;
	u64 base = leaf(f, 0x1234, KMMU_LEVEL_4K, KMMU_ACC_READ, false);
	unsigned int i, legal = 0;

	ASSERT_EQ(0, base & (l->w | l->mmu_writable | l->host_writable));
	for (i = 0; i < ARRAY_SIZE(rows); i++) {
		u64 v = base | (rows[i].w ? l->w : 0) | (rows[i].mmu_w ? l->mmu_writable : 0) |
			(rows[i].host_w ? l->host_writable : 0);

		if (spte_writable_invariants_ok(f, v) != rows[i].ok)
			TH_LOG("W %d MMU-writable %d host-writable %d", rows[i].w, rows[i].mmu_w,
			       rows[i].host_w);
		EXPECT_EQ(rows[i].ok, spte_writable_invariants_ok(f, v));
		legal += spte_writable_invariants_ok(f, v);
	}
	EXPECT_EQ(4, legal);
}

TEST_F(fmt, access_allowed)
{
	static const unsigned int accesses[] = {
		KMMU_ACC_READ,
		KMMU_ACC_READ | KMMU_ACC_WRITE,
		KMMU_ACC_READ | KMMU_ACC_EXEC,
		KMMU_ACC_ALL,
	};
	const struct spte_layout *l = variant->l;
	const struct kmmu_spte_fmt *f = &self->f;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(accesses); i++) {
		unsigned int acc = accesses[i];
		u64 v = leaf(f, 0x1234, KMMU_LEVEL_4K, acc, true);
		u64 tracked = mark_spte_for_access_track(f, v);

		EXPECT_TRUE(is_access_allowed(f, v, KMMU_ACC_READ));
		EXPECT_EQ(!!(acc & KMMU_ACC_WRITE), is_access_allowed(f, v, KMMU_ACC_WRITE));
		EXPECT_EQ(!!(acc & KMMU_ACC_EXEC), is_access_allowed(f, v, KMMU_ACC_EXEC));

		/* Write-protected by kmmu: reads and fetches go on. */
		EXPECT_TRUE(is_access_allowed(f, v & ~l->w, KMMU_ACC_READ));
		EXPECT_FALSE(is_access_allowed(f, v & ~l->w, KMMU_ACC_WRITE));
		EXPECT_EQ(!!(acc & KMMU_ACC_EXEC), is_access_allowed(f, v & ~l->w, KMMU_ACC_EXEC));

		/* A clear stops nothing; an access-tracked EPT leaf stops everything. */
		EXPECT_EQ(!l->ad_type, is_access_allowed(f, tracked, KMMU_ACC_READ));
		EXPECT_EQ(!l->ad_type && (acc & KMMU_ACC_WRITE),
			  is_access_allowed(f, tracked, KMMU_ACC_WRITE));
		EXPECT_EQ(!l->ad_type && (acc & KMMU_ACC_EXEC),
			  is_access_allowed(f, tracked, KMMU_ACC_EXEC));
	}
}

TEST_F(fmt, mmio_spte)
{
	static const u64 gens[] = {
		0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0x101, 0x1ff, 0x3ffff, 0x40000, 0x7fffe, 0x7ffff,
	};
	static const gfn_t gfns[] = { 0, 1, 0x12345, GFN_MAX, PFN_MAX };
	const struct spte_layout *l = variant->l;
	const struct kmmu_spte_fmt *f = &self->f;
	unsigned int gi, fi;
	u64 gen, bad = 0;

	for (gi = 0; gi < ARRAY_SIZE(gens); gi++) {
		for (fi = 0; fi < ARRAY_SIZE(gfns); fi++) {
			u64 v = make_mmio_spte(f, gfns[fi], gens[gi]);

			EXPECT_EQ(gens[gi], mmio_spte_gen(v));
			EXPECT_EQ(gfns[fi], mmio_spte_gfn(v));
			EXPECT_TRUE(is_mmio_spte(f, v));
			EXPECT_FALSE(is_shadow_present_spte(v));
			EXPECT_FALSE(is_frozen_spte(f, v));
			EXPECT_EQ(0, v & ~(MMIO_GEN_BITS | KSW_PFN_MASK | l->mmio_value));
			/*
			 * EPT: W without R, a misconfiguration.  NPT: present
			 * with reserved bit 51 set, a #NPF with RSVD.
			 */
			EXPECT_EQ(l->format == KMMU_SPTE_FORMAT_EPT ? SDM_EPT_W | SDM_EPT_X
								    : APM_P | KSW_NPT_RSVD_BIT51,
				  v & (SDM_EPT_R | SDM_EPT_W | SDM_EPT_X | KSW_NPT_RSVD_BIT51));
		}
		/* Only 19 bits are kept: more must not leak into other fields. */
		EXPECT_EQ(gens[gi], mmio_spte_gen(make_mmio_spte(f, 5, gens[gi] | 1ULL << 19)));
		EXPECT_EQ(gens[gi], mmio_spte_gen(make_mmio_spte(f, 5, gens[gi] | ~0x7ffffULL)));
		EXPECT_EQ(5, mmio_spte_gfn(make_mmio_spte(f, 5, gens[gi] | ~0x7ffffULL)));
	}

	for (gen = 0; gen < 1ULL << 19; gen++)
		bad += mmio_spte_gen(make_mmio_spte(f, 0x12345, gen)) != gen;
	EXPECT_EQ(0, bad);

	/* Generation bits 0-7 in SPTE bits 3-10, 8-18 in 52-62. */
	EXPECT_EQ(l->mmio_value | 0x8, make_mmio_spte(f, 0, 1));
	EXPECT_EQ(l->mmio_value | 0x400, make_mmio_spte(f, 0, 0x80));
	EXPECT_EQ(l->mmio_value | 1ULL << 52, make_mmio_spte(f, 0, 0x100));
	EXPECT_EQ(l->mmio_value | 1ULL << 62, make_mmio_spte(f, 0, 0x40000));
	EXPECT_EQ(l->mmio_value, make_mmio_spte(f, 0, 1ULL << 19));
	EXPECT_EQ(l->format == KMMU_SPTE_FORMAT_EPT ? 0x7ff00000123457feULL : 0x7ff80000123457f9ULL,
		  make_mmio_spte(f, 0x12345, 0x7ffff));
}

TEST_F(fmt, access_tracking)
{
	static const unsigned int accesses[] = {
		KMMU_ACC_READ,
		KMMU_ACC_READ | KMMU_ACC_WRITE,
		KMMU_ACC_READ | KMMU_ACC_EXEC,
		KMMU_ACC_ALL,
	};
	const struct spte_layout *l = variant->l;
	const struct kmmu_spte_fmt *f = &self->f;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(accesses); i++) {
		u64 v = leaf(f, 0x1234, KMMU_LEVEL_4K, accesses[i], true);
		u64 t = mark_spte_for_access_track(f, v);
		u64 r = restore_acc_track_spte(t);

		/* Marking twice changes nothing more. */
		EXPECT_EQ(t, mark_spte_for_access_track(f, t));
		if (!l->ad_type) {
			/* With A/D bits clearing A is all it takes. */
			EXPECT_EQ(v & ~l->a, t);
			EXPECT_FALSE(is_accessed_spte(f, t));
			EXPECT_TRUE(is_accessed_spte(f, v));
			EXPECT_FALSE(is_access_track_spte(f, t));
			EXPECT_EQ(t, r);
			EXPECT_EQ(!!(v & l->d), is_dirty_spte(f, v));
			continue;
		}
		/* EPT without A/D: not present to the CPU, R and X saved, W dropped. */
		EXPECT_EQ(0, t & (SDM_EPT_R | SDM_EPT_W | SDM_EPT_X));
		EXPECT_EQ(KSW_SAVED_R, t & KSW_SAVED_R);
		EXPECT_EQ(v & SDM_EPT_X ? KSW_SAVED_X : 0, t & KSW_SAVED_X);
		EXPECT_EQ(0, t & KSW_SAVED_W);
		EXPECT_EQ(v & ~(SDM_EPT_R | SDM_EPT_W | SDM_EPT_X),
			  t & ~(KSW_SAVED_R | KSW_SAVED_X));
		EXPECT_TRUE(is_shadow_present_spte(t));
		EXPECT_TRUE(is_access_track_spte(f, t));
		EXPECT_FALSE(is_accessed_spte(f, t));
		EXPECT_TRUE(spte_has_volatile_bits(f, t));
		/* Without a D bit, writable is the only sign of dirt. */
		EXPECT_EQ(!!(v & SDM_EPT_W), is_dirty_spte(f, v));
		EXPECT_FALSE(is_dirty_spte(f, t));

		/* R and X come back, W does not: the fast path grants it from MMU-writable. */
		EXPECT_EQ(v & ~SDM_EPT_W, r);
		EXPECT_FALSE(is_access_track_spte(f, r));
		EXPECT_EQ(!!(accesses[i] & KMMU_ACC_WRITE), is_mmu_writable_spte(f, r));
		EXPECT_TRUE(spte_writable_invariants_ok(f, r));
	}
}

TEST_F(fmt, huge_page_split)
{
	static const int idx[] = { 0, 1, 2, 255, 510, 511 };
	const struct spte_layout *l = variant->l;
	const struct kmmu_spte_fmt *f = &self->f;
	u64 huge_1g = leaf(f, 0xc0000, KMMU_LEVEL_1G, KMMU_ACC_ALL, true) | l->d;
	u64 huge_2m = leaf(f, 0x12400, KMMU_LEVEL_2M, KMMU_ACC_READ | KMMU_ACC_WRITE, true);
	u64 tracked_2m = mark_spte_for_access_track(f, huge_2m);
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(idx); i++) {
		u64 c1 = make_huge_page_split_spte(f, huge_1g, KMMU_LEVEL_2M, idx[i]);
		u64 c2 = make_huge_page_split_spte(f, huge_2m, KMMU_LEVEL_4K, idx[i]);
		u64 c3 = make_huge_page_split_spte(f, tracked_2m, KMMU_LEVEL_4K, idx[i]);

		/* 2M children of 1G: still PS, each 512 pfns further. */
		EXPECT_EQ((huge_1g & ~KSW_PFN_MASK) | (0xc0000 + idx[i] * 512ULL) << 12, c1);
		EXPECT_TRUE(is_last_spte(f, c1, KMMU_LEVEL_2M));
		/* 4K children of 2M: PS gone, every other bit inherited. */
		EXPECT_EQ((huge_2m & ~(KSW_PFN_MASK | l->ps)) | (0x12400 + idx[i]) << 12, c2);
		EXPECT_EQ((tracked_2m & ~(KSW_PFN_MASK | l->ps)) | (0x12400 + idx[i]) << 12, c3);
		EXPECT_TRUE(spte_writable_invariants_ok(f, c1));
		EXPECT_TRUE(spte_writable_invariants_ok(f, c2));
	}
}

TEST_F(fmt, volatile_bits)
{
	const struct spte_layout *l = variant->l;
	const struct kmmu_spte_fmt *f = &self->f;
	u64 rw = leaf(f, 0x1234, KMMU_LEVEL_4K, KMMU_ACC_ALL, true);
	u64 ro = leaf(f, 0x1234, KMMU_LEVEL_4K, KMMU_ACC_READ | KMMU_ACC_EXEC, false);

	/* The fast path may set W on a write-protected MMU-writable leaf. */
	EXPECT_TRUE(spte_has_volatile_bits(f, rw & ~l->w));
	if (l->ad_type) {
		/*
		 * No A/D (KVM's rule): lockless aging may access-track any
		 * leaf, and the fast path restore it.
		 */
		EXPECT_TRUE(spte_has_volatile_bits(f, rw));
		EXPECT_TRUE(spte_has_volatile_bits(f, ro));
		EXPECT_TRUE(spte_has_volatile_bits(f, mark_spte_for_access_track(f, ro)));
		return;
	}
	/* The CPU may set D on a writable leaf; a lost A bit is tolerated. */
	EXPECT_TRUE(spte_has_volatile_bits(f, rw));
	EXPECT_FALSE(spte_has_volatile_bits(f, rw | l->d));
	EXPECT_FALSE(spte_has_volatile_bits(f, ro));
	EXPECT_FALSE(spte_has_volatile_bits(f, ro & ~l->a));
}

/* ---- the same SPTEs as the CPU's walker reads them ---- */

struct hw_tables {
	u64 *pt[KMMU_MAX_LEVEL + 1];	/* by level; pt[4] is the root */
};

static void hw_build(const struct kmmu_spte_fmt *f, struct hw_tables *t, gfn_t gfn)
{
	int level, i;

	for (level = KMMU_LEVEL_4K; level <= KMMU_MAX_LEVEL; level++) {
		t->pt[level] = os_pt_alloc();
		for (i = 0; i < KMMU_PT_ENTRIES; i++)
			t->pt[level][i] = f->nonpresent;
	}
	for (level = KMMU_MAX_LEVEL; level > KMMU_LEVEL_4K; level--)
		t->pt[level][kmmu_spte_index(gfn, level)] =
			make_table_spte(f, os_pt_to_pfn(t->pt[level - 1]));
}

static void hw_free(struct hw_tables *t)
{
	int level;

	for (level = KMMU_LEVEL_4K; level <= KMMU_MAX_LEVEL; level++)
		os_pt_free(t->pt[level]);
}

static enum kmmu_walk_result hw_walk(const struct kmmu_spte_fmt *f, struct hw_tables *t,
				     gpa_t gpa, unsigned int access, struct kmmu_walk *w)
{
	enum kmmu_walk_result res;

	memset(w, 0, sizeof(*w));
	w->gpa = gpa;
	w->access = access;
	rcu_read_lock();
	res = kmmu_walk_tdp(f, t->pt[KMMU_MAX_LEVEL], w);
	rcu_read_unlock();
	return res;
}

TEST_F(fmt, hardware_view)
{
	const struct spte_layout *l = variant->l;
	const struct kmmu_spte_fmt *f = &self->f;
	const gpa_t gpa = 0x123456789000ULL + 0x128;
	const gfn_t gfn = gpa >> 12;
	const u64 ad_bits = l->format == KMMU_SPTE_FORMAT_EPT ?
			    SDM_EPT_A | SDM_EPT_D : APM_A | APM_D;
	u64 *leafp, *pdep, rw, ro;
	struct hw_tables t;
	struct kmmu_walk w;
	int level;

	hw_build(f, &t, gfn);
	leafp = &t.pt[KMMU_LEVEL_4K][kmmu_spte_index(gfn, KMMU_LEVEL_4K)];
	pdep = &t.pt[KMMU_LEVEL_2M][kmmu_spte_index(gfn, KMMU_LEVEL_2M)];

	/* Holes and entries being torn down are not present, whatever the access. */
	*leafp = f->nonpresent;
	EXPECT_EQ(KMMU_WALK_VIOLATION, hw_walk(f, &t, gpa, KMMU_ACC_READ, &w));
	EXPECT_FALSE(w.present);
	EXPECT_EQ(KMMU_LEVEL_4K, w.level);
	*leafp = f->frozen;
	EXPECT_EQ(KMMU_WALK_VIOLATION, hw_walk(f, &t, gpa, KMMU_ACC_WRITE, &w));
	EXPECT_FALSE(w.present);
	EXPECT_EQ(f->frozen, *leafp);

	/* MMIO SPTEs of any generation are a misconfiguration, never a translation. */
	*leafp = make_mmio_spte(f, gfn, 0x7ffff);
	EXPECT_EQ(KMMU_WALK_MISCONFIG, hw_walk(f, &t, gpa, KMMU_ACC_READ, &w));
	*leafp = make_mmio_spte(f, gfn, 0);
	EXPECT_EQ(KMMU_WALK_MISCONFIG, hw_walk(f, &t, gpa, KMMU_ACC_EXEC, &w));

	/* A writable leaf translates; the walk sets A everywhere and D on the leaf. */
	rw = leaf(f, 0x4321, KMMU_LEVEL_4K, KMMU_ACC_ALL, true) & ~l->a;
	*leafp = rw;
	ASSERT_EQ(KMMU_WALK_OK, hw_walk(f, &t, gpa, KMMU_ACC_READ, &w));
	EXPECT_EQ(0x4321, w.pfn);
	EXPECT_EQ(rw | l->a, *leafp);
	ASSERT_EQ(KMMU_WALK_OK, hw_walk(f, &t, gpa, KMMU_ACC_WRITE, &w));
	EXPECT_EQ(rw | l->a | l->d, *leafp);
	EXPECT_TRUE(w.writable);
	for (level = KMMU_LEVEL_2M; level <= KMMU_MAX_LEVEL; level++) {
		u64 e = t.pt[level][kmmu_spte_index(gfn, level)];

		/* A on every table; without A/D (EPTP bit 6 clear) bits 8-9 stay alone. */
		EXPECT_EQ(l->a, e & ad_bits);
	}

	/* A read-only, non-executable leaf: the denial comes from a present entry. */
	ro = leaf(f, 0x4321, KMMU_LEVEL_4K, KMMU_ACC_READ, false);
	*leafp = ro;
	EXPECT_EQ(KMMU_WALK_OK, hw_walk(f, &t, gpa, KMMU_ACC_READ, &w));
	EXPECT_EQ(KMMU_WALK_VIOLATION, hw_walk(f, &t, gpa, KMMU_ACC_WRITE, &w));
	EXPECT_TRUE(w.present);
	EXPECT_EQ(KMMU_WALK_VIOLATION, hw_walk(f, &t, gpa, KMMU_ACC_EXEC, &w));
	EXPECT_TRUE(w.present);
	EXPECT_EQ(0, *leafp & l->d);

	/* Access-tracked: the CPU sees a hole until the saved bits come back. */
	*leafp = mark_spte_for_access_track(f, rw);
	if (l->ad_type) {
		EXPECT_EQ(KMMU_WALK_VIOLATION, hw_walk(f, &t, gpa, KMMU_ACC_READ, &w));
		EXPECT_FALSE(w.present);
		*leafp = restore_acc_track_spte(*leafp);
		EXPECT_EQ(KMMU_WALK_OK, hw_walk(f, &t, gpa, KMMU_ACC_EXEC, &w));
		EXPECT_EQ(KMMU_WALK_VIOLATION, hw_walk(f, &t, gpa, KMMU_ACC_WRITE, &w));
		EXPECT_TRUE(w.present);
	} else {
		EXPECT_EQ(KMMU_WALK_OK, hw_walk(f, &t, gpa, KMMU_ACC_READ, &w));
	}

	/* A 2M leaf in the PDE: the pfn of the 4K frame inside it. */
	*pdep = leaf(f, 0x12400, KMMU_LEVEL_2M, KMMU_ACC_ALL, true);
	ASSERT_EQ(KMMU_WALK_OK, hw_walk(f, &t, gpa, KMMU_ACC_WRITE, &w));
	EXPECT_EQ(KMMU_LEVEL_2M, w.level);
	EXPECT_EQ(0x12400 + (gfn & 511), w.pfn);
	/* ... and the leaf's 4K split children translate the same way. */
	*leafp = make_huge_page_split_spte(f, *pdep, KMMU_LEVEL_4K, gfn & 511);
	*pdep = make_table_spte(f, os_pt_to_pfn(t.pt[KMMU_LEVEL_4K]));
	ASSERT_EQ(KMMU_WALK_OK, hw_walk(f, &t, gpa, KMMU_ACC_WRITE, &w));
	EXPECT_EQ(KMMU_LEVEL_4K, w.level);
	EXPECT_EQ(0x12400 + (gfn & 511), w.pfn);

	hw_free(&t);
	EXPECT_EQ(0, kmmu_user_pt_pages_alive());
}

/* The map of the ABI (bit i) and the vector of the SPPT (bit 2i), both ways. */
TEST(spp_map_and_vector)
{
	int i;

	EXPECT_EQ(0x5555555555555555ULL, spp_map_to_vector(0xffffffffu));
	EXPECT_EQ(0, spp_map_to_vector(0));
	for (i = 0; i < 32; i++) {
		EXPECT_EQ(SDM_SPPT_VEC(i), spp_map_to_vector(1u << i));
		EXPECT_EQ(1u << i, spp_vector_to_map(SDM_SPPT_VEC(i)));
		/* The odd (reserved) bits are not permissions. */
		EXPECT_EQ(0, spp_vector_to_map(SDM_SPPT_VEC(i) << 1));
	}
	EXPECT_EQ(0x9e3779b9u, spp_vector_to_map(spp_map_to_vector(0x9e3779b9u)));
}

/*
 * Sub-page permissions as the CPU applies them: only for a write through
 * a 4K EPT leaf with W clear and SPP set, from the vector the SPPT holds
 * for the page; a missing table is an SPPT miss, reserved bits an SPPT
 * misconfiguration, and a clear bit a violation that says SPP.
 */
TEST_F(fmt, hardware_view_spp)
{
	const struct spte_layout *l = variant->l;
	const struct kmmu_spte_fmt *f = &self->f;
	const gpa_t gpa = 0x123456789000ULL + 0x128;	/* sub-page 2 */
	const gfn_t gfn = gpa >> 12;
	struct kmmu_spte_args a = {
		.pfn = 0x4321, .level = KMMU_LEVEL_4K, .access = KMMU_ACC_ALL,
		.host_writable = true, .refcounted = true, .spp = true,
	};
	u64 *sppt[KMMU_MAX_LEVEL + 1], *leafp, *vecp, spp_leaf;
	struct hw_tables t;
	struct kmmu_walk w;
	int level;

	hw_build(f, &t, gfn);
	leafp = &t.pt[KMMU_LEVEL_4K][kmmu_spte_index(gfn, KMMU_LEVEL_4K)];
	spp_leaf = make_spte(f, &a);
	if (l->format != KMMU_SPTE_FORMAT_EPT) {
		/* NPT has no SPP: nothing of it in the leaf, which stays writable. */
		EXPECT_EQ(0, spp_leaf & SDM_EPT_SPP);
		hw_free(&t);
		return;
	}
	/* W clear, SPP set, never MMU-writable; under wrprot logging neither. */
	EXPECT_EQ(SDM_EPT_SPP, spp_leaf & (SDM_EPT_SPP | l->w | l->mmu_writable));
	a.wrprot = true;
	EXPECT_EQ(0, make_spte(f, &a) & (SDM_EPT_SPP | l->w | l->mmu_writable));

	for (level = KMMU_LEVEL_4K; level <= KMMU_MAX_LEVEL; level++)
		sppt[level] = os_pt_alloc();
	for (level = KMMU_MAX_LEVEL; level > KMMU_LEVEL_4K; level--)
		sppt[level][kmmu_spte_index(gfn, level)] =
			(os_pt_to_pfn(sppt[level - 1]) << 12) | SDM_SPPT_VALID;
	vecp = &sppt[KMMU_LEVEL_4K][kmmu_spte_index(gfn, KMMU_LEVEL_4K)];

	/* Sub-page 2 writable: the write goes through, sets A/D, caches the map. */
	*vecp = SDM_SPPT_VEC(2) | SDM_SPPT_VEC(31);
	*leafp = spp_leaf & ~l->a;
	memset(&w, 0, sizeof(w));
	w.gpa = gpa;
	w.access = KMMU_ACC_WRITE;
	w.sppt = sppt[KMMU_MAX_LEVEL];
	rcu_read_lock();
	ASSERT_EQ(KMMU_WALK_OK, kmmu_walk_tdp(f, t.pt[KMMU_MAX_LEVEL], &w));
	rcu_read_unlock();
	EXPECT_EQ(0x4321, w.pfn);
	EXPECT_FALSE(w.writable);
	EXPECT_EQ((1u << 2) | (1u << 31), w.spp_wmask);
	EXPECT_EQ(spp_leaf | l->a | l->d, *leafp);
	EXPECT_EQ(!!l->d, w.dirtied);

#define SPP_WALK(acc, root) ({									memset(&w, 0, sizeof(w));							w.gpa = gpa;									w.access = acc;									w.sppt = root;									rcu_read_lock();								enum kmmu_walk_result __r = kmmu_walk_tdp(f, t.pt[KMMU_MAX_LEVEL], &w); 		rcu_read_unlock();								__r;									})
	/* Not writable: a violation through a present leaf, said to be SPP's. */
	*vecp = SDM_SPPT_VEC(1) | SDM_SPPT_VEC(3);
	EXPECT_EQ(KMMU_WALK_VIOLATION, SPP_WALK(KMMU_ACC_WRITE, sppt[KMMU_MAX_LEVEL]));
	EXPECT_TRUE(w.present);
	EXPECT_TRUE(w.spp);
	EXPECT_EQ(KMMU_LEVEL_4K, w.level);
	/* Reads and fetches never look at the SPPT. */
	EXPECT_EQ(KMMU_WALK_OK, SPP_WALK(KMMU_ACC_READ, NULL));
	EXPECT_EQ(0, w.spp_wmask);
	EXPECT_EQ(KMMU_WALK_OK, SPP_WALK(KMMU_ACC_EXEC, NULL));
	/* A missing SPPT, or a table missing on the way: an SPPT miss at that level. */
	EXPECT_EQ(KMMU_WALK_SPP_MISS, SPP_WALK(KMMU_ACC_WRITE, NULL));
	sppt[KMMU_LEVEL_2M][kmmu_spte_index(gfn, KMMU_LEVEL_2M)] &= ~SDM_SPPT_VALID;
	EXPECT_EQ(KMMU_WALK_SPP_MISS, SPP_WALK(KMMU_ACC_WRITE, sppt[KMMU_MAX_LEVEL]));
	EXPECT_EQ(KMMU_LEVEL_2M, w.level);
	sppt[KMMU_LEVEL_2M][kmmu_spte_index(gfn, KMMU_LEVEL_2M)] |= SDM_SPPT_VALID;
	/* Reserved bits: of a non-leaf entry (1-11, 52-63), of the vector (odd bits). */
	sppt[3][kmmu_spte_index(gfn, 3)] |= 1ULL << 5;
	EXPECT_EQ(KMMU_WALK_SPP_MISCONFIG, SPP_WALK(KMMU_ACC_WRITE, sppt[KMMU_MAX_LEVEL]));
	EXPECT_EQ(3, w.level);
	sppt[3][kmmu_spte_index(gfn, 3)] &= ~(1ULL << 5);
	sppt[4][kmmu_spte_index(gfn, 4)] |= 1ULL << 60;
	EXPECT_EQ(KMMU_WALK_SPP_MISCONFIG, SPP_WALK(KMMU_ACC_WRITE, sppt[KMMU_MAX_LEVEL]));
	EXPECT_EQ(4, w.level);
	sppt[4][kmmu_spte_index(gfn, 4)] &= ~(1ULL << 60);
	*vecp = SDM_SPPT_VEC(2) | (SDM_SPPT_VEC(7) << 1);
	EXPECT_EQ(KMMU_WALK_SPP_MISCONFIG, SPP_WALK(KMMU_ACC_WRITE, sppt[KMMU_MAX_LEVEL]));
	EXPECT_EQ(KMMU_LEVEL_4K, w.level);
	EXPECT_EQ(*vecp, w.spte);
	*vecp = SDM_SPPT_VEC(2);
	EXPECT_EQ(KMMU_WALK_OK, SPP_WALK(KMMU_ACC_WRITE, sppt[KMMU_MAX_LEVEL]));
	/* With W set (or SPP clear) the SPPT plays no part. */
	*leafp = spp_leaf | l->w | l->mmu_writable;
	EXPECT_EQ(KMMU_WALK_OK, SPP_WALK(KMMU_ACC_WRITE, NULL));
	*leafp = spp_leaf & ~SDM_EPT_SPP;
	EXPECT_EQ(KMMU_WALK_VIOLATION, SPP_WALK(KMMU_ACC_WRITE, sppt[KMMU_MAX_LEVEL]));
	EXPECT_FALSE(w.spp);
	/* SPP on a 2M leaf is not SPP: the write is denied by W. */
	t.pt[KMMU_LEVEL_2M][kmmu_spte_index(gfn, KMMU_LEVEL_2M)] =
		(leaf(f, 0x12400, KMMU_LEVEL_2M, KMMU_ACC_READ | KMMU_ACC_EXEC, true)) |
		SDM_EPT_SPP;
	EXPECT_EQ(KMMU_WALK_VIOLATION, SPP_WALK(KMMU_ACC_WRITE, sppt[KMMU_MAX_LEVEL]));
	EXPECT_FALSE(w.spp);
#undef SPP_WALK

	for (level = KMMU_LEVEL_4K; level <= KMMU_MAX_LEVEL; level++)
		os_pt_free(sppt[level]);
	hw_free(&t);
	EXPECT_EQ(0, kmmu_user_pt_pages_alive());
}

TEST_HARNESS_MAIN
