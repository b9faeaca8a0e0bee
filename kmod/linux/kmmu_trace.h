/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kmmu's tracepoints: a fault and what it came to, every SPTE change, a
 * zap of a gfn range, a remote TLB flush, an aging pass.  Under
 * /sys/kernel/tracing/events/kmmu/, for trace-cmd and perf trace; the
 * core reaches them through os_trace_*() in os_linux.h.
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM kmmu

#if !defined(_KMMU_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define _KMMU_TRACE_H

#include <linux/tracepoint.h>

TRACE_EVENT(kmmu_fault,
	TP_PROTO(int vcpu_id, u64 gpa, bool write, int ret),
	TP_ARGS(vcpu_id, gpa, write, ret),

	TP_STRUCT__entry(
		__field(int, vcpu_id)
		__field(u64, gpa)
		__field(bool, write)
		__field(int, ret)
	),

	TP_fast_assign(
		__entry->vcpu_id = vcpu_id;
		__entry->gpa = gpa;
		__entry->write = write;
		__entry->ret = ret;
	),

	TP_printk("vcpu %d gpa %llx %s ret %d", __entry->vcpu_id, __entry->gpa,
		  __entry->write ? "write" : "read", __entry->ret)
);

TRACE_EVENT(kmmu_spte_changed,
	TP_PROTO(int as_id, u64 gfn, int level, u64 old_spte, u64 new_spte),
	TP_ARGS(as_id, gfn, level, old_spte, new_spte),

	TP_STRUCT__entry(
		__field(int, as_id)
		__field(u64, gfn)
		__field(int, level)
		__field(u64, old_spte)
		__field(u64, new_spte)
	),

	TP_fast_assign(
		__entry->as_id = as_id;
		__entry->gfn = gfn;
		__entry->level = level;
		__entry->old_spte = old_spte;
		__entry->new_spte = new_spte;
	),

	TP_printk("as %d gfn %llx level %d old %llx new %llx", __entry->as_id, __entry->gfn,
		  __entry->level, __entry->old_spte, __entry->new_spte)
);

TRACE_EVENT(kmmu_zap,
	TP_PROTO(int as_id, u64 start, u64 end, bool all),
	TP_ARGS(as_id, start, end, all),

	TP_STRUCT__entry(
		__field(int, as_id)
		__field(u64, start)
		__field(u64, end)
		__field(bool, all)
	),

	TP_fast_assign(
		__entry->as_id = as_id;
		__entry->start = start;
		__entry->end = end;
		__entry->all = all;
	),

	TP_printk("%s as %d gfn %llx-%llx", __entry->all ? "all" : "leaves", __entry->as_id,
		  __entry->start, __entry->end)
);

TRACE_EVENT(kmmu_flush,
	TP_PROTO(int vm_pid),
	TP_ARGS(vm_pid),

	TP_STRUCT__entry(
		__field(int, vm_pid)
	),

	TP_fast_assign(
		__entry->vm_pid = vm_pid;
	),

	TP_printk("vm of pid %d", __entry->vm_pid)
);

TRACE_EVENT(kmmu_age,
	TP_PROTO(int as_id, u64 start, u64 end, bool clear, bool lockless, u64 young, u64 old),
	TP_ARGS(as_id, start, end, clear, lockless, young, old),

	TP_STRUCT__entry(
		__field(int, as_id)
		__field(u64, start)
		__field(u64, end)
		__field(bool, clear)
		__field(bool, lockless)
		__field(u64, young)
		__field(u64, old)
	),

	TP_fast_assign(
		__entry->as_id = as_id;
		__entry->start = start;
		__entry->end = end;
		__entry->clear = clear;
		__entry->lockless = lockless;
		__entry->young = young;
		__entry->old = old;
	),

	TP_printk("as %d gfn %llx-%llx %s %s young %llu old %llu", __entry->as_id,
		  __entry->start, __entry->end, __entry->clear ? "clear" : "test",
		  __entry->lockless ? "lockless" : "locked", __entry->young, __entry->old)
);

#endif /* _KMMU_TRACE_H */

/* Outside the guard: define_trace.h reads this file again. */
#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE kmmu_trace
#include <trace/define_trace.h>
