/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The hardware page walk of the software vCPU: what an EPT or NPT walker
 * does with the tables kmmu builds, including the A/D bits it sets.
 */
#ifndef KMMU_WALKER_H
#define KMMU_WALKER_H

#include "kmmu.h"

enum kmmu_walk_result {
	KMMU_WALK_OK,
	KMMU_WALK_VIOLATION,	/* EPT violation / #NPF without RSVD */
	KMMU_WALK_MISCONFIG,	/* EPT misconfiguration / #NPF with RSVD */
	KMMU_WALK_SPP_MISS,	/* SPP-related exit: the SPPT has no entry for the page */
	KMMU_WALK_SPP_MISCONFIG, /* SPP-related exit: a malformed SPPT entry */
};

struct kmmu_walk {
	gpa_t gpa;		/* in */
	unsigned int access;	/* in: one KMMU_ACC_* kind */
	u64 *sppt;		/* in: the SPP table of the address space, NULL if none */
	int level;		/* out: level of the last entry read */
	u64 spte;		/* out: that entry */
	bool present;		/* out, violations: a present leaf denied the access */
	bool spp;		/* out, violations: ... because the sub-page is not writable */
	kmmu_pfn_t pfn;		/* out, OK: the 4 KiB frame of gpa */
	bool writable;		/* out, OK: later writes may skip the walk (W, and D if A/D) */
	bool dirtied;		/* out, OK: this walk set the leaf's D bit (what PML logs) */
	u32 spp_wmask;		/* out, OK, SPP leaf: sub-pages writable without a walk */
};

enum kmmu_walk_result kmmu_walk_tdp(const struct kmmu_spte_fmt *f, u64 *root_pt,
				    struct kmmu_walk *w);

#endif /* KMMU_WALKER_H */
