/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The kernel's own headers, for the MMU core built into kmmu.ko.  The core
 * uses the kernel's vocabulary directly; only the few things the user host
 * needs to spell differently get a name here.
 */
#ifndef KMMU_OS_LINUX_H
#define KMMU_OS_LINUX_H

#include <linux/atomic.h>
#include <linux/bitops.h>
#include <linux/build_bug.h>
#include <linux/errno.h>
#include <linux/kernel.h>
#include <linux/list.h>
#include <linux/lockdep.h>
#include <linux/minmax.h>
#include <linux/mutex.h>
#include <linux/rculist.h>
#include <linux/rcupdate.h>
#include <linux/refcount.h>
#include <linux/sched.h>
#include <linux/spinlock.h>
#include <linux/srcu.h>
#include <linux/string.h>
#include <linux/types.h>

/* rwlock_t needs no teardown in the kernel. */
static inline void rwlock_destroy(rwlock_t *lock)
{
}

#endif /* KMMU_OS_LINUX_H */
