/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The walker over an L1 hypervisor's own EPT or NPT tables, which live in
 * L1 memory: what the shadow MMU needs to know about an L2 address before
 * it can shadow it (the role of KVM's paging_tmpl.h for nested TDP).
 */
#ifndef KMMU_GUEST_WALK_H
#define KMMU_GUEST_WALK_H

#include "spte.h"

/*
 * L1's physical address width: kmmu's own tables have four levels, so L1
 * addresses 48 bits; bits 51:48 of L1's entries are reserved.
 */
#define KMMU_L1_PHYS_BITS	48
#define KMMU_L1_GPA_LIMIT	BIT_ULL(KMMU_L1_PHYS_BITS)
/* The root table's address in an EPTP or nCR3. */
#define KMMU_NESTED_ROOT_ADDR	GENMASK_ULL(KMMU_L1_PHYS_BITS - 1, KMMU_PAGE_SHIFT)

/* Why a walk of L1's tables failed: what L1's CPU would have taken. */
enum kmmu_gw_fault {
	KMMU_GW_OK,
	KMMU_GW_NOT_PRESENT,	/* EPT violation / #NPF, entry not present */
	KMMU_GW_PERMISSION,	/* EPT violation / #NPF, present but the access is denied */
	KMMU_GW_MISCONFIG,	/* EPT misconfiguration / #NPF with RSVD */
	KMMU_GW_NO_MEMORY,	/* a table of L1's is at a gpa without memory */
};

/*
 * How the walker reads and updates L1 memory.  read: 0, or -EFAULT when
 * no memory backs @gpa.  update, a compare-and-exchange: 0 when *@gpa was
 * @old and is now @new, -EAGAIN when it was something else, -EFAULT as
 * read, 1 when the memory cannot take A/D bits (read-only: left as it is).
 */
struct kmmu_gw_mem {
	int (*read)(void *ctx, gpa_t gpa, u64 *val);
	int (*update)(void *ctx, gpa_t gpa, u64 old, u64 new);
	void *ctx;
};

/* The walk of one L2 address; the levels index the arrays, 1..KMMU_MAX_LEVEL. */
struct kmmu_guest_walk {
	/* in */
	gpa_t root;			/* L1 gpa of L1's root table (EPTP / nCR3 address) */
	u32 format;			/* KMMU_SPTE_FORMAT_*: L1's tables are in the VM's format */
	bool ad;			/* EPT: A/D enabled in L1's EPTP; NPT always has them */
	gpa_t l2_gpa;
	unsigned int access;		/* one KMMU_ACC_* kind */
	/* out */
	enum kmmu_gw_fault fault;
	int level;			/* the leaf's level, or that of the entry that failed */
	gpa_t l1_gpa;			/* OK: what l2_gpa translates to */
	unsigned int pte_access;	/* OK: KMMU_ACC_* granted by every level */
	gfn_t table_gfn[KMMU_MAX_LEVEL + 1];	/* L1 gfn of the table read at each level */
	gpa_t pte_gpa[KMMU_MAX_LEVEL + 1];	/* L1 gpa of the entry read at each level */
	u64 pte[KMMU_MAX_LEVEL + 1];		/* the entry read at each level */
};

int kmmu_guest_walk(const struct kmmu_gw_mem *mem, struct kmmu_guest_walk *gw);
unsigned int kmmu_gw_entry_access(u32 format, u64 e);
int kmmu_guest_walk_vcpu(struct kmmu_vcpu *vcpu, int as_id, struct kmmu_guest_walk *gw);

#endif /* KMMU_GUEST_WALK_H */
