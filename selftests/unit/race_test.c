// SPDX-License-Identifier: GPL-2.0
/*
 * Races made to happen every time.  The user host calls a test's hook at
 * the core's race points (enum kmmu_race_point), in the thread that got
 * there and with what it holds: the hook stops that thread right at the
 * moment that matters and lets another one act, or acts itself.  Each test
 * here is a window that a defect in the MMU leaves open: a teardown that
 * holds mmu_lock for write, a memslot generation published too early, an
 * aging pass that takes the lock it claims not to need.
 */
#include <pthread.h>
#include <semaphore.h>
#include <time.h>

#include "unit_util.h"

#define GPA		0x100000ULL
#define PAGES		1024			/* slot 0, mapped 4K */
#define GPA2		0x40000000ULL
#define PAGES2		64			/* slot 1 */
#define MMIO_GPA	0x80000000ULL		/* no slot, until one is made there */
/* Long enough for any healthy thread on a loaded machine; a stuck one is stuck. */
#define WAIT_S		10

FIXTURE(race) {
	struct kmmu *kmmu;
	struct kmmu_vcpu *vcpu[2];
	struct unit_mem mem, mem2;
	long warnings;
};

FIXTURE_VARIANT(race) {
	const struct spte_layout *l;
};

UNIT_ADD_LAYOUT_VARIANTS(race);

FIXTURE_SETUP(race)
{
	struct kmmu_vm_config cfg = { .spte_format = variant->l->format,
				      .flags = variant->l->flags };
	int err, i;

	kmmu_user_thread_enter();
	self->warnings = kmmu_user_warnings();
	self->kmmu = kmmu_create_vm(&cfg, KMMU_SPTE_FORMAT_EPT, &err);
	ASSERT_NE(NULL, self->kmmu);
	ASSERT_EQ(0, unit_mem_alloc(&self->mem, PAGES * SZ_4K, KMMU_USER_MEM_ANON, SZ_4K));
	ASSERT_EQ(0, unit_mem_alloc(&self->mem2, PAGES2 * SZ_4K, KMMU_USER_MEM_ANON, SZ_4K));
	ASSERT_EQ(0, unit_set_slot(self->kmmu, 0, GPA, PAGES * SZ_4K, self->mem.addr));
	ASSERT_EQ(0, unit_set_slot(self->kmmu, 1, GPA2, PAGES2 * SZ_4K, self->mem2.addr));
	for (i = 0; i < 2; i++) {
		self->vcpu[i] = kmmu_create_vcpu(self->kmmu, i, &err);
		ASSERT_NE(NULL, self->vcpu[i]);
	}
}

FIXTURE_TEARDOWN(race)
{
	kmmu_user_set_race_hook(NULL, NULL);
	if (self->kmmu)
		unit_vm_put(self->kmmu, (self->vcpu[0] != NULL) + (self->vcpu[1] != NULL));
	if (self->mem.map)
		unit_mem_free(&self->mem);
	if (self->mem2.map)
		unit_mem_free(&self->mem2);
	EXPECT_EQ(0, kmmu_user_objects_alive());
	EXPECT_EQ(0, kmmu_user_pt_pages_alive());
	EXPECT_EQ(0, kmmu_user_check_frames());
	EXPECT_EQ(self->warnings, kmmu_user_warnings());
}

static struct kmmu_run run_wl(struct __test_metadata *_metadata, struct kmmu_vcpu *vcpu,
			      u64 gpa, u64 pages, bool write, u64 value)
{
	struct kmmu_workload wl = unit_wl(gpa, pages * SZ_4K, write ? 100 : 0, value);
	struct kmmu_run run;

	EXPECT_EQ(0, unit_run(vcpu, &wl, &run));
	return run;
}

/* Wait for @s at most WAIT_S seconds: 0, or -1 when it timed out. */
static int sem_wait_bounded(sem_t *s)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += WAIT_S;
	while (sem_timedwait(s, &ts))
		if (errno != EINTR)
			return -1;
	return 0;
}

/* ---- tearing down a root stalls no fault ---- */

struct zap_race {
	struct kmmu *kmmu;
	struct kmmu_vcpu *vcpu;
	sem_t paused, faulted;
	int hits;
	bool held_write;	/* the zapper held mmu_lock for write at the step */
	int waited;		/* what waiting for the fault gave */
	struct kmmu_run run;
};

static struct zap_race zr;

static void zap_step_hook(struct kmmu *kmmu, int point, uint64_t gfn, void *data)
{
	if (point != KMMU_RACE_ROOT_ZAP_STEP || kmmu != zr.kmmu || zr.hits++)
		return;
	zr.held_write = kmmu_user_rwlock_held_write(&kmmu->mmu_lock);
	sem_post(&zr.paused);
	zr.waited = sem_wait_bounded(&zr.faulted);
}

static void *zap_race_fault(void *arg)
{
	struct kmmu_workload wl = unit_wl(GPA2, SZ_4K, 0, 0);

	kmmu_user_thread_enter();
	if (sem_wait_bounded(&zr.paused))
		return NULL;
	kmmu_set_workload(zr.vcpu, &wl);
	do {
		memset(&zr.run, 0, sizeof(zr.run));
		kmmu_run_vcpu(zr.vcpu, &zr.run);
	} while (zr.run.exit_reason == KMMU_EXIT_INTR);
	sem_post(&zr.faulted);
	return NULL;
}

/*
 * KVM's root lifetime: zapping every mapping invalidates the roots under
 * the write lock for a moment, and empties them under the read lock.  Here
 * the zapper stops at its first step of emptying a root while another vCPU
 * loads a new root and faults a page in: that must go through, and the
 * zapper must not hold the write lock.  A teardown under the write lock
 * would hold up the fault until the hook gave up.
 */
TEST_F(race, zap_all_does_not_stall_faults)
{
	pthread_t t;

	EXPECT_EQ(KMMU_EXIT_DONE, run_wl(_metadata, self->vcpu[0], GPA, PAGES, true, 7).exit_reason);
	memset(&zr, 0, sizeof(zr));
	zr.kmmu = self->kmmu;
	zr.vcpu = self->vcpu[1];
	sem_init(&zr.paused, 0, 0);
	sem_init(&zr.faulted, 0, 0);
	ASSERT_EQ(0, pthread_create(&t, NULL, zap_race_fault, NULL));
	kmmu_user_set_race_hook(zap_step_hook, NULL);

	kmmu_zap_all(self->kmmu);
	kmmu_user_set_race_hook(NULL, NULL);
	pthread_join(t, NULL);

	ASSERT_LT(0, zr.hits);
	EXPECT_FALSE(zr.held_write);
	EXPECT_EQ(0, zr.waited) {
		TH_LOG("a fault waited %d s for a root teardown", WAIT_S);
	}
	EXPECT_EQ(KMMU_EXIT_DONE, zr.run.exit_reason);
	EXPECT_EQ(1, unit_stats(self->kmmu).pages_4k);
	/* And everything is still there to fault back in. */
	EXPECT_EQ(7 * PAGES, run_wl(_metadata, self->vcpu[0], GPA, PAGES, false, 0).read_sum);
	sem_destroy(&zr.paused);
	sem_destroy(&zr.faulted);
}

/* ---- the MMIO generation while memslots change ---- */

struct gen_race {
	struct kmmu *kmmu;
	struct kmmu_vcpu *vcpu;
	int hits;
	struct kmmu_run run;
};

static struct gen_race gr;

/* The new memslots are out, their update not over: the vCPU reads the page. */
static void gen_hook(struct kmmu *kmmu, int point, uint64_t gfn, void *data)
{
	struct kmmu_workload wl = unit_wl(MMIO_GPA, 8, 0, 0);

	if (point != KMMU_RACE_SLOTS_PUBLISHED || kmmu != gr.kmmu || gr.hits++)
		return;
	kmmu_set_workload(gr.vcpu, &wl);
	memset(&gr.run, 0, sizeof(gr.run));
	kmmu_run_vcpu(gr.vcpu, &gr.run);
}

/*
 * MMIO SPTEs keep 19 bits of the memslot generation.  An MMIO SPTE made at
 * a generation whose 19 bits are zero looks current again 2^19 updates
 * later, so when the bits wrap every SPTE is zapped -- and until that is
 * done, no MMIO SPTE may pass for current.  Here the stale one is read
 * right after a slot was created over its gpa, mid-update: the read must
 * reach the new slot's memory, not exit as MMIO.
 */
TEST_F(race, mmio_generation_wrap)
{
	struct unit_mem mmio_mem, other;
	struct kmmu_run run;
	u64 gen0;

	ASSERT_EQ(0, unit_mem_alloc(&mmio_mem, SZ_4K, KMMU_USER_MEM_ANON, SZ_4K));
	ASSERT_EQ(0, unit_mem_alloc(&other, SZ_4K, KMMU_USER_MEM_ANON, SZ_4K));
	/* An update (a slot created: one set published) that ends on 19 zero bits. */
	mutex_lock(&self->kmmu->slots_lock);
	self->kmmu->slots_generation = MMIO_GEN_MASK;
	mutex_unlock(&self->kmmu->slots_lock);
	ASSERT_EQ(0, unit_set_slot(self->kmmu, 3, GPA2 + PAGES2 * SZ_4K, SZ_4K, other.addr));
	gen0 = unit_stats(self->kmmu).memslot_generation;
	ASSERT_EQ(0, gen0 & MMIO_GEN_MASK);

	/* The vCPU reads where there is no slot: an MMIO exit and an MMIO SPTE of gen0. */
	run = run_wl(_metadata, self->vcpu[1], MMIO_GPA, 1, false, 0);
	ASSERT_EQ(KMMU_EXIT_MMIO, run.exit_reason);

	/* 2^19 updates later, less one: the next ends on the same 19 bits. */
	mutex_lock(&self->kmmu->slots_lock);
	self->kmmu->slots_generation = gen0 + MMIO_GEN_MASK;
	mutex_unlock(&self->kmmu->slots_lock);
	*unit_mem_word(&mmio_mem, 0) = 0x5107;
	memset(&gr, 0, sizeof(gr));
	gr.kmmu = self->kmmu;
	gr.vcpu = self->vcpu[1];
	kmmu_user_set_race_hook(gen_hook, NULL);
	ASSERT_EQ(0, unit_set_slot(self->kmmu, 2, MMIO_GPA, SZ_4K, mmio_mem.addr));
	kmmu_user_set_race_hook(NULL, NULL);

	ASSERT_EQ(1, gr.hits);
	EXPECT_EQ(KMMU_EXIT_DONE, gr.run.exit_reason) {
		TH_LOG("mid-update, a stale MMIO SPTE gave exit %u", gr.run.exit_reason);
	}
	EXPECT_EQ(0x5107, gr.run.read_sum);
	EXPECT_EQ(gen0 + MMIO_GEN_MASK + 1, unit_stats(self->kmmu).memslot_generation);
	/* After the update, too. */
	run = run_wl(_metadata, self->vcpu[1], MMIO_GPA, 1, false, 0);
	EXPECT_EQ(KMMU_EXIT_DONE, run.exit_reason);
	EXPECT_EQ(0x5107, run.read_sum);
	ASSERT_EQ(0, unit_set_slot(self->kmmu, 2, MMIO_GPA, 0, NULL));
	ASSERT_EQ(0, unit_set_slot(self->kmmu, 3, GPA2 + PAGES2 * SZ_4K, 0, NULL));
	unit_mem_free(&mmio_mem);
	unit_mem_free(&other);
}

/* ---- write-protection logging: the log before the writable SPTE ---- */

struct log_race {
	struct kmmu *kmmu;
	int hits;
	bool logged;		/* the page was in the log when its SPTE appeared */
};

static struct log_race lr;

static void installed_hook(struct kmmu *kmmu, int point, uint64_t gfn, void *data)
{
	struct kmmu_memory_slot *slot;

	if (point != KMMU_RACE_LEAF_INSTALLED || kmmu != lr.kmmu || lr.hits++)
		return;
	slot = kmmu_gfn_to_memslot(kmmu_memslots(kmmu, 0), gfn);
	lr.logged = slot && test_bit(gfn - slot->base_gfn, slot->dirty_bitmap);
}

/*
 * The slow path of a write to a logging slot: the page must be in the log
 * by the time its writable SPTE can be seen, as KVM's make_spte() marks
 * it.  Otherwise another vCPU could write through that SPTE and a GET
 * between the two would miss the page (it would show in the next one).
 */
TEST_F(race, wrprot_logs_before_the_writable_spte)
{
	struct kmmu_userspace_memory_region r = {
		.slot = 1, .flags = KMMU_MEM_LOG_DIRTY_PAGES,
		.guest_phys_addr = GPA2, .memory_size = PAGES2 * SZ_4K,
		.userspace_addr = (unsigned long)self->mem2.addr,
	};

	ASSERT_EQ(0, kmmu_set_memory_region(self->kmmu, &r));
	memset(&lr, 0, sizeof(lr));
	lr.kmmu = self->kmmu;
	kmmu_user_set_race_hook(installed_hook, NULL);
	EXPECT_EQ(KMMU_EXIT_DONE, run_wl(_metadata, self->vcpu[0], GPA2 + 3 * SZ_4K, 1, true,
					 1).exit_reason);
	kmmu_user_set_race_hook(NULL, NULL);
	ASSERT_EQ(1, lr.hits);
	EXPECT_TRUE(lr.logged);
}

/* ---- a zap under the read lock keeps its books last ---- */

struct frozen_race {
	struct kmmu *kmmu;
	int hits;
	u64 pages_4k;		/* what the statistics said at the frozen SPTE */
};

static struct frozen_race fr;

static void frozen_hook(struct kmmu *kmmu, int point, uint64_t gfn, void *data)
{
	if (point != KMMU_RACE_ZAP_FROZEN || kmmu != fr.kmmu || fr.hits++)
		return;
	fr.pages_4k = unit_stats(kmmu).pages_4k;
}

/*
 * Zapping under the read lock goes as KVM's: freeze the SPTE, flush the
 * TLBs, then tear down what it pointed to and keep the books, when no vCPU
 * can reach it any more.  Here a table of three 4K leaves that cannot be
 * rebuilt as one 2M leaf is zapped when logging stops: at the frozen SPTE,
 * before the flush, the leaves must still be there.
 */
TEST_F(race, zap_keeps_its_books_after_the_flush)
{
	struct kmmu_userspace_memory_region r = {
		.slot = 2, .flags = KMMU_MEM_LOG_DIRTY_PAGES, .guest_phys_addr = 0x80000000ULL,
		.memory_size = SZ_2M,
	};
	struct unit_mem thp;
	int p;

	ASSERT_EQ(0, unit_mem_alloc(&thp, SZ_2M, KMMU_USER_MEM_THP, SZ_2M));
	r.userspace_addr = (unsigned long)thp.addr;
	ASSERT_EQ(0, kmmu_set_memory_region(self->kmmu, &r));
	for (p = 0; p < 3; p++)
		EXPECT_EQ(KMMU_EXIT_DONE, run_wl(_metadata, self->vcpu[0],
						 r.guest_phys_addr + p * 7 * SZ_4K, 1, true,
						 1).exit_reason);
	ASSERT_EQ(3, unit_stats(self->kmmu).pages_4k);

	memset(&fr, 0, sizeof(fr));
	fr.kmmu = self->kmmu;
	kmmu_user_set_race_hook(frozen_hook, NULL);
	r.flags = 0;
	ASSERT_EQ(0, kmmu_set_memory_region(self->kmmu, &r));
	kmmu_user_set_race_hook(NULL, NULL);
	ASSERT_EQ(1, fr.hits);
	EXPECT_EQ(3, fr.pages_4k);
	EXPECT_EQ(0, unit_stats(self->kmmu).pages_4k);
	EXPECT_EQ(1, unit_stats(self->kmmu).collapsible_zaps);
	r.memory_size = 0;
	ASSERT_EQ(0, kmmu_set_memory_region(self->kmmu, &r));
	unit_mem_free(&thp);
}

/* ---- helpers of the races below ---- */

/* Slot 1 as a logging slot, in @mode (KMMU_DIRTY_LOG_MODE_*). */
static void log_slot1(struct __test_metadata *_metadata, FIXTURE_DATA(race) *self, u32 mode)
{
	struct kmmu_enable_cap cap = { .cap = KMMU_CAP_DIRTY_LOG_MODE, .args = { mode } };
	struct kmmu_userspace_memory_region r = {
		.slot = 1, .flags = KMMU_MEM_LOG_DIRTY_PAGES,
		.guest_phys_addr = GPA2, .memory_size = PAGES2 * SZ_4K,
		.userspace_addr = (unsigned long)self->mem2.addr,
	};

	ASSERT_EQ(0, kmmu_vm_ioctl(self->kmmu, KMMU_ENABLE_CAP, (unsigned long)&cap));
	ASSERT_EQ(0, kmmu_set_memory_region(self->kmmu, &r));
}

/* KMMU_GET_DIRTY_LOG of slot 1 (PAGES2 is 64 pages: one word). */
static u64 get_log1(struct kmmu *kmmu)
{
	u64 bits = 0;
	struct kmmu_dirty_log log = { .slot = 1, .dirty_bitmap = (unsigned long)&bits };

	if (kmmu_vm_ioctl(kmmu, KMMU_GET_DIRTY_LOG, (unsigned long)&log))
		return ~0ULL;
	return bits;
}

static u64 *page2(FIXTURE_DATA(race) *self, int page)
{
	return unit_mem_word(&self->mem2, page * SZ_4K);
}

/* One race: the hook acts the first time @point is reached in this VM. */
struct once {
	struct kmmu *kmmu;
	int point;
	int hits;
	void (*act)(void);
};

static struct once once;

static void once_hook(struct kmmu *kmmu, int point, uint64_t gfn, void *data)
{
	if (point != once.point || kmmu != once.kmmu || once.hits++)
		return;
	once.act();
}

static void arm_once(FIXTURE_DATA(race) *self, int point, void (*act)(void))
{
	once = (struct once){ .kmmu = self->kmmu, .point = point, .act = act };
	kmmu_user_set_race_hook(once_hook, NULL);
}

static FIXTURE_DATA(race) *cur;

/* ---- a fault whose page the host moved meanwhile ---- */

static void migrate_page3(void)
{
	kmmu_user_mem_migrate(page2(cur, 3), SZ_4K);
}

/*
 * The host migrates the page after the fault looked it up and before the
 * fault takes mmu_lock: the invalidation is over by then, and only its
 * sequence count says the page the fault holds is gone.  The fault must
 * take it again; installing the old frame would write to freed memory.
 */
TEST_F(race, fault_retries_after_an_invalidation)
{
	cur = self;
	arm_once(self, KMMU_RACE_FAULTIN_DONE, migrate_page3);
	EXPECT_EQ(KMMU_EXIT_DONE, run_wl(_metadata, self->vcpu[0], GPA2 + 3 * SZ_4K, 1, true,
					 0x77).exit_reason);
	kmmu_user_set_race_hook(NULL, NULL);
	/* It looked the page up once more, after the migration. */
	ASSERT_EQ(2, once.hits);
	EXPECT_EQ(0x77, *page2(self, 3));
	EXPECT_LE(1, unit_stats(self->kmmu).fault_retries);
}

/* ---- a fault during an invalidation ---- */

static struct {
	int started, ended;
	long in_progress_at_install;
} inval;

/* Start the invalidation once the fault has its page; end it when the fault gives up. */
static void inval_hook(struct kmmu *kmmu, int point, uint64_t gfn, void *data)
{
	unsigned long hva = (unsigned long)page2(cur, 3);

	if (kmmu != cur->kmmu)
		return;
	if (point == KMMU_RACE_FAULTIN_DONE && !inval.started++)
		kmmu_invalidate_range_start(kmmu, hva, hva + SZ_4K, true);
	if (point == KMMU_RACE_FAULT_RETRY && inval.started && !inval.ended++)
		kmmu_invalidate_range_end(kmmu, hva, hva + SZ_4K);
	if (point == KMMU_RACE_LEAF_INSTALLED)
		inval.in_progress_at_install |= READ_ONCE(kmmu->mmu_invalidate_in_progress);
}

/*
 * A fault that looked its page up while the host's invalidation of it is
 * running: the sequence count has not moved yet (the invalidation ends
 * later), so only the range in progress tells.  The fault retries until
 * the invalidation ends; no leaf is installed before.
 */
TEST_F(race, no_leaf_installed_while_invalidating)
{
	struct kmmu_run run;

	cur = self;
	memset(&inval, 0, sizeof(inval));
	kmmu_user_set_race_hook(inval_hook, NULL);
	run = run_wl(_metadata, self->vcpu[0], GPA2 + 3 * SZ_4K, 1, true, 0x78);
	kmmu_user_set_race_hook(NULL, NULL);
	if (!inval.ended) {
		/* Installed at the first try: end the invalidation all the same. */
		unsigned long hva = (unsigned long)page2(self, 3);

		kmmu_invalidate_range_end(self->kmmu, hva, hva + SZ_4K);
	}
	EXPECT_EQ(KMMU_EXIT_DONE, run.exit_reason);
	EXPECT_EQ(0, inval.in_progress_at_install);
	EXPECT_EQ(1, inval.ended);
	EXPECT_EQ(0x78, *page2(self, 3));
}

/* ---- a request waits for a vCPU in guest mode ---- */

static struct {
	struct kmmu_vcpu *vcpu;
	sem_t in_guest, go;
	int armed, posted;
} ack;

static void ack_hook(struct kmmu *kmmu, int point, uint64_t gfn, void *data)
{
	if (kmmu != cur->kmmu)
		return;
	if (point == KMMU_RACE_GUEST_ACCESS && __atomic_exchange_n(&ack.armed, 0,
								    __ATOMIC_ACQ_REL)) {
		sem_post(&ack.in_guest);
		sem_wait_bounded(&ack.go);
	}
	/* The requester waits for the vCPU: let it go on, and acknowledge. */
	if (point == KMMU_RACE_REQUEST_WAIT && !__atomic_exchange_n(&ack.posted, 1,
								     __ATOMIC_ACQ_REL))
		sem_post(&ack.go);
}

static void *write_page3(void *arg)
{
	struct kmmu_run *run = arg;
	struct kmmu_workload wl = unit_wl(GPA2 + 3 * SZ_4K, 8, 100, 0x79);

	kmmu_user_thread_enter();
	kmmu_set_workload(ack.vcpu, &wl);
	do {
		memset(run, 0, sizeof(*run));
		kmmu_run_vcpu(ack.vcpu, run);
	} while (run->exit_reason == KMMU_EXIT_INTR);
	return NULL;
}

/*
 * A vCPU holds a translation in guest mode and is about to write through
 * it when the host migrates the page.  The invalidation's TLB flush must
 * wait for that vCPU to leave guest mode or acknowledge: only then may the
 * old frame go.  Here the vCPU stands still until the requester is seen
 * waiting for it; a requester that did not wait would free the frame
 * first, and the write would land in freed memory.
 */
TEST_F(race, flush_waits_for_a_vcpu_in_guest_mode)
{
	struct kmmu_run run;
	pthread_t t;

	cur = self;
	memset(&ack, 0, sizeof(ack));
	ack.vcpu = self->vcpu[0];
	ack.armed = 1;
	sem_init(&ack.in_guest, 0, 0);
	sem_init(&ack.go, 0, 0);
	/*
	 * The page is mapped by the other vCPU: this one's write below walks
	 * the tables, without a fault, and fills its TLB.
	 */
	EXPECT_EQ(KMMU_EXIT_DONE, run_wl(_metadata, self->vcpu[1], GPA2 + 3 * SZ_4K, 1, true,
					 1).exit_reason);
	kmmu_user_set_race_hook(ack_hook, NULL);
	ASSERT_EQ(0, pthread_create(&t, NULL, write_page3, &run));
	ASSERT_EQ(0, sem_wait_bounded(&ack.in_guest));
	EXPECT_EQ(0, kmmu_user_mem_migrate(page2(self, 3), SZ_4K));
	if (!__atomic_exchange_n(&ack.posted, 1, __ATOMIC_ACQ_REL))
		sem_post(&ack.go);
	pthread_join(t, NULL);
	kmmu_user_set_race_hook(NULL, NULL);
	EXPECT_EQ(KMMU_EXIT_DONE, run.exit_reason);
	EXPECT_EQ(0x79, *page2(self, 3));
	sem_destroy(&ack.in_guest);
	sem_destroy(&ack.go);
}

/* ---- the fast path logs after its cmpxchg ---- */

static u64 first_log;

static void get_log_now(void)
{
	first_log = get_log1(cur->kmmu);
}

/*
 * The fast path makes a write-protected leaf writable for a write to a
 * logging slot.  A GET between its read of the leaf and its cmpxchg must
 * not take the page: the write comes after, and must be in the next log.
 * A page logged before the cmpxchg would be handed out (and "protected",
 * though still read-only) by that GET, and lost to the next one.
 */
TEST_F(race, fast_path_logs_after_its_cmpxchg)
{
	cur = self;
	log_slot1(_metadata, self, KMMU_DIRTY_LOG_MODE_WRPROT);
	/* A read maps the page write-protected: the write below is the fast path's. */
	EXPECT_EQ(KMMU_EXIT_DONE, run_wl(_metadata, self->vcpu[0], GPA2 + 3 * SZ_4K, 1, false,
					 0).exit_reason);
	EXPECT_EQ(0, get_log1(self->kmmu));
	arm_once(self, KMMU_RACE_FAST_PF_READ, get_log_now);
	EXPECT_EQ(KMMU_EXIT_DONE, run_wl(_metadata, self->vcpu[0], GPA2 + 3 * SZ_4K, 1, true,
					 2).exit_reason);
	kmmu_user_set_race_hook(NULL, NULL);
	ASSERT_EQ(1, once.hits);
	EXPECT_EQ(0, first_log);
	EXPECT_EQ(1ULL << 3, get_log1(self->kmmu));
}

/* ---- aging keeps a D bit the CPU sets meanwhile ---- */

static void write_page3_inline(void)
{
	struct kmmu_workload wl = unit_wl(GPA2 + 3 * SZ_4K, 8, 100, 3);
	struct kmmu_run run;

	unit_run(cur->vcpu[0], &wl, &run);
}

/*
 * D-bit logging: a leaf is writable, young and clean when aging reads it;
 * the vCPU writes the page (setting D) before aging clears A.  Aging must
 * not write back what it read: the D bit is the only record of the write.
 */
TEST_F(race, aging_keeps_a_d_bit_set_meanwhile)
{
	u64 young, old;

	if (variant->l->ad_type)
		SKIP(return, "no D bits without A/D");
	cur = self;
	log_slot1(_metadata, self, KMMU_DIRTY_LOG_MODE_DBIT);
	EXPECT_EQ(KMMU_EXIT_DONE, run_wl(_metadata, self->vcpu[0], GPA2 + 3 * SZ_4K, 1, true,
					 1).exit_reason);
	/* Harvested and cleaned: writable, young, clean. */
	EXPECT_EQ(1ULL << 3, get_log1(self->kmmu));
	arm_once(self, KMMU_RACE_AGE_READ, write_page3_inline);
	kmmu_age_gfn_range_ioctl(self->kmmu, 0, GPA2 >> 12, (GPA2 >> 12) + PAGES2, KMMU_AGE_FLUSH,
				 &young, &old);
	kmmu_user_set_race_hook(NULL, NULL);
	ASSERT_EQ(1, once.hits);
	EXPECT_EQ(1, young);
	EXPECT_EQ(1ULL << 3, get_log1(self->kmmu));
}

/* ---- a lockless walker keeps the table it reads ---- */

static void zap_all_now(void)
{
	kmmu_zap_all(cur->kmmu);
}

/*
 * The fast path holds nothing but RCU while it reads a leaf and cmpxchgs
 * it.  Every mapping is zapped right between the two: the table must
 * outlive the fast path (freed after a grace period), whose cmpxchg then
 * fails and sends it to the slow path.
 */
TEST_F(race, lockless_walker_keeps_its_table)
{
	cur = self;
	log_slot1(_metadata, self, KMMU_DIRTY_LOG_MODE_WRPROT);
	EXPECT_EQ(KMMU_EXIT_DONE, run_wl(_metadata, self->vcpu[0], GPA2 + 3 * SZ_4K, 1, false,
					 0).exit_reason);
	arm_once(self, KMMU_RACE_FAST_PF_READ, zap_all_now);
	EXPECT_EQ(KMMU_EXIT_DONE, run_wl(_metadata, self->vcpu[0], GPA2 + 3 * SZ_4K, 1, true,
					 4).exit_reason);
	kmmu_user_set_race_hook(NULL, NULL);
	ASSERT_EQ(1, once.hits);
	EXPECT_EQ(4, *page2(self, 3));
	EXPECT_EQ(1ULL << 3, get_log1(self->kmmu));
}

/* ---- a fault whose root was invalidated meanwhile ---- */

/*
 * Every root is invalidated and emptied while a fault has its page but
 * not yet mmu_lock.  The fault must not install into its invalid root
 * (nobody would zap that leaf again, and the root would be freed with it):
 * it retries, and the vCPU loads a new root.
 */
TEST_F(race, fault_into_an_invalid_root_retries)
{
	cur = self;
	arm_once(self, KMMU_RACE_FAULTIN_DONE, zap_all_now);
	EXPECT_EQ(KMMU_EXIT_DONE, run_wl(_metadata, self->vcpu[0], GPA2 + 3 * SZ_4K, 1, true,
					 5).exit_reason);
	kmmu_user_set_race_hook(NULL, NULL);
	ASSERT_EQ(2, once.hits);
	EXPECT_EQ(5, *page2(self, 3));
	EXPECT_EQ(1, unit_stats(self->kmmu).pages_4k);
}

/* ---- lockless aging takes no mmu_lock ---- */

struct lock_holder {
	struct kmmu *kmmu;
	sem_t held, release;
};

static void *hold_write_lock(void *arg)
{
	struct lock_holder *h = arg;

	kmmu_user_thread_enter();
	write_lock(&h->kmmu->mmu_lock);
	sem_post(&h->held);
	sem_wait_bounded(&h->release);
	write_unlock(&h->kmmu->mmu_lock);
	return NULL;
}

struct ager {
	struct kmmu *kmmu;
	sem_t done;
	u64 young, old;
};

static void *age_all(void *arg)
{
	struct ager *a = arg;

	kmmu_user_thread_enter();
	kmmu_age_gfn_range_ioctl(a->kmmu, 0, GPA >> 12, (GPA >> 12) + PAGES, KMMU_AGE_FLUSH,
				 &a->young, &a->old);
	sem_post(&a->done);
	return NULL;
}

/*
 * One thread holds mmu_lock for write.  A lockless aging pass must finish
 * all the same, and see every page young; a locked pass must not finish
 * until the lock is let go.
 */
TEST_F(race, lockless_aging_takes_no_lock)
{
	struct lock_holder h = { .kmmu = self->kmmu };
	struct ager a = { .kmmu = self->kmmu };
	pthread_t th, ta;
	int locked;

	EXPECT_EQ(KMMU_EXIT_DONE, run_wl(_metadata, self->vcpu[0], GPA, PAGES, true, 1).exit_reason);
	sem_init(&h.held, 0, 0);
	sem_init(&h.release, 0, 0);
	sem_init(&a.done, 0, 0);
	ASSERT_EQ(0, pthread_create(&th, NULL, hold_write_lock, &h));
	ASSERT_EQ(0, sem_wait_bounded(&h.held));

	WRITE_ONCE(self->kmmu->lockless_aging, true);
	ASSERT_EQ(0, pthread_create(&ta, NULL, age_all, &a));
	EXPECT_EQ(0, sem_wait_bounded(&a.done)) {
		TH_LOG("a lockless aging pass waited for mmu_lock");
	}
	pthread_join(ta, NULL);
	EXPECT_EQ(PAGES, a.young);

	/* The locked pass waits; a pass that finished would not have taken the lock. */
	WRITE_ONCE(self->kmmu->lockless_aging, false);
	ASSERT_EQ(0, pthread_create(&ta, NULL, age_all, &a));
	usleep(200 * 1000);
	locked = sem_trywait(&a.done);
	EXPECT_NE(0, locked) {
		TH_LOG("a locked aging pass finished while mmu_lock was held for write");
	}
	sem_post(&h.release);
	pthread_join(th, NULL);
	if (locked)
		EXPECT_EQ(0, sem_wait_bounded(&a.done));
	pthread_join(ta, NULL);
	sem_destroy(&h.held);
	sem_destroy(&h.release);
	sem_destroy(&a.done);
}

/* ---- logging that stops waits for no fault ---- */

struct sync_race {
	struct kmmu_vcpu *vcpu;
	sem_t parked, go;
	int waited;		/* what the parked fault's wait for "go" gave */
	struct kmmu_run run;
};

static struct sync_race sr;

/* The fault holds its host page and the slot it read: it stops there. */
static void park_fault(void)
{
	sem_post(&sr.parked);
	sr.waited = sem_wait_bounded(&sr.go);
}

static void *sync_race_write(void *arg)
{
	struct kmmu_workload wl = unit_wl(GPA2 + 5 * SZ_4K, SZ_4K, 100, 1);

	kmmu_user_thread_enter();
	unit_run(sr.vcpu, &wl, &sr.run);
	return NULL;
}

/*
 * Unlike KVM's, kmmu's logging that stops waits for no fault that read
 * the logging slot: one stopped before it maps its page still logs it,
 * into the old log, which must be there for it until the fault is over
 * (ASan sees a log freed under it).
 */
TEST_F(race, logging_stops_without_waiting_for_faults)
{
	struct kmmu_userspace_memory_region r = {
		.slot = 1, .flags = KMMU_MEM_LOG_DIRTY_PAGES,
		.guest_phys_addr = GPA2, .memory_size = PAGES2 * SZ_4K,
		.userspace_addr = (unsigned long)self->mem2.addr,
	};
	pthread_t a;

	ASSERT_EQ(0, kmmu_set_memory_region(self->kmmu, &r));
	memset(&sr, 0, sizeof(sr));
	sr.vcpu = self->vcpu[0];
	sem_init(&sr.parked, 0, 0);
	sem_init(&sr.go, 0, 0);
	arm_once(self, KMMU_RACE_FAULTIN_DONE, park_fault);
	ASSERT_EQ(0, pthread_create(&a, NULL, sync_race_write, NULL));
	ASSERT_EQ(0, sem_wait_bounded(&sr.parked));

	/* Held up by the fault, this would wait until the hook gave up. */
	r.flags = 0;
	ASSERT_EQ(0, kmmu_set_memory_region(self->kmmu, &r));
	sem_post(&sr.go);
	pthread_join(a, NULL);
	kmmu_user_set_race_hook(NULL, NULL);

	ASSERT_EQ(1, once.hits);
	EXPECT_EQ(0, sr.waited) {
		TH_LOG("disabling logging waited %d s for a fault", WAIT_S);
	}
	EXPECT_EQ(KMMU_EXIT_DONE, sr.run.exit_reason);
	EXPECT_EQ(1, *page2(self, 5));
	/* The slot logs no more. */
	EXPECT_EQ(~0ULL, get_log1(self->kmmu));
	sem_destroy(&sr.parked);
	sem_destroy(&sr.go);
}

TEST_HARNESS_MAIN
