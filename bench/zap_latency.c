// SPDX-License-Identifier: GPL-2.0
/*
 * zap_latency: what zapping a whole VM costs everyone else.  A VM's first
 * memslot is mapped with 4 KiB SPTEs, all of it (1 GiB by default); then
 * one thread zaps the whole VM (KMMU_ZAP_ALL: every root invalidated and
 * torn down) while a vCPU faults in pages of a second memslot, one access
 * per RUN, each RUN timed.  A repetition maps and zaps ZAPS times on one
 * VM, so that its percentiles stand on thousands of faults, not on a few
 * preemptions; the vCPU faults in an eighth of its slot in each lead and
 * zap.  Reported: the longest time mmu_lock was held for write
 * (KMMU_GET_STATS, a fresh VM each repetition), and the 99th and 99.9th
 * percentiles of the vCPU's faults that overlapped a zap, next to the 99th
 * of the same vCPU's faults just before each (the same-run floor), and the
 * zap itself per 4 KiB page next to one locked read-modify-write per SPTE.
 * The longest fault is printed, not tracked: it is one preemption.  A
 * teardown under the write lock stalls every fault for all of it; one that
 * yields, or runs under the read lock, does not.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"

#define ZAP_GPA		BENCH_GUEST_GPA
#define FAULT_SLOT	1
#define MAX_REPS	100
#define MAX_SAMPLES	(1 << 22)
/* The vCPU faults alone for this long before each zap, for the floor. */
#define LEAD_NS		20000000ULL
/* Zaps a repetition: each zapped 1 GiB gives the vCPU about 1000 faults. */
#define ZAPS		8

struct params {
	struct bench_common cm;
	int reps;
	uint64_t fault_bytes;
};

static void help(const char *name)
{
	printf("usage: %s [-h] [-b bytes] [-f bytes] [-r reps] [-F format] [-o results.json]\n"
	       "          [--pressure tool]\n\n", name);
	printf(BENCH_COMMON_HELP);
	printf("     (-b is the memory mapped and then zapped; -v must be 1)\n");
	printf(" -f: bytes of the second memslot the vCPU faults in meanwhile, split\n"
	       "     evenly over the %d zaps of a repetition (default: 1g)\n", ZAPS);
	printf(" -r: repetitions, each on a fresh VM; medians are reported (default: 5)\n");
	printf(BENCH_BACKEND_HELP);
}

static int parse(int c, const char *arg, void *data)
{
	struct params *p = data;

	switch (c) {
	case 'r':
		return bench_parse_int(arg, 1, MAX_REPS, &p->reps);
	case 'f':
		if (bench_parse_size(arg, &p->fault_bytes) || p->fault_bytes < (ZAPS << 20))
			return -EINVAL;
		return 0;
	default:
		return -EINVAL;
	}
}

static const char *check(void *data)
{
	struct params *p = data;

	if (p->cm.vcpus != 1)
		return "-v must be 1: one VM is zapped, one vCPU faults";
	if (p->cm.backing != KMMU_BACKING_ANON && p->cm.backing != KMMU_BACKING_SHMEM)
		return "-s must be anonymous or shmem: the zapped memory is mapped with 4 KiB SPTEs";
	return NULL;
}

static const struct bench_args args = {
	.name = "zap_latency",
	.opts = "r:f:",
	.parse = parse,
	.check = check,
	.help = help,
	/* The first repetition after one warm-up was 10-35% slower than the rest. */
	.warmup = 2,
};

/* One timed RUN that faulted: when it started and how long it took. */
struct sample {
	uint64_t start, ns;
};

struct faulter {
	struct kmmu_vcpu *vcpu;
	struct sample *s;
	uint64_t n;
	int stop;
	int active;		/* fault now; else sleep while the zap slot is mapped */
	int running;		/* what it last saw of @active */
	bool done;		/* it ran out of pages to fault */
};

/* One access per RUN, each timed; kept only when it faulted. */
static void *faulter_fn(void *arg)
{
	const struct timespec nap = { .tv_nsec = 50000 };
	struct faulter *f = arg;
	struct kmmu_run run;

	bench_pin_self(0);
	while (!__atomic_load_n(&f->stop, __ATOMIC_ACQUIRE) && f->n < MAX_SAMPLES) {
		int active = __atomic_load_n(&f->active, __ATOMIC_ACQUIRE);
		uint64_t t0, t1;
		int ret;

		__atomic_store_n(&f->running, active, __ATOMIC_RELEASE);
		if (!active) {
			nanosleep(&nap, NULL);
			continue;
		}
		t0 = kmmu_now_ns();

		memset(&run, 0, sizeof(run));
		run.max_accesses = 1;
		ret = kmmu_vcpu_run(f->vcpu, &run);
		t1 = kmmu_now_ns();
		if (ret && ret != -EINTR)
			bench_must(ret, "run");
		if (run.exit_reason == KMMU_EXIT_DONE) {
			f->done = true;
			break;
		}
		if (run.faults)
			f->s[f->n++] = (struct sample){ t0, t1 - t0 };
	}
	__atomic_store_n(&f->running, -1, __ATOMIC_RELEASE);	/* gone */
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The @permille-th of sorted @v[0..n) (nearest rank), in ns. */
static uint64_t permille(const uint64_t *v, uint64_t n, uint64_t permille)
{
	return n ? v[(n * permille + 999) / 1000 - 1] : 0;
}

static void sort_u64(uint64_t *v, uint64_t n)
{
	qsort(v, n, sizeof(*v), cmp_u64);
}

struct rep {
	uint64_t hold_ns;		/* longest mmu_lock write hold */
	uint64_t zap_ns;		/* KMMU_ZAP_ALL, the median of ZAPS */
	uint64_t p99, p999, max, n;	/* faults overlapping a zap */
	uint64_t p99_before, n_before;	/* faults in the leads before them */
};

/* Let the faulter run, or park it, and wait until it does. */
static void faulter_set(struct faulter *f, int active)
{
	int running;

	__atomic_store_n(&f->active, active, __ATOMIC_RELEASE);
	do
		running = __atomic_load_n(&f->running, __ATOMIC_ACQUIRE);
	while (running != active && running != -1);
}

/* Which of ZAPS windows [@lo[k], @hi[k]) a sample overlaps: -1 if none. */
static int window_of(const struct sample *s, const uint64_t *lo, const uint64_t *hi)
{
	int k;

	for (k = 0; k < ZAPS; k++)
		if (s->start < hi[k] && s->start + s->ns > lo[k])
			return k;
	return -1;
}

static void one_rep(const struct params *p, struct kmmu_mem *zmem, struct kmmu_mem *fmem,
		    struct sample *s, uint64_t *scratch, struct rep *out)
{
	struct kmmu_vm_config cfg = { .spte_format = p->cm.format };
	uint64_t fault_gpa = ZAP_GPA + p->cm.bytes_per_vcpu, i, n = 0, nb = 0;
	uint64_t lead[ZAPS], zap0[ZAPS], zap1[ZAPS], zap_ns[ZAPS];
	/* The vCPU faults in a ZAPS-th of its slot in each lead and zap. */
	uint64_t part = p->fault_bytes / ZAPS / BENCH_PAGE * BENCH_PAGE;
	struct kmmu_workload wl_fault = {
		.gpa = fault_gpa, .size = part,
		.iterations = 1, .write_percent = 100, .value = 2,
	};
	struct faulter f = { .s = s };
	struct kmmu_vcpu *filler;
	struct kmmu_vm_stats st;
	struct kmmu_workload wl;
	struct kmmu_run run;
	struct kmmu_vm *vm;
	pthread_t t;
	int k;

	bench_must(kmmu_vm_create(&cfg, &vm), "create VM");
	bench_must(kmmu_vm_set_memslot(vm, 0, 0, ZAP_GPA, p->cm.bytes_per_vcpu, zmem->addr),
		   "memslot");
	bench_must(kmmu_vm_set_memslot(vm, FAULT_SLOT, 0, fault_gpa, p->fault_bytes, fmem->addr),
		   "memslot");
	bench_must(kmmu_vcpu_create(vm, 0, &filler), "vCPU");
	bench_must(kmmu_vcpu_create(vm, 1, &f.vcpu), "vCPU");
	bench_must(kmmu_vcpu_set_workload(f.vcpu, &wl_fault), "workload");
	bench_must(-pthread_create(&t, NULL, faulter_fn, &f), "faulting thread");
	/* The faulter is vCPU 0; this thread maps and zaps on the next CPU. */
	bench_pin_self(1);

	for (k = 0; k < ZAPS; k++) {
		/* Every page of the first slot mapped 4K: the zap has all of it to do. */
		wl = (struct kmmu_workload){ .gpa = ZAP_GPA, .size = p->cm.bytes_per_vcpu,
					     .iterations = 1, .write_percent = 100, .value = 1 };
		bench_must(kmmu_vcpu_run_workload(filler, &wl, &run), "populate");
		if (run.exit_reason != KMMU_EXIT_DONE)
			bench_must(-EIO, "populate exit");

		faulter_set(&f, 1);
		lead[k] = kmmu_now_ns();
		while (kmmu_now_ns() - lead[k] < LEAD_NS)
			;
		zap0[k] = kmmu_now_ns();
		bench_must(kmmu_vm_zap(vm, 0, 0, 0, KMMU_ZAP_ALL), "zap all");
		zap1[k] = kmmu_now_ns();
		faulter_set(&f, 0);
		zap_ns[k] = zap1[k] - zap0[k];
		/* Fresh pages for the next lead and zap: the next part of the slot. */
		if (k + 1 < ZAPS) {
			wl_fault.gpa += part;
			bench_must(kmmu_vcpu_set_workload(f.vcpu, &wl_fault), "workload");
		}
	}
	__atomic_store_n(&f.stop, 1, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	bench_pin_self(0);

	bench_must(kmmu_vm_stats(vm, &st), "stats");
	out->hold_ns = st.max_write_hold_ns;
	out->zap_ns = bench_median(zap_ns, ZAPS);
	for (i = 0; i < f.n; i++)
		if (window_of(&s[i], zap0, zap1) >= 0)
			scratch[n++] = s[i].ns;
	sort_u64(scratch, n);
	out->p99 = permille(scratch, n, 990);
	out->p999 = permille(scratch, n, 999);
	out->max = n ? scratch[n - 1] : 0;
	out->n = n;
	/* Before: faults that began and ended inside a lead. */
	for (i = 0; i < f.n; i++) {
		k = window_of(&s[i], lead, zap0);
		if (k >= 0 && s[i].start >= lead[k] && s[i].start + s[i].ns <= zap0[k])
			scratch[nb++] = s[i].ns;
	}
	sort_u64(scratch, nb);
	out->p99_before = permille(scratch, nb, 990);
	out->n_before = nb;
	if (f.n == MAX_SAMPLES || f.done)
		fprintf(stderr, "zap_latency: the vCPU ran out of %s before a zap ended%s\n",
			f.done ? "pages" : "samples", f.done ? ": use a larger -f" : "");
	kmmu_vm_free(vm);
}

int main(int argc, char **argv)
{
	struct params p = {
		.cm = {
			.vcpus = 1,
			.bytes_per_vcpu = 1ULL << 30,
			.backing = KMMU_BACKING_ANON,
			.format = KMMU_SPTE_FORMAT_DEFAULT,
		},
		.reps = 5,
		.fault_bytes = 1ULL << 30,
	};
	double hold[MAX_REPS], p99[MAX_REPS], p999[MAX_REPS], before[MAX_REPS];
	uint64_t zap[MAX_REPS], pages, *scratch;
	struct kmmu_mem zmem, fmem;
	struct bench_results *res;
	struct rep rep;
	struct sample *s;
	double floor_ns;
	int r;

	if (bench_parse_args(argc, argv, &args, &p.cm, &p))
		return 2;
	if (bench_begin(&p.cm))
		return 1;
	res = bench_results_new("zap_latency");
	s = malloc(MAX_SAMPLES * sizeof(*s));
	scratch = malloc(MAX_SAMPLES * sizeof(*scratch));
	if (!res || !s || !scratch)
		return 1;
	pages = p.cm.bytes_per_vcpu / BENCH_PAGE;
	printf("zap_latency: backend=%s backing=%s zapped=%llu bytes (4K SPTEs) faulting=%llu "
	       "bytes reps=%d\n", kmmu_backend_name(), kmmu_backing_name(p.cm.backing),
	       (unsigned long long)p.cm.bytes_per_vcpu, (unsigned long long)p.fault_bytes,
	       p.reps);
	bench_common_params(res, &p.cm);
	bench_results_param_int(res, "fault_bytes", p.fault_bytes);
	floor_ns = bench_floor(res, BENCH_FLOOR_LOCKED_RMW, pages);

	bench_must(kmmu_mem_alloc(&zmem, p.cm.backing, p.cm.bytes_per_vcpu), "memory");
	bench_must(kmmu_mem_alloc(&fmem, p.cm.backing, p.fault_bytes), "memory");
	kmmu_mem_prefault(&zmem);
	kmmu_mem_prefault(&fmem);
	/* Warm-up runs (-W), not counted. */
	for (r = 0; r < p.cm.warmup; r++) {
		one_rep(&p, &zmem, &fmem, s, scratch, &rep);
		printf("run 0/%d (warm-up): zap all %8.3f ms, longest write hold %9.1f us\n",
		       p.reps, rep.zap_ns / 1e6, rep.hold_ns / 1e3);
	}
	for (r = 0; r < p.reps; r++) {
		one_rep(&p, &zmem, &fmem, s, scratch, &rep);
		hold[r] = rep.hold_ns / 1e3;
		p99[r] = rep.p99 / 1e3;
		p999[r] = rep.p999 / 1e3;
		before[r] = rep.p99_before / 1e3;
		zap[r] = rep.zap_ns;
		printf("run %d/%d: zap all %8.3f ms, longest write hold %9.1f us; faults during "
		       "the %d zaps: %llu, p99 %7.1f us, p99.9 %7.1f us, max %7.1f us; before "
		       "them: %llu, p99 %6.1f us\n",
		       r + 1, p.reps, rep.zap_ns / 1e6, hold[r], ZAPS, (unsigned long long)rep.n,
		       p99[r], p999[r], rep.max / 1e3, (unsigned long long)rep.n_before, before[r]);
	}

	bench_results_add(res, "max_write_hold", "us", true, hold, p.reps, NULL);
	bench_results_add(res, "fault_p99_during_zap", "us", true, p99, p.reps, NULL);
	bench_results_add(res, "fault_p999_during_zap", "us", true, p999, p.reps, NULL);
	bench_results_add(res, "fault_p99_before_zap", "us", true, before, p.reps, NULL);
	bench_add_per_page(res, "zap_all", zap, p.reps, pages, BENCH_FLOOR_LOCKED_RMW);

	printf("\nsummary (median of %d runs):\n", p.reps);
	printf("  longest mmu_lock write hold   %10.1f us  (target: at most 1000)\n",
	       bench_median_d(hold, p.reps));
	printf("  fault p99 during the zap      %10.1f us  (%.1fx the p99 before it, %.1f us)\n",
	       bench_median_d(p99, p.reps), bench_median_d(p99, p.reps) /
	       bench_median_d(before, p.reps), bench_median_d(before, p.reps));
	printf("  fault p99.9 during the zap    %10.1f us\n", bench_median_d(p999, p.reps));
	printf("  zap all                       %10.2f ns/4K  (%.1fx floor)\n",
	       (double)bench_median(zap, p.reps) / pages,
	       (double)bench_median(zap, p.reps) / pages / floor_ns);
	printf("  floor: %.2f ns/entry\n", floor_ns);

	kmmu_mem_free(&zmem);
	kmmu_mem_free(&fmem);
	free(s);
	free(scratch);
	return bench_results_finish(res, &p.cm);
}
