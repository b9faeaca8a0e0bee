/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The ioctl entry points, shared by both hosts: the module's file
 * operations and the user host's fd table call these and nothing else.
 */
#ifndef KMMU_API_H
#define KMMU_API_H

#include "kmmu.h"

long kmmu_dev_ioctl(unsigned int cmd, unsigned long arg);
long kmmu_vm_ioctl(struct kmmu *kmmu, unsigned int cmd, unsigned long arg);
long kmmu_vcpu_ioctl(struct kmmu_vcpu *vcpu, unsigned int cmd, unsigned long arg);
void kmmu_vm_release(struct kmmu *kmmu);
void kmmu_vcpu_release(struct kmmu_vcpu *vcpu);

#endif /* KMMU_API_H */
