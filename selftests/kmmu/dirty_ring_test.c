// SPDX-License-Identifier: GPL-2.0
/*
 * Per-vCPU dirty rings (KMMU_CAP_DIRTY_LOG_RING) with KVM's semantics: the
 * capability's bad sizes and bad moments, the bitmap ioctls a VM with rings
 * refuses, the mmap of a vCPU's ring; then what the rings hold: each page a
 * vCPU dirties, once, in order, in that vCPU's ring, again only after a
 * reset; the full-ring exit and what comes after it; entries userspace
 * garbled before the reset, and resets of part of what was pushed.
 */
#include <sys/mman.h>
#include <unistd.h>

#include "test_util.h"

/* A logging slot of 1000 pages, so that four full rings of 256 fit in it. */
#define LOG_SLOT	0
#define LOG_GPA		0x100000000ULL
#define LOG_PAGES	1000
#define LOG_SIZE	(LOG_PAGES * SZ_4K)
#define LOG_LONGS	((LOG_PAGES + 63) / 64)

#define AS1(id)		((1u << 16) | (id))

/* A logging slot of address space 1, at the same gpa: only the as_id tells them apart. */
#define AS1_SLOT	AS1(3)
#define AS1_PAGES	16

/* A slot that never logs. */
#define PLAIN_SLOT	2
#define PLAIN_GPA	0x200000000ULL
#define PLAIN_PAGES	16

#define MEM_PAGES	(LOG_PAGES + AS1_PAGES + PLAIN_PAGES)

/* What CHECK_EXTENSION reports: KMMU_DIRTY_RING_MAX_ENTRIES entries. */
#define RING_MAX_BYTES	(KMMU_DIRTY_RING_MAX_ENTRIES * sizeof(struct kmmu_dirty_gfn))
/* 256 entries. */
#define SMALL_RING	SZ_4K
/* Entries kmmu keeps free below a ring's size (KMMU_DIRTY_RING_RSVD_ENTRIES). */
#define RING_RSVD	8

#define DIRTY		KMMU_DIRTY_GFN_F_DIRTY
#define RESET		KMMU_DIRTY_GFN_F_RESET

#define WRPROT		KMMU_DIRTY_LOG_MODE_WRPROT
#define DBIT		KMMU_DIRTY_LOG_MODE_DBIT

#define NO_DBIT		"D-bit mode needs A/D bits (ENABLE_CAP refused it)"
#define NO_DBIT_HW	"hw backend: D-bit mode with rings needs PML (ENABLE_CAP refused it)"

/* Writes store stamp(round) ^ gpa (KMMU_WL_XOR_GPA): a word tells which round wrote it. */
static uint64_t stamp(unsigned int round)
{
	return 0x5d1e0000ULL << 32 | round;
}

/* Where each slot is, in the guest and in the test's memory. */
static const struct slot_def {
	uint32_t slot;
	uint64_t gpa;
	unsigned int pages;
	unsigned int mem_page;	/* its first page in self->mem */
	bool logs;
} slot_defs[] = {
	{ LOG_SLOT, LOG_GPA, LOG_PAGES, 0, true },
	{ AS1_SLOT, LOG_GPA, AS1_PAGES, LOG_PAGES, true },
	{ PLAIN_SLOT, PLAIN_GPA, PLAIN_PAGES, LOG_PAGES + AS1_PAGES, false },
};

static const struct slot_def *slot_def(uint32_t slot)
{
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(slot_defs); i++) {
		if (slot_defs[i].slot == slot)
			return &slot_defs[i];
	}
	return NULL;
}

/* A guest page: its slot, as the ring names it, and its offset in the slot. */
struct gpage {
	uint32_t slot;
	unsigned int page;
};

static uint64_t page_gpa(struct gpage gp)
{
	return slot_def(gp.slot)->gpa + gp.page * SZ_4K;
}

/* Entries read from a ring, in order. */
#define MAX_SEEN	512

struct seen {
	unsigned int n;
	struct {
		uint32_t slot;
		uint64_t offset;
	} e[MAX_SEEN];
};

static void record(void *arg, uint32_t slot, uint64_t offset)
{
	struct seen *s = arg;

	if (s->n < MAX_SEEN) {
		s->e[s->n].slot = slot;
		s->e[s->n].offset = offset;
	}
	s->n++;
}

FIXTURE(dirty_ring) {
	struct kmmu_vm *vm;
	struct kmmu_vm *other;		/* a second VM, for what needs one */
	struct kmmu_vcpu *vcpu;		/* vCPU 0 of vm */
	struct kmmu_mem mem;
	struct seen seen;
};

FIXTURE_VARIANT(dirty_ring) {
	struct kmmu_vm_config cfg;
};

KMMU_ADD_FORMAT_VARIANTS(dirty_ring);

FIXTURE_SETUP(dirty_ring)
{
	KMMU_REQUIRE_BACKEND();
	/* No vCPU yet: the ring size has to come first. */
	KMMU_VM_CREATE(&variant->cfg, &self->vm);
	ASSERT_EQ(0, kmmu_mem_alloc(&self->mem, KMMU_BACKING_ANON, MEM_PAGES * SZ_4K));
	/* Writable host pages on dev, so no fault sees the zero page; and unwritten reads 0. */
	memset(self->mem.addr, 0, self->mem.size);
}

FIXTURE_TEARDOWN(dirty_ring)
{
	kmmu_vm_free(self->vm);
	kmmu_vm_free(self->other);
	kmmu_mem_free(&self->mem);
	/*
	 * EXPECT, not ASSERT: after a failed ASSERT in the body the 6.1
	 * harness still has its trigger set, and an ASSERT here would jump
	 * back into this teardown for ever.
	 */
	EXPECT_EQ(0, kmmu_lib_leak_check());
}

/* Exact rings: the host leaves the memory alone (test_util.h). */
static bool host_quiet(void)
{
	return kmmu_host_quiet();
}

static uint64_t *page_word(FIXTURE_DATA(dirty_ring) *self, struct gpage gp)
{
	const struct slot_def *d = slot_def(gp.slot);

	return (uint64_t *)((uint8_t *)self->mem.addr + (d->mem_page + gp.page) * SZ_4K);
}

/* The three slots, logging where they log, in @vm. */
static int set_slots(FIXTURE_DATA(dirty_ring) *self, struct kmmu_vm *vm)
{
	unsigned int i;
	int ret;

	for (i = 0; i < ARRAY_SIZE(slot_defs); i++) {
		const struct slot_def *d = &slot_defs[i];

		ret = kmmu_vm_set_memslot(vm, d->slot, d->logs ? KMMU_MEM_LOG_DIRTY_PAGES : 0,
					  d->gpa, d->pages * SZ_4K,
					  (uint8_t *)self->mem.addr + d->mem_page * SZ_4K);
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * Rings of @bytes, dirty logging in @mode, the slots, and vCPU 0 with its
 * ring mapped; NULL, or why the caller must skip.  D-bit mode needs A/D
 * bits, and on hardware vCPUs a PML-like log AMD's CPUs do not have: in
 * either case ENABLE_CAP refuses it.
 */
static const char *ring_vm_setup(struct __test_metadata *_metadata, FIXTURE_DATA(dirty_ring) *self,
			  const FIXTURE_VARIANT(dirty_ring) *variant, uint64_t bytes,
			  uint32_t mode)
{
	unsigned int i;

	ASSERT_EQ(0, kmmu_vm_enable_cap(self->vm, KMMU_CAP_DIRTY_LOG_RING, bytes));
	if (mode == DBIT && (variant->cfg.flags & KMMU_VM_AD_DISABLED)) {
		EXPECT_EQ(-EINVAL, kmmu_vm_enable_cap(self->vm, KMMU_CAP_DIRTY_LOG_MODE, DBIT));
		return NO_DBIT;
	}
	if (mode == DBIT && kmmu_backend_hw()) {
		EXPECT_EQ(-EOPNOTSUPP, kmmu_vm_enable_cap(self->vm, KMMU_CAP_DIRTY_LOG_MODE, DBIT));
		return NO_DBIT_HW;
	}
	ASSERT_EQ(0, kmmu_vm_enable_cap(self->vm, KMMU_CAP_DIRTY_LOG_MODE, mode));
	ASSERT_EQ(0, set_slots(self, self->vm));
	ASSERT_EQ(0, kmmu_vcpu_create(self->vm, 0, &self->vcpu));
	ASSERT_NE(NULL, self->vcpu->ring);
	ASSERT_EQ(bytes / sizeof(struct kmmu_dirty_gfn), self->vcpu->ring_entries);
	for (i = 0; i < self->vcpu->ring_entries; i++) {
		ASSERT_EQ(0, self->vcpu->ring[i].flags);
	}
	return NULL;
}

/* Entry @i of @vcpu's ring, counting every entry ever pushed. */
static struct kmmu_dirty_gfn *ring_entry(struct kmmu_vcpu *vcpu, uint32_t i)
{
	return &vcpu->ring[i & (vcpu->ring_entries - 1)];
}

static uint32_t entry_flags(struct kmmu_vcpu *vcpu, uint32_t i)
{
	/* Acquire: pairs with kmmu's release of DIRTY after slot and offset. */
	return __atomic_load_n(&ring_entry(vcpu, i)->flags, __ATOMIC_ACQUIRE);
}

/* Collect entry @i by hand, as kmmu_vcpu_collect_dirty_ring() does. */
static void mark_reset(struct kmmu_vcpu *vcpu, uint32_t i)
{
	struct kmmu_dirty_gfn *e = ring_entry(vcpu, i);

	/* Release: kmmu reads slot and offset after it sees RESET. */
	__atomic_store_n(&e->flags, e->flags | RESET, __ATOMIC_RELEASE);
}

/* Read the entries pushed from index @from on into @s, without collecting them. */
static void peek(struct kmmu_vcpu *vcpu, uint32_t from, struct seen *s)
{
	uint32_t i;

	s->n = 0;
	for (i = 0; i < vcpu->ring_entries && (entry_flags(vcpu, from + i) & DIRTY); i++)
		record(s, ring_entry(vcpu, from + i)->slot, ring_entry(vcpu, from + i)->offset);
}

/*
 * @s holds @want, in order.  On the user backend nothing else may be in
 * it; on dev the host may zap a page, and a write after that logs it
 * again, so @want need only be found in order among what @s holds.
 */
static void expect_entries(struct __test_metadata *_metadata, const struct seen *s,
			   const struct gpage *want, unsigned int n, const char *what)
{
	unsigned int i, j = 0;

	ASSERT_GE(MAX_SEEN, s->n);
	for (i = 0; i < s->n; i++) {
		if (j < n && s->e[i].slot == want[j].slot && s->e[i].offset == want[j].page) {
			j++;
			continue;
		}
		ASSERT_FALSE(host_quiet()) {
			TH_LOG("%s: entry %u is slot %#x offset %llu, want slot %#x offset %u",
			       what, i, s->e[i].slot, (unsigned long long)s->e[i].offset,
			       j < n ? want[j].slot : 0, j < n ? want[j].page : 0);
		}
	}
	ASSERT_EQ(n, j) {
		TH_LOG("%s: only %u of %u pages found in order among %u entries", what, j, n,
		       s->n);
	}
}

/*
 * Collect @vcpu's new entries into self->seen with the library, which marks
 * each RESET; return how many.
 */
static long collect(struct __test_metadata *_metadata, FIXTURE_DATA(dirty_ring) *self,
		    struct kmmu_vcpu *vcpu)
{
	uint32_t first = vcpu->ring_fetch, i;
	long n;

	self->seen.n = 0;
	n = kmmu_vcpu_collect_dirty_ring(vcpu, record, &self->seen);
	ASSERT_EQ(n, self->seen.n);
	ASSERT_GE(MAX_SEEN, n);
	for (i = first; i != first + n; i++) {
		ASSERT_EQ(DIRTY | RESET, entry_flags(vcpu, i));
	}
	return n;
}

/* Collect @vcpu's new entries: they are @want (see expect_entries()).  Return how many. */
static long expect_ring(struct __test_metadata *_metadata, FIXTURE_DATA(dirty_ring) *self,
			struct kmmu_vcpu *vcpu, const struct gpage *want, unsigned int n,
			const char *what)
{
	long got = collect(_metadata, self, vcpu);

	expect_entries(_metadata, &self->seen, want, n, what);
	return got;
}

/*
 * KMMU_RESET_DIRTY_RINGS resets @n entries, over every vCPU; with all that
 * was collected reset, no entry is left marked RESET: kmmu handed them back.
 */
static void reset_rings(struct __test_metadata *_metadata, struct kmmu_vm *vm, long n)
{
	uint32_t i;
	int v;

	ASSERT_EQ(n, kmmu_vm_reset_dirty_rings(vm));
	for (v = 0; v < KMMU_LIB_MAX_VCPUS; v++) {
		struct kmmu_vcpu *vcpu = vm->vcpus[v];

		for (i = 0; vcpu && i < vcpu->ring_entries; i++) {
			ASSERT_FALSE(entry_flags(vcpu, i) & RESET) {
				TH_LOG("vCPU %d: entry %u still marked RESET", v, i);
			}
		}
	}
}

/* @vcpu accesses pages [first, first + n) of @slot, once each, in order. */
static void run_pages(struct __test_metadata *_metadata, struct kmmu_vcpu *vcpu, uint32_t slot,
		      unsigned int first, unsigned int n, bool write, uint64_t value)
{
	struct kmmu_workload wl = kmmu_wl_seq(page_gpa((struct gpage){ slot, first }),
					      n * SZ_4K, write ? 100 : 0, value);
	struct kmmu_run run;

	wl.flags = KMMU_WL_XOR_GPA | ((slot >> 16) ? KMMU_WL_SMM : 0);
	ASSERT_EQ(0, kmmu_vcpu_run_workload(vcpu, &wl, &run));
	ASSERT_EQ(KMMU_EXIT_DONE, run.exit_reason);
	ASSERT_EQ(n, run.accesses);
}

/* @vcpu writes round @round's stamp to each of @pages, and the words land. */
static void write_pages(struct __test_metadata *_metadata, FIXTURE_DATA(dirty_ring) *self,
			struct kmmu_vcpu *vcpu, const struct gpage *pages, unsigned int n,
			unsigned int round)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		run_pages(_metadata, vcpu, pages[i].slot, pages[i].page, 1, true, stamp(round));
		ASSERT_EQ(stamp(round) ^ page_gpa(pages[i]), *page_word(self, pages[i]));
	}
}

static void read_pages(struct __test_metadata *_metadata, struct kmmu_vcpu *vcpu,
		       const struct gpage *pages, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		run_pages(_metadata, vcpu, pages[i].slot, pages[i].page, 1, false, 0);
}

static uint64_t stat_dirty_pages(struct __test_metadata *_metadata, struct kmmu_vm *vm)
{
	struct kmmu_vm_stats st;

	ASSERT_EQ(0, kmmu_vm_stats(vm, &st));
	return st.dirty_pages;
}

/* Nothing was pushed into @vcpu's ring since the last collection (user backend). */
static void expect_ring_empty(struct __test_metadata *_metadata, struct kmmu_vcpu *vcpu,
			      const char *what)
{
	if (!host_quiet())
		return;
	ASSERT_FALSE(entry_flags(vcpu, vcpu->ring_fetch) & DIRTY) {
		TH_LOG("%s: slot %#x offset %llu was pushed", what,
		       ring_entry(vcpu, vcpu->ring_fetch)->slot,
		       (unsigned long long)ring_entry(vcpu, vcpu->ring_fetch)->offset);
	}
}

/* ---- 1. the capability and the ioctls around it ---- */

/*
 * Every bad ring size with its errno; -EBUSY while any slot logs; a failed
 * call leaves the capability free to enable; then no second enable, and
 * none once a vCPU exists.
 */
KMMU_TEST_F(dirty_ring, enable_cap_bad_input)
{
	static const struct {
		const char *what;
		uint64_t bytes;
		int err;
	} bad[] = {
		{ "0", 0, -EINVAL },
		{ "1", 1, -EINVAL },
		{ "16 (one entry)", 16, -EINVAL },
		{ "2048 (a power of two below a page)", 2048, -EINVAL },
		{ "4095", SZ_4K - 1, -EINVAL },
		{ "4097", SZ_4K + 1, -EINVAL },
		{ "3 pages", 3 * SZ_4K, -EINVAL },
		{ "max - 4096", RING_MAX_BYTES - SZ_4K, -EINVAL },
		/* Not a power of two is -EINVAL, however large. */
		{ "max + 4096", RING_MAX_BYTES + SZ_4K, -EINVAL },
		{ "2^64 - 1", ~0ULL, -EINVAL },
		{ "2 * max", 2 * RING_MAX_BYTES, -E2BIG },
		{ "2^32", 1ULL << 32, -E2BIG },
		{ "2^63", 1ULL << 63, -E2BIG },
	};
	struct kmmu_vcpu *vcpu;
	unsigned int i;

	EXPECT_EQ(RING_MAX_BYTES, kmmu_ioctl(self->vm->sys_fd, KMMU_CHECK_EXTENSION,
					     KMMU_CAP_DIRTY_LOG_RING));
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		EXPECT_EQ(bad[i].err, kmmu_vm_enable_cap(self->vm, KMMU_CAP_DIRTY_LOG_RING,
							  bad[i].bytes)) {
			TH_LOG("%s", bad[i].what);
		}
	}

	/* A slot that logs into a bitmap: no rings, in either address space. */
	ASSERT_EQ(0, set_slots(self, self->vm));
	EXPECT_EQ(-EBUSY, kmmu_vm_enable_cap(self->vm, KMMU_CAP_DIRTY_LOG_RING, SMALL_RING));
	EXPECT_EQ(-EBUSY, kmmu_vm_enable_cap(self->vm, KMMU_CAP_DIRTY_LOG_RING, RING_MAX_BYTES));
	/* Bad sizes are still bad first. */
	EXPECT_EQ(-EINVAL, kmmu_vm_enable_cap(self->vm, KMMU_CAP_DIRTY_LOG_RING, 3 * SZ_4K));
	EXPECT_EQ(-E2BIG, kmmu_vm_enable_cap(self->vm, KMMU_CAP_DIRTY_LOG_RING,
					     2 * RING_MAX_BYTES));
	/* The slot of address space 1 alone is enough. */
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, LOG_SLOT, 0, LOG_GPA, LOG_SIZE,
					 self->mem.addr));
	EXPECT_EQ(-EBUSY, kmmu_vm_enable_cap(self->vm, KMMU_CAP_DIRTY_LOG_RING, SMALL_RING));
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, AS1_SLOT, 0, 0, 0, NULL));

	/* No slot logs: after all those failures, a good size is taken. */
	ASSERT_EQ(0, kmmu_vm_enable_cap(self->vm, KMMU_CAP_DIRTY_LOG_RING, SMALL_RING));
	EXPECT_EQ(-EINVAL, kmmu_vm_enable_cap(self->vm, KMMU_CAP_DIRTY_LOG_RING, SMALL_RING));
	EXPECT_EQ(-EINVAL, kmmu_vm_enable_cap(self->vm, KMMU_CAP_DIRTY_LOG_RING, 2 * SMALL_RING));
	/* Slots may log now: into the rings. */
	ASSERT_EQ(0, set_slots(self, self->vm));
	ASSERT_EQ(0, kmmu_vcpu_create(self->vm, 0, &self->vcpu));
	ASSERT_NE(NULL, self->vcpu->ring);
	EXPECT_EQ(SMALL_RING / sizeof(struct kmmu_dirty_gfn), self->vcpu->ring_entries);
	/* With a vCPU, and no slot logging that would make it -EBUSY, still no second one. */
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, LOG_SLOT, 0, LOG_GPA, LOG_SIZE,
					 self->mem.addr));
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, AS1_SLOT, 0, 0, 0, NULL));
	EXPECT_EQ(-EINVAL, kmmu_vm_enable_cap(self->vm, KMMU_CAP_DIRTY_LOG_RING, SMALL_RING));

	/* The largest ring is a ring like any other: every entry of it is mapped. */
	KMMU_VM_CREATE(&variant->cfg, &self->other);
	ASSERT_EQ(0, kmmu_vm_enable_cap(self->other, KMMU_CAP_DIRTY_LOG_RING, RING_MAX_BYTES));
	ASSERT_EQ(0, kmmu_vcpu_create(self->other, 5, &vcpu));
	ASSERT_EQ(KMMU_DIRTY_RING_MAX_ENTRIES, vcpu->ring_entries);
	EXPECT_EQ(0, vcpu->ring[0].flags);
	EXPECT_EQ(0, vcpu->ring[KMMU_DIRTY_RING_MAX_ENTRIES - 1].flags);
	kmmu_vm_free(self->other);
	self->other = NULL;

	/* A vCPU first: too late for rings, and it has none to map. */
	KMMU_VM_CREATE(&variant->cfg, &self->other);
	ASSERT_EQ(0, kmmu_vcpu_create(self->other, 0, &vcpu));
	EXPECT_EQ(NULL, vcpu->ring);
	EXPECT_EQ(-EINVAL, kmmu_vm_enable_cap(self->other, KMMU_CAP_DIRTY_LOG_RING, SMALL_RING));
	EXPECT_EQ(-EINVAL, kmmu_vm_enable_cap(self->other, KMMU_CAP_DIRTY_LOG_RING, 0));
	EXPECT_EQ(-EINVAL, kmmu_vm_reset_dirty_rings(self->other));
	/* The refusal made no ring behind the library's back. */
	ASSERT_EQ(0, kmmu_vcpu_create(self->other, 1, &vcpu));
	EXPECT_EQ(NULL, vcpu->ring);
}

/*
 * A VM with rings has no bitmaps to hand out: GET and CLEAR_DIRTY_LOG are
 * refused, and leave the ring and the caller's buffer alone.  A VM without
 * rings has nothing to reset; RESET takes no argument.
 */
KMMU_TEST_F(dirty_ring, dirty_log_ioctls_refused)
{
	const struct gpage page = { LOG_SLOT, 17 };
	uint64_t bm[LOG_LONGS];
	unsigned int i;

	/* Without rings, the bitmaps work and RESET has nothing to do. */
	KMMU_VM_CREATE(&variant->cfg, &self->other);
	ASSERT_EQ(0, set_slots(self, self->other));
	EXPECT_EQ(0, kmmu_vm_get_dirty_log(self->other, LOG_SLOT, bm));
	EXPECT_EQ(-EINVAL, kmmu_vm_reset_dirty_rings(self->other));
	EXPECT_EQ(-EINVAL, kmmu_ioctl(self->other->fd, KMMU_RESET_DIRTY_RINGS, 1));
	kmmu_vm_free(self->other);
	self->other = NULL;

	ASSERT_EQ(NULL, ring_vm_setup(_metadata, self, variant, SMALL_RING, WRPROT));
	write_pages(_metadata, self, self->vcpu, &page, 1, 1);
	memset(bm, 0xa5, sizeof(bm));
	EXPECT_EQ(-ENXIO, kmmu_vm_get_dirty_log(self->vm, LOG_SLOT, bm));
	EXPECT_EQ(-ENXIO, kmmu_vm_get_dirty_log(self->vm, AS1_SLOT, bm));
	EXPECT_EQ(-ENXIO, kmmu_vm_clear_dirty_log(self->vm, LOG_SLOT, 0, LOG_PAGES, bm));
	EXPECT_EQ(-ENXIO, kmmu_vm_clear_dirty_log(self->vm, AS1_SLOT, 0, AS1_PAGES, bm));
	for (i = 0; i < LOG_LONGS; i++) {
		ASSERT_EQ(0xa5a5a5a5a5a5a5a5ULL, bm[i]);
	}

	/* The write is still in the ring; until it is collected, a reset frees nothing. */
	EXPECT_EQ(0, kmmu_vm_reset_dirty_rings(self->vm));
	expect_ring(_metadata, self, self->vcpu, &page, 1, "before RESET");
	EXPECT_EQ(-EINVAL, kmmu_ioctl(self->vm->fd, KMMU_RESET_DIRTY_RINGS, 1));
	EXPECT_EQ(-EINVAL, kmmu_ioctl(self->vm->fd, KMMU_RESET_DIRTY_RINGS, ~0UL));
	/* The refused RESETs reset nothing. */
	EXPECT_EQ(DIRTY | RESET, entry_flags(self->vcpu, 0));
	reset_rings(_metadata, self->vm, self->seen.n);
	EXPECT_EQ(0, kmmu_vm_reset_dirty_rings(self->vm));
}

/* The mmap of a vCPU fd for the ring of a vCPU: exactly where the ring is, and no larger. */
KMMU_TEST_F(dirty_ring, mmap_bad_input)
{
	const uint64_t bytes = 4 * SZ_4K;
	const struct gpage page = { AS1_SLOT, 9 };
	const unsigned long pgoff = KMMU_DIRTY_LOG_PAGE_OFFSET;
	struct kmmu_dirty_gfn *ring;
	struct kmmu_vcpu *norings;
	int fd;
	void *p;

	ASSERT_EQ(NULL, ring_vm_setup(_metadata, self, variant, bytes, WRPROT));
	fd = self->vcpu->fd;
	EXPECT_EQ(-EINVAL, kmmu_mmap(fd, 0, bytes, &p));
	EXPECT_EQ(-EINVAL, kmmu_mmap(fd, pgoff - 1, bytes, &p));
	EXPECT_EQ(-EINVAL, kmmu_mmap(fd, pgoff + 1, bytes, &p));
	EXPECT_EQ(-EINVAL, kmmu_mmap(fd, pgoff, 0, &p));
	EXPECT_EQ(-EINVAL, kmmu_mmap(fd, pgoff, bytes + SZ_4K, &p));
	/* Only vCPU fds map anything. */
	EXPECT_EQ(-ENODEV, kmmu_mmap(self->vm->fd, pgoff, bytes, &p));
	EXPECT_EQ(-ENODEV, kmmu_mmap(self->vm->fd, 0, SZ_4K, &p));
	EXPECT_EQ(-ENODEV, kmmu_mmap(self->vm->sys_fd, pgoff, bytes, &p));
	/* A vCPU of a VM without rings has nothing to map. */
	KMMU_VM_CREATE(&variant->cfg, &self->other);
	ASSERT_EQ(0, kmmu_vcpu_create(self->other, 0, &norings));
	EXPECT_EQ(-EINVAL, kmmu_mmap(norings->fd, pgoff, SZ_4K, &p));

	if (kmmu_backend() == KMMU_BACKEND_DEV) {
		/* Userspace writes RESET into the entries: shared, and never executable. */
		const off_t off = (off_t)pgoff * sysconf(_SC_PAGESIZE);

		p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, off);
		EXPECT_EQ(MAP_FAILED, p) {
			munmap(p, bytes);
		}
		EXPECT_EQ(EINVAL, errno);
		p = mmap(NULL, bytes, PROT_READ, MAP_PRIVATE, fd, off);
		EXPECT_EQ(MAP_FAILED, p) {
			munmap(p, bytes);
		}
		EXPECT_EQ(EINVAL, errno);
		p = mmap(NULL, bytes, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_SHARED, fd, off);
		EXPECT_EQ(MAP_FAILED, p) {
			munmap(p, bytes);
		}
		/* A kernel whose anonymous inodes are noexec refuses it before kmmu does. */
		EXPECT_TRUE(errno == EINVAL || errno == EPERM) {
			TH_LOG("PROT_EXEC: errno %d", errno);
		}
	}

	/* A second mapping, however short, shows the same ring. */
	write_pages(_metadata, self, self->vcpu, &page, 1, 1);
	ASSERT_EQ(0, kmmu_mmap(fd, pgoff, 1, &p));
	ring = p;
	EXPECT_EQ(DIRTY, __atomic_load_n(&ring[0].flags, __ATOMIC_ACQUIRE));
	EXPECT_EQ(AS1_SLOT, ring[0].slot);
	EXPECT_EQ(page.page, ring[0].offset);
	EXPECT_EQ(0, kmmu_munmap(p, 1));

	/* Unmapped and mapped again, the ring is where it was, entries and all. */
	EXPECT_EQ(0, kmmu_munmap(self->vcpu->ring, bytes));
	self->vcpu->ring = NULL;
	ASSERT_EQ(0, kmmu_mmap(fd, pgoff, bytes, &p));
	self->vcpu->ring = p;
	expect_ring(_metadata, self, self->vcpu, &page, 1, "mapped again");
	reset_rings(_metadata, self->vm, self->seen.n);
	write_pages(_metadata, self, self->vcpu, &page, 1, 2);
	expect_ring(_metadata, self, self->vcpu, &page, 1, "written again");
	reset_rings(_metadata, self->vm, self->seen.n);
}

/* ---- 2. what the rings hold ---- */

/* The pages the order tests write, across both logging slots and both address spaces. */
static const struct gpage order[] = {
	{ LOG_SLOT, 5 }, { AS1_SLOT, 2 }, { LOG_SLOT, 0 }, { LOG_SLOT, 999 }, { AS1_SLOT, 15 },
	{ LOG_SLOT, 64 }, { LOG_SLOT, 63 }, { AS1_SLOT, 0 }, { LOG_SLOT, 6 }, { LOG_SLOT, 4 },
	{ LOG_SLOT, 2 },
};

/*
 * Each page once, in the order written, with its slot (as_id included) and
 * offset; reads, and writes to a slot that does not log, push nothing.  A
 * page written again before the reset is not pushed again; after it, it is.
 * Some pages were read first (the write upgrades a mapping), some not (the
 * write maps them).
 */
static void entries_in_order(struct __test_metadata *_metadata, FIXTURE_DATA(dirty_ring) *self,
			     const FIXTURE_VARIANT(dirty_ring) *variant, uint32_t mode)
{
	const unsigned int n = ARRAY_SIZE(order);
	struct gpage reversed[ARRAY_SIZE(order)];
	struct kmmu_vcpu *vcpu;
	unsigned int i;
	uint64_t dirty;
	long got;

	const char *why = ring_vm_setup(_metadata, self, variant, SMALL_RING, mode);
	if (why)
		SKIP(return, "%s", why);
	vcpu = self->vcpu;
	run_pages(_metadata, vcpu, LOG_SLOT, 0, 32, false, 0);
	run_pages(_metadata, vcpu, AS1_SLOT, 0, AS1_PAGES, false, 0);
	expect_ring_empty(_metadata, vcpu, "reads");
	if (host_quiet()) {
		EXPECT_EQ(0, stat_dirty_pages(_metadata, self->vm));
	}

	for (i = 0; i < n; i++) {
		write_pages(_metadata, self, vcpu, &order[i], 1, 1);
		/* Neither of these is for the log. */
		run_pages(_metadata, vcpu, PLAIN_SLOT, i, 1, true, stamp(1));
		run_pages(_metadata, vcpu, LOG_SLOT, 100 + i, 1, false, 0);
	}
	for (i = 0; i < n; i++) {
		struct kmmu_dirty_gfn *e = ring_entry(vcpu, i);

		/* Exactly DIRTY: RESET is userspace's to set. */
		EXPECT_EQ(DIRTY, entry_flags(vcpu, i));
		if (host_quiet()) {
			EXPECT_EQ(order[i].slot, e->slot);
			EXPECT_EQ(order[i].page, e->offset);
		}
	}
	dirty = stat_dirty_pages(_metadata, self->vm);
	got = expect_ring(_metadata, self, vcpu, order, n, "first writes");
	if (host_quiet()) {
		EXPECT_EQ(n, dirty);
	}

	/* Collected, not reset: the pages are still dirty for the log, and not pushed again. */
	write_pages(_metadata, self, vcpu, order, n, 2);
	read_pages(_metadata, vcpu, order, n);
	expect_ring_empty(_metadata, vcpu, "written again before the reset");
	if (host_quiet()) {
		EXPECT_EQ(dirty, stat_dirty_pages(_metadata, self->vm));
	}
	reset_rings(_metadata, self->vm, got);

	/* Reset: reads still push nothing, writes push again, in their new order. */
	read_pages(_metadata, vcpu, order, n);
	expect_ring_empty(_metadata, vcpu, "read after the reset");
	for (i = 0; i < n; i++)
		reversed[i] = order[n - 1 - i];
	write_pages(_metadata, self, vcpu, reversed, n, 3);
	got = expect_ring(_metadata, self, vcpu, reversed, n, "written after the reset");
	if (host_quiet()) {
		EXPECT_EQ(dirty + n, stat_dirty_pages(_metadata, self->vm));
	}
	reset_rings(_metadata, self->vm, got);
	EXPECT_EQ(0, kmmu_vm_reset_dirty_rings(self->vm));
}

KMMU_TEST_F(dirty_ring, entries_in_order_wrprot)
{
	entries_in_order(_metadata, self, variant, WRPROT);
}

KMMU_TEST_F(dirty_ring, entries_in_order_dbit)
{
	entries_in_order(_metadata, self, variant, DBIT);
}

/*
 * A page goes into the ring of the vCPU that dirtied it, whichever vCPU
 * collected it before; one reset covers every ring.
 */
KMMU_TEST_F(dirty_ring, rings_are_per_vcpu)
{
	static const struct gpage by0[] = { { LOG_SLOT, 1 }, { AS1_SLOT, 1 }, { LOG_SLOT, 2 } };
	static const struct gpage by1[] = { { LOG_SLOT, 700 }, { AS1_SLOT, 4 } };
	static const struct gpage again[] = { { LOG_SLOT, 1 }, { AS1_SLOT, 4 } };
	struct kmmu_vcpu *vcpu1;
	long got;

	ASSERT_EQ(NULL, ring_vm_setup(_metadata, self, variant, SMALL_RING, WRPROT));
	ASSERT_EQ(0, kmmu_vcpu_create(self->vm, 1, &vcpu1));
	ASSERT_NE(NULL, vcpu1->ring);
	ASSERT_NE(self->vcpu->ring, vcpu1->ring);
	write_pages(_metadata, self, self->vcpu, by0, ARRAY_SIZE(by0), 1);
	write_pages(_metadata, self, vcpu1, by1, ARRAY_SIZE(by1), 1);
	got = expect_ring(_metadata, self, self->vcpu, by0, ARRAY_SIZE(by0), "vCPU 0");
	got += expect_ring(_metadata, self, vcpu1, by1, ARRAY_SIZE(by1), "vCPU 1");
	reset_rings(_metadata, self->vm, got);

	/* Both pages were reset: whoever writes one now logs it. */
	write_pages(_metadata, self, vcpu1, &again[0], 1, 2);
	write_pages(_metadata, self, self->vcpu, &again[1], 1, 2);
	got = expect_ring(_metadata, self, self->vcpu, &again[1], 1, "vCPU 0, again");
	got += expect_ring(_metadata, self, vcpu1, &again[0], 1, "vCPU 1, again");
	reset_rings(_metadata, self->vm, got);
}

/*
 * A 256-entry ring fills after 248 entries: RUN exits, and keeps exiting
 * with no access done until a reset makes room; then the workload goes on
 * where it stopped.  Every write done is in the ring by the exit; at most
 * the page of the access in flight is logged ahead of its write, and then
 * logged again after the reset (in write-protection mode, the reset
 * protected it again before it was written).
 */
static void ring_full_exit(struct __test_metadata *_metadata, FIXTURE_DATA(dirty_ring) *self,
			   const FIXTURE_VARIANT(dirty_ring) *variant, uint32_t mode)
{
	struct kmmu_workload wl = kmmu_wl_seq(LOG_GPA, LOG_SIZE, 100, stamp(1));
	unsigned int count[LOG_PAGES] = { 0 }, ahead[LOG_PAGES] = { 0 };
	unsigned int fulls = 0, limit, i, p;
	struct kmmu_vcpu *vcpu;
	struct kmmu_run run;
	uint64_t done = 0;
	long got;

	const char *why = ring_vm_setup(_metadata, self, variant, SMALL_RING, mode);
	if (why)
		SKIP(return, "%s", why);
	vcpu = self->vcpu;
	limit = vcpu->ring_entries - RING_RSVD;
	wl.flags = KMMU_WL_XOR_GPA;
	ASSERT_EQ(0, kmmu_vcpu_set_workload(vcpu, &wl));
	for (;;) {
		memset(&run, 0, sizeof(run));
		ASSERT_EQ(0, kmmu_vcpu_run(vcpu, &run));
		done += run.accesses;
		if (run.exit_reason == KMMU_EXIT_DONE)
			break;
		ASSERT_EQ(KMMU_EXIT_DIRTY_RING_FULL, run.exit_reason);
		ASSERT_GT(LOG_PAGES, fulls++);

		/* Full, and nothing reset: RUN exits at once, however often. */
		for (i = 0; i < 2; i++) {
			memset(&run, 0, sizeof(run));
			ASSERT_EQ(0, kmmu_vcpu_run(vcpu, &run));
			EXPECT_EQ(KMMU_EXIT_DIRTY_RING_FULL, run.exit_reason);
			EXPECT_EQ(0, run.accesses);
		}
		/* Nothing collected yet: a reset makes no room. */
		if (fulls == 1) {
			EXPECT_EQ(0, kmmu_vm_reset_dirty_rings(self->vm));
			memset(&run, 0, sizeof(run));
			ASSERT_EQ(0, kmmu_vcpu_run(vcpu, &run));
			EXPECT_EQ(KMMU_EXIT_DIRTY_RING_FULL, run.exit_reason);
			EXPECT_EQ(0, run.accesses);
		}

		/* One entry at most per access, and a check before each: exactly the limit. */
		got = collect(_metadata, self, vcpu);
		ASSERT_EQ(limit, got);
		for (i = 0; i < got; i++) {
			ASSERT_EQ(LOG_SLOT, self->seen.e[i].slot);
			ASSERT_GT(LOG_PAGES, self->seen.e[i].offset);
			count[self->seen.e[i].offset]++;
			/* The pages come in the order written. */
			if (host_quiet()) {
				ASSERT_EQ(self->seen.e[0].offset + i, self->seen.e[i].offset);
			}
		}
		p = self->seen.e[got - 1].offset;
		ASSERT_TRUE(done == p || done == p + 1) {
			TH_LOG("full exit %u: %llu pages written, page %u logged last", fulls,
			       (unsigned long long)done, p);
		}
		if (done == p)
			ahead[p]++;
		/* Written: the pages before the vCPU, and none from where it stands. */
		for (p = 0; p < LOG_PAGES; p++) {
			const struct gpage gp = { LOG_SLOT, p };

			ASSERT_EQ(p < done ? stamp(1) ^ page_gpa(gp) : 0, *page_word(self, gp)) {
				TH_LOG("full exit %u: page %u, %llu pages done", fulls, p,
				       (unsigned long long)done);
			}
		}
		reset_rings(_metadata, self->vm, got);
	}
	EXPECT_EQ(LOG_PAGES, done);
	/* 1000 pages or more through rings of 248. */
	EXPECT_LE(LOG_PAGES / limit, fulls);

	got = collect(_metadata, self, vcpu);
	for (i = 0; i < got; i++) {
		ASSERT_EQ(LOG_SLOT, self->seen.e[i].slot);
		ASSERT_GT(LOG_PAGES, self->seen.e[i].offset);
		count[self->seen.e[i].offset]++;
	}
	reset_rings(_metadata, self->vm, got);
	for (p = 0; p < LOG_PAGES; p++) {
		const struct gpage gp = { LOG_SLOT, p };

		ASSERT_EQ(stamp(1) ^ page_gpa(gp), *page_word(self, gp));
		ASSERT_LE(1, count[p]) {
			TH_LOG("page %u was written and never logged", p);
		}
		if (host_quiet()) {
			ASSERT_EQ(1 + ahead[p], count[p]) {
				TH_LOG("page %u logged %u times, %u ahead of its write", p,
				       count[p], ahead[p]);
			}
		}
	}
}

KMMU_TEST_F(dirty_ring, ring_full_exit_wrprot)
{
	ring_full_exit(_metadata, self, variant, WRPROT);
}

KMMU_TEST_F(dirty_ring, ring_full_exit_dbit)
{
	ring_full_exit(_metadata, self, variant, DBIT);
}

/* ---- 3. what userspace does to the ring ---- */

/*
 * Userspace owns the entries it collects, and may garble them before the
 * reset: kmmu skips what names no page of a logging slot, without an
 * error, counts it all the same, and still protects the pages that the
 * good entries of the same reset name.  The pages of garbled entries were
 * not protected: written again, they are not logged again.
 */
static void garbage_entries(struct __test_metadata *_metadata, FIXTURE_DATA(dirty_ring) *self,
			    const FIXTURE_VARIANT(dirty_ring) *variant, uint32_t mode)
{
	static const struct {
		struct gpage gp;
		bool garbage;
		uint32_t slot;		/* what userspace writes over the entry */
		uint64_t offset;
	} ents[] = {
#define GOOD(_slot, _page)	{ .gp = { _slot, _page } }
#define BAD(_slot, _page, _bad_slot, _bad_offset)				\
	{ .gp = { _slot, _page }, .garbage = true,				\
	  .slot = _bad_slot, .offset = _bad_offset }
		GOOD(LOG_SLOT, 10),
		BAD(LOG_SLOT, 11, 7u << 16 | LOG_SLOT, 11),		/* as_id 7 */
		GOOD(LOG_SLOT, 12),
		BAD(LOG_SLOT, 500, 600, 500),				/* id 600 */
		GOOD(AS1_SLOT, 1),
		BAD(AS1_SLOT, 2, PLAIN_SLOT, 2),			/* does not log */
		BAD(LOG_SLOT, 700, 5, 0),				/* no slot 5 */
		BAD(LOG_SLOT, 701, AS1(LOG_SLOT), 701),			/* none in as_id 1 */
		BAD(LOG_SLOT, 702, LOG_SLOT, LOG_PAGES),		/* at the slot's end */
		GOOD(LOG_SLOT, 13),
		BAD(LOG_SLOT, 900, AS1_SLOT, AS1_PAGES + 1000),		/* past its end */
		BAD(LOG_SLOT, 901, LOG_SLOT, ~0ULL),			/* far past it */
		GOOD(LOG_SLOT, 14),
		GOOD(AS1_SLOT, 5),
#undef BAD
#undef GOOD
	};
	struct gpage all[ARRAY_SIZE(ents)], good[ARRAY_SIZE(ents)];
	unsigned int i, j, ngood = 0, garbled = 0;
	struct kmmu_vcpu *vcpu;
	long got;

	const char *why = ring_vm_setup(_metadata, self, variant, SMALL_RING, mode);
	if (why)
		SKIP(return, "%s", why);
	vcpu = self->vcpu;
	for (i = 0; i < ARRAY_SIZE(ents); i++) {
		all[i] = ents[i].gp;
		if (!ents[i].garbage)
			good[ngood++] = ents[i].gp;
	}
	write_pages(_metadata, self, vcpu, all, ARRAY_SIZE(all), 1);
	peek(vcpu, vcpu->ring_fetch, &self->seen);
	expect_entries(_metadata, &self->seen, all, ARRAY_SIZE(all), "written");

	/* Garble the entries of the garbage pages (all of them, should dev log one twice). */
	for (i = 0; i < self->seen.n; i++) {
		struct kmmu_dirty_gfn *e = ring_entry(vcpu, vcpu->ring_fetch + i);

		for (j = 0; j < ARRAY_SIZE(ents); j++) {
			if (!ents[j].garbage || e->slot != ents[j].gp.slot ||
			    e->offset != ents[j].gp.page)
				continue;
			e->slot = ents[j].slot;
			e->offset = ents[j].offset;
			garbled++;
			break;
		}
		mark_reset(vcpu, vcpu->ring_fetch + i);
	}
	EXPECT_LE(ARRAY_SIZE(ents) - ngood, garbled);
	vcpu->ring_fetch += self->seen.n;
	reset_rings(_metadata, self->vm, self->seen.n);

	/* The good pages were protected again, the garbled ones not. */
	write_pages(_metadata, self, vcpu, all, ARRAY_SIZE(all), 2);
	got = expect_ring(_metadata, self, vcpu, good, ngood, "written after the reset");
	reset_rings(_metadata, self->vm, got);

	/* Nothing was left half done: the good pages log again, and only once. */
	write_pages(_metadata, self, vcpu, good, ngood, 3);
	write_pages(_metadata, self, vcpu, good, ngood, 4);
	got = expect_ring(_metadata, self, vcpu, good, ngood, "written twice");
	reset_rings(_metadata, self->vm, got);
}

KMMU_TEST_F(dirty_ring, garbage_entries_skipped_wrprot)
{
	garbage_entries(_metadata, self, variant, WRPROT);
}

KMMU_TEST_F(dirty_ring, garbage_entries_skipped_dbit)
{
	garbage_entries(_metadata, self, variant, DBIT);
}

/*
 * A reset stops at the first entry not collected, whatever is collected
 * after it: it resets the first ones, and the rest wait for a later reset.
 * Only the pages reset are protected again.
 */
static void partial_collection(struct __test_metadata *_metadata,
			       FIXTURE_DATA(dirty_ring) *self,
			       const FIXTURE_VARIANT(dirty_ring) *variant, uint32_t mode)
{
	const unsigned int first = 100, part = 8;
	struct gpage pages[20];
	const unsigned int n = ARRAY_SIZE(pages);
	unsigned int pushed, pushed2, i;
	struct kmmu_vcpu *vcpu;
	uint32_t base;
	long got;

	const char *why = ring_vm_setup(_metadata, self, variant, SMALL_RING, mode);
	if (why)
		SKIP(return, "%s", why);
	vcpu = self->vcpu;
	base = vcpu->ring_fetch;
	for (i = 0; i < n; i++)
		pages[i] = (struct gpage){ LOG_SLOT, first + i };
	run_pages(_metadata, vcpu, LOG_SLOT, first, n, true, stamp(1));
	peek(vcpu, base, &self->seen);
	expect_entries(_metadata, &self->seen, pages, n, "written");
	pushed = self->seen.n;

	/* The first part, and one entry past a gap. */
	for (i = 0; i < part; i++)
		mark_reset(vcpu, base + i);
	mark_reset(vcpu, base + part + 2);
	EXPECT_EQ(part, kmmu_vm_reset_dirty_rings(self->vm));
	for (i = 0; i < part; i++) {
		EXPECT_EQ(0, entry_flags(vcpu, base + i));
	}
	EXPECT_EQ(DIRTY, entry_flags(vcpu, base + part));
	EXPECT_EQ(DIRTY, entry_flags(vcpu, base + part + 1));
	EXPECT_EQ(DIRTY | RESET, entry_flags(vcpu, base + part + 2));
	/* The gap holds the rest back. */
	EXPECT_EQ(0, kmmu_vm_reset_dirty_rings(self->vm));
	EXPECT_EQ(DIRTY | RESET, entry_flags(vcpu, base + part + 2));

	/* Written again: only the pages of the first part are logged again. */
	run_pages(_metadata, vcpu, LOG_SLOT, first, n, true, stamp(2));
	peek(vcpu, base + pushed, &self->seen);
	expect_entries(_metadata, &self->seen, pages, part, "written again");
	pushed2 = self->seen.n;

	/* The gap filled: the reset goes up to the next entry not collected. */
	mark_reset(vcpu, base + part);
	mark_reset(vcpu, base + part + 1);
	EXPECT_EQ(3, kmmu_vm_reset_dirty_rings(self->vm));
	EXPECT_EQ(DIRTY, entry_flags(vcpu, base + part + 3));
	for (i = part + 3; i < pushed + pushed2; i++)
		mark_reset(vcpu, base + i);
	vcpu->ring_fetch = base + pushed + pushed2;
	reset_rings(_metadata, self->vm, pushed + pushed2 - part - 3);
	EXPECT_EQ(0, kmmu_vm_reset_dirty_rings(self->vm));

	/* Every page was reset, once or twice: each logs again, once. */
	write_pages(_metadata, self, vcpu, pages, n, 3);
	got = expect_ring(_metadata, self, vcpu, pages, n, "written after every reset");
	reset_rings(_metadata, self->vm, got);
}

KMMU_TEST_F(dirty_ring, partial_collection_wrprot)
{
	partial_collection(_metadata, self, variant, WRPROT);
}

KMMU_TEST_F(dirty_ring, partial_collection_dbit)
{
	partial_collection(_metadata, self, variant, DBIT);
}

TEST_HARNESS_MAIN
