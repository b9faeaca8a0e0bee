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
	kmmu_age_gfn_range_ioctl(a->kmmu, 0, GPA >> 12, (GPA >> 12) + PAGES, true, true,
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

TEST_HARNESS_MAIN
