// SPDX-License-Identifier: GPL-2.0
/*
 * Non-refcounted memory: a memslot over a VM_PFNMAP mapping of the tail
 * pages of a higher-order, non-compound allocation (kmmu_test.ko on dev,
 * the host model's PFNMAP kind on user).  The vCPU reads and writes it, the
 * mappings are zapped, aged and torn down, and the pages' refcounts must
 * not move, no SPTE may carry the refcounted bit, and the host must never
 * be asked to mark such a page accessed or dirty.
 */
#include <stdio.h>

#include "kmmu_user.h"
#include "test_util.h"

#define GPA		0x40000000ULL
#define NPAGES		64
#define SIZE		(NPAGES * SZ_4K)
#define EPT_REFCOUNTED	(1ULL << 59)
#define NPT_REFCOUNTED	(1ULL << 58)

FIXTURE(pfnmap) {
	struct kmmu_vm *vm;
	struct kmmu_vcpu *vcpu;
	struct kmmu_mem mem;
	int32_t refs_before[NPAGES + 1];
};

FIXTURE_VARIANT(pfnmap) {
	struct kmmu_vm_config cfg;
};

KMMU_ADD_FORMAT_VARIANTS(pfnmap);

/* Refcounts now (dev), or the host model's view (user); print them for the log. */
static int snapshot_refs(struct __test_metadata *_metadata, struct kmmu_mem *m, int32_t *refs,
			 const char *when)
{
	struct kmmu_user_mem_state st;
	int i, ret;

	if (kmmu_backend() == KMMU_BACKEND_USER) {
		ret = kmmu_user_mem_state(m->addr, m->size, &st);
		refs[0] = st.refs;
		for (i = 1; i <= NPAGES; i++)
			refs[i] = 0;
		TH_LOG("%s: references held %ld, accessed %ld, dirty %ld, bad marks %ld", when,
		       st.refs, st.accessed, st.dirty, st.bad_marks);
		return ret || st.bad_marks || st.accessed || st.dirty;
	}
	ret = kmmu_mem_pfnmap_refcounts(m, refs, NPAGES + 1);
	printf("# refcount %s: head %d, tail pages 1..%d: %d %d %d ... %d\n", when, refs[0],
	       NPAGES, refs[1], refs[2], refs[3], refs[NPAGES]);
	return ret;
}

FIXTURE_SETUP(pfnmap)
{
	int ret;

	KMMU_REQUIRE_BACKEND();
	ret = kmmu_mem_alloc(&self->mem, KMMU_BACKING_PFNMAP, SIZE);
	if (ret == -EOPNOTSUPP)
		SKIP(return, "no PFNMAP memory here (kmmu_test.ko not loaded?)");
	ASSERT_EQ(0, ret);
	ASSERT_EQ(0, snapshot_refs(_metadata, &self->mem, self->refs_before, "before"));
	KMMU_VM_CREATE(&variant->cfg, &self->vm);
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 0, 0, GPA, SIZE, self->mem.addr));
	ASSERT_EQ(0, kmmu_vcpu_create(self->vm, 0, &self->vcpu));
}

FIXTURE_TEARDOWN(pfnmap)
{
	int32_t after[NPAGES + 1];
	int i;

	kmmu_vm_free(self->vm);
	self->vm = NULL;
	if (self->mem.map) {
		EXPECT_EQ(0, snapshot_refs(_metadata, &self->mem, after, "after"));
		for (i = 0; i <= NPAGES; i++)
			EXPECT_EQ(self->refs_before[i], after[i]);
	}
	kmmu_mem_free(&self->mem);
	EXPECT_EQ(0, kmmu_lib_leak_check());
}

static uint64_t refcounted_bit(const struct kmmu_vm_config *cfg, struct kmmu_vm *vm)
{
	return kmmu_vm_format(vm) == KMMU_SPTE_FORMAT_NPT ? NPT_REFCOUNTED : EPT_REFCOUNTED;
}

KMMU_TEST_F(pfnmap, run_zap_age_teardown)
{
	uint64_t *words = self->mem.addr, sum = 0;
	struct kmmu_workload wl;
	struct kmmu_spte_query q;
	struct kmmu_vm_stats st;
	struct kmmu_run run;
	int32_t mid[NPAGES + 1];
	int i, pass;

	/* What the host writes, the guest reads. */
	for (i = 0; i < NPAGES; i++) {
		words[i * 512] = 1000 + i;
		sum += 1000 + i;
	}
	wl = kmmu_wl_seq(GPA, SIZE, 0, 0);
	ASSERT_EQ(0, kmmu_vcpu_run_workload(self->vcpu, &wl, &run));
	ASSERT_EQ(KMMU_EXIT_DONE, run.exit_reason);
	EXPECT_EQ(sum, run.read_sum);

	for (pass = 0; pass < 3; pass++) {
		/* What the guest writes, the host reads. */
		wl = kmmu_wl_seq(GPA, SIZE, 100, 0xabc0 + pass);
		wl.flags = KMMU_WL_XOR_GPA;
		ASSERT_EQ(0, kmmu_vcpu_run_workload(self->vcpu, &wl, &run));
		ASSERT_EQ(KMMU_EXIT_DONE, run.exit_reason);
		for (i = 0; i < NPAGES; i++) {
			ASSERT_EQ((0xabc0 + pass) ^ (GPA + i * SZ_4K), words[i * 512]);
		}

		/* Mapped, and not marked refcounted. */
		ASSERT_EQ(0, kmmu_vm_get_spte(self->vm, GPA + pass * SZ_4K, 0, &q));
		ASSERT_EQ(KMMU_LEVEL_4K, q.level);
		EXPECT_NE(0, q.sptes[1] & (1ULL << 11));
		EXPECT_EQ(0, q.sptes[1] & refcounted_bit(&variant->cfg, self->vm));

		/* Zap half, age the rest, zap everything: nothing may touch the pages. */
		ASSERT_EQ(0, kmmu_vm_zap(self->vm, GPA, SIZE / 2, 0, 0));
		if (kmmu_backend() == KMMU_BACKEND_USER)
			EXPECT_TRUE(kmmu_host_age(self->mem.addr, SIZE, true) >= 0);
		ASSERT_EQ(0, kmmu_vm_zap(self->vm, 0, 0, 0, KMMU_ZAP_ALL));
		ASSERT_EQ(0, snapshot_refs(_metadata, &self->mem, mid, "after zap"));
		for (i = 0; i <= NPAGES; i++) {
			ASSERT_EQ(self->refs_before[i], mid[i]);
		}
	}
	ASSERT_EQ(0, kmmu_vm_stats(self->vm, &st));
	EXPECT_EQ(0, st.pages_4k);
	EXPECT_EQ(0, st.zapped_leafs);	/* counts only leaves whose page was told */
}

TEST_HARNESS_MAIN
