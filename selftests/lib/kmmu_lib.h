/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The one client API of kmmu, used by every selftest and bench driver.  It
 * talks to /dev/kmmu (backend "dev") or to the core linked into the
 * process (backend "user"), chosen with KMMU_BACKEND=dev|user; the default
 * is "dev" when /dev/kmmu exists.  KMMU_BACKEND=hw is "dev" with every VM's
 * vCPUs on the CPU (KMMU_CAP_HW_VCPU, enabled by kmmu_vm_create()).  Functions return 0 or a value on
 * success and -errno on failure, never -1 with errno.
 */
#ifndef KMMU_LIB_H
#define KMMU_LIB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/kmmu.h>

enum kmmu_backend {
	KMMU_BACKEND_DEV,
	KMMU_BACKEND_USER,
};

/* The backend in use (decided once, from KMMU_BACKEND and /dev/kmmu). */
enum kmmu_backend kmmu_backend(void);
const char *kmmu_backend_name(void);
/* KMMU_BACKEND=hw: the dev backend, with hardware vCPUs. */
bool kmmu_backend_hw(void);
/*
 * On the hw backend, why a VM like @cfg cannot have hardware vCPUs (its
 * SPTE format), or NULL when it can; kmmu_vm_create() then fails with
 * -EOPNOTSUPP and makes nothing.
 */
const char *kmmu_hw_refusal(const struct kmmu_vm_config *cfg);
/* Whether the backend can be used at all (the device exists, for "dev"). */
bool kmmu_backend_available(void);

/* Raw access, for tests of the ABI itself. */
int kmmu_open_dev(void);
long kmmu_ioctl(int fd, unsigned long cmd, unsigned long arg);
int kmmu_close(int fd);
/* mmap (shared, read-write) of @len bytes at page @pgoff of @fd, and munmap. */
int kmmu_mmap(int fd, unsigned long pgoff, size_t len, void **addr);
int kmmu_munmap(void *addr, size_t len);

#define KMMU_LIB_MAX_VCPUS	64

struct kmmu_vm {
	int sys_fd;
	int fd;
	struct kmmu_vm_config cfg;
	uint64_t dirty_ring_bytes;	/* KMMU_CAP_DIRTY_LOG_RING, 0 if not enabled */
	struct kmmu_vcpu *vcpus[KMMU_LIB_MAX_VCPUS];
};

struct kmmu_vcpu {
	struct kmmu_vm *vm;
	int fd;
	int id;
	/* The dirty ring, mapped by kmmu_vcpu_create() when the VM has rings. */
	struct kmmu_dirty_gfn *ring;
	uint32_t ring_entries;
	uint32_t ring_fetch;		/* next entry to collect */
};

/* @cfg may be NULL for the defaults.  Return 0 and *@out, or -errno. */
int kmmu_vm_create(const struct kmmu_vm_config *cfg, struct kmmu_vm **out);
/* Close every vCPU and the VM. */
void kmmu_vm_free(struct kmmu_vm *vm);
/* The SPTE format the VM actually uses (the default resolved). */
uint32_t kmmu_vm_format(struct kmmu_vm *vm);

int kmmu_vm_set_memslot(struct kmmu_vm *vm, uint32_t slot, uint32_t flags, uint64_t gpa,
			uint64_t size, void *hva);
int kmmu_vm_stats(struct kmmu_vm *vm, struct kmmu_vm_stats *st);
int kmmu_vm_get_spte(struct kmmu_vm *vm, uint64_t gpa, uint32_t as_id,
		     struct kmmu_spte_query *q);
int kmmu_vm_zap(struct kmmu_vm *vm, uint64_t gpa, uint64_t size, uint32_t as_id,
		uint32_t flags);

/* KMMU_GET_STATS_FD of the VM, or of a vCPU: a new fd, or -errno. */
int kmmu_vm_stats_fd(struct kmmu_vm *vm);
int kmmu_vcpu_stats_fd(struct kmmu_vcpu *vcpu);
/* pread() of a stats fd: bytes read, 0 at the end, or -errno. */
long kmmu_stats_pread(int fd, void *buf, size_t size, long long off);
/* The value of statistic @name of stats fd @fd: 0, -ENOENT, or -errno. */
int kmmu_stats_get(int fd, const char *name, uint64_t *value);

/* KMMU_ENABLE_CAP with args[0] = @arg. */
/* KMMU_CAP_DIRTY_LOG_RING is remembered, so vCPUs map their rings. */
int kmmu_vm_enable_cap(struct kmmu_vm *vm, uint32_t cap, uint64_t arg);
/* KMMU_RESET_DIRTY_RINGS: entries reset, or -errno. */
long kmmu_vm_reset_dirty_rings(struct kmmu_vm *vm);
/*
 * Collect the entries kmmu pushed into @vcpu's ring since the last call,
 * in order: @fn is called with each one's slot and offset, and the entry
 * is marked RESET.  Return the number collected.
 */
uint32_t kmmu_vcpu_collect_dirty_ring(struct kmmu_vcpu *vcpu,
				      void (*fn)(void *arg, uint32_t slot, uint64_t offset),
				      void *arg);
/* Dirty logging: @bitmap has one bit per page of the slot (rounded up to 64). */
int kmmu_vm_get_dirty_log(struct kmmu_vm *vm, uint32_t slot, uint64_t *bitmap);
int kmmu_vm_clear_dirty_log(struct kmmu_vm *vm, uint32_t slot, uint64_t first_page,
			    uint32_t num_pages, uint64_t *bitmap);
/* KMMU_AGE over [gpa, gpa + size); @young and @old (may be NULL) get 4 KiB page counts. */
int kmmu_vm_age(struct kmmu_vm *vm, uint64_t gpa, uint64_t size, uint32_t as_id,
		uint32_t flags, uint64_t *young, uint64_t *old);

/*
 * Sub-page permissions (KMMU_CAP_SPP): the maps of @npages pages from @gfn
 * in @as_id, one uint32_t each (bit i: sub-page i writable).
 */
int kmmu_vm_subpages_set(struct kmmu_vm *vm, uint64_t gfn, uint32_t npages, uint32_t as_id,
			 const uint32_t *map);
int kmmu_vm_subpages_get(struct kmmu_vm *vm, uint64_t gfn, uint32_t npages, uint32_t as_id,
			 uint32_t *map);

int kmmu_vcpu_create(struct kmmu_vm *vm, int id, struct kmmu_vcpu **out);
int kmmu_vcpu_set_workload(struct kmmu_vcpu *vcpu, const struct kmmu_workload *wl);
int kmmu_vcpu_run(struct kmmu_vcpu *vcpu, struct kmmu_run *run);
int kmmu_vcpu_kick(struct kmmu_vcpu *vcpu);
/*
 * Set @wl and RUN until KMMU_EXIT_DONE, going on after INTR; any other exit
 * stops and is left in @run.  Return 0 (check run->exit_reason) or -errno.
 */
int kmmu_vcpu_run_workload(struct kmmu_vcpu *vcpu, const struct kmmu_workload *wl,
			   struct kmmu_run *run);

/* ---- guest memory backings ---- */

enum kmmu_backing {
	KMMU_BACKING_ANON,
	KMMU_BACKING_ANON_THP,
	KMMU_BACKING_HUGETLB_2M,
	KMMU_BACKING_HUGETLB_1G,
	KMMU_BACKING_SHMEM,
	KMMU_BACKING_PFNMAP,
	KMMU_NR_BACKINGS,
};

struct kmmu_mem {
	void *addr;		/* aligned to the backing's page size */
	size_t size;
	enum kmmu_backing backing;
	void *map;		/* what was mmap'd, for munmap */
	size_t map_size;
	bool registered;	/* user backend: known to the host model */
	int fd;			/* dev backend, PFNMAP: /dev/kmmu_test, else -1 */
};

const char *kmmu_backing_name(enum kmmu_backing b);
/* Parse a backing name; return -EINVAL for an unknown one. */
int kmmu_backing_parse(const char *name, enum kmmu_backing *b);
size_t kmmu_backing_page_size(enum kmmu_backing b);
/*
 * Allocate @size bytes (rounded up to the page size) of @b.  Return 0,
 * -EOPNOTSUPP when this host cannot provide it (no huge pages reserved, no
 * PFNMAP helper), or -ENOMEM.
 */
int kmmu_mem_alloc(struct kmmu_mem *m, enum kmmu_backing b, size_t size);
void kmmu_mem_free(struct kmmu_mem *m);
/*
 * Page refcounts behind a PFNMAP backing: refs[0] for the head page of its
 * allocation, refs[i] for its i-th page; @nr at most pages + 1.  dev only.
 */
int kmmu_mem_pfnmap_refcounts(struct kmmu_mem *m, int32_t *refs, uint32_t nr);
/* Touch every page, so that host faults are out of the way. */
void kmmu_mem_prefault(struct kmmu_mem *m);

/* ---- what the host's mm does ---- */

/* Discard [addr, addr + len) as MADV_DONTNEED does: mappings go, data reads 0. */
int kmmu_host_discard(void *addr, size_t len);
/*
 * The pfn the host maps at @addr: the model's frame on the user backend,
 * /proc/self/pagemap on dev (root only).  Return 0, -EFAULT when nothing is
 * mapped there, -EOPNOTSUPP when the pfn cannot be known.
 */
int kmmu_host_pfn(const void *addr, uint64_t *pfn);

/*
 * What else the mm does to a range (user backend; -EOPNOTSUPP on dev):
 * migrate its pages, compact, swap them out (and in again), split or
 * collapse its THPs.  Data is kept; the pages move to other frames.
 */
enum kmmu_host_op {
	KMMU_HOST_MIGRATE,
	KMMU_HOST_COMPACT,
	KMMU_HOST_SWAP_OUT,
	KMMU_HOST_THP_SPLIT,
	KMMU_HOST_THP_COLLAPSE,
};
int kmmu_host_mm(enum kmmu_host_op op, void *addr, size_t len);
/*
 * What the host knows of the pages of [addr, addr + len), summed over
 * them: the user backend's model, or on dev the page flags and refcounts
 * the kmmu_test helper reads.
 */
struct kmmu_host_pages {
	long refs;		/* references kmmu holds (beyond the host's); dev: -1, unknown */
	long accessed;		/* pages marked accessed (dev: PG_referenced) */
	long dirty;		/* pages marked dirty (dev: PG_dirty of the folio) */
	long bad_marks;		/* marks on pages without a struct page (user backend) */
	long huge;		/* pages the host maps with a 2M or 1G leaf */
};
/* 0, -EOPNOTSUPP when the host cannot tell (dev without kmmu_test), or -errno. */
int kmmu_host_pages(void *addr, size_t len, struct kmmu_host_pages *st);
/*
 * Forget the pages' accessed marks, and on the user backend their dirty
 * marks too (the kernel's PG_dirty is not for a test to clear).
 */
int kmmu_host_pages_forget(void *addr, size_t len);

/* user backend only: age [addr, addr + len); -EOPNOTSUPP on dev. */
int kmmu_host_age(void *addr, size_t len, bool clear);

/* ---- checks at the end of a test ---- */

/*
 * user backend: no core object, page-table page or WARN is left once every
 * VM is freed, and no freed frame of the host model was used.  Return 0, or -1 after printing what is wrong.  Always 0 on
 * dev, where the QEMU bench checks the kernel log instead.
 */
int kmmu_lib_leak_check(void);

/* An ioctl's return value is a value, or one of the errnos the ABI documents. */
bool kmmu_ioctl_result_documented(long ret);

/* Monotonic time in nanoseconds. */
uint64_t kmmu_now_ns(void);

#endif /* KMMU_LIB_H */
