/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The kernel's own headers, for the MMU core built into kmmu.ko.  The core
 * uses the kernel's vocabulary directly; only the few things the user host
 * needs to spell differently get a name here.
 */
#ifndef KMMU_OS_LINUX_H
#define KMMU_OS_LINUX_H

#include <linux/atomic.h>
#include <linux/bitmap.h>
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

#include "kmmu_trace.h"

/* rwlock_t needs no teardown in the kernel. */
static inline void rwlock_destroy(rwlock_t *lock)
{
}

/* os.h's tracing hooks: the tracepoints, free while they are off. */
static inline void os_trace_fault(int vcpu_id, u64 gpa, bool write, int ret)
{
	trace_kmmu_fault(vcpu_id, gpa, write, ret);
}

static inline void os_trace_spte_changed(int as_id, u64 gfn, int level, u64 old_spte,
					 u64 new_spte)
{
	trace_kmmu_spte_changed(as_id, gfn, level, old_spte, new_spte);
}

static inline void os_trace_zap(int as_id, u64 start, u64 end, bool all)
{
	trace_kmmu_zap(as_id, start, end, all);
}

static inline void os_trace_flush(int vm_pid)
{
	trace_kmmu_flush(vm_pid);
}

static inline void os_trace_age(int as_id, u64 start, u64 end, bool clear, bool lockless,
				u64 young, u64 old)
{
	trace_kmmu_age(as_id, start, end, clear, lockless, young, old);
}

#endif /* KMMU_OS_LINUX_H */
