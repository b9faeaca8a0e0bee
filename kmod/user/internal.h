/* SPDX-License-Identifier: GPL-2.0 */
/* What the parts of the userspace host share with each other. */
#ifndef KMMU_USER_INTERNAL_H
#define KMMU_USER_INTERNAL_H

#include "../core/kmmu.h"

void kmmu_user_thread_enter(void);

#endif /* KMMU_USER_INTERNAL_H */
