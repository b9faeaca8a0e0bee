// SPDX-License-Identifier: GPL-2.0
/*
 * os.h for userspace: allocation with counting and failure injection,
 * page-table pages from a private arena (so a pfn leads back to its page
 * and its owner), locks, scheduling stand-ins and thread registration
 * with liburcu.
 */
#include <sched.h>
#include <unistd.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <time.h>

#include "../core/os.h"
#include "internal.h"
#include "kmmu_user.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define PT_POISON(p, n)	ASAN_POISON_MEMORY_REGION(p, n)
#define PT_UNPOISON(p)	ASAN_UNPOISON_MEMORY_REGION(p, KMMU_PAGE_SIZE)
#else
#define PT_POISON(p, n)	do { } while (0)
#define PT_UNPOISON(p)	do { } while (0)
#endif

static long warnings;
static long objects_alive;
static long pt_alive;
static long fail_countdown;
static long failed_allocs;
static long force_resched;

void kmmu_user_warn(const char *file, int line, const char *cond)
{
	__atomic_add_fetch(&warnings, 1, __ATOMIC_RELAXED);
	fprintf(stderr, "kmmu: WARNING at %s:%d: %s\n", file, line, cond);
}

long kmmu_user_warnings(void)
{
	return __atomic_load_n(&warnings, __ATOMIC_RELAXED);
}

/* ---- allocation shim ---- */

void kmmu_user_fail_nth(long n)
{
	__atomic_store_n(&fail_countdown, n, __ATOMIC_SEQ_CST);
}

long kmmu_user_failed_allocs(void)
{
	return __atomic_load_n(&failed_allocs, __ATOMIC_RELAXED);
}

static bool alloc_should_fail(void)
{
	long c = __atomic_load_n(&fail_countdown, __ATOMIC_RELAXED);

	while (c > 0) {
		if (__atomic_compare_exchange_n(&fail_countdown, &c, c - 1, false,
						__ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {
			if (c != 1)
				return false;
			__atomic_add_fetch(&failed_allocs, 1, __ATOMIC_RELAXED);
			return true;
		}
	}
	return false;
}

void *os_zalloc(size_t size)
{
	void *p;

	if (alloc_should_fail())
		return NULL;
	p = calloc(1, size);
	if (p)
		__atomic_add_fetch(&objects_alive, 1, __ATOMIC_RELAXED);
	return p;
}

void *os_ring_alloc(size_t size)
{
	void *p;

	if (alloc_should_fail())
		return NULL;
	p = aligned_alloc(KMMU_PAGE_SIZE, size);
	if (!p)
		return NULL;
	memset(p, 0, size);
	__atomic_add_fetch(&objects_alive, 1, __ATOMIC_RELAXED);
	return p;
}

void os_ring_free(void *p)
{
	os_free(p);
}

void os_free(void *p)
{
	if (!p)
		return;
	__atomic_sub_fetch(&objects_alive, 1, __ATOMIC_RELAXED);
	free(p);
}

long kmmu_user_objects_alive(void)
{
	kmmu_user_thread_enter();
	rcu_barrier();
	return __atomic_load_n(&objects_alive, __ATOMIC_RELAXED);
}

long kmmu_user_pt_pages_alive(void)
{
	kmmu_user_thread_enter();
	rcu_barrier();
	return __atomic_load_n(&pt_alive, __ATOMIC_RELAXED);
}

/*
 * Page-table pages come from one reserved arena: the pfn of a page is its
 * address >> 12, as for guest memory, and owners are kept in a parallel
 * array indexed by the page's place in the arena.
 */
#define PT_ARENA_SIZE	(16ULL << 30)
#define PT_ARENA_PAGES	(PT_ARENA_SIZE / KMMU_PAGE_SIZE)

static u8 *pt_arena;
static void **pt_owner;
static u64 pt_next;
static u64 *pt_free_list;
static pthread_mutex_t pt_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t pt_once = PTHREAD_ONCE_INIT;

static void pt_arena_init(void)
{
	int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;

	pt_arena = mmap(NULL, PT_ARENA_SIZE, PROT_READ | PROT_WRITE, flags, -1, 0);
	pt_owner = mmap(NULL, PT_ARENA_PAGES * sizeof(void *), PROT_READ | PROT_WRITE, flags,
			-1, 0);
	if (pt_arena == MAP_FAILED || pt_owner == MAP_FAILED) {
		fprintf(stderr, "kmmu: cannot reserve the page-table arena\n");
		abort();
	}
}

static u64 pt_index(u64 *pt)
{
	return ((u8 *)pt - pt_arena) / KMMU_PAGE_SIZE;
}

u64 *os_pt_alloc(void)
{
	u64 *pt;

	if (alloc_should_fail())
		return NULL;
	pthread_once(&pt_once, pt_arena_init);

	pthread_mutex_lock(&pt_lock);
	pt = pt_free_list;
	if (pt) {
		PT_UNPOISON(pt);
		pt_free_list = *(u64 **)pt;
	} else if (pt_next < PT_ARENA_PAGES) {
		pt = (u64 *)(pt_arena + pt_next++ * KMMU_PAGE_SIZE);
	}
	pthread_mutex_unlock(&pt_lock);
	if (!pt)
		return NULL;

	memset(pt, 0, KMMU_PAGE_SIZE);
	__atomic_add_fetch(&pt_alive, 1, __ATOMIC_RELAXED);
	return pt;
}

void os_pt_free(u64 *pt)
{
	WARN_ON(os_pt_owner(pt));
	pthread_mutex_lock(&pt_lock);
	*(u64 **)pt = pt_free_list;
	pt_free_list = pt;
	/* A walker that reads a freed table is a use-after-free: make ASan say so. */
	PT_POISON((u8 *)pt + sizeof(u64), KMMU_PAGE_SIZE - sizeof(u64));
	pthread_mutex_unlock(&pt_lock);
	__atomic_sub_fetch(&pt_alive, 1, __ATOMIC_RELAXED);
}

kmmu_pfn_t os_pt_to_pfn(u64 *pt)
{
	return (unsigned long)pt >> KMMU_PAGE_SHIFT;
}

u64 *os_pfn_to_pt(kmmu_pfn_t pfn)
{
	return (u64 *)(unsigned long)(pfn << KMMU_PAGE_SHIFT);
}

void os_pt_set_owner(u64 *pt, void *owner)
{
	__atomic_store_n(&pt_owner[pt_index(pt)], owner, __ATOMIC_RELEASE);
}

void *os_pt_owner(u64 *pt)
{
	return __atomic_load_n(&pt_owner[pt_index(pt)], __ATOMIC_ACQUIRE);
}

/* ---- locks ---- */

/* The locks this thread holds, for lockdep-style assertions. */
#define MAX_HELD	8
static __thread struct {
	rwlock_t *lock;
	bool write;
} held[MAX_HELD];
static __thread int nr_held;

static void held_push(rwlock_t *l, bool write)
{
	if (!WARN_ON(nr_held >= MAX_HELD)) {
		held[nr_held].lock = l;
		held[nr_held].write = write;
		nr_held++;
	}
}

static void held_pop(rwlock_t *l)
{
	int i;

	for (i = nr_held - 1; i >= 0; i--) {
		if (held[i].lock == l) {
			held[i] = held[--nr_held];
			return;
		}
	}
	WARN_ON(1);
}

bool kmmu_user_rwlock_held_write(rwlock_t *l)
{
	int i;

	for (i = 0; i < nr_held; i++)
		if (held[i].lock == l && held[i].write)
			return true;
	return false;
}

bool kmmu_user_holds_rwlock(void)
{
	return nr_held > 0;
}

bool kmmu_user_rwlock_held(rwlock_t *l)
{
	int i;

	for (i = 0; i < nr_held; i++)
		if (held[i].lock == l)
			return true;
	return false;
}

void rwlock_init(rwlock_t *l)
{
	memset(l, 0, sizeof(*l));
	pthread_mutex_init(&l->wmutex, NULL);
}

void rwlock_destroy(rwlock_t *l)
{
	pthread_mutex_destroy(&l->wmutex);
}

/* Spin a little, then let the holder (maybe on this CPU) run. */
static void rwlock_backoff(unsigned int *spins)
{
	if (++*spins < 64)
		cpu_relax();
	else
		sched_yield();
}

static int *rwlock_reader_slot(rwlock_t *l)
{
	return &l->readers[os_stat_shard() % RWLOCK_READER_SLOTS].count;
}

void read_lock(rwlock_t *l)
{
	int *count = rwlock_reader_slot(l);
	unsigned int spins = 0;

	for (;;) {
		/* Full barrier: the writer either sees us, or we see it. */
		__atomic_add_fetch(count, 1, __ATOMIC_SEQ_CST);
		if (!__atomic_load_n(&l->writer, __ATOMIC_SEQ_CST))
			break;
		__atomic_sub_fetch(count, 1, __ATOMIC_SEQ_CST);
		__atomic_add_fetch(&l->waiters, 1, __ATOMIC_SEQ_CST);
		while (__atomic_load_n(&l->writer, __ATOMIC_SEQ_CST))
			rwlock_backoff(&spins);
		__atomic_sub_fetch(&l->waiters, 1, __ATOMIC_SEQ_CST);
	}
	held_push(l, false);
}

void read_unlock(rwlock_t *l)
{
	held_pop(l);
	__atomic_sub_fetch(rwlock_reader_slot(l), 1, __ATOMIC_RELEASE);
}

void write_lock(rwlock_t *l)
{
	unsigned int spins = 0;
	int i;

	if (pthread_mutex_trylock(&l->wmutex)) {
		__atomic_add_fetch(&l->waiters, 1, __ATOMIC_SEQ_CST);
		pthread_mutex_lock(&l->wmutex);
		__atomic_sub_fetch(&l->waiters, 1, __ATOMIC_SEQ_CST);
	}
	__atomic_store_n(&l->writer, 1, __ATOMIC_SEQ_CST);
	for (i = 0; i < RWLOCK_READER_SLOTS; i++)
		while (__atomic_load_n(&l->readers[i].count, __ATOMIC_ACQUIRE))
			rwlock_backoff(&spins);
	held_push(l, true);
}

void write_unlock(rwlock_t *l)
{
	held_pop(l);
	__atomic_store_n(&l->writer, 0, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&l->wmutex);
}

/* A holder should let go: readers or writers wait, or (for a reader) a writer does. */
bool rwlock_needbreak(rwlock_t *l)
{
	if (__atomic_load_n(&l->waiters, __ATOMIC_RELAXED) > 0)
		return true;
	/* Checked per step of every walk: the cheap loads first. */
	return __atomic_load_n(&l->writer, __ATOMIC_RELAXED) && !kmmu_user_rwlock_held_write(l);
}

void cond_resched_rwlock_read(rwlock_t *l)
{
	read_unlock(l);
	sched_yield();
	read_lock(l);
}

void cond_resched_rwlock_write(rwlock_t *l)
{
	write_unlock(l);
	sched_yield();
	write_lock(l);
}

/* ---- race points ---- */

static kmmu_user_race_fn race_fn;
static void *race_data;
int os_race_armed;

void kmmu_user_set_race_hook(kmmu_user_race_fn fn, void *data)
{
	__atomic_store_n(&race_data, data, __ATOMIC_RELAXED);
	__atomic_store_n(&race_fn, fn, __ATOMIC_RELEASE);
	__atomic_store_n(&os_race_armed, fn != NULL, __ATOMIC_RELEASE);
}

void os_race_point_hook(struct kmmu *kmmu, enum kmmu_race_point p, gfn_t gfn)
{
	kmmu_user_race_fn fn = __atomic_load_n(&race_fn, __ATOMIC_ACQUIRE);

	if (fn)
		fn(kmmu, p, gfn, __atomic_load_n(&race_data, __ATOMIC_RELAXED));
}

/* ---- scheduling ---- */

void kmmu_user_force_resched(long n)
{
	__atomic_store_n(&force_resched, n, __ATOMIC_SEQ_CST);
}

bool need_resched(void)
{
	long n = __atomic_load_n(&force_resched, __ATOMIC_RELAXED);

	while (n > 0)
		if (__atomic_compare_exchange_n(&force_resched, &n, n - 1, false,
						__ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
			return true;
	return false;
}

void cond_resched(void)
{
}

void cpu_relax(void)
{
	static __thread unsigned int spins;

	if (++spins % 64)
		__builtin_ia32_pause();
	else
		sched_yield();
}

void os_guest_enter(struct kmmu_vcpu *vcpu)
{
	(void)vcpu;
}

void os_guest_exit(struct kmmu_vcpu *vcpu)
{
	(void)vcpu;
}

bool os_signal_pending(void)
{
	return false;
}

bool os_need_resched(void)
{
	return false;
}

/* ---- os.h: hardware vCPUs, which the user host does not have ---- */

int os_hw_supported(void)
{
	return -EOPNOTSUPP;
}

int os_hw_vm_enable(struct kmmu *kmmu, unsigned long *hva)
{
	return -EOPNOTSUPP;
}

void os_hw_vm_disable(struct kmmu *kmmu)
{
}

int os_hw_vcpu_create(struct kmmu_vcpu *vcpu)
{
	return -EOPNOTSUPP;
}

void os_hw_vcpu_destroy(struct kmmu_vcpu *vcpu)
{
}

void os_hw_set_workload(struct kmmu_vcpu *vcpu)
{
}

void os_hw_complete_mmio(struct kmmu_vcpu *vcpu, u64 data)
{
}

int os_hw_vcpu_run(struct kmmu_vcpu *vcpu, struct kmmu_run *run, struct kmmu_page_fault *fault)
{
	return -EOPNOTSUPP;
}

bool os_hw_kick_cpu(int cpu)
{
	return true;
}

int os_current_pid(void)
{
	return getpid();
}

u64 os_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

unsigned int os_stat_shard(void)
{
	static unsigned int next;
	static __thread unsigned int shard = ~0u;

	if (shard == ~0u)
		shard = __atomic_fetch_add(&next, 1, __ATOMIC_RELAXED);
	return shard;
}

/* ---- userspace memory named by ioctl arguments ---- */

#define USER_VA_LIMIT	(1ULL << 47)

bool os_user_range_ok(unsigned long uaddr, u64 size)
{
	return uaddr < USER_VA_LIMIT && size <= USER_VA_LIMIT - uaddr;
}

/*
 * Copies through the kernel, as copy_from_user() would fault: an address
 * that is not mapped, or not writable for a copy out, is -EFAULT here
 * instead of a crash, so callers (and fuzzers) see what the module does.
 */
static int user_copy(void *local, unsigned long uaddr, size_t size, bool to_user)
{
	struct iovec l = { .iov_base = local, .iov_len = size };
	struct iovec r = { .iov_base = (void *)uaddr, .iov_len = size };
	ssize_t n;

	if (!size)
		return 0;
	if (uaddr < KMMU_PAGE_SIZE || !os_user_range_ok(uaddr, size))
		return -EFAULT;
	n = to_user ? process_vm_writev(getpid(), &l, 1, &r, 1, 0) :
		      process_vm_readv(getpid(), &l, 1, &r, 1, 0);
	return n == (ssize_t)size ? 0 : -EFAULT;
}

int os_copy_from_user(void *dst, unsigned long uaddr, size_t size)
{
	return user_copy(dst, uaddr, size, false);
}

int os_copy_to_user(unsigned long uaddr, const void *src, size_t size)
{
	return user_copy((void *)src, uaddr, size, true);
}

/*
 * The kernel's copy_to_user() reads the words as they are; here each is read
 * once, atomically, into @buf, so that the sanitizers see the reads beside
 * the vCPUs' set_bit() as the atomic ones they are.
 */
int os_copy_bitmap_to_user(unsigned long uaddr, const unsigned long *bitmap, unsigned long *buf,
			   size_t longs)
{
	size_t i;

	for (i = 0; i < longs; i++)
		buf[i] = READ_ONCE(bitmap[i]);
	return os_copy_to_user(uaddr, buf, longs * sizeof(long));
}

u32 os_host_spte_format(void)
{
	unsigned int eax = 0, ebx, ecx, edx;

	__asm__("cpuid" : "+a"(eax), "=b"(ebx), "=c"(ecx), "=d"(edx));
	/* "AuthenticAMD" and "HygonGenuine" have NPT; everything else is taken as EPT. */
	if (ebx == 0x68747541 || ebx == 0x6f677948)
		return KMMU_SPTE_FORMAT_NPT;
	return KMMU_SPTE_FORMAT_EPT;
}

u32 os_host_vm_flags(u32 format)
{
	return 0;
}

#ifdef __SANITIZE_THREAD__
/* See os_user.h: grace periods as ThreadSanitizer should see them. */
char kmmu_tsan_grace_period;

struct tsan_rcu {
	struct rcu_head head;
	struct rcu_head *real;
	void (*fn)(struct rcu_head *head);
};

static void tsan_rcu_callback(struct rcu_head *head)
{
	struct tsan_rcu *t = caa_container_of(head, struct tsan_rcu, head);

	/* liburcu's queue hands @t over where TSan cannot see: say so. */
	__tsan_acquire(t);
	__tsan_acquire(&kmmu_tsan_grace_period);
	t->fn(t->real);
	free(t);
}

void kmmu_tsan_call_rcu(struct rcu_head *head, void (*fn)(struct rcu_head *head))
{
	struct tsan_rcu *t = malloc(sizeof(*t));

	if (!t) {
		urcu_memb_call_rcu(head, fn);
		return;
	}
	t->real = head;
	t->fn = fn;
	__tsan_release(t);
	urcu_memb_call_rcu(&t->head, tsan_rcu_callback);
}
#endif

/* ---- thread registration ---- */

static pthread_key_t thread_key;
static pthread_once_t thread_once = PTHREAD_ONCE_INIT;
static __thread bool thread_registered;

static void thread_exit(void *unused)
{
	(void)unused;
	if (thread_registered) {
		rcu_unregister_thread();
		thread_registered = false;
	}
}

static void thread_key_init(void)
{
	pthread_key_create(&thread_key, thread_exit);
}

/* Every thread that enters the core must be known to liburcu. */
void kmmu_user_thread_enter(void)
{
	if (likely(thread_registered))
		return;
	pthread_once(&thread_once, thread_key_init);
	rcu_register_thread();
	thread_registered = true;
	pthread_setspecific(thread_key, (void *)1);
}
