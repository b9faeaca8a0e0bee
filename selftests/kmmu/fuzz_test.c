// SPDX-License-Identifier: GPL-2.0
/*
 * A bounded random-ioctl run over every fd kmmu hands out: known and
 * unknown commands, structures full of random and boundary values, NULL
 * and bogus pointers.  Every call must return a value or one of the errnos
 * the ABI documents; afterwards nothing may be leaked (user) and the
 * kernel log must stay clean (dev, checked by the QEMU bench).
 */
#include <stdio.h>
#include <stdlib.h>

#include "test_util.h"

#define GPA		0x10000000ULL
#define SIZE		(64 * SZ_4K)
#define MAX_EXTRA_FDS	16

static uint64_t rng_state;

static uint64_t rnd(void)
{
	uint64_t x = rng_state += 0x9e3779b97f4a7c15ULL;

	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* Values at the edges of every check in api.c, or anything at all. */
static uint64_t boundary(void)
{
	static const uint64_t v[] = {
		0, 1, 2, 3, 7, 8, 63, 64, 100, 101, 511, 512, 4095, 4096, 4097, 0xffff,
		0x10000, 0x1ffff, 0x200000, 0x40000000, 1ULL << 47, (1ULL << 48) - 4096,
		1ULL << 48, ~0ULL, ~0ULL - 4095, 0x8000000000000000ULL, GPA, SIZE,
	};

	return rnd() % 3 ? v[rnd() % (sizeof(v) / sizeof(v[0]))] : rnd();
}

static void fill(void *buf, size_t size)
{
	uint64_t *w = buf;
	size_t i;

	for (i = 0; i < size / 8; i++)
		w[i] = rnd() % 4 ? boundary() & (rnd() % 2 ? ~0ULL : 0xffffffffULL) : 0;
}

static const unsigned long cmds[] = {
	KMMU_GET_API_VERSION, KMMU_CREATE_VM, KMMU_CHECK_EXTENSION, KMMU_CREATE_VCPU,
	KMMU_SET_USER_MEMORY_REGION, KMMU_GET_STATS, KMMU_GET_SPTE, KMMU_ZAP,
	KMMU_SET_WORKLOAD, KMMU_RUN, KMMU_KICK, KMMU_AGE, KMMU_ENABLE_CAP,
	KMMU_GET_DIRTY_LOG, KMMU_CLEAR_DIRTY_LOG, KMMU_RESET_DIRTY_RINGS,
	KMMU_SUBPAGES_GET_ACCESS, KMMU_SUBPAGES_SET_ACCESS,
};

TEST(random_ioctls)
{
	const int iterations = kmmu_backend() == KMMU_BACKEND_USER ? 40000 : 8000;
	union {
		struct kmmu_vm_config cfg;
		struct kmmu_userspace_memory_region mem;
		struct kmmu_workload wl;
		struct kmmu_run run;
		struct kmmu_vm_stats st;
		struct kmmu_spte_query q;
		struct kmmu_zap z;
		struct kmmu_age age;
		struct kmmu_enable_cap cap;
		struct kmmu_dirty_log dl;
		struct kmmu_clear_dirty_log cdl;
		struct kmmu_subpage_access spp;
		uint64_t raw[64];
	} buf;
	int extra[MAX_EXTRA_FDS], nr_extra = 0, fds[3], ok = 0, err = 0, i;
	struct kmmu_vcpu *vcpu;
	struct kmmu_mem mem;
	struct kmmu_vm *vm;

	KMMU_REQUIRE_BACKEND();
	rng_state = getenv("KMMU_FUZZ_SEED") ? strtoull(getenv("KMMU_FUZZ_SEED"), NULL, 0) : 42;
	TH_LOG("seed %llu (KMMU_FUZZ_SEED)", (unsigned long long)rng_state);
	ASSERT_EQ(0, kmmu_mem_alloc(&mem, KMMU_BACKING_ANON, SIZE));
	KMMU_VM_CREATE(NULL, &vm);
	ASSERT_EQ(0, kmmu_vm_set_memslot(vm, 0, 0, GPA, SIZE, mem.addr));
	ASSERT_EQ(0, kmmu_vcpu_create(vm, 0, &vcpu));
	fds[0] = vm->sys_fd;
	fds[1] = vm->fd;
	fds[2] = vcpu->fd;

	for (i = 0; i < iterations; i++) {
		unsigned long cmd, arg;
		int fd = fds[rnd() % 3];
		long ret;

		if (nr_extra && !(rnd() % 8))
			fd = extra[rnd() % nr_extra];
		if (rnd() % 10)
			cmd = cmds[rnd() % (sizeof(cmds) / sizeof(cmds[0]))];
		else
			cmd = rnd() % 2 ? _IOC(rnd() % 4, KMMUIO, rnd() % 256, rnd() % 512) : rnd();

		fill(&buf, sizeof(buf));
		switch (rnd() % 8) {
		case 0:
			arg = 0;
			break;
		case 1:
			arg = rnd() % 4096;
			break;
		case 2:
			/* Wild pointers only where the kernel checks them. */
			arg = kmmu_backend() == KMMU_BACKEND_DEV ? rnd() : 8;
			break;
		default:
			arg = (unsigned long)&buf;
			break;
		}
		if (cmd == KMMU_CHECK_EXTENSION || cmd == KMMU_CREATE_VCPU || cmd == KMMU_KICK ||
		    cmd == KMMU_GET_API_VERSION)
			arg = boundary();
		/* RUN is bounded; a memslot never points at this process's own data. */
		if (cmd == KMMU_RUN && arg == (unsigned long)&buf)
			buf.run.max_accesses = 1 + rnd() % 2000;
		if (cmd == KMMU_SET_USER_MEMORY_REGION && arg == (unsigned long)&buf &&
		    buf.mem.userspace_addr && rnd() % 2)
			buf.mem.userspace_addr = (uintptr_t)mem.addr;
		/*
		 * A bitmap is as big as its slot, which may be 2^31 pages: only
		 * pointers kmmu rejects.  A wild one might hit this process's
		 * own data, which the kernel would then overwrite.
		 */
		if (cmd == KMMU_GET_DIRTY_LOG)
			buf.dl.dirty_bitmap %= 4096;
		if (cmd == KMMU_CLEAR_DIRTY_LOG)
			buf.cdl.dirty_bitmap %= 4096;
		/*
		 * The maps follow the header in @buf: as many as fit, or more
		 * than any request may have (-E2BIG before they are touched).
		 * A GET writes them, so only into @buf or the null page.
		 */
		if (cmd == KMMU_SUBPAGES_GET_ACCESS || cmd == KMMU_SUBPAGES_SET_ACCESS) {
			if (buf.spp.npages <= KMMU_SUBPAGES_MAX_PAGES)
				buf.spp.npages %= (sizeof(buf) - sizeof(buf.spp)) / 4 + 1;
			if (cmd == KMMU_SUBPAGES_GET_ACCESS && arg != (unsigned long)&buf)
				arg %= 4096;
		}
		/* Capabilities that exist, with flags and reserved clear most of the time. */
		if (cmd == KMMU_ENABLE_CAP && rnd() % 4) {
			buf.cap.cap = rnd() % 16;
			buf.cap.flags = 0;
			memset(buf.cap.reserved, 0, sizeof(buf.cap.reserved));
		}

		ret = kmmu_ioctl(fd, cmd, arg);
		if (!kmmu_ioctl_result_documented(ret)) {
			TH_LOG("iteration %d: cmd %#lx on fd %d returned %ld", i, cmd, fd, ret);
			err++;
		}
		ok += ret >= 0;
		/* New fds (a VM or vCPU) are fuzzed too, a few of them, then closed. */
		if (ret >= 0 && (cmd == KMMU_CREATE_VM || cmd == KMMU_CREATE_VCPU)) {
			if (nr_extra < MAX_EXTRA_FDS)
				extra[nr_extra++] = ret;
			else
				kmmu_close(ret);
		}
	}
	TH_LOG("%d ioctls, %d succeeded", iterations, ok);
	EXPECT_EQ(0, err);
	while (nr_extra)
		EXPECT_EQ(0, kmmu_close(extra[--nr_extra]));
	kmmu_vm_free(vm);
	kmmu_mem_free(&mem);
	EXPECT_EQ(0, kmmu_lib_leak_check());
}

TEST_HARNESS_MAIN
