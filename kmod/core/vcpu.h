/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The software vCPU: it runs a workload of reads and writes through the
 * TDP tables, with a soft TLB, and exits as hardware would.
 */
#ifndef KMMU_VCPU_H
#define KMMU_VCPU_H

#include "kmmu.h"

/* Why a stay in guest mode ended (the software vCPU's chunk, or a VMRUN). */
enum kmmu_stop {
	STOP_CHUNK = 1,		/* ran its share, or an interrupt: come back after a resched point */
	STOP_FAULT,		/* the walk faulted: handle it and retry */
	STOP_RELOAD,		/* the root must be replaced */
	STOP_DONE,
	STOP_BUDGET,
	STOP_INTERNAL,
	STOP_RING_FULL,		/* the dirty ring reached its soft limit */
	STOP_NESTED_WALK,	/* a nested access missed the TLB: walk L1's tables */
};

struct kmmu_page_fault;

struct kmmu_vcpu *kmmu_create_vcpu(struct kmmu *kmmu, int id, int *err);
void kmmu_unpublish_vcpu(struct kmmu_vcpu *vcpu);
void kmmu_destroy_vcpu(struct kmmu_vcpu *vcpu);
bool kmmu_vcpu_get_exclusive(struct kmmu_vcpu *vcpu);
void kmmu_vcpu_put_exclusive(struct kmmu_vcpu *vcpu);
void kmmu_set_workload(struct kmmu_vcpu *vcpu, const struct kmmu_workload *wl);
int kmmu_run_vcpu(struct kmmu_vcpu *vcpu, struct kmmu_run *run);
void kmmu_kick_vcpu(struct kmmu_vcpu *vcpu);

/* Hardware vCPUs (KMMU_CAP_HW_VCPU): the core's side. */
int kmmu_hw_vcpu_enable(struct kmmu *kmmu, u64 arg);
bool kmmu_hw_vcpu_possible(struct kmmu *kmmu);
int kmmu_vcpu_hw_enter(struct kmmu_vcpu *vcpu, int cpu, bool *flush);
void kmmu_vcpu_hw_exit(struct kmmu_vcpu *vcpu);

#endif /* KMMU_VCPU_H */
