// SPDX-License-Identifier: GPL-2.0
/*
 * Dirty logging with KVM's semantics (KMMU_GET_DIRTY_LOG, KMMU_CLEAR_DIRTY_LOG,
 * manual protection, initially-all-set, write-protection and D-bit tracking),
 * checked the way KVM's dirty_log_test checks it: a page the guest wrote is
 * never missing from the log, with the vCPUs paused or running during the
 * collection, while logging is turned on and off under existing mappings,
 * and while the host discards and ages the memory; and every bad request gets
 * its errno and changes nothing.
 */
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include "test_util.h"

/* The logging slot: 1000 pages, so that its last 64-page word is partial. */
#define LOG_SLOT	0
#define LOG_GPA		0x100000000ULL
#define LOG_PAGES	1000
#define LOG_SIZE	(LOG_PAGES * SZ_4K)
#define LOG_LONGS	((LOG_PAGES + 63) / 64)

/* A slot that never logs, right after the logging slot's memory. */
#define PLAIN_SLOT	1
#define PLAIN_GPA	0x200000000ULL
#define PLAIN_SIZE	(16 * SZ_4K)

#define AS1(id)		((1u << 16) | (id))

#define NR_WORKERS	2
/* Accesses per RUN: short RUNs, so that a pause or a new round is seen soon. */
#define RUN_BUDGET	128
/* RUNs every worker does between two collections. */
#define RUNS_PER_ROUND	4
#define QUIESCENT_ROUNDS	10
#define CONCURRENT_ROUNDS	12
#define RACE_ROUNDS		10
/*
 * Noise passes per RUN of the writer, one per access: about what an
 * unpaced noise thread makes beside the dev backend's vCPU (200 or so),
 * on any backend.
 */
#define NOISE_PER_RUN		RUN_BUDGET

/*
 * The guest writes stamp ^ gpa (KMMU_WL_XOR_GPA): the host can tell which
 * round wrote a page, and a page the guest never wrote (0, or discarded)
 * decodes to no round at all.  Rounds count from 1.
 */
#define STAMP_MAGIC	0x5d1e0000ULL

static uint64_t stamp(unsigned int round)
{
	return STAMP_MAGIC << 32 | round;
}

static uint64_t page_gpa(unsigned int page)
{
	return LOG_GPA + page * SZ_4K;
}

/* The round that wrote @word into @page, 0 if none did. */
static unsigned int stamp_round(uint64_t word, unsigned int page)
{
	uint64_t s = word ^ page_gpa(page);

	return (s >> 32) == STAMP_MAGIC ? (uint32_t)s : 0;
}

static bool test_bit64(const uint64_t *bm, unsigned int nr)
{
	return (bm[nr / 64] >> (nr % 64)) & 1;
}

static void set_bit64(uint64_t *bm, unsigned int nr)
{
	bm[nr / 64] |= 1ULL << (nr % 64);
}

static uint64_t splitmix64(uint64_t *state)
{
	uint64_t x = (*state += 0x9e3779b97f4a7c15ULL);

	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

#define load(p)		__atomic_load_n((p), __ATOMIC_ACQUIRE)
#define store(p, v)	__atomic_store_n((p), (v), __ATOMIC_RELEASE)

/*
 * A thread waiting for another one gives its CPU away for a moment: there
 * may be fewer CPUs than threads, and sched_yield() does not hand the CPU
 * to a thread of the same priority reliably.
 */
static void backoff(void)
{
	usleep(20);
}

/* How a test asks for logging; caps are set before any slot logs. */
struct log_cfg {
	uint32_t mode;		/* KMMU_DIRTY_LOG_MODE_* */
	bool manual;		/* KMMU_DIRTY_LOG_MANUAL_PROTECT_ENABLE */
	bool initially_set;	/* KMMU_DIRTY_LOG_INITIALLY_SET (implies manual) */
	bool no_eager_split;	/* KMMU_CAP_EAGER_SPLIT_CHUNK_SIZE 0 */
	uint32_t ring;		/* KMMU_CAP_DIRTY_LOG_RING bytes, 0 = bitmaps */
};

/* Rings of 256 entries fill within a round; of 4096, never in these tests. */
#define SMALL_RING	4096
#define BIG_RING	65536

#define WRPROT		KMMU_DIRTY_LOG_MODE_WRPROT
#define DBIT		KMMU_DIRTY_LOG_MODE_DBIT

/* What the workers are told; written by the host only. */
struct round_ctl {
	unsigned int round;	/* the stamp to write from now on */
	int pause;		/* park between RUNs until cleared */
	int stop;
	bool ring;		/* the VM logs into rings: they may fill */
};

/* A vCPU thread writing the current round's stamp in short RUNs. */
struct worker {
	struct kmmu_vcpu *vcpu;
	struct round_ctl *ctl;
	unsigned int idx;
	pthread_t thread;
	bool started;
	/* Written by the worker, read by the host at any time. */
	unsigned long runs;
	unsigned long ring_full;	/* RUNs that exited with a full ring */
	unsigned int round;	/* the stamp of every RUN from now on */
	int parked;
	int exited;
	/* Written by the worker before it sets @exited, read once it has. */
	int err;
	bool bad;
	struct kmmu_run bad_run;
};

/* A host thread discarding or aging parts of the logging slot, over and over. */
struct noise {
	struct kmmu_vm *vm;
	uint8_t *hva;
	bool discard;		/* kmmu_host_discard(), else kmmu_vm_age() */
	uint32_t age_flags;
	uint64_t rng;
	int stop;
	unsigned long passes;
	unsigned long credit;	/* passes it may have made so far */
	int err;
	int exited;
	pthread_t thread;
	bool started;
};

FIXTURE(dirty_log) {
	struct kmmu_vm *vm;
	struct kmmu_vcpu *vcpu[NR_WORKERS];
	struct kmmu_mem mem;
	struct round_ctl ctl;
	struct worker w[NR_WORKERS];
	struct noise noise;
	uint64_t bm[LOG_LONGS];
	bool lockless;			/* KMMU_CAP_LOCKLESS_AGING of every VM made */
	uint64_t snap[LOG_PAGES];	/* words at the previous collection */
	bool pending[LOG_PAGES];	/* stamp seen, not yet in any log */
};

FIXTURE_VARIANT(dirty_log) {
	struct kmmu_vm_config cfg;
};

KMMU_ADD_FORMAT_VARIANTS(dirty_log);

FIXTURE_SETUP(dirty_log)
{
	int i;

	KMMU_REQUIRE_BACKEND();
	KMMU_REQUIRE_FORMAT(&variant->cfg);
	KMMU_VM_CREATE(&variant->cfg, &self->vm);
	/* THP: a slot that does not log yet is mapped with 2M leaves where it can. */
	ASSERT_EQ(0, kmmu_mem_alloc(&self->mem, KMMU_BACKING_ANON_THP, LOG_SIZE + PLAIN_SIZE));
	/* Writable host pages on dev, so no fault sees the zero page. */
	memset(self->mem.addr, 0, self->mem.size);
	for (i = 0; i < NR_WORKERS; i++) {
		ASSERT_EQ(0, kmmu_vcpu_create(self->vm, i, &self->vcpu[i]));
	}
}

static void stop_workers(FIXTURE_DATA(dirty_log) *self)
{
	int i;

	store(&self->ctl.stop, 1);
	for (i = 0; i < NR_WORKERS; i++) {
		if (self->w[i].started)
			pthread_join(self->w[i].thread, NULL);
		self->w[i].started = false;
	}
	store(&self->ctl.stop, 0);
	store(&self->ctl.pause, 0);
}

static void stop_noise(FIXTURE_DATA(dirty_log) *self)
{
	store(&self->noise.stop, 1);
	if (self->noise.started)
		pthread_join(self->noise.thread, NULL);
	self->noise.started = false;
}

FIXTURE_TEARDOWN(dirty_log)
{
	/* A failed ASSERT may leave threads running: they go first. */
	stop_workers(self);
	stop_noise(self);
	kmmu_vm_free(self->vm);
	self->vm = NULL;
	kmmu_mem_free(&self->mem);
	/*
	 * EXPECT, not ASSERT: after a failed ASSERT in the body the 6.1
	 * harness still has its trigger set, and an ASSERT here would jump
	 * back into this teardown for ever.  It fails the test all the same.
	 */
	EXPECT_EQ(0, kmmu_lib_leak_check());
}

/* Exact logs: the host leaves the memory alone (test_util.h). */
static bool host_quiet(void)
{
	return kmmu_host_quiet();
}

static uint64_t *page_word(FIXTURE_DATA(dirty_log) *self, unsigned int page)
{
	return (uint64_t *)((uint8_t *)self->mem.addr + page * SZ_4K);
}

/* The guest may be writing it right now: one atomic read. */
static uint64_t read_page(FIXTURE_DATA(dirty_log) *self, unsigned int page)
{
	return __atomic_load_n(page_word(self, page), __ATOMIC_RELAXED);
}

/* Rings come before vCPUs: a new VM with rings of @bytes, and new vCPUs. */
static void remake_vm_with_rings(struct __test_metadata *_metadata,
				 FIXTURE_DATA(dirty_log) *self,
				 const struct kmmu_vm_config *vm_cfg, uint32_t bytes)
{
	int i;

	kmmu_vm_free(self->vm);
	self->vm = NULL;
	KMMU_VM_CREATE(vm_cfg, &self->vm);
	ASSERT_EQ(0, kmmu_vm_enable_cap(self->vm, KMMU_CAP_DIRTY_LOG_RING, bytes));
	ASSERT_EQ(0, kmmu_vm_enable_cap(self->vm, KMMU_CAP_LOCKLESS_AGING, self->lockless));
	for (i = 0; i < NR_WORKERS; i++) {
		ASSERT_EQ(0, kmmu_vcpu_create(self->vm, i, &self->vcpu[i]));
		ASSERT_NE(NULL, self->vcpu[i]->ring);
	}
	self->ctl.ring = true;
}

#define NO_DBIT		"D-bit mode needs A/D bits (ENABLE_CAP refused it)"
#define NO_DBIT_RING_HW	"hw backend: D-bit mode with rings needs PML (ENABLE_CAP refused it)"

/*
 * Set the VM's logging capabilities (for rings, on a new VM); NULL, or why
 * the caller must skip.  D-bit mode needs A/D bits, and with rings on
 * hardware vCPUs a PML-like log AMD's CPUs do not have: in either case
 * ENABLE_CAP refuses it.
 */
static const char *enable_log_caps(struct __test_metadata *_metadata, FIXTURE_DATA(dirty_log) *self,
			    const struct kmmu_vm_config *vm_cfg, const struct log_cfg *cfg)
{
	struct kmmu_vm *vm;
	uint64_t manual = 0;

	if (cfg->ring)
		remake_vm_with_rings(_metadata, self, vm_cfg, cfg->ring);
	vm = self->vm;

	if (cfg->mode == DBIT && (vm_cfg->flags & KMMU_VM_AD_DISABLED)) {
		EXPECT_EQ(-EINVAL, kmmu_vm_enable_cap(vm, KMMU_CAP_DIRTY_LOG_MODE, DBIT));
		return NO_DBIT;
	}
	/* No PML on AMD: hardware vCPUs cannot log D bits into rings. */
	if (cfg->mode == DBIT && cfg->ring && kmmu_backend_hw()) {
		EXPECT_EQ(-EOPNOTSUPP, kmmu_vm_enable_cap(vm, KMMU_CAP_DIRTY_LOG_MODE, DBIT));
		return NO_DBIT_RING_HW;
	}
	ASSERT_EQ(0, kmmu_vm_enable_cap(vm, KMMU_CAP_DIRTY_LOG_MODE, cfg->mode));
	if (cfg->manual || cfg->initially_set)
		manual |= KMMU_DIRTY_LOG_MANUAL_PROTECT_ENABLE;
	if (cfg->initially_set)
		manual |= KMMU_DIRTY_LOG_INITIALLY_SET;
	ASSERT_EQ(0, kmmu_vm_enable_cap(vm, KMMU_CAP_MANUAL_DIRTY_LOG_PROTECT, manual));
	/* 64M a batch (32 tables) is kmmu's default. */
	ASSERT_EQ(0, kmmu_vm_enable_cap(vm, KMMU_CAP_EAGER_SPLIT_CHUNK_SIZE,
					cfg->no_eager_split ? 0 : 32 * SZ_2M));
	return NULL;
}


static int set_log_slot(FIXTURE_DATA(dirty_log) *self, uint32_t flags)
{
	return kmmu_vm_set_memslot(self->vm, LOG_SLOT, flags, LOG_GPA, LOG_SIZE, self->mem.addr);
}

/*
 * One collection, the way a migration loop does it: GET, and with manual
 * protection CLEAR exactly what GET reported.  The log is left in self->bm.
 */
struct ring_sink {
	uint64_t *bm;
	unsigned long bad;
	uint32_t bad_slot;
	uint64_t bad_offset;
};

static void ring_to_bitmap(void *arg, uint32_t slot, uint64_t offset)
{
	struct ring_sink *sink = arg;

	if (slot != LOG_SLOT || offset >= LOG_PAGES) {
		sink->bad++;
		sink->bad_slot = slot;
		sink->bad_offset = offset;
		return;
	}
	set_bit64(sink->bm, offset);
}

/*
 * With rings: collect every vCPU's new entries into self->bm, then reset
 * them, as a migration loop does before it copies the pages.
 */
static void collect_rings(struct __test_metadata *_metadata, FIXTURE_DATA(dirty_log) *self)
{
	struct ring_sink sink = { .bm = self->bm };
	long n = 0;
	int i;

	for (i = 0; i < NR_WORKERS; i++)
		n += kmmu_vcpu_collect_dirty_ring(self->vcpu[i], ring_to_bitmap, &sink);
	ASSERT_EQ(0, sink.bad) {
		TH_LOG("ring entry for slot %#x offset %llu", sink.bad_slot,
		       (unsigned long long)sink.bad_offset);
	}
	/* Exactly what was collected is reset, however much was pushed since. */
	ASSERT_EQ(n, kmmu_vm_reset_dirty_rings(self->vm));
}

static void collect(struct __test_metadata *_metadata, FIXTURE_DATA(dirty_log) *self,
		    const struct log_cfg *cfg)
{
	memset(self->bm, 0, sizeof(self->bm));
	if (cfg->ring) {
		collect_rings(_metadata, self);
		return;
	}
	ASSERT_EQ(0, kmmu_vm_get_dirty_log(self->vm, LOG_SLOT, self->bm));
	if (cfg->manual || cfg->initially_set) {
		ASSERT_EQ(0, kmmu_vm_clear_dirty_log(self->vm, LOG_SLOT, 0, LOG_PAGES, self->bm));
	}
}

/*
 * Every page of @want must be in @got: a write missing from the log is the
 * one failure dirty logging must never have.  With @exact nothing else may
 * be in it either -- only where nothing but the test touches the SPTEs (the
 * user backend), since on dev the host may zap and refault at any time.
 * Bits past the slot's end are padding and always clear.
 */
static void expect_log(struct __test_metadata *_metadata, const uint64_t *got,
		       const uint64_t *want, bool exact, const char *what)
{
	unsigned int p;

	for (p = 0; p < LOG_PAGES; p++) {
		if (test_bit64(want, p)) {
			ASSERT_TRUE(test_bit64(got, p)) {
				TH_LOG("%s: page %u was written but is not in the log", what, p);
			}
		} else if (exact) {
			ASSERT_FALSE(test_bit64(got, p)) {
				TH_LOG("%s: page %u is in the log but was not written", what, p);
			}
		}
	}
	for (; p < LOG_LONGS * 64; p++) {
		ASSERT_FALSE(test_bit64(got, p)) {
			TH_LOG("%s: bit %u is past the slot's end", what, p);
		}
	}
}

static void set_range(uint64_t *bm, unsigned int first, unsigned int n)
{
	unsigned int p;

	for (p = first; p < first + n; p++)
		set_bit64(bm, p);
}

static void clear_range(uint64_t *bm, unsigned int first, unsigned int n)
{
	unsigned int p;

	for (p = first; p < first + n; p++)
		bm[p / 64] &= ~(1ULL << (p % 64));
}

/* vCPU 0 writes round @round's stamp to pages [first, first + n) and checks it landed. */
static void write_range(struct __test_metadata *_metadata, FIXTURE_DATA(dirty_log) *self,
			unsigned int first, unsigned int n, unsigned int round)
{
	struct kmmu_workload wl = kmmu_wl_seq(page_gpa(first), n * SZ_4K, 100, stamp(round));
	struct kmmu_run run;
	unsigned int p;

	wl.flags = KMMU_WL_XOR_GPA;
	ASSERT_EQ(0, kmmu_vcpu_run_workload(self->vcpu[0], &wl, &run));
	ASSERT_EQ(KMMU_EXIT_DONE, run.exit_reason);
	for (p = first; p < first + n; p++) {
		ASSERT_EQ(round, stamp_round(*page_word(self, p), p));
	}
}

/* Write each page of @pages, add it to @want. */
static void write_pages(struct __test_metadata *_metadata, FIXTURE_DATA(dirty_log) *self,
			const unsigned int *pages, unsigned int n, unsigned int round,
			uint64_t *want)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		write_range(_metadata, self, pages[i], 1, round);
		set_bit64(want, pages[i]);
	}
}

/* vCPU 0 reads [first, first + n): maps what is not mapped, without writing. */
static void read_range(struct __test_metadata *_metadata, FIXTURE_DATA(dirty_log) *self,
		       unsigned int first, unsigned int n)
{
	struct kmmu_workload wl = kmmu_wl_seq(page_gpa(first), n * SZ_4K, 0, 0);
	struct kmmu_run run;

	ASSERT_EQ(0, kmmu_vcpu_run_workload(self->vcpu[0], &wl, &run));
	ASSERT_EQ(KMMU_EXIT_DONE, run.exit_reason);
}

/* Pages every test writes somewhere: both ends of the slot and of 64-page words. */
static const unsigned int edge_pages[] = { 0, 1, 63, 64, 511, 512, 959, 960, 999 };

/* ---- 1. collections with the vCPUs paused or running ---- */

/*
 * A worker's next workload: random pages with some reads (reads map pages
 * without dirtying them, which the exact check needs), or a sequential
 * write pass over a random range.  @n makes each workload of a round new.
 */
static struct kmmu_workload worker_workload(const struct worker *w, unsigned int round,
					    unsigned int n)
{
	uint64_t rng = (uint64_t)round << 40 | (uint64_t)w->idx << 32 | n;
	uint64_t seed = splitmix64(&rng);
	struct kmmu_workload wl = {
		.gpa = LOG_GPA,
		.size = LOG_SIZE,
		.iterations = 1,
		.seed = seed,
		.value = stamp(round),
		.pattern = KMMU_PATTERN_RANDOM,
		.write_percent = 70,
		.flags = KMMU_WL_XOR_GPA,
	};

	if ((round + w->idx + n) & 1) {
		uint64_t first = seed % LOG_PAGES;
		uint64_t len = 1 + splitmix64(&rng) % (LOG_PAGES - first);

		wl.gpa = page_gpa(first);
		wl.size = len * SZ_4K;
		wl.pattern = KMMU_PATTERN_SEQUENTIAL;
		wl.write_percent = 100;
	}
	return wl;
}

/* Is this an exit a worker's RUN may take?  Anything else is a failure. */
static bool worker_exit_ok(const struct worker *w, const struct kmmu_run *run)
{
	if (run->exit_reason == KMMU_EXIT_DIRTY_RING_FULL)
		return w->ctl->ring;
	return run->exit_reason == KMMU_EXIT_BUDGET || run->exit_reason == KMMU_EXIT_DONE ||
	       run->exit_reason == KMMU_EXIT_INTR;
}

static void *worker_fn(void *arg)
{
	struct worker *w = arg;
	unsigned int cur = 0, n = 0;
	struct kmmu_workload wl;
	bool need_wl = true;
	struct kmmu_run run;
	int ret;

	while (!load(&w->ctl->stop)) {
		unsigned int round;

		if (load(&w->ctl->pause)) {
			store(&w->parked, 1);
			while (load(&w->ctl->pause) && !load(&w->ctl->stop))
				backoff();
			store(&w->parked, 0);
			continue;
		}
		round = load(&w->ctl->round);
		if (round != cur || need_wl) {
			wl = worker_workload(w, round, n++);
			ret = kmmu_vcpu_set_workload(w->vcpu, &wl);
			if (ret) {
				w->err = ret;
				break;
			}
			cur = round;
			need_wl = false;
			/* Every RUN with an older stamp has returned. */
			store(&w->round, round);
		}
		memset(&run, 0, sizeof(run));
		run.max_accesses = RUN_BUDGET;
		ret = kmmu_vcpu_run(w->vcpu, &run);
		if (ret) {
			w->err = ret;
			break;
		}
		if (!worker_exit_ok(w, &run)) {
			w->bad = true;
			w->bad_run = run;
			break;
		}
		/* Full: nothing runs until the host collects and resets. */
		if (run.exit_reason == KMMU_EXIT_DIRTY_RING_FULL) {
			__atomic_add_fetch(&w->ring_full, 1, __ATOMIC_RELAXED);
			backoff();
		}
		need_wl = run.exit_reason == KMMU_EXIT_DONE;
		__atomic_add_fetch(&w->runs, 1, __ATOMIC_RELEASE);
	}
	store(&w->exited, 1);
	return NULL;
}

static void start_workers(struct __test_metadata *_metadata, FIXTURE_DATA(dirty_log) *self)
{
	int i;

	for (i = 0; i < NR_WORKERS; i++) {
		struct worker *w = &self->w[i];

		memset(w, 0, sizeof(*w));
		w->vcpu = self->vcpu[i];
		w->ctl = &self->ctl;
		w->idx = i;
		ASSERT_EQ(0, pthread_create(&w->thread, NULL, worker_fn, w));
		w->started = true;
	}
}

/* A worker that stopped on its own stopped on an error: say which. */
static void check_workers(struct __test_metadata *_metadata, FIXTURE_DATA(dirty_log) *self)
{
	int i;

	for (i = 0; i < NR_WORKERS; i++) {
		struct worker *w = &self->w[i];

		if (!load(&w->exited))
			continue;
		ASSERT_EQ(0, w->err);
		ASSERT_FALSE(w->bad) {
			TH_LOG("worker %d: exit %u at gpa 0x%llx", i, w->bad_run.exit_reason,
			       (unsigned long long)w->bad_run.mmio.gpa);
		}
	}
}

/* Let every worker do RUNS_PER_ROUND more RUNs. */
static void wait_runs(struct __test_metadata *_metadata, FIXTURE_DATA(dirty_log) *self)
{
	unsigned long base[NR_WORKERS];
	int i;

	for (i = 0; i < NR_WORKERS; i++)
		base[i] = load(&self->w[i].runs);
	for (i = 0; i < NR_WORKERS; i++) {
		while (load(&self->w[i].runs) < base[i] + RUNS_PER_ROUND &&
		       !load(&self->w[i].exited))
			backoff();
	}
	check_workers(_metadata, self);
}

static void pause_workers(struct __test_metadata *_metadata, FIXTURE_DATA(dirty_log) *self)
{
	int i;

	store(&self->ctl.pause, 1);
	for (i = 0; i < NR_WORKERS; i++) {
		while (!load(&self->w[i].parked) && !load(&self->w[i].exited))
			backoff();
	}
	check_workers(_metadata, self);
}

/* Start round @round and wait until no worker can write an older stamp. */
static void next_round(struct __test_metadata *_metadata, FIXTURE_DATA(dirty_log) *self,
		       unsigned int round)
{
	int i;

	store(&self->ctl.round, round);
	for (i = 0; i < NR_WORKERS; i++) {
		while (load(&self->w[i].round) != round && !load(&self->w[i].exited))
			backoff();
	}
	check_workers(_metadata, self);
}

/*
 * The first collection of a log that started all set reports every page,
 * whatever was written.
 */
static void expect_all_set(struct __test_metadata *_metadata, const uint64_t *bm)
{
	uint64_t all[LOG_LONGS] = { 0 };

	set_range(all, 0, LOG_PAGES);
	expect_log(_metadata, bm, all, false, "initially set");
}

static unsigned long ring_full_exits(FIXTURE_DATA(dirty_log) *self)
{
	unsigned long full = 0;
	int i;

	for (i = 0; i < NR_WORKERS; i++)
		full += load(&self->w[i].ring_full);
	return full;
}

/*
 * The workers are parked before each collection.  A page whose word changed
 * since the previous collection was written in this round and must be in
 * the log; on the user backend nothing else may be (a log that started all
 * set excepted, the first time).
 */
static void quiescent_rounds(struct __test_metadata *_metadata, FIXTURE_DATA(dirty_log) *self,
			     const FIXTURE_VARIANT(dirty_log) *variant,
			     const struct log_cfg *cfg)
{
	unsigned int k, p;

	const char *why = enable_log_caps(_metadata, self, &variant->cfg, cfg);

	if (why)
		SKIP(return, "%s", why);
	ASSERT_EQ(0, set_log_slot(self, KMMU_MEM_LOG_DIRTY_PAGES));
	for (p = 0; p < LOG_PAGES; p++)
		self->snap[p] = read_page(self, p);

	self->ctl.round = 1;
	start_workers(_metadata, self);
	for (k = 1; k <= QUIESCENT_ROUNDS; k++) {
		bool first_all_set = cfg->initially_set && k == 1;
		unsigned long full = ring_full_exits(self);
		bool exact;

		wait_runs(_metadata, self);
		pause_workers(_metadata, self);
		/*
		 * A full ring stops the vCPU between the fault that logged a
		 * page and the write it was for, like KVM: the log may name a
		 * page not written yet.
		 */
		exact = host_quiet() && !first_all_set && full == ring_full_exits(self);
		collect(_metadata, self, cfg);
		if (first_all_set)
			expect_all_set(_metadata, self->bm);

		for (p = 0; p < LOG_PAGES; p++) {
			uint64_t word = read_page(self, p);
			bool logged = test_bit64(self->bm, p);

			if (word != self->snap[p]) {
				ASSERT_TRUE(logged) {
					TH_LOG("round %u: page %u was written, is not logged",
					       k, p);
				}
				ASSERT_EQ(k, stamp_round(word, p));
			} else if (exact) {
				ASSERT_FALSE(logged) {
					TH_LOG("round %u: page %u is logged, was not written",
					       k, p);
				}
			}
			self->snap[p] = word;
		}
		store(&self->ctl.round, k + 1);
		store(&self->ctl.pause, 0);
	}
	stop_workers(self);
	check_workers(_metadata, self);
}

/*
 * The workers keep writing during the collections.  A write of round k
 * comes after collection k-1 (the stamp is handed out after it) and before
 * collection k+1 (next_round() waits for it), so a page that holds round
 * k's stamp once every worker has moved on must be in log k or in log k+1.
 */
static void concurrent_rounds(struct __test_metadata *_metadata, FIXTURE_DATA(dirty_log) *self,
			      const FIXTURE_VARIANT(dirty_log) *variant,
			      const struct log_cfg *cfg)
{
	unsigned int k, p;

	const char *why = enable_log_caps(_metadata, self, &variant->cfg, cfg);

	if (why)
		SKIP(return, "%s", why);
	ASSERT_EQ(0, set_log_slot(self, KMMU_MEM_LOG_DIRTY_PAGES));

	self->ctl.round = 1;
	start_workers(_metadata, self);
	for (k = 1; k <= CONCURRENT_ROUNDS; k++) {
		wait_runs(_metadata, self);
		collect(_metadata, self, cfg);
		next_round(_metadata, self, k + 1);
		if (cfg->initially_set && k == 1)
			expect_all_set(_metadata, self->bm);

		for (p = 0; p < LOG_PAGES; p++) {
			unsigned int s = stamp_round(read_page(self, p), p);
			bool logged = test_bit64(self->bm, p);

			/* Round k-1's stamp, missing from log k-1: log k is its last chance. */
			if (self->pending[p]) {
				ASSERT_TRUE(logged) {
					TH_LOG("page %u: round %u's stamp, in no log up to %u",
					       p, k - 1, k);
				}
			}
			ASSERT_GE(k + 1, s);
			self->pending[p] = s == k && !logged;
		}
	}
	stop_workers(self);
	check_workers(_metadata, self);
}

#define COLLECTION_TESTS(_name, _mode, _manual, _initially_set)		\
KMMU_TEST_F(dirty_log, quiescent_##_name)					\
{										\
	const struct log_cfg cfg = { .mode = (_mode), .manual = (_manual),	\
				     .initially_set = (_initially_set) };	\
										\
	quiescent_rounds(_metadata, self, variant, &cfg);			\
}										\
KMMU_TEST_F(dirty_log, concurrent_##_name)					\
{										\
	const struct log_cfg cfg = { .mode = (_mode), .manual = (_manual),	\
				     .initially_set = (_initially_set) };	\
										\
	concurrent_rounds(_metadata, self, variant, &cfg);			\
}

COLLECTION_TESTS(wrprot, WRPROT, false, false)
COLLECTION_TESTS(wrprot_manual, WRPROT, true, false)
COLLECTION_TESTS(wrprot_initially_set, WRPROT, true, true)
COLLECTION_TESTS(dbit, DBIT, false, false)
COLLECTION_TESTS(dbit_manual, DBIT, true, false)
COLLECTION_TESTS(dbit_initially_set, DBIT, true, true)

/* The same with dirty rings instead of bitmaps, small enough to fill. */
#define RING_COLLECTION_TESTS(_name, _mode)					\
KMMU_TEST_F(dirty_log, quiescent_##_name)					\
{										\
	const struct log_cfg cfg = { .mode = (_mode), .ring = SMALL_RING };	\
										\
	quiescent_rounds(_metadata, self, variant, &cfg);			\
	ring_full_seen(_metadata, self);					\
}										\
KMMU_TEST_F(dirty_log, concurrent_##_name)					\
{										\
	const struct log_cfg cfg = { .mode = (_mode), .ring = SMALL_RING };	\
										\
	concurrent_rounds(_metadata, self, variant, &cfg);			\
	ring_full_seen(_metadata, self);					\
}

/* Rings of SMALL_RING fill in these rounds: the full exit was exercised. */
static void ring_full_seen(struct __test_metadata *_metadata, FIXTURE_DATA(dirty_log) *self)
{
	if (self->ctl.ring && !_metadata->skip) {
		EXPECT_LT(0, ring_full_exits(self));
	}
}

RING_COLLECTION_TESTS(wrprot_ring, WRPROT)
RING_COLLECTION_TESTS(dbit_ring, DBIT)

/* ---- 2. logging turned on, off and on again under existing mappings ---- */

static uint64_t stat_dirty_pages(struct __test_metadata *_metadata, struct kmmu_vm *vm)
{
	struct kmmu_vm_stats st;

	ASSERT_EQ(0, kmmu_vm_stats(vm, &st));
	return st.dirty_pages;
}

/*
 * The slot is mapped (with 2M leaves where THP allows, on the user
 * backend) and written before logging starts: those writes are not in the
 * log, and every write after is, including those that would have gone
 * through a leaf made writable before logging started.  Without eager
 * splitting, D-bit mode keeps the 2M leaves (it only clears their D bits),
 * and one write then logs every page of its leaf: there the log may hold
 * more than was written.
 */
static void toggle_logging(struct __test_metadata *_metadata, FIXTURE_DATA(dirty_log) *self,
			   const FIXTURE_VARIANT(dirty_log) *variant, const struct log_cfg *cfg)
{
	static const unsigned int more[] = { 2, 100, 300, 700, 998 };
	bool exact = host_quiet() && (cfg->mode == WRPROT || !cfg->no_eager_split);
	uint64_t want[LOG_LONGS] = { 0 }, none[LOG_LONGS] = { 0 };
	struct kmmu_vm_stats st;
	char what[64];
	uint64_t dirty;
	int pass;

	const char *why = enable_log_caps(_metadata, self, &variant->cfg, cfg);

	if (why)
		SKIP(return, "%s", why);
	ASSERT_EQ(0, set_log_slot(self, 0));
	write_range(_metadata, self, 0, LOG_PAGES, 1);
	EXPECT_EQ(-ENOENT, kmmu_vm_get_dirty_log(self->vm, LOG_SLOT, self->bm));

	for (pass = 0; pass < 2; pass++) {
		unsigned int round = 2 + pass * 3;

		/* 2M leaves again: THP maps huge while the slot does not log. */
		if (host_quiet()) {
			ASSERT_EQ(0, kmmu_vm_stats(self->vm, &st));
			EXPECT_LE(1, st.pages_2m);
		}
		dirty = stat_dirty_pages(_metadata, self->vm);
		ASSERT_EQ(0, set_log_slot(self, KMMU_MEM_LOG_DIRTY_PAGES));
		if (host_quiet() && !cfg->no_eager_split) {
			ASSERT_EQ(0, kmmu_vm_stats(self->vm, &st));
			EXPECT_EQ(0, st.pages_2m);
		}
		/* Written before logging started: not dirty. */
		collect(_metadata, self, cfg);
		snprintf(what, sizeof(what), "pass %d, just enabled", pass);
		expect_log(_metadata, self->bm, none, host_quiet(), what);

		memset(want, 0, sizeof(want));
		write_pages(_metadata, self, edge_pages, ARRAY_SIZE(edge_pages), round, want);
		write_pages(_metadata, self, more, ARRAY_SIZE(more), round, want);
		collect(_metadata, self, cfg);
		snprintf(what, sizeof(what), "pass %d, written after enabling", pass);
		expect_log(_metadata, self->bm, want, exact, what);
		EXPECT_LE(dirty + ARRAY_SIZE(edge_pages) + ARRAY_SIZE(more),
			  stat_dirty_pages(_metadata, self->vm));

		/* Protected again by the collection: the same writes log again, nothing else. */
		collect(_metadata, self, cfg);
		snprintf(what, sizeof(what), "pass %d, nothing written", pass);
		expect_log(_metadata, self->bm, none, exact, what);
		memset(want, 0, sizeof(want));
		write_pages(_metadata, self, edge_pages, ARRAY_SIZE(edge_pages), round + 1, want);
		collect(_metadata, self, cfg);
		snprintf(what, sizeof(what), "pass %d, written again", pass);
		expect_log(_metadata, self->bm, want, exact, what);

		ASSERT_EQ(0, set_log_slot(self, 0));
		EXPECT_EQ(-ENOENT, kmmu_vm_get_dirty_log(self->vm, LOG_SLOT, self->bm));
		EXPECT_EQ(-ENOENT, kmmu_vm_clear_dirty_log(self->vm, LOG_SLOT, 0, LOG_PAGES,
							   self->bm));
		/* Whatever protection logging left behind, writes land. */
		write_range(_metadata, self, 0, LOG_PAGES, round + 2);
	}
}

KMMU_TEST_F(dirty_log, toggle_wrprot)
{
	toggle_logging(_metadata, self, variant, &(struct log_cfg){ .mode = WRPROT });
}

KMMU_TEST_F(dirty_log, toggle_wrprot_manual)
{
	toggle_logging(_metadata, self, variant,
		       &(struct log_cfg){ .mode = WRPROT, .manual = true });
}

KMMU_TEST_F(dirty_log, toggle_wrprot_no_eager_split)
{
	toggle_logging(_metadata, self, variant,
		       &(struct log_cfg){ .mode = WRPROT, .no_eager_split = true });
}

KMMU_TEST_F(dirty_log, toggle_dbit)
{
	toggle_logging(_metadata, self, variant, &(struct log_cfg){ .mode = DBIT });
}

KMMU_TEST_F(dirty_log, toggle_dbit_manual)
{
	toggle_logging(_metadata, self, variant,
		       &(struct log_cfg){ .mode = DBIT, .manual = true });
}

KMMU_TEST_F(dirty_log, toggle_dbit_no_eager_split)
{
	toggle_logging(_metadata, self, variant,
		       &(struct log_cfg){ .mode = DBIT, .no_eager_split = true });
}

/* ---- 3. a log that starts all set ---- */

static void expect_get(struct __test_metadata *_metadata, FIXTURE_DATA(dirty_log) *self,
		       const uint64_t *want, bool exact, const char *what)
{
	memset(self->bm, 0, sizeof(self->bm));
	ASSERT_EQ(0, kmmu_vm_get_dirty_log(self->vm, LOG_SLOT, self->bm));
	expect_log(_metadata, self->bm, want, exact, what);
}

/*
 * Logging starts on a mapped, written slot with every bit set.  CLEAR of a
 * 64-page-aligned range protects exactly the pages its bitmap names, and
 * after writes to some of them GET reports those, and still every page
 * never cleared.  The range lies inside the slot's first 2M, which THP maps
 * with one leaf (user backend): without eager splitting that leaf is still
 * there at the first CLEAR, and neither its W bit nor its D bit may make
 * the log say more than what was written.
 */
static void initially_set(struct __test_metadata *_metadata, FIXTURE_DATA(dirty_log) *self,
			  const FIXTURE_VARIANT(dirty_log) *variant, const struct log_cfg *cfg)
{
	static const unsigned int in_range[] = { 64, 65, 100, 127, 128, 190, 191 };
	static const unsigned int tail[] = { 961, 999 };
	const uint64_t some = 1ULL << 1 | 1ULL << 3 | 1ULL << 63;
	const bool exact = host_quiet();
	uint64_t ones[LOG_LONGS], want[LOG_LONGS] = { 0 };

	const char *why = enable_log_caps(_metadata, self, &variant->cfg, cfg);

	if (why)
		SKIP(return, "%s", why);
	ASSERT_EQ(0, set_log_slot(self, 0));
	write_range(_metadata, self, 0, LOG_PAGES, 1);
	ASSERT_EQ(0, set_log_slot(self, KMMU_MEM_LOG_DIRTY_PAGES));
	memset(ones, 0xff, sizeof(ones));

	set_range(want, 0, LOG_PAGES);
	expect_get(_metadata, self, want, true, "all set");
	/* Writes before any CLEAR change nothing: every bit is set already. */
	write_range(_metadata, self, 0, 16, 2);
	expect_get(_metadata, self, want, true, "all set, written");

	ASSERT_EQ(0, kmmu_vm_clear_dirty_log(self->vm, LOG_SLOT, 64, 128, ones));
	clear_range(want, 64, 128);
	expect_get(_metadata, self, want, exact, "[64, 192) cleared");
	write_pages(_metadata, self, in_range, ARRAY_SIZE(in_range), 3, want);
	expect_get(_metadata, self, want, exact, "[64, 192) cleared, some written");

	/* Only the pages the CLEAR's bitmap names are cleared. */
	ASSERT_EQ(0, kmmu_vm_clear_dirty_log(self->vm, LOG_SLOT, 0, 64,
					     (uint64_t[1]){ some }));
	want[0] &= ~some;
	expect_get(_metadata, self, want, exact, "pages 1, 3 and 63 cleared");

	/* The partial last word: a CLEAR that reaches the slot's end may be short. */
	ASSERT_EQ(0, kmmu_vm_clear_dirty_log(self->vm, LOG_SLOT, 960, LOG_PAGES - 960, ones));
	clear_range(want, 960, LOG_PAGES - 960);
	expect_get(_metadata, self, want, exact, "last word cleared");
	write_pages(_metadata, self, tail, ARRAY_SIZE(tail), 4, want);
	expect_get(_metadata, self, want, exact, "last word cleared, two written");
}

KMMU_TEST_F(dirty_log, initially_set_wrprot)
{
	initially_set(_metadata, self, variant,
		      &(struct log_cfg){ .mode = WRPROT, .initially_set = true });
}

KMMU_TEST_F(dirty_log, initially_set_wrprot_no_eager_split)
{
	initially_set(_metadata, self, variant,
		      &(struct log_cfg){ .mode = WRPROT, .initially_set = true,
					 .no_eager_split = true });
}

KMMU_TEST_F(dirty_log, initially_set_dbit)
{
	initially_set(_metadata, self, variant,
		      &(struct log_cfg){ .mode = DBIT, .initially_set = true });
}

KMMU_TEST_F(dirty_log, initially_set_dbit_no_eager_split)
{
	initially_set(_metadata, self, variant,
		      &(struct log_cfg){ .mode = DBIT, .initially_set = true,
					 .no_eager_split = true });
}

/* ---- 4. logging while the host discards and ages ---- */

static void *noise_fn(void *arg)
{
	struct noise *n = arg;
	uint64_t first, len;
	int ret;

	while (!load(&n->stop)) {
		/*
		 * Paced by the vCPU: unbounded, the invalidations would have a
		 * vCPU whose faults cost an exit each (the hw backend) retry
		 * its faults and refault what was discarded for ever longer.
		 */
		if (load(&n->passes) >= load(&n->credit)) {
			backoff();
			continue;
		}
		first = splitmix64(&n->rng) % LOG_PAGES;
		len = 1 + splitmix64(&n->rng) % 64;

		/* Now and then the whole slot at once. */
		if (!(splitmix64(&n->rng) % 8)) {
			first = 0;
			len = LOG_PAGES;
		}
		if (first + len > LOG_PAGES)
			len = LOG_PAGES - first;
		if (n->discard)
			ret = kmmu_host_discard(n->hva + first * SZ_4K, len * SZ_4K);
		else
			ret = kmmu_vm_age(n->vm, page_gpa(first), len * SZ_4K, 0, n->age_flags,
					  NULL, NULL);
		if (ret) {
			n->err = ret;
			break;
		}
		__atomic_add_fetch(&n->passes, 1, __ATOMIC_RELEASE);
		sched_yield();
	}
	store(&n->exited, 1);
	return NULL;
}

/* The noise thread may make @more passes more. */
static void grant_noise(struct noise *n, unsigned long more)
{
	__atomic_add_fetch(&n->credit, more, __ATOMIC_RELEASE);
}

/* Let the noise thread finish @more passes, so that it did overlap with something. */
static void wait_noise(struct __test_metadata *_metadata, FIXTURE_DATA(dirty_log) *self,
		       unsigned long more)
{
	unsigned long target = load(&self->noise.passes) + more;

	grant_noise(&self->noise, more);

	while (load(&self->noise.passes) < target && !load(&self->noise.exited))
		backoff();
	ASSERT_EQ(0, self->noise.err);
}

/* vCPU 0 writes round @round's stamp over [first, first + n) in short RUNs. */
static void write_range_slowly(struct __test_metadata *_metadata, FIXTURE_DATA(dirty_log) *self,
			       unsigned int first, unsigned int n, unsigned int round)
{
	struct kmmu_workload wl = kmmu_wl_seq(page_gpa(first), n * SZ_4K, 100, stamp(round));
	struct kmmu_run run;

	wl.flags = KMMU_WL_XOR_GPA;
	ASSERT_EQ(0, kmmu_vcpu_set_workload(self->vcpu[0], &wl));
	do {
		memset(&run, 0, sizeof(run));
		run.max_accesses = RUN_BUDGET;
		ASSERT_EQ(0, kmmu_vcpu_run(self->vcpu[0], &run));
		ASSERT_TRUE(run.exit_reason == KMMU_EXIT_BUDGET ||
			    run.exit_reason == KMMU_EXIT_DONE) {
			TH_LOG("exit %u", run.exit_reason);
		}
		grant_noise(&self->noise, NOISE_PER_RUN);
		sched_yield();
	} while (run.exit_reason != KMMU_EXIT_DONE);
}

/*
 * Rounds of: vCPU 0 writes a random range, then the host collects, all the
 * while another thread discards or ages.  Every page of the range must be
 * in the log, even one whose data a discard threw away since (the write
 * happened: a migration must send the page again).  On the user backend
 * nothing else may be in the log, since neither discarding nor aging
 * writes -- except in D-bit mode with discards, where a leaf zapped between
 * a CLEAR's clearing of its bit and of its D bit may log its page once more.
 */
static void race_rounds(struct __test_metadata *_metadata, FIXTURE_DATA(dirty_log) *self,
			const FIXTURE_VARIANT(dirty_log) *variant, const struct log_cfg *cfg,
			unsigned int *round)
{
	const bool exact = host_quiet() && !(self->noise.discard && cfg->mode == DBIT);
	uint64_t rng = 0xd1e7 + *round, want[LOG_LONGS];
	unsigned int k, p;
	char what[64];

	if (enable_log_caps(_metadata, self, &variant->cfg, cfg))
		return;
	/* Rings came with a new VM. */
	self->noise.vm = self->vm;
	ASSERT_EQ(0, set_log_slot(self, KMMU_MEM_LOG_DIRTY_PAGES));
	self->noise.stop = 0;
	self->noise.exited = 0;
	self->noise.credit = self->noise.passes;
	ASSERT_EQ(0, pthread_create(&self->noise.thread, NULL, noise_fn, &self->noise));
	self->noise.started = true;
	wait_noise(_metadata, self, 1);

	for (k = 0; k < RACE_ROUNDS; k++) {
		unsigned int first = splitmix64(&rng) % LOG_PAGES;
		unsigned int n = 1 + splitmix64(&rng) % (LOG_PAGES - first);

		write_range_slowly(_metadata, self, first, n, ++*round);
		wait_noise(_metadata, self, 1);
		collect(_metadata, self, cfg);

		memset(want, 0, sizeof(want));
		for (p = first; p < first + n; p++) {
			uint64_t word = read_page(self, p);

			set_bit64(want, p);
			/* Data is what was written, or gone with a discard. */
			ASSERT_TRUE(stamp_round(word, p) == *round ||
				    (self->noise.discard && !word)) {
				TH_LOG("page %u holds 0x%llx after round %u", p,
				       (unsigned long long)word, *round);
			}
		}
		snprintf(what, sizeof(what), "mode %u, manual %d, round %u", cfg->mode,
			 cfg->manual, *round);
		expect_log(_metadata, self->bm, want, exact, what);
	}
	stop_noise(self);
	ASSERT_EQ(0, self->noise.err);
	ASSERT_EQ(0, set_log_slot(self, 0));
}

/* Every logging setting in turn, each on a slot made for it. */
static void race_all_modes(struct __test_metadata *_metadata, FIXTURE_DATA(dirty_log) *self,
			   const FIXTURE_VARIANT(dirty_log) *variant, bool discard,
			   uint32_t age_flags, bool lockless)
{
	static const struct log_cfg cfgs[] = {
		{ .mode = WRPROT },
		{ .mode = WRPROT, .manual = true },
		{ .mode = DBIT },
		{ .mode = DBIT, .manual = true },
		/* Last: rings need a VM of their own. */
		{ .mode = WRPROT, .ring = BIG_RING },
		{ .mode = DBIT, .ring = BIG_RING },
	};
	unsigned int i, round = 0;

	self->noise.vm = self->vm;
	self->noise.hva = self->mem.addr;
	self->noise.discard = discard;
	self->noise.age_flags = age_flags;
	self->noise.rng = 0x4015e + variant->cfg.spte_format * 16 + variant->cfg.flags;
	self->lockless = lockless;
	ASSERT_EQ(0, kmmu_vm_enable_cap(self->vm, KMMU_CAP_LOCKLESS_AGING, lockless));
	for (i = 0; i < ARRAY_SIZE(cfgs); i++)
		race_rounds(_metadata, self, variant, &cfgs[i], &round);
}

KMMU_TEST_F(dirty_log, race_discard)
{
	race_all_modes(_metadata, self, variant, true, 0, false);
}

KMMU_TEST_F(dirty_log, race_age)
{
	race_all_modes(_metadata, self, variant, false, 0, false);
}

KMMU_TEST_F(dirty_log, race_age_flush)
{
	race_all_modes(_metadata, self, variant, false, KMMU_AGE_FLUSH, false);
}

KMMU_TEST_F(dirty_log, race_age_lockless)
{
	race_all_modes(_metadata, self, variant, false, 0, true);
}

/*
 * The races above, one step at a time: a page written, its leaf then
 * zapped (KMMU_ZAP of a range, a host discard, KMMU_ZAP_ALL) before the
 * collection, is still in the log.
 */
static void zap_before_collect(struct __test_metadata *_metadata, FIXTURE_DATA(dirty_log) *self,
			       const FIXTURE_VARIANT(dirty_log) *variant, const struct log_cfg *cfg)
{
	static const char * const hows[] = { "KMMU_ZAP", "host discard", "KMMU_ZAP_ALL" };
	uint64_t want[LOG_LONGS] = { 0 };
	int how;

	const char *why = enable_log_caps(_metadata, self, &variant->cfg, cfg);

	if (why)
		SKIP(return, "%s", why);
	ASSERT_EQ(0, set_log_slot(self, KMMU_MEM_LOG_DIRTY_PAGES));
	set_range(want, 100, 64);
	for (how = 0; how < 3; how++) {
		write_range(_metadata, self, 100, 64, 1 + how);
		if (how == 0) {
			ASSERT_EQ(0, kmmu_vm_zap(self->vm, page_gpa(100), 64 * SZ_4K, 0, 0));
		} else if (how == 1) {
			ASSERT_EQ(0, kmmu_host_discard(page_word(self, 100), 64 * SZ_4K));
		} else {
			ASSERT_EQ(0, kmmu_vm_zap(self->vm, 0, 0, 0, KMMU_ZAP_ALL));
		}
		collect(_metadata, self, cfg);
		expect_log(_metadata, self->bm, want, host_quiet(), hows[how]);
	}
}

KMMU_TEST_F(dirty_log, zap_before_collect_wrprot)
{
	zap_before_collect(_metadata, self, variant, &(struct log_cfg){ .mode = WRPROT });
}

KMMU_TEST_F(dirty_log, zap_before_collect_dbit)
{
	zap_before_collect(_metadata, self, variant, &(struct log_cfg){ .mode = DBIT });
}

KMMU_TEST_F(dirty_log, zap_before_collect_wrprot_ring)
{
	zap_before_collect(_metadata, self, variant,
			   &(struct log_cfg){ .mode = WRPROT, .ring = BIG_RING });
}

KMMU_TEST_F(dirty_log, zap_before_collect_dbit_ring)
{
	zap_before_collect(_metadata, self, variant,
			   &(struct log_cfg){ .mode = DBIT, .ring = BIG_RING });
}

KMMU_TEST_F(dirty_log, zap_before_collect_dbit_manual)
{
	zap_before_collect(_metadata, self, variant,
			   &(struct log_cfg){ .mode = DBIT, .manual = true });
}

/*
 * Aging between a write and the collection, one step at a time: write
 * every page (the vCPU's TLB now holds writable translations), age without
 * or with a flush, collect, write every page again: the second writes are
 * in the next log.  Aging must not make the collection skip the TLB flush
 * that stops writes through translations cached before it.
 */
static void age_between_writes(struct __test_metadata *_metadata, FIXTURE_DATA(dirty_log) *self,
			       const FIXTURE_VARIANT(dirty_log) *variant,
			       const struct log_cfg *cfg)
{
	uint64_t want[LOG_LONGS] = { 0 };
	unsigned int round = 0;
	char what[64];
	int how;

	const char *why = enable_log_caps(_metadata, self, &variant->cfg, cfg);

	if (why)
		SKIP(return, "%s", why);
	ASSERT_EQ(0, set_log_slot(self, KMMU_MEM_LOG_DIRTY_PAGES));
	set_range(want, 0, LOG_PAGES);
	for (how = 0; how < 4; how++) {
		uint32_t flags = (how & 1) ? KMMU_AGE_FLUSH : 0;

		ASSERT_EQ(0, kmmu_vm_enable_cap(self->vm, KMMU_CAP_LOCKLESS_AGING, how >> 1));
		write_range(_metadata, self, 0, LOG_PAGES, ++round);
		ASSERT_EQ(0, kmmu_vm_age(self->vm, LOG_GPA, LOG_SIZE, 0, flags, NULL, NULL));
		collect(_metadata, self, cfg);
		snprintf(what, sizeof(what), "age flags 0x%x, lockless %d: written, aged", flags,
			 how >> 1);
		expect_log(_metadata, self->bm, want, host_quiet(), what);
		write_range(_metadata, self, 0, LOG_PAGES, ++round);
		collect(_metadata, self, cfg);
		snprintf(what, sizeof(what), "age flags 0x%x, lockless %d: written again",
			 flags, how >> 1);
		expect_log(_metadata, self->bm, want, host_quiet(), what);
	}
}

KMMU_TEST_F(dirty_log, age_between_writes_wrprot)
{
	age_between_writes(_metadata, self, variant, &(struct log_cfg){ .mode = WRPROT });
}

KMMU_TEST_F(dirty_log, age_between_writes_wrprot_manual)
{
	age_between_writes(_metadata, self, variant,
			   &(struct log_cfg){ .mode = WRPROT, .manual = true });
}

KMMU_TEST_F(dirty_log, age_between_writes_dbit)
{
	age_between_writes(_metadata, self, variant, &(struct log_cfg){ .mode = DBIT });
}

/* ---- 5. bad input ---- */

/* Pages written before each bad request, which no bad request may lose. */
static const unsigned int some_pages[] = { 0, 5, 64, 511, 512, 999 };

static void fill_pattern(uint64_t *buf)
{
	memset(buf, 0xa5, LOG_LONGS * sizeof(*buf));
}

static void expect_pattern(struct __test_metadata *_metadata, const uint64_t *buf,
			   const char *what)
{
	unsigned int i;

	for (i = 0; i < LOG_LONGS; i++) {
		ASSERT_EQ(0xa5a5a5a5a5a5a5a5ULL, buf[i]) {
			TH_LOG("%s: the user's bitmap was written", what);
		}
	}
}

static int get_log_raw(struct kmmu_vm *vm, const struct kmmu_dirty_log *log)
{
	return kmmu_ioctl(vm->fd, KMMU_GET_DIRTY_LOG, (unsigned long)log);
}

static int clear_log_raw(struct kmmu_vm *vm, const struct kmmu_clear_dirty_log *log)
{
	return kmmu_ioctl(vm->fd, KMMU_CLEAR_DIRTY_LOG, (unsigned long)log);
}

/* The logging slot and, for the -ENOENT cases, a slot that does not log. */
static void bad_input_setup(struct __test_metadata *_metadata, FIXTURE_DATA(dirty_log) *self,
			    const FIXTURE_VARIANT(dirty_log) *variant, const struct log_cfg *cfg)
{
	ASSERT_EQ(NULL, enable_log_caps(_metadata, self, &variant->cfg, cfg));
	ASSERT_EQ(0, set_log_slot(self, KMMU_MEM_LOG_DIRTY_PAGES));
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, PLAIN_SLOT, 0, PLAIN_GPA, PLAIN_SIZE,
					 (uint8_t *)self->mem.addr + LOG_SIZE));
}

/*
 * Without manual protection a GET hands the log out and resets it, so a
 * bad GET that got as far as that would lose it: after each one, a good GET
 * must still report every page written before.
 */
KMMU_TEST_F(dirty_log, get_bad_input)
{
	uint64_t buf[LOG_LONGS], want[LOG_LONGS] = { 0 };
	const uint64_t ubuf = (uintptr_t)buf;
	const struct {
		const char *what;
		struct kmmu_dirty_log log;
		int err;
	} bad[] = {
		{ "slot without logging", { .slot = PLAIN_SLOT, .dirty_bitmap = ubuf }, -ENOENT },
		{ "no such slot", { .slot = 7, .dirty_bitmap = ubuf }, -ENOENT },
		{ "no such slot in address space 1",
		  { .slot = AS1(LOG_SLOT), .dirty_bitmap = ubuf }, -ENOENT },
		{ "slot id 512", { .slot = 512, .dirty_bitmap = ubuf }, -EINVAL },
		{ "slot id 0xffff", { .slot = 0xffff, .dirty_bitmap = ubuf }, -EINVAL },
		{ "as_id 2", { .slot = 2u << 16, .dirty_bitmap = ubuf }, -EINVAL },
		{ "as_id 0xffff", { .slot = 0xffff0000u, .dirty_bitmap = ubuf }, -EINVAL },
		{ "padding 1", { .slot = LOG_SLOT, .padding = 1, .dirty_bitmap = ubuf }, -EINVAL },
		{ "padding bit 31", { .slot = LOG_SLOT, .padding = 1u << 31, .dirty_bitmap = ubuf },
		  -EINVAL },
		{ "NULL bitmap", { .slot = LOG_SLOT }, -EFAULT },
	};
	unsigned int i, round = 0;

	bad_input_setup(_metadata, self, variant, &(struct log_cfg){ .mode = WRPROT });
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		write_pages(_metadata, self, some_pages, ARRAY_SIZE(some_pages), ++round, want);
		fill_pattern(buf);
		EXPECT_EQ(bad[i].err, get_log_raw(self->vm, &bad[i].log)) {
			TH_LOG("%s", bad[i].what);
		}
		expect_pattern(_metadata, buf, bad[i].what);
		expect_get(_metadata, self, want, host_quiet(), bad[i].what);
	}
	EXPECT_EQ(-EFAULT, kmmu_ioctl(self->vm->fd, KMMU_GET_DIRTY_LOG, 0));
	expect_get(_metadata, self, (uint64_t[LOG_LONGS]){ 0 }, host_quiet(), "NULL request");
}

/* The same with manual protection, where GET changes nothing anyway. */
KMMU_TEST_F(dirty_log, get_bad_input_manual)
{
	uint64_t buf[LOG_LONGS], want[LOG_LONGS] = { 0 };

	bad_input_setup(_metadata, self, variant,
			&(struct log_cfg){ .mode = WRPROT, .manual = true });
	write_pages(_metadata, self, some_pages, ARRAY_SIZE(some_pages), 1, want);
	fill_pattern(buf);
	EXPECT_EQ(-ENOENT, kmmu_vm_get_dirty_log(self->vm, PLAIN_SLOT, buf));
	EXPECT_EQ(-EINVAL, kmmu_vm_get_dirty_log(self->vm, 512, buf));
	EXPECT_EQ(-EINVAL, get_log_raw(self->vm, &(struct kmmu_dirty_log){
		.slot = LOG_SLOT, .padding = 2, .dirty_bitmap = (uintptr_t)buf }));
	expect_pattern(_metadata, buf, "bad GETs");
	EXPECT_EQ(-EFAULT, kmmu_vm_get_dirty_log(self->vm, LOG_SLOT, NULL));
	expect_get(_metadata, self, want, host_quiet(), "after bad GETs");
	expect_get(_metadata, self, want, host_quiet(), "GET again");
}

/*
 * Every bad CLEAR fails before it clears anything: the log stays as it was
 * (manual protection, so GET does not change it either).
 */
KMMU_TEST_F(dirty_log, clear_bad_input)
{
	uint64_t ones[LOG_LONGS], want[LOG_LONGS] = { 0 };
	const uint64_t uones = (uintptr_t)ones;
	const struct {
		const char *what;
		struct kmmu_clear_dirty_log log;
		int err;
	} bad[] = {
#define CLR(_slot, _first, _num)	{ .slot = (_slot), .num_pages = (_num),	\
					  .first_page = (_first), .dirty_bitmap = uones }
		{ "first_page 1", CLR(LOG_SLOT, 1, 64), -EINVAL },
		{ "first_page 63", CLR(LOG_SLOT, 63, 64), -EINVAL },
		{ "first_page 32, to the end", CLR(LOG_SLOT, 32, LOG_PAGES - 32), -EINVAL },
		{ "first_page at the end", CLR(LOG_SLOT, 1024, 64), -EINVAL },
		{ "first_page 2^63", CLR(LOG_SLOT, 1ULL << 63, 64), -EINVAL },
		{ "first_page 2^64 - 64", CLR(LOG_SLOT, -64ULL, 64), -EINVAL },
		{ "one page past the end", CLR(LOG_SLOT, 0, LOG_PAGES + 1), -EINVAL },
		{ "a word past the end", CLR(LOG_SLOT, 960, 64), -EINVAL },
		{ "num_pages 2^32 - 64", CLR(LOG_SLOT, 64, 0xffffffc0u), -EINVAL },
		{ "num_pages 63", CLR(LOG_SLOT, 0, 63), -EINVAL },
		{ "num_pages 65", CLR(LOG_SLOT, 0, 65), -EINVAL },
		{ "num_pages 39 in the last word", CLR(LOG_SLOT, 960, 39), -EINVAL },
		{ "slot without logging", CLR(PLAIN_SLOT, 0, 16), -ENOENT },
		{ "no such slot", CLR(7, 0, 64), -ENOENT },
		{ "no such slot in address space 1", CLR(AS1(LOG_SLOT), 0, 64), -ENOENT },
		{ "slot id 512", CLR(512, 0, 64), -EINVAL },
		{ "as_id 2", CLR(2u << 16, 0, 64), -EINVAL },
		{ "NULL bitmap", { .slot = LOG_SLOT, .num_pages = 64 }, -EFAULT },
		{ "NULL bitmap, to the end",
		  { .slot = LOG_SLOT, .first_page = 960, .num_pages = 40 }, -EFAULT },
#undef CLR
	};
	unsigned int i;

	bad_input_setup(_metadata, self, variant,
			&(struct log_cfg){ .mode = WRPROT, .manual = true });
	write_pages(_metadata, self, some_pages, ARRAY_SIZE(some_pages), 1, want);
	memset(ones, 0xff, sizeof(ones));
	expect_get(_metadata, self, want, host_quiet(), "before");
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		EXPECT_EQ(bad[i].err, clear_log_raw(self->vm, &bad[i].log)) {
			TH_LOG("%s", bad[i].what);
		}
		expect_get(_metadata, self, want, host_quiet(), bad[i].what);
	}
	EXPECT_EQ(-EFAULT, kmmu_ioctl(self->vm->fd, KMMU_CLEAR_DIRTY_LOG, 0));

	/* No pages: nothing to do, and nothing is read from the bitmap either. */
	EXPECT_EQ(0, kmmu_vm_clear_dirty_log(self->vm, LOG_SLOT, 0, 0, ones));
	EXPECT_EQ(0, kmmu_vm_clear_dirty_log(self->vm, LOG_SLOT, 960, 0, NULL));
	expect_get(_metadata, self, want, host_quiet(), "num_pages 0");

	/* The good neighbours of the bad ones. */
	EXPECT_EQ(0, kmmu_vm_clear_dirty_log(self->vm, LOG_SLOT, 960, LOG_PAGES - 960, ones));
	clear_range(want, 960, LOG_PAGES - 960);
	expect_get(_metadata, self, want, host_quiet(), "last word cleared");
	EXPECT_EQ(0, kmmu_vm_clear_dirty_log(self->vm, LOG_SLOT, 0, 64, ones));
	clear_range(want, 0, 64);
	expect_get(_metadata, self, want, host_quiet(), "first word cleared");
	EXPECT_EQ(0, kmmu_vm_clear_dirty_log(self->vm, LOG_SLOT, 0, LOG_PAGES, ones));
	expect_get(_metadata, self, (uint64_t[LOG_LONGS]){ 0 }, host_quiet(), "all cleared");
}

static int enable_cap_raw(struct kmmu_vm *vm, const struct kmmu_enable_cap *cap)
{
	return kmmu_ioctl(vm->fd, KMMU_ENABLE_CAP, (unsigned long)cap);
}

/*
 * The W bit of the leaf a read of @page maps: write-protection mode maps
 * reads of a logging slot without it, D-bit mode with it.  Bit 1 in both
 * formats (kmod/core/spte.h).  On dev the host may zap the leaf at any
 * time: read again, a few times.
 */
static bool read_maps_writable(struct __test_metadata *_metadata,
			       FIXTURE_DATA(dirty_log) *self, unsigned int page)
{
	struct kmmu_spte_query q;
	int try;

	for (try = 0; try < 5; try++) {
		read_range(_metadata, self, page, 1);
		ASSERT_EQ(0, kmmu_vm_get_spte(self->vm, page_gpa(page), 0, &q));
		if (q.level == 1 && (q.sptes[1] & (1ULL << 11)))
			return q.sptes[1] & (1ULL << 1);
	}
	ASSERT_TRUE(false) {
		TH_LOG("page %u is not mapped after a read", page);
	}
	return false;
}

/*
 * ENABLE_CAP refuses what it does not know, and the dirty-logging settings
 * while a slot logs; what it refused did not change the VM: manual
 * protection and write-protection mode, set before, are still what a
 * logging slot gets.
 */
KMMU_TEST_F(dirty_log, enable_cap_bad_input)
{
	const uint64_t enable = KMMU_DIRTY_LOG_MANUAL_PROTECT_ENABLE;
	const uint64_t init = KMMU_DIRTY_LOG_INITIALLY_SET;
	const uint32_t manual = KMMU_CAP_MANUAL_DIRTY_LOG_PROTECT;
	const uint32_t mode = KMMU_CAP_DIRTY_LOG_MODE;
	const uint32_t chunk = KMMU_CAP_EAGER_SPLIT_CHUNK_SIZE;
	const struct {
		const char *what;
		struct kmmu_enable_cap cap;
	} bad[] = {
		{ "cap 0", { .cap = 0 } },
		{ "cap 13", { .cap = 13, .args = { 1 } } },
		{ "cap 0xffffffff", { .cap = 0xffffffffu } },
		{ "query-only cap", { .cap = KMMU_CAP_SPTE_FORMATS, .args = { 1 } } },
		{ "flags", { .cap = manual, .flags = 1, .args = { enable | init } } },
		{ "flags bit 31", { .cap = mode, .flags = 1u << 31, .args = { DBIT } } },
		{ "reserved[0]", { .cap = manual, .args = { enable | init }, .reserved = { 1 } } },
		{ "reserved[3]", { .cap = mode, .args = { DBIT }, .reserved = { [3] = 1 } } },
		{ "args[1]", { .cap = manual, .args = { enable | init, 1 } } },
		{ "args[3]", { .cap = mode, .args = { DBIT, 0, 0, 1 } } },
		{ "INITIALLY_SET alone", { .cap = manual, .args = { init } } },
		{ "unknown manual-protect bit 2", { .cap = manual, .args = { enable | 4 } } },
		{ "manual-protect bit 63", { .cap = manual, .args = { enable | 1ULL << 63 } } },
		{ "mode 2", { .cap = mode, .args = { 2 } } },
		{ "mode 2^32 + 1", { .cap = mode, .args = { (1ULL << 32) + 1 } } },
		{ "chunk 3 pages", { .cap = chunk, .args = { 3 * SZ_4K } } },
		{ "chunk 4K + 1", { .cap = chunk, .args = { SZ_4K + 1 } } },
		{ "chunk 2K", { .cap = chunk, .args = { 2048 } } },
		{ "chunk 1", { .cap = chunk, .args = { 1 } } },
		{ "chunk 2G", { .cap = chunk, .args = { 2 * SZ_1G } } },
		{ "chunk 2^63", { .cap = chunk, .args = { 1ULL << 63 } } },
		{ "lockless aging 2", { .cap = KMMU_CAP_LOCKLESS_AGING, .args = { 2 } } },
	};
	uint64_t want[LOG_LONGS] = { 0 };
	bool ad = !(variant->cfg.flags & KMMU_VM_AD_DISABLED);
	unsigned int i;

	ASSERT_EQ(0, kmmu_vm_enable_cap(self->vm, mode, WRPROT));
	ASSERT_EQ(0, kmmu_vm_enable_cap(self->vm, manual, enable));
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		EXPECT_EQ(-EINVAL, enable_cap_raw(self->vm, &bad[i].cap)) {
			TH_LOG("%s", bad[i].what);
		}
	}
	EXPECT_EQ(-EFAULT, kmmu_ioctl(self->vm->fd, KMMU_ENABLE_CAP, 0));
	if (!ad) {
		EXPECT_EQ(-EINVAL, kmmu_vm_enable_cap(self->vm, mode, DBIT));
	}
	/* The edges that are fine. */
	EXPECT_EQ(0, kmmu_vm_enable_cap(self->vm, chunk, SZ_4K));
	EXPECT_EQ(0, kmmu_vm_enable_cap(self->vm, chunk, SZ_1G));
	EXPECT_EQ(0, kmmu_vm_enable_cap(self->vm, chunk, 0));
	EXPECT_EQ(0, kmmu_vm_enable_cap(self->vm, KMMU_CAP_LOCKLESS_AGING, 1));
	EXPECT_EQ(0, kmmu_vm_enable_cap(self->vm, KMMU_CAP_LOCKLESS_AGING, 0));

	/* Manual, not initially set, write protection: as set before the bad ones. */
	ASSERT_EQ(0, set_log_slot(self, KMMU_MEM_LOG_DIRTY_PAGES));
	expect_get(_metadata, self, want, true, "not initially set");
	EXPECT_FALSE(read_maps_writable(_metadata, self, 7));
	write_pages(_metadata, self, some_pages, ARRAY_SIZE(some_pages), 1, want);
	expect_get(_metadata, self, want, host_quiet(), "written");
	expect_get(_metadata, self, want, host_quiet(), "manual: GET again");

	/*
	 * While a slot logs, the mode and the split chunk stay; manual
	 * protection may change, as in KVM (here to what it is); bad
	 * arguments are still bad.
	 */
	EXPECT_EQ(0, kmmu_vm_enable_cap(self->vm, manual, enable));
	EXPECT_EQ(ad ? -EBUSY : -EINVAL, kmmu_vm_enable_cap(self->vm, mode, DBIT));
	EXPECT_EQ(-EBUSY, kmmu_vm_enable_cap(self->vm, chunk, SZ_2M));
	EXPECT_EQ(-EINVAL, kmmu_vm_enable_cap(self->vm, mode, 2));
	EXPECT_EQ(-EINVAL, kmmu_vm_enable_cap(self->vm, manual, init));
	EXPECT_EQ(-EINVAL, kmmu_vm_enable_cap(self->vm, chunk, 3 * SZ_4K));
	/* Aging is no logging setting. */
	EXPECT_EQ(0, kmmu_vm_enable_cap(self->vm, KMMU_CAP_LOCKLESS_AGING, 1));
	expect_get(_metadata, self, want, host_quiet(), "manual after -EBUSY");
	EXPECT_FALSE(read_maps_writable(_metadata, self, 8));

	/* A logging slot of address space 1 counts too. */
	ASSERT_EQ(0, set_log_slot(self, 0));
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, AS1(3), KMMU_MEM_LOG_DIRTY_PAGES, PLAIN_GPA,
					 PLAIN_SIZE, (uint8_t *)self->mem.addr + LOG_SIZE));
	EXPECT_EQ(-EBUSY, kmmu_vm_enable_cap(self->vm, chunk, SZ_1G));

	/* No slot logs any more: the settings may change again. */
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, AS1(3), 0, 0, 0, NULL));
	EXPECT_EQ(0, kmmu_vm_enable_cap(self->vm, manual, enable | init));
	EXPECT_EQ(0, kmmu_vm_enable_cap(self->vm, chunk, SZ_2M));
	if (ad) {
		EXPECT_EQ(0, kmmu_vm_enable_cap(self->vm, mode, DBIT));
		ASSERT_EQ(0, set_log_slot(self, KMMU_MEM_LOG_DIRTY_PAGES));
		/* On dev the host page may be mapped read-only for a read (swap-in). */
		if (host_quiet()) {
			EXPECT_TRUE(read_maps_writable(_metadata, self, 9));
		}
	} else {
		ASSERT_EQ(0, set_log_slot(self, KMMU_MEM_LOG_DIRTY_PAGES));
	}
	/* Initially set, now. */
	set_range(want, 0, LOG_PAGES);
	expect_get(_metadata, self, want, true, "initially set");
}

TEST_HARNESS_MAIN
