// SPDX-License-Identifier: GPL-2.0
/*
 * Aging, through KMMU_AGE and through the host's clear_young/test_young
 * path, with the locked and the lockless walk: it reports exactly the
 * pages the vCPU touched since the last clear, makes A/D-disabled SPTEs
 * access-tracked so the fast path sees the next access, never loses a D
 * bit the vCPU sets while it runs, survives zaps under a lockless walk,
 * and refuses bad input with the right errno.
 */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>

#include "kmmu_user.h"
#include "test_util.h"

#define AGE_GPA		0x100000000ULL
#define NPAGES		512
#define AGE_SIZE	(NPAGES * SZ_4K)
#define NR_VCPUS	2

/* Guest physical addresses are 48 bits: 4 levels of 9 bits over 4K pages. */
#define GPA_LIMIT	(1ULL << 48)

/*
 * SPTE bits as kmod/core/spte.h lays them out after the SDM and the APM
 * (the tests see the core only through selftests/lib).  Without A/D bits
 * (EPT only) aging moves R and X to software bits 54 and 56 and clears
 * R/W/X, so the next access faults; W is not saved, MMU-writable (58)
 * lets the fast path grant it again.
 */
#define SPTE_PRESENT		(1ULL << 11)
#define SPTE_PFN_MASK		(((1ULL << 51) - 1) & ~0xfffULL)
#define SPTE_WRITABLE		(1ULL << 1)	/* EPT W, NPT RW */
#define EPT_R			(1ULL << 0)
#define EPT_X			(1ULL << 2)
#define EPT_RWX			(EPT_R | SPTE_WRITABLE | EPT_X)
#define EPT_A			(1ULL << 8)
#define EPT_D			(1ULL << 9)
#define EPT_SAVED_R		(1ULL << 54)
#define EPT_SAVED_W		(1ULL << 55)
#define EPT_SAVED_X		(1ULL << 56)
#define EPT_MMU_WRITABLE	(1ULL << 58)
#define NPT_A			(1ULL << 5)
#define NPT_D			(1ULL << 6)

/* What guest writes store (xor the gpa, so each word is different). */
#define WRITE_VALUE		0x4100000000000000ULL

/* Bounds for the threads: they stop when told, or after this many passes. */
#define MAX_PASSES		1000000
/* How long the test waits for threads to make progress before going on anyway. */
#define PROGRESS_SPINS		200000

/*
 * In this harness ASSERT_*() and EXPECT_*() expand to two statements, so
 * a loop or an if around one takes braces or it does not bail out in time.
 * Threads never ASSERT: they record what went wrong and the test checks
 * after joining them.
 */

/* A thread that ages the slot over and over. */
struct ager {
	struct kmmu_vm *vm;
	void *hva;		/* the slot's memory, for the host's path */
	uint64_t npages;	/* how much of it to age */
	bool host;		/* also age through kmmu_host_age() (user backend) */
	bool yield;		/* now and then, to let faults take mmu_lock */
	const int *stop;
	uint64_t passes;	/* done; read by the test while running */
	int err;		/* -errno of the first failure */
	pthread_t thread;
	bool started;
};

/* A vCPU thread writing a range of pages, once or pass after pass. */
struct toucher {
	struct kmmu_vcpu *vcpu;
	uint64_t first, n;	/* its pages */
	uint64_t value;		/* of the first pass; each pass adds 1 << 32 */
	bool loop;		/* until stopped, else one pass */
	const int *stop;
	uint64_t passes;	/* done; read by the test while running */
	int err;		/* -errno from the library */
	uint32_t bad_exit;	/* an exit other than DONE */
	pthread_t thread;
	bool started;
};

/*
 * A vCPU thread racing the ager on its own pages [first, first + n);
 * whatever went wrong is counted, for the test to check after the join.
 */
struct racer {
	struct kmmu_vm *vm;
	struct kmmu_vcpu *vcpu;
	uint64_t dirty;		/* the D bit, 0 without A/D bits */
	void *hva;		/* of the slot */
	uint64_t first, n;
	uint64_t seed;		/* of a workload that reads, then writes */
	const uint64_t *ager_passes;	/* keep pace with it, so the two overlap */
	uint64_t rounds;	/* done */
	uint64_t lost_d;	/* written leaves found without D */
	uint64_t lost_host;	/* rounds whose writes the host did not learn of */
	uint64_t unmapped;	/* written leaves found gone (dev: the host zaps too) */
	int err;		/* -errno from the library */
	uint32_t bad_exit;	/* an exit other than DONE */
	pthread_t thread;
	bool started;
};

FIXTURE(aging) {
	struct kmmu_vm *vm;
	struct kmmu_vcpu *vcpu[NR_VCPUS];
	struct kmmu_mem mem;
	struct kmmu_mem huge_mem;	/* for the huge-leaf test */
	bool ept;
	bool ad;			/* the VM's SPTEs have A/D bits */
	uint64_t accessed, dirty;	/* and which ones */
	bool touched[NPAGES];		/* by the vCPUs since the last clear */
	struct ager ager;
	struct toucher t[NR_VCPUS];
	struct racer r[NR_VCPUS];
	int stop;
	/* What this test's KMMU_AGE calls reported, to check the stats against. */
	uint64_t passes, young, old;
};

FIXTURE_VARIANT(aging) {
	struct kmmu_vm_config cfg;
	bool lockless;		/* KMMU_CAP_LOCKLESS_AGING */
};

#define CFG_EPT		{ .spte_format = KMMU_SPTE_FORMAT_EPT }
#define CFG_EPT_AD_OFF	{ .spte_format = KMMU_SPTE_FORMAT_EPT, .flags = KMMU_VM_AD_DISABLED }
#define CFG_EPT_VE	{ .spte_format = KMMU_SPTE_FORMAT_EPT,				\
			  .flags = KMMU_VM_NONPRESENT_SUPPRESS_VE }
#define CFG_NPT		{ .spte_format = KMMU_SPTE_FORMAT_NPT }

#define AGING_VARIANT(name, config, _lockless)						\
FIXTURE_VARIANT_ADD(aging, name) {							\
	.cfg = config,									\
	.lockless = _lockless,								\
}

AGING_VARIANT(ept_locked, CFG_EPT, false);
AGING_VARIANT(ept_lockless, CFG_EPT, true);
AGING_VARIANT(ept_ad_disabled_locked, CFG_EPT_AD_OFF, false);
AGING_VARIANT(ept_ad_disabled_lockless, CFG_EPT_AD_OFF, true);
AGING_VARIANT(ept_suppress_ve_locked, CFG_EPT_VE, false);
AGING_VARIANT(ept_suppress_ve_lockless, CFG_EPT_VE, true);
AGING_VARIANT(npt_locked, CFG_NPT, false);
AGING_VARIANT(npt_lockless, CFG_NPT, true);

/* Exact ages and counts: the host leaves the memory alone (test_util.h). */
static bool host_quiet(void)
{
	return kmmu_host_quiet();
}

static bool is_user(void)
{
	return kmmu_backend() == KMMU_BACKEND_USER;
}

FIXTURE_SETUP(aging)
{
	int i;

	KMMU_REQUIRE_BACKEND();
	ASSERT_EQ(0, kmmu_mem_alloc(&self->mem, KMMU_BACKING_ANON, AGE_SIZE));
	KMMU_VM_CREATE(&variant->cfg, &self->vm);
	ASSERT_EQ(0, kmmu_vm_enable_cap(self->vm, KMMU_CAP_LOCKLESS_AGING, variant->lockless));
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 0, 0, AGE_GPA, AGE_SIZE, self->mem.addr));
	for (i = 0; i < NR_VCPUS; i++) {
		ASSERT_EQ(0, kmmu_vcpu_create(self->vm, i, &self->vcpu[i]));
	}
	self->ept = kmmu_vm_format(self->vm) == KMMU_SPTE_FORMAT_EPT;
	self->ad = !self->ept || !(variant->cfg.flags & KMMU_VM_AD_DISABLED);
	self->accessed = self->ept ? EPT_A : NPT_A;
	self->dirty = self->ept ? EPT_D : NPT_D;
}

static void stop_threads(FIXTURE_DATA(aging) *self)
{
	int i;

	__atomic_store_n(&self->stop, 1, __ATOMIC_RELEASE);
	for (i = 0; i < NR_VCPUS; i++) {
		if (self->t[i].started)
			pthread_join(self->t[i].thread, NULL);
		self->t[i].started = false;
		if (self->r[i].started)
			pthread_join(self->r[i].thread, NULL);
		self->r[i].started = false;
	}
	if (self->ager.started)
		pthread_join(self->ager.thread, NULL);
	self->ager.started = false;
}

/*
 * EXPECT, not ASSERT: a failed ASSERT here would jump back into the
 * harness, which runs the teardown again.
 */
FIXTURE_TEARDOWN(aging)
{
	/* A failed ASSERT may leave threads running: they go first. */
	stop_threads(self);
	kmmu_vm_free(self->vm);
	self->vm = NULL;
	kmmu_mem_free(&self->mem);
	kmmu_mem_free(&self->huge_mem);
	EXPECT_EQ(0, kmmu_lib_leak_check());
}

static uint64_t page_gpa(uint64_t page)
{
	return AGE_GPA + page * SZ_4K;
}

static uint64_t *page_word(FIXTURE_DATA(aging) *self, uint64_t page)
{
	return (uint64_t *)((uint8_t *)self->mem.addr + page * SZ_4K);
}

/*
 * vCPU @v accesses @n pages, one every @step pages from @first, each
 * once; @write_pct of the accesses are writes (chosen by the seed).
 */
static struct kmmu_run touch(struct __test_metadata *_metadata, FIXTURE_DATA(aging) *self,
			     int v, uint64_t first, uint64_t n, uint64_t step, uint32_t write_pct)
{
	struct kmmu_workload wl = {
		.gpa = page_gpa(first),
		.size = (n - 1) * step * SZ_4K + sizeof(uint64_t),
		.stride = step * SZ_4K,
		.iterations = 1,
		.seed = first * 1000 + step,
		.value = WRITE_VALUE,
		.pattern = KMMU_PATTERN_STRIDE,
		.write_percent = write_pct,
		.flags = KMMU_WL_XOR_GPA,
	};
	struct kmmu_run run;
	uint64_t i;

	ASSERT_EQ(0, kmmu_vcpu_run_workload(self->vcpu[v], &wl, &run));
	ASSERT_EQ(KMMU_EXIT_DONE, run.exit_reason);
	EXPECT_EQ(n, run.accesses);
	for (i = 0; i < n; i++)
		self->touched[first + i * step] = true;
	return run;
}

static uint64_t nr_touched(FIXTURE_DATA(aging) *self, uint64_t first, uint64_t n)
{
	uint64_t i, sum = 0;

	for (i = first; i < first + n; i++)
		sum += self->touched[i];
	return sum;
}

/*
 * KMMU_AGE over pages [first, first + n) must report @young and @old:
 * exactly on the user backend.  On dev the kernel ages too (MGLRU calls
 * clear_young) and may zap pages, so pages can only go from young to old
 * or away: at most @young young, at most @young + @old found at all.
 */
static void expect_age(struct __test_metadata *_metadata, FIXTURE_DATA(aging) *self,
		       uint64_t first, uint64_t n, uint32_t flags, uint64_t young, uint64_t old)
{
	uint64_t y = ~0ULL, o = ~0ULL;

	ASSERT_EQ(0, kmmu_vm_age(self->vm, page_gpa(first), n * SZ_4K, 0, flags, &y, &o));
	self->passes++;
	self->young += y;
	self->old += o;
	kmmu_expect_aged(_metadata, young, old, y, o);
	for (; !(flags & KMMU_AGE_TEST_ONLY) && n && first < NPAGES; first++, n--)
		self->touched[first] = false;
}

/* The age of every page of the slot, as the touched map says it must be. */
static void expect_age_all(struct __test_metadata *_metadata, FIXTURE_DATA(aging) *self,
			   uint32_t flags)
{
	uint64_t young = nr_touched(self, 0, NPAGES);

	expect_age(_metadata, self, 0, NPAGES, flags, young, NPAGES - young);
}

/* The stats add up to what this test's own KMMU_AGE calls reported. */
static void expect_age_stats(struct __test_metadata *_metadata, FIXTURE_DATA(aging) *self,
			     const struct kmmu_vm_stats *before)
{
	struct kmmu_vm_stats st;

	ASSERT_EQ(0, kmmu_vm_stats(self->vm, &st));
	if (host_quiet()) {
		EXPECT_EQ(self->passes, st.aging_passes - before->aging_passes);
		EXPECT_EQ(self->young, st.young - before->young);
		EXPECT_EQ(self->old, st.old - before->old);
	} else {
		/* The kernel's own aging passes count as well. */
		EXPECT_LE(self->passes, st.aging_passes - before->aging_passes);
		EXPECT_LE(self->young, st.young - before->young);
		EXPECT_LE(self->old, st.old - before->old);
	}
}

static uint64_t read_spte(struct __test_metadata *_metadata, FIXTURE_DATA(aging) *self,
			  uint64_t page, uint32_t *level)
{
	struct kmmu_spte_query q;

	ASSERT_EQ(0, kmmu_vm_get_spte(self->vm, page_gpa(page), 0, &q));
	*level = q.level;
	return q.sptes[q.level];
}

static bool spte_young(FIXTURE_DATA(aging) *self, uint64_t spte)
{
	if (self->ad)
		return spte & self->accessed;
	/* Access-tracked SPTEs have none of R/W/X. */
	return spte & EPT_RWX;
}

/*
 * Each page's leaf is young exactly when it was touched since the last
 * clear.  A page nobody touched can never look young, not even on dev;
 * on dev a touched one may have been aged or zapped by the kernel.
 */
static void expect_leaves_age(struct __test_metadata *_metadata, FIXTURE_DATA(aging) *self)
{
	uint64_t page, spte;
	uint32_t level;

	for (page = 0; page < NPAGES; page++) {
		spte = read_spte(_metadata, self, page, &level);
		if (!(spte & SPTE_PRESENT)) {
			ASSERT_FALSE(host_quiet()) {
				TH_LOG("page %llu not mapped", (unsigned long long)page);
			}
			continue;
		}
		ASSERT_EQ(KMMU_LEVEL_4K, level);
		if (host_quiet() || !self->touched[page]) {
			EXPECT_EQ(self->touched[page], spte_young(self, spte)) {
				TH_LOG("page %llu, spte %#llx", (unsigned long long)page,
				       (unsigned long long)spte);
			}
		}
	}
}

/* ---- accuracy ---- */

/*
 * Touched pages, and only those, are young; testing does not clear,
 * aging does; a sub-range counts its own pages; the stats add up.
 */
KMMU_TEST_F(aging, accuracy)
{
	struct kmmu_vm_stats st0;
	uint64_t young, old;

	ASSERT_EQ(0, kmmu_vm_stats(self->vm, &st0));
	touch(_metadata, self, 0, 0, NPAGES, 1, 50);
	expect_age_all(_metadata, self, KMMU_AGE_TEST_ONLY);
	expect_age_all(_metadata, self, KMMU_AGE_FLUSH);
	expect_age_all(_metadata, self, KMMU_AGE_TEST_ONLY);
	expect_leaves_age(_metadata, self);

	/* Every third page by one vCPU, every fifth from page 1 by the other. */
	touch(_metadata, self, 0, 0, (NPAGES - 1) / 3 + 1, 3, 50);
	touch(_metadata, self, 1, 1, (NPAGES - 2) / 5 + 1, 5, 30);
	TH_LOG("%llu of %d pages touched", (unsigned long long)nr_touched(self, 0, NPAGES),
	       NPAGES);
	expect_age_all(_metadata, self, KMMU_AGE_TEST_ONLY);
	expect_leaves_age(_metadata, self);
	expect_age_all(_metadata, self, KMMU_AGE_TEST_ONLY);
	expect_age(_metadata, self, 30, 61, KMMU_AGE_TEST_ONLY, nr_touched(self, 30, 61),
		   61 - nr_touched(self, 30, 61));
	expect_age(_metadata, self, NPAGES - 1, 1, KMMU_AGE_TEST_ONLY,
		   nr_touched(self, NPAGES - 1, 1), 1 - nr_touched(self, NPAGES - 1, 1));

	/* Nothing is mapped in the other address space, or past the slot. */
	ASSERT_EQ(0, kmmu_vm_age(self->vm, AGE_GPA, AGE_SIZE, 1, KMMU_AGE_TEST_ONLY, &young,
				 &old));
	self->passes++;
	EXPECT_EQ(0, young);
	EXPECT_EQ(0, old);
	expect_age(_metadata, self, NPAGES, 64, 0, 0, 0);

	/* A second pass clears them again; then nothing is young. */
	expect_age(_metadata, self, 0, 100, KMMU_AGE_FLUSH, nr_touched(self, 0, 100),
		   100 - nr_touched(self, 0, 100));
	expect_age_all(_metadata, self, KMMU_AGE_TEST_ONLY);
	expect_age_all(_metadata, self, KMMU_AGE_FLUSH);
	expect_age_all(_metadata, self, KMMU_AGE_TEST_ONLY);
	expect_leaves_age(_metadata, self);

	/* And the next touches are seen again, through the flushed TLBs. */
	touch(_metadata, self, 1, 7, 9, 50, 100);
	expect_age_all(_metadata, self, KMMU_AGE_TEST_ONLY);
	expect_leaves_age(_metadata, self);
	expect_age_stats(_metadata, self, &st0);
}

/*
 * Without A/D bits aging makes each leaf access-tracked: no R/W/X for the
 * CPU, R and X kept in the software bits, same pfn.  The next access
 * faults and the fast path restores the leaf, adding W for a write.
 * With A/D bits aging only clears A, and the next access sets it
 * without a fault.
 */
KMMU_TEST_F(aging, access_tracking)
{
	struct kmmu_vm_stats st0, st1;
	uint64_t page, spte, n, pfn;
	struct kmmu_run rd, wr;
	uint32_t level;
	int ret;

	touch(_metadata, self, 0, 0, NPAGES, 1, 100);
	expect_age_all(_metadata, self, KMMU_AGE_FLUSH);

	for (page = 0; page < NPAGES; page++) {
		spte = read_spte(_metadata, self, page, &level);
		if (!(spte & SPTE_PRESENT) && !host_quiet())
			continue;
		ASSERT_EQ(KMMU_LEVEL_4K, level);
		ASSERT_TRUE(spte & SPTE_PRESENT);
		/*
		 * Under pressure the host may migrate the page between the two
		 * reads (the pfn is read in the middle of it, or after): its
		 * invalidation then zapped the SPTE, which a second read shows.
		 */
		ret = kmmu_host_pfn(page_word(self, page), &pfn);
		if (!host_quiet() && (ret || read_spte(_metadata, self, page, &level) != spte))
			continue;
		ASSERT_EQ(0, ret);
		EXPECT_EQ(pfn, (spte & SPTE_PFN_MASK) >> 12);
		if (self->ad) {
			EXPECT_FALSE(spte & self->accessed);
			/* Aging is not about writes: W and D stay. */
			EXPECT_TRUE(spte & SPTE_WRITABLE);
			EXPECT_TRUE(spte & self->dirty);
		} else {
			EXPECT_EQ(0, spte & EPT_RWX) {
				TH_LOG("page %llu, spte %#llx", (unsigned long long)page,
				       (unsigned long long)spte);
			}
			EXPECT_TRUE(spte & EPT_SAVED_R);
			EXPECT_TRUE(spte & EPT_SAVED_X);
			EXPECT_FALSE(spte & EPT_SAVED_W);
			EXPECT_TRUE(spte & EPT_MMU_WRITABLE);
		}
	}

	/* Reads on every fourth page, writes on every fourth from page 2. */
	ASSERT_EQ(0, kmmu_vm_stats(self->vm, &st0));
	n = NPAGES / 4;
	rd = touch(_metadata, self, 0, 0, n, 4, 0);
	wr = touch(_metadata, self, 1, 2, n, 4, 100);
	ASSERT_EQ(0, kmmu_vm_stats(self->vm, &st1));
	if (self->ad && host_quiet()) {
		EXPECT_EQ(0, rd.faults);
		EXPECT_EQ(0, wr.faults);
		EXPECT_EQ(st0.fast_faults, st1.fast_faults);
	} else if (host_quiet()) {
		EXPECT_EQ(n, rd.faults);
		EXPECT_EQ(n, wr.faults);
		EXPECT_EQ(2 * n, st1.fast_faults - st0.fast_faults);
		EXPECT_EQ(st0.pages_4k, st1.pages_4k);
	} else if (!self->ad) {
		/* Some leaves may have been zapped instead: they fault the slow way. */
		EXPECT_LT(st0.fast_faults, st1.fast_faults);
	}

	for (page = 0; page < NPAGES; page++) {
		bool read = page % 4 == 0, written = page % 4 == 2;

		spte = read_spte(_metadata, self, page, &level);
		if (!host_quiet() && (!(spte & SPTE_PRESENT) || !spte_young(self, spte)))
			continue;
		ASSERT_TRUE(spte & SPTE_PRESENT);
		EXPECT_EQ(read || written, spte_young(self, spte)) {
			TH_LOG("page %llu, spte %#llx", (unsigned long long)page,
			       (unsigned long long)spte);
		}
		if (self->ad || !(read || written))
			continue;
		EXPECT_EQ(EPT_R | EPT_X, spte & (EPT_R | EPT_X));
		EXPECT_EQ(0, spte & (EPT_SAVED_R | EPT_SAVED_W | EPT_SAVED_X));
		/*
		 * Under pressure a leaf zapped meanwhile comes back through the
		 * slow path, which maps a read writable when the host page is.
		 */
		if (written || host_quiet())
			EXPECT_EQ(written, !!(spte & SPTE_WRITABLE));
	}
	expect_leaves_age(_metadata, self);

	/* A write to a page a read brought back takes one more fast fault for W. */
	if (!self->ad) {
		wr = touch(_metadata, self, 0, 0, n, 4, 100);
		if (host_quiet()) {
			EXPECT_EQ(n, wr.faults);
		}
		spte = read_spte(_metadata, self, 0, &level);
		if (host_quiet()) {
			EXPECT_TRUE(spte & SPTE_WRITABLE);
		}
	}
}

/* ---- the lost-dirty-bit race ---- */

/* Age pages [0, a->npages) of the slot over and over. */
static void *ager_fn(void *arg)
{
	struct ager *a = arg;
	uint64_t i;
	int ret;

	for (i = 0; i < MAX_PASSES; i++) {
		if (__atomic_load_n(a->stop, __ATOMIC_ACQUIRE))
			break;
		/*
		 * A flush waits for every vCPU in guest mode to notice it, as an
		 * IPI would: not every pass, so that a vCPU thread preempted
		 * there does not make the ager crawl.
		 */
		if (a->host && i % 16 == 15)
			ret = kmmu_host_age(a->hva, a->npages * SZ_4K, true) < 0 ? -EIO : 0;
		else
			ret = kmmu_vm_age(a->vm, AGE_GPA, a->npages * SZ_4K, 0,
					  i % 4 == 3 ? KMMU_AGE_FLUSH : 0, NULL, NULL);
		if (ret) {
			a->err = ret;
			break;
		}
		__atomic_store_n(&a->passes, i + 1, __ATOMIC_RELEASE);
		if (a->yield && i % 8 == 7)
			sched_yield();
	}
	return NULL;
}

static uint64_t pass_value(const struct toucher *t, uint64_t pass)
{
	return t->value + (pass << 32);
}

static int run_pass(struct kmmu_vcpu *vcpu, uint64_t first, uint64_t n, uint32_t write_pct,
		    uint64_t value, uint32_t *bad_exit)
{
	struct kmmu_workload wl = kmmu_wl_seq(page_gpa(first), n * SZ_4K, write_pct, value);
	struct kmmu_run run;
	int ret;

	wl.flags = KMMU_WL_XOR_GPA;
	ret = kmmu_vcpu_run_workload(vcpu, &wl, &run);
	if (!ret && run.exit_reason != KMMU_EXIT_DONE)
		*bad_exit = run.exit_reason;
	return ret;
}

static void *toucher_fn(void *arg)
{
	struct toucher *t = arg;
	uint64_t pass;

	for (pass = 0; pass < MAX_PASSES; pass++) {
		if (pass && (!t->loop || __atomic_load_n(t->stop, __ATOMIC_ACQUIRE)))
			break;
		t->err = run_pass(t->vcpu, t->first, t->n, 100, pass_value(t, pass), &t->bad_exit);
		if (t->err || t->bad_exit)
			break;
		__atomic_store_n(&t->passes, pass + 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

/* Wait, for at most @spins yields, until *@counter has moved past @seen. */
static void wait_progress_for(const uint64_t *counter, uint64_t seen, long spins)
{
	for (; spins > 0; spins--) {
		if (__atomic_load_n(counter, __ATOMIC_ACQUIRE) > seen)
			return;
		sched_yield();
	}
}

static void wait_progress(const uint64_t *counter, uint64_t seen)
{
	wait_progress_for(counter, seen, PROGRESS_SPINS);
}

/*
 * Age the first @npages pages of the slot in a loop until stopped; with
 * @yield, make room for faults (a locked pass holds mmu_lock for write).
 */
static void start_ager(struct __test_metadata *_metadata, FIXTURE_DATA(aging) *self,
		       uint64_t npages, bool yield)
{
	self->stop = 0;
	memset(&self->ager, 0, sizeof(self->ager));
	self->ager.vm = self->vm;
	self->ager.hva = self->mem.addr;
	self->ager.npages = npages;
	self->ager.yield = yield;
	self->ager.host = is_user();
	self->ager.stop = &self->stop;
	ASSERT_EQ(0, pthread_create(&self->ager.thread, NULL, ager_fn, &self->ager));
	self->ager.started = true;
}

/* vCPU @v writes pages [first, first + n) with @value ^ gpa, once or until stopped. */
static void start_toucher(struct __test_metadata *_metadata, FIXTURE_DATA(aging) *self, int v,
			  uint64_t first, uint64_t n, uint64_t value, bool loop)
{
	struct toucher *t = &self->t[v];

	memset(t, 0, sizeof(*t));
	t->vcpu = self->vcpu[v];
	t->first = first;
	t->n = n;
	t->value = value;
	t->loop = loop;
	t->stop = &self->stop;
	ASSERT_EQ(0, pthread_create(&t->thread, NULL, toucher_fn, t));
	t->started = true;
}

static void expect_threads_ok(struct __test_metadata *_metadata, FIXTURE_DATA(aging) *self)
{
	int i;

	EXPECT_EQ(0, self->ager.err);
	for (i = 0; i < NR_VCPUS; i++) {
		EXPECT_EQ(0, self->t[i].err);
		EXPECT_EQ(0, self->t[i].bad_exit);
	}
}

/* Each page of the first @nr touchers holds what its last completed pass wrote. */
static void expect_data(struct __test_metadata *_metadata, FIXTURE_DATA(aging) *self, int nr)
{
	uint64_t page;
	int i;

	for (i = 0; i < nr; i++) {
		struct toucher *t = &self->t[i];

		ASSERT_LT(0, t->passes);
		for (page = t->first; page < t->first + t->n; page++) {
			ASSERT_EQ(pass_value(t, t->passes - 1) ^ page_gpa(page),
				  *page_word(self, page));
		}
	}
}

#define RACE_PAGES	4	/* few, so that every aging pass is short */
#define RACE_ROUNDS	250
/* How long a racer waits for the ager to make progress before going on anyway. */
#define RACE_SPINS	1000
/* Each race access pair: a read at the start of a page, then a write this far in. */
#define RACE_WRITE_OFF	2048

static uint64_t race_value(const struct racer *r, uint64_t round)
{
	return WRITE_VALUE + (round << 32) + r->first;
}

/* A read of @page, then a write to the same page: its leaf is young just before D. */
static struct kmmu_workload race_workload(uint64_t page, uint64_t seed, uint64_t value)
{
	struct kmmu_workload wl = {
		.gpa = page_gpa(page),
		.size = RACE_WRITE_OFF + sizeof(uint64_t),
		.stride = RACE_WRITE_OFF,
		.iterations = 1,
		.seed = seed,
		.value = value,
		.pattern = KMMU_PATTERN_STRIDE,
		.write_percent = 50,
		.flags = KMMU_WL_XOR_GPA,
	};

	return wl;
}

/*
 * Which of its two accesses a workload writes is a function of its seed:
 * find a seed that reads first and writes second, by trying them on
 * @page and looking at what landed.
 */
static uint64_t find_race_seed(struct __test_metadata *_metadata, FIXTURE_DATA(aging) *self,
			       uint64_t page)
{
	uint64_t *first = page_word(self, page);
	uint64_t *second = first + RACE_WRITE_OFF / sizeof(uint64_t);
	struct kmmu_workload wl;
	struct kmmu_run run;
	uint64_t seed;

	for (seed = 1; seed < 256; seed++) {
		*first = 0x1111;
		*second = 0x2222;
		wl = race_workload(page, seed, WRITE_VALUE);
		ASSERT_EQ(0, kmmu_vcpu_run_workload(self->vcpu[0], &wl, &run));
		ASSERT_EQ(KMMU_EXIT_DONE, run.exit_reason);
		if (*first == 0x1111 && run.read_sum == 0x1111 &&
		    *second == (WRITE_VALUE ^ (page_gpa(page) + RACE_WRITE_OFF)))
			return seed;
	}
	ASSERT_TRUE(false) {
		TH_LOG("no seed makes a read, then a write");
	}
	return 0;
}

/* Does the host know @page as dirty?  Then forget its marks. */
static bool host_saw_dirty(void *hva)
{
	struct kmmu_user_mem_state ms;

	if (kmmu_user_mem_state(hva, SZ_4K, &ms) || ms.bad_marks)
		return false;
	kmmu_user_mem_clear_marks(hva, SZ_4K);
	return ms.dirty == 1;
}

/*
 * Round after round on each of the racer's pages: zap it, then read it
 * (it is mapped writable, young and clean) and write it at once, while
 * the ager runs; then look for D on its leaf.  The zap that starts the
 * next round tells the host about the write (checked on the user backend).
 */
static void *racer_fn(void *arg)
{
	struct racer *r = arg;
	struct kmmu_spte_query q;
	struct kmmu_workload wl;
	struct kmmu_run run;
	uint64_t round, page, spte;

	for (round = 0; round < RACE_ROUNDS; round++) {
		wait_progress_for(r->ager_passes,
				  __atomic_load_n(r->ager_passes, __ATOMIC_ACQUIRE), RACE_SPINS);
		for (page = r->first; page < r->first + r->n; page++) {
			void *hva = (uint8_t *)r->hva + page * SZ_4K;

			r->err = kmmu_vm_zap(r->vm, page_gpa(page), SZ_4K, 0, 0);
			if (r->err)
				return NULL;
			/* Per round only where marks can be forgotten; the end checks both. */
			if (is_user() && !host_saw_dirty(hva) && round)
				r->lost_host++;
			wl = race_workload(page, r->seed, race_value(r, round));
			r->err = kmmu_vcpu_run_workload(r->vcpu, &wl, &run);
			if (r->err)
				return NULL;
			if (run.exit_reason != KMMU_EXIT_DONE) {
				r->bad_exit = run.exit_reason;
				return NULL;
			}
			r->err = kmmu_vm_get_spte(r->vm, page_gpa(page), 0, &q);
			if (r->err)
				return NULL;
			spte = q.sptes[q.level];
			if (!(spte & SPTE_PRESENT))
				r->unmapped++;
			else if (r->dirty && !(spte & r->dirty))
				r->lost_d++;
		}
		r->rounds = round + 1;
	}
	return NULL;
}

/*
 * The classic race: a leaf is writable and young but clean, and the
 * vCPU's first write sets D just as an aging pass clears A.  An ager that
 * wrote back what it read would drop that D, and with it the only record
 * that the page was written.  One thread ages a few pages in a tight loop
 * (KMMU_AGE with and without flush, and the host's clear_young path on
 * the user backend) while two vCPU threads race it, writing their pages
 * round after round.  D must be on every written leaf; once everything is
 * zapped, the host must know every page as dirty.
 */
static void check_no_lost_dirty(struct __test_metadata *_metadata, FIXTURE_DATA(aging) *self,
				bool zap_all)
{
	uint64_t seed = find_race_seed(_metadata, self, RACE_PAGES);
	struct kmmu_host_pages hp;
	uint64_t page;
	int i;

	start_ager(_metadata, self, RACE_PAGES, false);
	wait_progress(&self->ager.passes, 0);
	for (i = 0; i < NR_VCPUS; i++) {
		struct racer *r = &self->r[i];

		r->vm = self->vm;
		r->vcpu = self->vcpu[i];
		r->dirty = self->ad ? self->dirty : 0;
		r->hva = self->mem.addr;
		r->first = i * RACE_PAGES / NR_VCPUS;
		r->n = RACE_PAGES / NR_VCPUS;
		r->seed = seed;
		r->ager_passes = &self->ager.passes;
		ASSERT_EQ(0, pthread_create(&r->thread, NULL, racer_fn, r));
		r->started = true;
	}
	/* The racers first: the ager runs until they are done. */
	for (i = 0; i < NR_VCPUS; i++) {
		pthread_join(self->r[i].thread, NULL);
		self->r[i].started = false;
	}
	stop_threads(self);
	TH_LOG("%llu aging passes", (unsigned long long)self->ager.passes);
	EXPECT_EQ(0, self->ager.err);
	for (i = 0; i < NR_VCPUS; i++) {
		struct racer *r = &self->r[i];

		EXPECT_EQ(0, r->err);
		EXPECT_EQ(0, r->bad_exit);
		ASSERT_EQ(RACE_ROUNDS, r->rounds);
		EXPECT_EQ(0, r->lost_d) {
			TH_LOG("vCPU %d: %llu written leaves without D", i,
			       (unsigned long long)r->lost_d);
		}
		EXPECT_EQ(0, r->lost_host) {
			TH_LOG("vCPU %d: %llu writes the host did not learn of at the zap", i,
			       (unsigned long long)r->lost_host);
		}
		if (host_quiet()) {
			EXPECT_EQ(0, r->unmapped);
		}
		for (page = r->first; page < r->first + r->n; page++) {
			uint64_t gpa = page_gpa(page) + RACE_WRITE_OFF;

			ASSERT_EQ(race_value(r, RACE_ROUNDS - 1) ^ gpa,
				  page_word(self, page)[RACE_WRITE_OFF / sizeof(uint64_t)]);
		}
	}

	/* The last round's D bits reach the host at this zap. */
	if (zap_all) {
		ASSERT_EQ(0, kmmu_vm_zap(self->vm, 0, 0, 0, KMMU_ZAP_ALL));
	} else {
		ASSERT_EQ(0, kmmu_vm_zap(self->vm, AGE_GPA, RACE_PAGES * SZ_4K, 0, 0));
	}
	ASSERT_EQ(0, kmmu_host_pages(self->mem.addr, RACE_PAGES * SZ_4K, &hp));
	EXPECT_EQ(0, hp.bad_marks);
	EXPECT_EQ(RACE_PAGES, hp.dirty) {
		TH_LOG("the host knows %ld of %d written pages as dirty", hp.dirty, RACE_PAGES);
	}
}

KMMU_TEST_F(aging, no_lost_dirty_zap_range)
{
	check_no_lost_dirty(_metadata, self, false);
}

KMMU_TEST_F(aging, no_lost_dirty_zap_all)
{
	check_no_lost_dirty(_metadata, self, true);
}

#define ZAP_ROUNDS	12

/*
 * Aging walks (lockless ones under RCU only) while a vCPU writes and the
 * host zaps ranges and whole roots under them, and the aging mode flips
 * now and then.  No walk may touch a freed table (ASan), nothing may WARN
 * (the leak check counts WARNs), and every write lands.
 */
KMMU_TEST_F(aging, age_during_zaps)
{
	uint64_t seen;
	int round, ret = 0;

	start_ager(_metadata, self, NPAGES, true);
	start_toucher(_metadata, self, 0, 0, NPAGES, WRITE_VALUE, true);
	for (round = 0; round < ZAP_ROUNDS && !ret; round++) {
		uint64_t first = (round * 97) % (NPAGES - 64);

		seen = __atomic_load_n(&self->t[0].passes, __ATOMIC_ACQUIRE);
		if (round % 3 == 2)
			ret = kmmu_vm_zap(self->vm, 0, 0, 0, KMMU_ZAP_ALL);
		else
			ret = kmmu_vm_zap(self->vm, page_gpa(first), 64 * SZ_4K, 0, 0);
		if (!ret && round % 4 == 3)
			ret = kmmu_vm_enable_cap(self->vm, KMMU_CAP_LOCKLESS_AGING,
						 (round / 4) & 1);
		wait_progress(&self->t[0].passes, seen);
	}
	stop_threads(self);
	EXPECT_EQ(0, ret);
	expect_threads_ok(_metadata, self);
	TH_LOG("%llu aging passes, %llu write passes", (unsigned long long)self->ager.passes,
	       (unsigned long long)self->t[0].passes);
	expect_data(_metadata, self, 1);
}

/* ---- the host's path ---- */

/*
 * kmmu_host_age() is what the mm's clear_young/test_young notifiers do on
 * a real host: it finds the same pages young and old as KMMU_AGE, counts
 * them in the same stats, and translates host addresses to the right
 * guest pages, for a range inside the slot too.
 */
KMMU_TEST_F(aging, host_age_matches)
{
	struct kmmu_vm_stats st0, st1;
	uint64_t young, old, page, n;

	if (!is_user())
		SKIP(return, "kmmu_host_age() needs the user backend");
	touch(_metadata, self, 0, 0, NPAGES, 1, 50);
	ASSERT_EQ(0, kmmu_vm_stats(self->vm, &st0));
	EXPECT_EQ(1, kmmu_host_age(self->mem.addr, AGE_SIZE, true));
	EXPECT_EQ(0, kmmu_host_age(self->mem.addr, AGE_SIZE, false));
	ASSERT_EQ(0, kmmu_vm_stats(self->vm, &st1));
	EXPECT_EQ(2, st1.aging_passes - st0.aging_passes);
	EXPECT_EQ(NPAGES, st1.young - st0.young);
	EXPECT_EQ(NPAGES, st1.old - st0.old);
	memset(self->touched, 0, sizeof(self->touched));

	touch(_metadata, self, 1, 3, (NPAGES - 4) / 7 + 1, 7, 50);
	n = nr_touched(self, 0, NPAGES);
	ASSERT_EQ(0, kmmu_vm_stats(self->vm, &st0));
	EXPECT_EQ(1, kmmu_host_age(self->mem.addr, AGE_SIZE, false));
	ASSERT_EQ(0, kmmu_vm_stats(self->vm, &st1));
	EXPECT_EQ(n, st1.young - st0.young);
	EXPECT_EQ(NPAGES - n, st1.old - st0.old);
	ASSERT_EQ(0, kmmu_vm_age(self->vm, AGE_GPA, AGE_SIZE, 0, KMMU_AGE_TEST_ONLY, &young,
				 &old));
	EXPECT_EQ(st1.young - st0.young, young);
	EXPECT_EQ(st1.old - st0.old, old);

	/* One page at a time: the host address lands on its own guest page. */
	for (page = 0; page < 24; page++) {
		EXPECT_EQ(self->touched[page],
			  kmmu_host_age(page_word(self, page), SZ_4K, false)) {
			TH_LOG("page %llu", (unsigned long long)page);
		}
	}

	/* Clearing pages [10, 40) through the host leaves the others young. */
	n = nr_touched(self, 10, 30);
	ASSERT_EQ(0, kmmu_vm_stats(self->vm, &st0));
	EXPECT_EQ(n > 0, kmmu_host_age(page_word(self, 10), 30 * SZ_4K, true));
	ASSERT_EQ(0, kmmu_vm_stats(self->vm, &st1));
	EXPECT_EQ(n, st1.young - st0.young);
	EXPECT_EQ(30 - n, st1.old - st0.old);
	memset(&self->touched[10], 0, 30 * sizeof(bool));
	expect_age_all(_metadata, self, KMMU_AGE_TEST_ONLY);
	expect_leaves_age(_metadata, self);

	/* Host memory no slot maps: nothing to find, but the pass still counts. */
	ASSERT_EQ(0, kmmu_vm_stats(self->vm, &st0));
	EXPECT_EQ(0, kmmu_host_age(page_word(self, NPAGES), 16 * SZ_4K, true));
	ASSERT_EQ(0, kmmu_vm_stats(self->vm, &st1));
	EXPECT_EQ(1, st1.aging_passes - st0.aging_passes);
	EXPECT_EQ(st0.young, st1.young);
	EXPECT_EQ(st0.old, st1.old);
}

/* ---- huge leaves ---- */

/*
 * Counts are in 4K pages: a young 2M leaf is 512 young pages.  A range
 * that covers part of a huge leaf reports only the pages in the range,
 * so young + old never exceeds the range, as the ABI's "pages found"
 * says.
 */
KMMU_TEST_F(aging, huge_leaf_counts_in_range)
{
	const uint64_t gpa = AGE_GPA + SZ_1G;
	struct kmmu_workload wl = kmmu_wl_seq(gpa, 2 * SZ_2M, 100, WRITE_VALUE);
	struct kmmu_run run;
	uint64_t young, old;
	int ret;

	ret = kmmu_mem_alloc(&self->huge_mem, KMMU_BACKING_HUGETLB_2M, 2 * SZ_2M);
	if (ret == -EOPNOTSUPP)
		SKIP(return, "no 2M hugetlb pages on this host");
	ASSERT_EQ(0, ret);
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 1, 0, gpa, 2 * SZ_2M, self->huge_mem.addr));
	ASSERT_EQ(0, kmmu_vcpu_run_workload(self->vcpu[0], &wl, &run));
	ASSERT_EQ(KMMU_EXIT_DONE, run.exit_reason);

	ASSERT_EQ(0, kmmu_vm_age(self->vm, gpa, 2 * SZ_2M, 0, KMMU_AGE_TEST_ONLY, &young, &old));
	if (host_quiet()) {
		EXPECT_EQ(1024, young);
		EXPECT_EQ(0, old);
	}
	ASSERT_EQ(0, kmmu_vm_age(self->vm, gpa + SZ_4K, SZ_4K, 0, KMMU_AGE_TEST_ONLY, &young,
				 &old));
	EXPECT_GE(1, young + old);
	if (host_quiet()) {
		EXPECT_EQ(1, young);
	}
	ASSERT_EQ(0, kmmu_vm_age(self->vm, gpa + SZ_2M - SZ_4K, 2 * SZ_4K, 0,
				 KMMU_AGE_TEST_ONLY, &young, &old));
	EXPECT_GE(2, young + old);

	/* Aging a part clears the whole leaf: it has only one A bit. */
	ASSERT_EQ(0, kmmu_vm_age(self->vm, gpa + SZ_4K, SZ_4K, 0, KMMU_AGE_FLUSH, &young, &old));
	EXPECT_GE(1, young + old);
	ASSERT_EQ(0, kmmu_vm_age(self->vm, gpa, SZ_2M, 0, KMMU_AGE_TEST_ONLY, &young, &old));
	EXPECT_EQ(0, young);
	if (host_quiet()) {
		EXPECT_EQ(512, old);
	}
}

/* ---- bad input ---- */

static long age_raw(FIXTURE_DATA(aging) *self, struct kmmu_age a)
{
	return kmmu_ioctl(self->vm->fd, KMMU_AGE, (unsigned long)&a);
}

/*
 * Every malformed KMMU_AGE gets its errno and changes nothing (no pass is
 * counted); the lockless-aging capability takes 0 or 1 only.
 */
KMMU_TEST_F(aging, bad_input)
{
	const struct {
		const char *what;
		struct kmmu_age a;
	} bad[] = {
		{ "unknown flag", { .gpa = AGE_GPA, .size = SZ_4K, .flags = 1u << 3 } },
		{ "all flags", { .gpa = AGE_GPA, .size = SZ_4K, .flags = ~0u } },
		{ "padding", { .gpa = AGE_GPA, .size = SZ_4K, .padding = 1 } },
		{ "reserved[0]", { .gpa = AGE_GPA, .size = SZ_4K, .reserved = { 1ULL << 63 } } },
		{ "as_id 2", { .gpa = AGE_GPA, .size = SZ_4K, .as_id = 2 } },
		{ "as_id ~0", { .gpa = AGE_GPA, .size = SZ_4K, .as_id = ~0u } },
		{ "size 0", { .gpa = AGE_GPA, .size = 0 } },
		{ "unaligned gpa", { .gpa = AGE_GPA + 0x800, .size = SZ_4K } },
		{ "gpa off by 8", { .gpa = AGE_GPA + 8, .size = SZ_4K } },
		{ "unaligned size", { .gpa = AGE_GPA, .size = SZ_4K + 0x800 } },
		{ "size below a page", { .gpa = AGE_GPA, .size = 8 } },
		{ "end past 2^48", { .gpa = GPA_LIMIT - SZ_4K, .size = 2 * SZ_4K } },
		{ "start at 2^48", { .gpa = GPA_LIMIT, .size = SZ_4K } },
		{ "size past 2^48", { .gpa = 0, .size = GPA_LIMIT + SZ_4K } },
		{ "wrapping", { .gpa = GPA_LIMIT - SZ_4K, .size = ~0xfffULL } },
		{ "huge gpa", { .gpa = ~0xfffULL, .size = SZ_4K } },
	};
	struct kmmu_vm_stats st0, st1;
	struct kmmu_enable_cap cap = { .cap = KMMU_CAP_LOCKLESS_AGING };
	struct kmmu_age ok = { .gpa = GPA_LIMIT - SZ_4K, .size = SZ_4K, .as_id = 1,
			       .young = 77, .old = 88 };
	unsigned int i;

	touch(_metadata, self, 0, 0, NPAGES, 1, 0);
	ASSERT_EQ(0, kmmu_vm_stats(self->vm, &st0));
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		EXPECT_EQ(-EINVAL, age_raw(self, bad[i].a)) {
			TH_LOG("%s", bad[i].what);
		}
	}
	EXPECT_EQ(-EFAULT, kmmu_ioctl(self->vm->fd, KMMU_AGE, 0));
	ASSERT_EQ(0, kmmu_vm_stats(self->vm, &st1));
	if (host_quiet()) {
		EXPECT_EQ(st0.aging_passes, st1.aging_passes);
	}
	/* Bad requests cleared nothing: every page is still young. */
	expect_age_all(_metadata, self, KMMU_AGE_TEST_ONLY);

	/* The edges are fine: the last page below 2^48, the whole space, as_id 1. */
	EXPECT_EQ(0, age_raw(self, ok));
	EXPECT_EQ(0, kmmu_ioctl(self->vm->fd, KMMU_AGE, (unsigned long)&ok));
	EXPECT_EQ(0, ok.young);
	EXPECT_EQ(0, ok.old);
	ok.gpa = 0;
	ok.size = GPA_LIMIT;
	ok.as_id = 0;
	ok.flags = KMMU_AGE_TEST_ONLY;
	EXPECT_EQ(0, kmmu_ioctl(self->vm->fd, KMMU_AGE, (unsigned long)&ok));
	if (host_quiet()) {
		EXPECT_EQ(NPAGES, ok.young);
	}

	EXPECT_EQ(1, kmmu_ioctl(self->vm->sys_fd, KMMU_CHECK_EXTENSION, KMMU_CAP_LOCKLESS_AGING));
	EXPECT_EQ(-EINVAL, kmmu_vm_enable_cap(self->vm, KMMU_CAP_LOCKLESS_AGING, 2));
	EXPECT_EQ(-EINVAL, kmmu_vm_enable_cap(self->vm, KMMU_CAP_LOCKLESS_AGING, ~0ULL));
	cap.args[0] = 1;
	cap.args[3] = 1;
	EXPECT_EQ(-EINVAL, kmmu_ioctl(self->vm->fd, KMMU_ENABLE_CAP, (unsigned long)&cap));
	cap.args[3] = 0;
	cap.flags = 1;
	EXPECT_EQ(-EINVAL, kmmu_ioctl(self->vm->fd, KMMU_ENABLE_CAP, (unsigned long)&cap));
	cap.flags = 0;
	cap.reserved[0] = 1;
	EXPECT_EQ(-EINVAL, kmmu_ioctl(self->vm->fd, KMMU_ENABLE_CAP, (unsigned long)&cap));
	/* Either way, at any time: even while a slot logs. */
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 0, KMMU_MEM_LOG_DIRTY_PAGES, AGE_GPA, AGE_SIZE,
					 self->mem.addr));
	EXPECT_EQ(0, kmmu_vm_enable_cap(self->vm, KMMU_CAP_LOCKLESS_AGING, 1));
	EXPECT_EQ(0, kmmu_vm_enable_cap(self->vm, KMMU_CAP_LOCKLESS_AGING, 0));
}

TEST_HARNESS_MAIN
