/* SPDX-License-Identifier: GPL-2.0 */
/* Per-vCPU dirty rings (KMMU_CAP_DIRTY_LOG_RING); see dirty_ring.c. */
#ifndef KMMU_DIRTY_RING_H
#define KMMU_DIRTY_RING_H

#include "kmmu.h"

struct kmmu_memory_slot;

int kmmu_dirty_ring_enable(struct kmmu *kmmu, u64 bytes);
int kmmu_dirty_ring_alloc(struct kmmu_vcpu *vcpu);
void kmmu_dirty_ring_free(struct kmmu_vcpu *vcpu);
bool kmmu_dirty_ring_soft_full(struct kmmu_vcpu *vcpu);
void kmmu_vcpu_mark_page_dirty(struct kmmu_vcpu *vcpu, const struct kmmu_memory_slot *slot,
			       gfn_t gfn);
long kmmu_reset_dirty_rings(struct kmmu *kmmu);
void *kmmu_dirty_ring_mmap(struct kmmu_vcpu *vcpu, unsigned long pgoff, size_t len);

#endif /* KMMU_DIRTY_RING_H */
