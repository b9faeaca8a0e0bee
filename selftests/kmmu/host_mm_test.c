// SPDX-License-Identifier: GPL-2.0
/*
 * What the host's mm does to guest memory under a running VM -- migration,
 * compaction, swap-out, discard, THP split and collapse -- must never let
 * the guest and the host see different data: every change comes with an
 * invalidation, and the TLBs are flushed before a page goes.  And what the
 * MMU tells the host about its pages: a leaf zap marks a page accessed, a
 * whole table going away (zap-all, a root torn down, a collapsible range)
 * does not; a page the guest may write is marked dirty when it is mapped.
 *
 * The user backend's host model moves pages to other frames and poisons
 * the ones it frees, so a stale translation reads the wrong data (and a
 * write through one is found at the leak check).  On dev, the operations
 * of the model SKIP: the kernel does them at its own times.
 */
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "test_util.h"

#define GPA		0x100000000ULL
#define PAGES		16
#define SIZE		(PAGES * SZ_4K)
#define THP_GPA		0x200000000ULL
#define THP_SIZE	(2 * SZ_2M)

FIXTURE(host_mm) {
	struct kmmu_vm *vm;
	struct kmmu_vcpu *vcpu;
	struct kmmu_mem mem, thp;
};

FIXTURE_VARIANT(host_mm) {
	struct kmmu_vm_config cfg;
};

KMMU_ADD_FORMAT_VARIANTS(host_mm);

FIXTURE_SETUP(host_mm)
{
	if (!kmmu_backend_available())
		return;
	KMMU_VM_CREATE(&variant->cfg, &self->vm);
	ASSERT_EQ(0, kmmu_mem_alloc(&self->mem, KMMU_BACKING_ANON, SIZE));
	ASSERT_EQ(0, kmmu_mem_alloc(&self->thp, KMMU_BACKING_ANON_THP, THP_SIZE));
	memset(self->mem.addr, 0, SIZE);
	memset(self->thp.addr, 0, THP_SIZE);
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 0, 0, GPA, SIZE, self->mem.addr));
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 1, 0, THP_GPA, THP_SIZE, self->thp.addr));
	ASSERT_EQ(0, kmmu_vcpu_create(self->vm, 0, &self->vcpu));
}

FIXTURE_TEARDOWN(host_mm)
{
	kmmu_vm_free(self->vm);
	kmmu_mem_free(&self->mem);
	kmmu_mem_free(&self->thp);
	EXPECT_EQ(0, kmmu_lib_leak_check());
}

static bool is_user(void)
{
	return kmmu_backend() == KMMU_BACKEND_USER;
}

/* One pass of the vCPU over [gpa, gpa + size), a page at a time: the RUN's exit. */
static struct kmmu_run pass(struct __test_metadata *_metadata, FIXTURE_DATA(host_mm) *self,
			    uint64_t gpa, uint64_t size, bool write, uint64_t value)
{
	struct kmmu_workload wl = kmmu_wl_seq(gpa, size, write ? 100 : 0, value);
	struct kmmu_run run;

	wl.flags = KMMU_WL_XOR_GPA;
	EXPECT_EQ(0, kmmu_vcpu_run_workload(self->vcpu, &wl, &run));
	EXPECT_EQ(KMMU_EXIT_DONE, run.exit_reason);
	return run;
}

/* What the guest reads back of @n pages it wrote @value ^ gpa to (0 when discarded). */
static uint64_t sum_of(uint64_t gpa, uint64_t n, uint64_t value)
{
	uint64_t sum = 0, i;

	for (i = 0; i < n; i++)
		sum += value ? value ^ (gpa + i * SZ_4K) : 0;
	return sum;
}

/* Both ways: the host reads what the guest wrote, the guest what the host has. */
static void expect_same(struct __test_metadata *_metadata, FIXTURE_DATA(host_mm) *self,
			void *hva, uint64_t gpa, uint64_t size, uint64_t value)
{
	uint64_t i, n = size / SZ_4K;

	EXPECT_EQ(sum_of(gpa, n, value), pass(_metadata, self, gpa, size, false, 0).read_sum);
	pass(_metadata, self, gpa, size, true, value + 1);
	for (i = 0; i < n; i++) {
		ASSERT_EQ((value + 1) ^ (gpa + i * SZ_4K),
			  *(uint64_t *)((uint8_t *)hva + i * SZ_4K)) {
			TH_LOG("page %llu", (unsigned long long)i);
		}
	}
}

static const struct {
	const char *what;
	enum kmmu_host_op op;	/* -1: discard */
	bool thp;		/* on the THP slot */
	bool keeps_data;
} ops[] = {
	{ "migrate", KMMU_HOST_MIGRATE, false, true },
	{ "compact", KMMU_HOST_COMPACT, false, true },
	{ "swap out", KMMU_HOST_SWAP_OUT, false, true },
	{ "discard", -1, false, false },
	{ "migrate a THP", KMMU_HOST_MIGRATE, true, true },
	{ "split a THP", KMMU_HOST_THP_SPLIT, true, true },
	{ "migrate half a THP", KMMU_HOST_MIGRATE, true, true },
	{ "collapse a THP", KMMU_HOST_THP_COLLAPSE, true, true },
	{ "swap out a THP", KMMU_HOST_SWAP_OUT, true, true },
	{ "discard part of a THP", -1, true, false },
};

/*
 * Each operation of the host's mm, with the guest's pages mapped and in
 * its TLB: afterwards the guest reads what was there (zeroes after a
 * discard) and the host reads what the guest writes next.  A missing
 * invalidation or TLB flush has the guest use the old, freed page.
 */
TEST_F(host_mm, guest_and_host_agree_across_every_change)
{
	unsigned int i;

	if (!is_user())
		SKIP(return, "the host model's operations: the kernel does these at its own times");
	for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		void *hva = ops[i].thp ? self->thp.addr : self->mem.addr;
		uint64_t gpa = ops[i].thp ? THP_GPA : GPA, size = ops[i].thp ? THP_SIZE : SIZE;
		/* Half a THP: the page before and the one after the cut. */
		uint64_t off = strstr(ops[i].what, "half") || strstr(ops[i].what, "part") ?
			       SZ_2M - 3 * SZ_4K : 0;
		uint64_t len = off ? 6 * SZ_4K : size;
		uint64_t value = 0x1000 * (i + 1);

		TH_LOG("%s", ops[i].what);
		pass(_metadata, self, gpa, size, true, value);
		/* Twice through the TLB: the second pass uses what the first filled. */
		EXPECT_EQ(sum_of(gpa, size / SZ_4K, value),
			  pass(_metadata, self, gpa, size, false, 0).read_sum);
		if (ops[i].op == (enum kmmu_host_op)-1) {
			ASSERT_EQ(0, kmmu_host_discard((uint8_t *)hva + off, len));
		} else {
			ASSERT_EQ(0, kmmu_host_mm(ops[i].op, (uint8_t *)hva + off, len));
		}
		if (ops[i].keeps_data) {
			expect_same(_metadata, self, hva, gpa, size, value);
			continue;
		}
		/* Discarded pages read zero; the others what was written. */
		EXPECT_EQ(sum_of(gpa, size / SZ_4K, value) -
			  sum_of(gpa + off, len / SZ_4K, value),
			  pass(_metadata, self, gpa, size, false, 0).read_sum);
		pass(_metadata, self, gpa, size, true, value);
		expect_same(_metadata, self, hva, gpa, size, value);
	}
}

/*
 * Zapping every mapping empties the roots without a TLB flush: the vCPUs
 * flush when they load their next root.  A page migrated after that, with
 * nothing left to zap, must still not be reached through the old TLB.
 */
TEST_F(host_mm, zap_all_then_migrate)
{
	if (!is_user())
		SKIP(return, "the host model's operations: the kernel does these at its own times");
	pass(_metadata, self, GPA, SIZE, true, 0xa0);
	ASSERT_EQ(0, kmmu_vm_zap(self->vm, 0, 0, 0, KMMU_ZAP_ALL));
	ASSERT_EQ(0, kmmu_host_mm(KMMU_HOST_MIGRATE, self->mem.addr, SIZE));
	expect_same(_metadata, self, self->mem.addr, GPA, SIZE, 0xa0);
}

/* Whether the process's own page table maps @addr (pagemap's present bit). */
static bool pte_present(struct __test_metadata *_metadata, const void *addr)
{
	uint64_t e = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	EXPECT_LE(0, fd);
	if (fd < 0)
		return false;
	EXPECT_EQ(sizeof(e), pread(fd, &e, sizeof(e), (uintptr_t)addr / SZ_4K * sizeof(e)));
	close(fd);
	return e & (1ULL << 63);
}

/*
 * The user host's gup faults a page in through the process's mapping (a
 * userfaultfd on it would see the fault) unless it knows the page to be
 * mapped there already, as after a prefault.  That knowledge goes with the
 * mapping: a page the mm moved or dropped since is faulted in again.
 */
TEST_F(host_mm, gup_faults_in_again_what_the_mm_moved)
{
	uint8_t *hva = self->mem.addr;
	static const struct {
		const char *what;
		enum kmmu_host_op op;	/* -1: discard */
	} moves[] = {
		{ "discard", -1 },
		{ "migrate", KMMU_HOST_MIGRATE },
		{ "swap out", KMMU_HOST_SWAP_OUT },
	};
	unsigned int i;

	if (!is_user())
		SKIP(return, "the host model's gup: the kernel's own walks its page tables");
	kmmu_mem_prefault(&self->mem);
	pass(_metadata, self, GPA, SIZE, false, 0);
	for (i = 0; i < sizeof(moves) / sizeof(moves[0]); i++) {
		uint8_t *page = hva + (2 + i) * SZ_4K;

		TH_LOG("%s", moves[i].what);
		if (moves[i].op == (enum kmmu_host_op)-1) {
			ASSERT_EQ(0, kmmu_host_discard(page, SZ_4K));
		} else {
			ASSERT_EQ(0, kmmu_host_mm(moves[i].op, page, SZ_4K));
		}
		/* The model maps the page anew: the process has no PTE for it yet. */
		ASSERT_FALSE(pte_present(_metadata, page));
		pass(_metadata, self, GPA, SIZE, false, 0);
		EXPECT_TRUE(pte_present(_metadata, page));
		EXPECT_TRUE(pte_present(_metadata, hva));
	}
}

/* ---- what the host hears of its pages ---- */

/* The host's marks on the pages; SKIP (once) where the host cannot tell. */
static bool host_state(struct __test_metadata *_metadata, void *hva, size_t len,
		       struct kmmu_host_pages *st)
{
	int ret = kmmu_host_pages(hva, len, st);

	if (ret == -EOPNOTSUPP)
		return false;
	EXPECT_EQ(0, ret);
	EXPECT_EQ(0, st->bad_marks);
	return true;
}

/* Read every page, then forget what the host knew of them. */
static bool read_and_forget(struct __test_metadata *_metadata, FIXTURE_DATA(host_mm) *self,
			    uint64_t gpa, void *hva, uint64_t size)
{
	struct kmmu_host_pages st;

	pass(_metadata, self, gpa, size, false, 0);
	if (kmmu_host_pages_forget(hva, size) || kmmu_host_pages(hva, size, &st))
		return false;
	/* Nothing of the host's own may mark them again before the test looks. */
	EXPECT_EQ(0, st.accessed);
	return true;
}

/*
 * A leaf zap (KMMU_ZAP, as the mm's unmap does it) tells the host which
 * pages the guest used: each is marked accessed.
 */
TEST_F(host_mm, leaf_zap_marks_pages_accessed)
{
	struct kmmu_host_pages st;

	if (!read_and_forget(_metadata, self, GPA, self->mem.addr, SIZE))
		SKIP(return, "the host's page flags cannot be read here");
	ASSERT_EQ(0, kmmu_vm_zap(self->vm, GPA, SIZE / 2, 0, 0));
	ASSERT_TRUE(host_state(_metadata, self->mem.addr, SIZE, &st));
	EXPECT_EQ(PAGES / 2, st.accessed);
}

/*
 * A whole table going away says nothing of the guest's use of its pages:
 * zapping every mapping, tearing down the VM's roots, and the collapsible
 * zap when logging stops mark nothing accessed.
 */
TEST_F(host_mm, table_zaps_mark_nothing)
{
	struct kmmu_userspace_memory_region r = {
		.slot = 1, .guest_phys_addr = THP_GPA, .memory_size = THP_SIZE,
		.userspace_addr = (uintptr_t)self->thp.addr,
	};
	struct kmmu_vm_stats st0, st1;
	struct kmmu_host_pages st;

	if (!read_and_forget(_metadata, self, GPA, self->mem.addr, SIZE))
		SKIP(return, "the host's page flags cannot be read here");
	ASSERT_EQ(0, kmmu_vm_zap(self->vm, 0, 0, 0, KMMU_ZAP_ALL));
	ASSERT_TRUE(host_state(_metadata, self->mem.addr, SIZE, &st));
	EXPECT_EQ(0, st.accessed);

	/* A logging slot with a few 4K leaves per 2M: zapped, not rebuilt, at the end. */
	r.flags = KMMU_MEM_LOG_DIRTY_PAGES;
	ASSERT_EQ(0, kmmu_ioctl(self->vm->fd, KMMU_SET_USER_MEMORY_REGION, (unsigned long)&r));
	pass(_metadata, self, THP_GPA, 3 * SZ_4K, true, 1);
	pass(_metadata, self, THP_GPA + SZ_2M, 3 * SZ_4K, true, 1);
	ASSERT_EQ(0, kmmu_host_pages_forget(self->thp.addr, THP_SIZE));
	ASSERT_EQ(0, kmmu_vm_stats(self->vm, &st0));
	r.flags = 0;
	ASSERT_EQ(0, kmmu_ioctl(self->vm->fd, KMMU_SET_USER_MEMORY_REGION, (unsigned long)&r));
	ASSERT_EQ(0, kmmu_vm_stats(self->vm, &st1));
	EXPECT_EQ(2, st1.collapsible_zaps - st0.collapsible_zaps);
	ASSERT_TRUE(host_state(_metadata, self->thp.addr, THP_SIZE, &st));
	EXPECT_EQ(0, st.accessed);

	/* The VM's teardown: its roots go with every leaf. */
	ASSERT_TRUE(read_and_forget(_metadata, self, GPA, self->mem.addr, SIZE));
	kmmu_vm_free(self->vm);
	self->vm = NULL;
	ASSERT_TRUE(host_state(_metadata, self->mem.addr, SIZE, &st));
	EXPECT_EQ(0, st.accessed);
}

/*
 * A page the guest may write is marked dirty when a fault maps it -- a read
 * fault too, since the fast path may later make the SPTE writable without
 * mmu_lock, where page flags must not change -- and never one the guest
 * cannot write.  Fresh memory, written by the host (so the kernel's pages
 * are its own and writable, yet not marked dirty: an anonymous page keeps
 * that in its PTE), then read by the guest.
 */
TEST_F(host_mm, pages_the_guest_may_write_are_dirty)
{
	struct kmmu_host_pages st;
	struct kmmu_mem fresh;
	int ro;

	KMMU_REQUIRE_BACKEND();
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 0, 0, 0, 0, NULL));
	for (ro = 0; ro < 2; ro++) {
		ASSERT_EQ(0, kmmu_mem_alloc(&fresh, KMMU_BACKING_ANON, SIZE));
		memset(fresh.addr, 1, SIZE);
		if (!host_state(_metadata, fresh.addr, SIZE, &st)) {
			kmmu_mem_free(&fresh);
			SKIP(return, "the host's page flags cannot be read here");
		}
		ASSERT_EQ(0, kmmu_host_pages_forget(fresh.addr, SIZE));
		ASSERT_TRUE(host_state(_metadata, fresh.addr, SIZE, &st));
		ASSERT_EQ(0, st.dirty) {
			TH_LOG("the host marked %ld fresh pages dirty itself", st.dirty);
		}
		ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 0, ro ? KMMU_MEM_READONLY : 0, GPA,
						 SIZE, fresh.addr));
		pass(_metadata, self, GPA, SIZE / 2, false, 0);
		ASSERT_TRUE(host_state(_metadata, fresh.addr, SIZE, &st));
		EXPECT_EQ(ro ? 0 : PAGES / 2, st.dirty) {
			TH_LOG("%s slot", ro ? "read-only" : "writable");
		}
		ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 0, 0, 0, 0, NULL));
		kmmu_mem_free(&fresh);
	}
}

/*
 * The host splits a THP: from then on it maps those 2M with 4K pages, and
 * so must the guest -- faults, and rebuilding huge leaves when logging
 * stops, included -- until khugepaged collapses it.
 */
TEST_F(host_mm, split_thp_stays_4k_until_collapsed)
{
	struct kmmu_vm_stats st;

	if (!is_user())
		SKIP(return, "the host model's operations: the kernel does these at its own times");
	pass(_metadata, self, THP_GPA, THP_SIZE, true, 2);
	ASSERT_EQ(0, kmmu_vm_stats(self->vm, &st));
	ASSERT_EQ(2, st.pages_2m);

	ASSERT_EQ(0, kmmu_host_mm(KMMU_HOST_THP_SPLIT, self->thp.addr, SZ_2M));
	pass(_metadata, self, THP_GPA, THP_SIZE, true, 3);
	ASSERT_EQ(0, kmmu_vm_stats(self->vm, &st));
	EXPECT_EQ(512, st.pages_4k);
	EXPECT_EQ(1, st.pages_2m);

	/* Logging on and off: the 4K table may not be rebuilt as a 2M leaf. */
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 1, KMMU_MEM_LOG_DIRTY_PAGES, THP_GPA,
					 THP_SIZE, self->thp.addr));
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 1, 0, THP_GPA, THP_SIZE, self->thp.addr));
	pass(_metadata, self, THP_GPA, THP_SIZE, false, 0);
	ASSERT_EQ(0, kmmu_vm_stats(self->vm, &st));
	EXPECT_EQ(512, st.pages_4k);
	EXPECT_EQ(1, st.pages_2m);

	ASSERT_EQ(0, kmmu_host_mm(KMMU_HOST_THP_COLLAPSE, self->thp.addr, SZ_2M));
	expect_same(_metadata, self, self->thp.addr, THP_GPA, THP_SIZE, 3);
	ASSERT_EQ(0, kmmu_vm_stats(self->vm, &st));
	EXPECT_EQ(0, st.pages_4k);
	EXPECT_EQ(2, st.pages_2m);
}

TEST_HARNESS_MAIN
