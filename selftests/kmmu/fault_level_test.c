// SPDX-License-Identifier: GPL-2.0
/*
 * The mapping level the fault path chooses: as large as the host page, the
 * slot's edges, the alignment of its userspace address and the VM's
 * max_level allow; and the bits of the leaf SPTEs it installs, read back
 * with KMMU_GET_SPTE, in every SPTE format.
 */
#include "test_util.h"

/* 1G aligned, so every backing's pages can line up with guest pages. */
#define LEVEL_GPA	0x100000000ULL

/* What guest writes store (xor the gpa, so each word is different). */
#define WRITE_VALUE	0x5700000000000000ULL

/*
 * SPTE bits as kmod/core/spte.h lays them out after the SDM and the APM
 * (the tests see the core only through selftests/lib).  Bit 11 (shadow
 * present) and the pfn in 12-50 are shared; the refcounted software bit
 * says the pfn has a struct page whose A/D state kmmu may update.
 */
#define SPTE_PRESENT		(1ULL << 11)
#define SPTE_PFN_MASK		(((1ULL << 51) - 1) & ~0xfffULL)
#define SPTE_LARGE		(1ULL << 7)	/* EPT bit 7, NPT PS */
#define SPTE_WRITABLE		(1ULL << 1)	/* EPT W, NPT RW */

#define EPT_R			(1ULL << 0)
#define EPT_X			(1ULL << 2)
#define EPT_MT_SHIFT		3
#define EPT_MT_WB		6
#define EPT_IPAT		(1ULL << 6)
#define EPT_A			(1ULL << 8)
#define EPT_D			(1ULL << 9)
#define EPT_REFCOUNTED		(1ULL << 59)
#define EPT_SUPPRESS_VE		(1ULL << 63)

#define NPT_P			(1ULL << 0)
#define NPT_US			(1ULL << 2)
#define NPT_PWT_PCD		(3ULL << 3)
#define NPT_A			(1ULL << 5)
#define NPT_D			(1ULL << 6)
#define NPT_REFCOUNTED		(1ULL << 58)
#define NPT_NX			(1ULL << 63)

/*
 * In this harness ASSERT_*() and EXPECT_*() expand to two statements, so
 * a loop or an if around one takes braces or it does not bail out in time.
 */

FIXTURE(level) {
	struct kmmu_vm *vm;
	struct kmmu_vcpu *vcpu;
	struct kmmu_mem mem;
};

FIXTURE_VARIANT(level) {
	struct kmmu_vm_config cfg;
};

KMMU_ADD_FORMAT_VARIANTS(level);

/* Each test makes its VM itself: some need another max_level. */
FIXTURE_SETUP(level)
{
}

FIXTURE_TEARDOWN(level)
{
	kmmu_vm_free(self->vm);
	kmmu_mem_free(&self->mem);
	EXPECT_EQ(0, kmmu_lib_leak_check());
}

static uint64_t level_bytes(int level)
{
	return SZ_4K << (9 * (level - 1));
}

/* Accesses in one pass of a stride workload, as the vCPU counts them. */
static uint64_t nr_strides(uint64_t size, uint64_t stride)
{
	return (size - sizeof(uint64_t)) / stride + 1;
}

static uint64_t *word(void *base, uint64_t off)
{
	return (uint64_t *)((uint8_t *)base + off);
}

/* Exact levels and counts: the host leaves the memory alone (test_util.h). */
static bool host_quiet(void)
{
	return kmmu_host_quiet();
}

static void vm_start(struct __test_metadata *_metadata, FIXTURE_DATA(level) *self,
		     const struct kmmu_vm_config *variant_cfg, uint32_t max_level)
{
	struct kmmu_vm_config cfg = *variant_cfg;

	cfg.max_level = max_level;
	KMMU_VM_CREATE(&cfg, &self->vm);
	ASSERT_EQ(0, kmmu_vcpu_create(self->vm, 0, &self->vcpu));
}

/*
 * Memory of @backing, then a VM.  SKIP when the host has no such memory:
 * huge pages are only there when someone reserved them.
 */
#define LEVEL_SETUP(_backing, _size, _max_level)				\
	do {									\
		int __ret;							\
										\
		KMMU_REQUIRE_BACKEND();						\
		__ret = kmmu_mem_alloc(&self->mem, (_backing), (_size));	\
		if (__ret == -EOPNOTSUPP)					\
			SKIP(return, "no %s memory on this host (huge pages not reserved?)", \
			     kmmu_backing_name(_backing));			\
		ASSERT_EQ(0, __ret);						\
		vm_start(_metadata, self, &variant->cfg, (_max_level));		\
	} while (0)

/*
 * One write every @stride bytes of [gpa, gpa + size), each of a value the
 * host then finds at exactly that word of @hva.
 */
static struct kmmu_run write_stride(struct __test_metadata *_metadata,
				    FIXTURE_DATA(level) *self, uint64_t gpa, void *hva,
				    uint64_t size, uint64_t stride)
{
	struct kmmu_workload wl = {
		.gpa = gpa,
		.size = size,
		.stride = stride,
		.iterations = 1,
		.value = WRITE_VALUE,
		.pattern = KMMU_PATTERN_STRIDE,
		.write_percent = 100,
		.flags = KMMU_WL_XOR_GPA,
	};
	struct kmmu_run run;
	uint64_t off;

	ASSERT_EQ(0, kmmu_vcpu_run_workload(self->vcpu, &wl, &run));
	ASSERT_EQ(KMMU_EXIT_DONE, run.exit_reason);
	EXPECT_EQ(nr_strides(size, stride), run.accesses);
	for (off = 0; off < size; off += stride) {
		ASSERT_EQ(WRITE_VALUE ^ (gpa + off), *word(hva, off));
	}
	return run;
}

/*
 * The pages of each size the VM maps now must be exactly these; on dev, at
 * most these, as the host may have taken some away (see read_leaf()).
 */
static void expect_pages(struct __test_metadata *_metadata, FIXTURE_DATA(level) *self,
			 uint64_t n4k, uint64_t n2m, uint64_t n1g)
{
	struct kmmu_vm_stats st;

	ASSERT_EQ(0, kmmu_vm_stats(self->vm, &st));
	if (host_quiet()) {
		EXPECT_EQ(n4k, st.pages_4k);
		EXPECT_EQ(n2m, st.pages_2m);
		EXPECT_EQ(n1g, st.pages_1g);
	} else {
		EXPECT_GE(n4k, st.pages_4k);
		EXPECT_GE(n2m, st.pages_2m);
		EXPECT_GE(n1g, st.pages_1g);
	}
}

/*
 * Walk @gpa.  On dev the host may age or migrate the page at any moment (the
 * QEMU bench also runs the suite under memory pressure), which clears A or
 * zaps the leaf: there, a leaf that is not present and accessed is touched
 * again, the way the test first touched it, and read anew a few times
 * before the caller judges it.  The user backend has no such noise: one read.
 */
static void read_leaf(struct __test_metadata *_metadata, FIXTURE_DATA(level) *self,
		      uint64_t gpa, bool written, struct kmmu_spte_query *q)
{
	bool ept = kmmu_vm_format(self->vm) == KMMU_SPTE_FORMAT_EPT;
	uint64_t accessed = ept ? EPT_A : NPT_A;
	struct kmmu_workload wl = kmmu_wl_seq(gpa, 8, written ? 100 : 0, WRITE_VALUE);
	struct kmmu_run run;
	int try;

	if (ept && (self->vm->cfg.flags & KMMU_VM_AD_DISABLED))
		accessed = EPT_R;	/* access tracking clears R/W/X instead */
	wl.flags = KMMU_WL_XOR_GPA;
	for (try = 0; ; try++) {
		ASSERT_EQ(0, kmmu_vm_get_spte(self->vm, gpa, 0, q));
		if (host_quiet() || try == 5 ||
		    ((q->sptes[q->level] & SPTE_PRESENT) && (q->sptes[q->level] & accessed)))
			return;
		ASSERT_EQ(0, kmmu_vcpu_run_workload(self->vcpu, &wl, &run));
		ASSERT_EQ(KMMU_EXIT_DONE, run.exit_reason);
	}
}

/*
 * The leaf that maps @gpa, at @level (0: any level; a dev host's THP is
 * the kernel's choice), backed by @hva.  Checks every bit of a leaf made
 * by a fault on a writable slot of refcounted host memory; @written says
 * whether the guest wrote through it.
 */
static void expect_leaf(struct __test_metadata *_metadata, FIXTURE_DATA(level) *self,
		       const struct kmmu_vm_config *cfg, uint64_t gpa, void *hva, int level,
		       bool written)
{
	bool ept = kmmu_vm_format(self->vm) == KMMU_SPTE_FORMAT_EPT;
	bool ad = !ept || !(cfg->flags & KMMU_VM_AD_DISABLED);
	struct kmmu_spte_query q;
	uint64_t spte, pfn, pages, host_pfn;
	bool aged;

	read_leaf(_metadata, self, gpa, written, &q);
	if (!level) {
		TH_LOG("gpa %#llx: the host gave a level-%u leaf", (unsigned long long)gpa,
		       q.level);
		ASSERT_LE(KMMU_LEVEL_4K, q.level);
		ASSERT_GE(KMMU_LEVEL_2M, q.level);
		level = q.level;
	}
	ASSERT_EQ(level, q.level) {
		TH_LOG("gpa %#llx", (unsigned long long)gpa);
	}
	spte = q.sptes[level];
	pfn = (spte & SPTE_PFN_MASK) >> 12;
	pages = level_bytes(level) / SZ_4K;
	/*
	 * A busy host's aging may clear A (or, without A/D, make the leaf
	 * access-tracked) between the access and the query, and the vCPU's
	 * TLB then keeps serving the page without a walk to set either back,
	 * as a CPU's does: read_leaf() gave up.  The bits aging changes are
	 * then not the fault's to check.
	 */
	aged = !host_quiet() && !(spte & (!ept ? NPT_A : ad ? EPT_A : EPT_R));
	if (aged)
		TH_LOG("gpa %#llx: aged by the host after the access", (unsigned long long)gpa);

	ASSERT_TRUE(spte & SPTE_PRESENT);
	EXPECT_NE(0, pfn);
	/* A huge leaf maps a naturally aligned run of pfns. */
	EXPECT_EQ(0, pfn & (pages - 1));
	/* The leaf maps the host's page. */
	ASSERT_EQ(0, kmmu_host_pfn(hva, &host_pfn));
	EXPECT_EQ(host_pfn & ~(pages - 1), pfn);
	EXPECT_EQ(level > KMMU_LEVEL_4K, !!(spte & SPTE_LARGE));
	/* The host mapping is writable: reads map writable too, as in KVM. */
	if (!aged)
		EXPECT_TRUE(spte & SPTE_WRITABLE);

	if (ept) {
		if (!aged) {
			EXPECT_TRUE(spte & EPT_R);
			/* TDP maps with every access allowed: the guest page tables decide. */
			EXPECT_TRUE(spte & EPT_X);
			EXPECT_EQ(ad, !!(spte & EPT_A));
		}
		EXPECT_EQ(EPT_MT_WB, (spte >> EPT_MT_SHIFT) & 7);
		EXPECT_TRUE(spte & EPT_IPAT);
		EXPECT_TRUE(spte & EPT_REFCOUNTED);
		EXPECT_EQ(ad && written, !!(spte & EPT_D));
		if (!(cfg->flags & KMMU_VM_NONPRESENT_SUPPRESS_VE)) {
			EXPECT_FALSE(spte & EPT_SUPPRESS_VE);
		}
	} else {
		EXPECT_TRUE(spte & NPT_P);
		/* Nested walks are user accesses. */
		EXPECT_TRUE(spte & NPT_US);
		EXPECT_FALSE(spte & NPT_NX);
		EXPECT_EQ(0, spte & NPT_PWT_PCD);
		EXPECT_TRUE(spte & NPT_REFCOUNTED);
		if (!aged)
			EXPECT_TRUE(spte & NPT_A);
		EXPECT_EQ(written, !!(spte & NPT_D));
	}
}

/* A walk of @gpa ends at @level on exactly the VM's non-present value. */
static void expect_nonpresent(struct __test_metadata *_metadata, FIXTURE_DATA(level) *self,
			      const struct kmmu_vm_config *cfg, uint64_t gpa, uint32_t level)
{
	uint64_t nonpresent = (cfg->flags & KMMU_VM_NONPRESENT_SUPPRESS_VE) ? EPT_SUPPRESS_VE : 0;
	struct kmmu_spte_query q;

	ASSERT_EQ(0, kmmu_vm_get_spte(self->vm, gpa, 0, &q));
	EXPECT_EQ(level, q.level) {
		TH_LOG("gpa %#llx", (unsigned long long)gpa);
	}
	EXPECT_EQ(nonpresent, q.sptes[q.level]) {
		TH_LOG("gpa %#llx", (unsigned long long)gpa);
	}
}

/*
 * A slot over @backing, gpa and userspace address both aligned like the
 * backing's pages; one write every @stride bytes; leaves at @level (0 on
 * a dev host's THP, where the kernel decides), each covering whole pages of
 * the backing.
 */
static void check_backing(struct __test_metadata *_metadata, FIXTURE_DATA(level) *self,
			  const struct kmmu_vm_config *cfg, uint64_t size, uint64_t stride,
			  int level)
{
	const uint64_t probes[] = {
		0, SZ_4K, 2 * SZ_4K, size / 2 - SZ_4K, size / 2, size / 2 + 5 * SZ_4K,
		size - SZ_4K,
	};
	uint8_t *hva = self->mem.addr;
	struct kmmu_run run;
	uint64_t leaves;
	unsigned int i;

	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 0, 0, LEVEL_GPA, size, hva));
	run = write_stride(_metadata, self, LEVEL_GPA, hva, size, stride);

	for (i = 0; i < ARRAY_SIZE(probes); i++)
		expect_leaf(_metadata, self, cfg, LEVEL_GPA + probes[i], hva + probes[i], level,
			    true);
	if (!level)
		return;

	/* Every access lands in a leaf of its own, or every leaf is touched. */
	leaves = stride < level_bytes(level) ? size / level_bytes(level) : nr_strides(size, stride);
	expect_pages(_metadata, self, level == KMMU_LEVEL_4K ? leaves : 0,
		     level == KMMU_LEVEL_2M ? leaves : 0, level == KMMU_LEVEL_1G ? leaves : 0);
	/* One fault per leaf: none retried or repeated (no host noise in the model). */
	if (host_quiet()) {
		EXPECT_EQ(leaves, run.faults);
	} else {
		EXPECT_LE(leaves, run.faults);
	}
}

TEST_F(level, anon_maps_4k)
{
	LEVEL_SETUP(KMMU_BACKING_ANON, 64 * SZ_4K, 0);
	check_backing(_metadata, self, &variant->cfg, 64 * SZ_4K, SZ_4K, KMMU_LEVEL_4K);
}

TEST_F(level, thp_maps_2m)
{
	LEVEL_SETUP(KMMU_BACKING_ANON_THP, 4 * SZ_2M, 0);
	/*
	 * The user backend models THP as 2M everywhere it is aligned; a
	 * kernel may fall back to 4K pages (THP off, memory fragmented).
	 */
	check_backing(_metadata, self, &variant->cfg, 4 * SZ_2M, SZ_4K,
		      host_quiet() ? KMMU_LEVEL_2M : 0);
}

TEST_F(level, hugetlb_2m_maps_2m)
{
	LEVEL_SETUP(KMMU_BACKING_HUGETLB_2M, 4 * SZ_2M, 0);
	check_backing(_metadata, self, &variant->cfg, 4 * SZ_2M, SZ_4K, KMMU_LEVEL_2M);
}

TEST_F(level, hugetlb_1g_maps_1g)
{
	LEVEL_SETUP(KMMU_BACKING_HUGETLB_1G, SZ_1G, 0);
	/* A few writes are enough: the first maps the whole page. */
	check_backing(_metadata, self, &variant->cfg, SZ_1G, 64 * SZ_2M, KMMU_LEVEL_1G);
}

/*
 * Host huge pages that cannot line up with guest huge pages (the slot's
 * userspace address is 4K off) are mapped 4K by 4K.
 */
TEST_F(level, hva_offset_maps_4k)
{
	const uint64_t size = 2 * SZ_2M;
	uint8_t *hva;
	uint64_t off;

	LEVEL_SETUP(KMMU_BACKING_ANON_THP, size + SZ_2M, 0);
	hva = (uint8_t *)self->mem.addr + SZ_4K;
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 0, 0, LEVEL_GPA, size, hva));
	write_stride(_metadata, self, LEVEL_GPA, hva, size, SZ_4K);
	for (off = 0; off < size; off += SZ_2M / 4) {
		expect_leaf(_metadata, self, &variant->cfg, LEVEL_GPA + off, hva + off,
			    KMMU_LEVEL_4K, true);
	}
	expect_leaf(_metadata, self, &variant->cfg, LEVEL_GPA + size - SZ_4K, hva + size - SZ_4K,
		    KMMU_LEVEL_4K, true);
	expect_pages(_metadata, self, size / SZ_4K, 0, 0);
}

/*
 * A slot from 1M to 7M of four 2M host pages: the huge pages it covers in
 * part (0-2M, 6-8M) are mapped 4K, the two it covers whole are 2M.
 */
TEST_F(level, slot_edges_inside_huge_pages)
{
	const uint64_t start = SZ_2M / 2, size = 3 * SZ_2M;
	const struct {
		uint64_t off;	/* from the first 2M boundary below the slot */
		int level;
	} probes[] = {
		{ start, KMMU_LEVEL_4K },
		{ SZ_2M - SZ_4K, KMMU_LEVEL_4K },
		{ SZ_2M, KMMU_LEVEL_2M },
		{ SZ_2M + SZ_2M / 2 + SZ_4K, KMMU_LEVEL_2M },
		{ 2 * SZ_2M, KMMU_LEVEL_2M },
		{ 3 * SZ_2M - SZ_4K, KMMU_LEVEL_2M },
		{ 3 * SZ_2M, KMMU_LEVEL_4K },
		{ start + size - SZ_4K, KMMU_LEVEL_4K },
	};
	uint8_t *base;
	unsigned int i;

	LEVEL_SETUP(KMMU_BACKING_HUGETLB_2M, 4 * SZ_2M, 0);
	base = self->mem.addr;
	/* gpa and hva move together, so only the slot's edges stop huge pages. */
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 0, 0, LEVEL_GPA + start, size, base + start));
	write_stride(_metadata, self, LEVEL_GPA + start, base + start, size, SZ_4K);
	for (i = 0; i < ARRAY_SIZE(probes); i++) {
		expect_leaf(_metadata, self, &variant->cfg, LEVEL_GPA + probes[i].off,
			    base + probes[i].off, probes[i].level, true);
	}
	expect_pages(_metadata, self, 2 * (SZ_2M / 2) / SZ_4K, 2, 0);
	/* Outside the slot nothing was mapped. */
	expect_nonpresent(_metadata, self, &variant->cfg, LEVEL_GPA + start - SZ_4K,
			  KMMU_LEVEL_4K);
	expect_nonpresent(_metadata, self, &variant->cfg, LEVEL_GPA + start + size,
			  KMMU_LEVEL_4K);
}

/* A slot that starts 2M into a 1G host page gets 2M leaves, not 1G. */
TEST_F(level, slot_edge_inside_1g_page)
{
	const uint64_t start = SZ_2M, size = SZ_1G - SZ_2M, stride = 64 * SZ_2M;
	uint8_t *base;
	uint64_t off;

	LEVEL_SETUP(KMMU_BACKING_HUGETLB_1G, SZ_1G, 0);
	base = self->mem.addr;
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 0, 0, LEVEL_GPA + start, size, base + start));
	write_stride(_metadata, self, LEVEL_GPA + start, base + start, size, stride);
	for (off = start; off < start + size; off += stride) {
		expect_leaf(_metadata, self, &variant->cfg, LEVEL_GPA + off + SZ_4K,
			    base + off + SZ_4K, KMMU_LEVEL_2M, true);
	}
	expect_pages(_metadata, self, 0, nr_strides(size, stride), 0);
}

/*
 * A moved slot gets limits of its own: 4K off its old gpa, host and guest
 * huge pages no longer line up; moved to an aligned gpa they do again.
 * The mappings of the old place go away with it, stats included.
 */
TEST_F(level, move_recomputes_huge_page_limits)
{
	const uint64_t size = 2 * SZ_2M, moved = LEVEL_GPA + SZ_1G + SZ_4K;
	const uint64_t back = LEVEL_GPA + 2 * SZ_1G;
	uint8_t *hva;

	LEVEL_SETUP(KMMU_BACKING_HUGETLB_2M, size, 0);
	hva = self->mem.addr;
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 0, 0, LEVEL_GPA, size, hva));
	write_stride(_metadata, self, LEVEL_GPA, hva, size, SZ_4K);
	expect_leaf(_metadata, self, &variant->cfg, LEVEL_GPA + SZ_2M, hva + SZ_2M,
		    KMMU_LEVEL_2M, true);
	expect_pages(_metadata, self, 0, 2, 0);

	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 0, 0, moved, size, hva));
	expect_pages(_metadata, self, 0, 0, 0);
	expect_nonpresent(_metadata, self, &variant->cfg, LEVEL_GPA, KMMU_LEVEL_2M);
	write_stride(_metadata, self, moved, hva, size, SZ_4K);
	expect_leaf(_metadata, self, &variant->cfg, moved + SZ_2M, hva + SZ_2M,
		    KMMU_LEVEL_4K, true);
	expect_pages(_metadata, self, size / SZ_4K, 0, 0);

	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 0, 0, back, size, hva));
	expect_pages(_metadata, self, 0, 0, 0);
	write_stride(_metadata, self, back, hva, size, SZ_4K);
	expect_leaf(_metadata, self, &variant->cfg, back, hva, KMMU_LEVEL_2M, true);
	expect_leaf(_metadata, self, &variant->cfg, back + size - SZ_4K, hva + size - SZ_4K,
		    KMMU_LEVEL_2M, true);
	expect_pages(_metadata, self, 0, 2, 0);
}

/* The VM's max_level caps what a 1G host page gets. */
static void check_max_level(struct __test_metadata *_metadata, FIXTURE_DATA(level) *self,
			    const struct kmmu_vm_config *cfg, int level)
{
	const uint64_t stride = 64 * SZ_2M;
	uint8_t *hva = self->mem.addr;
	uint64_t off, n = nr_strides(SZ_1G, stride);

	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 0, 0, LEVEL_GPA, SZ_1G, hva));
	write_stride(_metadata, self, LEVEL_GPA, hva, SZ_1G, stride);
	for (off = 0; off < SZ_1G; off += stride) {
		expect_leaf(_metadata, self, cfg, LEVEL_GPA + off, hva + off, level, true);
	}
	expect_pages(_metadata, self, level == KMMU_LEVEL_4K ? n : 0,
		     level == KMMU_LEVEL_2M ? n : 0, 0);
	/* The untouched rest of each leaf's table was left alone. */
	expect_nonpresent(_metadata, self, cfg, LEVEL_GPA + level_bytes(level), level);
}

TEST_F(level, max_level_2m_on_1g_page)
{
	LEVEL_SETUP(KMMU_BACKING_HUGETLB_1G, SZ_1G, KMMU_LEVEL_2M);
	check_max_level(_metadata, self, &variant->cfg, KMMU_LEVEL_2M);
}

TEST_F(level, max_level_4k_on_1g_page)
{
	LEVEL_SETUP(KMMU_BACKING_HUGETLB_1G, SZ_1G, KMMU_LEVEL_4K);
	check_max_level(_metadata, self, &variant->cfg, KMMU_LEVEL_4K);
}

/*
 * Entries a fault never touched hold exactly the VM's non-present value
 * (suppress-#VE when asked for, else 0), at every level of the walk: the
 * tables were filled with it when they were made.
 */
TEST_F(level, untouched_entries_are_nonpresent)
{
	const uint64_t size = 64 * SZ_4K;

	LEVEL_SETUP(KMMU_BACKING_ANON, size, 0);
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 0, 0, LEVEL_GPA, size, self->mem.addr));
	write_stride(_metadata, self, LEVEL_GPA, self->mem.addr, 8 * SZ_4K, SZ_4K);
	expect_leaf(_metadata, self, &variant->cfg, LEVEL_GPA + 7 * SZ_4K,
		    (uint8_t *)self->mem.addr + 7 * SZ_4K, KMMU_LEVEL_4K, true);

	/* In the slot, never accessed: same table as the leaves. */
	expect_nonpresent(_metadata, self, &variant->cfg, LEVEL_GPA + 8 * SZ_4K, KMMU_LEVEL_4K);
	expect_nonpresent(_metadata, self, &variant->cfg, LEVEL_GPA + size - SZ_4K,
			  KMMU_LEVEL_4K);
	/*
	 * Next 2M, next 1G, next 512G: the walk stops one level higher each
	 * time.  With hardware vCPUs the next 512G holds the private slot
	 * (KMMU_HW_SLOT_GPA): the 512G after it, then.
	 */
	expect_nonpresent(_metadata, self, &variant->cfg, LEVEL_GPA + SZ_2M, KMMU_LEVEL_2M);
	expect_nonpresent(_metadata, self, &variant->cfg, LEVEL_GPA + SZ_1G, KMMU_LEVEL_1G);
	expect_nonpresent(_metadata, self, &variant->cfg,
			  LEVEL_GPA + (kmmu_backend_hw() ? 1024 : 512) * SZ_1G, 4);
}

/* The same next to a 2M leaf: the rest of its level-2 table. */
TEST_F(level, untouched_entries_next_to_2m_leaf)
{
	LEVEL_SETUP(KMMU_BACKING_HUGETLB_2M, 2 * SZ_2M, 0);
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 0, 0, LEVEL_GPA, 2 * SZ_2M, self->mem.addr));
	write_stride(_metadata, self, LEVEL_GPA, self->mem.addr, SZ_2M, SZ_2M);
	expect_leaf(_metadata, self, &variant->cfg, LEVEL_GPA, self->mem.addr, KMMU_LEVEL_2M,
		    true);
	expect_nonpresent(_metadata, self, &variant->cfg, LEVEL_GPA + SZ_2M, KMMU_LEVEL_2M);
	expect_nonpresent(_metadata, self, &variant->cfg, LEVEL_GPA + 511 * SZ_2M, KMMU_LEVEL_2M);
	expect_pages(_metadata, self, 0, 1, 0);
}

/*
 * A read maps the page writable (the host mapping is), accessed but not
 * dirty; the first write then needs no fault, and the CPU sets D.
 */
TEST_F(level, read_maps_writable_clean)
{
	const uint64_t size = 8 * SZ_4K;
	struct kmmu_workload wl = kmmu_wl_seq(LEVEL_GPA, size, 0, 0);
	struct kmmu_run run;
	uint64_t off, sum = 0;

	LEVEL_SETUP(KMMU_BACKING_ANON, size, 0);
	/* Written by the host first: a dev host then has writable pages, not the zero page. */
	for (off = 0; off < size; off += SZ_4K) {
		*word(self->mem.addr, off) = 0x42 + off;
		sum += 0x42 + off;
	}
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 0, 0, LEVEL_GPA, size, self->mem.addr));
	ASSERT_EQ(0, kmmu_vcpu_run_workload(self->vcpu, &wl, &run));
	ASSERT_EQ(KMMU_EXIT_DONE, run.exit_reason);
	EXPECT_EQ(sum, run.read_sum);
	for (off = 0; off < size; off += SZ_4K) {
		expect_leaf(_metadata, self, &variant->cfg, LEVEL_GPA + off,
			    (uint8_t *)self->mem.addr + off, KMMU_LEVEL_4K, false);
	}

	run = write_stride(_metadata, self, LEVEL_GPA, self->mem.addr, size, SZ_4K);
	if (host_quiet()) {
		EXPECT_EQ(0, run.faults);
	}
	for (off = 0; off < size; off += SZ_4K) {
		expect_leaf(_metadata, self, &variant->cfg, LEVEL_GPA + off,
			    (uint8_t *)self->mem.addr + off, KMMU_LEVEL_4K, true);
	}
	expect_pages(_metadata, self, size / SZ_4K, 0, 0);
}

TEST_HARNESS_MAIN
