// SPDX-License-Identifier: GPL-2.0
/*
 * The software vCPU must behave like the hardware it stands for: its soft
 * TLB keeps using a translation until a TLB flush, whatever happened to the
 * SPTE; its walker sets A at every level and D only on written leaves; and
 * without A/D bits, aging makes leaves access-tracked and the next access
 * is repaired by the fast page-fault path.  A missing flush or a lost A/D
 * bit in the MMU would go unnoticed if the vCPU were kinder than silicon.
 */
#include "unit_util.h"

#define GPA		0x100000ULL
#define NR_PAGES	16
#define SMM_SLOT	(1u << 16)	/* slot 0 of address space 1 */

struct vm {
	struct kmmu *kmmu;
	struct kmmu_vcpu *vcpu;
	struct unit_mem mem;
	long warnings;
};

static int vm_init(struct vm *vm, const struct spte_layout *l)
{
	struct kmmu_vm_config cfg = { .spte_format = l->format, .flags = l->flags };
	int err;

	kmmu_user_thread_enter();
	vm->warnings = kmmu_user_warnings();
	vm->kmmu = kmmu_create_vm(&cfg, KMMU_SPTE_FORMAT_EPT, &err);
	if (!vm->kmmu)
		return err;
	err = unit_mem_alloc(&vm->mem, NR_PAGES * SZ_4K, KMMU_USER_MEM_ANON, SZ_4K);
	if (err)
		return err;
	err = unit_set_slot(vm->kmmu, 0, GPA, NR_PAGES * SZ_4K, vm->mem.addr);
	if (err)
		return err;
	vm->vcpu = kmmu_create_vcpu(vm->kmmu, 0, &err);
	return vm->vcpu ? 0 : err;
}

static void vm_fini(struct __test_metadata *_metadata, struct vm *vm)
{
	if (vm->kmmu)
		unit_vm_put(vm->kmmu, vm->vcpu ? 1 : 0);
	if (vm->mem.map)
		unit_mem_free(&vm->mem);
	EXPECT_EQ(0, kmmu_user_objects_alive());
	EXPECT_EQ(0, kmmu_user_pt_pages_alive());
	EXPECT_EQ(vm->warnings, kmmu_user_warnings());
}

/* One pass over pages [first, first + n) of the slot; the exit must be DONE. */
static struct kmmu_run run_pages(struct __test_metadata *_metadata, struct vm *vm, int first,
				 int n, bool write, u64 value)
{
	struct kmmu_workload wl = unit_wl(GPA + first * SZ_4K, n * SZ_4K, write ? 100 : 0, value);
	struct kmmu_run run;

	EXPECT_EQ(0, unit_run(vm->vcpu, &wl, &run));
	EXPECT_EQ(KMMU_EXIT_DONE, run.exit_reason);
	return run;
}

static u64 page_word(struct vm *vm, int page)
{
	return *unit_mem_word(&vm->mem, page * SZ_4K);
}

/* The SPTEs a walk of the page reads, by level; the leaf is sptes[1]. */
static void page_sptes(struct __test_metadata *_metadata, struct vm *vm, int page, u64 *sptes)
{
	ASSERT_EQ(KMMU_LEVEL_4K, unit_get_spte(vm->kmmu, GPA + page * SZ_4K, 0, sptes));
}

static u64 page_leaf(struct __test_metadata *_metadata, struct vm *vm, int page)
{
	u64 sptes[5];

	page_sptes(_metadata, vm, page, sptes);
	return sptes[KMMU_LEVEL_4K];
}

/* Bits the CPU could set as A and D, whether or not this VM has A/D bits. */
static u64 hw_ad_bits(const struct spte_layout *l)
{
	return l->format == KMMU_SPTE_FORMAT_EPT ? SDM_EPT_A | SDM_EPT_D : APM_A | APM_D;
}

/* Accessed as the CPU would see it: A set, or (without A/D) present at all. */
static bool leaf_accessed(const struct spte_layout *l, u64 spte)
{
	return l->ad_type ? spte & (SDM_EPT_R | SDM_EPT_W | SDM_EPT_X) : spte & l->a;
}

FIXTURE(tlb) {
	struct vm vm;
};

FIXTURE_VARIANT(tlb) {
	const struct spte_layout *l;
};

UNIT_ADD_LAYOUT_VARIANTS(tlb);

FIXTURE_SETUP(tlb)
{
	ASSERT_EQ(0, vm_init(&self->vm, variant->l));
}

FIXTURE_TEARDOWN(tlb)
{
	vm_fini(_metadata, &self->vm);
}

/*
 * W cleared in the leaf without a flush: the vCPU writes on through its
 * TLB, as a CPU would.  After the flush the write walks, faults, and the
 * fast path gives W back (the SPTE is still MMU-writable).
 */
TEST_F(tlb, stale_writable_translation_until_flush)
{
	const struct spte_layout *l = variant->l;
	struct vm *vm = &self->vm;
	struct kmmu_vm_stats s0, s1;
	struct kmmu_run run;
	u64 *sptep, spte = 0;
	int level = 0;

	run = run_pages(_metadata, vm, 3, 1, true, 1);
	EXPECT_EQ(1, run.faults);
	EXPECT_EQ(1, page_word(vm, 3));

	/* The leaf as the fast path finds it; the table stays, nothing zaps it. */
	unit_mmu_read_lock(vm->kmmu);
	sptep = kmmu_tdp_mmu_fast_pf_get_last_sptep(vm->vcpu, 0, (GPA >> 12) + 3, &spte, &level);
	unit_mmu_read_unlock(vm->kmmu);
	ASSERT_NE(NULL, sptep);
	ASSERT_EQ(KMMU_LEVEL_4K, level);
	ASSERT_EQ(l->w | l->mmu_writable, spte & (l->w | l->mmu_writable));
	__atomic_fetch_and(sptep, ~l->w, __ATOMIC_SEQ_CST);

	s0 = unit_stats(vm->kmmu);
	run = run_pages(_metadata, vm, 3, 1, true, 2);
	EXPECT_EQ(0, run.faults);
	EXPECT_EQ(2, page_word(vm, 3));
	EXPECT_EQ(s0.faults, unit_stats(vm->kmmu).faults);
	/* No walk happened: nothing put W back or touched A/D. */
	EXPECT_EQ(spte & ~l->w, page_leaf(_metadata, vm, 3));

	kmmu_flush_remote_tlbs(vm->kmmu);
	run = run_pages(_metadata, vm, 3, 1, true, 3);
	s1 = unit_stats(vm->kmmu);
	EXPECT_EQ(1, run.faults);
	EXPECT_EQ(3, page_word(vm, 3));
	EXPECT_EQ(s0.tlb_flushes + 1, s1.tlb_flushes);
	EXPECT_EQ(s0.faults + 1, s1.faults);
	EXPECT_EQ(s0.fast_faults + 1, s1.fast_faults);
	EXPECT_EQ(s0.spurious_faults, s1.spurious_faults);
	EXPECT_EQ(s0.pages_4k, s1.pages_4k);
	EXPECT_EQ(l->w, page_leaf(_metadata, vm, 3) & l->w);

	/* And the repaired translation is cached again. */
	run = run_pages(_metadata, vm, 3, 1, true, 4);
	EXPECT_EQ(0, run.faults);
	EXPECT_EQ(4, page_word(vm, 3));
}

/*
 * Aging without a flush leaves TLB entries the CPU keeps using without a
 * walk, so nothing is seen as accessed; after the flush the next access
 * walks (A/D) or faults on the access-tracked leaf (no A/D).
 */
TEST_F(tlb, aging_is_seen_only_after_a_flush)
{
	const struct spte_layout *l = variant->l;
	struct vm *vm = &self->vm;
	struct kmmu_vm_stats s0, s1;
	struct kmmu_run run;
	int p;

	run = run_pages(_metadata, vm, 0, 8, false, 0);
	EXPECT_EQ(8, run.faults);
	EXPECT_TRUE(kmmu_user_age(vm->mem.addr, 8 * SZ_4K, true, false));
	for (p = 0; p < 8; p++)
		EXPECT_FALSE(leaf_accessed(l, page_leaf(_metadata, vm, p)));

	s0 = unit_stats(vm->kmmu);
	run = run_pages(_metadata, vm, 0, 8, false, 0);
	EXPECT_EQ(0, run.faults);
	for (p = 0; p < 8; p++)
		EXPECT_FALSE(leaf_accessed(l, page_leaf(_metadata, vm, p)));
	EXPECT_FALSE(kmmu_user_age(vm->mem.addr, 8 * SZ_4K, false, false));

	kmmu_flush_remote_tlbs(vm->kmmu);
	run = run_pages(_metadata, vm, 0, 8, false, 0);
	s1 = unit_stats(vm->kmmu);
	EXPECT_EQ(l->ad_type ? 8 : 0, run.faults);
	EXPECT_EQ(s0.fast_faults + (l->ad_type ? 8 : 0), s1.fast_faults);
	EXPECT_EQ(s0.pages_4k, s1.pages_4k);
	for (p = 0; p < 8; p++)
		EXPECT_TRUE(leaf_accessed(l, page_leaf(_metadata, vm, p)));
	EXPECT_TRUE(kmmu_user_age(vm->mem.addr, 8 * SZ_4K, false, false));
}

/* Without A/D bits the walker must leave bits 8 and 9 alone at every level. */
static void check_no_ad_bits(struct __test_metadata *_metadata, struct vm *vm)
{
	u64 sptes[5];
	int p, level;

	for (p = 0; p < 8; p++) {
		page_sptes(_metadata, vm, p, sptes);
		for (level = KMMU_LEVEL_4K; level <= KMMU_MAX_LEVEL; level++)
			EXPECT_EQ(0, sptes[level] & (SDM_EPT_A | SDM_EPT_D));
	}
}

TEST_F(tlb, walker_sets_accessed_and_dirty)
{
	const struct spte_layout *l = variant->l;
	const u64 ad = hw_ad_bits(l);
	struct vm *vm = &self->vm;
	struct kmmu_vm_stats s0;
	struct kmmu_run run;
	u64 sptes[5];
	int p, level;

	run = run_pages(_metadata, vm, 0, 8, false, 0);
	EXPECT_EQ(8, run.faults);
	if (l->ad_type) {
		check_no_ad_bits(_metadata, vm);
		run_pages(_metadata, vm, 0, 8, true, 1);
		check_no_ad_bits(_metadata, vm);
		return;
	}
	/* Tables get A from the walk (kmmu links them without); a read sets no D. */
	for (p = 0; p < 8; p++) {
		page_sptes(_metadata, vm, p, sptes);
		for (level = KMMU_LEVEL_4K; level <= KMMU_MAX_LEVEL; level++)
			EXPECT_EQ(l->a, sptes[level] & ad);
	}

	/* Aging clears A on leaves only. */
	EXPECT_TRUE(kmmu_user_age(vm->mem.addr, 8 * SZ_4K, true, true));
	for (p = 0; p < 8; p++) {
		page_sptes(_metadata, vm, p, sptes);
		EXPECT_EQ(0, sptes[KMMU_LEVEL_4K] & ad);
		for (level = KMMU_LEVEL_2M; level <= KMMU_MAX_LEVEL; level++)
			EXPECT_EQ(l->a, sptes[level] & ad);
	}

	/* Reads of 0-3 and writes of 2-5 fault nowhere: the walker does it all. */
	s0 = unit_stats(vm->kmmu);
	EXPECT_EQ(0, run_pages(_metadata, vm, 0, 4, false, 0).faults);
	EXPECT_EQ(0, run_pages(_metadata, vm, 2, 4, true, 7).faults);
	EXPECT_EQ(s0.faults, unit_stats(vm->kmmu).faults);
	for (p = 0; p < 8; p++) {
		u64 want = (p < 6 ? l->a : 0) | (p >= 2 && p < 6 ? l->d : 0);

		page_sptes(_metadata, vm, p, sptes);
		if ((sptes[KMMU_LEVEL_4K] & ad) != want)
			TH_LOG("page %d: leaf %#llx", p, sptes[KMMU_LEVEL_4K]);
		EXPECT_EQ(want, sptes[KMMU_LEVEL_4K] & ad);
		/* D exists only in leaves. */
		for (level = KMMU_LEVEL_2M; level <= KMMU_MAX_LEVEL; level++)
			EXPECT_EQ(l->a, sptes[level] & ad);
		EXPECT_EQ(p >= 2 && p < 6 ? 7 : 0, page_word(vm, p));
	}
}

/*
 * Address spaces have separate roots; hardware tags TLB entries with the
 * root (EPTP / nested CR3), so switching address space never reuses the
 * other one's translations.  Here the same gpa is backed by different
 * memory in address spaces 0 and 1.
 */
TEST(address_spaces_do_not_share_translations)
{
	struct kmmu_workload wl;
	struct vm vm_ = {}, *vm = &vm_;
	struct kmmu_run run;
	struct unit_mem smm;

	ASSERT_EQ(0, vm_init(vm, &layout_ept));
	ASSERT_EQ(0, unit_mem_alloc(&smm, NR_PAGES * SZ_4K, KMMU_USER_MEM_ANON, SZ_4K));
	ASSERT_EQ(0, unit_set_slot(vm->kmmu, SMM_SLOT, GPA, NR_PAGES * SZ_4K, smm.addr));

	run_pages(_metadata, vm, 0, 1, true, 0xa);
	wl = unit_wl(GPA, 8, 100, 0xb);
	wl.flags = KMMU_WL_SMM;
	ASSERT_EQ(0, unit_run(vm->vcpu, &wl, &run));
	EXPECT_EQ(KMMU_EXIT_DONE, run.exit_reason);
	EXPECT_EQ(0xa, page_word(vm, 0));
	EXPECT_EQ(0xb, *unit_mem_word(&smm, 0));

	/* Back in address space 0, with both roots loaded. */
	run_pages(_metadata, vm, 0, 1, true, 0xc);
	EXPECT_EQ(0xc, page_word(vm, 0));
	EXPECT_EQ(0xb, *unit_mem_word(&smm, 0));
	EXPECT_EQ(0xc, run_pages(_metadata, vm, 0, 1, false, 0).read_sum);

	ASSERT_EQ(0, unit_set_slot(vm->kmmu, SMM_SLOT, GPA, 0, smm.addr));
	unit_mem_free(&smm);
	vm_fini(_metadata, vm);
}

/*
 * EPT without A/D bits: aging takes R/W/X away (saving R and X), and the
 * next access of each kind is repaired by the fast path alone.
 */
TEST(access_tracking_without_ad_bits)
{
	const struct spte_layout *l = &layout_ept_ad_disabled;
	struct kmmu_user_mem_state ms;
	struct kmmu_vm_stats s0, s1;
	struct vm vm = {};
	u64 spte;
	int p;

	ASSERT_EQ(0, vm_init(&vm, l));
	EXPECT_EQ(8, run_pages(_metadata, &vm, 0, 8, true, 5).faults);
	/* Writable means dirty: the host heard so when the faults released the pages. */
	ASSERT_EQ(0, kmmu_user_mem_state(vm.mem.addr, 8 * SZ_4K, &ms));
	EXPECT_EQ(8, ms.dirty);
	kmmu_user_mem_clear_marks(vm.mem.addr, NR_PAGES * SZ_4K);

	EXPECT_TRUE(kmmu_user_age(vm.mem.addr, 8 * SZ_4K, true, true));
	for (p = 0; p < 8; p++) {
		uint64_t pfn;

		spte = page_leaf(_metadata, &vm, p);
		EXPECT_EQ(0, spte & (SDM_EPT_R | SDM_EPT_W | SDM_EPT_X));
		EXPECT_EQ(KSW_SAVED_R | KSW_SAVED_X,
			  spte & (KSW_SAVED_R | KSW_SAVED_W | KSW_SAVED_X));
		EXPECT_EQ(KSW_MMU_PRESENT | KSW_AD_DISABLED | l->host_writable | l->mmu_writable,
			  spte & (KSW_MMU_PRESENT | KSW_AD_DISABLED | l->host_writable |
				  l->mmu_writable));
		ASSERT_EQ(0, kmmu_user_mem_pfn((char *)vm.mem.addr + p * SZ_4K, &pfn));
		EXPECT_EQ(pfn, (spte & KSW_PFN_MASK) >> 12);
	}
	/* Aging, lockless or not, never touches a page's flags. */
	ASSERT_EQ(0, kmmu_user_mem_state(vm.mem.addr, 8 * SZ_4K, &ms));
	EXPECT_EQ(0, ms.dirty);
	EXPECT_EQ(0, ms.accessed);
	EXPECT_FALSE(kmmu_user_age(vm.mem.addr, 8 * SZ_4K, false, false));

	/* Reads: one fast fault each, R and X back, W still away. */
	s0 = unit_stats(vm.kmmu);
	EXPECT_EQ(4, run_pages(_metadata, &vm, 0, 4, false, 0).faults);
	for (p = 0; p < 4; p++) {
		spte = page_leaf(_metadata, &vm, p);
		EXPECT_EQ(SDM_EPT_R | SDM_EPT_X, spte & (SDM_EPT_R | SDM_EPT_W | SDM_EPT_X));
		EXPECT_EQ(0, spte & (KSW_SAVED_R | KSW_SAVED_X));
	}
	/* Writes: W from MMU-writable; on a tracked leaf R, X and W in one fault. */
	EXPECT_EQ(2, run_pages(_metadata, &vm, 0, 2, true, 6).faults);
	EXPECT_EQ(2, run_pages(_metadata, &vm, 4, 2, true, 6).faults);
	s1 = unit_stats(vm.kmmu);
	EXPECT_EQ(s0.faults + 8, s1.faults);
	EXPECT_EQ(s0.fast_faults + 8, s1.fast_faults);
	EXPECT_EQ(s0.pages_4k, s1.pages_4k);
	EXPECT_EQ(s0.zapped_leafs, s1.zapped_leafs);
	for (p = 0; p < 8; p++) {
		bool written = p < 2 || p == 4 || p == 5;
		bool tracked = p >= 6;

		spte = page_leaf(_metadata, &vm, p);
		EXPECT_EQ(tracked ? 0 : SDM_EPT_R | SDM_EPT_X | (written ? SDM_EPT_W : 0),
			  spte & (SDM_EPT_R | SDM_EPT_W | SDM_EPT_X));
		EXPECT_EQ(written ? 6 : 5, page_word(&vm, p));
	}
	EXPECT_TRUE(kmmu_user_age(vm.mem.addr, 8 * SZ_4K, false, false));
	vm_fini(_metadata, &vm);
}

TEST_HARNESS_MAIN
