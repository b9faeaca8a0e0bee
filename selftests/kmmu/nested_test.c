// SPDX-License-Identifier: GPL-2.0
/*
 * Nested workloads (KMMU_WL_NESTED): the vCPU runs as L2, its addresses
 * translated by L1's own EPT/NPT tables, which the test builds in the
 * VM's memory through the memslot's userspace address as an L1
 * hypervisor would.  Checked: an L2 workload through an identity map
 * writes and reads what the same workload in L1 does; a non-identity map
 * lands where L1 says; L1's A/D bits; every kind of L1 fault exits with
 * its reason, level and entry, and RUN goes on once L1 fixed it; a remap
 * through the hva is seen after KMMU_INVALIDATE_NESTED; MMIO behind L1's
 * tables; dirty logging of what L2 writes; the statistics; bad inputs.
 * The shadow MMU behind it: translations kept across workloads, the
 * host's invalidations and a slot's deletion seen by L2, the log of pages
 * L2 writes again after each harvest (bitmap, D-bit mode, rings).
 */
#include "test_util.h"
#include "l1_tables.h"
#include "kmmu_user.h"

/* L1 memory: the data L2 touches, then L1's tables. */
#define DATA_GPA	0x100000ULL		/* 1 MiB: below 1G, for a 1G identity leaf */
#define DATA_SIZE	(4 * SZ_2M)
#define TABLES_GPA	0x4000000ULL		/* 64 MiB */
#define TABLES_SIZE	(64 * SZ_4K)
#define DATA_SLOT	0
#define TABLES_SLOT	1
/* Where a non-identity map puts L2's view of the data. */
#define L2_ALIAS_GPA	0x8000000000ULL		/* 512 GiB */
/* An L1 gpa with no memslot. */
#define MMIO_GPA	0x20000000ULL

#define VALUE		0x4e57000000000000ULL

/*
 * A shadow fault that starts write-tracking an L1 table walks L1's tables
 * once more (its first walk read the table before the tracking): the
 * first fault below a new root walks 3 times more, one per level below it.
 */
#define TRACKING_WALKS	3

/*
 * Counts of walks, faults and leaves are exact only when the host leaves
 * the test's memory alone: under the QEMU bench's pressure run it zaps
 * shadow leaves whenever it likes, and each zap may cost L2 one more walk
 * and fault, and leave one leaf fewer.
 */
#define EXPECT_COUNT(busy_cmp, want, got)					\
	do {									\
		if (kmmu_host_quiet()) {					\
			EXPECT_EQ(want, got);					\
		} else {							\
			EXPECT_##busy_cmp(want, got);				\
		}								\
	} while (0)
#define EXPECT_COUNT_AT_LEAST(want, got)	EXPECT_COUNT(LE, want, got)
#define EXPECT_COUNT_AT_MOST(want, got)		EXPECT_COUNT(GE, want, got)

FIXTURE(nested) {
	struct kmmu_vm *vm;
	struct kmmu_vcpu *vcpu;
	struct kmmu_mem data;
	struct kmmu_mem tables;
	struct kmmu_l1_tables l1;
};

FIXTURE_VARIANT(nested) {
	struct kmmu_vm_config cfg;
};

KMMU_ADD_FORMAT_VARIANTS(nested);

static uint64_t *data_hva(FIXTURE_DATA(nested) *self, uint64_t gpa)
{
	return (uint64_t *)((uint8_t *)self->data.addr + (gpa - DATA_GPA));
}

static struct kmmu_workload nested_wl(FIXTURE_DATA(nested) *self, uint64_t gpa, uint64_t size,
				      uint32_t write_pct)
{
	struct kmmu_workload wl = kmmu_wl_seq(gpa, size, write_pct, VALUE);

	wl.flags = KMMU_WL_XOR_GPA | KMMU_WL_NESTED;
	wl.nested_root = kmmu_l1_root(&self->l1, true);
	return wl;
}

FIXTURE_SETUP(nested)
{
	KMMU_REQUIRE_BACKEND();
	KMMU_REQUIRE_FORMAT(&variant->cfg);
	KMMU_VM_CREATE(&variant->cfg, &self->vm);
	ASSERT_EQ(0, kmmu_mem_alloc(&self->data, KMMU_BACKING_ANON, DATA_SIZE));
	ASSERT_EQ(0, kmmu_mem_alloc(&self->tables, KMMU_BACKING_ANON, TABLES_SIZE));
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, DATA_SLOT, 0, DATA_GPA, DATA_SIZE,
					 self->data.addr));
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, TABLES_SLOT, 0, TABLES_GPA, TABLES_SIZE,
					 self->tables.addr));
	ASSERT_EQ(0, kmmu_vcpu_create(self->vm, 0, &self->vcpu));
	kmmu_l1_init(&self->l1, self->tables.addr, TABLES_GPA, TABLES_SIZE,
		     kmmu_vm_format(self->vm) == KMMU_SPTE_FORMAT_EPT);
}

FIXTURE_TEARDOWN(nested)
{
	kmmu_vm_free(self->vm);
	kmmu_mem_free(&self->data);
	kmmu_mem_free(&self->tables);
	EXPECT_EQ(0, kmmu_lib_leak_check());
}

/* Ring entries of the data slot, as bits; the tables' entries are left out. */
static void nested_ring_to_bitmap(void *arg, uint32_t slot, uint64_t offset)
{
	uint64_t *bm = *(uint64_t **)arg;

	if (slot == DATA_SLOT && offset < DATA_SIZE / SZ_4K)
		bm[offset / 64] |= 1ULL << (offset % 64);
}

/* L1 edited its tables through the hva: INVEPT/INVNPT for all contexts. */
static void l1_edited(struct __test_metadata *_metadata, FIXTURE_DATA(nested) *self)
{
	struct kmmu_nested_invalidate inv = { .type = KMMU_INV_ALL_CONTEXTS };

	ASSERT_EQ(0, kmmu_ioctl(self->vm->fd, KMMU_INVALIDATE_NESTED, (unsigned long)&inv));
}

/* The hardware vCPU runs its guest unnested: refused, said so. */
#define SKIP_ON_HW()								\
	do {									\
		if (kmmu_backend_hw())						\
			SKIP(return, "hw backend: no nested workloads");	\
	} while (0)

static void run_done(struct __test_metadata *_metadata, FIXTURE_DATA(nested) *self,
		     const struct kmmu_workload *wl, struct kmmu_run *run)
{
	ASSERT_EQ(0, kmmu_vcpu_run_workload(self->vcpu, wl, run));
	ASSERT_EQ(KMMU_EXIT_DONE, run->exit_reason) {
		TH_LOG("exit %u, nested reason %u level %u gpa 0x%llx", run->exit_reason,
		       run->nested.reason, run->nested.level,
		       (unsigned long long)run->nested.gpa);
	}
}

/*
 * The same random workload, in L1 and as L2 through an identity map made
 * of leaves of @level: the same data in memory, the same reads.
 */
static void identity(struct __test_metadata *_metadata, FIXTURE_DATA(nested) *self, int level)
{
	struct kmmu_workload wl = kmmu_wl_seq(DATA_GPA, DATA_SIZE, 50, VALUE);
	/* Leaves of @level cover the data from an aligned base. */
	uint64_t leaf = SZ_4K << (9 * (level - 1));
	uint64_t base = DATA_GPA & ~(leaf - 1);
	uint64_t size = ((DATA_GPA + DATA_SIZE + leaf - 1) & ~(leaf - 1)) - base;
	struct kmmu_run run;
	uint64_t *l1_copy, l1_sum;

	l1_copy = malloc(DATA_SIZE);
	ASSERT_NE(NULL, l1_copy);
	wl.pattern = KMMU_PATTERN_RANDOM;
	wl.seed = 0x1e57 + level;
	wl.iterations = 3;
	wl.flags = KMMU_WL_XOR_GPA;
	for (uint64_t i = 0; i < DATA_SIZE / 8; i++)
		((uint64_t *)self->data.addr)[i] = i * 0x9e3779b97f4a7c15ULL;
	run_done(_metadata, self, &wl, &run);
	l1_sum = run.read_sum;
	memcpy(l1_copy, self->data.addr, DATA_SIZE);

	for (uint64_t i = 0; i < DATA_SIZE / 8; i++)
		((uint64_t *)self->data.addr)[i] = i * 0x9e3779b97f4a7c15ULL;
	/* Another workload, so the vCPU's TLB is flushed on the switch to L2. */
	kmmu_l1_map(&self->l1, base, base, size, level, true);
	wl.flags |= KMMU_WL_NESTED;
	wl.nested_root = kmmu_l1_root(&self->l1, true);
	run_done(_metadata, self, &wl, &run);
	EXPECT_EQ(l1_sum, run.read_sum);
	EXPECT_EQ(0, memcmp(l1_copy, self->data.addr, DATA_SIZE));
	free(l1_copy);
}

KMMU_TEST_F(nested, identity_4k)
{
	SKIP_ON_HW();
	identity(_metadata, self, 1);
}

KMMU_TEST_F(nested, identity_2m)
{
	SKIP_ON_HW();
	identity(_metadata, self, 2);
}

KMMU_TEST_F(nested, identity_1g)
{
	SKIP_ON_HW();
	identity(_metadata, self, 3);
}

/* L2's alias of the data, in reverse page order: each write lands where L1 says. */
KMMU_TEST_F(nested, remap_lands_where_l1_says)
{
	const uint64_t pages = 64;
	struct kmmu_workload wl;
	struct kmmu_run run;
	uint64_t p;

	SKIP_ON_HW();
	for (p = 0; p < pages; p++)
		kmmu_l1_map(&self->l1, L2_ALIAS_GPA + p * SZ_4K, DATA_GPA + (pages - 1 - p) * SZ_4K, SZ_4K,
		       1, true);
	wl = nested_wl(self, L2_ALIAS_GPA, pages * SZ_4K, 100);
	run_done(_metadata, self, &wl, &run);
	for (p = 0; p < pages; p++) {
		uint64_t l2 = L2_ALIAS_GPA + p * SZ_4K;

		ASSERT_EQ(VALUE ^ l2, *data_hva(self, DATA_GPA + (pages - 1 - p) * SZ_4K));
	}
	/* Reads through the alias see the same words. */
	wl = nested_wl(self, L2_ALIAS_GPA, pages * SZ_4K, 0);
	run_done(_metadata, self, &wl, &run);
	{
		uint64_t sum = 0;

		for (p = 0; p < pages; p++)
			sum += VALUE ^ (L2_ALIAS_GPA + p * SZ_4K);
		EXPECT_EQ(sum, run.read_sum);
	}
}

/* A reads set A in every level, writes set D in the leaf; none without EPT A/D. */
static void ad_bits(struct __test_metadata *_metadata, FIXTURE_DATA(nested) *self, bool ad)
{
	uint64_t a = self->l1.ept ? EPT_A : NPT_A, d = self->l1.ept ? EPT_D : NPT_D;
	struct kmmu_workload wl;
	struct kmmu_run run;
	int level;

	kmmu_l1_map(&self->l1, DATA_GPA, DATA_GPA, 2 * SZ_4K, 1, true);
	wl = nested_wl(self, DATA_GPA, SZ_4K, 0);
	wl.nested_root = kmmu_l1_root(&self->l1, ad);
	run_done(_metadata, self, &wl, &run);
	for (level = 4; level >= 1; level--) {
		uint64_t e = *kmmu_l1_entry(&self->l1, DATA_GPA, level);

		EXPECT_EQ(ad ? a : 0, e & a) {
			TH_LOG("level %d: 0x%llx", level, (unsigned long long)e);
		}
	}
	EXPECT_EQ(0, *kmmu_l1_entry(&self->l1, DATA_GPA, 1) & d);
	EXPECT_EQ(0, *kmmu_l1_entry(&self->l1, DATA_GPA + SZ_4K, 1) & (a | d));

	/* The write after the read walks again, for D. */
	wl = nested_wl(self, DATA_GPA, SZ_4K, 100);
	wl.nested_root = kmmu_l1_root(&self->l1, ad);
	run_done(_metadata, self, &wl, &run);
	EXPECT_EQ(ad ? d : 0, *kmmu_l1_entry(&self->l1, DATA_GPA, 1) & d);
	EXPECT_EQ(VALUE ^ DATA_GPA, *data_hva(self, DATA_GPA));
}

KMMU_TEST_F(nested, ad_bits)
{
	SKIP_ON_HW();
	ad_bits(_metadata, self, true);
}

/*
 * Reads and writes mixed in one RUN: a page whose first access was a read
 * still gets D at its first write, which must walk L1's tables again.
 */
KMMU_TEST_F(nested, dirty_bit_after_read_in_one_run)
{
	const uint64_t pages = 16;
	uint64_t d = self->l1.ept ? EPT_D : NPT_D;
	struct kmmu_workload wl;
	struct kmmu_run run;
	uint64_t p;

	SKIP_ON_HW();
	kmmu_l1_map(&self->l1, DATA_GPA, DATA_GPA, pages * SZ_4K, 1, true);
	wl = nested_wl(self, DATA_GPA, pages * SZ_4K, 50);
	wl.pattern = KMMU_PATTERN_RANDOM;
	wl.seed = 0xd1b;
	/* One word a page, about 16 accesses each, half of them reads. */
	wl.iterations = pages;
	run_done(_metadata, self, &wl, &run);
	EXPECT_NE(0, run.read_sum);
	for (p = 0; p < pages; p++) {
		ASSERT_EQ(VALUE ^ (DATA_GPA + p * SZ_4K), *data_hva(self, DATA_GPA + p * SZ_4K));
		EXPECT_EQ(d, *kmmu_l1_entry(&self->l1, DATA_GPA + p * SZ_4K, 1) & d) {
			TH_LOG("page %llu written without D in L1's leaf", (unsigned long long)p);
		}
	}
}

KMMU_TEST_F(nested, ad_bits_off)
{
	SKIP_ON_HW();
	if (!self->l1.ept)
		SKIP(return, "NPT has no A/D switch");
	ad_bits(_metadata, self, false);
}

/* RUN the write of one page and expect a nested fault. */
static void expect_fault(struct __test_metadata *_metadata, FIXTURE_DATA(nested) *self,
			 uint32_t reason, uint32_t level, uint64_t pte_gpa, uint64_t pte)
{
	struct kmmu_workload wl = nested_wl(self, DATA_GPA, SZ_4K, 100);
	struct kmmu_run run;

	ASSERT_EQ(0, kmmu_vcpu_run_workload(self->vcpu, &wl, &run));
	ASSERT_EQ(KMMU_EXIT_NESTED_FAULT, run.exit_reason);
	EXPECT_EQ(reason, run.nested.reason);
	EXPECT_EQ(level, run.nested.level);
	EXPECT_EQ(DATA_GPA, run.nested.gpa);
	EXPECT_EQ(pte_gpa, run.nested.pte_gpa);
	EXPECT_EQ(pte, run.nested.pte);
	EXPECT_EQ(KMMU_ACCESS_WRITE, run.nested.flags);
	EXPECT_EQ(0, run.accesses);
	EXPECT_EQ(0, *data_hva(self, DATA_GPA));
}

/* The L1 gpa of the entry that maps @l2_gpa at @level. */
static uint64_t entry_gpa(FIXTURE_DATA(nested) *self, uint64_t l2_gpa, int level)
{
	return TABLES_GPA + ((uint8_t *)kmmu_l1_entry(&self->l1, l2_gpa, level) -
			     (uint8_t *)self->tables.addr);
}

/*
 * Every level's entry, not present, then wrong: each exits with what L1
 * needs, and once L1 fixed it RUN goes on with the same access.
 */
KMMU_TEST_F(nested, faults_then_fixed)
{
	struct kmmu_run run;
	int level;

	SKIP_ON_HW();
	kmmu_l1_map(&self->l1, DATA_GPA, DATA_GPA, SZ_4K, 1, true);
	for (level = 4; level >= 1; level--) {
		uint64_t *e = kmmu_l1_entry(&self->l1, DATA_GPA, level), saved = *e;
		uint64_t gpa = entry_gpa(self, DATA_GPA, level);

		*e = 0;
		expect_fault(_metadata, self, KMMU_NESTED_NOT_PRESENT, level, gpa, 0);
		/* A reserved bit: bit 51, above L1's 48 physical bits. */
		*e = saved | (1ULL << 51);
		expect_fault(_metadata, self, KMMU_NESTED_MISCONFIG, level, gpa, *e);
		*e = saved;
	}
	/* Read-only leaf: a write is a permission fault. */
	*kmmu_l1_entry(&self->l1, DATA_GPA, 1) = kmmu_l1_leaf_entry(&self->l1, DATA_GPA, 1, false);
	expect_fault(_metadata, self, KMMU_NESTED_PERMISSION, 1,
		     entry_gpa(self, DATA_GPA, 1), *kmmu_l1_entry(&self->l1, DATA_GPA, 1));
	/* Fixed: the next RUN goes on and writes. */
	*kmmu_l1_entry(&self->l1, DATA_GPA, 1) = kmmu_l1_leaf_entry(&self->l1, DATA_GPA, 1, true);
	memset(&run, 0, sizeof(run));
	ASSERT_EQ(0, kmmu_vcpu_run(self->vcpu, &run));
	ASSERT_EQ(KMMU_EXIT_DONE, run.exit_reason);
	EXPECT_EQ(VALUE ^ DATA_GPA, *data_hva(self, DATA_GPA));
}

KMMU_TEST_F(nested, table_without_memory)
{
	uint64_t *e;

	SKIP_ON_HW();
	kmmu_l1_map(&self->l1, DATA_GPA, DATA_GPA, SZ_4K, 1, true);
	/* The level-2 table moves to an L1 gpa outside every memslot. */
	e = kmmu_l1_entry(&self->l1, DATA_GPA, 3);
	*e = kmmu_l1_table_entry(&self->l1, MMIO_GPA);
	expect_fault(_metadata, self, KMMU_NESTED_NO_MEMORY, 2,
		     MMIO_GPA + kmmu_l1_index(DATA_GPA, 2) * 8, 0);
	/* And the root itself. */
	self->l1.root = MMIO_GPA;
	expect_fault(_metadata, self, KMMU_NESTED_NO_MEMORY, 4,
		     MMIO_GPA + kmmu_l1_index(DATA_GPA, 4) * 8, 0);
}

/*
 * L1 remaps through the hva; after KMMU_INVALIDATE_NESTED the workload,
 * run on from where it stopped (its TLB entry cached), sees the new page.
 */
KMMU_TEST_F(nested, remap_then_invalidate)
{
	const uint64_t other = DATA_GPA + SZ_2M;
	struct kmmu_nested_invalidate inv;
	struct kmmu_workload wl;
	struct kmmu_run run;
	int round;

	SKIP_ON_HW();
	*data_hva(self, DATA_GPA) = 1;
	*data_hva(self, other) = 2;
	for (round = 0; round < 4; round++) {
		uint64_t from = round & 1 ? other : DATA_GPA, to = round & 1 ? DATA_GPA : other;

		kmmu_l1_map(&self->l1, DATA_GPA, from, SZ_4K, 1, true);
		wl = nested_wl(self, DATA_GPA, SZ_4K, 0);
		wl.iterations = 32;
		ASSERT_EQ(0, kmmu_vcpu_set_workload(self->vcpu, &wl));
		memset(&run, 0, sizeof(run));
		run.max_accesses = 16;
		ASSERT_EQ(0, kmmu_vcpu_run(self->vcpu, &run));
		ASSERT_EQ(KMMU_EXIT_BUDGET, run.exit_reason);
		EXPECT_EQ(16 * *data_hva(self, from), run.read_sum);

		kmmu_l1_map(&self->l1, DATA_GPA, to, SZ_4K, 1, true);
		memset(&inv, 0, sizeof(inv));
		if (round < 2) {
			inv.type = KMMU_INV_SINGLE_CONTEXT;
			inv.root = kmmu_l1_root(&self->l1, true);
		} else {
			inv.type = KMMU_INV_ALL_CONTEXTS;
		}
		ASSERT_EQ(0, kmmu_ioctl(self->vm->fd, KMMU_INVALIDATE_NESTED,
					(unsigned long)&inv));
		memset(&run, 0, sizeof(run));
		ASSERT_EQ(0, kmmu_vcpu_run(self->vcpu, &run));
		ASSERT_EQ(KMMU_EXIT_DONE, run.exit_reason);
		EXPECT_EQ(16 * *data_hva(self, to), run.read_sum);
	}
}

/* L1 maps L2's page to an L1 gpa with no memslot: MMIO, at the L1 gpa. */
KMMU_TEST_F(nested, mmio_behind_l1)
{
	struct kmmu_workload wl;
	struct kmmu_run run;

	SKIP_ON_HW();
	kmmu_l1_map(&self->l1, DATA_GPA, MMIO_GPA, SZ_4K, 1, true);
	wl = nested_wl(self, DATA_GPA, SZ_4K, 100);
	ASSERT_EQ(0, kmmu_vcpu_run_workload(self->vcpu, &wl, &run));
	ASSERT_EQ(KMMU_EXIT_MMIO, run.exit_reason);
	EXPECT_EQ(MMIO_GPA, run.mmio.gpa);
	EXPECT_EQ(KMMU_ACCESS_WRITE, run.mmio.flags);
	/* The value is made of the address the guest used: L2's. */
	EXPECT_EQ(VALUE ^ DATA_GPA, run.mmio.data);
	memset(&run, 0, sizeof(run));
	ASSERT_EQ(0, kmmu_vcpu_run(self->vcpu, &run));
	EXPECT_EQ(KMMU_EXIT_DONE, run.exit_reason);
}

/* What L2 writes is logged in L1's slot; so are L1's tables, whose A/D bits it set. */
KMMU_TEST_F(nested, dirty_log)
{
	uint64_t bm[DATA_SIZE / SZ_4K / 64] = { 0 }, tbm[1] = { 0 };
	const uint64_t pages = 40;
	struct kmmu_workload wl;
	struct kmmu_run run;
	uint64_t p;

	SKIP_ON_HW();
	kmmu_l1_map(&self->l1, L2_ALIAS_GPA, DATA_GPA, pages * SZ_4K, 1, true);
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, DATA_SLOT, KMMU_MEM_LOG_DIRTY_PAGES,
					 DATA_GPA, DATA_SIZE, self->data.addr));
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, TABLES_SLOT, KMMU_MEM_LOG_DIRTY_PAGES,
					 TABLES_GPA, TABLES_SIZE, self->tables.addr));
	ASSERT_EQ(0, kmmu_vm_get_dirty_log(self->vm, DATA_SLOT, bm));
	ASSERT_EQ(0, kmmu_vm_get_dirty_log(self->vm, TABLES_SLOT, tbm));
	wl = nested_wl(self, L2_ALIAS_GPA, pages * SZ_4K, 100);
	wl.pattern = KMMU_PATTERN_STRIDE;
	wl.stride = 2 * SZ_4K;
	run_done(_metadata, self, &wl, &run);
	ASSERT_EQ(0, kmmu_vm_get_dirty_log(self->vm, DATA_SLOT, bm));
	for (p = 0; p < DATA_SIZE / SZ_4K; p++) {
		bool want = p < pages && !(p & 1);

		ASSERT_EQ(want, !!(bm[p / 64] & (1ULL << (p % 64)))) {
			TH_LOG("page %llu", (unsigned long long)p);
		}
	}
	/* The leaf table (A and D) and the ones above it (A) were written. */
	ASSERT_EQ(0, kmmu_vm_get_dirty_log(self->vm, TABLES_SLOT, tbm));
	for (p = 0; p < 4; p++) {
		uint64_t table = (entry_gpa(self, L2_ALIAS_GPA, 4 - p) - TABLES_GPA) / SZ_4K;

		EXPECT_TRUE(tbm[0] & (1ULL << table));
	}
}

KMMU_TEST_F(nested, stats)
{
	uint64_t walks, faults;
	struct kmmu_workload wl;
	struct kmmu_run run;
	int fd;

	SKIP_ON_HW();
	fd = kmmu_vcpu_stats_fd(self->vcpu);
	ASSERT_LE(0, fd);
	kmmu_l1_map(&self->l1, DATA_GPA, DATA_GPA, 8 * SZ_4K, 1, true);
	wl = nested_wl(self, DATA_GPA, 8 * SZ_4K, 100);
	run_done(_metadata, self, &wl, &run);
	ASSERT_EQ(0, kmmu_stats_get(fd, "nested_walks", &walks));
	ASSERT_EQ(0, kmmu_stats_get(fd, "nested_faults", &faults));
	EXPECT_COUNT_AT_LEAST(8 + TRACKING_WALKS, walks);
	EXPECT_EQ(0, faults);
	*kmmu_l1_entry(&self->l1, DATA_GPA, 1) = 0;
	l1_edited(_metadata, self);
	wl = nested_wl(self, DATA_GPA, SZ_4K, 0);
	ASSERT_EQ(0, kmmu_vcpu_run_workload(self->vcpu, &wl, &run));
	ASSERT_EQ(KMMU_EXIT_NESTED_FAULT, run.exit_reason);
	ASSERT_EQ(0, kmmu_stats_get(fd, "nested_walks", &walks));
	ASSERT_EQ(0, kmmu_stats_get(fd, "nested_faults", &faults));
	EXPECT_COUNT_AT_LEAST(9 + TRACKING_WALKS, walks);
	EXPECT_EQ(1, faults);
	kmmu_close(fd);
}

static uint64_t vm_stat(struct __test_metadata *_metadata, FIXTURE_DATA(nested) *self,
		       const char *name)
{
	uint64_t v = ~0ULL;
	int fd = kmmu_vm_stats_fd(self->vm);

	EXPECT_LE(0, fd);
	if (fd >= 0) {
		EXPECT_EQ(0, kmmu_stats_get(fd, name, &v));
		kmmu_close(fd);
	}
	return v;
}

/*
 * What one walk of L1's tables found stays in the shadow pages: a new
 * workload (the TLB flushed) walks none again; KMMU_INVALIDATE_NESTED
 * drops every leaf, and the next run walks and maps each page again.
 */
KMMU_TEST_F(nested, shadow_pages_kept_until_invalidate)
{
	const uint64_t pages = 8;
	struct kmmu_vm_stats st;
	struct kmmu_workload wl;
	struct kmmu_run run;
	uint64_t walks, walks2;
	int fd;

	SKIP_ON_HW();
	fd = kmmu_vcpu_stats_fd(self->vcpu);
	ASSERT_LE(0, fd);
	kmmu_l1_map(&self->l1, DATA_GPA, DATA_GPA, pages * SZ_4K, 1, true);
	wl = nested_wl(self, DATA_GPA, pages * SZ_4K, 100);
	run_done(_metadata, self, &wl, &run);
	ASSERT_EQ(0, kmmu_stats_get(fd, "nested_walks", &walks));
	EXPECT_COUNT_AT_LEAST(pages + TRACKING_WALKS, walks);
	EXPECT_COUNT_AT_LEAST(pages, run.faults);
	ASSERT_EQ(0, kmmu_vm_stats(self->vm, &st));
	/* The root and one table at each level below it, all tracked; a leaf per page. */
	EXPECT_EQ(4, st.shadow_pages);
	EXPECT_EQ(4, st.shadow_tracked);
	EXPECT_COUNT_AT_MOST(pages, st.shadow_leaves);
	EXPECT_COUNT_AT_LEAST(pages, st.shadow_faults);
	EXPECT_COUNT_AT_MOST(pages, vm_stat(_metadata, self, "shadow_leaves"));

	wl = nested_wl(self, DATA_GPA, pages * SZ_4K, 100);
	run_done(_metadata, self, &wl, &run);
	ASSERT_EQ(0, kmmu_stats_get(fd, "nested_walks", &walks2));
	EXPECT_COUNT_AT_LEAST(walks, walks2);
	EXPECT_COUNT_AT_LEAST(0, run.faults);

	l1_edited(_metadata, self);
	ASSERT_EQ(0, kmmu_vm_stats(self->vm, &st));
	EXPECT_EQ(0, st.shadow_leaves);
	wl = nested_wl(self, DATA_GPA, pages * SZ_4K, 0);
	run_done(_metadata, self, &wl, &run);
	ASSERT_EQ(0, kmmu_stats_get(fd, "nested_walks", &walks2));
	EXPECT_COUNT_AT_LEAST(walks + pages + TRACKING_WALKS, walks2);
	ASSERT_EQ(0, kmmu_vm_stats(self->vm, &st));
	EXPECT_EQ(4, st.shadow_pages);
	EXPECT_COUNT_AT_MOST(pages, st.shadow_leaves);
	kmmu_close(fd);
}

/*
 * The host drops pages of L1 memory that shadow leaves map (MADV_DONTNEED):
 * the leaves go with them, and L2 reads the new, zeroed pages.
 */
KMMU_TEST_F(nested, host_invalidation_reaches_shadow)
{
	const uint64_t pages = 16;
	struct kmmu_vm_stats st;
	struct kmmu_workload wl;
	struct kmmu_run run;

	SKIP_ON_HW();
	kmmu_l1_map(&self->l1, L2_ALIAS_GPA, DATA_GPA, pages * SZ_4K, 1, true);
	wl = nested_wl(self, L2_ALIAS_GPA, pages * SZ_4K, 100);
	run_done(_metadata, self, &wl, &run);
	ASSERT_EQ(VALUE ^ L2_ALIAS_GPA, *data_hva(self, DATA_GPA));

	/* The first half of the pages goes. */
	ASSERT_EQ(0, kmmu_host_discard(self->data.addr, pages / 2 * SZ_4K));
	ASSERT_EQ(0, kmmu_vm_stats(self->vm, &st));
	EXPECT_COUNT_AT_MOST(pages / 2, st.shadow_leaves);
	wl = nested_wl(self, L2_ALIAS_GPA, pages * SZ_4K, 0);
	run_done(_metadata, self, &wl, &run);
	{
		uint64_t sum = 0, p;

		for (p = pages / 2; p < pages; p++)
			sum += VALUE ^ (L2_ALIAS_GPA + p * SZ_4K);
		EXPECT_EQ(sum, run.read_sum);
	}
	/* Written again through L2, read from L1's side. */
	wl = nested_wl(self, L2_ALIAS_GPA, pages * SZ_4K, 100);
	run_done(_metadata, self, &wl, &run);
	EXPECT_EQ(VALUE ^ L2_ALIAS_GPA, *data_hva(self, DATA_GPA));
}

/* L1's data slot goes: so do the shadow leaves, and L2's access is MMIO at the L1 gpa. */
KMMU_TEST_F(nested, slot_deletion_reaches_shadow)
{
	struct kmmu_vm_stats st;
	struct kmmu_workload wl;
	struct kmmu_run run;

	SKIP_ON_HW();
	kmmu_l1_map(&self->l1, DATA_GPA, DATA_GPA, 4 * SZ_4K, 1, true);
	wl = nested_wl(self, DATA_GPA, 4 * SZ_4K, 100);
	run_done(_metadata, self, &wl, &run);
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, DATA_SLOT, 0, DATA_GPA, 0, self->data.addr));
	ASSERT_EQ(0, kmmu_vm_stats(self->vm, &st));
	EXPECT_EQ(0, st.shadow_leaves);
	wl = nested_wl(self, DATA_GPA, SZ_4K, 0);
	ASSERT_EQ(0, kmmu_vcpu_run_workload(self->vcpu, &wl, &run));
	ASSERT_EQ(KMMU_EXIT_MMIO, run.exit_reason);
	EXPECT_EQ(DATA_GPA, run.mmio.gpa);
}

/*
 * L1's tables move away (L2's walk then has no memory) and back: the
 * moved slot has shadow state of its own, and L2 runs through its tables
 * again, which are tracked there.
 */
KMMU_TEST_F(nested, tables_slot_moves)
{
	const uint64_t away = TABLES_GPA + 32 * SZ_2M;
	struct kmmu_vm_stats st;
	struct kmmu_workload wl;
	struct kmmu_run run;

	SKIP_ON_HW();
	kmmu_l1_map(&self->l1, DATA_GPA, DATA_GPA, 4 * SZ_4K, 1, true);
	wl = nested_wl(self, DATA_GPA, 4 * SZ_4K, 100);
	run_done(_metadata, self, &wl, &run);
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, TABLES_SLOT, 0, away, TABLES_SIZE,
					 self->tables.addr));
	wl = nested_wl(self, DATA_GPA, SZ_4K, 0);
	ASSERT_EQ(0, kmmu_vcpu_run_workload(self->vcpu, &wl, &run));
	ASSERT_EQ(KMMU_EXIT_NESTED_FAULT, run.exit_reason);
	EXPECT_EQ(KMMU_NESTED_NO_MEMORY, run.nested.reason);
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, TABLES_SLOT, 0, TABLES_GPA, TABLES_SIZE,
					 self->tables.addr));
	wl = nested_wl(self, DATA_GPA, 4 * SZ_4K, 0);
	run_done(_metadata, self, &wl, &run);
	ASSERT_EQ(0, kmmu_vm_stats(self->vm, &st));
	EXPECT_EQ(4, st.shadow_tracked);
	/* And once more, with tables tracked in the slot that moves. */
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, TABLES_SLOT, 0, away, TABLES_SIZE,
					 self->tables.addr));
	ASSERT_EQ(0, kmmu_vm_stats(self->vm, &st));
	EXPECT_EQ(0, st.shadow_tracked);
}

/* How rewrite_rounds() takes the log. */
enum harvest {
	HARVEST_GET,		/* GET_DIRTY_LOG, which protects what it hands out */
	HARVEST_GET_CLEAR,	/* manual protection: GET, then CLEAR of what it said */
	HARVEST_RING,		/* the vCPU's dirty ring, and a ring reset */
};

/*
 * The pages L2 writes are in every harvest of L1's log, however it is
 * taken (@how), an aging pass (locked, then fast-only) between the writes
 * and each harvest.  After a harvest, the shadow leaves of the pages taken
 * are write-protected (the next write faults and is logged again) or, in
 * D-bit mode with a bitmap, writable with D clear: L2's next write takes
 * no fault, and the harvest finds D set again.
 */
static void rewrite_rounds(struct __test_metadata *_metadata, FIXTURE_DATA(nested) *self,
			   enum harvest how, bool dbit)
{
	const uint64_t pages = 24;
	/* Exact fault counts: the host and aging (access tracking without A/D) zap nothing. */
	bool exact = kmmu_host_quiet() && !(self->vm->cfg.flags & KMMU_VM_AD_DISABLED);
	struct kmmu_workload wl;
	struct kmmu_run run;
	int round;

	if (how == HARVEST_GET_CLEAR)
		ASSERT_EQ(0, kmmu_vm_enable_cap(self->vm, KMMU_CAP_MANUAL_DIRTY_LOG_PROTECT,
						KMMU_DIRTY_LOG_MANUAL_PROTECT_ENABLE));
	kmmu_l1_map(&self->l1, L2_ALIAS_GPA, DATA_GPA, pages * SZ_4K, 1, true);
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, DATA_SLOT, KMMU_MEM_LOG_DIRTY_PAGES,
					 DATA_GPA, DATA_SIZE, self->data.addr));
	for (round = 0; round < 3; round++) {
		uint64_t bm[DATA_SIZE / SZ_4K / 64] = { 0 }, p;
		/* Even pages in even rounds, all of them in odd ones. */
		uint64_t stride = round & 1 ? SZ_4K : 2 * SZ_4K;
		/* New leaves fault; so do logged ones unless D-bit logging left them writable. */
		uint64_t faults[2][3] = { { 12, 24, 12 }, { 12, 12, 0 } };

		wl = nested_wl(self, L2_ALIAS_GPA, pages * SZ_4K, 100);
		wl.pattern = KMMU_PATTERN_STRIDE;
		wl.stride = stride;
		wl.value = VALUE + round;
		run_done(_metadata, self, &wl, &run);
		if (exact) {
			EXPECT_EQ(faults[dbit][round], run.faults) {
				TH_LOG("round %d", round);
			}
		}
		/* Aging between the writes and the harvest takes nothing from the log. */
		ASSERT_EQ(0, kmmu_vm_age(self->vm, DATA_GPA, DATA_SIZE, 0,
					 KMMU_AGE_FLUSH | (round == 1 ? KMMU_AGE_FAST_ONLY : 0),
					 NULL, NULL));
		if (how == HARVEST_RING) {
			uint64_t *sink = bm;

			kmmu_vcpu_collect_dirty_ring(self->vcpu, nested_ring_to_bitmap, &sink);
			ASSERT_LE(0, kmmu_vm_reset_dirty_rings(self->vm));
		} else {
			ASSERT_EQ(0, kmmu_vm_get_dirty_log(self->vm, DATA_SLOT, bm));
		}
		if (how == HARVEST_GET_CLEAR)
			ASSERT_EQ(0, kmmu_vm_clear_dirty_log(self->vm, DATA_SLOT, 0,
							     DATA_SIZE / SZ_4K, bm));
		for (p = 0; p < pages; p++) {
			bool want = (round & 1) || !(p & 1);

			ASSERT_EQ(want, !!(bm[p / 64] & (1ULL << (p % 64)))) {
				TH_LOG("round %d page %llu", round, (unsigned long long)p);
			}
			if (want)
				ASSERT_EQ((VALUE + round) ^ (L2_ALIAS_GPA + p * SZ_4K),
					  *data_hva(self, DATA_GPA + p * SZ_4K));
		}
	}
}

KMMU_TEST_F(nested, dirty_log_every_round)
{
	SKIP_ON_HW();
	rewrite_rounds(_metadata, self, HARVEST_GET, false);
}

KMMU_TEST_F(nested, dirty_log_every_round_manual)
{
	SKIP_ON_HW();
	rewrite_rounds(_metadata, self, HARVEST_GET_CLEAR, false);
}

KMMU_TEST_F(nested, dirty_log_every_round_dbit)
{
	SKIP_ON_HW();
	if (kmmu_vm_enable_cap(self->vm, KMMU_CAP_DIRTY_LOG_MODE, KMMU_DIRTY_LOG_MODE_DBIT))
		SKIP(return, "D-bit mode needs A/D bits");
	rewrite_rounds(_metadata, self, HARVEST_GET, true);
}

KMMU_TEST_F(nested, dirty_log_every_round_manual_dbit)
{
	SKIP_ON_HW();
	if (kmmu_vm_enable_cap(self->vm, KMMU_CAP_DIRTY_LOG_MODE, KMMU_DIRTY_LOG_MODE_DBIT))
		SKIP(return, "D-bit mode needs A/D bits");
	rewrite_rounds(_metadata, self, HARVEST_GET_CLEAR, true);
}

/* L1 memory on 2M host pages, which L1 maps to L2 with 2M leaves. */
#define HUGE_SLOT	2
#define HUGE_GPA	0x40000000ULL		/* 1 GiB */
#define HUGE_SIZE	(2 * SZ_2M)
#define L2_HUGE_GPA	(L2_ALIAS_GPA + SZ_1G)

static uint64_t huge_sum(uint64_t value, uint64_t first, uint64_t n)
{
	uint64_t sum = 0, p;

	for (p = first; p < first + n; p++)
		sum += value ^ (L2_HUGE_GPA + p * SZ_4K);
	return sum;
}

/*
 * The huge slot, on @mem, written by L2 through 2M shadow leaves (L1 maps
 * it with 2M leaves).  False after a SKIP when the host has no 2M pages.
 */
static bool huge_slot_written(struct __test_metadata *_metadata, FIXTURE_DATA(nested) *self,
			      struct kmmu_mem *mem)
{
	struct kmmu_vm_stats st;
	struct kmmu_workload wl;
	struct kmmu_run run;
	int ret;

	ret = kmmu_mem_alloc(mem, KMMU_BACKING_HUGETLB_2M, HUGE_SIZE);
	if (ret == -EOPNOTSUPP)
		SKIP(return false, "no 2M hugetlb memory on this host (huge pages not reserved?)");
	ASSERT_EQ(0, ret) {
		return false;
	}
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, HUGE_SLOT, 0, HUGE_GPA, HUGE_SIZE,
					 mem->addr)) {
		return false;
	}
	kmmu_l1_map(&self->l1, L2_HUGE_GPA, HUGE_GPA, HUGE_SIZE, 2, true);
	wl = nested_wl(self, L2_HUGE_GPA, HUGE_SIZE, 100);
	run_done(_metadata, self, &wl, &run);
	EXPECT_EQ(0, kmmu_vm_stats(self->vm, &st));
	EXPECT_COUNT_AT_MOST(2, st.shadow_leaves);
	return true;
}

/*
 * The huge slot logs: L2 reads every page as it wrote it, writes the
 * second half, and the log has exactly that half.
 */
static void huge_slot_logs_exactly(struct __test_metadata *_metadata, FIXTURE_DATA(nested) *self)
{
	const uint64_t pages = HUGE_SIZE / SZ_4K;
	uint64_t bm[HUGE_SIZE / SZ_4K / 64] = { 0 }, p;
	struct kmmu_workload wl;
	struct kmmu_run run;

	wl = nested_wl(self, L2_HUGE_GPA + HUGE_SIZE / 2, HUGE_SIZE / 2, 100);
	wl.value = VALUE + 1;
	run_done(_metadata, self, &wl, &run);
	ASSERT_EQ(0, kmmu_vm_get_dirty_log(self->vm, HUGE_SLOT, bm));
	for (p = 0; p < pages; p++) {
		ASSERT_EQ(p >= pages / 2, !!(bm[p / 64] & (1ULL << (p % 64)))) {
			TH_LOG("page %llu", (unsigned long long)p);
		}
	}
	wl = nested_wl(self, L2_HUGE_GPA, HUGE_SIZE, 0);
	run_done(_metadata, self, &wl, &run);
	EXPECT_EQ(huge_sum(VALUE, 0, pages / 2) + huge_sum(VALUE + 1, pages / 2, pages / 2),
		  run.read_sum);
}

/*
 * L2 writes L1 memory through 2M shadow leaves, then L1 starts logging
 * that slot: each huge leaf is split through the rmaps into 512 4K leaves
 * that map the same pages (@eager; L2 reads them all with no fault), or,
 * with eager splitting off, zapped (L2 faults 4K leaves back).  Either way
 * the leaves are protected as logging starts (write-protected, or their D
 * bits cleared in D-bit mode), so the log has exactly what L2 writes next;
 * logging off, L2's leaves are huge again.
 */
static void huge_leaves_when_logging_starts(struct __test_metadata *_metadata,
					    FIXTURE_DATA(nested) *self, bool eager, bool dbit)
{
	const uint64_t pages = HUGE_SIZE / SZ_4K;
	struct kmmu_vm_stats st;
	struct kmmu_workload wl;
	struct kmmu_mem mem;
	struct kmmu_run run;
	uint64_t splits;

	SKIP_ON_HW();
	if (dbit && kmmu_vm_enable_cap(self->vm, KMMU_CAP_DIRTY_LOG_MODE, KMMU_DIRTY_LOG_MODE_DBIT))
		SKIP(return, "D-bit mode needs A/D bits");
	if (!eager)
		ASSERT_EQ(0, kmmu_vm_enable_cap(self->vm, KMMU_CAP_EAGER_SPLIT_CHUNK_SIZE, 0));
	if (!huge_slot_written(_metadata, self, &mem))
		return;
	splits = vm_stat(_metadata, self, "splits");

	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, HUGE_SLOT, KMMU_MEM_LOG_DIRTY_PAGES, HUGE_GPA,
					 HUGE_SIZE, mem.addr));
	ASSERT_EQ(0, kmmu_vm_stats(self->vm, &st));
	EXPECT_COUNT_AT_MOST(eager ? pages : 0, st.shadow_leaves);
	EXPECT_COUNT_AT_MOST(splits + (eager ? 2 : 0), vm_stat(_metadata, self, "splits"));
	/* Every page reads what L2 wrote, through the split leaves or new ones. */
	wl = nested_wl(self, L2_HUGE_GPA, HUGE_SIZE, 0);
	run_done(_metadata, self, &wl, &run);
	EXPECT_EQ(huge_sum(VALUE, 0, pages), run.read_sum);
	EXPECT_COUNT_AT_LEAST(eager ? 0 : pages, run.faults);
	huge_slot_logs_exactly(_metadata, self);

	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, HUGE_SLOT, 0, HUGE_GPA, HUGE_SIZE, mem.addr));
	run_done(_metadata, self, &wl, &run);
	ASSERT_EQ(0, kmmu_vm_stats(self->vm, &st));
	EXPECT_COUNT_AT_MOST(2, st.shadow_leaves);
	kmmu_vm_free(self->vm);
	self->vm = NULL;
	kmmu_mem_free(&mem);
}

KMMU_TEST_F(nested, huge_leaves_split_when_logging_starts)
{
	huge_leaves_when_logging_starts(_metadata, self, true, false);
}

KMMU_TEST_F(nested, huge_leaves_split_when_logging_starts_dbit)
{
	huge_leaves_when_logging_starts(_metadata, self, true, true);
}

KMMU_TEST_F(nested, huge_leaves_zapped_when_logging_starts)
{
	huge_leaves_when_logging_starts(_metadata, self, false, false);
}

KMMU_TEST_F(nested, huge_leaves_zapped_when_logging_starts_dbit)
{
	huge_leaves_when_logging_starts(_metadata, self, false, true);
}

/*
 * Logging starts while allocations fail (the user backend's injection:
 * the n-th one from now): the ioctl fails with -ENOMEM and changes
 * nothing, or succeeds with a leaf it had no memory to split zapped;
 * either way the log is exact after, and nothing leaks (the teardown).
 */
KMMU_TEST_F(nested, huge_leaves_split_out_of_memory)
{
	long n, before;
	int ret;

	SKIP_ON_HW();
	if (kmmu_backend() != KMMU_BACKEND_USER)
		SKIP(return, "allocation failures are injected on the user backend");
	for (n = 1; ; n += n < 16 ? 1 : 61) {
		struct kmmu_mem mem;

		if (!huge_slot_written(_metadata, self, &mem))
			return;
		before = kmmu_user_failed_allocs();
		kmmu_user_fail_nth(n);
		ret = kmmu_vm_set_memslot(self->vm, HUGE_SLOT, KMMU_MEM_LOG_DIRTY_PAGES, HUGE_GPA,
					  HUGE_SIZE, mem.addr);
		kmmu_user_fail_nth(0);
		if (ret) {
			ASSERT_EQ(-ENOMEM, ret);
			ASSERT_NE(before, kmmu_user_failed_allocs());
			ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, HUGE_SLOT,
							 KMMU_MEM_LOG_DIRTY_PAGES, HUGE_GPA,
							 HUGE_SIZE, mem.addr));
		}
		huge_slot_logs_exactly(_metadata, self);
		ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, HUGE_SLOT, 0, HUGE_GPA, 0, mem.addr));
		kmmu_mem_free(&mem);
		if (before == kmmu_user_failed_allocs())
			break;
	}
	/* Past the split's page, its 513 descriptors, and the protection after. */
	EXPECT_LT(520, n);
}

KMMU_TEST_F(nested, dirty_ring_every_round)
{
	const struct kmmu_vm_config cfg = self->vm->cfg;

	SKIP_ON_HW();
	/* Rings come before vCPUs: a new VM, slots and vCPU. */
	kmmu_vm_free(self->vm);
	self->vm = NULL;
	KMMU_VM_CREATE(&cfg, &self->vm);
	ASSERT_EQ(0, kmmu_vm_enable_cap(self->vm, KMMU_CAP_DIRTY_LOG_RING, 4096 * 16));
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, DATA_SLOT, 0, DATA_GPA, DATA_SIZE,
					 self->data.addr));
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, TABLES_SLOT, 0, TABLES_GPA, TABLES_SIZE,
					 self->tables.addr));
	ASSERT_EQ(0, kmmu_vcpu_create(self->vm, 0, &self->vcpu));
	rewrite_rounds(_metadata, self, HARVEST_RING, false);
}

/*
 * L1 itself (a workload outside L2) rewrites one leaf entry of its table,
 * then a table entry: the TDP MMU maps those table pages read-only while
 * shadow pages shadow them, so each write zaps the shadow pages of its
 * table before it lands, and L2 sees the new mapping with no
 * KMMU_INVALIDATE_NESTED.  A page of L1's tables that nothing shadows is
 * written like any other.
 */
KMMU_TEST_F(nested, tracked_l1_write_remaps)
{
	const uint64_t other = DATA_GPA + SZ_2M;
	struct kmmu_vm_stats st;
	struct kmmu_workload wl;
	struct kmmu_run run;
	uint64_t entry, pte_gpa;

	SKIP_ON_HW();
	*data_hva(self, DATA_GPA) = 1;
	*data_hva(self, other) = 2;
	kmmu_l1_map(&self->l1, DATA_GPA, DATA_GPA, SZ_4K, 1, true);
	wl = nested_wl(self, DATA_GPA, SZ_4K, 0);
	run_done(_metadata, self, &wl, &run);
	EXPECT_EQ(1, run.read_sum);
	ASSERT_EQ(0, kmmu_vm_stats(self->vm, &st));
	EXPECT_EQ(4, st.shadow_tracked);
	EXPECT_EQ(0, st.shadow_unprotects);

	/* L1's write of the leaf entry: 4 KiB of its table, one word. */
	entry = kmmu_l1_leaf_entry(&self->l1, other, 1, true);
	pte_gpa = entry_gpa(self, DATA_GPA, 1);
	wl = kmmu_wl_seq(pte_gpa, 8, 100, entry);
	run_done(_metadata, self, &wl, &run);
	EXPECT_EQ(entry, *kmmu_l1_entry(&self->l1, DATA_GPA, 1));
	ASSERT_EQ(0, kmmu_vm_stats(self->vm, &st));
	EXPECT_EQ(1, st.shadow_unprotects);
	EXPECT_EQ(3, st.shadow_tracked);
	wl = nested_wl(self, DATA_GPA, SZ_4K, 0);
	run_done(_metadata, self, &wl, &run);
	EXPECT_EQ(2, run.read_sum);

	/* Now the level-2 entry: L2's page through a new leaf table. */
	kmmu_l1_map(&self->l1, DATA_GPA + SZ_1G, DATA_GPA, SZ_4K, 1, true);
	entry = *kmmu_l1_entry(&self->l1, DATA_GPA + SZ_1G, 2);
	wl = kmmu_wl_seq(entry_gpa(self, DATA_GPA, 2), 8, 100, entry);
	run_done(_metadata, self, &wl, &run);
	ASSERT_EQ(0, kmmu_vm_stats(self->vm, &st));
	EXPECT_EQ(2, st.shadow_unprotects);
	wl = nested_wl(self, DATA_GPA, SZ_4K, 0);
	run_done(_metadata, self, &wl, &run);
	EXPECT_EQ(1, run.read_sum);

	/* Data pages are not tracked: L1 writes them without a zap. */
	wl = kmmu_wl_seq(DATA_GPA, 8, 100, 3);
	run_done(_metadata, self, &wl, &run);
	ASSERT_EQ(0, kmmu_vm_stats(self->vm, &st));
	EXPECT_EQ(2, st.shadow_unprotects);
	wl = nested_wl(self, DATA_GPA, SZ_4K, 0);
	run_done(_metadata, self, &wl, &run);
	EXPECT_EQ(3, run.read_sum);
}

/*
 * L2 maps a table of L1's as data and writes an entry into it: the write
 * is trapped as L1's would be (the table is shadowed), and L2 then sees
 * the mapping it wrote.
 */
KMMU_TEST_F(nested, l2_write_to_shadowed_table)
{
	const uint64_t other = DATA_GPA + SZ_2M, table_view = L2_ALIAS_GPA + SZ_2M;
	struct kmmu_workload wl;
	struct kmmu_run run;
	uint64_t pte_gpa;

	SKIP_ON_HW();
	*data_hva(self, DATA_GPA) = 1;
	*data_hva(self, other) = 2;
	kmmu_l1_map(&self->l1, L2_ALIAS_GPA, DATA_GPA, SZ_4K, 1, true);
	pte_gpa = entry_gpa(self, L2_ALIAS_GPA, 1);
	kmmu_l1_map(&self->l1, table_view, pte_gpa & ~(SZ_4K - 1), SZ_4K, 1, true);
	wl = nested_wl(self, L2_ALIAS_GPA, SZ_4K, 0);
	run_done(_metadata, self, &wl, &run);
	EXPECT_EQ(1, run.read_sum);
	/* L2 reads the entry through its view of the table. */
	wl = nested_wl(self, table_view + (pte_gpa & (SZ_4K - 1)), 8, 0);
	wl.flags &= ~KMMU_WL_XOR_GPA;
	run_done(_metadata, self, &wl, &run);
	EXPECT_EQ(*kmmu_l1_entry(&self->l1, L2_ALIAS_GPA, 1), run.read_sum);
	/* And writes it: L2_ALIAS_GPA now maps the other page. */
	wl.write_percent = 100;
	wl.value = kmmu_l1_leaf_entry(&self->l1, other, 1, true);
	run_done(_metadata, self, &wl, &run);
	EXPECT_EQ(wl.value, *kmmu_l1_entry(&self->l1, L2_ALIAS_GPA, 1));
	wl = nested_wl(self, L2_ALIAS_GPA, SZ_4K, 0);
	run_done(_metadata, self, &wl, &run);
	EXPECT_EQ(2, run.read_sum);
}

/*
 * Aging sees what L2 touched through the shadow leaves that map L1's
 * pages (the TDP MMU maps none of them): all young after L2 wrote them,
 * all old once aged, then young again as L2 reads half of them: under
 * mmu_lock, or without it (@lockless: KMMU_CAP_LOCKLESS_AGING), or
 * fast-only (@fast: KMMU_AGE_FAST_ONLY).
 */
static void shadow_aging(struct __test_metadata *_metadata, FIXTURE_DATA(nested) *self,
			 bool lockless, uint32_t fast)
{
	const uint64_t pages = 32;
	struct kmmu_age a;
	struct kmmu_workload wl;
	struct kmmu_run run;
	uint64_t young, old;

	ASSERT_EQ(0, kmmu_vm_enable_cap(self->vm, KMMU_CAP_LOCKLESS_AGING, lockless));
	kmmu_l1_map(&self->l1, L2_ALIAS_GPA, DATA_GPA, pages * SZ_4K, 1, true);
	wl = nested_wl(self, L2_ALIAS_GPA, pages * SZ_4K, 100);
	run_done(_metadata, self, &wl, &run);

	ASSERT_EQ(0, kmmu_vm_age(self->vm, DATA_GPA, DATA_SIZE, 0, KMMU_AGE_TEST_ONLY | fast,
				 &young, &old));
	kmmu_expect_aged(_metadata, pages, 0, young, old);
	ASSERT_EQ(0, kmmu_vm_age(self->vm, DATA_GPA, DATA_SIZE, 0, KMMU_AGE_FLUSH | fast,
				 &young, &old));
	kmmu_expect_aged(_metadata, pages, 0, young, 0);
	ASSERT_EQ(0, kmmu_vm_age(self->vm, DATA_GPA, DATA_SIZE, 0, KMMU_AGE_TEST_ONLY | fast,
				 &young, &old));
	kmmu_expect_aged(_metadata, 0, pages, young, old);

	/* L2 reads every other page: those are young again, through a new walk or A. */
	wl = nested_wl(self, L2_ALIAS_GPA, pages * SZ_4K, 0);
	wl.pattern = KMMU_PATTERN_STRIDE;
	wl.stride = 2 * SZ_4K;
	run_done(_metadata, self, &wl, &run);
	memset(&a, 0, sizeof(a));
	a.gpa = DATA_GPA;
	a.size = DATA_SIZE;
	a.flags = KMMU_AGE_TEST_ONLY | fast;
	ASSERT_EQ(0, kmmu_ioctl(self->vm->fd, KMMU_AGE, (unsigned long)&a));
	kmmu_expect_aged(_metadata, pages / 2, pages / 2, a.young, a.old);
	/* No writer held an rmap (the host's aging may, under pressure): the answer is whole. */
	if (kmmu_host_quiet()) {
		EXPECT_EQ(0, a.result);
	}

	/* The host's aging (user backend) ages the shadow leaves too. */
	if (kmmu_backend() == KMMU_BACKEND_USER) {
		EXPECT_TRUE(kmmu_host_age(self->data.addr, pages * SZ_4K, true));
		ASSERT_EQ(0, kmmu_vm_age(self->vm, DATA_GPA, DATA_SIZE, 0, KMMU_AGE_TEST_ONLY,
					 &young, &old));
		EXPECT_EQ(0, young);
		EXPECT_EQ(pages, old);
	}
}

KMMU_TEST_F(nested, shadow_aging_locked)
{
	SKIP_ON_HW();
	shadow_aging(_metadata, self, false, 0);
}

KMMU_TEST_F(nested, shadow_aging_lockless)
{
	SKIP_ON_HW();
	shadow_aging(_metadata, self, true, 0);
}

KMMU_TEST_F(nested, shadow_aging_fast_only)
{
	SKIP_ON_HW();
	shadow_aging(_metadata, self, false, KMMU_AGE_FAST_ONLY);
}

KMMU_TEST_F(nested, capability)
{
	EXPECT_EQ(1, kmmu_ioctl(self->vm->sys_fd, KMMU_CHECK_EXTENSION, KMMU_CAP_NESTED));
	EXPECT_EQ(kmmu_backend_hw() ? 0 : 1,
		  kmmu_ioctl(self->vm->fd, KMMU_CHECK_EXTENSION, KMMU_CAP_NESTED));
}

/* The hardware vCPU refuses nested workloads and the invalidation. */
KMMU_TEST_F(nested, hw_refuses)
{
	struct kmmu_nested_invalidate inv = { .type = KMMU_INV_ALL_CONTEXTS };
	struct kmmu_workload wl = nested_wl(self, DATA_GPA, SZ_4K, 0);

	if (!kmmu_backend_hw())
		SKIP(return, "software vCPUs run nested workloads");
	EXPECT_EQ(-EOPNOTSUPP, kmmu_vcpu_set_workload(self->vcpu, &wl));
	EXPECT_EQ(-EOPNOTSUPP, kmmu_ioctl(self->vm->fd, KMMU_INVALIDATE_NESTED,
					  (unsigned long)&inv));
}

KMMU_TEST_F(nested, workload_bad_input)
{
	struct kmmu_workload good = nested_wl(self, DATA_GPA, SZ_4K, 0), wl;
	const uint64_t base = good.nested_root;
	uint64_t bad[8];
	struct kmmu_run run;
	unsigned int i, n = 0;

	SKIP_ON_HW();
	bad[n++] = base | 1ULL << 48;			/* above L1's 48 bits */
	bad[n++] = base | 1ULL << 63;
	if (self->l1.ept) {
		bad[n++] = (base & ~7ULL) | 1;		/* memory type WC */
		bad[n++] = (base & ~7ULL) | 7;
		bad[n++] = (base & ~(7ULL << 3)) | 2 << 3;	/* a 3-level walk */
		bad[n++] = (base & ~(7ULL << 3)) | 4 << 3;	/* a 5-level walk */
		bad[n++] = base | 1ULL << 7;		/* bits 11:7 */
		bad[n++] = base | 1ULL << 11;
	}
	for (i = 0; i < n; i++) {
		wl = good;
		wl.nested_root = bad[i];
		EXPECT_EQ(-EINVAL, kmmu_vcpu_set_workload(self->vcpu, &wl)) {
			TH_LOG("root 0x%llx", (unsigned long long)bad[i]);
		}
	}
	/* A root without the flag, and L2 addresses at or past 2^48. */
	wl = good;
	wl.flags &= ~KMMU_WL_NESTED;
	EXPECT_EQ(-EINVAL, kmmu_vcpu_set_workload(self->vcpu, &wl));
	wl = good;
	wl.gpa = 1ULL << 48;
	EXPECT_EQ(-EINVAL, kmmu_vcpu_set_workload(self->vcpu, &wl));
	wl = good;
	wl.gpa = (1ULL << 48) - SZ_4K;
	wl.size = 2 * SZ_4K;
	EXPECT_EQ(-EINVAL, kmmu_vcpu_set_workload(self->vcpu, &wl));
	wl.size = SZ_4K;
	EXPECT_EQ(0, kmmu_vcpu_set_workload(self->vcpu, &wl));
	wl = good;
	wl.reserved[0] = 1;
	EXPECT_EQ(-EINVAL, kmmu_vcpu_set_workload(self->vcpu, &wl));

	/* NPT: an nCR3's low 12 bits are ignored, as the CPU ignores them. */
	if (!self->l1.ept) {
		kmmu_l1_map(&self->l1, DATA_GPA, DATA_GPA, SZ_4K, 1, true);
		*data_hva(self, DATA_GPA) = 77;
		wl = good;
		wl.nested_root |= 0xfff;
		ASSERT_EQ(0, kmmu_vcpu_run_workload(self->vcpu, &wl, &run));
		EXPECT_EQ(KMMU_EXIT_DONE, run.exit_reason);
		EXPECT_EQ(77, run.read_sum);
	}
	/* Nothing was half-applied: the last good workload still runs. */
	kmmu_l1_map(&self->l1, DATA_GPA, DATA_GPA, SZ_4K, 1, true);
	ASSERT_EQ(0, kmmu_vcpu_set_workload(self->vcpu, &good));
	wl.flags = 0xff;
	EXPECT_EQ(-EINVAL, kmmu_vcpu_set_workload(self->vcpu, &wl));
	memset(&run, 0, sizeof(run));
	ASSERT_EQ(0, kmmu_vcpu_run(self->vcpu, &run));
	EXPECT_EQ(KMMU_EXIT_DONE, run.exit_reason);
}

KMMU_TEST_F(nested, invalidate_bad_input)
{
	struct kmmu_nested_invalidate inv;
	long fd = self->vm->fd;

	SKIP_ON_HW();
	memset(&inv, 0, sizeof(inv));
	EXPECT_EQ(-EINVAL, kmmu_ioctl(fd, KMMU_INVALIDATE_NESTED, (unsigned long)&inv));
	inv.type = 3;
	EXPECT_EQ(-EINVAL, kmmu_ioctl(fd, KMMU_INVALIDATE_NESTED, (unsigned long)&inv));
	inv.type = KMMU_INV_ALL_CONTEXTS;
	EXPECT_EQ(0, kmmu_ioctl(fd, KMMU_INVALIDATE_NESTED, (unsigned long)&inv));
	inv.root = kmmu_l1_root(&self->l1, true);
	EXPECT_EQ(-EINVAL, kmmu_ioctl(fd, KMMU_INVALIDATE_NESTED, (unsigned long)&inv));
	inv.type = KMMU_INV_SINGLE_CONTEXT;
	EXPECT_EQ(0, kmmu_ioctl(fd, KMMU_INVALIDATE_NESTED, (unsigned long)&inv));
	inv.root = 1ULL << 48;
	EXPECT_EQ(-EINVAL, kmmu_ioctl(fd, KMMU_INVALIDATE_NESTED, (unsigned long)&inv));
	inv.root = kmmu_l1_root(&self->l1, true);
	inv.flags = 1;
	EXPECT_EQ(-EINVAL, kmmu_ioctl(fd, KMMU_INVALIDATE_NESTED, (unsigned long)&inv));
	inv.flags = 0;
	inv.reserved[1] = 1;
	EXPECT_EQ(-EINVAL, kmmu_ioctl(fd, KMMU_INVALIDATE_NESTED, (unsigned long)&inv));
	EXPECT_EQ(-EFAULT, kmmu_ioctl(fd, KMMU_INVALIDATE_NESTED, 8));
}

TEST_HARNESS_MAIN
