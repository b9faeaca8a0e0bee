// SPDX-License-Identifier: GPL-2.0
/*
 * What only a hardware vCPU (KMMU_BACKEND=hw, KMMU_CAP_HW_VCPU) can show:
 * the CPU itself walking kmmu's NPT tables and setting their A/D bits, the
 * private slot staying out of what userspace sees, the capability's
 * refusals, a remap while the guest runs, and dirty logging while it
 * writes, which without the IPI kick loses writes made through a stale
 * translation -- shown both ways, with the kick and with kmmu.ko's
 * hw_test_no_kick defect.  On other backends every
 * test skips.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "test_util.h"

#define HW_GPA		0x100000000ULL
#define NPT_A		(1ULL << 5)
#define NPT_D		(1ULL << 6)
#define NO_KICK_PARAM	"/sys/module/kmmu/parameters/hw_test_no_kick"

#define KMMU_REQUIRE_HW()							\
	do {									\
		if (!kmmu_backend_hw() || !kmmu_backend_available())		\
			SKIP(return, "needs KMMU_BACKEND=hw and a host with hardware vCPUs"); \
	} while (0)

static struct kmmu_workload wl_of(uint64_t gpa, uint64_t size, uint32_t write_percent,
				  uint64_t iterations)
{
	return (struct kmmu_workload){
		.gpa = gpa, .size = size, .iterations = iterations,
		.pattern = KMMU_PATTERN_SEQUENTIAL, .write_percent = write_percent,
		.value = 0x1234,
	};
}

static uint64_t leaf(struct __test_metadata *_metadata, struct kmmu_vm *vm, uint64_t gpa)
{
	struct kmmu_spte_query q;

	EXPECT_EQ(0, kmmu_vm_get_spte(vm, gpa, 0, &q));
	EXPECT_EQ(KMMU_LEVEL_4K, q.level);
	return q.sptes[q.level];
}

/* The CPU sets A on what it reads and A and D on what it writes, in kmmu's leaves. */
TEST(cpu_sets_accessed_and_dirty)
{
	struct kmmu_vm_stats st;
	struct kmmu_workload wl;
	struct kmmu_vcpu *vcpu;
	struct kmmu_vm *vm;
	struct kmmu_mem mem;
	struct kmmu_run run;
	uint64_t young, old;

	KMMU_REQUIRE_HW();
	KMMU_VM_CREATE(NULL, &vm);
	ASSERT_EQ(0, kmmu_mem_alloc(&mem, KMMU_BACKING_ANON, 4 * SZ_4K));
	memset(mem.addr, 0, mem.size);
	ASSERT_EQ(0, kmmu_vm_set_memslot(vm, 0, 0, HW_GPA, mem.size, mem.addr));
	ASSERT_EQ(0, kmmu_vcpu_create(vm, 0, &vcpu));

	/* Pages 0 and 1 read, pages 2 and 3 written. */
	wl = wl_of(HW_GPA, 2 * SZ_4K, 0, 1);
	ASSERT_EQ(0, kmmu_vcpu_run_workload(vcpu, &wl, &run));
	ASSERT_EQ(KMMU_EXIT_DONE, run.exit_reason);
	EXPECT_EQ(2, run.accesses);
	wl = wl_of(HW_GPA + 2 * SZ_4K, 2 * SZ_4K, 100, 1);
	ASSERT_EQ(0, kmmu_vcpu_run_workload(vcpu, &wl, &run));
	ASSERT_EQ(KMMU_EXIT_DONE, run.exit_reason);
	EXPECT_EQ(0x1234, *(uint64_t *)((char *)mem.addr + 3 * SZ_4K));

	EXPECT_EQ(NPT_A, leaf(_metadata, vm, HW_GPA) & (NPT_A | NPT_D));
	EXPECT_EQ(NPT_A | NPT_D, leaf(_metadata, vm, HW_GPA + 3 * SZ_4K) & (NPT_A | NPT_D));

	/* Aged: A cleared; read again, the CPU sets it again. */
	ASSERT_EQ(0, kmmu_vm_age(vm, HW_GPA, mem.size, 0, KMMU_AGE_FLUSH, &young, &old));
	EXPECT_EQ(4, young);
	EXPECT_EQ(0, leaf(_metadata, vm, HW_GPA) & NPT_A);
	wl = wl_of(HW_GPA, SZ_4K, 0, 1);
	ASSERT_EQ(0, kmmu_vcpu_run_workload(vcpu, &wl, &run));
	EXPECT_EQ(NPT_A, leaf(_metadata, vm, HW_GPA) & NPT_A);

	/* Only the test's four pages count, not the guest's code and tables. */
	ASSERT_EQ(0, kmmu_vm_stats(vm, &st));
	EXPECT_EQ(4, st.pages_4k);
	EXPECT_EQ(4, st.faults);
	/* The exits behind them: a #NPF each at least, a VMMCALL for each DONE. */
	{
		int fd = kmmu_vcpu_stats_fd(vcpu);
		uint64_t npf = 0, vmmcall = 0, intr = ~0ULL;

		ASSERT_LE(0, fd);
		EXPECT_EQ(0, kmmu_stats_get(fd, "hw_npf_exits", &npf));
		EXPECT_EQ(0, kmmu_stats_get(fd, "hw_vmmcall_exits", &vmmcall));
		EXPECT_EQ(0, kmmu_stats_get(fd, "hw_intr_exits", &intr));
		EXPECT_LE(4, npf);
		EXPECT_LE(3, vmmcall);
		EXPECT_NE(~0ULL, intr);
		close(fd);
	}
	kmmu_vm_free(vm);
	kmmu_mem_free(&mem);
}

/* What the capability refuses, and what it makes of the private slot. */
TEST(capability_rules)
{
	struct kmmu_vm_config ept = { .spte_format = KMMU_SPTE_FORMAT_EPT };
	struct kmmu_enable_cap cap = { .cap = KMMU_CAP_HW_VCPU, .args = { 1 } };
	struct kmmu_workload wl;
	struct kmmu_vcpu *vcpu;
	struct kmmu_vm *vm;
	struct kmmu_mem mem;
	int fd, vm_fd;

	KMMU_REQUIRE_HW();
	fd = kmmu_open_dev();
	ASSERT_LE(0, fd);
	EXPECT_EQ(1, kmmu_ioctl(fd, KMMU_CHECK_EXTENSION, KMMU_CAP_HW_VCPU));
	/* An EPT VM: -EINVAL, and it says so on the VM fd. */
	vm_fd = kmmu_ioctl(fd, KMMU_CREATE_VM, (unsigned long)&ept);
	ASSERT_LE(0, vm_fd);
	EXPECT_EQ(0, kmmu_ioctl(vm_fd, KMMU_CHECK_EXTENSION, KMMU_CAP_HW_VCPU));
	EXPECT_EQ(-EINVAL, kmmu_ioctl(vm_fd, KMMU_ENABLE_CAP, (unsigned long)&cap));
	kmmu_close(vm_fd);
	/* D-bit mode with rings: -EOPNOTSUPP. */
	vm_fd = kmmu_ioctl(fd, KMMU_CREATE_VM, (unsigned long)&(struct kmmu_vm_config){ 0 });
	ASSERT_LE(0, vm_fd);
	{
		struct kmmu_enable_cap ring = { .cap = KMMU_CAP_DIRTY_LOG_RING, .args = { SZ_4K } };
		struct kmmu_enable_cap dbit = { .cap = KMMU_CAP_DIRTY_LOG_MODE,
						.args = { KMMU_DIRTY_LOG_MODE_DBIT } };

		ASSERT_EQ(0, kmmu_ioctl(vm_fd, KMMU_ENABLE_CAP, (unsigned long)&ring));
		ASSERT_EQ(0, kmmu_ioctl(vm_fd, KMMU_ENABLE_CAP, (unsigned long)&dbit));
		EXPECT_EQ(0, kmmu_ioctl(vm_fd, KMMU_CHECK_EXTENSION, KMMU_CAP_HW_VCPU));
		EXPECT_EQ(-EOPNOTSUPP, kmmu_ioctl(vm_fd, KMMU_ENABLE_CAP, (unsigned long)&cap));
	}
	kmmu_close(vm_fd);
	kmmu_close(fd);

	KMMU_VM_CREATE(NULL, &vm);
	/* On already, and vCPUs exist: -EBUSY; a bad argument: -EINVAL. */
	EXPECT_EQ(-EBUSY, kmmu_ioctl(vm->fd, KMMU_ENABLE_CAP, (unsigned long)&cap));
	cap.args[0] = 2;
	EXPECT_EQ(-EINVAL, kmmu_ioctl(vm->fd, KMMU_ENABLE_CAP, (unsigned long)&cap));
	/* The private slot's range is taken. */
	ASSERT_EQ(0, kmmu_mem_alloc(&mem, KMMU_BACKING_ANON, 4 * SZ_4K));
	memset(mem.addr, 0, mem.size);
	EXPECT_EQ(-EEXIST, kmmu_vm_set_memslot(vm, 0, 0, KMMU_HW_SLOT_GPA, SZ_4K, mem.addr));
	ASSERT_EQ(0, kmmu_vm_set_memslot(vm, 0, 0, HW_GPA, mem.size, mem.addr));
	ASSERT_EQ(0, kmmu_vcpu_create(vm, 0, &vcpu));
	/* A workload on the private slot, or beyond what the guest can address. */
	wl = wl_of(KMMU_HW_SLOT_GPA, SZ_4K, 100, 1);
	EXPECT_EQ(-EINVAL, kmmu_vcpu_set_workload(vcpu, &wl));
	wl = wl_of((1ULL << 48) - SZ_4K, SZ_4K, 0, 1);
	EXPECT_EQ(-EINVAL, kmmu_vcpu_set_workload(vcpu, &wl));
	/* Nothing of that stopped the vCPU. */
	wl = wl_of(HW_GPA, mem.size, 100, 2);
	EXPECT_EQ(0, kmmu_vcpu_set_workload(vcpu, &wl));
	{
		struct kmmu_run run;

		ASSERT_EQ(0, kmmu_vcpu_run_workload(vcpu, &wl, &run));
		EXPECT_EQ(KMMU_EXIT_DONE, run.exit_reason);
		EXPECT_EQ(8, run.accesses);
	}
	kmmu_vm_free(vm);
	kmmu_mem_free(&mem);
}

/*
 * A remap while the guest runs.  The slot's page is a memfd page mapped
 * twice: at the slot's address, and at a second address that stays.  A
 * vCPU reads the page in a loop; the test maps another memfd page over
 * the slot's address, which invalidates kmmu's mapping, and then writes a
 * marker into the old page through the second mapping.  Reads of the old
 * page are 1, of the new page 1 << 21, of the marker 1 << 42: a marker
 * read is a read through a translation the remap had already dropped.
 * Each RUN has a budget of 2^21 - 1 reads, so that its counts fit their
 * 21 bits of its read_sum.
 */
#define OLD_VALUE	1ULL
#define NEW_VALUE	(1ULL << 21)
#define MARKER		(1ULL << 42)
#define RUN_READS	((1ULL << 21) - 1)

/*
 * A vCPU thread that runs @wl RUN after RUN, each with a budget of
 * @max_accesses, until told to stop; @each, if set, sees every RUN's
 * result.  @cpu >= 0 pins it there.
 */
struct guest_thread {
	struct kmmu_vcpu *vcpu;
	struct kmmu_workload wl;
	uint64_t max_accesses;
	int cpu;
	void (*each)(struct guest_thread *g, const struct kmmu_run *run);
	uint64_t old, new, marker;	/* remap_count()'s: reads of each, over every RUN */
	pthread_t thread;
	int ret;
	volatile int started, stop;
};

/* Run the calling thread on @cpu only. */
static void pin_to(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static void *guest_thread_fn(void *arg)
{
	struct guest_thread *g = arg;
	struct kmmu_run run = { .max_accesses = g->max_accesses };

	if (g->cpu >= 0)
		pin_to(g->cpu);
	g->ret = kmmu_vcpu_set_workload(g->vcpu, &g->wl);
	if (g->ret)
		return NULL;
	g->started = 1;
	while (!g->stop) {
		g->ret = kmmu_vcpu_run(g->vcpu, &run);
		if (g->ret)
			break;
		if (g->each)
			g->each(g, &run);
		if (run.exit_reason != KMMU_EXIT_BUDGET && run.exit_reason != KMMU_EXIT_INTR) {
			g->ret = -EPROTO;
			break;
		}
	}
	return NULL;
}

/* Start @g and let its guest run for 20 ms. */
static int guest_thread_start(struct guest_thread *g)
{
	int ret = pthread_create(&g->thread, NULL, guest_thread_fn, g);

	if (ret)
		return -ret;
	while (!g->started && !g->ret)
		usleep(1000);
	usleep(20000);
	return g->ret;
}

/* Stop @g (the kick ends the RUN under way) and say how its RUNs went. */
static int guest_thread_stop(struct guest_thread *g)
{
	g->stop = 1;
	kmmu_vcpu_kick(g->vcpu);
	pthread_join(g->thread, NULL);
	return g->ret;
}

static void remap_count(struct guest_thread *g, const struct kmmu_run *run)
{
	g->old += run->read_sum & (NEW_VALUE - 1);
	g->new += (run->read_sum >> 21) & (NEW_VALUE - 1);
	g->marker += run->read_sum >> 42;
}

static int set_no_kick(bool on)
{
	int fd = open(NO_KICK_PARAM, O_WRONLY);
	int ok;

	if (fd < 0)
		return -errno;
	ok = write(fd, on ? "Y" : "N", 1) == 1;
	close(fd);
	return ok ? 0 : -EIO;
}

/*
 * One remap under a running reader; the marker reads it saw.  Sets
 * *@valid when the run saw both the old and the new page (the remap came
 * while the guest ran).
 */
static uint64_t remap_once(struct __test_metadata *_metadata, bool *valid)
{
	struct guest_thread r = {
		.wl = wl_of(HW_GPA, 8, 0, ~0ULL >> 1), .max_accesses = RUN_READS, .cpu = -1,
		.each = remap_count,
	};
	struct kmmu_vm *vm;
	uint64_t *slot, *keep, marker_reads;
	void *again;
	int memfd;

	KMMU_VM_CREATE(NULL, &vm);
	memfd = memfd_create("kmmu-hw-remap", 0);
	ASSERT_LE(0, memfd);
	ASSERT_EQ(0, ftruncate(memfd, 2 * SZ_4K));
	slot = mmap(NULL, SZ_4K, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	keep = mmap(NULL, SZ_4K, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	ASSERT_NE(MAP_FAILED, slot);
	ASSERT_NE(MAP_FAILED, keep);
	slot[0] = OLD_VALUE;
	keep[SZ_4K / 8 - 1] = 0;
	ASSERT_EQ(0, kmmu_vm_set_memslot(vm, 0, 0, HW_GPA, SZ_4K, slot));
	ASSERT_EQ(0, kmmu_vcpu_create(vm, 0, &r.vcpu));

	ASSERT_EQ(0, guest_thread_start(&r));
	/* The remap: the second page of the memfd replaces the first at @slot. */
	{
		uint64_t *newp = mmap(NULL, SZ_4K, PROT_READ | PROT_WRITE, MAP_SHARED, memfd,
				      SZ_4K);

		ASSERT_NE(MAP_FAILED, newp);
		newp[0] = NEW_VALUE;
		munmap(newp, SZ_4K);
	}
	again = mmap(slot, SZ_4K, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, memfd, SZ_4K);
	ASSERT_EQ((void *)slot, again);
	/* The invalidation is over: from here no read may reach the old page. */
	keep[0] = MARKER;
	usleep(20000);
	ASSERT_EQ(0, guest_thread_stop(&r));

	marker_reads = r.marker;
	*valid = r.old && r.new;
	TH_LOG("reads: %llu old, %llu new, %llu of the marker", (unsigned long long)r.old,
	       (unsigned long long)r.new, (unsigned long long)marker_reads);
	munmap(slot, SZ_4K);
	munmap(keep, SZ_4K);
	close(memfd);
	kmmu_vm_free(vm);
	return marker_reads;
}

/*
 * The guest leaves the old page before the remap returns.  (Here the host's
 * own TLB shootdown for the remap interrupts the guest as well, so this
 * cannot tell a missing kick; the dirty-log tests below can.)
 */
TEST(remap_while_running_is_seen)
{
	int tries, valid_runs = 0;

	KMMU_REQUIRE_HW();
	for (tries = 0; tries < 6 && valid_runs < 3; tries++) {
		bool valid = false;

		EXPECT_EQ(0, remap_once(_metadata, &valid));
		valid_runs += valid;
	}
	EXPECT_LE(1, valid_runs);
}

/*
 * Dirty logging while the guest writes: GET_DIRTY_LOG write-protects the
 * page and flushes, and from then on a write the guest makes must fault
 * and be logged.  A vCPU writes one page without pause; the test takes the
 * log, clears the page through its own mapping, waits a little, reads the
 * page, and takes the log again: a page the guest wrote (it reads the
 * guest's value again) must be in that second log.  Without the IPI kick
 * the guest writes on through its stale writable translation until it
 * happens to exit, and the write is lost to the log.
 */
#define WRITE_VALUE	0x5a5a5a5a5a5a5a5aULL

/* Of @trials, those in which a write of the guest's was missing from the log. */
static int lost_writes(struct __test_metadata *_metadata, int trials)
{
	/* The guest runs on CPU 1 while the test takes the log on CPU 0. */
	struct guest_thread w = {
		.wl = wl_of(HW_GPA, 8, 100, ~0ULL >> 1), .max_accesses = 1 << 20, .cpu = 1,
	};
	volatile uint64_t *page;
	struct kmmu_vm *vm;
	struct kmmu_mem mem;
	uint64_t bm[1];
	int trial, lost = 0, written = 0;
	cpu_set_t all;

	ASSERT_EQ(0, pthread_getaffinity_np(pthread_self(), sizeof(all), &all));
	pin_to(0);
	KMMU_VM_CREATE(NULL, &vm);
	ASSERT_EQ(0, kmmu_mem_alloc(&mem, KMMU_BACKING_ANON, SZ_4K));
	page = mem.addr;
	*page = 0;
	ASSERT_EQ(0, kmmu_vm_set_memslot(vm, 0, KMMU_MEM_LOG_DIRTY_PAGES, HW_GPA, SZ_4K,
					 mem.addr));
	ASSERT_EQ(0, kmmu_vcpu_create(vm, 0, &w.vcpu));
	w.wl.value = WRITE_VALUE;
	ASSERT_EQ(0, guest_thread_start(&w));
	for (trial = 0; trial < trials; trial++) {
		uint64_t seen;

		ASSERT_EQ(0, kmmu_vm_get_dirty_log(vm, 0, bm));
		*page = 0;
		usleep(200);
		/* Read before the log is taken: a write seen here was made before it. */
		seen = *page;
		ASSERT_EQ(0, kmmu_vm_get_dirty_log(vm, 0, bm));
		if (seen == WRITE_VALUE) {
			written++;
			lost += !(bm[0] & 1);
		}
		usleep(5000);
	}
	EXPECT_EQ(0, guest_thread_stop(&w));
	TH_LOG("%d trials: the guest wrote in %d, %d of them missing from the log",
	       trials, written, lost);
	EXPECT_LT(0, written);
	kmmu_vm_free(vm);
	kmmu_mem_free(&mem);
	pthread_setaffinity_np(pthread_self(), sizeof(all), &all);
	return lost;
}

/* With the kick, no write the guest makes after GET_DIRTY_LOG is lost. */
TEST(dirty_log_while_running_loses_nothing)
{
	KMMU_REQUIRE_HW();
	EXPECT_EQ(0, lost_writes(_metadata, 20));
}

/*
 * Without it (hw_test_no_kick), writes are lost: this test would see a
 * kick that kmmu forgot.
 */
TEST(dirty_log_without_kick_is_caught)
{
	int lost;

	KMMU_REQUIRE_HW();
	if (access(NO_KICK_PARAM, W_OK))
		SKIP(return, "kmmu.ko has no %s", NO_KICK_PARAM);
	if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
		SKIP(return, "one CPU: the guest never runs while the log is taken");
	ASSERT_EQ(0, set_no_kick(true));
	/* A write lands in the stale window in a few trials of ten or more. */
	lost = lost_writes(_metadata, 60);
	EXPECT_EQ(0, set_no_kick(false));
	EXPECT_LT(0, lost);
}

TEST_HARNESS_MAIN
