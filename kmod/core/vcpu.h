/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The software vCPU: it runs a workload of reads and writes through the
 * TDP tables, with a soft TLB, and exits as hardware would.
 */
#ifndef KMMU_VCPU_H
#define KMMU_VCPU_H

#include "kmmu.h"

struct kmmu_vcpu *kmmu_create_vcpu(struct kmmu *kmmu, int id, int *err);
void kmmu_unpublish_vcpu(struct kmmu_vcpu *vcpu);
void kmmu_destroy_vcpu(struct kmmu_vcpu *vcpu);
bool kmmu_vcpu_get_exclusive(struct kmmu_vcpu *vcpu);
void kmmu_vcpu_put_exclusive(struct kmmu_vcpu *vcpu);
void kmmu_set_workload(struct kmmu_vcpu *vcpu, const struct kmmu_workload *wl);
int kmmu_run_vcpu(struct kmmu_vcpu *vcpu, struct kmmu_run *run);
void kmmu_kick_vcpu(struct kmmu_vcpu *vcpu);

#endif /* KMMU_VCPU_H */
