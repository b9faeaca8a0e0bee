// SPDX-License-Identifier: GPL-2.0
/*
 * The client API over both backends: /dev/kmmu through ioctl(2), or the
 * in-process core through the user host's fd table.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "kmmu_lib.h"
#include "kmmu_user.h"
#include <linux/kmmu_test.h>

#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT	26
#endif
#define MAP_HUGE_2MB	(21 << MAP_HUGE_SHIFT)
#define MAP_HUGE_1GB	(30 << MAP_HUGE_SHIFT)

#define SZ_2M		(2UL << 20)
#define SZ_1G		(1UL << 30)

static enum kmmu_backend backend;
static bool backend_hw;
static pthread_once_t backend_once = PTHREAD_ONCE_INIT;

static void backend_init(void)
{
	const char *env = getenv("KMMU_BACKEND");

	if (env && !strcmp(env, "user"))
		backend = KMMU_BACKEND_USER;
	else if (env && !strcmp(env, "dev"))
		backend = KMMU_BACKEND_DEV;
	else if (env && !strcmp(env, "hw"))
		backend = KMMU_BACKEND_DEV, backend_hw = true;
	else
		backend = access("/dev/kmmu", F_OK) ? KMMU_BACKEND_USER : KMMU_BACKEND_DEV;
#ifdef KMMU_LIB_NO_USER
	/* A build without the userspace core (kmmu_user_absent.c). */
	if (backend == KMMU_BACKEND_USER) {
		fprintf(stderr, "kmmu: %s, and this build has no user backend: it runs on /dev/kmmu only\n",
			env && !strcmp(env, "user") ? "KMMU_BACKEND=user" : "no /dev/kmmu");
		exit(2);
	}
#endif
}

enum kmmu_backend kmmu_backend(void)
{
	pthread_once(&backend_once, backend_init);
	return backend;
}

const char *kmmu_backend_name(void)
{
	if (kmmu_backend() == KMMU_BACKEND_USER)
		return "user";
	return backend_hw ? "hw" : "dev";
}

bool kmmu_backend_hw(void)
{
	return kmmu_backend() == KMMU_BACKEND_DEV && backend_hw;
}

/* The hw backend needs the device and a host that can run hardware vCPUs. */
bool kmmu_backend_available(void)
{
	int fd;
	long ok;

	if (kmmu_backend() == KMMU_BACKEND_USER)
		return true;
	if (access("/dev/kmmu", R_OK | W_OK))
		return false;
	if (!backend_hw)
		return true;
	fd = kmmu_open_dev();
	if (fd < 0)
		return false;
	ok = kmmu_ioctl(fd, KMMU_CHECK_EXTENSION, KMMU_CAP_HW_VCPU);
	kmmu_close(fd);
	return ok == 1;
}

const char *kmmu_hw_refusal(const struct kmmu_vm_config *cfg)
{
	if (!kmmu_backend_hw())
		return NULL;
	if (cfg && cfg->spte_format == KMMU_SPTE_FORMAT_EPT)
		return "an EPT VM: hardware vCPUs walk NPT tables only (SVM)";
	return NULL;
}

int kmmu_open_dev(void)
{
	int fd;

	if (kmmu_backend() == KMMU_BACKEND_USER)
		return kmmu_user_open();
	fd = open("/dev/kmmu", O_RDWR | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

long kmmu_ioctl(int fd, unsigned long cmd, unsigned long arg)
{
	long ret;

	if (kmmu_backend() == KMMU_BACKEND_USER)
		return kmmu_user_ioctl(fd, cmd, arg);
	ret = ioctl(fd, cmd, arg);
	return ret < 0 ? -errno : ret;
}

int kmmu_close(int fd)
{
	if (kmmu_backend() == KMMU_BACKEND_USER)
		return kmmu_user_close(fd);
	return close(fd) ? -errno : 0;
}

int kmmu_mmap(int fd, unsigned long pgoff, size_t len, void **addr)
{
	void *p;

	if (kmmu_backend() == KMMU_BACKEND_USER)
		return kmmu_user_mmap(fd, pgoff, len, addr);
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		 (off_t)pgoff * sysconf(_SC_PAGESIZE));
	if (p == MAP_FAILED)
		return -errno;
	*addr = p;
	return 0;
}

int kmmu_munmap(void *addr, size_t len)
{
	if (kmmu_backend() == KMMU_BACKEND_USER)
		return kmmu_user_munmap(addr);
	return munmap(addr, len) ? -errno : 0;
}

/* ---- VMs and vCPUs ---- */

int kmmu_vm_create(const struct kmmu_vm_config *cfg, struct kmmu_vm **out)
{
	struct kmmu_vm *vm = calloc(1, sizeof(*vm));
	int ret;

	if (!vm)
		return -ENOMEM;
	if (cfg)
		vm->cfg = *cfg;
	vm->sys_fd = kmmu_open_dev();
	if (vm->sys_fd < 0) {
		ret = vm->sys_fd;
		goto free;
	}
	vm->fd = kmmu_ioctl(vm->sys_fd, KMMU_CREATE_VM, (unsigned long)&vm->cfg);
	if (vm->fd < 0) {
		ret = vm->fd;
		goto close_sys;
	}
	if (backend_hw) {
		struct kmmu_enable_cap c = { .cap = KMMU_CAP_HW_VCPU, .args = { 1 } };

		ret = kmmu_ioctl(vm->fd, KMMU_ENABLE_CAP, (unsigned long)&c);
		if (ret) {
			kmmu_close(vm->fd);
			if (kmmu_hw_refusal(cfg))
				ret = -EOPNOTSUPP;
			goto close_sys;
		}
	}
	*out = vm;
	return 0;

close_sys:
	kmmu_close(vm->sys_fd);
free:
	free(vm);
	return ret;
}

void kmmu_vm_free(struct kmmu_vm *vm)
{
	int i;

	if (!vm)
		return;
	for (i = 0; i < KMMU_LIB_MAX_VCPUS; i++) {
		if (vm->vcpus[i]) {
			if (vm->vcpus[i]->ring)
				kmmu_munmap(vm->vcpus[i]->ring, vm->dirty_ring_bytes);
			kmmu_close(vm->vcpus[i]->fd);
			free(vm->vcpus[i]);
		}
	}
	kmmu_close(vm->fd);
	kmmu_close(vm->sys_fd);
	free(vm);
}

uint32_t kmmu_vm_format(struct kmmu_vm *vm)
{
	unsigned int eax = 0, ebx, ecx, edx;

	if (vm->cfg.spte_format)
		return vm->cfg.spte_format;
	/* Both backends take the default from the CPU vendor. */
	__asm__("cpuid" : "+a"(eax), "=b"(ebx), "=c"(ecx), "=d"(edx));
	if (ebx == 0x68747541 || ebx == 0x6f677948)
		return KMMU_SPTE_FORMAT_NPT;
	return KMMU_SPTE_FORMAT_EPT;
}

int kmmu_vm_set_memslot(struct kmmu_vm *vm, uint32_t slot, uint32_t flags, uint64_t gpa,
			uint64_t size, void *hva)
{
	struct kmmu_userspace_memory_region r = {
		.slot = slot,
		.flags = flags,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uintptr_t)hva,
	};

	return kmmu_ioctl(vm->fd, KMMU_SET_USER_MEMORY_REGION, (unsigned long)&r);
}

int kmmu_vm_stats(struct kmmu_vm *vm, struct kmmu_vm_stats *st)
{
	return kmmu_ioctl(vm->fd, KMMU_GET_STATS, (unsigned long)st);
}

int kmmu_vm_get_spte(struct kmmu_vm *vm, uint64_t gpa, uint32_t as_id,
		     struct kmmu_spte_query *q)
{
	memset(q, 0, sizeof(*q));
	q->gpa = gpa;
	q->as_id = as_id;
	return kmmu_ioctl(vm->fd, KMMU_GET_SPTE, (unsigned long)q);
}

int kmmu_vm_zap(struct kmmu_vm *vm, uint64_t gpa, uint64_t size, uint32_t as_id,
		uint32_t flags)
{
	struct kmmu_zap z = { .gpa = gpa, .size = size, .as_id = as_id, .flags = flags };

	return kmmu_ioctl(vm->fd, KMMU_ZAP, (unsigned long)&z);
}

int kmmu_vm_stats_fd(struct kmmu_vm *vm)
{
	return kmmu_ioctl(vm->fd, KMMU_GET_STATS_FD, 0);
}

int kmmu_vcpu_stats_fd(struct kmmu_vcpu *vcpu)
{
	return kmmu_ioctl(vcpu->fd, KMMU_GET_STATS_FD, 0);
}

long kmmu_stats_pread(int fd, void *buf, size_t size, long long off)
{
	ssize_t n;

	if (kmmu_backend() == KMMU_BACKEND_USER)
		return kmmu_user_pread(fd, buf, size, off);
	n = pread(fd, buf, size, off);
	return n < 0 ? -errno : n;
}

int kmmu_stats_get(int fd, const char *name, uint64_t *value)
{
	struct kmmu_stats_header h;
	struct kmmu_stats_desc *d;
	size_t dsize;
	uint32_t i;
	long n;

	n = kmmu_stats_pread(fd, &h, sizeof(h), 0);
	if (n < 0)
		return n;
	if (n != sizeof(h))
		return -EIO;
	dsize = sizeof(*d) + h.name_size;
	d = malloc(dsize);
	if (!d)
		return -ENOMEM;
	for (i = 0; i < h.num_desc; i++) {
		n = kmmu_stats_pread(fd, d, dsize, h.desc_offset + i * dsize);
		if (n != (long)dsize)
			break;
		if (strncmp(d->name, name, h.name_size))
			continue;
		n = kmmu_stats_pread(fd, value, sizeof(*value), h.data_offset + d->offset);
		free(d);
		return n == sizeof(*value) ? 0 : n < 0 ? n : -EIO;
	}
	free(d);
	return n < 0 ? n : -ENOENT;
}

int kmmu_vm_enable_cap(struct kmmu_vm *vm, uint32_t cap, uint64_t arg)
{
	struct kmmu_enable_cap c = { .cap = cap, .args = { arg } };
	long ret = kmmu_ioctl(vm->fd, KMMU_ENABLE_CAP, (unsigned long)&c);

	if (!ret && cap == KMMU_CAP_DIRTY_LOG_RING)
		vm->dirty_ring_bytes = arg;
	return ret;
}

long kmmu_vm_reset_dirty_rings(struct kmmu_vm *vm)
{
	return kmmu_ioctl(vm->fd, KMMU_RESET_DIRTY_RINGS, 0);
}

uint32_t kmmu_vcpu_collect_dirty_ring(struct kmmu_vcpu *vcpu,
				      void (*fn)(void *arg, uint32_t slot, uint64_t offset),
				      void *arg)
{
	uint32_t n = 0;

	for (;;) {
		struct kmmu_dirty_gfn *e = &vcpu->ring[vcpu->ring_fetch & (vcpu->ring_entries - 1)];
		/* Acquire: pairs with kmmu's release of DIRTY after slot and offset. */
		uint32_t flags = __atomic_load_n(&e->flags, __ATOMIC_ACQUIRE);

		if (!(flags & KMMU_DIRTY_GFN_F_DIRTY) || (flags & KMMU_DIRTY_GFN_F_RESET))
			break;
		fn(arg, e->slot, e->offset);
		__atomic_store_n(&e->flags, flags | KMMU_DIRTY_GFN_F_RESET, __ATOMIC_RELEASE);
		vcpu->ring_fetch++;
		n++;
	}
	return n;
}

int kmmu_vm_get_dirty_log(struct kmmu_vm *vm, uint32_t slot, uint64_t *bitmap)
{
	struct kmmu_dirty_log log = { .slot = slot, .dirty_bitmap = (uintptr_t)bitmap };

	return kmmu_ioctl(vm->fd, KMMU_GET_DIRTY_LOG, (unsigned long)&log);
}

int kmmu_vm_clear_dirty_log(struct kmmu_vm *vm, uint32_t slot, uint64_t first_page,
			    uint32_t num_pages, uint64_t *bitmap)
{
	struct kmmu_clear_dirty_log log = {
		.slot = slot,
		.num_pages = num_pages,
		.first_page = first_page,
		.dirty_bitmap = (uintptr_t)bitmap,
	};

	return kmmu_ioctl(vm->fd, KMMU_CLEAR_DIRTY_LOG, (unsigned long)&log);
}

int kmmu_vm_age(struct kmmu_vm *vm, uint64_t gpa, uint64_t size, uint32_t as_id,
		uint32_t flags, uint64_t *young, uint64_t *old)
{
	struct kmmu_age a = { .gpa = gpa, .size = size, .as_id = as_id, .flags = flags };
	int ret = kmmu_ioctl(vm->fd, KMMU_AGE, (unsigned long)&a);

	if (!ret && young)
		*young = a.young;
	if (!ret && old)
		*old = a.old;
	return ret;
}

static int kmmu_vm_subpages(struct kmmu_vm *vm, unsigned long cmd, uint64_t gfn,
			    uint32_t npages, uint32_t as_id, uint32_t *map)
{
	size_t bytes = sizeof(struct kmmu_subpage_access) + (size_t)npages * sizeof(*map);
	struct kmmu_subpage_access *req = calloc(1, bytes);
	int ret;

	if (!req)
		return -ENOMEM;
	req->gfn_base = gfn;
	req->npages = npages;
	req->as_id = as_id;
	if (cmd == KMMU_SUBPAGES_SET_ACCESS)
		memcpy(req->access_map, map, (size_t)npages * sizeof(*map));
	ret = kmmu_ioctl(vm->fd, cmd, (unsigned long)req);
	if (!ret && cmd == KMMU_SUBPAGES_GET_ACCESS)
		memcpy(map, req->access_map, (size_t)npages * sizeof(*map));
	free(req);
	return ret;
}

int kmmu_vm_subpages_set(struct kmmu_vm *vm, uint64_t gfn, uint32_t npages, uint32_t as_id,
			 const uint32_t *map)
{
	return kmmu_vm_subpages(vm, KMMU_SUBPAGES_SET_ACCESS, gfn, npages, as_id,
				(uint32_t *)map);
}

int kmmu_vm_subpages_get(struct kmmu_vm *vm, uint64_t gfn, uint32_t npages, uint32_t as_id,
			 uint32_t *map)
{
	return kmmu_vm_subpages(vm, KMMU_SUBPAGES_GET_ACCESS, gfn, npages, as_id, map);
}

int kmmu_vcpu_create(struct kmmu_vm *vm, int id, struct kmmu_vcpu **out)
{
	struct kmmu_vcpu *vcpu;
	int fd;

	if (id < 0 || id >= KMMU_LIB_MAX_VCPUS || vm->vcpus[id])
		return -EINVAL;
	vcpu = calloc(1, sizeof(*vcpu));
	if (!vcpu)
		return -ENOMEM;
	fd = kmmu_ioctl(vm->fd, KMMU_CREATE_VCPU, id);
	if (fd < 0) {
		free(vcpu);
		return fd;
	}
	vcpu->vm = vm;
	vcpu->fd = fd;
	vcpu->id = id;
	if (vm->dirty_ring_bytes) {
		int ret = kmmu_mmap(fd, KMMU_DIRTY_LOG_PAGE_OFFSET, vm->dirty_ring_bytes,
				    (void **)&vcpu->ring);

		if (ret) {
			kmmu_close(fd);
			free(vcpu);
			return ret;
		}
		vcpu->ring_entries = vm->dirty_ring_bytes / sizeof(struct kmmu_dirty_gfn);
	}
	vm->vcpus[id] = vcpu;
	*out = vcpu;
	return 0;
}

int kmmu_vcpu_set_workload(struct kmmu_vcpu *vcpu, const struct kmmu_workload *wl)
{
	return kmmu_ioctl(vcpu->fd, KMMU_SET_WORKLOAD, (unsigned long)wl);
}

int kmmu_vcpu_run(struct kmmu_vcpu *vcpu, struct kmmu_run *run)
{
	return kmmu_ioctl(vcpu->fd, KMMU_RUN, (unsigned long)run);
}

int kmmu_vcpu_kick(struct kmmu_vcpu *vcpu)
{
	return kmmu_ioctl(vcpu->fd, KMMU_KICK, 0);
}

int kmmu_vcpu_run_workload(struct kmmu_vcpu *vcpu, const struct kmmu_workload *wl,
			   struct kmmu_run *run)
{
	int ret = kmmu_vcpu_set_workload(vcpu, wl);

	if (ret)
		return ret;
	do {
		memset(run, 0, sizeof(*run));
		ret = kmmu_vcpu_run(vcpu, run);
		if (ret == -EINTR)
			continue;
		if (ret)
			return ret;
	} while (run->exit_reason == KMMU_EXIT_INTR);
	return 0;
}

/* ---- backings ---- */

static const char *const backing_names[KMMU_NR_BACKINGS] = {
	[KMMU_BACKING_ANON] = "anonymous",
	[KMMU_BACKING_ANON_THP] = "anonymous_thp",
	[KMMU_BACKING_HUGETLB_2M] = "anonymous_hugetlb_2mb",
	[KMMU_BACKING_HUGETLB_1G] = "anonymous_hugetlb_1gb",
	[KMMU_BACKING_SHMEM] = "shmem",
	[KMMU_BACKING_PFNMAP] = "pfnmap",
};

const char *kmmu_backing_name(enum kmmu_backing b)
{
	return b < KMMU_NR_BACKINGS ? backing_names[b] : "?";
}

int kmmu_backing_parse(const char *name, enum kmmu_backing *b)
{
	int i;

	for (i = 0; i < KMMU_NR_BACKINGS; i++) {
		if (!strcmp(name, backing_names[i])) {
			*b = i;
			return 0;
		}
	}
	return -EINVAL;
}

size_t kmmu_backing_page_size(enum kmmu_backing b)
{
	switch (b) {
	case KMMU_BACKING_ANON_THP:
	case KMMU_BACKING_HUGETLB_2M:
		return SZ_2M;
	case KMMU_BACKING_HUGETLB_1G:
		return SZ_1G;
	default:
		return 4096;
	}
}

static enum kmmu_user_mem_kind backing_user_kind(enum kmmu_backing b)
{
	switch (b) {
	case KMMU_BACKING_ANON_THP:
		return KMMU_USER_MEM_THP;
	case KMMU_BACKING_HUGETLB_2M:
		return KMMU_USER_MEM_HUGETLB_2M;
	case KMMU_BACKING_HUGETLB_1G:
		return KMMU_USER_MEM_HUGETLB_1G;
	case KMMU_BACKING_PFNMAP:
		return KMMU_USER_MEM_PFNMAP;
	default:
		return KMMU_USER_MEM_ANON;
	}
}

/* Over-allocate and align, so huge pages can line up with guest huge pages. */
static int mem_map_aligned(struct kmmu_mem *m, size_t align, int flags)
{
	uint8_t *p;

	m->map_size = m->size + align;
	m->map = mmap(NULL, m->map_size, PROT_READ | PROT_WRITE, flags, -1, 0);
	if (m->map == MAP_FAILED) {
		m->map = NULL;
		return -ENOMEM;
	}
	p = (uint8_t *)(((uintptr_t)m->map + align - 1) & ~(uintptr_t)(align - 1));
	m->addr = p;
	return 0;
}

static int mem_alloc_dev(struct kmmu_mem *m)
{
	int anon = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;

	switch (m->backing) {
	case KMMU_BACKING_HUGETLB_2M:
	case KMMU_BACKING_HUGETLB_1G:
		m->map_size = m->size;
		m->map = mmap(NULL, m->size, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB |
			      (m->backing == KMMU_BACKING_HUGETLB_2M ? MAP_HUGE_2MB : MAP_HUGE_1GB),
			      -1, 0);
		if (m->map == MAP_FAILED) {
			m->map = NULL;
			return -EOPNOTSUPP;
		}
		m->addr = m->map;
		return 0;
	case KMMU_BACKING_SHMEM:
		return mem_map_aligned(m, 4096, MAP_SHARED | MAP_ANONYMOUS);
	case KMMU_BACKING_PFNMAP:
		/* The helper module's tail pages of a non-compound allocation. */
		if (m->size > KMMU_TEST_MAX_MAP)
			return -EINVAL;
		m->fd = open("/dev/kmmu_test", O_RDWR | O_CLOEXEC);
		if (m->fd < 0)
			return -EOPNOTSUPP;
		m->map_size = m->size;
		m->map = mmap(NULL, m->size, PROT_READ | PROT_WRITE, MAP_SHARED, m->fd, 0);
		if (m->map == MAP_FAILED) {
			m->map = NULL;
			close(m->fd);
			m->fd = -1;
			return -ENOMEM;
		}
		m->addr = m->map;
		return 0;
	case KMMU_BACKING_ANON_THP:
		if (mem_map_aligned(m, SZ_2M, anon))
			return -ENOMEM;
		madvise(m->addr, m->size, MADV_HUGEPAGE);
		return 0;
	default:
		if (mem_map_aligned(m, 4096, anon))
			return -ENOMEM;
		/* 4K backing means 4K: khugepaged must not collapse it under a test. */
		madvise(m->addr, m->size, MADV_NOHUGEPAGE);
		return 0;
	}
}

int kmmu_mem_alloc(struct kmmu_mem *m, enum kmmu_backing b, size_t size)
{
	size_t page = kmmu_backing_page_size(b);
	int ret;

	memset(m, 0, sizeof(*m));
	m->fd = -1;
	if (b >= KMMU_NR_BACKINGS || !size)
		return -EINVAL;
	m->backing = b;
	m->size = (size + page - 1) & ~(page - 1);

	if (kmmu_backend() == KMMU_BACKEND_DEV)
		return mem_alloc_dev(m);

	/* The host model supplies page sizes; the memory itself is plain. */
	ret = mem_map_aligned(m, page, (b == KMMU_BACKING_SHMEM ? MAP_SHARED : MAP_PRIVATE) |
			      MAP_ANONYMOUS | MAP_NORESERVE);
	if (ret)
		return ret;
	ret = kmmu_user_mem_register(m->addr, m->size, backing_user_kind(b), true);
	if (ret) {
		munmap(m->map, m->map_size);
		m->map = NULL;
		return ret;
	}
	m->registered = true;
	return 0;
}

void kmmu_mem_free(struct kmmu_mem *m)
{
	if (m->registered)
		kmmu_user_mem_unregister(m->addr, m->size);
	if (m->map && m->fd >= 0)
		close(m->fd);
	if (m->map)
		munmap(m->map, m->map_size);
	memset(m, 0, sizeof(*m));
	m->fd = -1;
}

int kmmu_mem_pfnmap_refcounts(struct kmmu_mem *m, int32_t *refs, uint32_t nr)
{
	struct kmmu_test_refcounts r = {
		.addr = (uintptr_t)m->addr,
		.refs = (uintptr_t)refs,
		.nr = nr,
	};

	if (m->fd < 0)
		return -EOPNOTSUPP;
	return ioctl(m->fd, KMMU_TEST_GET_REFCOUNTS, &r) ? -errno : 0;
}

void kmmu_mem_prefault(struct kmmu_mem *m)
{
	size_t off;

	if (m->registered) {
		kmmu_user_mem_prefault(m->addr, m->size);
		return;
	}

	for (off = 0; off < m->size; off += 4096)
		((volatile uint8_t *)m->addr)[off] = ((volatile uint8_t *)m->addr)[off];
}

int kmmu_host_discard(void *addr, size_t len)
{
	if (kmmu_backend() == KMMU_BACKEND_USER)
		return kmmu_user_mem_discard(addr, len);
	return madvise(addr, len, MADV_DONTNEED) ? -errno : 0;
}

int kmmu_host_pfn(const void *addr, uint64_t *pfn)
{
	uint64_t e;
	int fd, ret = -EOPNOTSUPP;

	if (kmmu_backend() == KMMU_BACKEND_USER)
		return kmmu_user_mem_pfn(addr, pfn);
	/* Bits 0-54: the pfn, shown to CAP_SYS_ADMIN only; bit 63: present. */
	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -EOPNOTSUPP;
	if (pread(fd, &e, sizeof(e), (uintptr_t)addr / 4096 * sizeof(e)) != sizeof(e))
		goto out;
	ret = -EFAULT;
	if (!(e & (1ULL << 63)))
		goto out;
	ret = -EOPNOTSUPP;
	*pfn = e & ((1ULL << 55) - 1);
	if (*pfn)
		ret = 0;
out:
	close(fd);
	return ret;
}

int kmmu_host_mm(enum kmmu_host_op op, void *addr, size_t len)
{
	if (kmmu_backend() != KMMU_BACKEND_USER)
		return -EOPNOTSUPP;
	switch (op) {
	case KMMU_HOST_MIGRATE:
		return kmmu_user_mem_migrate(addr, len);
	case KMMU_HOST_COMPACT:
		return kmmu_user_mem_compact(addr, len);
	case KMMU_HOST_SWAP_OUT:
		return kmmu_user_mem_swap_out(addr, len);
	case KMMU_HOST_THP_SPLIT:
		return kmmu_user_mem_thp_split(addr, len);
	case KMMU_HOST_THP_COLLAPSE:
		return kmmu_user_mem_thp_collapse(addr, len);
	default:
		return -EINVAL;
	}
}

/*
 * On dev: the kmmu_test helper's view of the pages, @clear_referenced to
 * forget the accessed marks as it goes.
 */
static int host_pages_dev(void *addr, size_t len, struct kmmu_host_pages *st,
			  bool clear_referenced)
{
	struct kmmu_test_pages r = {
		.addr = (uintptr_t)addr,
		.flags = clear_referenced ? KMMU_TEST_CLEAR_REFERENCED : 0,
	};
	size_t pages = len / 4096, i, n;
	struct kmmu_test_page *p;
	int fd, ret = 0;

	fd = open("/dev/kmmu_test", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -EOPNOTSUPP;
	p = calloc(pages < KMMU_TEST_MAX_PAGES ? pages : KMMU_TEST_MAX_PAGES, sizeof(*p));
	if (!p) {
		close(fd);
		return -ENOMEM;
	}
	/* What references kmmu holds on large folios cannot be told apart: unknown. */
	st->refs = -1;
	for (i = 0; i < pages && !ret; i += n) {
		size_t k;

		n = pages - i < KMMU_TEST_MAX_PAGES ? pages - i : KMMU_TEST_MAX_PAGES;
		r.nr = n;
		r.pages = (uintptr_t)p;
		r.addr = (uintptr_t)addr + i * 4096;
		if (ioctl(fd, KMMU_TEST_GET_PAGES, &r)) {
			ret = -errno;
			break;
		}
		for (k = 0; k < n; k++) {
			st->accessed += !!(p[k].flags & KMMU_TEST_PAGE_REFERENCED);
			st->dirty += !!(p[k].flags & KMMU_TEST_PAGE_DIRTY);
			st->huge += !!(p[k].flags & KMMU_TEST_PAGE_HOST_HUGE);
		}
	}
	free(p);
	close(fd);
	return ret;
}

int kmmu_host_pages(void *addr, size_t len, struct kmmu_host_pages *st)
{
	struct kmmu_user_mem_state ms;
	int ret;

	memset(st, 0, sizeof(*st));
	if (kmmu_backend() != KMMU_BACKEND_USER)
		return host_pages_dev(addr, len, st, false);
	ret = kmmu_user_mem_state(addr, len, &ms);
	if (ret)
		return ret;
	st->refs = ms.refs;
	st->accessed = ms.accessed;
	st->dirty = ms.dirty;
	st->bad_marks = ms.bad_marks;
	st->huge = ms.huge;
	return 0;
}

int kmmu_host_pages_forget(void *addr, size_t len)
{
	struct kmmu_host_pages st;

	if (kmmu_backend() != KMMU_BACKEND_USER)
		return host_pages_dev(addr, len, &st, true);
	kmmu_user_mem_clear_marks(addr, len);
	return 0;
}

int kmmu_host_age(void *addr, size_t len, bool clear)
{
	if (kmmu_backend() != KMMU_BACKEND_USER)
		return -EOPNOTSUPP;
	return kmmu_user_age(addr, len, clear, true);
}

int kmmu_lib_leak_check(void)
{
	long objs, pts, warns;

	if (kmmu_backend() != KMMU_BACKEND_USER)
		return 0;
	objs = kmmu_user_objects_alive();
	pts = kmmu_user_pt_pages_alive();
	/* Frames used after they were freed are WARNs too. */
	kmmu_user_check_frames();
	warns = kmmu_user_warnings();
	if (!objs && !pts && !warns)
		return 0;
	fprintf(stderr, "kmmu: leak check: %ld objects, %ld page-table pages alive, %ld WARNs\n",
		objs, pts, warns);
	return -1;
}

bool kmmu_ioctl_result_documented(long ret)
{
	switch (ret) {
	case -EINVAL: case -EFAULT: case -ENOTTY: case -EEXIST: case -ENOMEM: case -E2BIG:
	case -EOPNOTSUPP: case -EBUSY: case -EBADF: case -EINTR: case -EMFILE: case -ENOENT:
	case -ENXIO:
		return true;
	default:
		return ret >= 0;
	}
}

uint64_t kmmu_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}
