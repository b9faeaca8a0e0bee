// SPDX-License-Identifier: GPL-2.0
/*
 * The ABI of /dev/kmmu, VM and vCPU fds: versions and capabilities, every
 * bad argument of every ioctl (a clear errno and nothing changed), fd
 * lifetimes in every close order, and the exits of RUN.
 */
#include <sys/mman.h>
#include <unistd.h>

#include "test_util.h"

#define GUEST_GPA	0x100000000ULL
#define GUEST_SIZE	(64 * SZ_4K)

TEST(api_version_and_caps)
{
	int fd;

	KMMU_REQUIRE_BACKEND();
	fd = kmmu_open_dev();
	ASSERT_LE(0, fd);
	EXPECT_EQ(KMMU_API_VERSION, kmmu_ioctl(fd, KMMU_GET_API_VERSION, 0));
	EXPECT_EQ(-EINVAL, kmmu_ioctl(fd, KMMU_GET_API_VERSION, 1));
	EXPECT_EQ((1 << KMMU_SPTE_FORMAT_EPT) | (1 << KMMU_SPTE_FORMAT_NPT),
		  kmmu_ioctl(fd, KMMU_CHECK_EXTENSION, KMMU_CAP_SPTE_FORMATS));
	EXPECT_EQ(KMMU_LEVEL_1G, kmmu_ioctl(fd, KMMU_CHECK_EXTENSION, KMMU_CAP_MAX_LEVEL));
	EXPECT_EQ(512, kmmu_ioctl(fd, KMMU_CHECK_EXTENSION, KMMU_CAP_NR_MEMSLOTS));
	EXPECT_EQ(64, kmmu_ioctl(fd, KMMU_CHECK_EXTENSION, KMMU_CAP_NR_VCPUS));
	EXPECT_EQ(2, kmmu_ioctl(fd, KMMU_CHECK_EXTENSION, KMMU_CAP_ADDRESS_SPACES));
	EXPECT_EQ(1, kmmu_ioctl(fd, KMMU_CHECK_EXTENSION, KMMU_CAP_READONLY_MEM));
	EXPECT_EQ(0, kmmu_ioctl(fd, KMMU_CHECK_EXTENSION, 12345));
	EXPECT_EQ(-ENOTTY, kmmu_ioctl(fd, _IO(KMMUIO, 0x7f), 0));
	EXPECT_EQ(-EFAULT, kmmu_ioctl(fd, KMMU_CREATE_VM, 0));
	EXPECT_EQ(0, kmmu_close(fd));
	EXPECT_EQ(0, kmmu_lib_leak_check());
}

TEST(create_vm_bad_config)
{
	static const struct {
		const char *what;
		struct kmmu_vm_config cfg;
	} bad[] = {
		{ "unknown format", { .spte_format = 3 } },
		{ "unknown flag", { .flags = 1u << 7 } },
		{ "max_level 4", { .max_level = 4 } },
		{ "reserved0", { .reserved0 = 1 } },
		{ "reserved[5]", { .reserved = { [5] = 1 } } },
		{ "NPT without A/D", { .spte_format = KMMU_SPTE_FORMAT_NPT,
				       .flags = KMMU_VM_AD_DISABLED } },
		{ "NPT with #VE", { .spte_format = KMMU_SPTE_FORMAT_NPT,
				    .flags = KMMU_VM_NONPRESENT_SUPPRESS_VE } },
	};
	struct kmmu_vm *vm;
	unsigned int i;

	KMMU_REQUIRE_BACKEND();
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		TH_LOG("%s", bad[i].what);
		EXPECT_EQ(-EINVAL, kmmu_vm_create(&bad[i].cfg, &vm));
	}
	/* Nothing was left half made: a good VM still comes and goes cleanly. */
	KMMU_VM_CREATE(NULL, &vm);
	kmmu_vm_free(vm);
	EXPECT_EQ(0, kmmu_lib_leak_check());
}

FIXTURE(vm) {
	struct kmmu_vm *vm;
	struct kmmu_vcpu *vcpu;
	struct kmmu_mem mem;
};

FIXTURE_VARIANT(vm) {
	struct kmmu_vm_config cfg;
};

KMMU_ADD_FORMAT_VARIANTS(vm);

FIXTURE_SETUP(vm)
{
	KMMU_REQUIRE_BACKEND();
	KMMU_VM_CREATE(&variant->cfg, &self->vm);
	ASSERT_EQ(0, kmmu_mem_alloc(&self->mem, KMMU_BACKING_ANON, GUEST_SIZE));
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 0, 0, GUEST_GPA, GUEST_SIZE, self->mem.addr));
	ASSERT_EQ(0, kmmu_vcpu_create(self->vm, 0, &self->vcpu));
}

FIXTURE_TEARDOWN(vm)
{
	kmmu_vm_free(self->vm);
	kmmu_mem_free(&self->mem);
	EXPECT_EQ(0, kmmu_lib_leak_check());
}

KMMU_TEST_F(vm, create_vcpu_bad_id)
{
	struct kmmu_vcpu *v;

	EXPECT_EQ(-EINVAL, kmmu_ioctl(self->vm->fd, KMMU_CREATE_VCPU, 64));
	EXPECT_EQ(-EINVAL, kmmu_ioctl(self->vm->fd, KMMU_CREATE_VCPU, -1UL));
	/* Id 0 is taken: the kernel says so, not just the library. */
	EXPECT_EQ(-EEXIST, kmmu_ioctl(self->vm->fd, KMMU_CREATE_VCPU, 0));
	EXPECT_EQ(0, kmmu_vcpu_create(self->vm, 63, &v));
}

KMMU_TEST_F(vm, workload_bad_input)
{
	const struct kmmu_workload good = kmmu_wl_seq(GUEST_GPA, GUEST_SIZE, 50, 7);
	struct {
		const char *what;
		void (*mutate)(struct kmmu_workload *wl);
		int err;
	} bad[] = {
#define BAD(_what, _stmt, _err) { _what, ({ void f(struct kmmu_workload *wl) { _stmt; } f; }), _err }
		BAD("pattern", wl->pattern = 3, -EINVAL),
		BAD("write_percent", wl->write_percent = 101, -EINVAL),
		BAD("flags", wl->flags = 1u << 9, -EINVAL),
		BAD("gpa not 8-aligned", wl->gpa += 4, -EINVAL),
		BAD("size 0", wl->size = 0, -EINVAL),
		BAD("size < 8", wl->size = 4, -EINVAL),
		BAD("gpa + size wraps", (wl->gpa = ~0ULL - 7, wl->size = 16), -EINVAL),
		BAD("beyond 48 bits", wl->gpa = 1ULL << 48, -EINVAL),
		BAD("iterations 0", wl->iterations = 0, -EINVAL),
		BAD("stride 0", (wl->pattern = KMMU_PATTERN_STRIDE, wl->stride = 0), -EINVAL),
		BAD("stride 12", (wl->pattern = KMMU_PATTERN_STRIDE, wl->stride = 12), -EINVAL),
		BAD("stride without pattern", wl->stride = 64, -EINVAL),
		BAD("reserved0", wl->reserved0 = 1, -EINVAL),
		BAD("reserved[2]", wl->reserved[2] = 1, -EINVAL),
		BAD("nested_root without KMMU_WL_NESTED", wl->nested_root = 0x1000, -EINVAL),
		BAD("too many accesses", (wl->size = 1ULL << 40, wl->iterations = 1ULL << 60), -E2BIG),
#undef BAD
	};
	struct kmmu_workload wl;
	struct kmmu_run run;
	unsigned int i;

	ASSERT_EQ(0, kmmu_vcpu_set_workload(self->vcpu, &good));
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		wl = good;
		bad[i].mutate(&wl);
		TH_LOG("%s", bad[i].what);
		EXPECT_EQ(bad[i].err, kmmu_vcpu_set_workload(self->vcpu, &wl));
	}
	EXPECT_EQ(-EFAULT, kmmu_ioctl(self->vcpu->fd, KMMU_SET_WORKLOAD, 0));

	/* The good workload is still the one that runs. */
	memset(&run, 0, sizeof(run));
	ASSERT_EQ(0, kmmu_vcpu_run(self->vcpu, &run));
	EXPECT_EQ(KMMU_EXIT_DONE, run.exit_reason);
	EXPECT_EQ(GUEST_SIZE / SZ_4K, run.accesses);
}

KMMU_TEST_F(vm, run_bad_input)
{
	const struct kmmu_workload wl = kmmu_wl_seq(GUEST_GPA, GUEST_SIZE, 0, 0);
	struct kmmu_run run;

	memset(&run, 0, sizeof(run));
	EXPECT_EQ(-EINVAL, kmmu_vcpu_run(self->vcpu, &run));	/* no workload yet */
	ASSERT_EQ(0, kmmu_vcpu_set_workload(self->vcpu, &wl));
	run.reserved_in[1] = 1;
	EXPECT_EQ(-EINVAL, kmmu_vcpu_run(self->vcpu, &run));
	EXPECT_EQ(-EFAULT, kmmu_ioctl(self->vcpu->fd, KMMU_RUN, 0));
	EXPECT_EQ(-EINVAL, kmmu_ioctl(self->vcpu->fd, KMMU_KICK, 1));
	EXPECT_EQ(-ENOTTY, kmmu_ioctl(self->vcpu->fd, KMMU_GET_STATS, 0));
	EXPECT_EQ(-ENOTTY, kmmu_ioctl(self->vm->fd, KMMU_RUN, 0));
}

KMMU_TEST_F(vm, get_spte_and_zap_bad_input)
{
	struct kmmu_spte_query q;
	struct kmmu_zap z;

	memset(&q, 0, sizeof(q));
	q.as_id = 2;
	EXPECT_EQ(-EINVAL, kmmu_ioctl(self->vm->fd, KMMU_GET_SPTE, (unsigned long)&q));
	q.as_id = 0;
	q.gpa = 1ULL << 48;
	EXPECT_EQ(-EINVAL, kmmu_ioctl(self->vm->fd, KMMU_GET_SPTE, (unsigned long)&q));
	q.gpa = 0;
	q.reserved[1] = 1;
	EXPECT_EQ(-EINVAL, kmmu_ioctl(self->vm->fd, KMMU_GET_SPTE, (unsigned long)&q));
	EXPECT_EQ(-EFAULT, kmmu_ioctl(self->vm->fd, KMMU_GET_SPTE, 0));

	EXPECT_EQ(-EINVAL, kmmu_vm_zap(self->vm, 0, SZ_4K, 0, 1u << 5));
	EXPECT_EQ(-EINVAL, kmmu_vm_zap(self->vm, SZ_4K, 0, 0, KMMU_ZAP_ALL));
	EXPECT_EQ(-EINVAL, kmmu_vm_zap(self->vm, 0, 0, 0, 0));
	EXPECT_EQ(-EINVAL, kmmu_vm_zap(self->vm, 0x800, SZ_4K, 0, 0));
	EXPECT_EQ(-EINVAL, kmmu_vm_zap(self->vm, 0, SZ_4K + 1, 0, 0));
	EXPECT_EQ(-EINVAL, kmmu_vm_zap(self->vm, ~0ULL & ~0xfffULL, SZ_4K * 2, 0, 0));
	EXPECT_EQ(-EINVAL, kmmu_vm_zap(self->vm, 0, SZ_4K, 2, 0));
	memset(&z, 0, sizeof(z));
	z.size = SZ_4K;
	z.reserved[0] = 1;
	EXPECT_EQ(-EINVAL, kmmu_ioctl(self->vm->fd, KMMU_ZAP, (unsigned long)&z));
	EXPECT_EQ(-EFAULT, kmmu_ioctl(self->vm->fd, KMMU_ZAP, 0));
}

/* RUN stops where asked (budget, kick) and goes on where it stopped. */
KMMU_TEST_F(vm, run_budget_and_kick)
{
	const struct kmmu_workload wl = kmmu_wl_seq(GUEST_GPA, GUEST_SIZE, 100, 3);
	struct kmmu_run run;
	uint64_t total = 0;

	ASSERT_EQ(0, kmmu_vcpu_set_workload(self->vcpu, &wl));
	memset(&run, 0, sizeof(run));
	run.max_accesses = 10;
	ASSERT_EQ(0, kmmu_vcpu_run(self->vcpu, &run));
	EXPECT_EQ(KMMU_EXIT_BUDGET, run.exit_reason);
	EXPECT_EQ(10, run.accesses);
	total += run.accesses;

	ASSERT_EQ(0, kmmu_vcpu_kick(self->vcpu));
	memset(&run, 0, sizeof(run));
	ASSERT_EQ(0, kmmu_vcpu_run(self->vcpu, &run));
	EXPECT_EQ(KMMU_EXIT_INTR, run.exit_reason);
	EXPECT_EQ(0, run.accesses);

	memset(&run, 0, sizeof(run));
	ASSERT_EQ(0, kmmu_vcpu_run(self->vcpu, &run));
	EXPECT_EQ(KMMU_EXIT_DONE, run.exit_reason);
	total += run.accesses;
	EXPECT_EQ(GUEST_SIZE / SZ_4K, total);
	/* Every page was written exactly with the workload's value. */
	for (uint64_t off = 0; off < GUEST_SIZE; off += SZ_4K) {
		ASSERT_EQ(3, *(uint64_t *)((char *)self->mem.addr + off));
	}
}

/* No memslot: an MMIO exit; the value userspace hands back is what the guest read. */
KMMU_TEST_F(vm, mmio_exit_and_resume)
{
	const uint64_t mmio_gpa = 0x200000000ULL;
	struct kmmu_workload wl = kmmu_wl_seq(mmio_gpa, 8, 0, 0);
	struct kmmu_vm_stats st;
	struct kmmu_run run;

	wl.iterations = 2;
	ASSERT_EQ(0, kmmu_vcpu_set_workload(self->vcpu, &wl));
	memset(&run, 0, sizeof(run));
	ASSERT_EQ(0, kmmu_vcpu_run(self->vcpu, &run));
	ASSERT_EQ(KMMU_EXIT_MMIO, run.exit_reason);
	EXPECT_EQ(mmio_gpa, run.mmio.gpa);
	EXPECT_EQ(8, run.mmio.len);
	EXPECT_EQ(0, run.mmio.flags & KMMU_ACCESS_WRITE);

	/* The second access hits the cached MMIO SPTE and exits again. */
	run.mmio.data = 0x1234;
	ASSERT_EQ(0, kmmu_vcpu_run(self->vcpu, &run));
	ASSERT_EQ(KMMU_EXIT_MMIO, run.exit_reason);
	EXPECT_EQ(0x1234, run.read_sum);
	EXPECT_EQ(1, run.accesses);

	run.mmio.data = 0x10;
	ASSERT_EQ(0, kmmu_vcpu_run(self->vcpu, &run));
	EXPECT_EQ(KMMU_EXIT_DONE, run.exit_reason);
	EXPECT_EQ(0x10, run.read_sum);
	ASSERT_EQ(0, kmmu_vm_stats(self->vm, &st));
	EXPECT_LE(2, st.mmio_faults);
}

/* A host address with nothing behind it: a memory-fault exit naming the page. */
KMMU_TEST_F(vm, memory_fault_exit)
{
	const uint64_t gpa = 0x300000000ULL;
	struct kmmu_workload wl = kmmu_wl_seq(gpa + 8, 8, 100, 1);
	struct kmmu_run run;
	void *hole;

	hole = mmap(NULL, 2 * SZ_4K, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, hole);
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 1, 0, gpa, 2 * SZ_4K, hole));
	ASSERT_EQ(0, kmmu_vcpu_set_workload(self->vcpu, &wl));
	memset(&run, 0, sizeof(run));
	ASSERT_EQ(0, kmmu_vcpu_run(self->vcpu, &run));
	EXPECT_EQ(KMMU_EXIT_MEMORY_FAULT, run.exit_reason);
	EXPECT_EQ(gpa, run.memory_fault.gpa);
	EXPECT_EQ(SZ_4K, run.memory_fault.size);
	EXPECT_EQ(KMMU_ACCESS_WRITE, run.memory_fault.flags);
	EXPECT_EQ(-EFAULT, run.memory_fault.error);
	EXPECT_EQ(0, run.accesses);
	munmap(hole, 2 * SZ_4K);
}

/* A page that nothing maps any more, and one mapped read-only holding @init. */
static void *gone_page(void)
{
	void *p = mmap(NULL, SZ_4K, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p != MAP_FAILED)
		munmap(p, SZ_4K);
	return p;
}

static void *read_only_page(const void *init, size_t size)
{
	void *p = mmap(NULL, SZ_4K, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return p;
	memcpy(p, init, size);
	mprotect(p, SZ_4K, PROT_READ);
	return p;
}

/*
 * A pointer that is not NULL, not beyond userspace, but not mapped (or
 * mapped read-only, for what is copied out): -EFAULT from every ioctl,
 * as copy_from_user() and copy_to_user() give, and nothing changed.
 */
KMMU_TEST_F(vm, user_pointers_that_fault)
{
	const struct kmmu_workload wl = kmmu_wl_seq(GUEST_GPA, GUEST_SIZE, 100, 5);
	struct kmmu_spte_query q = { .gpa = GUEST_GPA };
	struct kmmu_age age = { .gpa = GUEST_GPA, .size = SZ_4K };
	static const unsigned long vm_in[] = {
		KMMU_SET_USER_MEMORY_REGION, KMMU_GET_SPTE, KMMU_ZAP, KMMU_AGE,
		KMMU_GET_DIRTY_LOG, KMMU_CLEAR_DIRTY_LOG, KMMU_ENABLE_CAP,
	};
	struct kmmu_vm_stats st0, st1;
	struct kmmu_run run;
	unsigned long gone;
	uint64_t bitmap[1];
	unsigned int i;
	void *ro;

	gone = (unsigned long)gone_page();
	ASSERT_NE((unsigned long)MAP_FAILED, gone);
	ASSERT_EQ(0, kmmu_vcpu_run_workload(self->vcpu, &wl, &run));
	ASSERT_EQ(0, kmmu_vm_stats(self->vm, &st0));

	for (i = 0; i < sizeof(vm_in) / sizeof(vm_in[0]); i++) {
		EXPECT_EQ(-EFAULT, kmmu_ioctl(self->vm->fd, vm_in[i], gone)) {
			TH_LOG("VM ioctl %#lx", vm_in[i]);
		}
	}
	EXPECT_EQ(-EFAULT, kmmu_ioctl(self->vm->sys_fd, KMMU_CREATE_VM, gone));
	EXPECT_EQ(-EFAULT, kmmu_ioctl(self->vcpu->fd, KMMU_SET_WORKLOAD, gone));
	EXPECT_EQ(-EFAULT, kmmu_ioctl(self->vcpu->fd, KMMU_RUN, gone));
	EXPECT_EQ(-EFAULT, kmmu_ioctl(self->vm->fd, KMMU_GET_STATS, gone));

	/* What is read in is fine, what is written back is not. */
	ro = read_only_page(&q, sizeof(q));
	ASSERT_NE(MAP_FAILED, ro);
	EXPECT_EQ(-EFAULT, kmmu_ioctl(self->vm->fd, KMMU_GET_STATS, (unsigned long)ro));
	EXPECT_EQ(-EFAULT, kmmu_ioctl(self->vm->fd, KMMU_GET_SPTE, (unsigned long)ro));
	munmap(ro, SZ_4K);
	ro = read_only_page(&age, sizeof(age));
	ASSERT_NE(MAP_FAILED, ro);
	EXPECT_EQ(-EFAULT, kmmu_ioctl(self->vm->fd, KMMU_AGE, (unsigned long)ro));
	munmap(ro, SZ_4K);

	/* A dirty bitmap nothing maps. */
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 0, KMMU_MEM_LOG_DIRTY_PAGES, GUEST_GPA,
					 GUEST_SIZE, self->mem.addr));
	EXPECT_EQ(-EFAULT, kmmu_vm_get_dirty_log(self->vm, 0, (uint64_t *)gone));
	EXPECT_EQ(-EFAULT, kmmu_vm_clear_dirty_log(self->vm, 0, 0, GUEST_SIZE / SZ_4K,
						   (uint64_t *)gone));
	/* Nothing was lost on the way: every page written is in the log. */
	ASSERT_EQ(0, kmmu_vcpu_run_workload(self->vcpu, &wl, &run));
	EXPECT_EQ(-EFAULT, kmmu_vm_get_dirty_log(self->vm, 0, (uint64_t *)gone));
	ASSERT_EQ(0, kmmu_vm_get_dirty_log(self->vm, 0, bitmap));
	EXPECT_EQ(~0ULL, bitmap[0]);	/* GUEST_SIZE is 64 pages */
	/* As in KVM, a CLEAR of no pages may start at the slot's very end. */
	EXPECT_EQ(0, kmmu_vm_clear_dirty_log(self->vm, 0, GUEST_SIZE / SZ_4K, 0, (uint64_t *)gone));
	EXPECT_EQ(-EINVAL, kmmu_vm_clear_dirty_log(self->vm, 0, GUEST_SIZE / SZ_4K + 64, 0,
						   bitmap));

	/* The VM is as it was: the pages still mapped, none counted twice. */
	ASSERT_EQ(0, kmmu_vm_stats(self->vm, &st1));
	EXPECT_EQ(st0.pages_4k, st1.pages_4k + st1.zapped_leafs - st0.zapped_leafs);
	EXPECT_EQ(st0.aging_passes, st1.aging_passes);
}

/* On a VM fd, CHECK_EXTENSION says what this VM can do, as KVM answers there. */
KMMU_TEST_F(vm, check_extension_on_the_vm)
{
	uint32_t format = kmmu_vm_format(self->vm);
	bool ad = !(variant->cfg.flags & KMMU_VM_AD_DISABLED);
	long sys;

	EXPECT_EQ(1L << format, kmmu_ioctl(self->vm->fd, KMMU_CHECK_EXTENSION,
					   KMMU_CAP_SPTE_FORMATS));
	EXPECT_EQ(!ad, kmmu_ioctl(self->vm->fd, KMMU_CHECK_EXTENSION, KMMU_CAP_AD_DISABLED));
	EXPECT_EQ(!!(variant->cfg.flags & KMMU_VM_NONPRESENT_SUPPRESS_VE),
		  kmmu_ioctl(self->vm->fd, KMMU_CHECK_EXTENSION, KMMU_CAP_NONPRESENT_VE));
	EXPECT_EQ(ad ? 3 : 1, kmmu_ioctl(self->vm->fd, KMMU_CHECK_EXTENSION,
					 KMMU_CAP_DIRTY_LOG_MODE));
	EXPECT_EQ(KMMU_LEVEL_1G, kmmu_ioctl(self->vm->fd, KMMU_CHECK_EXTENSION,
					    KMMU_CAP_MAX_LEVEL));
	/* Everything else as the system answers it. */
	sys = kmmu_ioctl(self->vm->sys_fd, KMMU_CHECK_EXTENSION, KMMU_CAP_DIRTY_LOG_RING);
	EXPECT_LT(0, sys);
	EXPECT_EQ(sys, kmmu_ioctl(self->vm->fd, KMMU_CHECK_EXTENSION, KMMU_CAP_DIRTY_LOG_RING));
	EXPECT_EQ(0, kmmu_ioctl(self->vm->fd, KMMU_CHECK_EXTENSION, 12345));
	/* Not on a vCPU fd. */
	EXPECT_EQ(-ENOTTY, kmmu_ioctl(self->vcpu->fd, KMMU_CHECK_EXTENSION,
				      KMMU_CAP_SPTE_FORMATS));
}

/*
 * Where there are no hardware vCPUs (the user backend, an Intel host, a
 * module loaded with hw_vcpu=off), the capability says 0 and its enable
 * is -EOPNOTSUPP, changing nothing: the VM's vCPUs are software ones.
 */
TEST(hw_vcpu_refused_without_hardware)
{
	struct kmmu_enable_cap cap = { .cap = KMMU_CAP_HW_VCPU, .args = { 1 } };
	const struct kmmu_workload wl = kmmu_wl_seq(GUEST_GPA, GUEST_SIZE, 50, 1);
	struct kmmu_vcpu *vcpu;
	struct kmmu_vm_stats st;
	struct kmmu_mem mem;
	struct kmmu_run run;
	struct kmmu_vm *vm;
	int sys;

	KMMU_REQUIRE_BACKEND();
	sys = kmmu_open_dev();
	ASSERT_LE(0, sys);
	if (kmmu_ioctl(sys, KMMU_CHECK_EXTENSION, KMMU_CAP_HW_VCPU) != 0) {
		kmmu_close(sys);
		SKIP(return, "this host has hardware vCPUs (kmmu/hw_test covers them)");
	}
	kmmu_close(sys);
	if (kmmu_backend_hw())
		SKIP(return, "the hw backend is not available here");
	KMMU_VM_CREATE(NULL, &vm);
	EXPECT_EQ(0, kmmu_ioctl(vm->fd, KMMU_CHECK_EXTENSION, KMMU_CAP_HW_VCPU));
	EXPECT_EQ(-EOPNOTSUPP, kmmu_ioctl(vm->fd, KMMU_ENABLE_CAP, (unsigned long)&cap));
	cap.args[0] = 0;
	EXPECT_NE(0, kmmu_ioctl(vm->fd, KMMU_ENABLE_CAP, (unsigned long)&cap));
	/* No private slot was made, and the vCPU runs as before. */
	ASSERT_EQ(0, kmmu_mem_alloc(&mem, KMMU_BACKING_ANON, GUEST_SIZE));
	memset(mem.addr, 0, GUEST_SIZE);
	ASSERT_EQ(0, kmmu_vm_set_memslot(vm, 0, 0, KMMU_HW_SLOT_GPA, GUEST_SIZE, mem.addr));
	ASSERT_EQ(0, kmmu_vm_set_memslot(vm, 0, 0, KMMU_HW_SLOT_GPA, 0, mem.addr));
	ASSERT_EQ(0, kmmu_vm_set_memslot(vm, 0, 0, GUEST_GPA, GUEST_SIZE, mem.addr));
	ASSERT_EQ(0, kmmu_vcpu_create(vm, 0, &vcpu));
	ASSERT_EQ(0, kmmu_vcpu_run_workload(vcpu, &wl, &run));
	EXPECT_EQ(KMMU_EXIT_DONE, run.exit_reason);
	ASSERT_EQ(0, kmmu_vm_stats(vm, &st));
	if (kmmu_host_quiet()) {
		EXPECT_EQ(GUEST_SIZE / SZ_4K, st.pages_4k);
	}
	kmmu_vm_free(vm);
	kmmu_mem_free(&mem);
	EXPECT_EQ(0, kmmu_lib_leak_check());
}

/* Every order of closing the three fds leaves nothing behind. */
TEST(close_in_every_order)
{
	static const int orders[6][3] = {
		{ 0, 1, 2 }, { 0, 2, 1 }, { 1, 0, 2 }, { 1, 2, 0 }, { 2, 0, 1 }, { 2, 1, 0 },
	};
	int o;

	KMMU_REQUIRE_BACKEND();
	for (o = 0; o < 6; o++) {
		const struct kmmu_workload wl = kmmu_wl_seq(GUEST_GPA, GUEST_SIZE, 50, 9);
		struct kmmu_mem mem;
		struct kmmu_run run;
		int sys, vm, vcpu, fds[3], i;

		ASSERT_EQ(0, kmmu_mem_alloc(&mem, KMMU_BACKING_ANON, GUEST_SIZE));
		sys = kmmu_open_dev();
		ASSERT_LE(0, sys);
		vm = kmmu_ioctl(sys, KMMU_CREATE_VM, (unsigned long)&(struct kmmu_vm_config){});
		ASSERT_LE(0, vm);
		ASSERT_EQ(0, kmmu_ioctl(vm, KMMU_SET_USER_MEMORY_REGION,
			(unsigned long)&(struct kmmu_userspace_memory_region){
				.guest_phys_addr = GUEST_GPA, .memory_size = GUEST_SIZE,
				.userspace_addr = (uintptr_t)mem.addr }));
		vcpu = kmmu_ioctl(vm, KMMU_CREATE_VCPU, 0);
		ASSERT_LE(0, vcpu);
		ASSERT_EQ(0, kmmu_ioctl(vcpu, KMMU_SET_WORKLOAD, (unsigned long)&wl));
		memset(&run, 0, sizeof(run));
		run.max_accesses = 20;
		ASSERT_EQ(0, kmmu_ioctl(vcpu, KMMU_RUN, (unsigned long)&run));

		fds[0] = sys;
		fds[1] = vm;
		fds[2] = vcpu;
		for (i = 0; i < 3; i++) {
			/* A vCPU outlives its VM fd: it holds the VM. */
			if (fds[orders[o][i]] == vcpu && i > 0 && orders[o][0] == 1) {
				memset(&run, 0, sizeof(run));
				EXPECT_EQ(0, kmmu_ioctl(vcpu, KMMU_RUN, (unsigned long)&run));
				EXPECT_EQ(KMMU_EXIT_DONE, run.exit_reason);
			}
			EXPECT_EQ(0, kmmu_close(fds[orders[o][i]]));
		}
		EXPECT_EQ(-EBADF, kmmu_ioctl(vm, KMMU_GET_STATS, 0));
		kmmu_mem_free(&mem);
		EXPECT_EQ(0, kmmu_lib_leak_check());
	}
}

TEST_HARNESS_MAIN
