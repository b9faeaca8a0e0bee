// SPDX-License-Identifier: GPL-2.0
/*
 * Allocation failure at every point of a VM's life: the n-th allocation of
 * a scenario (create, two memslots, two vCPUs, faults at 4K and 2M, move,
 * delete, zap all, close) fails, for every n until the scenario no longer
 * reaches n.  Each step must fail with -ENOMEM and nothing else, change
 * nothing, work when retried, and leave no leak and no WARN behind.
 */
#include "unit_util.h"

#define SLOT0_GPA	0x100000ULL
#define SLOT0_MOVED_GPA	0x10000000ULL
#define SLOT0_PAGES	64
#define SLOT1_GPA	0x40000000ULL		/* 2M-aligned, backed by THP */
#define SLOT1_SIZE	(2 * SZ_2M)
#define WL_VALUE	0x5a5a0000ULL

struct ctx {
	struct unit_mem mem0, mem1;
	long warnings;
	long failed_before;	/* failed allocations when the current step began */
};

FIXTURE(alloc) {
	struct ctx c;
};

FIXTURE_VARIANT(alloc) {
	const struct spte_layout *l;
};

/* The suppress-#VE variant only fills tables differently: it allocates the same. */
FIXTURE_VARIANT_ADD(alloc, ept) { .l = &layout_ept };
FIXTURE_VARIANT_ADD(alloc, ept_ad_disabled) { .l = &layout_ept_ad_disabled };
FIXTURE_VARIANT_ADD(alloc, npt) { .l = &layout_npt };

FIXTURE_SETUP(alloc)
{
	struct ctx *c = &self->c;

	kmmu_user_thread_enter();
	c->warnings = kmmu_user_warnings();
	ASSERT_EQ(0, unit_mem_alloc(&c->mem0, SLOT0_PAGES * SZ_4K, KMMU_USER_MEM_ANON, SZ_4K));
	ASSERT_EQ(0, unit_mem_alloc(&c->mem1, SLOT1_SIZE, KMMU_USER_MEM_THP, SZ_2M));
}

FIXTURE_TEARDOWN(alloc)
{
	struct ctx *c = &self->c;

	kmmu_user_fail_nth(0);
	if (c->mem0.map)
		unit_mem_free(&c->mem0);
	if (c->mem1.map)
		unit_mem_free(&c->mem1);
	EXPECT_EQ(c->warnings, kmmu_user_warnings());
}

/*
 * Run one step.  A negative result must be the injected failure: -ENOMEM,
 * with the failure counter moved.  @check then verifies nothing changed,
 * and the step is run again; injected failures are one-shot, so it must
 * succeed.  Evaluates to the step's (non-negative) result.
 */
#define STEP(expr, check) ({							\
	long __ret = (expr);							\
	if (__ret < 0) {							\
		ASSERT_EQ(-ENOMEM, __ret);					\
		ASSERT_LT(c->failed_before, kmmu_user_failed_allocs());		\
		check;								\
		__ret = (expr);							\
	}									\
	ASSERT_LE(0, __ret);							\
	c->failed_before = kmmu_user_failed_allocs();				\
	__ret;									\
})

/* For steps whose failure leaves nothing that could be checked. */
#define NO_CHECK	do { } while (0)

static long set_slot(int vm, u32 slot, u64 gpa, u64 size, void *hva)
{
	struct kmmu_userspace_memory_region r = {
		.slot = slot,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (unsigned long)hva,
	};

	return kmmu_user_ioctl(vm, KMMU_SET_USER_MEMORY_REGION, (unsigned long)&r);
}

static struct kmmu_vm_stats stats(int vm)
{
	struct kmmu_vm_stats st;

	memset(&st, 0xff, sizeof(st));
	kmmu_user_ioctl(vm, KMMU_GET_STATS, (unsigned long)&st);
	return st;
}

static long run_once(int vcpu, struct kmmu_run *run)
{
	memset(run, 0, sizeof(*run));
	return kmmu_user_ioctl(vcpu, KMMU_RUN, (unsigned long)run);
}

/*
 * One pass of @write_pct writes over [gpa, gpa + size), each page getting
 * WL_VALUE ^ its gpa; RUN is a step of its own (it may fail and be retried,
 * going on where it stopped).  Returns the exit.
 */
#define RUN_WL(vcpu, gpa, size, write_pct, run) ({				\
	struct kmmu_workload __wl = unit_wl(gpa, size, write_pct, WL_VALUE);	\
	__wl.flags = KMMU_WL_XOR_GPA;						\
	ASSERT_EQ(0, kmmu_user_ioctl(vcpu, KMMU_SET_WORKLOAD, (unsigned long)&__wl)); \
	do {									\
		STEP(run_once(vcpu, run), NO_CHECK);				\
	} while ((run)->exit_reason == KMMU_EXIT_INTR);				\
	(run)->exit_reason;							\
})

/*
 * A read pass whose sum can be checked: a RUN cut short by an injected
 * failure returns only -ENOMEM, and the sum of the reads it did is lost
 * with it, so a pass that saw a failure is made again.
 */
#define READ_PASS(vcpu, gpa, size, run) ({					\
	long __failed;								\
	u32 __exit;								\
	do {									\
		__failed = kmmu_user_failed_allocs();				\
		__exit = RUN_WL(vcpu, gpa, size, 0, run);			\
	} while (__failed != kmmu_user_failed_allocs());			\
	__exit;									\
})

/* What a read pass over a slot written by RUN_WL() at @written_gpa sums up to. */
static u64 slot_sum(u64 written_gpa, u64 size, u64 step)
{
	u64 sum = 0, off;

	for (off = 0; off < size; off += step)
		sum += WL_VALUE ^ (written_gpa + off);
	return sum;
}

/* The slots are as before a failed change: the data reads back from the old gpa. */
#define CHECK_SLOT_INTACT(vcpu, gpa, size, written_gpa) do {			\
	struct kmmu_run __run;							\
	ASSERT_EQ(KMMU_EXIT_DONE, READ_PASS(vcpu, gpa, size, &__run));		\
	ASSERT_EQ(slot_sum(written_gpa, size, SZ_4K), __run.read_sum);		\
} while (0)

static void scenario(struct __test_metadata *_metadata, struct ctx *c,
		     const struct spte_layout *l)
{
	struct kmmu_vm_config cfg = { .spte_format = l->format, .flags = l->flags };
	const u64 size0 = SLOT0_PAGES * SZ_4K;
	struct kmmu_zap zap_all = { .flags = KMMU_ZAP_ALL };
	struct kmmu_vm_stats st;
	struct kmmu_run run;
	int sys, vm, vcpu0, vcpu1;
	u64 gen;

	c->failed_before = kmmu_user_failed_allocs();
	sys = STEP(kmmu_user_open(), NO_CHECK);
	vm = STEP(kmmu_user_ioctl(sys, KMMU_CREATE_VM, (unsigned long)&cfg), NO_CHECK);
	STEP(set_slot(vm, 0, SLOT0_GPA, size0, c->mem0.addr),
	     ASSERT_EQ(0, stats(vm).memslot_generation));
	STEP(set_slot(vm, 1, SLOT1_GPA, SLOT1_SIZE, c->mem1.addr),
	     ASSERT_EQ(1, stats(vm).memslot_generation));
	vcpu0 = STEP(kmmu_user_ioctl(vm, KMMU_CREATE_VCPU, 0), NO_CHECK);
	vcpu1 = STEP(kmmu_user_ioctl(vm, KMMU_CREATE_VCPU, 1),
		     ASSERT_EQ(-EEXIST, kmmu_user_ioctl(vm, KMMU_CREATE_VCPU, 0)));

	ASSERT_EQ(KMMU_EXIT_DONE, RUN_WL(vcpu0, SLOT0_GPA, size0, 100, &run));
	ASSERT_EQ(KMMU_EXIT_DONE, RUN_WL(vcpu1, SLOT1_GPA, SLOT1_SIZE, 100, &run));
	st = stats(vm);
	ASSERT_EQ(SLOT0_PAGES, st.pages_4k);
	ASSERT_EQ(2, st.pages_2m);
	gen = st.memslot_generation;

	/* Move slot 0; a failed move leaves it where it was. */
	STEP(set_slot(vm, 0, SLOT0_MOVED_GPA, size0, c->mem0.addr),
	     CHECK_SLOT_INTACT(vcpu0, SLOT0_GPA, size0, SLOT0_GPA));
	ASSERT_EQ(KMMU_EXIT_MMIO, RUN_WL(vcpu0, SLOT0_GPA, size0, 0, &run));
	ASSERT_EQ(KMMU_EXIT_DONE, READ_PASS(vcpu0, SLOT0_MOVED_GPA, size0, &run));
	ASSERT_EQ(slot_sum(SLOT0_GPA, size0, SZ_4K), run.read_sum);

	/* Delete slot 1; a failed delete leaves it mapped. */
	STEP(set_slot(vm, 1, SLOT1_GPA, 0, c->mem1.addr),
	     CHECK_SLOT_INTACT(vcpu1, SLOT1_GPA, SLOT1_SIZE, SLOT1_GPA));
	ASSERT_EQ(KMMU_EXIT_MMIO, RUN_WL(vcpu1, SLOT1_GPA, SLOT1_SIZE, 0, &run));
	ASSERT_LT(gen, stats(vm).memslot_generation);

	STEP(kmmu_user_ioctl(vm, KMMU_ZAP, (unsigned long)&zap_all), NO_CHECK);
	st = stats(vm);
	ASSERT_EQ(0, st.pages_4k + st.pages_2m);
	ASSERT_EQ(KMMU_EXIT_DONE, RUN_WL(vcpu0, SLOT0_MOVED_GPA, size0, 50, &run));
	ASSERT_EQ(SLOT0_PAGES, stats(vm).pages_4k);

	/* Closing allocates nothing and must not fail, in an order that keeps the VM last. */
	ASSERT_EQ(0, kmmu_user_close(vm));
	ASSERT_EQ(0, kmmu_user_close(vcpu0));
	ASSERT_EQ(0, kmmu_user_close(sys));
	ASSERT_EQ(0, kmmu_user_close(vcpu1));

	ASSERT_EQ(0, kmmu_user_objects_alive());
	ASSERT_EQ(0, kmmu_user_pt_pages_alive());
	ASSERT_EQ(c->warnings, kmmu_user_warnings());
}

TEST_F(alloc, every_allocation_fails_once)
{
	long n, failed;

	for (n = 1; ; n++) {
		failed = kmmu_user_failed_allocs();
		kmmu_user_fail_nth(n);
		scenario(_metadata, &self->c, variant->l);
		kmmu_user_fail_nth(0);
		/* The scenario made fewer than n allocations: every point was covered. */
		if (kmmu_user_failed_allocs() == failed)
			break;
		ASSERT_EQ(failed + 1, kmmu_user_failed_allocs());
	}
	TH_LOG("%ld allocation points exercised", n - 1);
	EXPECT_LT(30, n - 1);
}

/* ---- a failed memslot change must not be half applied ---- */

static struct kmmu *vm_with_slot(struct __test_metadata *_metadata, struct unit_mem *mem,
				 struct kmmu_vcpu **vcpu)
{
	struct kmmu_vm_config cfg = { .spte_format = KMMU_SPTE_FORMAT_EPT };
	struct kmmu *kmmu;
	int err;

	kmmu_user_thread_enter();
	kmmu = kmmu_create_vm(&cfg, KMMU_SPTE_FORMAT_EPT, &err);
	if (!kmmu)
		return NULL;
	if (unit_set_slot(kmmu, 0, SLOT0_GPA, SLOT0_PAGES * SZ_4K, mem->addr))
		return NULL;
	*vcpu = kmmu_create_vcpu(kmmu, 0, &err);
	return *vcpu ? kmmu : NULL;
}

/* The generation of the slots the VM uses now, not the counter. */
static u64 installed_generation(struct kmmu *kmmu)
{
	u64 gen;

	rcu_read_lock();
	gen = kmmu_memslots(kmmu, 0)->generation;
	rcu_read_unlock();
	return gen;
}

/*
 * Fail allocation @k of a delete (or a move) of slot 0.  Return false once
 * the change makes fewer than @k allocations (it then went through and was
 * undone).
 */
static bool fail_change_at(struct __test_metadata *_metadata, struct kmmu *kmmu,
			   struct unit_mem *mem, bool move, int k)
{
	const u64 size = SLOT0_PAGES * SZ_4K;
	u64 gen = installed_generation(kmmu);
	u64 reported = unit_stats(kmmu).memslot_generation;
	long failed = kmmu_user_failed_allocs();
	int ret;

	kmmu_user_fail_nth(k);
	ret = unit_set_slot(kmmu, 0, move ? SLOT0_MOVED_GPA : SLOT0_GPA, move ? size : 0,
			    mem->addr);
	kmmu_user_fail_nth(0);
	if (kmmu_user_failed_allocs() == failed) {
		EXPECT_EQ(0, ret);
		EXPECT_EQ(0, unit_set_slot(kmmu, 0, SLOT0_GPA, size, mem->addr));
		return false;
	}
	EXPECT_EQ(-ENOMEM, ret);
	EXPECT_EQ(gen, installed_generation(kmmu));
	if (unit_stats(kmmu).memslot_generation != reported)
		TH_LOG("%s, allocation %d failed: GET_STATS generation %llu -> %llu, in use %llu",
		       move ? "move" : "delete", k, reported,
		       unit_stats(kmmu).memslot_generation, gen);
	EXPECT_EQ(reported, unit_stats(kmmu).memslot_generation);
	return true;
}

/*
 * Every allocation of a delete and of a move, failed in turn: the slots
 * stay, and so does the generation GET_STATS reports (it must be the one
 * of the slots in use: nothing was published).
 */
TEST(failed_memslot_change_keeps_generation)
{
	long warnings = kmmu_user_warnings();
	struct kmmu_vcpu *vcpu;
	struct unit_mem mem;
	struct kmmu *kmmu;
	int k;

	ASSERT_EQ(0, unit_mem_alloc(&mem, SLOT0_PAGES * SZ_4K, KMMU_USER_MEM_ANON, SZ_4K));
	kmmu = vm_with_slot(_metadata, &mem, &vcpu);
	ASSERT_NE(NULL, kmmu);

	for (k = 1; fail_change_at(_metadata, kmmu, &mem, false, k); k++)
		;
	for (k = 1; fail_change_at(_metadata, kmmu, &mem, true, k); k++)
		;
	unit_vm_put(kmmu, 1);
	unit_mem_free(&mem);
	EXPECT_EQ(0, kmmu_user_objects_alive());
	EXPECT_EQ(warnings, kmmu_user_warnings());
}

/*
 * MMIO SPTEs keep 19 bits of the memslot generation, so every SPTE made
 * before the generation's low bits wrap must be gone once they have
 * wrapped; else, 2^19 changes later, a stale MMIO SPTE matches again and
 * a gpa that now has memory exits to userspace as MMIO.  The generation is
 * fast-forwarded under slots_lock instead of making 2^19 real changes; no
 * multiple of 2^19 is jumped over, so the VM is one such changes would
 * leave behind.
 */
#define MMIO_GPA	0x200000ULL
#define GEN_WRAP	(1ULL << 19)

static void fast_forward_generation(struct kmmu *kmmu, u64 gen)
{
	mutex_lock(&kmmu->slots_lock);
	kmmu->slots_generation = gen;
	mutex_unlock(&kmmu->slots_lock);
}

static void mmio_across_wrap(struct __test_metadata *_metadata, bool fail_once)
{
	struct kmmu_workload wl = unit_wl(MMIO_GPA, 8, 0, 0);
	struct unit_mem mem, mmio_mem;
	struct kmmu_vcpu *vcpu;
	struct kmmu_run run;
	struct kmmu *kmmu;

	ASSERT_EQ(0, unit_mem_alloc(&mem, SLOT0_PAGES * SZ_4K, KMMU_USER_MEM_ANON, SZ_4K));
	ASSERT_EQ(0, unit_mem_alloc(&mmio_mem, SZ_4K, KMMU_USER_MEM_ANON, SZ_4K));
	*unit_mem_word(&mmio_mem, 0) = 0x1234;
	kmmu = vm_with_slot(_metadata, &mem, &vcpu);
	ASSERT_NE(NULL, kmmu);

	/* An MMIO SPTE made in the last generation before the low bits wrap. */
	fast_forward_generation(kmmu, GEN_WRAP - 2);
	ASSERT_EQ(0, unit_set_slot(kmmu, 1, SLOT0_MOVED_GPA, SZ_4K, mmio_mem.addr));
	ASSERT_EQ(GEN_WRAP - 1, installed_generation(kmmu));
	ASSERT_EQ(0, unit_run(vcpu, &wl, &run));
	ASSERT_EQ(KMMU_EXIT_MMIO, run.exit_reason);

	/* The change that wraps them: first failing after one allocation was made. */
	if (fail_once) {
		kmmu_user_fail_nth(3);
		ASSERT_EQ(-ENOMEM, unit_set_slot(kmmu, 1, SLOT0_MOVED_GPA, 0, mmio_mem.addr));
		kmmu_user_fail_nth(0);
	}
	ASSERT_EQ(0, unit_set_slot(kmmu, 1, SLOT0_MOVED_GPA, 0, mmio_mem.addr));
	ASSERT_LT(GEN_WRAP, installed_generation(kmmu));

	/* Wrap-around later, the gpa gets memory: it must read the memory. */
	fast_forward_generation(kmmu, 2 * GEN_WRAP - 2);
	ASSERT_EQ(0, unit_set_slot(kmmu, 1, MMIO_GPA, SZ_4K, mmio_mem.addr));
	ASSERT_EQ(2 * GEN_WRAP - 1, installed_generation(kmmu));
	ASSERT_EQ(0, unit_run(vcpu, &wl, &run));
	if (run.exit_reason != KMMU_EXIT_DONE)
		TH_LOG("a memslot covers %#llx, yet the access exited %u (MMIO is %u)",
		       MMIO_GPA, run.exit_reason, KMMU_EXIT_MMIO);
	EXPECT_EQ(KMMU_EXIT_DONE, run.exit_reason);
	EXPECT_EQ(0x1234, run.read_sum);

	unit_vm_put(kmmu, 1);
	unit_mem_free(&mmio_mem);
	unit_mem_free(&mem);
	EXPECT_EQ(0, kmmu_user_objects_alive());
}

TEST(mmio_spte_gone_after_generation_wrap)
{
	mmio_across_wrap(_metadata, false);
}

TEST(mmio_spte_gone_after_generation_wrap_despite_failed_change)
{
	mmio_across_wrap(_metadata, true);
}

TEST_HARNESS_MAIN
