/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The binary statistics fd of a VM or a vCPU (KMMU_GET_STATS_FD), laid out
 * as KVM_GET_STATS_FD's.
 */
#ifndef KMMU_STATS_H
#define KMMU_STATS_H

#include "kmmu.h"

/* What one stats fd reads: a VM's statistics, or one of its vCPUs'. */
struct kmmu_stats_fd {
	struct kmmu *kmmu;		/* holds a reference to it */
	struct kmmu_vcpu *vcpu;		/* NULL for the VM's own */
};

struct kmmu_stats_fd *kmmu_stats_fd_open(struct kmmu *kmmu, struct kmmu_vcpu *vcpu);
void kmmu_stats_fd_release(struct kmmu_stats_fd *sf);
long kmmu_stats_read(struct kmmu_stats_fd *sf, unsigned long ubuf, size_t size, u64 *pos);

#endif /* KMMU_STATS_H */
