// SPDX-License-Identifier: GPL-2.0
/*
 * Concurrency stress: vCPU threads fault and write while the host discards
 * pages, zaps ranges and whole roots, toggles dirty logging (huge leaves
 * split, then rebuilt over live tables), or creates, moves and deletes a
 * memslot under them.  Interleavings are random (seeded) and bounded by
 * round counts, never by time; what is checked is deterministic: RUN never
 * fails and exits only as it may, after every storm a last write pass by
 * every vCPU lands word for word where the host reads it, a vCPU never
 * writes through a slot that is gone, a fault on a slot in flux waits for
 * as long as it takes, and (user backend) no page table is leaked or freed
 * while a walker can still see it.  The nested storm does the same with
 * the vCPUs as L2 guests through an identity map of L1's (shadow pages,
 * rmaps), with KMMU_INVALIDATE_NESTED, L1's own writes of its tables
 * (write-tracked) and aging without mmu_lock (lockless, fast-only) among
 * the host's operations.
 */
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "test_util.h"
#include "l1_tables.h"

#define STRESS_GPA	0x100000000ULL
#define STRESS_SIZE	(2 * SZ_2M)
#define NR_VCPUS	3

/* Storm: epochs of rounds, each epoch ending in a checked write pass. */
#define EPOCHS		3
#define ROUNDS		16

/* Memslot churn: slot 1 comes, goes and moves between two places. */
#define CHURN_GPA_A	0x100000000ULL
#define CHURN_GPA_B1	0x180000000ULL
#define CHURN_GPA_B2	0x1c0000000ULL
#define CHURN_SIZE	SZ_2M
#define CHURN_ROUNDS	16
#define SENTINEL	0xa5a5a5a5a5a5a5a5ULL

/* The nested storm: L1's tables in a slot of their own. */
#define L1_TABLES_GPA	0x200000000ULL
#define L1_TABLES_SIZE	(16 * SZ_4K)
#define L1_TABLES_SLOT	1

/* How long the host waits for vCPUs to make progress before going on anyway. */
#define PROGRESS_SPINS	200000

/*
 * Diagnostics go to stderr: the harness runs each test in a child that ends
 * with _exit(), which would drop what stdout still buffers.
 */
#define diag(fmt, ...)	fprintf(stderr, "# " fmt, ##__VA_ARGS__)

/*
 * KMMU_TEST_F with a longer hang guard than the harness's 30 s: on the QEMU
 * bench (TCG, two emulated CPUs for four threads) one storm can take 20 s.
 */
#define STRESS_TIMEOUT	120
#define STRESS_TEST_F(fixture, name)						\
	static void fixture##_##name##_body(struct __test_metadata *_metadata,	\
					    FIXTURE_DATA(fixture) *self,	\
					    const FIXTURE_VARIANT(fixture) *variant); \
	TEST_F_TIMEOUT(fixture, name, STRESS_TIMEOUT)				\
	{									\
		if (!_metadata->skip)						\
			fixture##_##name##_body(_metadata, self, variant);	\
	}									\
	static void fixture##_##name##_body(struct __test_metadata *_metadata,	\
					    FIXTURE_DATA(fixture) *self,	\
					    const FIXTURE_VARIANT(fixture) *variant)

#ifdef __SANITIZE_THREAD__
/*
 * TSan's longest history, so that a write made long before a reader met
 * the memory (a page table filled when it went into a vCPU's cache, a
 * memslot set built before it was published) keeps its stack and the
 * updater-side entries of selftests/tsan.supp can match it.  For the same
 * reason every thread that writes lives until the test ends: TSan forgets
 * the stacks of threads that are gone.
 */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
	return "history_size=7";
}
#endif

/* A written value is stamp ^ gpa; the stamp names the vCPU and its workload. */
static uint64_t stamp(unsigned int gen, unsigned int vcpu)
{
	return 0x5354ULL << 48 | (uint64_t)(gen & 0xfff) << 36 | (uint64_t)vcpu << 33;
}

static uint64_t splitmix64(uint64_t *state)
{
	uint64_t x = (*state += 0x9e3779b97f4a7c15ULL);

	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* ---- vCPU threads ---- */

/* What the host asks of a vCPU thread. */
enum vcpu_cmd {
	CMD_IDLE,	/* no RUN: the host looks at memory or changes the layout */
	CMD_STORM,	/* RUN workloads in small budgets, again and again */
	CMD_FINAL,	/* RUN final_wl to its end once, then idle */
	CMD_EXIT,
};

/*
 * One vCPU thread.  It works on [base, base + size) but only ever touches
 * the word @off bytes into each page, so vCPUs share pages, never words,
 * and the host knows what every word must end up holding.
 */
struct vcpu_thread {
	struct kmmu_vcpu *vcpu;
	unsigned int idx;
	uint64_t base;
	uint64_t size;
	uint64_t off;
	bool mmio_ok;		/* base has no memslot at times: MMIO exits are fine */
	uint64_t nested_root;	/* not 0: run as L2 through this EPTP / nCR3 */
	uint64_t rng;

	/* The host posts @cmd and bumps @cmd_seq; the thread acks with @ack_seq. */
	int cmd;
	unsigned int cmd_seq;
	unsigned int ack_seq;
	long progress;		/* RUNs returned so far */
	int failed;		/* RUN failed or exited as it may not: no more RUNs */

	/* The thread's own; the host reads them after an ack. */
	uint64_t runs;
	uint64_t mmio_exits;
	int err;		/* -errno from the library, 0 if none */
	bool bad;		/* an exit that must not happen */
	struct kmmu_run bad_run;
	struct kmmu_workload final_wl;	/* set by the host before CMD_FINAL */
	struct kmmu_run final_run;
	int final_ret;

	pthread_t thread;
	bool started;
};

/* Sequential write passes and random mixed ones, each with a new stamp. */
static struct kmmu_workload storm_workload(struct vcpu_thread *t, unsigned int gen)
{
	bool random = splitmix64(&t->rng) & 1;
	struct kmmu_workload wl = {
		.gpa = t->base + t->off,
		.size = t->size - t->off,
		.iterations = random ? 2 : 1,
		.seed = splitmix64(&t->rng),
		.value = stamp(gen, t->idx),
		.pattern = random ? KMMU_PATTERN_RANDOM : KMMU_PATTERN_SEQUENTIAL,
		.write_percent = random ? 75 : 100,
		.flags = KMMU_WL_XOR_GPA,
	};

	if (t->nested_root) {
		wl.flags |= KMMU_WL_NESTED;
		wl.nested_root = t->nested_root;
	}
	return wl;
}

/* Is this exit one RUN may take here?  DONE is handled by the caller. */
static bool exit_ok(const struct vcpu_thread *t, const struct kmmu_run *run)
{
	switch (run->exit_reason) {
	case KMMU_EXIT_BUDGET:
	case KMMU_EXIT_INTR:
		return true;
	case KMMU_EXIT_MMIO:
		return t->mmio_ok && run->mmio.len == 8 &&
		       run->mmio.gpa >= t->base && run->mmio.gpa - t->base < t->size &&
		       (run->mmio.gpa & (SZ_4K - 1)) == t->off;
	default:
		return false;
	}
}

static void vcpu_fail(struct vcpu_thread *t, int err, const struct kmmu_run *run)
{
	t->err = err;
	if (run) {
		t->bad = true;
		t->bad_run = *run;
	}
	__atomic_store_n(&t->failed, 1, __ATOMIC_RELEASE);
}

/* One short RUN of the storm: small budgets, so a command is seen soon. */
static void vcpu_storm_step(struct vcpu_thread *t, unsigned int *gen, bool *need_wl)
{
	struct kmmu_run run;
	int ret;

	if (*need_wl) {
		struct kmmu_workload wl = storm_workload(t, ++*gen);

		ret = kmmu_vcpu_set_workload(t->vcpu, &wl);
		if (ret) {
			vcpu_fail(t, ret, NULL);
			return;
		}
		*need_wl = false;
	}
	memset(&run, 0, sizeof(run));
	run.max_accesses = 16 + splitmix64(&t->rng) % 240;
	ret = kmmu_vcpu_run(t->vcpu, &run);
	/* A signal (dev backend) ends RUN with -EINTR and an INTR exit. */
	if (ret == -EINTR && run.exit_reason == KMMU_EXIT_INTR)
		ret = 0;
	if (ret) {
		vcpu_fail(t, ret, NULL);
		return;
	}
	t->runs++;
	__atomic_add_fetch(&t->progress, 1, __ATOMIC_RELEASE);
	if (run.exit_reason == KMMU_EXIT_DONE)
		*need_wl = true;
	else if (!exit_ok(t, &run))
		vcpu_fail(t, 0, &run);
	else if (run.exit_reason == KMMU_EXIT_MMIO)
		t->mmio_exits++;
}

static void *vcpu_thread_fn(void *arg)
{
	struct vcpu_thread *t = arg;
	unsigned int seen = 0, gen = 0;
	bool need_wl = true;
	int cmd = CMD_IDLE;

	for (;;) {
		unsigned int seq = __atomic_load_n(&t->cmd_seq, __ATOMIC_ACQUIRE);

		if (seq != seen) {
			seen = seq;
			cmd = __atomic_load_n(&t->cmd, __ATOMIC_RELAXED);
			if (cmd == CMD_FINAL) {
				t->final_ret = kmmu_vcpu_run_workload(t->vcpu, &t->final_wl,
								      &t->final_run);
				cmd = CMD_IDLE;
			}
			/* Whatever ran before, the next storm starts a new workload. */
			need_wl = true;
			__atomic_store_n(&t->ack_seq, seq, __ATOMIC_RELEASE);
			if (cmd == CMD_EXIT)
				return NULL;
		}
		if (cmd == CMD_STORM && !t->failed)
			vcpu_storm_step(t, &gen, &need_wl);
		else
			sched_yield();
	}
}

static void vcpu_thread_init(struct vcpu_thread *t, struct kmmu_vcpu *vcpu, unsigned int idx,
			     uint64_t base, uint64_t size, uint64_t off, bool mmio_ok,
			     uint64_t seed)
{
	memset(t, 0, sizeof(*t));
	t->vcpu = vcpu;
	t->idx = idx;
	t->base = base;
	t->size = size;
	t->off = off;
	t->mmio_ok = mmio_ok;
	t->rng = seed;
}

/* Start idle threads for @n vCPUs; return 0 or -errno. */
static int vcpus_start(struct vcpu_thread *vt, int n)
{
	int i, err;

	for (i = 0; i < n; i++) {
		err = pthread_create(&vt[i].thread, NULL, vcpu_thread_fn, &vt[i]);
		if (err)
			return -err;
		vt[i].started = true;
	}
	return 0;
}

/*
 * Post @cmd to every started thread of @vt[0..n) and wait until each has
 * done it: idle means no RUN is in flight any more, final means the pass
 * is over.  A RUN that never returns is a hang the harness reports.
 */
static void vcpus_cmd(struct vcpu_thread *vt, int n, int cmd)
{
	unsigned int posted[NR_VCPUS] = { 0 };
	int i;

	for (i = 0; i < n; i++) {
		if (!vt[i].started)
			continue;
		__atomic_store_n(&vt[i].cmd, cmd, __ATOMIC_RELAXED);
		posted[i] = __atomic_add_fetch(&vt[i].cmd_seq, 1, __ATOMIC_RELEASE);
	}
	for (i = 0; i < n; i++)
		while (vt[i].started &&
		       __atomic_load_n(&vt[i].ack_seq, __ATOMIC_ACQUIRE) != posted[i])
			sched_yield();
}

static void vcpus_exit(struct vcpu_thread *vt, int n)
{
	int i;

	vcpus_cmd(vt, n, CMD_EXIT);
	for (i = 0; i < n; i++) {
		if (vt[i].started)
			pthread_join(vt[i].thread, NULL);
		vt[i].started = false;
	}
}

/*
 * Wait until every vCPU of @vt[0..n) has come back from RUN at least @runs
 * more times, so that the next host operation overlaps with guest activity.
 * A vCPU that failed (it will be reported) is not waited for, and the wait
 * is bounded anyway, so that a stuck vCPU shows up as a failed check.
 */
static void wait_progress(struct vcpu_thread *vt, int n, long runs)
{
	long from[NR_VCPUS];
	int i, spins;

	for (i = 0; i < n; i++)
		from[i] = __atomic_load_n(&vt[i].progress, __ATOMIC_ACQUIRE);
	for (spins = 0; spins < PROGRESS_SPINS; spins++) {
		for (i = 0; i < n; i++)
			if (__atomic_load_n(&vt[i].progress, __ATOMIC_ACQUIRE) - from[i] < runs &&
			    !__atomic_load_n(&vt[i].failed, __ATOMIC_ACQUIRE))
				break;
		if (i == n)
			return;
		sched_yield();
	}
}

/* After an idle ack: RUN never failed and every exit was one it may take. */
static void check_vcpu(struct __test_metadata *_metadata, const struct vcpu_thread *t)
{
	EXPECT_EQ(0, t->err) {
		TH_LOG("vCPU %u: RUN failed: %s", t->idx, strerror(-t->err));
	}
	EXPECT_FALSE(t->bad) {
		TH_LOG("vCPU %u: exit %u (mmio gpa 0x%llx len %u; internal gpa 0x%llx spte 0x%llx level %u)",
		       t->idx, t->bad_run.exit_reason,
		       (unsigned long long)t->bad_run.mmio.gpa, t->bad_run.mmio.len,
		       (unsigned long long)t->bad_run.internal.gpa,
		       (unsigned long long)t->bad_run.internal.spte, t->bad_run.internal.level);
	}
	EXPECT_LT(0, t->runs);
}

/* ---- the fixture ---- */

/*
 * The memslot churn test: slot 1 is at B1, at B2 or nowhere; a vCPU whose
 * place has no slot has the sentinel in its words of region B.
 */
struct churn {
	uint64_t pos;		/* where slot 1 is, 0 if nowhere */
	bool armed[NR_VCPUS];	/* the vCPU's words in region B hold the sentinel */
	long creates, deletes, moves;
};

FIXTURE(stress) {
	struct kmmu_vm *vm;
	struct kmmu_vcpu *vcpu[NR_VCPUS];
	struct kmmu_mem mem[2];
	struct vcpu_thread vt[NR_VCPUS];
	uint64_t rng;
	unsigned int final_gen;	/* stamp generation of the last final pass, 0 if none yet */
	struct churn churn;
	/* The nested storm: L1's tables, and a vCPU that runs L1 itself. */
	struct kmmu_l1_tables l1;
	struct kmmu_vcpu *l1_vcpu;
};

FIXTURE_VARIANT(stress) {
	struct kmmu_vm_config cfg;
};

KMMU_ADD_FORMAT_VARIANTS(stress);

FIXTURE_SETUP(stress)
{
	int i;

	KMMU_REQUIRE_BACKEND();
	KMMU_VM_CREATE(&variant->cfg, &self->vm);
	for (i = 0; i < NR_VCPUS; i++)
		ASSERT_EQ(0, kmmu_vcpu_create(self->vm, i, &self->vcpu[i]));
	/* Fixed per format: the checks do not depend on it, the interleavings do. */
	self->rng = 0x57e55000 + variant->cfg.spte_format * 16 + variant->cfg.flags;
	TH_LOG("seed 0x%llx", (unsigned long long)self->rng);
}

FIXTURE_TEARDOWN(stress)
{
	/* A failed ASSERT may leave vCPU threads running: they go first. */
	vcpus_exit(self->vt, NR_VCPUS);
	kmmu_vm_free(self->vm);
	kmmu_mem_free(&self->mem[0]);
	kmmu_mem_free(&self->mem[1]);
	EXPECT_EQ(0, kmmu_lib_leak_check());
}

static void stress_vcpu_init(FIXTURE_DATA(stress) *self, int i, uint64_t base, uint64_t size,
			     bool mmio_ok)
{
	vcpu_thread_init(&self->vt[i], self->vcpu[i], i, base, size, 8 * i, mmio_ok,
			 splitmix64(&self->rng));
}

/* ---- the last pass: every vCPU writes its every slot once more ---- */

/*
 * vCPUs [0, n), idle, each write stamp(@gen) to every slot of their range,
 * in parallel; each must finish with DONE after one access per page.
 */
static void final_pass(struct __test_metadata *_metadata, FIXTURE_DATA(stress) *self, int n,
		       unsigned int gen)
{
	int i;

	for (i = 0; i < n; i++) {
		struct vcpu_thread *t = &self->vt[i];

		t->final_wl = (struct kmmu_workload){
			.gpa = t->base + t->off,
			.size = t->size - t->off,
			.iterations = 1,
			.value = stamp(gen, i),
			.pattern = KMMU_PATTERN_SEQUENTIAL,
			.write_percent = 100,
			.flags = KMMU_WL_XOR_GPA,
		};
		if (t->nested_root) {
			t->final_wl.flags |= KMMU_WL_NESTED;
			t->final_wl.nested_root = t->nested_root;
		}
	}
	vcpus_cmd(self->vt, n, CMD_FINAL);
	for (i = 0; i < n; i++) {
		const struct vcpu_thread *t = &self->vt[i];

		EXPECT_EQ(0, t->final_ret);
		EXPECT_EQ(KMMU_EXIT_DONE, t->final_run.exit_reason) {
			TH_LOG("vCPU %d: final pass exit %u at gpa 0x%llx", i,
			       t->final_run.exit_reason, (unsigned long long)t->final_run.mmio.gpa);
		}
		EXPECT_EQ(t->size / SZ_4K, t->final_run.accesses);
	}
}

/*
 * What a word of host memory must hold: a slot of vCPU @owner holds what
 * @want_slot says (or anything, if it returns false), any other word was
 * never written and is zero.
 */
typedef bool (*slot_want_fn)(FIXTURE_DATA(stress) *self, int owner, uint64_t gpa,
			     uint64_t *want);

static long verify_words(FIXTURE_DATA(stress) *self, const uint8_t *hva, uint64_t gpa,
			 uint64_t size, int nr_owners, slot_want_fn want_slot, const char *when)
{
	const uint64_t *words = (const uint64_t *)hva;
	long bad = 0;
	uint64_t w;

	for (w = 0; w < size / 8; w++) {
		uint64_t a = gpa + w * 8, want = 0, got;
		int i;

		for (i = 0; i < nr_owners; i++)
			if ((a & (SZ_4K - 1)) == self->vt[i].off)
				break;
		if (i < nr_owners && !want_slot(self, i, a, &want))
			continue;
		/* Atomic: vCPUs may be writing their own words meanwhile. */
		got = __atomic_load_n(&words[w], __ATOMIC_RELAXED);
		if (got == want)
			continue;
		if (bad++ < 8)
			diag("%s: gpa 0x%llx holds 0x%llx, want 0x%llx (value ^ gpa = 0x%llx)\n",
			     when, (unsigned long long)a, (unsigned long long)got,
			     (unsigned long long)want, (unsigned long long)(got ^ a));
	}
	if (bad)
		diag("%s: %ld words differ\n", when, bad);
	return bad;
}

/* After a final pass: the pass's value. */
static bool final_slot_want(FIXTURE_DATA(stress) *self, int owner, uint64_t gpa, uint64_t *want)
{
	*want = stamp(self->final_gen, owner) ^ gpa;
	return true;
}

/* ---- discard, zap and logging storm ---- */

/* Page range [first, first + n) of the region, 4K or 2M grained. */
static void storm_pick_range(FIXTURE_DATA(stress) *self, uint64_t *first, uint64_t *n)
{
	const uint64_t pages = STRESS_SIZE / SZ_4K;

	if (splitmix64(&self->rng) % 8 == 0) {
		*n = SZ_2M / SZ_4K;
		*first = (splitmix64(&self->rng) % (STRESS_SIZE / SZ_2M)) * *n;
		return;
	}
	*n = 1 + splitmix64(&self->rng) % 32;
	*first = splitmix64(&self->rng) % (pages - *n + 1);
}

/*
 * How often (in percent, cumulative) each host operation comes: aging,
 * discard, range zap, zap-all, KMMU_INVALIDATE_NESTED, and the rest
 * dirty-logging toggles.
 */
struct storm_mix {
	unsigned int age, discard, zap, zap_all, invalidate_nested, l1_write;
};

/* 4K pages: invalidations and zaps are what matters. */
static const struct storm_mix mix_4k = {
	.age = 10, .discard = 50, .zap = 70, .zap_all = 80, .invalidate_nested = 80,
	.l1_write = 80,
};
/* 2M leaves: splitting them for logging and rebuilding them over live tables too. */
static const struct storm_mix mix_2m = {
	.age = 5, .discard = 30, .zap = 40, .zap_all = 50, .invalidate_nested = 50,
	.l1_write = 50,
};
/*
 * L2 on shadow pages: their leaves go by rmap, the pages all at once, or
 * those of one L1 table when L1 writes it (the same entry again).
 */
static const struct storm_mix mix_nested = {
	.age = 20, .discard = 40, .zap = 50, .zap_all = 58, .invalidate_nested = 68,
	.l1_write = 85,
};

struct storm_counts {
	long discards, zaps, zap_alls, ages, log_toggles, invalidations, l1_writes;
	bool logging;		/* slot 0 logs dirty pages now */
};

/*
 * One host operation on the region.  Discard is the real invalidation (the
 * pages go, new ones come); a range zap drops mappings only; a zap-all
 * invalidates the roots so every vCPU must load a new one; aging (user
 * backend) clears accessed state, which the fast path undoes; turning
 * dirty logging on splits huge leaves into tables and write-protects, and
 * turning it off rebuilds huge leaves in place, freeing the tables under
 * vCPUs that may be walking them.
 */
static int storm_op(FIXTURE_DATA(stress) *self, uint8_t *hva, const struct storm_mix *mix,
		    struct storm_counts *c)
{
	unsigned int op = splitmix64(&self->rng) % 100;
	uint64_t first, n;
	int ret;

	storm_pick_range(self, &first, &n);
	/* L2: half the time KMMU_AGE fast-only, which never waits on an rmap. */
	if (op < mix->age && self->l1_vcpu && (splitmix64(&self->rng) & 1)) {
		c->ages++;
		return kmmu_vm_age(self->vm, STRESS_GPA + first * SZ_4K, n * SZ_4K, 0,
				   KMMU_AGE_FAST_ONLY | KMMU_AGE_FLUSH, NULL, NULL);
	}
	if (op < mix->age) {
		ret = kmmu_host_age(hva + first * SZ_4K, n * SZ_4K, true);
		if (ret != -EOPNOTSUPP) {
			c->ages++;
			return ret < 0 ? ret : 0;
		}
	}
	if (op < mix->discard) {
		c->discards++;
		return kmmu_host_discard(hva + first * SZ_4K, n * SZ_4K);
	}
	if (op < mix->zap) {
		c->zaps++;
		return kmmu_vm_zap(self->vm, STRESS_GPA + first * SZ_4K, n * SZ_4K, 0, 0);
	}
	if (op < mix->zap_all) {
		c->zap_alls++;
		return kmmu_vm_zap(self->vm, 0, 0, 0, KMMU_ZAP_ALL);
	}
	if (op < mix->invalidate_nested) {
		struct kmmu_nested_invalidate inv = { .type = KMMU_INV_ALL_CONTEXTS };

		c->invalidations++;
		return kmmu_ioctl(self->vm->fd, KMMU_INVALIDATE_NESTED, (unsigned long)&inv);
	}
	if (op < mix->l1_write) {
		/* L1 writes the leaf entry of the range's first page, unchanged. */
		uint64_t gpa = STRESS_GPA + first * SZ_4K;
		uint64_t *e = kmmu_l1_entry(&self->l1, gpa, 1);
		struct kmmu_workload wl = kmmu_wl_seq(L1_TABLES_GPA + ((uint8_t *)e -
						      (uint8_t *)self->mem[1].addr), 8, 100, *e);
		struct kmmu_run run;

		c->l1_writes++;
		ret = kmmu_vcpu_run_workload(self->l1_vcpu, &wl, &run);
		return ret ? ret : run.exit_reason == KMMU_EXIT_DONE ? 0 : -EIO;
	}
	c->log_toggles++;
	c->logging = !c->logging;
	return kmmu_vm_set_memslot(self->vm, 0, c->logging ? KMMU_MEM_LOG_DIRTY_PAGES : 0,
				   STRESS_GPA, STRESS_SIZE, hva);
}

static void run_storm(struct __test_metadata *_metadata, FIXTURE_DATA(stress) *self,
		      enum kmmu_backing backing, const struct storm_mix *mix, bool nested)
{
	struct storm_counts c = { 0 };
	struct kmmu_vm_stats st;
	uint64_t root = 0;
	uint8_t *hva;
	int e, r, i;

	ASSERT_EQ(0, kmmu_mem_alloc(&self->mem[0], backing, STRESS_SIZE));
	hva = self->mem[0].addr;
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 0, 0, STRESS_GPA, STRESS_SIZE, hva));
	if (nested) {
		/* L1 maps the region to itself, 4K leaves: the words land where they did. */
		ASSERT_EQ(0, kmmu_mem_alloc(&self->mem[1], KMMU_BACKING_ANON, L1_TABLES_SIZE));
		ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, L1_TABLES_SLOT, 0, L1_TABLES_GPA,
						 L1_TABLES_SIZE, self->mem[1].addr));
		kmmu_l1_init(&self->l1, self->mem[1].addr, L1_TABLES_GPA, L1_TABLES_SIZE,
			     kmmu_vm_format(self->vm) == KMMU_SPTE_FORMAT_EPT);
		kmmu_l1_map(&self->l1, STRESS_GPA, STRESS_GPA, STRESS_SIZE, 1, true);
		root = kmmu_l1_root(&self->l1, true);
		ASSERT_EQ(0, kmmu_vcpu_create(self->vm, NR_VCPUS, &self->l1_vcpu));
		/* The host's aging walks the rmaps under their lock bit only. */
		ASSERT_EQ(0, kmmu_vm_enable_cap(self->vm, KMMU_CAP_LOCKLESS_AGING, 1));
	}
	for (i = 0; i < NR_VCPUS; i++) {
		stress_vcpu_init(self, i, STRESS_GPA, STRESS_SIZE, false);
		self->vt[i].nested_root = root;
	}
	ASSERT_EQ(0, vcpus_start(self->vt, NR_VCPUS));

	for (e = 0; e < EPOCHS; e++) {
		long op_errors = 0;

		vcpus_cmd(self->vt, NR_VCPUS, CMD_STORM);
		wait_progress(self->vt, NR_VCPUS, 1);
		for (r = 0; r < ROUNDS; r++) {
			int ret = storm_op(self, hva, mix, &c);

			if (ret && op_errors++ < 4)
				diag("epoch %d round %d: host operation failed: %s\n",
				     e, r, strerror(-ret));
			wait_progress(self->vt, NR_VCPUS, 1);
		}
		vcpus_cmd(self->vt, NR_VCPUS, CMD_IDLE);
		EXPECT_EQ(0, op_errors);
		for (i = 0; i < NR_VCPUS; i++)
			check_vcpu(_metadata, &self->vt[i]);

		/*
		 * No write may be lost or land elsewhere: after the storm
		 * every slot holds the last pass's value and every other
		 * word is still zero.
		 */
		self->final_gen = 0x800 + e;
		final_pass(_metadata, self, NR_VCPUS, self->final_gen);
		ASSERT_EQ(0, verify_words(self, hva, STRESS_GPA, STRESS_SIZE, NR_VCPUS,
					  final_slot_want, "after storm"));
	}
	TH_LOG("%ld discards, %ld zaps, %ld zap-alls, %ld agings, %ld logging toggles, "
	       "%ld nested invalidations, %ld L1 table writes", c.discards, c.zaps, c.zap_alls,
	       c.ages, c.log_toggles, c.invalidations, c.l1_writes);

	ASSERT_EQ(0, kmmu_vm_stats(self->vm, &st));
	EXPECT_LE(c.discards, st.invalidations);
	if (nested) {
		/* L2's pages are shadow leaves only, each mapped once. */
		EXPECT_LT(0, st.shadow_faults);
		/* L1 wrote tables that shadow pages may or may not shadow then. */
		TH_LOG("%llu unprotects", (unsigned long long)st.shadow_unprotects);
		EXPECT_LT(0, st.tlb_flushes);
		EXPECT_GE(STRESS_SIZE / SZ_4K, st.shadow_leaves);
		EXPECT_EQ(0, st.pages_4k + st.pages_2m + st.pages_1g);
		return;
	}
	EXPECT_LT(0, st.faults);
	EXPECT_LT(0, st.tlb_flushes);
	EXPECT_LT(0, st.zapped_leafs);
	/* Everything is mapped once: no more leaves than pages. */
	EXPECT_GE(STRESS_SIZE / SZ_4K, st.pages_4k + st.pages_2m * (SZ_2M / SZ_4K));
}

STRESS_TEST_F(stress, discard_zap_storm)
{
	run_storm(_metadata, self, KMMU_BACKING_ANON, &mix_4k, false);
}

/*
 * The same on 2M leaves, which a partial discard or zap takes down whole,
 * and which logging splits and rebuilds while vCPUs walk through them.
 */
STRESS_TEST_F(stress, discard_zap_storm_thp)
{
	run_storm(_metadata, self, KMMU_BACKING_ANON_THP, &mix_2m, false);
}

/*
 * The vCPUs as L2: shadow faults under mmu_lock for write race with the
 * host's discards (rmap zaps), KMMU_ZAP (ranges by rmap, all shadow pages),
 * KMMU_INVALIDATE_NESTED (roots dropped under running vCPUs, which load
 * new ones) and logging toggles (all shadow pages again, write-protected
 * leaves).  On the dev backend the NPT format only: the QEMU bench runs
 * it in every boot, and the shadow MMU is the same code for every format
 * (the user backend runs them all).
 */
STRESS_TEST_F(stress, nested_storm)
{
	if (kmmu_backend_hw())
		SKIP(return, "hw backend: no nested workloads");
	if (kmmu_backend() != KMMU_BACKEND_USER &&
	    variant->cfg.spte_format != KMMU_SPTE_FORMAT_NPT)
		SKIP(return, "dev backend: the NPT format only");
	run_storm(_metadata, self, KMMU_BACKING_ANON, &mix_nested, true);
}

/* ---- memslot churn ---- */

/*
 * vCPU 0 works on slot 0 (region A, never changed), vCPU 1 on the gpas of
 * place B1 and vCPU 2 on those of place B2.  Slot 1 (region B) is at B1, at
 * B2 or nowhere.  Whenever a vCPU's place loses the slot, the host
 * overwrites that vCPU's words in B with a sentinel: until the slot comes
 * back the vCPU's accesses must be MMIO exits, and the sentinel must stay.
 * @gpa is given as if B were at B1.
 */
static bool churn_slot_want(FIXTURE_DATA(stress) *self, int owner, uint64_t gpa, uint64_t *want)
{
	struct churn *c = &self->churn;

	if (owner == 0) {
		*want = 0;	/* vCPU 0 never reaches region B */
		return true;
	}
	if (c->armed[owner]) {
		*want = SENTINEL;
		return true;
	}
	if (self->final_gen) {
		/* The final pass wrote with the gpas of the current place. */
		*want = stamp(self->final_gen, owner) ^ (gpa - CHURN_GPA_B1 + c->pos);
		return true;
	}
	return false;	/* the vCPU may be writing there right now */
}

static void churn_arm(FIXTURE_DATA(stress) *self)
{
	uint64_t *words = self->mem[1].addr;
	struct churn *c = &self->churn;
	int i;

	for (i = 1; i < NR_VCPUS; i++) {
		uint64_t p;

		if (self->vt[i].base == c->pos || c->armed[i])
			continue;
		for (p = 0; p < CHURN_SIZE; p += SZ_4K)
			__atomic_store_n(&words[(p + self->vt[i].off) / 8], SENTINEL,
					 __ATOMIC_RELAXED);
		c->armed[i] = true;
	}
}

/* Move, delete or create slot 1, as its state allows; then re-arm the sentinels. */
static int churn_op(FIXTURE_DATA(stress) *self, uint64_t to)
{
	struct churn *c = &self->churn;
	int i, ret;

	if (c->pos && !to) {
		c->deletes++;
		ret = kmmu_vm_set_memslot(self->vm, 1, 0, c->pos, 0, NULL);
	} else {
		if (c->pos)
			c->moves++;
		else
			c->creates++;
		ret = kmmu_vm_set_memslot(self->vm, 1, 0, to, CHURN_SIZE, self->mem[1].addr);
	}
	if (ret)
		return ret;
	c->pos = to;
	/* The vCPU whose place now has the slot may write its words again. */
	for (i = 1; i < NR_VCPUS; i++)
		if (self->vt[i].base == to)
			c->armed[i] = false;
	churn_arm(self);
	return 0;
}

STRESS_TEST_F(stress, memslot_churn)
{
	struct churn *c = &self->churn;
	struct kmmu_vm_stats st0, st;
	struct kmmu_workload wl;
	struct kmmu_run run;
	uint8_t *a, *b;
	int r, ret;

	ASSERT_EQ(0, kmmu_mem_alloc(&self->mem[0], KMMU_BACKING_ANON, CHURN_SIZE));
	ASSERT_EQ(0, kmmu_mem_alloc(&self->mem[1], KMMU_BACKING_ANON, CHURN_SIZE));
	a = self->mem[0].addr;
	b = self->mem[1].addr;
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 0, 0, CHURN_GPA_A, CHURN_SIZE, a));
	stress_vcpu_init(self, 0, CHURN_GPA_A, CHURN_SIZE, false);
	stress_vcpu_init(self, 1, CHURN_GPA_B1, CHURN_SIZE, true);
	stress_vcpu_init(self, 2, CHURN_GPA_B2, CHURN_SIZE, true);
	ASSERT_EQ(0, kmmu_vm_stats(self->vm, &st0));
	ASSERT_EQ(0, churn_op(self, CHURN_GPA_B1));

	ASSERT_EQ(0, vcpus_start(self->vt, NR_VCPUS));
	vcpus_cmd(self->vt, NR_VCPUS, CMD_STORM);
	wait_progress(self->vt, NR_VCPUS, 2);
	for (r = 0; r < CHURN_ROUNDS; r++) {
		unsigned int pick = splitmix64(&self->rng) % 2;
		uint64_t to;

		if (!c->pos)
			to = pick ? CHURN_GPA_B2 : CHURN_GPA_B1;
		else if (pick)
			to = 0;
		else
			to = c->pos == CHURN_GPA_B1 ? CHURN_GPA_B2 : CHURN_GPA_B1;
		ret = churn_op(self, to);
		EXPECT_EQ(0, ret) {
			TH_LOG("round %d: memslot change to 0x%llx failed: %s", r,
			       (unsigned long long)to, strerror(-ret));
			break;
		}
		/* Let every vCPU run against the new layout, then look at B. */
		wait_progress(self->vt, NR_VCPUS, 3);
		ret = verify_words(self, b, CHURN_GPA_B1, CHURN_SIZE, NR_VCPUS,
				   churn_slot_want, "during churn");
		EXPECT_EQ(0, ret) {
			TH_LOG("round %d: a vCPU wrote where no slot of its maps", r);
			break;
		}
	}
	/* End with slot 1 at B1 so vCPU 1 can do a last pass and vCPU 2 cannot. */
	if (c->pos != CHURN_GPA_B1)
		EXPECT_EQ(0, churn_op(self, CHURN_GPA_B1));
	wait_progress(self->vt, NR_VCPUS, 2);
	vcpus_cmd(self->vt, NR_VCPUS, CMD_IDLE);
	for (r = 0; r < NR_VCPUS; r++)
		check_vcpu(_metadata, &self->vt[r]);
	EXPECT_LT(0, self->vt[1].mmio_exits + self->vt[2].mmio_exits);

	/* Each create adds one generation, each delete or move two (invalid, then final). */
	ASSERT_EQ(0, kmmu_vm_stats(self->vm, &st));
	EXPECT_EQ(st0.memslot_generation + c->creates + 2 * (c->deletes + c->moves),
		  st.memslot_generation);
	TH_LOG("%ld creates, %ld deletes, %ld moves, %llu + %llu MMIO exits", c->creates,
	       c->deletes, c->moves, (unsigned long long)self->vt[1].mmio_exits,
	       (unsigned long long)self->vt[2].mmio_exits);

	self->final_gen = 0x900;
	final_pass(_metadata, self, 2, self->final_gen);
	EXPECT_EQ(0, verify_words(self, a, CHURN_GPA_A, CHURN_SIZE, 1, final_slot_want,
				  "region A"));
	EXPECT_EQ(0, verify_words(self, b, CHURN_GPA_B1, CHURN_SIZE, NR_VCPUS,
				  churn_slot_want, "region B"));

	/* vCPU 2's place has no slot: its very first access exits as MMIO. */
	wl = kmmu_wl_seq(CHURN_GPA_B2 + 16, CHURN_SIZE - 16, 100, 1);
	ASSERT_EQ(0, kmmu_vcpu_run_workload(self->vcpu[2], &wl, &run));
	EXPECT_EQ(KMMU_EXIT_MMIO, run.exit_reason);
	EXPECT_EQ(CHURN_GPA_B2 + 16, run.mmio.gpa);
	EXPECT_EQ(0, run.accesses);
	EXPECT_EQ(0, verify_words(self, b, CHURN_GPA_B1, CHURN_SIZE, NR_VCPUS,
				  churn_slot_want, "region B after MMIO"));
}

/* ---- a retry that lasts ---- */

#define HOLD_GPA	0x100000000ULL
#define DEL_GPA		0x140000000ULL
/*
 * Faults vCPU 1 takes while it waits for the slot to go: half again the
 * 2^20 faults after which the vCPU gives up on an access that its fault
 * handler claims to have fixed.  A retry must not count towards that (KVM
 * has no limit at all: a fault on a slot in flux retries until it settles).
 */
#define RETRY_FAULTS	(3ULL << 19)
/*
 * Polls of the statistics, 1 ms apart: only a bound if vCPU 1 hangs.  A
 * hardware vCPU's fault is a #VMEXIT and a VMRUN, several times slower
 * under TCG than the software vCPU's: it gets three times as long.
 */
#define MAX_POLLS	(kmmu_backend_hw() ? 60000 : 20000)

/* A helper thread that stays alive until released (see __tsan_default_options). */
struct helper {
	pthread_t thread;
	bool started;
	struct kmmu_vm *vm;
	struct kmmu_vcpu *vcpu;
	struct kmmu_run run;
	int ret;
	int done;
	int release;
};

static void helper_finish(struct helper *h, int ret)
{
	h->ret = ret;
	__atomic_store_n(&h->done, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&h->release, __ATOMIC_ACQUIRE))
		usleep(1000);
}

/* vCPU 0: read the held page once. */
static void *hold_fn(void *arg)
{
	const struct kmmu_workload wl = kmmu_wl_seq(HOLD_GPA, 8, 0, 0);
	struct helper *h = arg;

	helper_finish(h, kmmu_vcpu_run_workload(h->vcpu, &wl, &h->run));
	return NULL;
}

static void *delete_fn(void *arg)
{
	struct helper *h = arg;

	helper_finish(h, kmmu_vm_set_memslot(h->vm, 1, 0, DEL_GPA, 0, NULL));
	return NULL;
}

/* A userfaultfd that reports missing pages of [addr, addr + len). */
static int uffd_missing(void *addr, size_t len)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	int fd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		return -errno;
	if (ioctl(fd, UFFDIO_API, &api) || ioctl(fd, UFFDIO_REGISTER, &reg)) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

FIXTURE(memslot_delete) {
	struct kmmu_vm *vm;
	struct kmmu_vcpu *vcpu0;
	struct kmmu_mem hold_mem;
	struct kmmu_mem del_mem;
	int uffd;
	struct helper hold;
	struct helper del;
	struct vcpu_thread vt;
};

FIXTURE_SETUP(memslot_delete)
{
	struct kmmu_vcpu *vcpu1;

	/* Before anything can skip: the teardown must not close fd 0. */
	self->uffd = -1;
	KMMU_REQUIRE_BACKEND();
	/* All allocations first: the user host's wait for RCU too, which vCPU 0 will hold up. */
	KMMU_VM_CREATE(NULL, &self->vm);
	ASSERT_EQ(0, kmmu_mem_alloc(&self->hold_mem, KMMU_BACKING_ANON, SZ_4K));
	ASSERT_EQ(0, kmmu_mem_alloc(&self->del_mem, KMMU_BACKING_ANON, SZ_2M));
	self->uffd = uffd_missing(self->hold_mem.addr, SZ_4K);
	if (self->uffd < 0)
		SKIP(return, "no userfaultfd here: %s", strerror(-self->uffd));
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 0, 0, HOLD_GPA, SZ_4K, self->hold_mem.addr));
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 1, 0, DEL_GPA, SZ_2M, self->del_mem.addr));
	ASSERT_EQ(0, kmmu_vcpu_create(self->vm, 0, &self->vcpu0));
	ASSERT_EQ(0, kmmu_vcpu_create(self->vm, 1, &vcpu1));
	/* MMIO exits are fine once the slot is gone. */
	vcpu_thread_init(&self->vt, vcpu1, 1, DEL_GPA, SZ_2M, 8, true, 1);
}

static void helper_join(struct helper *h)
{
	__atomic_store_n(&h->release, 1, __ATOMIC_RELEASE);
	if (h->started)
		pthread_join(h->thread, NULL);
	h->started = false;
}

/*
 * Resolve the held fault with a page of zeroes.  UFFDIO_COPY, not
 * ZEROPAGE: the user backend's host memory is shared (memfd), where only
 * copies are allowed.
 */
static int uffd_fill_zero(int uffd, void *addr)
{
	static const uint8_t zeroes[4096] __attribute__((aligned(4096)));
	struct uffdio_copy copy = {
		.dst = (uintptr_t)addr,
		.src = (uintptr_t)zeroes,
		.len = sizeof(zeroes),
	};

	return ioctl(uffd, UFFDIO_COPY, &copy) ? -errno : 0;
}

FIXTURE_TEARDOWN(memslot_delete)
{
	/* A failed ASSERT may leave vCPU 0 in its held fault: let it go first. */
	if (self->uffd >= 0)
		uffd_fill_zero(self->uffd, self->hold_mem.addr);
	vcpus_exit(&self->vt, 1);
	helper_join(&self->hold);
	helper_join(&self->del);
	if (self->uffd >= 0)
		close(self->uffd);
	kmmu_vm_free(self->vm);
	kmmu_mem_free(&self->hold_mem);
	kmmu_mem_free(&self->del_mem);
	EXPECT_EQ(0, kmmu_lib_leak_check());
}

/*
 * Deleting a slot first marks it invalid, then waits for every fault
 * already in flight (synchronize_srcu) before zapping and publishing the
 * final slots; a vCPU that faults on the slot meanwhile can only retry.
 * Here a fault in flight is held for as long as the test likes: vCPU 0
 * faults on a page whose host fault userfaultfd keeps pending.  vCPU 1,
 * zapped out of its slot, retries meanwhile, and must go on retrying (or
 * exit as RUN may) however long it takes: an internal error would mean a
 * healthy vCPU gave up.
 */
STRESS_TEST_F(memslot_delete, retry_outlasts_slow_delete)
{
	struct pollfd pfd = { .fd = self->uffd, .events = POLLIN };
	struct vcpu_thread *vt = &self->vt;
	struct kmmu_vm_stats st;
	struct uffd_msg msg;
	uint64_t faults0;
	long progress;
	int polls;

	/* vCPU 1 runs on slot 1; vCPU 0 faults on the held page and stays in the fault. */
	ASSERT_EQ(0, vcpus_start(vt, 1));
	vcpus_cmd(vt, 1, CMD_STORM);
	self->hold.vcpu = self->vcpu0;
	ASSERT_EQ(0, pthread_create(&self->hold.thread, NULL, hold_fn, &self->hold));
	self->hold.started = true;
	ASSERT_EQ(1, poll(&pfd, 1, 10000));
	ASSERT_EQ(sizeof(msg), read(self->uffd, &msg, sizeof(msg)));
	ASSERT_EQ(UFFD_EVENT_PAGEFAULT, msg.event);

	/* The delete marks slot 1 invalid, then waits for vCPU 0's fault. */
	ASSERT_EQ(0, kmmu_vm_stats(self->vm, &st));
	faults0 = st.faults;
	self->del.vm = self->vm;
	ASSERT_EQ(0, pthread_create(&self->del.thread, NULL, delete_fn, &self->del));
	self->del.started = true;
	for (polls = 0; polls < MAX_POLLS; polls++) {
		/* Zap what vCPU 1 has mapped, so that it faults on the invalid slot. */
		kmmu_vm_zap(self->vm, DEL_GPA, SZ_2M, 0, 0);
		usleep(1000);
		kmmu_vm_stats(self->vm, &st);
		if (st.faults - faults0 >= RETRY_FAULTS ||
		    __atomic_load_n(&vt->failed, __ATOMIC_ACQUIRE))
			break;
	}
	TH_LOG("%llu faults while the delete waited", (unsigned long long)(st.faults - faults0));
	/* A delete that did not wait for the fault in flight could be undone by it. */
	EXPECT_FALSE(__atomic_load_n(&self->del.done, __ATOMIC_ACQUIRE));

	/* Let vCPU 0's fault complete: the delete finishes, vCPU 1 then sees MMIO. */
	EXPECT_EQ(0, uffd_fill_zero(self->uffd, self->hold_mem.addr));
	while (!__atomic_load_n(&self->hold.done, __ATOMIC_ACQUIRE) ||
	       !__atomic_load_n(&self->del.done, __ATOMIC_ACQUIRE))
		usleep(1000);
	progress = __atomic_load_n(&vt->progress, __ATOMIC_ACQUIRE);
	for (polls = 0; polls < MAX_POLLS &&
	     __atomic_load_n(&vt->progress, __ATOMIC_ACQUIRE) - progress < 2 &&
	     !__atomic_load_n(&vt->failed, __ATOMIC_ACQUIRE); polls++)
		usleep(1000);
	vcpus_cmd(vt, 1, CMD_IDLE);

	EXPECT_EQ(0, self->hold.ret);
	EXPECT_EQ(KMMU_EXIT_DONE, self->hold.run.exit_reason);
	EXPECT_EQ(0, self->hold.run.read_sum);
	EXPECT_EQ(0, self->del.ret);
	EXPECT_EQ(0, vt->err);
	EXPECT_FALSE(vt->bad) {
		TH_LOG("vCPU 1 gave up waiting for the slot: exit %u at gpa 0x%llx",
		       vt->bad_run.exit_reason, (unsigned long long)vt->bad_run.internal.gpa);
	}
	EXPECT_LE(RETRY_FAULTS, st.faults - faults0);
	EXPECT_LT(0, vt->mmio_exits);
}

/* ---- one vCPU, run by two threads in turn ---- */

#define TURN_RUNS	2000

struct turn {
	struct kmmu_vcpu *vcpu;
	int runs, busy, err;
	uint64_t accesses;
};

/*
 * RUN, again and again, a few accesses each time; -EBUSY while the other
 * thread has the vCPU.  Whatever one RUN leaves in the vCPU, the next one,
 * in either thread, must see: RUN's exclusivity is an acquire and a release.
 */
static void *run_in_turn(void *arg)
{
	struct turn *t = arg;
	struct kmmu_run run;
	int ret;

	while (t->runs < TURN_RUNS) {
		memset(&run, 0, sizeof(run));
		run.max_accesses = 1 + t->runs % 7;
		ret = kmmu_vcpu_run(t->vcpu, &run);
		if (ret == -EBUSY) {
			t->busy++;
			sched_yield();
			continue;
		}
		if (ret) {
			t->err = ret;
			return NULL;
		}
		t->accesses += run.accesses;
		t->runs++;
	}
	return NULL;
}

/*
 * Two threads run one vCPU in turn, each RUN going on from where the last
 * one stopped: every access of the workload is done exactly once.  Under
 * ThreadSanitizer a RUN that let go of the vCPU without a release races
 * with the next one on the workload's state.
 */
TEST(one_vcpu_two_threads)
{
	struct kmmu_workload wl = kmmu_wl_seq(STRESS_GPA, STRESS_SIZE, 100, 3);
	struct turn t[2] = {};
	struct kmmu_vcpu *vcpu;
	struct kmmu_mem mem;
	struct kmmu_vm *vm;
	pthread_t th[2];
	int i;

	KMMU_REQUIRE_BACKEND();
	KMMU_VM_CREATE(NULL, &vm);
	ASSERT_EQ(0, kmmu_mem_alloc(&mem, KMMU_BACKING_ANON, STRESS_SIZE));
	ASSERT_EQ(0, kmmu_vm_set_memslot(vm, 0, 0, STRESS_GPA, STRESS_SIZE, mem.addr));
	ASSERT_EQ(0, kmmu_vcpu_create(vm, 0, &vcpu));
	/* More accesses than the runs can do: no RUN ends the workload. */
	wl.iterations = 1000;
	ASSERT_EQ(0, kmmu_vcpu_set_workload(vcpu, &wl));
	for (i = 0; i < 2; i++) {
		t[i].vcpu = vcpu;
		ASSERT_EQ(0, pthread_create(&th[i], NULL, run_in_turn, &t[i]));
	}
	for (i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	for (i = 0; i < 2; i++) {
		EXPECT_EQ(0, t[i].err);
		EXPECT_EQ(TURN_RUNS, t[i].runs);
	}
	diag("%d and %d RUNs refused with -EBUSY\n", t[0].busy, t[1].busy);
	/* Every RUN picked up where the last left off: a whole number of pages written. */
	for (i = 0; i < (int)((t[0].accesses + t[1].accesses) % (STRESS_SIZE / SZ_4K)); i++)
		EXPECT_EQ(3, *(uint64_t *)((uint8_t *)mem.addr + i * SZ_4K));
	kmmu_vm_free(vm);
	kmmu_mem_free(&mem);
	EXPECT_EQ(0, kmmu_lib_leak_check());
}

/* ---- the host unmaps memory a vCPU is faulting in ---- */

#define UNMAP_ROUNDS	300
#define UNMAP_PAGES	4

struct unmap_faulter {
	struct kmmu_vcpu *vcpu;
	int stop, err, bad_exit, runs;
};

static void *fault_until_stopped(void *arg)
{
	struct unmap_faulter *f = arg;
	struct kmmu_run run;
	int ret;

	while (!__atomic_load_n(&f->stop, __ATOMIC_ACQUIRE)) {
		memset(&run, 0, sizeof(run));
		run.max_accesses = 64;
		ret = kmmu_vcpu_run(f->vcpu, &run);
		if (ret) {
			f->err = ret;
			return NULL;
		}
		/* Once the memory is gone, a fault on it is a memory-fault exit. */
		if (run.exit_reason != KMMU_EXIT_BUDGET && run.exit_reason != KMMU_EXIT_MEMORY_FAULT)
			f->bad_exit = run.exit_reason;
		__atomic_add_fetch(&f->runs, 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

/*
 * munmap of guest memory while a vCPU faults it in, round after round: the
 * host's invalidation covers the whole unmapping, so once the memory is
 * gone no SPTE maps it -- a fault that got in between would leave one
 * mapping a freed page.  The user backend's model unmaps the range inside
 * its invalidation, as the kernel does; on dev this is the kernel's own.
 */
TEST(unmap_while_faulting)
{
	struct kmmu_workload wl = kmmu_wl_seq(STRESS_GPA, UNMAP_PAGES * SZ_4K, 50, 1);
	struct unmap_faulter f = {};
	struct kmmu_spte_query q;
	struct kmmu_vm *vm;
	struct kmmu_mem mem;
	pthread_t t;
	int round, p, mapped = 0;

	KMMU_REQUIRE_BACKEND();
	KMMU_VM_CREATE(NULL, &vm);
	ASSERT_EQ(0, kmmu_vcpu_create(vm, 0, &f.vcpu));
	wl.iterations = 1ULL << 40;
	for (round = 0; round < UNMAP_ROUNDS; round++) {
		ASSERT_EQ(0, kmmu_mem_alloc(&mem, KMMU_BACKING_ANON, UNMAP_PAGES * SZ_4K));
		ASSERT_EQ(0, kmmu_vm_set_memslot(vm, 0, 0, STRESS_GPA, UNMAP_PAGES * SZ_4K,
						 mem.addr));
		ASSERT_EQ(0, kmmu_vcpu_set_workload(f.vcpu, &wl));
		f.stop = 0;
		f.runs = 0;
		ASSERT_EQ(0, pthread_create(&t, NULL, fault_until_stopped, &f));
		/* The vCPU is running, and faults right after the unmap's zap. */
		while (__atomic_load_n(&f.runs, __ATOMIC_ACQUIRE) < 2)
			sched_yield();
		kmmu_mem_free(&mem);
		for (p = 0; p < UNMAP_PAGES; p++) {
			ASSERT_EQ(0, kmmu_vm_get_spte(vm, STRESS_GPA + p * SZ_4K, 0, &q));
			mapped += q.level && (q.sptes[q.level] & (1ULL << 11));
		}
		__atomic_store_n(&f.stop, 1, __ATOMIC_RELEASE);
		pthread_join(t, NULL);
		ASSERT_EQ(0, f.err);
		ASSERT_EQ(0, f.bad_exit);
		ASSERT_EQ(0, kmmu_vm_set_memslot(vm, 0, 0, STRESS_GPA, 0, NULL));
	}
	EXPECT_EQ(0, mapped) {
		TH_LOG("%d SPTEs still mapped unmapped memory", mapped);
	}
	kmmu_vm_free(vm);
	EXPECT_EQ(0, kmmu_lib_leak_check());
}

TEST_HARNESS_MAIN
