// SPDX-License-Identifier: GPL-2.0
/*
 * KMMU_SET_USER_MEMORY_REGION with KVM's semantics: every bad request gets
 * its errno and changes nothing, slots are created, deleted, moved and
 * left alone as KVM does, read-only slots turn writes into MMIO exits, MMIO
 * SPTEs go stale with the memslot generation, address space 1 is separate
 * from address space 0, and all 512 slots of an address space work.
 */
#include "test_util.h"

/* Guest memory of the fixture: big enough for 512 one-page slots. */
#define MEM_PAGES	512
#define MEM_SIZE	(MEM_PAGES * SZ_4K)

/* Slot 0 of the fixture, at a gpa that no other test address is close to. */
#define SLOT_GPA	0x100000000ULL
#define SLOT_PAGES	16
#define SLOT_SIZE	(SLOT_PAGES * SZ_4K)

/* Where there is no slot unless a test puts one there. */
#define FREE_GPA	0x200000000ULL
#define MOVE_GPA	0x300000000ULL
#define MANY_GPA	0x400000000ULL

#define GPA_LIMIT	(1ULL << 48)
/* The userspace host's limit; Linux's depends on 4- or 5-level paging. */
#define USER_VA_LIMIT	(1ULL << 47)

#define AS1(id)		((1u << 16) | (id))

/*
 * In this harness ASSERT_*() and EXPECT_*() expand to two statements, so
 * a loop or an if around one takes braces or it does not bail out in time.
 */

/*
 * SPTE bits as kmod/core/spte.h lays them out (the tests see the core only
 * through selftests/lib): both formats keep "shadow present" in bit 11,
 * the pfn in 12-50 and the writable bit in bit 1; MMIO SPTEs are EPT W+X
 * without R, or NPT P with reserved bit 51, and carry the low 19 bits of
 * the memslot generation in bits 3-10 and 52-62.
 */
#define SPTE_PRESENT		(1ULL << 11)
#define SPTE_WRITABLE		(1ULL << 1)
#define SPTE_PFN_MASK		(((1ULL << 51) - 1) & ~0xfffULL)
#define EPT_RWX			0x7ULL
#define EPT_MMIO_VALUE		0x6ULL
#define NPT_MMIO_MASK		((1ULL << 51) | 1)
#define MMIO_GEN_MASK		((1ULL << 19) - 1)
#define EPT_SUPPRESS_VE		(1ULL << 63)

/* What a write to a gpa without memory carries, to check the exit's data. */
#define MMIO_VALUE		0x6d6d696fULL

FIXTURE(memslot) {
	struct kmmu_vm *vm;
	struct kmmu_vcpu *vcpu;
	struct kmmu_mem mem;	/* behind slot 0 */
	struct kmmu_mem mem2;	/* for the slots a test adds */
};

FIXTURE_VARIANT(memslot) {
	struct kmmu_vm_config cfg;
};

KMMU_ADD_FORMAT_VARIANTS(memslot);

/*
 * The 6.1 harness runs the test body even when setup SKIPs, so setup just
 * does nothing without a backend and each body SKIPs on its own.
 */
FIXTURE_SETUP(memslot)
{
	if (!kmmu_backend_available())
		return;
	KMMU_VM_CREATE(&variant->cfg, &self->vm);
	ASSERT_EQ(0, kmmu_mem_alloc(&self->mem, KMMU_BACKING_ANON, MEM_SIZE));
	ASSERT_EQ(0, kmmu_mem_alloc(&self->mem2, KMMU_BACKING_ANON, MEM_SIZE));
	/* Writable host pages on dev, so no fault sees the zero page. */
	memset(self->mem.addr, 0, MEM_SIZE);
	memset(self->mem2.addr, 0, MEM_SIZE);
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 0, 0, SLOT_GPA, SLOT_SIZE, self->mem.addr));
	ASSERT_EQ(0, kmmu_vcpu_create(self->vm, 0, &self->vcpu));
}

FIXTURE_TEARDOWN(memslot)
{
	kmmu_vm_free(self->vm);
	kmmu_mem_free(&self->mem);
	kmmu_mem_free(&self->mem2);
	EXPECT_EQ(0, kmmu_lib_leak_check());
}

static uint64_t nonpresent_spte(const struct kmmu_vm_config *cfg)
{
	return (cfg->flags & KMMU_VM_NONPRESENT_SUPPRESS_VE) ? EPT_SUPPRESS_VE : 0;
}

static uint64_t *word(void *base, uint64_t off)
{
	return (uint64_t *)((uint8_t *)base + off);
}

static uint64_t memslot_gen(struct __test_metadata *_metadata, struct kmmu_vm *vm)
{
	struct kmmu_vm_stats st;

	ASSERT_EQ(0, kmmu_vm_stats(vm, &st));
	return st.memslot_generation;
}

static int set_region(struct kmmu_vm *vm, const struct kmmu_userspace_memory_region *r)
{
	return kmmu_ioctl(vm->fd, KMMU_SET_USER_MEMORY_REGION, (unsigned long)r);
}

static struct kmmu_run run_wl(struct __test_metadata *_metadata, struct kmmu_vcpu *vcpu,
			      const struct kmmu_workload *wl)
{
	struct kmmu_run run;

	ASSERT_EQ(0, kmmu_vcpu_run_workload(vcpu, wl, &run));
	return run;
}

/* The leaf (or last) SPTE a walk of @gpa reads, and its level. */
static uint64_t walk_spte(struct __test_metadata *_metadata, struct kmmu_vm *vm,
			  uint64_t gpa, uint32_t as_id, uint32_t *level)
{
	struct kmmu_spte_query q;

	ASSERT_EQ(0, kmmu_vm_get_spte(vm, gpa, as_id, &q));
	ASSERT_LE(1, q.level);
	ASSERT_GE(4, q.level);
	*level = q.level;
	return q.sptes[q.level];
}

/*
 * The 4K leaf that maps @gpa, which the caller accessed through @vcpu in the
 * address space @wl_flags selects.  On dev the host may zap it at any
 * moment (the QEMU bench also runs the suite under memory pressure): there
 * a leaf found not present is read again after one more read access, a few
 * times at most.  The user backend has no such noise: one walk.
 */
static uint64_t mapped_leaf(struct __test_metadata *_metadata, struct kmmu_vcpu *vcpu,
			    uint32_t wl_flags, uint64_t gpa)
{
	struct kmmu_workload wl = kmmu_wl_seq(gpa, 8, 0, 0);
	uint32_t as_id = (wl_flags & KMMU_WL_SMM) ? 1 : 0, level;
	struct kmmu_run run;
	uint64_t spte;
	int try;

	wl.flags = wl_flags;
	for (try = 0; ; try++) {
		spte = walk_spte(_metadata, vcpu->vm, gpa, as_id, &level);
		if (kmmu_host_quiet() || try == 5 || (spte & SPTE_PRESENT))
			break;
		run = run_wl(_metadata, vcpu, &wl);
		ASSERT_EQ(KMMU_EXIT_DONE, run.exit_reason);
	}
	EXPECT_EQ(1, level);
	EXPECT_TRUE(spte & SPTE_PRESENT);
	return spte;
}

/*
 * Prove that [gpa, gpa + size) of the address space @wl_flags selects maps
 * @hva: the guest reads what the host wrote and the host sees what the guest
 * wrote.  Values differ per page and per call, so a page mapped to the wrong
 * host page, or a stale translation from an earlier call, cannot pass.
 */
static void expect_maps(struct __test_metadata *_metadata, struct kmmu_vcpu *vcpu,
			uint32_t wl_flags, uint64_t gpa, void *hva, uint64_t size)
{
	static uint64_t salt = 0x1f2e3d4c00000000ULL;
	struct kmmu_workload wl;
	struct kmmu_run run;
	uint64_t off, sum = 0;

	salt += 0x100000001ULL;
	for (off = 0; off < size; off += SZ_4K) {
		*word(hva, off) = salt + off;
		sum += salt + off;
	}
	wl = kmmu_wl_seq(gpa, size, 0, 0);
	wl.flags = wl_flags;
	run = run_wl(_metadata, vcpu, &wl);
	ASSERT_EQ(KMMU_EXIT_DONE, run.exit_reason);
	EXPECT_EQ(size / SZ_4K, run.accesses);
	EXPECT_EQ(sum, run.read_sum);

	wl = kmmu_wl_seq(gpa, size, 100, salt);
	wl.flags = wl_flags | KMMU_WL_XOR_GPA;
	run = run_wl(_metadata, vcpu, &wl);
	ASSERT_EQ(KMMU_EXIT_DONE, run.exit_reason);
	EXPECT_EQ(size / SZ_4K, run.accesses);
	for (off = 0; off < size; off += SZ_4K) {
		ASSERT_EQ(salt ^ (gpa + off), *word(hva, off));
	}
}

/* One access at @gpa must exit to userspace as MMIO, naming the access. */
static void expect_mmio(struct __test_metadata *_metadata, struct kmmu_vcpu *vcpu,
			uint32_t wl_flags, uint64_t gpa, bool write)
{
	struct kmmu_workload wl = kmmu_wl_seq(gpa, 8, write ? 100 : 0, MMIO_VALUE);
	struct kmmu_run run;

	wl.flags = wl_flags;
	run = run_wl(_metadata, vcpu, &wl);
	ASSERT_EQ(KMMU_EXIT_MMIO, run.exit_reason);
	EXPECT_EQ(gpa, run.mmio.gpa);
	EXPECT_EQ(8, run.mmio.len);
	EXPECT_EQ(write ? KMMU_ACCESS_WRITE : 0, run.mmio.flags);
	EXPECT_EQ(write ? MMIO_VALUE : 0, run.mmio.data);
	EXPECT_EQ(0, run.accesses);
}

/*
 * The walk of a gpa that was mapped ends on the VM's non-present value,
 * nothing else (at whatever level: a zap may also free the tables).
 */
static void expect_zapped(struct __test_metadata *_metadata, struct kmmu_vm *vm,
			  const struct kmmu_vm_config *cfg, uint64_t gpa)
{
	uint32_t level;

	EXPECT_EQ(nonpresent_spte(cfg), walk_spte(_metadata, vm, gpa, 0, &level));
}

struct bad_region {
	const char *what;
	struct kmmu_userspace_memory_region r;
	int err;
	bool user_only;		/* the limit differs between kernels */
};

/* One bad request: it must fail with @_err and leave everything as it was. */
#define BAD(_what, _err, _slot, _flags, _gpa, _size, _hva)			\
	{ .what = (_what), .err = (_err),					\
	  .r = { .slot = (_slot), .flags = (_flags), .guest_phys_addr = (_gpa),	\
		 .memory_size = (_size), .userspace_addr = (_hva) } }
/* The same, where only the user backend's limit is known (2^47). */
#define BAD_USER(_what, _err, _slot, _flags, _gpa, _size, _hva)		\
	{ .what = (_what), .err = (_err), .user_only = true,			\
	  .r = { .slot = (_slot), .flags = (_flags), .guest_phys_addr = (_gpa),	\
		 .memory_size = (_size), .userspace_addr = (_hva) } }

TEST_F(memslot, bad_region_changes_nothing)
{
	const uint64_t hva = (uintptr_t)self->mem.addr, hva2 = (uintptr_t)self->mem2.addr;
	const uint32_t ro = KMMU_MEM_READONLY, dirty = KMMU_MEM_LOG_DIRTY_PAGES;
	const struct bad_region bad[] = {
		BAD("slot id 512", -EINVAL, 512, 0, FREE_GPA, SLOT_SIZE, hva2),
		BAD("slot id 0xffff", -EINVAL, 0xffff, 0, FREE_GPA, SLOT_SIZE, hva2),
		/* Were the id or as_id truncated, these would delete slot 0. */
		BAD("delete slot id 512", -EINVAL, 512, 0, SLOT_GPA, 0, hva),
		BAD("delete as_id 2 id 0", -EINVAL, 2u << 16, 0, SLOT_GPA, 0, hva),
		BAD("as_id 2", -EINVAL, (2u << 16) | 1, 0, FREE_GPA, SLOT_SIZE, hva2),
		BAD("as_id 0xffff", -EINVAL, 0xffff0001u, 0, FREE_GPA, SLOT_SIZE, hva2),
		BAD("flag bit 2", -EINVAL, 1, 1u << 2, FREE_GPA, SLOT_SIZE, hva2),
		BAD("flag bit 31", -EINVAL, 1, 1u << 31, FREE_GPA, SLOT_SIZE, hva2),
		/* Logging may be turned on, but READONLY may not be toggled with it. */
		BAD("LOG_DIRTY_PAGES | READONLY on slot 0", -EINVAL, 0, dirty | ro, SLOT_GPA,
		    SLOT_SIZE, hva),
		BAD("gpa + 2K", -EINVAL, 1, 0, FREE_GPA + 0x800, SLOT_SIZE, hva2),
		BAD("gpa + 8", -EINVAL, 1, 0, FREE_GPA + 8, SLOT_SIZE, hva2),
		BAD("size + 2K", -EINVAL, 1, 0, FREE_GPA, SLOT_SIZE + 0x800, hva2),
		BAD("size 2K", -EINVAL, 1, 0, FREE_GPA, 0x800, hva2),
		/* 2^31 pages: over KVM's limit, so bitmaps stay allocatable. */
		BAD("2^31 pages", -EINVAL, 1, 0, 0, 1ULL << 43, hva2),
		BAD("hva + 8", -EINVAL, 1, 0, FREE_GPA, SLOT_SIZE, hva2 + 8),
		BAD("hva + 2K", -EINVAL, 1, 0, FREE_GPA, SLOT_SIZE, hva2 + 0x800),
		BAD("gpa + size past 2^48", -EINVAL, 1, 0, GPA_LIMIT - SZ_4K, 2 * SZ_4K, hva2),
		BAD("gpa at 2^48", -EINVAL, 1, 0, GPA_LIMIT, SZ_4K, hva2),
		BAD("gpa + size wraps", -EINVAL, 1, 0, ~0xfffULL, 2 * SZ_4K, hva2),
		BAD("gpa + size wraps to 0", -EINVAL, 1, 0, FREE_GPA, -FREE_GPA, hva2),
		BAD("size 2^64 - 4K", -EINVAL, 1, 0, SZ_4K, ~0xfffULL, hva2),
		BAD("hva + size wraps", -EINVAL, 1, 0, FREE_GPA, 2 * SZ_4K, ~0xfffULL),
		BAD("hva in the kernel half", -EINVAL, 1, 0, FREE_GPA, SLOT_SIZE,
		    0xffff800000000000ULL),
		BAD_USER("hva + size past 2^47", -EINVAL, 1, 0, FREE_GPA, 2 * SZ_4K,
			 USER_VA_LIMIT - SZ_4K),
		BAD_USER("hva at 2^47", -EINVAL, 1, 0, FREE_GPA, SZ_4K, USER_VA_LIMIT),
		BAD("same range as slot 0", -EEXIST, 1, 0, SLOT_GPA, SLOT_SIZE, hva2),
		BAD("same range and hva as slot 0", -EEXIST, 1, 0, SLOT_GPA, SLOT_SIZE, hva),
		BAD("over slot 0's first page", -EEXIST, 1, 0, SLOT_GPA - SZ_4K, 2 * SZ_4K, hva2),
		BAD("over slot 0's last page", -EEXIST, 1, 0, SLOT_GPA + SLOT_SIZE - SZ_4K,
		    2 * SZ_4K, hva2),
		BAD("inside slot 0", -EEXIST, 1, 0, SLOT_GPA + SZ_4K, SZ_4K, hva2),
		BAD("around slot 0", -EEXIST, 1, 0, SLOT_GPA - SZ_4K, SLOT_SIZE + 2 * SZ_4K, hva2),
		BAD("delete a slot that does not exist", -EINVAL, 1, 0, FREE_GPA, 0, hva2),
		BAD("delete as 1 slot 0 (none)", -EINVAL, AS1(0), 0, SLOT_GPA, 0, hva),
		BAD("slot 0 smaller", -EINVAL, 0, 0, SLOT_GPA, SLOT_SIZE - SZ_4K, hva),
		BAD("slot 0 bigger", -EINVAL, 0, 0, SLOT_GPA, SLOT_SIZE + SZ_4K, hva),
		BAD("slot 0 new hva", -EINVAL, 0, 0, SLOT_GPA, SLOT_SIZE, hva + SZ_4K),
		BAD("slot 0 made read-only", -EINVAL, 0, ro, SLOT_GPA, SLOT_SIZE, hva),
		BAD("slot 0 moved and resized", -EINVAL, 0, 0, FREE_GPA, SLOT_SIZE - SZ_4K, hva),
		BAD("slot 0 moved to a new hva", -EINVAL, 0, 0, FREE_GPA, SLOT_SIZE, hva2),
		BAD("slot 0 moved, made read-only", -EINVAL, 0, ro, FREE_GPA, SLOT_SIZE, hva),
	};
	uint64_t gen;
	unsigned int i;

	KMMU_REQUIRE_BACKEND();
	/* Slot 0 is mapped before, so a stray zap would show too. */
	expect_maps(_metadata, self->vcpu, 0, SLOT_GPA, self->mem.addr, SLOT_SIZE);
	gen = memslot_gen(_metadata, self->vm);

	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		if (bad[i].user_only && kmmu_backend() != KMMU_BACKEND_USER)
			continue;
		EXPECT_EQ(bad[i].err, set_region(self->vm, &bad[i].r)) {
			TH_LOG("%s", bad[i].what);
		}
		EXPECT_EQ(gen, memslot_gen(_metadata, self->vm)) {
			TH_LOG("%s", bad[i].what);
		}
		expect_maps(_metadata, self->vcpu, 0, SLOT_GPA, self->mem.addr, SLOT_SIZE);
	}

	/* No slot 1 came to be, in part or in whole, anywhere. */
	expect_mmio(_metadata, self->vcpu, 0, FREE_GPA, false);
	expect_mmio(_metadata, self->vcpu, 0, SLOT_GPA - SZ_4K, true);
	expect_mmio(_metadata, self->vcpu, 0, SLOT_GPA + SLOT_SIZE, false);
	expect_mmio(_metadata, self->vcpu, KMMU_WL_SMM, SLOT_GPA, false);
	EXPECT_EQ(-EINVAL, kmmu_vm_set_memslot(self->vm, 1, 0, 0, 0, NULL));
	EXPECT_EQ(gen, memslot_gen(_metadata, self->vm));
}

TEST_F(memslot, null_region)
{
	uint64_t gen;

	KMMU_REQUIRE_BACKEND();
	gen = memslot_gen(_metadata, self->vm);
	EXPECT_EQ(-EFAULT, kmmu_ioctl(self->vm->fd, KMMU_SET_USER_MEMORY_REGION, 0));
	EXPECT_EQ(gen, memslot_gen(_metadata, self->vm));
	expect_maps(_metadata, self->vcpu, 0, SLOT_GPA, self->mem.addr, SLOT_SIZE);
}

TEST_F(memslot, create_and_delete)
{
	uint64_t gen, next;

	KMMU_REQUIRE_BACKEND();
	expect_maps(_metadata, self->vcpu, 0, SLOT_GPA, self->mem.addr, SLOT_SIZE);
	gen = memslot_gen(_metadata, self->vm);
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 1, 0, FREE_GPA, SLOT_SIZE, self->mem2.addr));
	next = memslot_gen(_metadata, self->vm);
	EXPECT_LT(gen, next);
	gen = next;
	expect_maps(_metadata, self->vcpu, 0, FREE_GPA, self->mem2.addr, SLOT_SIZE);

	/* As in KVM, a delete names the slot only: gpa and hva do not matter. */
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 1, 0, 0, 0, NULL));
	next = memslot_gen(_metadata, self->vm);
	EXPECT_LT(gen, next);
	gen = next;
	/* The leaves went with the slot, before anything ran again. */
	expect_zapped(_metadata, self->vm, &variant->cfg, FREE_GPA);
	expect_zapped(_metadata, self->vm, &variant->cfg, FREE_GPA + SLOT_SIZE - SZ_4K);
	*word(self->mem2.addr, 0) = 0x1234;
	expect_mmio(_metadata, self->vcpu, 0, FREE_GPA, false);
	expect_mmio(_metadata, self->vcpu, 0, FREE_GPA + SLOT_SIZE - SZ_4K, true);
	EXPECT_EQ(0x1234, *word(self->mem2.addr, 0));
	EXPECT_EQ(-EINVAL, kmmu_vm_set_memslot(self->vm, 1, 0, 0, 0, NULL));
	EXPECT_EQ(gen, memslot_gen(_metadata, self->vm));

	/* The id is free again, for another range and size. */
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 1, 0, MOVE_GPA, 4 * SZ_4K,
					 (uint8_t *)self->mem2.addr + SZ_4K));
	EXPECT_LT(gen, memslot_gen(_metadata, self->vm));
	expect_maps(_metadata, self->vcpu, 0, MOVE_GPA, (uint8_t *)self->mem2.addr + SZ_4K,
		    4 * SZ_4K);
	expect_mmio(_metadata, self->vcpu, 0, FREE_GPA, false);
	expect_mmio(_metadata, self->vcpu, 0, MOVE_GPA + 4 * SZ_4K, false);

	/*
	 * The last page of the guest physical space is a valid slot.  A
	 * hardware vCPU cannot reach it (SET_WORKLOAD says -EINVAL above
	 * 2^MAXPHYADDR): only the software one runs there.
	 */
	gen = memslot_gen(_metadata, self->vm);
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 2, 0, GPA_LIMIT - SZ_4K, SZ_4K,
					 self->mem2.addr));
	EXPECT_LT(gen, memslot_gen(_metadata, self->vm));
	if (!kmmu_backend_hw())
		expect_maps(_metadata, self->vcpu, 0, GPA_LIMIT - SZ_4K, self->mem2.addr, SZ_4K);

	/* Deleting slot 0 leaves the others alone. */
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 0, 0, SLOT_GPA, 0, self->mem.addr));
	expect_zapped(_metadata, self->vm, &variant->cfg, SLOT_GPA);
	expect_mmio(_metadata, self->vcpu, 0, SLOT_GPA, false);
	expect_maps(_metadata, self->vcpu, 0, MOVE_GPA, (uint8_t *)self->mem2.addr + SZ_4K,
		    4 * SZ_4K);
	if (!kmmu_backend_hw())
		expect_maps(_metadata, self->vcpu, 0, GPA_LIMIT - SZ_4K, self->mem2.addr, SZ_4K);
}

TEST_F(memslot, move)
{
	const uint64_t value = 0xabcd000000000000ULL;
	struct kmmu_workload wl;
	struct kmmu_run run;
	uint64_t gen, next, off, sum = 0;

	KMMU_REQUIRE_BACKEND();
	/* What the guest writes before the move is what it reads after. */
	wl = kmmu_wl_seq(SLOT_GPA, SLOT_SIZE, 100, value);
	wl.flags = KMMU_WL_XOR_GPA;
	run = run_wl(_metadata, self->vcpu, &wl);
	ASSERT_EQ(KMMU_EXIT_DONE, run.exit_reason);
	for (off = 0; off < SLOT_SIZE; off += SZ_4K)
		sum += value ^ (SLOT_GPA + off);
	/* An MMIO SPTE where the slot goes must not outlive the move. */
	expect_mmio(_metadata, self->vcpu, 0, MOVE_GPA, false);

	gen = memslot_gen(_metadata, self->vm);
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 0, 0, MOVE_GPA, SLOT_SIZE, self->mem.addr));
	next = memslot_gen(_metadata, self->vm);
	EXPECT_LT(gen, next);
	gen = next;
	expect_zapped(_metadata, self->vm, &variant->cfg, SLOT_GPA);
	expect_zapped(_metadata, self->vm, &variant->cfg, SLOT_GPA + SLOT_SIZE - SZ_4K);

	wl = kmmu_wl_seq(MOVE_GPA, SLOT_SIZE, 0, 0);
	run = run_wl(_metadata, self->vcpu, &wl);
	ASSERT_EQ(KMMU_EXIT_DONE, run.exit_reason);
	EXPECT_EQ(SLOT_PAGES, run.accesses);
	EXPECT_EQ(sum, run.read_sum);
	expect_mmio(_metadata, self->vcpu, 0, SLOT_GPA, false);
	expect_mmio(_metadata, self->vcpu, 0, SLOT_GPA + SLOT_SIZE - SZ_4K, true);
	EXPECT_EQ(value ^ (SLOT_GPA + SLOT_SIZE - SZ_4K),
		  *word(self->mem.addr, SLOT_SIZE - SZ_4K));
	expect_maps(_metadata, self->vcpu, 0, MOVE_GPA, self->mem.addr, SLOT_SIZE);

	/* A move onto another slot, in whole or in part, is refused. */
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 1, 0, FREE_GPA, SLOT_SIZE, self->mem2.addr));
	gen = memslot_gen(_metadata, self->vm);
	EXPECT_EQ(-EEXIST, kmmu_vm_set_memslot(self->vm, 0, 0, FREE_GPA, SLOT_SIZE,
					       self->mem.addr));
	EXPECT_EQ(-EEXIST, kmmu_vm_set_memslot(self->vm, 0, 0, FREE_GPA - SZ_4K, SLOT_SIZE,
					       self->mem.addr));
	EXPECT_EQ(-EEXIST, kmmu_vm_set_memslot(self->vm, 0, 0, FREE_GPA + SLOT_SIZE - SZ_4K,
					       SLOT_SIZE, self->mem.addr));
	EXPECT_EQ(gen, memslot_gen(_metadata, self->vm));
	expect_maps(_metadata, self->vcpu, 0, MOVE_GPA, self->mem.addr, SLOT_SIZE);
	expect_maps(_metadata, self->vcpu, 0, FREE_GPA, self->mem2.addr, SLOT_SIZE);

	/* A slot may move over its own old range: it only ever overlaps itself. */
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 0, 0, MOVE_GPA + SZ_4K, SLOT_SIZE,
					 self->mem.addr));
	next = memslot_gen(_metadata, self->vm);
	EXPECT_LT(gen, next);
	gen = next;
	expect_mmio(_metadata, self->vcpu, 0, MOVE_GPA, false);
	expect_maps(_metadata, self->vcpu, 0, MOVE_GPA + SZ_4K, self->mem.addr, SLOT_SIZE);

	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 0, 0, SLOT_GPA, SLOT_SIZE, self->mem.addr));
	EXPECT_LT(gen, memslot_gen(_metadata, self->vm));
	expect_mmio(_metadata, self->vcpu, 0, MOVE_GPA + SLOT_SIZE, false);
	expect_maps(_metadata, self->vcpu, 0, SLOT_GPA, self->mem.addr, SLOT_SIZE);
	expect_maps(_metadata, self->vcpu, 0, FREE_GPA, self->mem2.addr, SLOT_SIZE);
}

/*
 * A move takes the flags of the request with it, as in KVM: moved with
 * LOG_DIRTY_PAGES, the slot logs at its new place from the start (every
 * page written there is in the log); moved without, it stops.
 */
TEST_F(memslot, move_with_new_flags)
{
	uint64_t bitmap[1], want = (1ULL << 3) | (1ULL << 9);
	struct kmmu_workload wl;
	struct kmmu_run run;
	int i;

	KMMU_REQUIRE_BACKEND();
	EXPECT_EQ(-ENOENT, kmmu_vm_get_dirty_log(self->vm, 0, bitmap));
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 0, KMMU_MEM_LOG_DIRTY_PAGES, MOVE_GPA,
					 SLOT_SIZE, self->mem.addr));
	ASSERT_EQ(0, kmmu_vm_get_dirty_log(self->vm, 0, bitmap));
	EXPECT_EQ(0, bitmap[0]);
	for (i = 0; i < 64; i++) {
		if (!(want & (1ULL << i)))
			continue;
		wl = kmmu_wl_seq(MOVE_GPA + i * SZ_4K, 8, 100, i);
		run = run_wl(_metadata, self->vcpu, &wl);
		ASSERT_EQ(KMMU_EXIT_DONE, run.exit_reason);
	}
	ASSERT_EQ(0, kmmu_vm_get_dirty_log(self->vm, 0, bitmap));
	EXPECT_EQ(want, bitmap[0]);

	/* Moved again, still logging: the log goes on where it was. */
	wl = kmmu_wl_seq(MOVE_GPA + 5 * SZ_4K, 8, 100, 5);
	run = run_wl(_metadata, self->vcpu, &wl);
	ASSERT_EQ(KMMU_EXIT_DONE, run.exit_reason);
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 0, KMMU_MEM_LOG_DIRTY_PAGES, FREE_GPA,
					 SLOT_SIZE, self->mem.addr));
	ASSERT_EQ(0, kmmu_vm_get_dirty_log(self->vm, 0, bitmap));
	EXPECT_EQ(1ULL << 5, bitmap[0]);

	/* Moved back without the flag: no log any more. */
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 0, 0, SLOT_GPA, SLOT_SIZE, self->mem.addr));
	EXPECT_EQ(-ENOENT, kmmu_vm_get_dirty_log(self->vm, 0, bitmap));
	expect_maps(_metadata, self->vcpu, 0, SLOT_GPA, self->mem.addr, SLOT_SIZE);
	/* READONLY may not change with a move, as in KVM. */
	EXPECT_EQ(-EINVAL, kmmu_vm_set_memslot(self->vm, 0, KMMU_MEM_READONLY, MOVE_GPA,
					       SLOT_SIZE, self->mem.addr));
}

/* Setting a slot to what it already is changes nothing, as in KVM. */
TEST_F(memslot, same_flags_is_a_no_op)
{
	struct kmmu_workload wl = kmmu_wl_seq(FREE_GPA, 8, 0, 0);
	uint64_t gen, spte, ro_spte;
	struct kmmu_run run;
	uint32_t level;

	KMMU_REQUIRE_BACKEND();
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 1, KMMU_MEM_READONLY, FREE_GPA, SZ_4K,
					 self->mem2.addr));
	expect_maps(_metadata, self->vcpu, 0, SLOT_GPA, self->mem.addr, SLOT_SIZE);
	run = run_wl(_metadata, self->vcpu, &wl);
	ASSERT_EQ(KMMU_EXIT_DONE, run.exit_reason);
	spte = mapped_leaf(_metadata, self->vcpu, 0, SLOT_GPA);
	ro_spte = mapped_leaf(_metadata, self->vcpu, 0, FREE_GPA);
	gen = memslot_gen(_metadata, self->vm);

	EXPECT_EQ(0, kmmu_vm_set_memslot(self->vm, 0, 0, SLOT_GPA, SLOT_SIZE, self->mem.addr));
	EXPECT_EQ(0, kmmu_vm_set_memslot(self->vm, 1, KMMU_MEM_READONLY, FREE_GPA, SZ_4K,
					 self->mem2.addr));
	EXPECT_EQ(gen, memslot_gen(_metadata, self->vm));
	/* Nothing was zapped either (a busy host may age or zap at will). */
	if (kmmu_host_quiet()) {
		EXPECT_EQ(spte, walk_spte(_metadata, self->vm, SLOT_GPA, 0, &level));
		EXPECT_EQ(ro_spte, walk_spte(_metadata, self->vm, FREE_GPA, 0, &level));
	}
	expect_maps(_metadata, self->vcpu, 0, SLOT_GPA, self->mem.addr, SLOT_SIZE);
	expect_mmio(_metadata, self->vcpu, 0, FREE_GPA, true);
}

TEST_F(memslot, read_only)
{
	const uint64_t value = 0x7700000000000000ULL;
	struct kmmu_vm_stats before, after;
	struct kmmu_workload wl;
	struct kmmu_run run;
	uint64_t off, spte, sum = 0;
	int pass;

	KMMU_REQUIRE_BACKEND();
	for (off = 0; off < SLOT_SIZE; off += SZ_4K) {
		*word(self->mem2.addr, off) = 0x1000 + off;
		sum += 0x1000 + off;
	}
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 1, KMMU_MEM_READONLY, FREE_GPA, SLOT_SIZE,
					 self->mem2.addr));
	ASSERT_EQ(0, kmmu_vm_stats(self->vm, &before));

	/*
	 * Writes exit with what the guest wanted to write, first on pages
	 * never mapped, then (below) on pages that reads have mapped.
	 */
	for (pass = 0; pass < 2; pass++) {
		wl = kmmu_wl_seq(FREE_GPA, 2 * SZ_4K, 100, value);
		wl.flags = KMMU_WL_XOR_GPA;
		run = run_wl(_metadata, self->vcpu, &wl);
		ASSERT_EQ(KMMU_EXIT_MMIO, run.exit_reason);
		EXPECT_EQ(FREE_GPA, run.mmio.gpa);
		EXPECT_EQ(KMMU_ACCESS_WRITE, run.mmio.flags);
		EXPECT_EQ(8, run.mmio.len);
		EXPECT_EQ(value ^ FREE_GPA, run.mmio.data);
		EXPECT_EQ(0, run.accesses);

		/* Going on completes that write and exits at the next page. */
		memset(&run, 0, sizeof(run));
		ASSERT_EQ(0, kmmu_vcpu_run(self->vcpu, &run));
		ASSERT_EQ(KMMU_EXIT_MMIO, run.exit_reason);
		EXPECT_EQ(FREE_GPA + SZ_4K, run.mmio.gpa);
		EXPECT_EQ(KMMU_ACCESS_WRITE, run.mmio.flags);
		EXPECT_EQ(value ^ (FREE_GPA + SZ_4K), run.mmio.data);
		EXPECT_EQ(1, run.accesses);
		memset(&run, 0, sizeof(run));
		ASSERT_EQ(0, kmmu_vcpu_run(self->vcpu, &run));
		EXPECT_EQ(KMMU_EXIT_DONE, run.exit_reason);
		EXPECT_EQ(1, run.accesses);

		wl = kmmu_wl_seq(FREE_GPA, SLOT_SIZE, 0, 0);
		run = run_wl(_metadata, self->vcpu, &wl);
		ASSERT_EQ(KMMU_EXIT_DONE, run.exit_reason);
		EXPECT_EQ(SLOT_PAGES, run.accesses);
		EXPECT_EQ(sum, run.read_sum);
	}

	/* Mapped for reading only, and the memory is as the host left it. */
	spte = mapped_leaf(_metadata, self->vcpu, 0, FREE_GPA);
	EXPECT_FALSE(spte & SPTE_WRITABLE);
	for (off = 0; off < SLOT_SIZE; off += SZ_4K) {
		ASSERT_EQ(0x1000 + off, *word(self->mem2.addr, off));
	}
	ASSERT_EQ(0, kmmu_vm_stats(self->vm, &after));
	EXPECT_LE(before.mmio_faults + 4, after.mmio_faults);
	EXPECT_EQ(before.memslot_generation, after.memslot_generation);

	/* The writable slot next to it is not affected. */
	expect_maps(_metadata, self->vcpu, 0, SLOT_GPA, self->mem.addr, SLOT_SIZE);
}

/* Decode the memslot generation an MMIO SPTE was made in. */
static uint64_t mmio_spte_gen(uint64_t spte)
{
	return ((spte >> 3) & 0xff) | (((spte >> 52) & 0x7ff) << 8);
}

static void expect_mmio_spte(struct __test_metadata *_metadata, struct kmmu_vm *vm,
			     uint64_t gpa)
{
	uint64_t spte, gen = memslot_gen(_metadata, vm);
	uint32_t level;

	spte = walk_spte(_metadata, vm, gpa, 0, &level);
	EXPECT_EQ(1, level);
	EXPECT_FALSE(spte & SPTE_PRESENT);
	if (kmmu_vm_format(vm) == KMMU_SPTE_FORMAT_EPT) {
		EXPECT_EQ(EPT_MMIO_VALUE, spte & EPT_RWX);
	} else {
		EXPECT_EQ(NPT_MMIO_MASK, spte & NPT_MMIO_MASK);
	}
	EXPECT_EQ(gpa >> 12, (spte & SPTE_PFN_MASK) >> 12);
	EXPECT_EQ(gen & MMIO_GEN_MASK, mmio_spte_gen(spte));
}

TEST_F(memslot, mmio_spte_goes_stale)
{
	struct kmmu_vm_stats st;
	struct kmmu_workload wl;
	struct kmmu_run run;
	uint64_t mmio_faults;

	KMMU_REQUIRE_BACKEND();
	expect_mmio(_metadata, self->vcpu, 0, FREE_GPA, false);
	expect_mmio_spte(_metadata, self->vm, FREE_GPA);

	/* The next access, through the MMIO SPTE, exits too: one more MMIO fault. */
	ASSERT_EQ(0, kmmu_vm_stats(self->vm, &st));
	mmio_faults = st.mmio_faults;
	expect_mmio(_metadata, self->vcpu, 0, FREE_GPA, true);
	ASSERT_EQ(0, kmmu_vm_stats(self->vm, &st));
	EXPECT_EQ(mmio_faults + 1, st.mmio_faults);

	/* A new slot makes it stale: the same gpa now reaches memory. */
	*word(self->mem2.addr, 0) = 0x5151;
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 1, 0, FREE_GPA, SLOT_SIZE, self->mem2.addr));
	wl = kmmu_wl_seq(FREE_GPA, 8, 0, 0);
	run = run_wl(_metadata, self->vcpu, &wl);
	ASSERT_EQ(KMMU_EXIT_DONE, run.exit_reason);
	EXPECT_EQ(1, run.accesses);
	EXPECT_EQ(0x5151, run.read_sum);
	expect_maps(_metadata, self->vcpu, 0, FREE_GPA, self->mem2.addr, SLOT_SIZE);

	/* Gone again: a fresh MMIO SPTE, of the new generation. */
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 1, 0, FREE_GPA, 0, self->mem2.addr));
	expect_mmio(_metadata, self->vcpu, 0, FREE_GPA, false);
	expect_mmio_spte(_metadata, self->vm, FREE_GPA);

	/* A slot at that gpa in address space 1 changes nothing for address space 0. */
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, AS1(1), 0, FREE_GPA, SLOT_SIZE,
					 self->mem2.addr));
	ASSERT_EQ(0, kmmu_vm_stats(self->vm, &st));
	mmio_faults = st.mmio_faults;
	expect_mmio(_metadata, self->vcpu, 0, FREE_GPA, false);
	ASSERT_EQ(0, kmmu_vm_stats(self->vm, &st));
	EXPECT_EQ(mmio_faults + 1, st.mmio_faults);
	expect_maps(_metadata, self->vcpu, KMMU_WL_SMM, FREE_GPA, self->mem2.addr, SLOT_SIZE);
}

/*
 * Address space 1 is a world of its own: a slot there is seen by SMM
 * workloads only, and may cover the same gpas as a slot of address space
 * 0 with other memory.  One vCPU per address space, so that this test
 * does not depend on how a vCPU switches between them.
 */
TEST_F(memslot, address_space_1)
{
	struct kmmu_vcpu *smm;
	uint64_t gen, spte0, spte1, pfn0, pfn1;
	uint32_t level;

	KMMU_REQUIRE_BACKEND();
	ASSERT_EQ(0, kmmu_vcpu_create(self->vm, 1, &smm));
	gen = memslot_gen(_metadata, self->vm);
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, AS1(0), 0, SLOT_GPA, SLOT_SIZE,
					 self->mem2.addr));
	EXPECT_LT(gen, memslot_gen(_metadata, self->vm));
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, AS1(1), 0, FREE_GPA, SLOT_SIZE,
					 (uint8_t *)self->mem2.addr + SLOT_SIZE));
	/* Overlap is checked within an address space. */
	EXPECT_EQ(-EEXIST, kmmu_vm_set_memslot(self->vm, AS1(2), 0, FREE_GPA, SZ_4K,
					       self->mem2.addr));

	expect_maps(_metadata, smm, KMMU_WL_SMM, SLOT_GPA, self->mem2.addr, SLOT_SIZE);
	expect_maps(_metadata, self->vcpu, 0, SLOT_GPA, self->mem.addr, SLOT_SIZE);
	expect_maps(_metadata, smm, KMMU_WL_SMM, FREE_GPA,
		    (uint8_t *)self->mem2.addr + SLOT_SIZE, SLOT_SIZE);
	expect_mmio(_metadata, self->vcpu, 0, FREE_GPA, false);
	expect_mmio(_metadata, smm, KMMU_WL_SMM, MOVE_GPA, true);

	spte0 = mapped_leaf(_metadata, self->vcpu, 0, SLOT_GPA);
	spte1 = mapped_leaf(_metadata, smm, KMMU_WL_SMM, SLOT_GPA);
	/* Each address space's slot maps its own host pages. */
	ASSERT_EQ(0, kmmu_host_pfn(self->mem.addr, &pfn0));
	ASSERT_EQ(0, kmmu_host_pfn(self->mem2.addr, &pfn1));
	EXPECT_EQ(pfn0, (spte0 & SPTE_PFN_MASK) >> 12);
	EXPECT_EQ(pfn1, (spte1 & SPTE_PFN_MASK) >> 12);

	/* Deleting address space 1's slot 0 leaves address space 0's slot 0 mapped. */
	gen = memslot_gen(_metadata, self->vm);
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, AS1(0), 0, 0, 0, NULL));
	EXPECT_LT(gen, memslot_gen(_metadata, self->vm));
	if (kmmu_host_quiet()) {
		EXPECT_EQ(spte0, walk_spte(_metadata, self->vm, SLOT_GPA, 0, &level));
	}
	spte1 = walk_spte(_metadata, self->vm, SLOT_GPA, 1, &level);
	EXPECT_EQ(1, level);
	EXPECT_FALSE(spte1 & SPTE_PRESENT);
	expect_mmio(_metadata, smm, KMMU_WL_SMM, SLOT_GPA, false);
	expect_maps(_metadata, self->vcpu, 0, SLOT_GPA, self->mem.addr, SLOT_SIZE);
	expect_maps(_metadata, smm, KMMU_WL_SMM, FREE_GPA,
		    (uint8_t *)self->mem2.addr + SLOT_SIZE, SLOT_SIZE);
}

/*
 * One vCPU going from address space 0 to 1 and back, as a CPU entering
 * and leaving SMM.  Hardware tags or flushes its TLB on the switch (a new
 * EPTP/nCR3); a translation cached in one address space must never be used
 * in the other, where the same gpa is other memory.
 */
TEST_F(memslot, address_space_switch_on_one_vcpu)
{
	KMMU_REQUIRE_BACKEND();
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, AS1(0), 0, SLOT_GPA, SLOT_SIZE,
					 self->mem2.addr));
	expect_maps(_metadata, self->vcpu, 0, SLOT_GPA, self->mem.addr, SLOT_SIZE);
	expect_maps(_metadata, self->vcpu, KMMU_WL_SMM, SLOT_GPA, self->mem2.addr, SLOT_SIZE);
	expect_maps(_metadata, self->vcpu, 0, SLOT_GPA, self->mem.addr, SLOT_SIZE);
	expect_maps(_metadata, self->vcpu, KMMU_WL_SMM, SLOT_GPA, self->mem2.addr, SLOT_SIZE);
}

/* The order slots are made in, and where each goes: both scrambled. */
static unsigned int many_id(unsigned int i)
{
	return (i * 167) % MEM_PAGES;
}

static uint64_t many_gpa(unsigned int id)
{
	return MANY_GPA + ((id * 313 + 7) % MEM_PAGES) * SZ_4K;
}

TEST_F(memslot, all_512_slots)
{
	const uint64_t value = 0x3300000000000000ULL;
	struct kmmu_workload wl;
	struct kmmu_run run;
	uint64_t gen, next, sum = 0;
	unsigned int i, id;
	uint32_t level;

	KMMU_REQUIRE_BACKEND();
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 0, 0, SLOT_GPA, 0, NULL));
	gen = memslot_gen(_metadata, self->vm);
	for (i = 0; i < MEM_PAGES; i++) {
		id = many_id(i);
		ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, id, 0, many_gpa(id), SZ_4K,
						 (uint8_t *)self->mem.addr + id * SZ_4K));
		next = memslot_gen(_metadata, self->vm);
		ASSERT_LT(gen, next);
		gen = next;
	}
	EXPECT_EQ(-EINVAL, kmmu_vm_set_memslot(self->vm, 512, 0, FREE_GPA, SZ_4K,
					       self->mem2.addr));
	EXPECT_EQ(gen, memslot_gen(_metadata, self->vm));
	/* The limit is per address space. */
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, AS1(511), 0, FREE_GPA, SZ_4K,
					 self->mem2.addr));

	/* One pass over the 512 pages: each gpa reaches its own slot's page. */
	for (id = 0; id < MEM_PAGES; id++) {
		*word(self->mem.addr, id * SZ_4K) = many_gpa(id) * 3;
		sum += many_gpa(id) * 3;
	}
	wl = kmmu_wl_seq(MANY_GPA, MEM_SIZE, 0, 0);
	run = run_wl(_metadata, self->vcpu, &wl);
	ASSERT_EQ(KMMU_EXIT_DONE, run.exit_reason);
	EXPECT_EQ(MEM_PAGES, run.accesses);
	EXPECT_EQ(sum, run.read_sum);
	wl = kmmu_wl_seq(MANY_GPA, MEM_SIZE, 100, value);
	wl.flags = KMMU_WL_XOR_GPA;
	run = run_wl(_metadata, self->vcpu, &wl);
	ASSERT_EQ(KMMU_EXIT_DONE, run.exit_reason);
	for (id = 0; id < MEM_PAGES; id++) {
		ASSERT_EQ(value ^ many_gpa(id), *word(self->mem.addr, id * SZ_4K));
		walk_spte(_metadata, self->vm, many_gpa(id), 0, &level);
		ASSERT_EQ(1, level);
	}
	expect_mmio(_metadata, self->vcpu, 0, MANY_GPA + MEM_SIZE, false);
	expect_mmio(_metadata, self->vcpu, 0, MANY_GPA - SZ_4K, false);

	/* Deleting every other slot leaves holes exactly there. */
	for (id = 0; id < MEM_PAGES; id += 2) {
		ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, id, 0, 0, 0, NULL));
	}
	for (id = 0; id < MEM_PAGES; id++) {
		if (id % 2 == 0)
			expect_mmio(_metadata, self->vcpu, 0, many_gpa(id), false);
		else
			expect_maps(_metadata, self->vcpu, 0, many_gpa(id),
				    (uint8_t *)self->mem.addr + id * SZ_4K, SZ_4K);
	}
	expect_maps(_metadata, self->vcpu, KMMU_WL_SMM, FREE_GPA, self->mem2.addr, SZ_4K);
}

TEST_HARNESS_MAIN
