/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The TDP page-fault path: what a fault knows about itself, and its
 * outcomes.
 */
#ifndef KMMU_FAULT_H
#define KMMU_FAULT_H

#include "kmmu.h"
#include "memslot.h"

/* What handling a fault came to. */
enum {
	RET_PF_CONTINUE = 0,	/* keep going: the next step decides */
	RET_PF_RETRY,		/* let the vCPU access again (and fault again if need be) */
	RET_PF_EMULATE,		/* MMIO: exit to userspace */
	RET_PF_INVALID,		/* the fast path cannot help: take the slow one */
	RET_PF_FIXED,		/* a new or changed SPTE now allows the access */
	RET_PF_SPURIOUS,	/* the SPTE already allowed it */
	RET_PF_SPP,		/* a sub-page permission refused the write: exit to userspace */
	RET_PF_WRITE_TRACKED,	/* L1 writes a table the shadow MMU shadows: unprotect, retry */
};

/* One TDP violation (or misconfiguration), from the walk to the new SPTE. */
struct kmmu_page_fault {
	gpa_t addr;
	gfn_t gfn;
	int as_id;
	bool write;
	bool exec;
	bool present;		/* the walk found a present leaf that denied the access */
	bool rsvd;		/* the walk met an MMIO SPTE */
	bool spp;		/* the sub-page of the write is not writable (SPP) */
	bool spp_miss;		/* the SPP table has no entry for the page */

	/* Filled by the slow path. */
	struct kmmu_memory_slot *slot;
	struct os_pfn_req req;	/* the host page and what the host allows */
	bool pfn_held;		/* req holds a reference to drop */
	unsigned long mmu_seq;	/* invalidation sequence before the host lookup */
	int max_level;		/* largest level this fault may map */
	int goal_level;		/* level it will map at */
	u64 slots_gen;		/* memslot generation the fault saw */

	/* Out, for KMMU_EXIT_MEMORY_FAULT. */
	int host_error;
};

int kmmu_page_fault(struct kmmu_vcpu *vcpu, struct kmmu_page_fault *fault);
int kmmu_faultin_pfn(struct kmmu_vcpu *vcpu, struct kmmu_page_fault *fault);
int kmmu_max_mapping_level(struct kmmu *kmmu, const struct kmmu_memory_slot *slot,
			   gfn_t gfn, int max_level);

#endif /* KMMU_FAULT_H */
