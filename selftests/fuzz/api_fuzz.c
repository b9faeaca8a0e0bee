// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target over the ioctl dispatch (kmod/core/api.c) on the user
 * backend.  Each input is a little program: a sequence of ioctls on a fresh
 * VM with one vCPU, each taking its command, its fd and the bytes of its
 * argument from the input.  Crashes, sanitizer reports, undocumented
 * errnos, WARNs and leaked objects are all findings.
 *
 *   build/fuzz/api_fuzz -runs=20000 selftests/fuzz/corpus
 */
#include <errno.h>
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
	KMMU_SUBPAGES_GET_ACCESS, KMMU_SUBPAGES_SET_ACCESS,
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
		uint64_t raw[40];
	} buf;
	int extra[8], nr_extra = 0, fds[3], steps = 0;
	struct kmmu_vcpu *vcpu;
	struct kmmu_vm *vm;

	if (kmmu_vm_create(NULL, &vm) || kmmu_vcpu_create(vm, 0, &vcpu))
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
		/* Capabilities that exist, with flags clear most of the time. */
		if (cmd == KMMU_ENABLE_CAP) {
			buf.cap.cap %= 16;
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
