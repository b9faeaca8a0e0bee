// SPDX-License-Identifier: GPL-2.0
/*
 * The walker over L1's own EPT and NPT tables (guest_walk.c), on tables
 * built here from the SDM's and the APM's bits in a small model of L1
 * memory: translations at each leaf size, the entries it reports, A/D as
 * the CPU sets them and only on success, every not-present, permission,
 * misconfiguration and missing-memory fault at every level, a walk that
 * starts over when L1 changes an entry under it, and bad arguments.
 */
#include "unit_util.h"
#include "../../kmod/core/guest_walk.h"

#define L1_PAGES	64
#define L1_SIZE		(L1_PAGES * SZ_4K)
/* Where the tables live in L1 memory: one page per level. */
#define PML4_GPA	(1 * SZ_4K)
#define PDPT_GPA	(2 * SZ_4K)
#define PD_GPA		(3 * SZ_4K)
#define PT_GPA		(4 * SZ_4K)
/* The L2 address walked, and the L1 frames its leaves point to. */
#define L2_GPA		0x0000123456789a28ULL
#define TARGET_4K	(40 * SZ_4K)
#define TARGET_2M	(0x7ULL << 21)
#define TARGET_1G	(0x3ULL << 30)

static unsigned int idx(u64 gpa, int level)
{
	return (gpa >> (12 + 9 * (level - 1))) & 511;
}

/* L1 format, from the specs: what a table and a full-permission leaf set. */
struct l1_layout {
	u32 format;
	bool ad;
	u64 table, leaf, r, w, x, nx, us, ps, a, d;
};

FIXTURE(gw) {
	u64 mem[L1_PAGES * 512];
	struct kmmu_gw_mem ops;
	struct kmmu_guest_walk w;
	/* Written into the entry at race_gpa just before the next cmpxchg. */
	u64 race_gpa, race_value;
	int cmpxchgs;
};

FIXTURE_VARIANT(gw) {
	struct l1_layout l;
};

static const struct l1_layout l1_ept = {
	.format = KMMU_SPTE_FORMAT_EPT, .ad = true,
	.table = SDM_EPT_R | SDM_EPT_W | SDM_EPT_X,
	.leaf = SDM_EPT_R | SDM_EPT_W | SDM_EPT_X | SDM_EPT_MT(SDM_MT_WB),
	.r = SDM_EPT_R, .w = SDM_EPT_W, .x = SDM_EPT_X, .ps = SDM_EPT_PS,
	.a = SDM_EPT_A, .d = SDM_EPT_D,
};

static const struct l1_layout l1_ept_ad_disabled = {
	.format = KMMU_SPTE_FORMAT_EPT, .ad = false,
	.table = SDM_EPT_R | SDM_EPT_W | SDM_EPT_X,
	.leaf = SDM_EPT_R | SDM_EPT_W | SDM_EPT_X | SDM_EPT_MT(SDM_MT_WB),
	.r = SDM_EPT_R, .w = SDM_EPT_W, .x = SDM_EPT_X, .ps = SDM_EPT_PS,
};

static const struct l1_layout l1_npt = {
	.format = KMMU_SPTE_FORMAT_NPT, .ad = true,
	.table = APM_P | APM_RW | APM_US, .leaf = APM_P | APM_RW | APM_US,
	.r = APM_P, .w = APM_RW, .nx = APM_NX, .us = APM_US, .ps = APM_PS,
	.a = APM_A, .d = APM_D,
};

FIXTURE_VARIANT_ADD(gw, ept) { .l = l1_ept };
FIXTURE_VARIANT_ADD(gw, ept_ad_disabled) { .l = l1_ept_ad_disabled };
FIXTURE_VARIANT_ADD(gw, npt) { .l = l1_npt };

static u64 *entry(struct _test_data_gw *self, u64 gpa)
{
	return &self->mem[gpa / 8];
}

static int mem_read(void *ctx, gpa_t gpa, u64 *val)
{
	struct _test_data_gw *self = ctx;

	if (gpa >= L1_SIZE)
		return -EFAULT;
	*val = *entry(self, gpa);
	return 0;
}

static int mem_update(void *ctx, gpa_t gpa, u64 old, u64 new)
{
	struct _test_data_gw *self = ctx;

	if (gpa >= L1_SIZE)
		return -EFAULT;
	self->cmpxchgs++;
	if (self->race_gpa == gpa) {
		*entry(self, gpa) = self->race_value;
		self->race_gpa = 0;
	}
	if (*entry(self, gpa) != old)
		return -EAGAIN;
	*entry(self, gpa) = new;
	return 0;
}

/* The entry of @level on the walk of L2_GPA. */
static u64 pte_gpa(int level)
{
	static const u64 table[] = { 0, PT_GPA, PD_GPA, PDPT_GPA, PML4_GPA };

	return table[level] + idx(L2_GPA, level) * 8;
}

/* Tables at @mem (L1 gpa 0) down to @leaf_level, whose entry maps @target with @extra. */
static void build_at(u64 *mem, const struct l1_layout *l, int leaf_level, u64 target, u64 extra)
{
	int level;

	for (level = 4; level > leaf_level; level--)
		mem[pte_gpa(level) / 8] = l->table | (pte_gpa(level - 1) & ~0xfffULL);
	mem[pte_gpa(leaf_level) / 8] = l->leaf | target | extra | (leaf_level > 1 ? l->ps : 0);
}

static void build(struct _test_data_gw *self, const struct l1_layout *l, int leaf_level,
		  u64 target, u64 extra)
{
	memset(self->mem, 0, sizeof(self->mem));
	build_at(self->mem, l, leaf_level, target, extra);
}

static int walk(struct _test_data_gw *self, const struct l1_layout *l, unsigned int access)
{
	memset(&self->w, 0, sizeof(self->w));
	self->w.root = PML4_GPA;
	self->w.format = l->format;
	self->w.ad = l->ad;
	self->w.l2_gpa = L2_GPA;
	self->w.access = access;
	return kmmu_guest_walk(&self->ops, &self->w);
}

FIXTURE_SETUP(gw)
{
	self->ops = (struct kmmu_gw_mem){ mem_read, mem_update, self };
	self->race_gpa = 0;
	self->cmpxchgs = 0;
}

FIXTURE_TEARDOWN(gw)
{
}

/* Each leaf size: the L1 address, with L2's offset inside the leaf. */
TEST_F(gw, translates_at_each_leaf_size)
{
	static const struct { int level; u64 target, offset_mask; } c[] = {
		{ 1, TARGET_4K, SZ_4K - 1 }, { 2, TARGET_2M, SZ_2M - 1 }, { 3, TARGET_1G, SZ_1G - 1 },
	};
	unsigned int i;
	int level;

	for (i = 0; i < ARRAY_SIZE(c); i++) {
		build(self, &variant->l, c[i].level, c[i].target, 0);
		ASSERT_EQ(0, walk(self, &variant->l, KMMU_ACC_READ));
		ASSERT_EQ(KMMU_GW_OK, self->w.fault);
		EXPECT_EQ(c[i].level, self->w.level);
		EXPECT_EQ(c[i].target | (L2_GPA & c[i].offset_mask), self->w.l1_gpa);
		EXPECT_EQ(KMMU_ACC_ALL, self->w.pte_access);
		for (level = 4; level >= c[i].level; level--) {
			EXPECT_EQ(pte_gpa(level), self->w.pte_gpa[level]);
			EXPECT_EQ(pte_gpa(level) >> 12, self->w.table_gfn[level]);
			EXPECT_EQ(*entry(self, pte_gpa(level)), self->w.pte[level]);
		}
	}
}

/*
 * A on every entry of a walk, D on the leaf of a write; nothing at all
 * with A/D off in L1's EPTP.
 */
TEST_F(gw, sets_accessed_and_dirty_as_the_cpu_does)
{
	const struct l1_layout *l = &variant->l;
	int level;

	build(self, l, 1, TARGET_4K, 0);
	ASSERT_EQ(0, walk(self, l, KMMU_ACC_READ));
	ASSERT_EQ(KMMU_GW_OK, self->w.fault);
	for (level = 4; level >= 1; level--) {
		EXPECT_EQ(l->a, *entry(self, pte_gpa(level)) & (l->a | l->d)) {
			TH_LOG("level %d after a read", level);
		}
	}
	ASSERT_EQ(0, walk(self, l, KMMU_ACC_WRITE));
	ASSERT_EQ(KMMU_GW_OK, self->w.fault);
	EXPECT_EQ(l->a | l->d, *entry(self, pte_gpa(1)) & (l->a | l->d));
	for (level = 4; level >= 2; level--)
		EXPECT_EQ(l->a, *entry(self, pte_gpa(level)) & (l->a | l->d));
	/* The walk reports the entries as they now are. */
	EXPECT_EQ(*entry(self, pte_gpa(1)), self->w.pte[1]);
	if (!l->ad)
		EXPECT_EQ(0, self->cmpxchgs);

	/* A 2M leaf gets D too. */
	build(self, l, 2, TARGET_2M, 0);
	ASSERT_EQ(0, walk(self, l, KMMU_ACC_WRITE));
	EXPECT_EQ(l->a | l->d, *entry(self, pte_gpa(2)) & (l->a | l->d));
}

/* A walk that faults leaves L1's entries as they were. */
TEST_F(gw, sets_nothing_when_it_faults)
{
	const struct l1_layout *l = &variant->l;
	u64 before[L1_PAGES * 512];

	build(self, l, 1, TARGET_4K, 0);
	*entry(self, pte_gpa(2)) &= ~l->w;
	memcpy(before, self->mem, sizeof(before));
	ASSERT_EQ(0, walk(self, l, KMMU_ACC_WRITE));
	EXPECT_EQ(KMMU_GW_PERMISSION, self->w.fault);
	EXPECT_EQ(0, memcmp(before, self->mem, sizeof(before)));
	EXPECT_EQ(0, self->cmpxchgs);
}

/* A non-present entry at any level stops the walk there. */
TEST_F(gw, not_present_at_each_level)
{
	const struct l1_layout *l = &variant->l;
	int level;

	for (level = 4; level >= 1; level--) {
		build(self, l, 1, TARGET_4K, 0);
		/* Only the present bits go: what is left must not matter. */
		*entry(self, pte_gpa(level)) &= ~(l->r | l->w | l->x);
		ASSERT_EQ(0, walk(self, l, KMMU_ACC_READ));
		EXPECT_EQ(KMMU_GW_NOT_PRESENT, self->w.fault);
		EXPECT_EQ(level, self->w.level);
		EXPECT_EQ(*entry(self, pte_gpa(level)), self->w.pte[level]);
		EXPECT_EQ(pte_gpa(level), self->w.pte_gpa[level]);
	}
}

/*
 * Permissions are the AND of every level: taking W, X (or setting NX) or
 * NPT's US away at any one level denies that access, and only that one.
 */
TEST_F(gw, permissions_are_those_of_every_level)
{
	const struct l1_layout *l = &variant->l;
	unsigned int granted;
	int level;

	for (level = 4; level >= 1; level--) {
		build(self, l, 1, TARGET_4K, 0);
		*entry(self, pte_gpa(level)) &= ~l->w;
		ASSERT_EQ(0, walk(self, l, KMMU_ACC_WRITE));
		EXPECT_EQ(KMMU_GW_PERMISSION, self->w.fault);
		EXPECT_EQ(1, self->w.level);
		ASSERT_EQ(0, walk(self, l, KMMU_ACC_READ));
		EXPECT_EQ(KMMU_GW_OK, self->w.fault);
		EXPECT_EQ(KMMU_ACC_READ | KMMU_ACC_EXEC, self->w.pte_access);
		ASSERT_EQ(0, walk(self, l, KMMU_ACC_EXEC));
		EXPECT_EQ(KMMU_GW_OK, self->w.fault);

		build(self, l, 1, TARGET_4K, 0);
		*entry(self, pte_gpa(level)) = (*entry(self, pte_gpa(level)) & ~l->x) | l->nx;
		ASSERT_EQ(0, walk(self, l, KMMU_ACC_EXEC));
		EXPECT_EQ(KMMU_GW_PERMISSION, self->w.fault);
		ASSERT_EQ(0, walk(self, l, KMMU_ACC_WRITE));
		EXPECT_EQ(KMMU_GW_OK, self->w.fault);
		granted = self->w.pte_access;
		EXPECT_EQ(KMMU_ACC_READ | KMMU_ACC_WRITE, granted);

		if (!l->us)
			continue;
		build(self, l, 1, TARGET_4K, 0);
		*entry(self, pte_gpa(level)) &= ~l->us;
		ASSERT_EQ(0, walk(self, l, KMMU_ACC_READ));
		EXPECT_EQ(KMMU_GW_PERMISSION, self->w.fault);
	}
}

/* EPT: an execute-only leaf runs code and is read by nothing. */
TEST_F(gw, ept_execute_only)
{
	const struct l1_layout *l = &variant->l;

	if (l->format != KMMU_SPTE_FORMAT_EPT)
		SKIP(return, "NPT has no execute-only entry");
	build(self, l, 1, TARGET_4K, 0);
	*entry(self, pte_gpa(1)) &= ~(l->r | l->w);
	ASSERT_EQ(0, walk(self, l, KMMU_ACC_EXEC));
	EXPECT_EQ(KMMU_GW_OK, self->w.fault);
	EXPECT_EQ(KMMU_ACC_EXEC, self->w.pte_access);
	ASSERT_EQ(0, walk(self, l, KMMU_ACC_READ));
	EXPECT_EQ(KMMU_GW_PERMISSION, self->w.fault);
}

/* Set @bits in the entry of @level of a 4K walk (or of a @leaf_level leaf). */
static void expect_misconfig(struct __test_metadata *_metadata, struct _test_data_gw *self,
			     const struct l1_layout *l, int leaf_level, int level, u64 set,
			     u64 clear, const char *what)
{
	build(self, l, leaf_level, leaf_level == 3 ? TARGET_1G :
			leaf_level == 2 ? TARGET_2M : TARGET_4K, 0);
	*entry(self, pte_gpa(level)) = (*entry(self, pte_gpa(level)) & ~clear) | set;
	ASSERT_EQ(0, walk(self, l, KMMU_ACC_READ));
	EXPECT_EQ(KMMU_GW_MISCONFIG, self->w.fault) {
		TH_LOG("%s at level %d: fault %d", what, level, self->w.fault);
	}
	EXPECT_EQ(level, self->w.level);
}

/* Reserved bits and malformed entries, each where the specs put them. */
TEST_F(gw, misconfigurations_and_reserved_bits)
{
	const struct l1_layout *l = &variant->l;
	bool ept = l->format == KMMU_SPTE_FORMAT_EPT;
	int level, b;

	for (level = 4; level >= 1; level--) {
		for (b = 48; b <= 51; b++)
			expect_misconfig(_metadata, self, l, 1, level, 1ULL << b, 0, "address bit");
		if (ept)
			expect_misconfig(_metadata, self, l, 1, level, SDM_EPT_W, SDM_EPT_R,
					 "write without read");
	}
	/* A PML4 entry cannot be a leaf. */
	expect_misconfig(_metadata, self, l, 1, 4, l->ps, 0, "page size in the PML4E");
	if (ept) {
		for (level = 4; level >= 2; level--)
			for (b = 3; b <= 6; b++)
				expect_misconfig(_metadata, self, l, 1, level, 1ULL << b, 0,
						 "table entry bit 6:3");
		for (b = 2; b <= 7; b += (b == 3) ? 4 : 1)
			expect_misconfig(_metadata, self, l, 1, 1, SDM_EPT_MT(b),
					 SDM_EPT_MT(7), "reserved memory type");
		/* A large leaf's address bits below its size. */
		expect_misconfig(_metadata, self, l, 2, 2, 1ULL << 12, 0, "2M leaf bit 12");
		expect_misconfig(_metadata, self, l, 3, 3, 1ULL << 29, 0, "1G leaf bit 29");
	} else {
		/* Bit 12 of a large leaf is PAT; 13 up to its size are reserved. */
		expect_misconfig(_metadata, self, l, 2, 2, 1ULL << 13, 0, "2M leaf bit 13");
		expect_misconfig(_metadata, self, l, 2, 2, 1ULL << 20, 0, "2M leaf bit 20");
		expect_misconfig(_metadata, self, l, 3, 3, 1ULL << 29, 0, "1G leaf bit 29");
		build(self, l, 2, TARGET_2M, 1ULL << 12);
		ASSERT_EQ(0, walk(self, l, KMMU_ACC_READ));
		EXPECT_EQ(KMMU_GW_OK, self->w.fault);
		EXPECT_EQ(TARGET_2M | (L2_GPA & (SZ_2M - 1)), self->w.l1_gpa);
	}
	/* Valid leaves are not misconfigurations. */
	build(self, l, 1, TARGET_4K, 0);
	ASSERT_EQ(0, walk(self, l, KMMU_ACC_READ));
	EXPECT_EQ(KMMU_GW_OK, self->w.fault);
}

/* A table at a gpa L1 has no memory for: the walk says which level. */
TEST_F(gw, tables_without_memory)
{
	const struct l1_layout *l = &variant->l;
	int level;

	for (level = 3; level >= 1; level--) {
		build(self, l, 1, TARGET_4K, 0);
		*entry(self, pte_gpa(level + 1)) = l->table | (L1_SIZE + SZ_4K);
		ASSERT_EQ(0, walk(self, l, KMMU_ACC_READ));
		EXPECT_EQ(KMMU_GW_NO_MEMORY, self->w.fault);
		EXPECT_EQ(level, self->w.level);
		EXPECT_EQ((L1_SIZE + SZ_4K) >> 12, self->w.table_gfn[level]);
	}
	memset(&self->w, 0, sizeof(self->w));
	self->w = (struct kmmu_guest_walk){ .root = L1_SIZE, .format = l->format,
					    .ad = l->ad, .l2_gpa = L2_GPA,
					    .access = KMMU_ACC_READ };
	ASSERT_EQ(0, kmmu_guest_walk(&self->ops, &self->w));
	EXPECT_EQ(KMMU_GW_NO_MEMORY, self->w.fault);
	EXPECT_EQ(4, self->w.level);
}

/*
 * L1 rewrites an entry between the walk's read and its A/D update: the
 * update fails and the walk starts over with what L1 wrote.
 */
TEST_F(gw, walks_again_when_l1_changes_an_entry)
{
	const struct l1_layout *l = &variant->l;

	if (!l->ad)
		SKIP(return, "no A/D update to race with");
	build(self, l, 1, TARGET_4K, 0);
	self->race_gpa = pte_gpa(1);
	self->race_value = l->leaf | (TARGET_4K + SZ_4K);
	ASSERT_EQ(0, walk(self, l, KMMU_ACC_WRITE));
	ASSERT_EQ(KMMU_GW_OK, self->w.fault);
	EXPECT_EQ((TARGET_4K + SZ_4K) | (L2_GPA & (SZ_4K - 1)), self->w.l1_gpa);
	EXPECT_EQ(self->race_value | l->a | l->d, *entry(self, pte_gpa(1)));

	/* And when what L1 wrote denies the access, the walk faults. */
	build(self, l, 1, TARGET_4K, 0);
	self->race_gpa = pte_gpa(1);
	self->race_value = (l->leaf & ~l->w) | TARGET_4K;
	ASSERT_EQ(0, walk(self, l, KMMU_ACC_WRITE));
	EXPECT_EQ(KMMU_GW_PERMISSION, self->w.fault);
	EXPECT_EQ(self->race_value, *entry(self, pte_gpa(1)));
}

/* A root or an address L1 cannot have is the caller's bug: -EINVAL. */
TEST_F(gw, bad_arguments)
{
	const struct l1_layout *l = &variant->l;
	static const struct { u64 root, gpa; } bad[] = {
		{ PML4_GPA + 8, L2_GPA }, { 1ULL << 48, L2_GPA }, { PML4_GPA, 1ULL << 48 },
		{ PML4_GPA, ~0ULL },
	};
	unsigned int i;

	build(self, l, 1, TARGET_4K, 0);
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		self->w = (struct kmmu_guest_walk){ .root = bad[i].root, .format = l->format,
						    .ad = l->ad, .l2_gpa = bad[i].gpa,
						    .access = KMMU_ACC_READ };
		EXPECT_EQ(-EINVAL, kmmu_guest_walk(&self->ops, &self->w));
	}
	EXPECT_EQ(0, self->cmpxchgs);
}

/* ---- L1's tables in the VM's memory (kmmu_guest_walk_vcpu()) ---- */

#define VM_SLOT_SIZE	(2 * SZ_2M)

FIXTURE(gw_vm) {
	struct kmmu *kmmu;
	struct kmmu_vcpu *vcpu;
	struct unit_mem mem;
	struct kmmu_guest_walk w;
	long warnings;
};

FIXTURE_VARIANT(gw_vm) {
	struct l1_layout l;
};

FIXTURE_VARIANT_ADD(gw_vm, ept) { .l = l1_ept };
FIXTURE_VARIANT_ADD(gw_vm, npt) { .l = l1_npt };

static int vm_slot_size(struct _test_data_gw_vm *self, u32 flags, u64 size)
{
	struct kmmu_userspace_memory_region r = {
		.slot = 0, .flags = flags, .guest_phys_addr = 0, .memory_size = size,
		.userspace_addr = (unsigned long)self->mem.addr,
	};

	return kmmu_set_memory_region(self->kmmu, &r);
}

static int vm_slot(struct _test_data_gw_vm *self, u32 flags)
{
	return vm_slot_size(self, flags, VM_SLOT_SIZE);
}

FIXTURE_SETUP(gw_vm)
{
	const struct kmmu_vm_config cfg = { .spte_format = variant->l.format };
	int err;

	kmmu_user_thread_enter();
	self->warnings = kmmu_user_warnings();
	self->kmmu = kmmu_create_vm(&cfg, variant->l.format, &err);
	ASSERT_NE(NULL, self->kmmu);
	ASSERT_EQ(0, unit_mem_alloc(&self->mem, VM_SLOT_SIZE, KMMU_USER_MEM_ANON, SZ_4K));
	ASSERT_EQ(0, vm_slot(self, 0));
	self->vcpu = kmmu_create_vcpu(self->kmmu, 0, &err);
	ASSERT_NE(NULL, self->vcpu);
}

FIXTURE_TEARDOWN(gw_vm)
{
	unit_vm_put(self->kmmu, 1);
	unit_mem_free(&self->mem);
	EXPECT_EQ(self->warnings, kmmu_user_warnings());
}

static int vm_walk(struct _test_data_gw_vm *self, const struct l1_layout *l, gpa_t root,
		   unsigned int access)
{
	int idx, ret;

	self->w = (struct kmmu_guest_walk){ .root = root, .format = l->format, .ad = l->ad,
					    .l2_gpa = L2_GPA, .access = access };
	idx = srcu_read_lock(&self->kmmu->srcu);
	ret = kmmu_guest_walk_vcpu(self->vcpu, 0, &self->w);
	srcu_read_unlock(&self->kmmu->srcu, idx);
	return ret;
}

/* The slot's dirty bitmap (the first 64 pages). */
static u64 vm_dirty(struct _test_data_gw_vm *self)
{
	u64 bitmap[VM_SLOT_SIZE / SZ_4K / 64] = {};
	struct kmmu_dirty_log log = { .slot = 0, .dirty_bitmap = (unsigned long)bitmap };

	if (kmmu_vm_ioctl(self->kmmu, KMMU_GET_DIRTY_LOG, (unsigned long)&log))
		return ~0ULL;
	return bitmap[0];
}

/*
 * Tables in a memslot: the same translation; A and D land in the memory
 * the process sees, and into the dirty log as writes.
 */
TEST_F(gw_vm, walks_tables_in_guest_memory)
{
	const struct l1_layout *l = &variant->l;
	u64 *mem = self->mem.addr, tables;
	int level;

	build_at(mem, l, 1, TARGET_4K, 0);
	ASSERT_EQ(0, vm_slot(self, KMMU_MEM_LOG_DIRTY_PAGES));
	ASSERT_EQ(0, vm_dirty(self));
	ASSERT_EQ(0, vm_walk(self, l, PML4_GPA, KMMU_ACC_WRITE));
	ASSERT_EQ(KMMU_GW_OK, self->w.fault);
	EXPECT_EQ(TARGET_4K | (L2_GPA & (SZ_4K - 1)), self->w.l1_gpa);
	for (level = 4; level >= 1; level--)
		EXPECT_EQ(l->a | (level == 1 ? l->d : 0),
			  mem[pte_gpa(level) / 8] & (l->a | l->d));
	tables = (1ULL << (PML4_GPA >> 12)) | (1ULL << (PDPT_GPA >> 12)) |
		 (1ULL << (PD_GPA >> 12)) | (1ULL << (PT_GPA >> 12));
	EXPECT_EQ(tables, vm_dirty(self));

	/* Nothing left to set: nothing written, nothing logged. */
	ASSERT_EQ(0, vm_walk(self, l, PML4_GPA, KMMU_ACC_WRITE));
	ASSERT_EQ(KMMU_GW_OK, self->w.fault);
	EXPECT_EQ(0, vm_dirty(self));
}

/* A table in a read-only memslot is walked and left as it is. */
TEST_F(gw_vm, read_only_memory_keeps_its_bits)
{
	const struct l1_layout *l = &variant->l;
	u64 *mem = self->mem.addr;
	u64 before[8];
	int level;

	build_at(mem, l, 1, TARGET_4K, 0);
	for (level = 1; level <= 4; level++)
		before[level] = mem[pte_gpa(level) / 8];
	/* READONLY is no flag to change: the slot goes and comes back with it. */
	ASSERT_EQ(0, vm_slot_size(self, 0, 0));
	ASSERT_EQ(0, vm_slot_size(self, KMMU_MEM_READONLY, VM_SLOT_SIZE));
	ASSERT_EQ(0, vm_walk(self, l, PML4_GPA, KMMU_ACC_WRITE));
	ASSERT_EQ(KMMU_GW_OK, self->w.fault);
	for (level = 1; level <= 4; level++) {
		EXPECT_EQ(before[level], mem[pte_gpa(level) / 8]);
		EXPECT_EQ(before[level], self->w.pte[level]);
	}
}

/* A root or a table outside every memslot: no memory, at its level. */
TEST_F(gw_vm, tables_outside_memslots)
{
	const struct l1_layout *l = &variant->l;
	u64 *mem = self->mem.addr;

	build_at(mem, l, 1, TARGET_4K, 0);
	ASSERT_EQ(0, vm_walk(self, l, VM_SLOT_SIZE, KMMU_ACC_READ));
	EXPECT_EQ(KMMU_GW_NO_MEMORY, self->w.fault);
	EXPECT_EQ(4, self->w.level);
	mem[pte_gpa(3) / 8] = l->table | (VM_SLOT_SIZE + SZ_2M);
	ASSERT_EQ(0, vm_walk(self, l, PML4_GPA, KMMU_ACC_READ));
	EXPECT_EQ(KMMU_GW_NO_MEMORY, self->w.fault);
	EXPECT_EQ(2, self->w.level);
}

TEST_HARNESS_MAIN
