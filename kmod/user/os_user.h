/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The kernel vocabulary the MMU core is written in, provided in userspace
 * over liburcu, pthreads and the compiler's __atomic builtins.  Only the
 * core's needs are covered; semantics follow the kernel's (full barriers
 * around value-returning atomics, relaxed plain ones).
 */
#ifndef KMMU_OS_USER_H
#define KMMU_OS_USER_H

#ifndef _LGPL_SOURCE
#define _LGPL_SOURCE
#endif
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <urcu.h>

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
/* As in the kernel (and in <linux/types.h>'s __u64): long long, not long. */
typedef unsigned long long u64;
typedef int16_t s16;
typedef int32_t s32;
typedef long long s64;

#ifdef __SANITIZE_THREAD__
/*
 * liburcu is not built with ThreadSanitizer, which therefore sees neither
 * its publication nor its grace periods; both are told here, so that TSan
 * sees RCU's ordering and reports every race that is left.
 *
 * Publication: liburcu's is a barrier and a volatile store, which TSan
 * takes for plain accesses.  Release/acquire instead: what was built before
 * a pointer was published happens-before what is read through it.
 *
 * Grace periods: every reader releases one sync object as it leaves its
 * read section; synchronize_rcu() acquires it when it returns, and so does
 * each call_rcu() callback before it runs (kmmu_tsan_call_rcu()): what a
 * reader did happens-before the free that waited for it.
 *
 * Here, before any inline helper below uses them.
 */
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
extern char kmmu_tsan_grace_period;
struct rcu_head;
void kmmu_tsan_call_rcu(struct rcu_head *head, void (*fn)(struct rcu_head *head));

#undef rcu_dereference
#undef rcu_assign_pointer
#define rcu_dereference(p)		__atomic_load_n(&(p), __ATOMIC_ACQUIRE)
#define rcu_assign_pointer(p, v)	__atomic_store_n(&(p), (v), __ATOMIC_RELEASE)
#undef rcu_read_unlock
#define rcu_read_unlock()		\
	do {				\
		__tsan_release(&kmmu_tsan_grace_period);	\
		urcu_memb_read_unlock();	\
	} while (0)
#undef synchronize_rcu
#define synchronize_rcu()		\
	do {				\
		urcu_memb_synchronize_rcu();	\
		__tsan_acquire(&kmmu_tsan_grace_period);	\
	} while (0)
#undef call_rcu
#define call_rcu(head, fn)		kmmu_tsan_call_rcu(head, fn)
#endif

#ifndef EHWPOISON
#define EHWPOISON 133
#endif

#define likely(x)		__builtin_expect(!!(x), 1)
#define unlikely(x)		__builtin_expect(!!(x), 0)
#ifndef __always_inline
#define __always_inline		inline __attribute__((always_inline))
#endif
#define __must_check		__attribute__((warn_unused_result))
#define __maybe_unused		__attribute__((unused))
#define __aligned(x)		__attribute__((aligned(x)))
#define __rcu
#define __must_hold(x)
#define __user

#define BIT(nr)			(1UL << (nr))
#define BIT_ULL(nr)		(1ULL << (nr))
#define GENMASK_ULL(h, l)	((~0ULL << (l)) & (~0ULL >> (63 - (h))))
#define BITS_PER_LONG		64
#define ARRAY_SIZE(a)		(sizeof(a) / sizeof((a)[0]))
#define BUILD_BUG_ON(c)		_Static_assert(!(c), #c)
/* The kernel's static_assert, whose message is optional. */
#undef static_assert
#define static_assert(expr, ...)	__static_assert(expr, ##__VA_ARGS__, #expr)
#define __static_assert(expr, msg, ...)	_Static_assert(expr, msg)
#define ALIGN(x, a)		(((x) + (a) - 1) & ~((__typeof__(x))(a) - 1))
#define ALIGN_DOWN(x, a)	((x) & ~((__typeof__(x))(a) - 1))
#define IS_ALIGNED(x, a)	(((x) & ((__typeof__(x))(a) - 1)) == 0)
#define DIV_ROUND_UP(n, d)	(((n) + (d) - 1) / (d))
#define min(a, b)		((a) < (b) ? (a) : (b))
#define max(a, b)		((a) > (b) ? (a) : (b))
#define min_t(t, a, b)		((t)(a) < (t)(b) ? (t)(a) : (t)(b))
#define clamp_t(t, v, lo, hi)	min_t(t, max_t(t, v, lo), hi)
#define __ffs(w)		((unsigned long)__builtin_ctzl(w))
#define __fls(w)		((unsigned long)(BITS_PER_LONG - 1 - __builtin_clzl(w)))
#define max_t(t, a, b)		((t)(a) > (t)(b) ? (t)(a) : (t)(b))
#define container_of(p, t, m)	((t *)((char *)(p) - offsetof(t, m)))
#define fallthrough		__attribute__((__fallthrough__))

/* The kernel's strscpy(): always terminated, -E2BIG when cut short. */
static inline long strscpy(char *dst, const char *src, size_t size)
{
	size_t n = strnlen(src, size);

	if (!size)
		return -E2BIG;
	if (n == size) {
		memcpy(dst, src, size - 1);
		dst[size - 1] = 0;
		return -E2BIG;
	}
	memcpy(dst, src, n + 1);
	return n;
}

static inline bool mem_is_zero(const void *p, size_t size)
{
	const u8 *b = p;
	size_t i;

	for (i = 0; i < size; i++)
		if (b[i])
			return false;
	return true;
}

/* ---- logging and assertions ---- */

/* Counts WARNs so the user host's exit check can fail a test that hit one. */
void kmmu_user_warn(const char *file, int line, const char *cond);

#define pr_err(fmt, ...)	fprintf(stderr, "kmmu: " fmt, ##__VA_ARGS__)
#define pr_warn(fmt, ...)	fprintf(stderr, "kmmu: " fmt, ##__VA_ARGS__)
#define pr_info(fmt, ...)	fprintf(stderr, "kmmu: " fmt, ##__VA_ARGS__)
#define pr_debug(fmt, ...)	do { } while (0)

#define WARN_ON(c) ({							\
	bool __c = !!(c);						\
	if (unlikely(__c))						\
		kmmu_user_warn(__FILE__, __LINE__, #c);			\
	unlikely(__c);							\
})
#define WARN_ON_ONCE(c)		WARN_ON(c)

/* ---- ordering and atomics ---- */

#define READ_ONCE(x)		__atomic_load_n(&(x), __ATOMIC_RELAXED)
#define WRITE_ONCE(x, v)	__atomic_store_n(&(x), (v), __ATOMIC_RELAXED)
#define smp_mb()		__atomic_thread_fence(__ATOMIC_SEQ_CST)
#define smp_rmb()		__atomic_thread_fence(__ATOMIC_ACQUIRE)
#define smp_wmb()		__atomic_thread_fence(__ATOMIC_RELEASE)
#define smp_load_acquire(p)	__atomic_load_n(p, __ATOMIC_ACQUIRE)
#define smp_store_release(p, v)	__atomic_store_n(p, v, __ATOMIC_RELEASE)
#define smp_store_mb(x, v)	__atomic_store_n(&(x), (v), __ATOMIC_SEQ_CST)
#define xchg(p, v)		__atomic_exchange_n(p, v, __ATOMIC_SEQ_CST)
/*
 * A spinning thread here may be waiting for one the OS has preempted (a
 * vCPU in guest mode, which the kernel would never preempt): pause, and
 * now and then give the CPU away.
 */
void cpu_relax(void);

/* Kernel semantics: on failure *old is updated with the current value. */
static inline bool try_cmpxchg64(u64 *ptr, u64 *old, u64 new)
{
	return __atomic_compare_exchange_n(ptr, old, new, false,
					   __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

typedef struct { int counter; } atomic_t;
typedef struct { s64 counter; } atomic64_t;

#define ATOMIC_INIT(i)			{ (i) }
#define atomic_read(v)			READ_ONCE((v)->counter)
#define atomic_set(v, i)		WRITE_ONCE((v)->counter, (i))
#define atomic_inc(v)			((void)__atomic_add_fetch(&(v)->counter, 1, __ATOMIC_RELAXED))
#define atomic_dec(v)			((void)__atomic_sub_fetch(&(v)->counter, 1, __ATOMIC_RELAXED))
#define atomic_inc_return(v)		__atomic_add_fetch(&(v)->counter, 1, __ATOMIC_SEQ_CST)
#define atomic_dec_and_test(v)		(__atomic_sub_fetch(&(v)->counter, 1, __ATOMIC_SEQ_CST) == 0)
#define atomic_set_release(v, i)	__atomic_store_n(&(v)->counter, (i), __ATOMIC_RELEASE)
static inline int atomic_cmpxchg_acquire(atomic_t *v, int old, int new)
{
	__atomic_compare_exchange_n(&v->counter, &old, new, false, __ATOMIC_ACQUIRE,
				    __ATOMIC_ACQUIRE);
	return old;
}
#define atomic64_read(v)		READ_ONCE((v)->counter)
#define atomic64_set(v, i)		WRITE_ONCE((v)->counter, (i))
#define atomic64_add(i, v)		((void)__atomic_add_fetch(&(v)->counter, (i), __ATOMIC_RELAXED))
#define atomic64_inc(v)			atomic64_add(1, v)
#define atomic64_sub(i, v)		((void)__atomic_sub_fetch(&(v)->counter, (i), __ATOMIC_RELAXED))
#define atomic64_fetch_and(i, v)	((u64)__atomic_fetch_and(&(v)->counter, (s64)(i), __ATOMIC_SEQ_CST))
static inline bool atomic64_try_cmpxchg(atomic64_t *v, s64 *old, s64 new)
{
	return __atomic_compare_exchange_n(&v->counter, old, new, false, __ATOMIC_SEQ_CST,
					   __ATOMIC_SEQ_CST);
}

/* refcount_t, without the saturation the kernel adds. */
typedef atomic_t refcount_t;
#define refcount_set(r, i)		atomic_set(r, i)
#define refcount_read(r)		atomic_read(r)
#define refcount_inc(r)			atomic_inc(r)
#define refcount_dec_and_test(r)	atomic_dec_and_test(r)
static inline bool refcount_dec_not_one(refcount_t *r)
{
	int old = atomic_read(r);

	do {
		if (old == 1)
			return false;
	} while (!__atomic_compare_exchange_n(&r->counter, &old, old - 1, false,
					      __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
	return true;
}

static inline bool refcount_inc_not_zero(refcount_t *r)
{
	int old = atomic_read(r);

	do {
		if (!old)
			return false;
	} while (!__atomic_compare_exchange_n(&r->counter, &old, old + 1, false,
					      __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
	return true;
}

/* ---- bit operations on unsigned long arrays ---- */

#define BIT_WORD(nr)		((nr) / BITS_PER_LONG)
#define BIT_MASK(nr)		(1UL << ((nr) % BITS_PER_LONG))

static inline void set_bit(unsigned long nr, unsigned long *addr)
{
	__atomic_fetch_or(&addr[BIT_WORD(nr)], BIT_MASK(nr), __ATOMIC_SEQ_CST);
}

static inline void __set_bit(unsigned long nr, unsigned long *addr)
{
	addr[BIT_WORD(nr)] |= BIT_MASK(nr);
}

/* Set bits [start, start + n) of @map, a word at a time. */
static inline void bitmap_set(unsigned long *map, unsigned long start, unsigned long n)
{
	unsigned long end = start + n;

	while (start < end) {
		unsigned long bit = start % BITS_PER_LONG;
		unsigned long span = BITS_PER_LONG - bit < end - start ? BITS_PER_LONG - bit :
									 end - start;

		map[BIT_WORD(start)] |= span == BITS_PER_LONG ? ~0UL : ((1UL << span) - 1) << bit;
		start += span;
	}
}

static inline void clear_bit(unsigned long nr, unsigned long *addr)
{
	__atomic_fetch_and(&addr[BIT_WORD(nr)], ~BIT_MASK(nr), __ATOMIC_SEQ_CST);
}

static inline bool test_bit(unsigned long nr, const unsigned long *addr)
{
	return READ_ONCE(addr[BIT_WORD(nr)]) & BIT_MASK(nr);
}

static inline bool test_bit_acquire(unsigned long nr, const unsigned long *addr)
{
	return __atomic_load_n(&addr[BIT_WORD(nr)], __ATOMIC_ACQUIRE) & BIT_MASK(nr);
}

static inline void clear_bit_unlock(unsigned long nr, unsigned long *addr)
{
	__atomic_fetch_and(&addr[BIT_WORD(nr)], ~BIT_MASK(nr), __ATOMIC_RELEASE);
}

typedef struct { long counter; } atomic_long_t;

#define atomic_long_read(v)		READ_ONCE((v)->counter)
#define atomic_long_read_acquire(v)	smp_load_acquire(&(v)->counter)
#define atomic_long_set(v, i)		WRITE_ONCE((v)->counter, (i))
#define atomic_long_set_release(v, i)	__atomic_store_n(&(v)->counter, (i), __ATOMIC_RELEASE)
/* Kernel semantics: on failure *old is updated with the current value. */
static inline bool atomic_long_try_cmpxchg_acquire(atomic_long_t *v, long *old, long new)
{
	return __atomic_compare_exchange_n(&v->counter, old, new, false, __ATOMIC_ACQUIRE,
					   __ATOMIC_ACQUIRE);
}

/*
 * No preemption to turn off here: a thread spinning on a holder that the
 * OS preempted gives its CPU away in cpu_relax() instead.
 */
#define preempt_disable()		do { } while (0)
#define preempt_enable()		do { } while (0)

static inline void atomic_long_or(unsigned long mask, atomic_long_t *v)
{
	__atomic_fetch_or(&v->counter, mask, __ATOMIC_SEQ_CST);
}

static inline unsigned long atomic_long_fetch_andnot(unsigned long mask, atomic_long_t *v)
{
	return __atomic_fetch_and(&v->counter, ~mask, __ATOMIC_SEQ_CST);
}

static inline bool test_and_clear_bit(unsigned long nr, unsigned long *addr)
{
	return __atomic_fetch_and(&addr[BIT_WORD(nr)], ~BIT_MASK(nr),
				  __ATOMIC_SEQ_CST) & BIT_MASK(nr);
}

/* ---- lists (the subset of <linux/list.h> and <linux/rculist.h> used) ---- */

struct list_head {
	struct list_head *next, *prev;
};

#define LIST_HEAD_INIT(n)	{ &(n), &(n) }
static inline void INIT_LIST_HEAD(struct list_head *l)
{
	l->next = l;
	l->prev = l;
}

static inline bool list_empty(const struct list_head *h)
{
	return READ_ONCE(h->next) == h;
}

static inline void list_add_rcu(struct list_head *n, struct list_head *h)
{
	n->next = h->next;
	n->prev = h;
	rcu_assign_pointer(h->next, n);
	n->next->prev = n;
}

static inline void list_del_rcu(struct list_head *e)
{
	e->next->prev = e->prev;
	WRITE_ONCE(e->prev->next, e->next);
}

#define list_next_rcu(l)	((l)->next)
#define list_add(n, h)		list_add_rcu(n, h)
#define list_del(e)		list_del_rcu(e)
#define list_entry(p, t, m)	container_of(p, t, m)

#define list_for_each_entry(pos, head, member)					\
	for (pos = list_entry((head)->next, __typeof__(*pos), member);		\
	     &pos->member != (head);						\
	     pos = list_entry(pos->member.next, __typeof__(*pos), member))

#define list_for_each_entry_safe(pos, n, head, member)				\
	for (pos = list_entry((head)->next, __typeof__(*pos), member),		\
	     n = list_entry(pos->member.next, __typeof__(*pos), member);	\
	     &pos->member != (head);						\
	     pos = n, n = list_entry(n->member.next, __typeof__(*n), member))

#define list_for_each_entry_rcu(pos, head, member, cond)			\
	for (pos = list_entry(rcu_dereference((head)->next), __typeof__(*pos), member); \
	     &pos->member != (head);						\
	     pos = list_entry(rcu_dereference(pos->member.next), __typeof__(*pos), member))

/* ---- locks ---- */

/*
 * rwlock_t: readers announce themselves in one of several counters, each
 * on its own cache line, so that faulting vCPUs on different CPUs do not
 * bounce one line the way a single reader count would; a writer raises
 * @writer (which stops new readers, so a stream of faults cannot starve a
 * zap) and waits for every counter to drain.  Writers queue on @wmutex.
 * @waiters feeds rwlock_needbreak().
 */
#define RWLOCK_READER_SLOTS	16

typedef struct {
	struct {
		int count;
	} __attribute__((aligned(64))) readers[RWLOCK_READER_SLOTS];
	int writer;
	int waiters;
	pthread_mutex_t wmutex;
} rwlock_t;

void rwlock_init(rwlock_t *l);
void rwlock_destroy(rwlock_t *l);
void read_lock(rwlock_t *l);
void read_unlock(rwlock_t *l);
void write_lock(rwlock_t *l);
void write_unlock(rwlock_t *l);
bool rwlock_needbreak(rwlock_t *l);
void cond_resched_rwlock_read(rwlock_t *l);
void cond_resched_rwlock_write(rwlock_t *l);
bool kmmu_user_rwlock_held_write(rwlock_t *l);
bool kmmu_user_rwlock_held(rwlock_t *l);
/* The calling thread holds an rwlock (the core has one: mmu_lock). */
bool kmmu_user_holds_rwlock(void);

#define lockdep_assert_held_write(l)	WARN_ON_ONCE(!kmmu_user_rwlock_held_write(l))
#define lockdep_assert_held_read(l)	WARN_ON_ONCE(!kmmu_user_rwlock_held(l))
#define lockdep_assert_held(l)		WARN_ON_ONCE(!kmmu_user_rwlock_held(l))

typedef pthread_mutex_t spinlock_t;
#define spin_lock_init(l)	pthread_mutex_init(l, NULL)
#define spin_lock(l)		pthread_mutex_lock(l)
#define spin_unlock(l)		pthread_mutex_unlock(l)
#define spin_lock_destroy(l)	pthread_mutex_destroy(l)

struct mutex {
	pthread_mutex_t m;
};
#define mutex_init(l)		pthread_mutex_init(&(l)->m, NULL)
#define mutex_lock(l)		pthread_mutex_lock(&(l)->m)
#define mutex_unlock(l)		pthread_mutex_unlock(&(l)->m)
#define mutex_destroy(l)	pthread_mutex_destroy(&(l)->m)

/* ---- RCU and SRCU (liburcu's memb flavor; both map onto it) ---- */

struct srcu_struct {
	int unused;
};
#define init_srcu_struct(s)	((s)->unused = 0)
#define cleanup_srcu_struct(s)	do { } while (0)
static inline int srcu_read_lock(struct srcu_struct *s)
{
	(void)s;
	rcu_read_lock();
	return 0;
}

static inline void srcu_read_unlock(struct srcu_struct *s, int idx)
{
	(void)s;
	(void)idx;
	rcu_read_unlock();
}

#define synchronize_srcu(s)		synchronize_rcu()
#define call_srcu(s, head, fn)		((void)(s), call_rcu(head, fn))
#define srcu_barrier(s)			((void)(s), rcu_barrier())

#define srcu_dereference(p, s)		rcu_dereference(p)
#define rcu_dereference_protected(p, c)	(p)
#define rcu_access_pointer(p)		READ_ONCE(p)
#define rcu_dereference_raw(p)		rcu_dereference(p)
#define RCU_INIT_POINTER(p, v)		WRITE_ONCE(p, v)

/* ---- tracing: the Linux host's tracepoints; nothing here ---- */

static inline void os_trace_fault(int vcpu_id, u64 gpa, bool write, int ret)
{
}

static inline void os_trace_spte_changed(int as_id, u64 gfn, int level, u64 old_spte,
					 u64 new_spte)
{
}

static inline void os_trace_zap(int as_id, u64 start, u64 end, bool all)
{
}

static inline void os_trace_flush(int vm_pid)
{
}

static inline void os_trace_age(int as_id, u64 start, u64 end, bool clear, bool lockless,
				u64 young, u64 old)
{
}

/* ---- scheduling ---- */

bool need_resched(void);
void cond_resched(void);
#define might_sleep()		do { } while (0)

#endif /* KMMU_OS_USER_H */
