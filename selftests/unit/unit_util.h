/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared pieces of the unit tests, which reach into the core directly: the
 * SPTE bits as the Intel SDM and the AMD APM define them (so that the core
 * is never checked against its own constants alone), host memory known to
 * the user host's model, and a VM driven through the core's functions.
 */
#ifndef KMMU_UNIT_UTIL_H
#define KMMU_UNIT_UTIL_H

#include <sys/mman.h>

/* The core's headers first: kselftest.h only defines what is still missing. */
#include "../../kmod/core/api.h"
#include "../../kmod/core/fault.h"
#include "../../kmod/core/memslot.h"
#include "../../kmod/core/spp.h"
#include "../../kmod/core/spte.h"
#include "../../kmod/core/tdp_iter.h"
#include "../../kmod/core/tdp_mmu.h"
#include "../../kmod/core/vcpu.h"
#include "../../kmod/core/walker.h"
#include "../../kmod/user/internal.h"
#include "kmmu_user.h"

#include "kselftest_harness.h"

#define SZ_4K		0x1000ULL
#define SZ_2M		0x200000ULL
#define SZ_1G		0x40000000ULL

/*
 * Intel SDM vol. 3C, "EPT Translation Mechanism" (EPT paging-structure
 * entries): R/W/X in bits 0-2, a leaf's memory type in 5:3 and IPAT in 6,
 * page size in 7, accessed in 8, dirty in 9 (A/D only when EPTP bit 6 is
 * set), suppress #VE in 63.  Bits 7:3 of an entry that references a table
 * are reserved.  W=1 with R=0 is an EPT misconfiguration.
 */
#define SDM_EPT_R		(1ULL << 0)
#define SDM_EPT_W		(1ULL << 1)
#define SDM_EPT_X		(1ULL << 2)
#define SDM_EPT_MT(t)		((u64)(t) << 3)
#define SDM_MT_WB		6
#define SDM_EPT_IPAT		(1ULL << 6)
#define SDM_EPT_PS		(1ULL << 7)
#define SDM_EPT_A		(1ULL << 8)
#define SDM_EPT_D		(1ULL << 9)
#define SDM_EPT_SPP		(1ULL << 61)	/* 4K leaf: sub-page write permissions */
#define SDM_EPT_SUPPRESS_VE	(1ULL << 63)
/* The SPP table: valid non-leaf entries, and the vector's writable bits (2i). */
#define SDM_SPPT_VALID		(1ULL << 0)
#define SDM_SPPT_VEC(i)		(1ULL << (2 * (i)))
#define SDM_EPT_TABLE_RSVD	(0x1fULL << 3)

/*
 * AMD APM vol. 2, "Nested Paging" and "Long-Mode Page Translation": the
 * nested tables use the long-mode entry format, P/RW/US in bits 0-2,
 * accessed 5, dirty 6 (leaves), page size 7, AVL 9-11, NX 63.
 */
#define APM_P			(1ULL << 0)
#define APM_RW			(1ULL << 1)
#define APM_US			(1ULL << 2)
#define APM_A			(1ULL << 5)
#define APM_D			(1ULL << 6)
#define APM_PS			(1ULL << 7)
#define APM_NX			(1ULL << 63)

/*
 * kmmu's software bits, written out from the layout the design fixes, so a
 * bit that moves is a test failure and not a silent ABI change of GET_SPTE.
 */
#define KSW_MMU_PRESENT		(1ULL << 11)
#define KSW_PFN_MASK		0x0007fffffffff000ULL	/* bits 12-50 */
#define KSW_AD_DISABLED		(1ULL << 52)
#define KSW_SAVED_R		(1ULL << 54)
#define KSW_SAVED_W		(1ULL << 55)		/* never used: W is not saved */
#define KSW_SAVED_X		(1ULL << 56)
#define KSW_EPT_HOST_WRITABLE	(1ULL << 57)
#define KSW_EPT_MMU_WRITABLE	(1ULL << 58)
#define KSW_EPT_REFCOUNTED	(1ULL << 59)
#define KSW_NPT_HOST_WRITABLE	(1ULL << 9)
#define KSW_NPT_MMU_WRITABLE	(1ULL << 10)
#define KSW_NPT_REFCOUNTED	(1ULL << 58)
#define KSW_NPT_RSVD_BIT51	(1ULL << 51)
#define KSW_FROZEN		0x5a0ULL

/* What every SPTE of one VM configuration looks like, from the specs above. */
struct spte_layout {
	u32 format;
	u32 flags;
	u64 r, w, x, nx, us;	/* permissions: present/read, write, execute */
	u64 a, d;		/* 0 when the CPU does not set them */
	u64 ps;			/* page size (large leaf) */
	u64 memtype;		/* leaf memory type bits */
	u64 host_writable, mmu_writable, refcounted;
	u64 ad_type;		/* software A/D-type bits of every SPTE kmmu builds */
	u64 nonpresent;
	u64 table;		/* what a table entry sets besides pfn and present */
	u64 mmio_value;		/* what makes the CPU exit on an MMIO SPTE */
};

static const struct spte_layout layout_ept = {
	.format = KMMU_SPTE_FORMAT_EPT,
	.r = SDM_EPT_R, .w = SDM_EPT_W, .x = SDM_EPT_X,
	.a = SDM_EPT_A, .d = SDM_EPT_D, .ps = SDM_EPT_PS,
	.memtype = SDM_EPT_MT(SDM_MT_WB) | SDM_EPT_IPAT,
	.host_writable = KSW_EPT_HOST_WRITABLE, .mmu_writable = KSW_EPT_MMU_WRITABLE,
	.refcounted = KSW_EPT_REFCOUNTED,
	.table = SDM_EPT_R | SDM_EPT_W | SDM_EPT_X,
	.mmio_value = SDM_EPT_W | SDM_EPT_X,
};

static const struct spte_layout layout_ept_ad_disabled = {
	.format = KMMU_SPTE_FORMAT_EPT, .flags = KMMU_VM_AD_DISABLED,
	.r = SDM_EPT_R, .w = SDM_EPT_W, .x = SDM_EPT_X,
	.ps = SDM_EPT_PS,
	.memtype = SDM_EPT_MT(SDM_MT_WB) | SDM_EPT_IPAT,
	.host_writable = KSW_EPT_HOST_WRITABLE, .mmu_writable = KSW_EPT_MMU_WRITABLE,
	.refcounted = KSW_EPT_REFCOUNTED,
	.ad_type = KSW_AD_DISABLED,
	.table = SDM_EPT_R | SDM_EPT_W | SDM_EPT_X,
	.mmio_value = SDM_EPT_W | SDM_EPT_X,
};

static const struct spte_layout layout_ept_suppress_ve = {
	.format = KMMU_SPTE_FORMAT_EPT, .flags = KMMU_VM_NONPRESENT_SUPPRESS_VE,
	.r = SDM_EPT_R, .w = SDM_EPT_W, .x = SDM_EPT_X,
	.a = SDM_EPT_A, .d = SDM_EPT_D, .ps = SDM_EPT_PS,
	.memtype = SDM_EPT_MT(SDM_MT_WB) | SDM_EPT_IPAT,
	.host_writable = KSW_EPT_HOST_WRITABLE, .mmu_writable = KSW_EPT_MMU_WRITABLE,
	.refcounted = KSW_EPT_REFCOUNTED,
	.nonpresent = SDM_EPT_SUPPRESS_VE,
	.table = SDM_EPT_R | SDM_EPT_W | SDM_EPT_X,
	.mmio_value = SDM_EPT_W | SDM_EPT_X,
};

static const struct spte_layout layout_npt = {
	.format = KMMU_SPTE_FORMAT_NPT,
	.r = APM_P, .w = APM_RW, .nx = APM_NX, .us = APM_US,
	.a = APM_A, .d = APM_D, .ps = APM_PS,
	.host_writable = KSW_NPT_HOST_WRITABLE, .mmu_writable = KSW_NPT_MMU_WRITABLE,
	.refcounted = KSW_NPT_REFCOUNTED,
	.table = APM_P | APM_RW | APM_US,
	.mmio_value = APM_P | KSW_NPT_RSVD_BIT51,
};

/*
 * Every SPTE configuration; a fixture whose variant is
 * FIXTURE_VARIANT(x) { const struct spte_layout *l; } gets all of them.
 */
#define UNIT_ADD_LAYOUT_VARIANTS(fixture)					\
FIXTURE_VARIANT_ADD(fixture, ept) { .l = &layout_ept };				\
FIXTURE_VARIANT_ADD(fixture, ept_ad_disabled) { .l = &layout_ept_ad_disabled };	\
FIXTURE_VARIANT_ADD(fixture, ept_suppress_ve) { .l = &layout_ept_suppress_ve };	\
FIXTURE_VARIANT_ADD(fixture, npt) { .l = &layout_npt }

/* ---- host memory, as the user host's model knows it ---- */

struct unit_mem {
	void *addr;		/* aligned as asked */
	size_t size;
	void *map;
	size_t map_size;
};

/* Zero-filled memory of @kind, aligned to @align; 0 or -errno. */
static inline int unit_mem_alloc(struct unit_mem *m, size_t size, enum kmmu_user_mem_kind kind,
				 size_t align)
{
	int ret;

	m->size = size;
	m->map_size = size + align;
	m->map = mmap(NULL, m->map_size, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m->map == MAP_FAILED) {
		m->map = NULL;
		return -ENOMEM;
	}
	m->addr = (void *)ALIGN((unsigned long)m->map, align);
	ret = kmmu_user_mem_register(m->addr, size, kind, true);
	if (ret) {
		munmap(m->map, m->map_size);
		m->map = NULL;
	}
	return ret;
}

static inline void unit_mem_free(struct unit_mem *m)
{
	kmmu_user_mem_unregister(m->addr, m->size);
	munmap(m->map, m->map_size);
}

static inline u64 *unit_mem_word(struct unit_mem *m, u64 offset)
{
	return (u64 *)((char *)m->addr + offset);
}

/* ---- a VM driven through the core, without fds ---- */

/* The VM holds one reference per vCPU plus its own, as the fds would. */
static inline void unit_vm_put(struct kmmu *kmmu, int nr_vcpus)
{
	while (nr_vcpus--)
		kmmu_put(kmmu);
	kmmu_put(kmmu);
}

static inline int unit_set_slot(struct kmmu *kmmu, u32 slot, u64 gpa, u64 size, void *hva)
{
	struct kmmu_userspace_memory_region r = {
		.slot = slot,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (unsigned long)hva,
	};

	return kmmu_set_memory_region(kmmu, &r);
}

static inline struct kmmu_workload unit_wl(u64 gpa, u64 size, u32 write_pct, u64 value)
{
	struct kmmu_workload wl = {
		.gpa = gpa,
		.size = size,
		.iterations = 1,
		.value = value,
		.pattern = KMMU_PATTERN_SEQUENTIAL,
		.write_percent = write_pct,
	};

	return wl;
}

/* Set @wl and run until an exit other than INTR; the RUN's return value. */
static inline int unit_run(struct kmmu_vcpu *vcpu, const struct kmmu_workload *wl,
			   struct kmmu_run *run)
{
	int ret;

	kmmu_set_workload(vcpu, wl);
	do {
		memset(run, 0, sizeof(*run));
		ret = kmmu_run_vcpu(vcpu, run);
	} while (!ret && run->exit_reason == KMMU_EXIT_INTR);
	return ret;
}

static inline struct kmmu_vm_stats unit_stats(struct kmmu *kmmu)
{
	struct kmmu_vm_stats st;

	memset(&st, 0xff, sizeof(st));
	kmmu_vm_ioctl(kmmu, KMMU_GET_STATS, (unsigned long)&st);
	return st;
}

/* What lockless walkers of the tables hold: mmu_lock for read, and RCU. */
static inline void unit_mmu_read_lock(struct kmmu *kmmu)
{
	read_lock(&kmmu->mmu_lock);
	rcu_read_lock();
}

static inline void unit_mmu_read_unlock(struct kmmu *kmmu)
{
	rcu_read_unlock();
	read_unlock(&kmmu->mmu_lock);
}

/* The walk GET_SPTE reports for @gpa; returns the level of the last SPTE. */
static inline int unit_get_spte(struct kmmu *kmmu, u64 gpa, u32 as_id, u64 *sptes)
{
	struct kmmu_spte_query q = { .gpa = gpa, .as_id = as_id };

	if (kmmu_vm_ioctl(kmmu, KMMU_GET_SPTE, (unsigned long)&q))
		return -1;
	memcpy(sptes, q.sptes, sizeof(q.sptes));
	return q.level;
}

#endif /* KMMU_UNIT_UTIL_H */
