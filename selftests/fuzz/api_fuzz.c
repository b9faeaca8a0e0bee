// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target over the ioctl dispatch (kmod/core/api.c) on the user
 * backend.  Each input is a little program: a sequence of ioctls on a fresh
 * VM with one vCPU, each taking its command, its fd and the bytes of its
 * argument from the input.  Crashes, sanitizer reports, undocumented
 * errnos, WARNs and leaked objects are all findings.
 *
 * An input's second byte per ioctl also says whether its argument is
 * shaped into a valid one first (shape()), so that programs reach RUN,
 * faults and nested walks, not only the argument checks.
 *
 *   sh selftests/fuzz/seeds.sh CORPUS
 *   build/fuzz/api_fuzz -runs=20000 CORPUS
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "kmmu_lib.h"
#include "kmmu_user.h"

#define GPA	0x10000000ULL
#define SIZE	(16 * 4096ULL)

static const unsigned long cmds[] = {
	KMMU_GET_API_VERSION, KMMU_CREATE_VM, KMMU_CHECK_EXTENSION, KMMU_CREATE_VCPU,
	KMMU_SET_USER_MEMORY_REGION, KMMU_GET_STATS, KMMU_GET_SPTE, KMMU_ZAP,
	KMMU_SET_WORKLOAD, KMMU_RUN, KMMU_KICK, KMMU_AGE, KMMU_ENABLE_CAP,
	KMMU_GET_DIRTY_LOG, KMMU_CLEAR_DIRTY_LOG, KMMU_RESET_DIRTY_RINGS,
	KMMU_SUBPAGES_GET_ACCESS, KMMU_SUBPAGES_SET_ACCESS, KMMU_INVALIDATE_NESTED,
};

static struct kmmu_mem mem;
/* Pointers kmmu must reject: NULL, the null page, nothing mapped, read-only. */
static unsigned long bad_ptrs[4] = { 0, 16 };

/* Take @n bytes from the input, zero-padded when it runs out. */
static void take(const uint8_t **d, size_t *n, void *out, size_t want)
{
	size_t k = want < *n ? want : *n;

	memset(out, 0, want);
	memcpy(out, *d, k);
	*d += k;
	*n -= k;
}

/* A root in the guest memory, whose bytes are then L1's tables. */
static uint64_t l1_root(uint64_t x, bool ept)
{
	uint64_t root = (GPA + x % SIZE) & ~0xfffULL;

	return ept ? root | KMMU_EPTP_MT_WB | KMMU_EPTP_PWL_4 | (x & KMMU_EPTP_AD) : root;
}

/*
 * Make the argument of @cmd valid but for what the input still decides:
 * memslots over the guest memory, workloads within them, nested roots in
 * them.  Random bytes alone seldom get past the checks to the fault
 * path and the nested walk.
 */
static void shape(unsigned long cmd, void *arg, bool ept)
{
	struct kmmu_userspace_memory_region *m = arg;
	struct kmmu_nested_invalidate *inv = arg;
	struct kmmu_workload *wl = arg;
	struct kmmu_run *run = arg;

	switch (cmd) {
	case KMMU_RUN:
		memset(run->reserved_in, 0, sizeof(run->reserved_in));
		break;
	case KMMU_SET_USER_MEMORY_REGION:
		m->slot %= 4;
		m->flags &= KMMU_MEM_VALID_FLAGS;
		m->guest_phys_addr = GPA + (m->guest_phys_addr % SIZE & ~0xfffULL);
		m->memory_size %= SIZE - (m->guest_phys_addr - GPA) + 1;
		m->memory_size &= ~0xfffULL;
		m->userspace_addr = (uintptr_t)mem.addr + (m->guest_phys_addr - GPA);
		break;
	case KMMU_SET_WORKLOAD:
		wl->gpa = GPA + (wl->gpa % SIZE & ~7ULL);
		wl->size = 8 + (wl->size % (GPA + SIZE - wl->gpa) & ~7ULL);
		wl->pattern %= 3;
		wl->stride = wl->pattern == KMMU_PATTERN_STRIDE ? 8 + (wl->stride % 8192 & ~7ULL) : 0;
		wl->iterations = 1 + wl->iterations % 4;
		wl->write_percent %= 101;
		wl->flags &= KMMU_WL_VALID_FLAGS;
		wl->reserved0 = 0;
		memset(wl->reserved, 0, sizeof(wl->reserved));
		wl->nested_root = wl->flags & KMMU_WL_NESTED ? l1_root(wl->nested_root, ept) : 0;
		break;
	case KMMU_INVALIDATE_NESTED:
		inv->type = 1 + inv->type % 2;
		inv->flags = 0;
		inv->root = inv->type == KMMU_INV_SINGLE_CONTEXT ? l1_root(inv->root, ept) : 0;
		memset(inv->reserved, 0, sizeof(inv->reserved));
		break;
	}
}

static void run_program(const uint8_t *d, size_t n)
{
	union {
		struct kmmu_vm_config cfg;
		struct kmmu_userspace_memory_region mem;
		struct kmmu_workload wl;
		struct kmmu_run run;
		struct kmmu_spte_query q;
		struct kmmu_zap z;
		struct kmmu_vm_stats st;
		struct kmmu_age age;
		struct kmmu_enable_cap cap;
		struct kmmu_dirty_log dl;
		struct kmmu_clear_dirty_log cdl;
		struct kmmu_subpage_access spp;
		struct kmmu_nested_invalidate inv;
		uint64_t raw[40];
	} buf;
	int extra[8], nr_extra = 0, fds[3], steps = 0;
	struct kmmu_vcpu *vcpu;
	struct kmmu_vm *vm;
	bool ept;

	if (kmmu_vm_create(NULL, &vm) || kmmu_vcpu_create(vm, 0, &vcpu))
		abort();
	ept = kmmu_vm_format(vm) == KMMU_SPTE_FORMAT_EPT;
	/* Guest memory from the start: a program may change or delete it. */
	if (kmmu_vm_set_memslot(vm, 0, 0, GPA, SIZE, mem.addr))
		abort();
	fds[0] = vm->sys_fd;
	fds[1] = vm->fd;
	fds[2] = vcpu->fd;

	while (n >= 2 && steps++ < 64) {
		uint8_t op = d[0], how = d[1];
		unsigned long cmd = cmds[op % (sizeof(cmds) / sizeof(cmds[0]))];
		int fd = how & 4 && nr_extra ? extra[(how >> 3) % nr_extra] : fds[how % 3];
		unsigned long arg;
		long ret;

		d += 2;
		n -= 2;
		memset(&buf, 0, sizeof(buf));
		take(&d, &n, &buf, _IOC_SIZE(cmd) ? _IOC_SIZE(cmd) : 8);
		if (!_IOC_SIZE(cmd))
			arg = buf.raw[0];		/* an integer argument */
		else if (how & 0x80)
			arg = bad_ptrs[(how >> 5) & 3];
		else
			arg = (unsigned long)&buf;
		/* Keep RUN bounded, and memslots on guest memory or nowhere. */
		if (cmd == KMMU_RUN)
			buf.run.max_accesses = 1 + buf.run.max_accesses % 4096;
		if (cmd == KMMU_SET_USER_MEMORY_REGION && (buf.mem.userspace_addr & 1))
			buf.mem.userspace_addr = (uintptr_t)mem.addr;
		/*
		 * A bitmap is as big as its slot, which may be 2^31 pages: only
		 * pointers kmmu rejects, as nothing of this size is at hand.
		 */
		if (cmd == KMMU_GET_DIRTY_LOG)
			buf.dl.dirty_bitmap = bad_ptrs[buf.dl.dirty_bitmap & 3];
		if (cmd == KMMU_CLEAR_DIRTY_LOG)
			buf.cdl.dirty_bitmap = bad_ptrs[buf.cdl.dirty_bitmap & 3];
		/*
		 * The maps follow the header in @buf: as many as fit, or more
		 * than any request may have (-E2BIG before they are touched).
		 */
		if ((cmd == KMMU_SUBPAGES_GET_ACCESS || cmd == KMMU_SUBPAGES_SET_ACCESS) &&
		    buf.spp.npages <= KMMU_SUBPAGES_MAX_PAGES)
			buf.spp.npages %= (sizeof(buf) - sizeof(buf.spp)) / 4 + 1;
		if ((how & 0xc0) == 0x40)
			shape(cmd, &buf.raw[0], ept);
		/* Capabilities that exist, with flags clear most of the time. */
		if (cmd == KMMU_ENABLE_CAP) {
			buf.cap.cap %= KMMU_CAP_NESTED + 1;
			if (buf.cap.flags % 4)
				buf.cap.flags = 0;
		}

		ret = kmmu_ioctl(fd, cmd, arg);
		if (!kmmu_ioctl_result_documented(ret)) {
			fprintf(stderr, "api_fuzz: cmd %#lx returned %ld\n", cmd, ret);
			abort();
		}
		if (ret >= 0 && (cmd == KMMU_CREATE_VM || cmd == KMMU_CREATE_VCPU)) {
			if (nr_extra < 8)
				extra[nr_extra++] = ret;
			else
				kmmu_close(ret);
		}
	}
	while (nr_extra)
		kmmu_close(extra[--nr_extra]);
	kmmu_vm_free(vm);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	void *p;

	setenv("KMMU_BACKEND", "user", 1);
	if (kmmu_mem_alloc(&mem, KMMU_BACKING_ANON, SIZE))
		abort();
	p = mmap(NULL, 2 * 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		abort();
	munmap(p, 4096);
	bad_ptrs[2] = (unsigned long)p;
	bad_ptrs[3] = (unsigned long)p + 4096;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	run_program(data, size);
	if (kmmu_user_objects_alive() || kmmu_user_pt_pages_alive() || kmmu_user_warnings()) {
		fprintf(stderr, "api_fuzz: %ld objects, %ld page-table pages, %ld WARNs left\n",
			kmmu_user_objects_alive(), kmmu_user_pt_pages_alive(),
			kmmu_user_warnings());
		abort();
	}
	return 0;
}
