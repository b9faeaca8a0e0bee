/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * kmmu userspace ABI: the ioctls of /dev/kmmu, its VM and vCPU file
 * descriptors, and the structures they take.  Shaped after KVM's API so that
 * a KVM user finds the same objects under the same names.
 *
 * Every structure is made of naturally aligned __u64/__u32 fields and ends in
 * reserved space that must be zero on input, so it can grow without a new
 * ioctl number.
 */
#ifndef _UAPI_LINUX_KMMU_H
#define _UAPI_LINUX_KMMU_H

#include <linux/types.h>
#include <linux/ioctl.h>

#define KMMU_API_VERSION	1

#define KMMUIO			0xB6

/* SPTE formats (struct kmmu_vm_config.spte_format, KMMU_CAP_SPTE_FORMAT). */
#define KMMU_SPTE_FORMAT_DEFAULT	0	/* the host CPU's: EPT on Intel, NPT on AMD */
#define KMMU_SPTE_FORMAT_EPT		1
#define KMMU_SPTE_FORMAT_NPT		2

/* struct kmmu_vm_config.flags */
#define KMMU_VM_AD_DISABLED		(1u << 0)  /* EPT only: access tracking instead of A/D bits */
/* EPT only: non-present SPTEs carry suppress-#VE (the default under nonpresent_ve=1) */
#define KMMU_VM_NONPRESENT_SUPPRESS_VE	(1u << 1)
#define KMMU_VM_VALID_FLAGS		(KMMU_VM_AD_DISABLED | KMMU_VM_NONPRESENT_SUPPRESS_VE)

/* Page sizes as levels: 1 = 4 KiB, 2 = 2 MiB, 3 = 1 GiB. */
#define KMMU_LEVEL_4K		1
#define KMMU_LEVEL_2M		2
#define KMMU_LEVEL_1G		3

struct kmmu_vm_config {
	__u32 spte_format;	/* in: KMMU_SPTE_FORMAT_* */
	__u32 flags;		/* in: KMMU_VM_* */
	__u32 max_level;	/* in: largest mapping, 0 = KMMU_LEVEL_1G */
	__u32 reserved0;
	__u64 reserved[6];	/* in: must be zero */
};

/*
 * Memory slots: like KVM, the address space id is in the high 16 bits of slot.
 * Unlike KVM, clearing KMMU_MEM_LOG_DIRTY_PAGES returns without waiting for
 * the page faults that read the slot as it was: such a fault may still log a
 * page into the old log (which is freed after it) or map a page 4K that
 * could now be mapped huge.
 */
#define KMMU_MEM_LOG_DIRTY_PAGES	(1u << 0)
#define KMMU_MEM_READONLY		(1u << 1)
#define KMMU_MEM_VALID_FLAGS		(KMMU_MEM_LOG_DIRTY_PAGES | KMMU_MEM_READONLY)

struct kmmu_userspace_memory_region {
	__u32 slot;		/* in: (as_id << 16) | id */
	__u32 flags;		/* in: KMMU_MEM_* */
	__u64 guest_phys_addr;	/* in: 4 KiB aligned */
	__u64 memory_size;	/* in: bytes, 4 KiB aligned, < 2^31 pages; 0 deletes the slot */
	__u64 userspace_addr;	/* in: 4 KiB aligned */
};

/* Workload access patterns. */
#define KMMU_PATTERN_SEQUENTIAL	0	/* one access per 4 KiB page, in order */
#define KMMU_PATTERN_RANDOM	1	/* one access per step, at a random page */
#define KMMU_PATTERN_STRIDE	2	/* one access every @stride bytes, in order */

/* struct kmmu_workload.flags */
#define KMMU_WL_XOR_GPA		(1u << 0)  /* write value ^ gpa instead of value */
#define KMMU_WL_SMM		(1u << 1)  /* access address space 1, as in SMM */
#define KMMU_WL_NESTED		(1u << 2)  /* run as L2: see nested_root (KMMU_CAP_NESTED) */
#define KMMU_WL_VALID_FLAGS	(KMMU_WL_XOR_GPA | KMMU_WL_SMM | KMMU_WL_NESTED)

/*
 * Nested workloads (KMMU_WL_NESTED, KMMU_CAP_NESTED): the workload's
 * addresses are L2 gpas, translated by an L1 hypervisor's tables in the
 * VM's memory (L1 gpas, in the workload's address space) into L1 gpas,
 * which kmmu maps as it maps any.  L1's tables are in the VM's format,
 * four levels, with L1's physical addresses below 2^48; the vCPU walks
 * them on a miss of its TLB, sets their A and D bits as the CPU does,
 * and a walk that fails exits with KMMU_EXIT_NESTED_FAULT.  Like a CPU's,
 * the vCPU's TLB keeps what it cached when L1 edits its tables:
 * KMMU_INVALIDATE_NESTED drops it (INVEPT / INVLPGA's job).
 *
 * nested_root is what L1 would load:
 *  - EPT VMs, an EPTP: bits 2:0 the memory type, 0 (UC) or 6 (WB); bits
 *    5:3 the walk length minus one, 3; bit 6 A/D on; bits 11:7 and 63:48
 *    zero; bits 47:12 the root table's L1 gpa;
 *  - NPT VMs, an nCR3: bits 47:12 the root table's L1 gpa, bits 63:48
 *    zero, bits 11:0 ignored (the CPU ignores them).
 * SET_WORKLOAD is -EINVAL for another root, for a nested_root without
 * KMMU_WL_NESTED, for a nested workload with any byte at or above 2^48,
 * and -EOPNOTSUPP for a nested workload on a hardware vCPU.
 */
#define KMMU_EPTP_MT_UC		0
#define KMMU_EPTP_MT_WB		6
#define KMMU_EPTP_PWL_4		(3 << 3)
#define KMMU_EPTP_AD		(1 << 6)

/*
 * What a vCPU runs: @iterations passes over [gpa, gpa + size).  Every access
 * is 8 bytes at the start of a page (or stride step); writes store @value.
 * Reads are summed into kmmu_run.read_sum so a test can check what was seen.
 */
struct kmmu_workload {
	__u64 gpa;		/* in: 8-byte aligned */
	__u64 size;		/* in: bytes, non-zero */
	__u64 stride;		/* in: KMMU_PATTERN_STRIDE: multiple of 8, non-zero */
	__u64 iterations;	/* in: passes, non-zero */
	__u64 seed;		/* in: random pattern and write choice */
	__u64 value;		/* in: what writes store */
	__u32 pattern;		/* in: KMMU_PATTERN_* */
	__u32 write_percent;	/* in: 0..100 */
	__u32 flags;		/* in: KMMU_WL_* */
	__u32 reserved0;
	__u64 nested_root;	/* in: KMMU_WL_NESTED: L1's EPTP or nCR3, else 0 */
	__u64 reserved[3];	/* in: must be zero */
};

/* kmmu_run.exit_reason */
#define KMMU_EXIT_DONE		0	/* the workload finished */
#define KMMU_EXIT_MMIO		1	/* access to a gpa with no memslot, or write to a read-only one */
#define KMMU_EXIT_MEMORY_FAULT	2	/* the host could not provide the page */
#define KMMU_EXIT_INTR		3	/* a signal or a kick; RUN again to go on */
#define KMMU_EXIT_BUDGET	4	/* kmmu_run.max_accesses were done; RUN again to go on */
#define KMMU_EXIT_INTERNAL_ERROR 5	/* the walk met a malformed entry: a kmmu bug */
#define KMMU_EXIT_DIRTY_RING_FULL 6	/* the vCPU's dirty ring is full: harvest, reset, RUN */
/*
 * A write to a sub-page that KMMU_SUBPAGES_SET_ACCESS made read-only: the
 * write did not happen.  RUN again goes on after it (as after an MMIO
 * write); userspace may first make it itself through the memslot's
 * userspace address, or change the permissions and let the guest's next
 * write through.
 */
#define KMMU_EXIT_SPP		7
/*
 * A nested workload's access could not go through L1's tables: what L1
 * would handle (an EPT violation or misconfiguration, an #NPF).  Nothing
 * was accessed; RUN again retries the access, after userspace (L1) fixed
 * its tables and, if they had been cached, KMMU_INVALIDATE_NESTED.
 */
#define KMMU_EXIT_NESTED_FAULT	8

/* kmmu_run.nested.reason */
#define KMMU_NESTED_NOT_PRESENT	1	/* an entry not present (EPT: R, W, X all clear) */
#define KMMU_NESTED_PERMISSION	2	/* present, but some level denies the access */
#define KMMU_NESTED_MISCONFIG	3	/* a reserved bit or a bad combination (EPT misconfig, RSVD) */
#define KMMU_NESTED_NO_MEMORY	4	/* a table of L1's is at an L1 gpa without a memslot */

/* kmmu_run.mmio.flags / memory_fault.flags */
#define KMMU_ACCESS_WRITE	(1u << 0)

struct kmmu_run {
	__u64 max_accesses;	/* in: stop after this many accesses, 0 = no limit */
	__u64 reserved_in[3];	/* in: must be zero */
	__u32 exit_reason;	/* out: KMMU_EXIT_* */
	__u32 reserved0;
	__u64 accesses;		/* out: accesses done by this RUN */
	__u64 read_sum;		/* out: sum of the values read by this RUN */
	__u64 faults;		/* out: TDP violations this RUN took */
	union {
		/* KMMU_EXIT_MMIO; for a read, userspace may fill data before the next RUN. */
		struct {
			__u64 gpa;
			__u64 data;
			__u32 len;
			__u32 flags;
		} mmio;
		/* KMMU_EXIT_MEMORY_FAULT */
		struct {
			__u64 gpa;
			__u64 size;
			__u32 flags;
			__s32 error;	/* -errno from the host */
		} memory_fault;
		/* KMMU_EXIT_SPP */
		struct {
			__u64 gpa;	/* of the write */
			__u64 data;	/* what it would have stored */
			__u32 len;	/* bytes: 8 */
			__u32 subpage;	/* index of the 128-byte sub-page in its 4 KiB page */
		} spp;
		/* KMMU_EXIT_NESTED_FAULT */
		struct {
			__u64 gpa;	/* L2 gpa of the access */
			__u64 pte_gpa;	/* L1 gpa of the entry that failed (NO_MEMORY: it could not be read) */
			__u64 pte;	/* its value (0 for NO_MEMORY) */
			__u32 level;	/* its level: 4 (PML4E) .. 1 (PTE) */
			__u32 reason;	/* KMMU_NESTED_* */
			__u32 flags;	/* KMMU_ACCESS_WRITE */
			__u32 reserved;
		} nested;
		/*
		 * KMMU_EXIT_INTERNAL_ERROR.  On a hardware vCPU (KMMU_CAP_HW_VCPU)
		 * an exit kmmu does not handle gives the CPU's exit code and
		 * infos (SVM: EXITCODE, EXITINFO1, EXITINFO2) and the guest's RIP.
		 * A malformed entry of the SPP table gives that entry as spte
		 * and its level in the SPP table as level.
		 */
		struct {
			__u64 gpa;
			__u64 spte;
			__u32 level;
			__u32 reserved;
			__u64 hw_exit_code;
			__u64 hw_info1;
			__u64 hw_info2;
			__u64 hw_rip;
		} internal;
		__u64 exit_pad[8];
	};
};

/* Per-VM statistics (KMMU_GET_STATS). */
struct kmmu_vm_stats {
	__u64 pages_4k;		/* leaf SPTEs mapping 4 KiB */
	__u64 pages_2m;
	__u64 pages_1g;
	__u64 pt_pages;		/* page-table pages allocated, roots included */
	__u64 faults;		/* TDP violations taken */
	__u64 fast_faults;	/* fixed by the lockless fast path */
	__u64 spurious_faults;	/* nothing to fix: another vCPU got there first */
	__u64 fault_retries;	/* faults retried because of an invalidation or a lost cmpxchg */
	__u64 mmio_faults;
	__u64 tlb_flushes;	/* remote TLB flush requests */
	__u64 zapped_leafs;	/* leaves of refcounted pages zapped, whole tables aside */
	__u64 invalidations;	/* host invalidation ranges seen */
	__u64 memslot_generation;
	__u64 dirty_pages;	/* pages logged dirty */
	__u64 splits;		/* huge SPTEs split into a table of smaller ones */
	__u64 recoveries;	/* huge SPTEs rebuilt in place from a table */
	__u64 collapsible_zaps;	/* tables zapped so faults can map huge again */
	__u64 aging_passes;
	__u64 young;		/* leaves found accessed by aging */
	__u64 old;		/* leaves found not accessed by aging */
	__u64 max_write_hold_ns;	/* longest time mmu_lock was held for write */
	__u64 shadow_pages;	/* shadow MMU (nested workloads): page-table pages */
	__u64 shadow_leaves;	/* ... leaf SPTEs, each in the rmap of the L1 gfn it maps */
	__u64 shadow_faults;	/* ... faults that installed a leaf */
	__u64 shadow_tracked;	/* ... shadow pages whose L1 table is write-tracked */
	__u64 shadow_unprotects;	/* ... L1 writes to such a table, which zapped them */
	__u64 reserved[6];
};

/*
 * The binary statistics of a VM or a vCPU, laid out as KVM_GET_STATS_FD's
 * (Documentation/virt/kvm/api.rst): KMMU_GET_STATS_FD on a VM or vCPU fd
 * returns a read-only fd, read with pread() from any offset.  It holds a
 * header; at id_offset a NUL-terminated id of name_size bytes at most
 * ("kmmu-<pid>", "kmmu-<pid>/vcpu-<id>"); at desc_offset num_desc
 * descriptors, each a struct kmmu_stats_desc followed by a name of
 * name_size bytes (NUL-padded); at data_offset the values, each a __u64
 * at data_offset + desc->offset.  Everything but the values is fixed for
 * the life of the fd: read it once, then pread() the values.
 */
struct kmmu_stats_header {
	__u32 flags;		/* 0 */
	__u32 name_size;	/* bytes of the id and of every descriptor's name */
	__u32 num_desc;
	__u32 id_offset;
	__u32 desc_offset;
	__u32 data_offset;
};

#define KMMU_STATS_TYPE_SHIFT		0
#define KMMU_STATS_TYPE_MASK		(0xF << KMMU_STATS_TYPE_SHIFT)
#define KMMU_STATS_TYPE_CUMULATIVE	(0x0 << KMMU_STATS_TYPE_SHIFT)	/* only grows */
#define KMMU_STATS_TYPE_INSTANT		(0x1 << KMMU_STATS_TYPE_SHIFT)	/* goes up and down */
#define KMMU_STATS_TYPE_PEAK		(0x2 << KMMU_STATS_TYPE_SHIFT)	/* the largest seen */

#define KMMU_STATS_UNIT_SHIFT		4
#define KMMU_STATS_UNIT_MASK		(0xF << KMMU_STATS_UNIT_SHIFT)
#define KMMU_STATS_UNIT_NONE		(0x0 << KMMU_STATS_UNIT_SHIFT)
#define KMMU_STATS_UNIT_BYTES		(0x1 << KMMU_STATS_UNIT_SHIFT)
#define KMMU_STATS_UNIT_SECONDS		(0x2 << KMMU_STATS_UNIT_SHIFT)

#define KMMU_STATS_BASE_SHIFT		8
#define KMMU_STATS_BASE_MASK		(0xF << KMMU_STATS_BASE_SHIFT)
#define KMMU_STATS_BASE_POW10		(0x0 << KMMU_STATS_BASE_SHIFT)	/* value * 10^exponent */

struct kmmu_stats_desc {
	__u32 flags;		/* KMMU_STATS_TYPE_* | KMMU_STATS_UNIT_* | KMMU_STATS_BASE_* */
	__s16 exponent;		/* of the base: -9 for nanoseconds */
	__u16 size;		/* __u64 values: 1 */
	__u32 offset;		/* of the value, from data_offset */
	__u32 bucket_size;	/* 0: no histograms */
	char name[];
};

/* KMMU_GET_SPTE: the walk that hardware would do for @gpa (debug and tests). */
struct kmmu_spte_query {
	__u64 gpa;		/* in */
	__u32 as_id;		/* in */
	__u32 level;		/* out: level of the last SPTE read, 0 if no root */
	__u64 sptes[5];		/* out: sptes[level] for levels 4..level, index 0 unused */
	__u64 reserved[2];
};

/*
 * KMMU_ZAP: drop mappings (tests and benches), like an invalidation with no
 * host change: the TDP leaves of the range and the shadow leaves that map
 * it; KMMU_ZAP_ALL, every root and every shadow page.
 */
#define KMMU_ZAP_ALL		(1u << 0)	/* invalidate every root instead of a range */
#define KMMU_ZAP_VALID_FLAGS	(KMMU_ZAP_ALL)
struct kmmu_zap {
	__u64 gpa;		/* in: 4 KiB aligned */
	__u64 size;		/* in: 4 KiB aligned, non-zero unless KMMU_ZAP_ALL */
	__u32 as_id;		/* in */
	__u32 flags;		/* in: KMMU_ZAP_* */
	__u64 reserved[2];
};

/* Dirty logging, after KVM_GET_DIRTY_LOG and KVM_CLEAR_DIRTY_LOG. */
struct kmmu_dirty_log {
	__u32 slot;		/* in: (as_id << 16) | id */
	__u32 padding;		/* in: must be zero */
	__u64 dirty_bitmap;	/* in: user pointer, one bit per page of the slot */
};

struct kmmu_clear_dirty_log {
	__u32 slot;		/* in */
	__u32 num_pages;	/* in: multiple of 64 unless it reaches the slot's end */
	__u64 first_page;	/* in: multiple of 64 */
	__u64 dirty_bitmap;	/* in: user pointer, bit i = first_page + i */
};

/*
 * KMMU_AGE: age (or only test) [gpa, gpa + size), as the mm's notifiers do:
 * the TDP MMU's leaves of the range and the shadow MMU's leaves that map
 * it (through the rmaps).  Locked or lockless as KMMU_CAP_LOCKLESS_AGING
 * says, unless KMMU_AGE_FAST_ONLY: then never mmu_lock and never a wait,
 * in the spirit of the proposed test_clear_young_fast_only() notifier; an
 * rmap a writer holds is skipped and the answer says it is incomplete
 * (kmod/core/NESTED.md has how this differs from the proposal).
 */
#define KMMU_AGE_TEST_ONLY	(1u << 0)	/* do not clear what is found */
#define KMMU_AGE_FLUSH		(1u << 1)	/* flush TLBs after clearing */
#define KMMU_AGE_FAST_ONLY	(1u << 2)	/* no mmu_lock, no waiting */
#define KMMU_AGE_VALID_FLAGS	(KMMU_AGE_TEST_ONLY | KMMU_AGE_FLUSH | KMMU_AGE_FAST_ONLY)
/* Out, in result: FAST_ONLY skipped rmaps a writer held; age again to know them. */
#define KMMU_AGE_INCOMPLETE	(1u << 0)
struct kmmu_age {
	__u64 gpa;		/* in: 4 KiB aligned */
	__u64 size;		/* in: 4 KiB aligned, non-zero */
	__u32 as_id;		/* in */
	__u32 flags;		/* in: KMMU_AGE_* */
	__u64 young;		/* out: 4 KiB pages found accessed */
	__u64 old;		/* out: 4 KiB pages found mapped but not accessed */
	__u32 result;		/* out: KMMU_AGE_INCOMPLETE */
	__u32 padding;		/* in: must be zero */
	__u64 reserved[1];	/* in: must be zero */
};

/* KMMU_ENABLE_CAP */
struct kmmu_enable_cap {
	__u32 cap;		/* in: KMMU_CAP_* */
	__u32 flags;		/* in: must be zero */
	__u64 args[4];		/* in */
	__u64 reserved[4];	/* in: must be zero */
};

/* KMMU_CAP_MANUAL_DIRTY_LOG_PROTECT args[0] */
#define KMMU_DIRTY_LOG_MANUAL_PROTECT_ENABLE	(1ull << 0)
#define KMMU_DIRTY_LOG_INITIALLY_SET		(1ull << 1)
/* KMMU_CAP_DIRTY_LOG_MODE args[0] */
#define KMMU_DIRTY_LOG_MODE_WRPROT	0	/* first write faults and is logged */
#define KMMU_DIRTY_LOG_MODE_DBIT	1	/* D bits are harvested (A/D enabled only) */

/*
 * The per-vCPU dirty ring (KMMU_CAP_DIRTY_LOG_RING), after KVM's: an array
 * of entries mmap'd from the vCPU fd at KMMU_DIRTY_LOG_PAGE_OFFSET pages.
 * kmmu pushes one entry per page the vCPU dirties, in order, and sets
 * DIRTY last (release); userspace reads entries in order from its own
 * index while DIRTY is set (acquire), collects slot/offset and sets RESET
 * (release).  KMMU_RESET_DIRTY_RINGS protects the collected pages again and
 * frees their entries (flags back to 0).  A vCPU whose ring is nearly full
 * exits with KMMU_EXIT_DIRTY_RING_FULL and will not run until it is reset.
 */
struct kmmu_dirty_gfn {
	__u32 flags;		/* KMMU_DIRTY_GFN_F_* */
	__u32 slot;		/* (as_id << 16) | id */
	__u64 offset;		/* page in the slot */
};

#define KMMU_DIRTY_GFN_F_DIRTY		(1u << 0)	/* set by kmmu: the entry is valid */
#define KMMU_DIRTY_GFN_F_RESET		(1u << 1)	/* set by userspace: collected */
#define KMMU_DIRTY_GFN_F_MASK		3u

#define KMMU_DIRTY_LOG_PAGE_OFFSET	64		/* vCPU fd mmap offset, in pages */
#define KMMU_DIRTY_RING_MAX_ENTRIES	65536

/*
 * KMMU_CHECK_EXTENSION answers on /dev/kmmu for what kmmu supports, and on a
 * VM fd, as KVM does, for that VM: SPTE_FORMATS is the VM's own format,
 * MAX_LEVEL its limit, AD_DISABLED and NONPRESENT_VE whether it uses them,
 * DIRTY_LOG_MODE the modes its SPTEs allow.
 *
 * Errors are KVM's for the same call (RESET_DIRTY_RINGS without rings:
 * -EINVAL; GET/CLEAR_DIRTY_LOG with rings: -ENXIO; a CLEAR of no pages may
 * start at the slot's end; MANUAL_DIRTY_LOG_PROTECT may change at any
 * time), except where kmmu has a rule KVM does not:
 *  - DIRTY_LOG_MODE and EAGER_SPLIT_CHUNK_SIZE: -EBUSY while a slot logs.
 *    The mode is kmmu's own, and the chunk steers splits under way
 *    (arm64's KVM_CAP_ARM_EAGER_SPLIT_CHUNK_SIZE is -EBUSY as soon as any
 *    memslot exists).
 *  - DIRTY_LOG_RING: -EBUSY while a slot logs into a bitmap, whose pages
 *    the rings could not take over.
 */

/* KMMU_CHECK_EXTENSION */
#define KMMU_CAP_SPTE_FORMATS	1	/* bitmask of 1 << KMMU_SPTE_FORMAT_* */
#define KMMU_CAP_MAX_LEVEL	2	/* largest mapping level */
#define KMMU_CAP_NR_MEMSLOTS	3	/* memslots per address space */
#define KMMU_CAP_NR_VCPUS	4
#define KMMU_CAP_ADDRESS_SPACES	5
#define KMMU_CAP_AD_DISABLED	6	/* KMMU_VM_AD_DISABLED is supported */
#define KMMU_CAP_NONPRESENT_VE	7	/* KMMU_VM_NONPRESENT_SUPPRESS_VE is supported */
#define KMMU_CAP_READONLY_MEM	8
#define KMMU_CAP_MANUAL_DIRTY_LOG_PROTECT 9	/* enable: args[0] = KMMU_DIRTY_LOG_* */
#define KMMU_CAP_DIRTY_LOG_MODE	10	/* enable: args[0] = KMMU_DIRTY_LOG_MODE_*, no slot logging */
#define KMMU_CAP_EAGER_SPLIT_CHUNK_SIZE 11	/* enable: args[0] = bytes per batch, 0 = off */
#define KMMU_CAP_LOCKLESS_AGING	12	/* enable: args[0] = 0 (locked) or 1 (lockless) */
/*
 * Check: the largest ring in bytes.  Enable, before any vCPU exists and
 * while no slot logs: args[0] = ring bytes, a power of two from 4 KiB.
 * Slots then log into the rings only: no bitmap, GET/CLEAR_DIRTY_LOG
 * fail with -ENXIO.
 */
#define KMMU_CAP_DIRTY_LOG_RING	13
/*
 * Hardware vCPUs: the workload runs as 64-bit guest code on the CPU (AMD
 * SVM with nested paging), whose nested CR3 is the VM's own NPT root; the
 * CPU walks kmmu's tables, sets their A/D bits and exits with #NPF into
 * kmmu's fault path.  The kernel log says, once, why a host cannot.
 *
 * Check: 1 when this host can (on a VM fd: that VM has them, or its SPTE
 * format and dirty-log settings allow them), else 0.  Enable, args[0] = 1, before any vCPU exists: every vCPU
 * made afterwards is a hardware one.  kmmu then owns a private slot of
 * KMMU_HW_SLOT_SIZE bytes at KMMU_HW_SLOT_GPA in each address space, with
 * the guest's code and page tables; statistics, dirty logging
 * and aging leave it out.
 *
 * Errors of the enable:
 *  - -EOPNOTSUPP: the host cannot (not AMD, no SVM or NPT, SVM disabled by
 *    the firmware, MAXPHYADDR 52 or below 40, SME on, hw_vcpu=off), or the
 *    VM logs with KMMU_DIRTY_LOG_MODE_DBIT into dirty rings, which would
 *    need a PML-like log the hardware does not have;
 *  - -EINVAL: the VM's SPTE format is EPT (TCG has no VMX, and kmmu has no
 *    VMX vCPU), or args[0] is not 1;
 *  - -EBUSY: a vCPU exists;
 *  - -EEXIST: a memslot overlaps the private slot.
 * Once enabled: DIRTY_LOG_MODE_DBIT with DIRTY_LOG_RING is -EOPNOTSUPP in
 * either order; SET_WORKLOAD is -EINVAL for a workload the guest cannot
 * address (any byte at or above 2^MAXPHYADDR) or that touches the private
 * slot; RUN is -EBUSY in the module's hw_vcpu=exclusive mode on a CPU where
 * another hypervisor has SVM on.
 */
#define KMMU_CAP_HW_VCPU	14
#define KMMU_HW_SLOT_GPA	(1ULL << 39)	/* 512 GiB */
#define KMMU_HW_SLOT_SIZE	(128ULL << 10)

/*
 * Sub-page write permissions (SPP), after Intel's EPT-based sub-page
 * permissions: a 4 KiB page of an EPT VM is split into 32 sub-pages of
 * 128 bytes, and a write to one whose bit is clear exits with
 * KMMU_EXIT_SPP instead of happening.  Reads and execution are not
 * affected.  kmod/core/SPP.md has the design.
 *
 * Check: on /dev/kmmu 1 (kmmu can do it for EPT VMs); on a VM fd 1 when
 * the VM's SPTE format is EPT, else 0.  Enable, args[0] = 1: gives every
 * memslot of the VM, present and future, a map with every page all-ones
 * (writable).  Enabling again does nothing; it cannot be turned off.
 * Errors of the enable: -EOPNOTSUPP on an NPT VM, -EINVAL when args[0] is
 * not 1, -ENOMEM (nothing changed).
 */
#define KMMU_CAP_SPP		15

/*
 * Nested workloads (KMMU_WL_NESTED) and KMMU_INVALIDATE_NESTED.  Check: 1
 * on /dev/kmmu; on a VM fd 1 unless the VM has hardware vCPUs, whose
 * guest code runs unnested.  Nothing to enable.
 */
#define KMMU_CAP_NESTED		16

/*
 * KMMU_INVALIDATE_NESTED: after L1 edited its tables, drop what vCPUs
 * cached of them, as INVEPT does: type KMMU_INV_SINGLE_CONTEXT for the
 * tables of one root (root: an EPTP or nCR3 as in nested_root; kmmu may
 * drop more), KMMU_INV_ALL_CONTEXTS for all (root 0).  On return no vCPU
 * uses a translation of L1's tables cached before the call.  -EINVAL for
 * another type, a bad root, non-zero flags or reserved fields;
 * -EOPNOTSUPP on a VM with hardware vCPUs (no nested workloads there).
 */
#define KMMU_INV_SINGLE_CONTEXT	1
#define KMMU_INV_ALL_CONTEXTS	2

struct kmmu_nested_invalidate {
	__u32 type;		/* in: KMMU_INV_* */
	__u32 flags;		/* in: must be zero */
	__u64 root;		/* in: SINGLE_CONTEXT: the root; ALL_CONTEXTS: 0 */
	__u64 reserved[2];	/* in: must be zero */
};

#define KMMU_SUBPAGE_SIZE		128
#define KMMU_SUBPAGES_PER_PAGE		32
#define KMMU_SUBPAGE_FULL_ACCESS	0xffffffffu	/* every sub-page writable: SPP off */
#define KMMU_SUBPAGES_MAX_PAGES		262144		/* pages per call: 1 GiB */

/*
 * KMMU_SUBPAGES_SET_ACCESS / KMMU_SUBPAGES_GET_ACCESS: the permissions of
 * [gfn_base, gfn_base + npages) in address space as_id, one __u32 per
 * 4 KiB page in access_map (bit i: sub-page i writable).  A permission
 * follows the guest frame while its memslot stays; it goes when the slot
 * is deleted or moved (the frames at the new place start all-ones).
 *
 * The whole request is checked before anything changes; SET either
 * applies every page's map or, on any error, none.  Errors:
 *  - -EOPNOTSUPP: the VM's SPTE format is not EPT;
 *  - -ENXIO: KMMU_CAP_SPP is not enabled;
 *  - -EINVAL: flags or reserved fields not zero, npages 0, as_id out of
 *    range, or the range beyond the guest physical address space;
 *  - -E2BIG: npages above KMMU_SUBPAGES_MAX_PAGES;
 *  - -ENOENT: a page of the range is in no memslot;
 *  - -EFAULT: access_map cannot be read (SET) or written (GET).
 */
struct kmmu_subpage_access {
	__u64 gfn_base;		/* in */
	__u32 npages;		/* in: 1 .. KMMU_SUBPAGES_MAX_PAGES */
	__u32 flags;		/* in: must be zero */
	__u32 as_id;		/* in */
	__u32 reserved0;	/* in: must be zero */
	__u64 reserved[2];	/* in: must be zero */
	__u32 access_map[];	/* SET: in; GET: out */
};

/* System ioctls, on /dev/kmmu */
#define KMMU_GET_API_VERSION	_IO(KMMUIO, 0x00)
#define KMMU_CREATE_VM		_IOW(KMMUIO, 0x01, struct kmmu_vm_config)
#define KMMU_CHECK_EXTENSION	_IO(KMMUIO, 0x03)

/* VM ioctls */
#define KMMU_CREATE_VCPU	_IO(KMMUIO, 0x41)
#define KMMU_SET_USER_MEMORY_REGION _IOW(KMMUIO, 0x46, struct kmmu_userspace_memory_region)
#define KMMU_GET_STATS		_IOR(KMMUIO, 0x50, struct kmmu_vm_stats)
#define KMMU_GET_SPTE		_IOWR(KMMUIO, 0x51, struct kmmu_spte_query)
#define KMMU_ZAP		_IOW(KMMUIO, 0x52, struct kmmu_zap)
#define KMMU_AGE		_IOWR(KMMUIO, 0x53, struct kmmu_age)
/* On VM and vCPU fds: a new fd of binary statistics (struct kmmu_stats_header). */
#define KMMU_GET_STATS_FD	_IO(KMMUIO, 0xce)
#define KMMU_GET_DIRTY_LOG	_IOW(KMMUIO, 0x42, struct kmmu_dirty_log)
#define KMMU_CLEAR_DIRTY_LOG	_IOWR(KMMUIO, 0xc0, struct kmmu_clear_dirty_log)
#define KMMU_ENABLE_CAP		_IOW(KMMUIO, 0xa3, struct kmmu_enable_cap)
#define KMMU_SUBPAGES_GET_ACCESS _IOWR(KMMUIO, 0x49, struct kmmu_subpage_access)
#define KMMU_SUBPAGES_SET_ACCESS _IOW(KMMUIO, 0x4a, struct kmmu_subpage_access)
/* Returns the number of entries reset, over every vCPU. */
#define KMMU_RESET_DIRTY_RINGS	_IO(KMMUIO, 0xc7)
#define KMMU_INVALIDATE_NESTED	_IOW(KMMUIO, 0x54, struct kmmu_nested_invalidate)

/* vCPU ioctls */
#define KMMU_SET_WORKLOAD	_IOW(KMMUIO, 0x81, struct kmmu_workload)
#define KMMU_RUN		_IOWR(KMMUIO, 0x80, struct kmmu_run)
#define KMMU_KICK		_IO(KMMUIO, 0x82)

#endif /* _UAPI_LINUX_KMMU_H */
