// SPDX-License-Identifier: GPL-2.0
/*
 * aging: what an aging pass costs, locked (mmu_lock for write) and lockless
 * (RCU and a cmpxchg per SPTE), and what it costs the vCPUs running
 * meanwhile, in the manner of KVM's access_tracking_perf_test.  The pass is
 * reported per 4 KiB page next to the same-run floor, one locked
 * read-modify-write per 8-byte entry.
 *
 * The vCPUs' side: their memory is zapped and they fault it all back in
 * (a write per 4 KiB page, one fault each) while a thread ages the whole
 * slot every -i microseconds -- nothing, the locked path, or the lockless
 * one.  Faults take mmu_lock for read, so a locked pass holds them up where
 * a lockless one does not.  The three are run in turn, each repetition in a
 * new order; the figures with aging are each repetition's rate over its own
 * rate without (fault_in_locked_aging_ratio, fault_in_lockless_aging_ratio).
 *
 * Accuracy: how far the young pages a pass finds are from the pages the
 * vCPUs read since the last one, as a fraction of all pages.
 *
 * Every pass is also timed fast-only (KMMU_AGE_FAST_ONLY: no mmu_lock, no
 * waiting on an rmap).  With --nested the vCPUs run as L2 guests through
 * an L1 identity map of 4K leaves, so the pages are shadow leaves, aged
 * through the rmaps; the same run first times the TDP MMU's lockless pass
 * over the same pages mapped for L1 (aging_pass_lockless_tdp), the
 * reference the shadow MMU's lockless pass is held to.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"

#define GUEST_GPA	BENCH_GUEST_GPA
#define PAGE		BENCH_PAGE
#define MAX_REPS	100
/* A fault-in sample: rounds of every page worth this much vCPU time, at most the max. */
#define FAULT_IN_SAMPLE_NS	(250 * 1000 * 1000ULL)
#define FAULT_IN_MAX_ROUNDS	50
/*
 * A timed pass sample: the mean of this many passes, each after the vCPUs
 * touched every page.  One pass of 1 GiB takes about 2 ms, short enough
 * for one preemption of the host to move a sample by a third.
 */
#define PASSES_PER_SAMPLE	4

struct params {
	struct bench_common cm;
	int reps;
	int interval_us;
	uint32_t flags;
	bool nested;
};

#define OPT_NESTED	0x100

static void help(const char *name)
{
	printf("usage: %s [-h] [-v vcpus] [-b bytes] [-s backing] [-r reps] [-i usecs]\n"
	       "          [-F format] [-A] [--nested] [-o results.json] [--pressure tool]\n\n",
	       name);
	printf(BENCH_COMMON_HELP);
	printf(" -s: backing, as populate's, pfnmap included (default: anonymous, so every\n"
	       "     SPTE is a 4K leaf)\n");
	printf(" -r: repetitions of each timed figure; the median is reported (default: 5);\n"
	       "     a pass figure's repetition is the mean of %d passes\n", PASSES_PER_SAMPLE);
	printf(" -i: pause between aging passes while the vCPUs fault, in microseconds\n"
	       "     (default: 1000)\n");
	printf(" -A: A/D bits off (EPT only): aging marks SPTEs for access tracking (default: on)\n");
	printf(" --nested: the vCPUs run as L2 guests through L1's EPT/NPT identity map of 4K\n"
	       "     leaves: aging passes over shadow leaves, next to the TDP MMU's lockless\n"
	       "     pass over the same pages in the same run; figures with nested: yes\n");
	printf(BENCH_BACKEND_HELP);
}

static int parse(int c, const char *arg, void *data)
{
	struct params *p = data;

	switch (c) {
	case 'r':
		return bench_parse_int(arg, 1, MAX_REPS, &p->reps);
	case 'i':
		return bench_parse_int(arg, 0, 10000000, &p->interval_us);
	case 'A':
		p->flags |= KMMU_VM_AD_DISABLED;
		p->cm.format = KMMU_SPTE_FORMAT_EPT;
		return 0;
	case OPT_NESTED:
		p->nested = true;
		return 0;
	default:
		return -EINVAL;
	}
}

static const struct option longopts[] = {
	{ "nested", no_argument, NULL, OPT_NESTED },
	{ NULL, 0, NULL, 0 },
};

static const char *check(void *data)
{
	const struct params *p = data;

	return bench_nested_refusal(p->nested);
}

static const struct bench_args args = {
	.name = "aging",
	.opts = "r:i:A",
	.longopts = longopts,
	.parse = parse,
	.check = check,
	.help = help,
};

/*
 * @reps samples of PASSES_PER_SAMPLE aging passes of the whole memory with
 * @flags, each pass after the vCPUs touched every page, so that each finds
 * them all young: a sample's mean pass time in @ns, each printed as
 * @label's.
 */
static void timed_passes(struct bench_vm *bv, uint64_t total, uint32_t flags, int reps,
			 int warmup, const char *label, uint64_t *ns)
{
	uint64_t young, old, t0, t;
	int r, k;

	/* Warm-up samples (-W) are sample 0, not counted. */
	for (r = -warmup; r < reps; r++) {
		t = 0;
		for (k = 0; k < PASSES_PER_SAMPLE; k++) {
			bench_vm_run(bv);
			t0 = kmmu_now_ns();
			bench_must(kmmu_vm_age(bv->vm, GUEST_GPA, total, 0, flags, &young, &old),
				   "age");
			t += kmmu_now_ns() - t0;
		}
		t /= PASSES_PER_SAMPLE;
		if (r >= 0)
			ns[r] = t;
		printf("%-12s pass %d/%d: %8.3f ms (mean of %d), %llu young, %llu old, %.2f ns/4K\n",
		       label, r < 0 ? 0 : r + 1, reps, t / 1e6, PASSES_PER_SAMPLE,
		       (unsigned long long)young, (unsigned long long)old,
		       (double)t / (total / PAGE));
	}
}

struct ager {
	struct kmmu_vm *vm;
	int slot;			/* its CPU: the one after the vCPUs' */
	uint64_t size;
	unsigned int interval_us;
	volatile int stop;
	uint64_t passes;
};

/* An aging pass, then a pause, as the host's reclaim would do them. */
static void *ager_thread(void *arg)
{
	struct ager *a = arg;

	bench_pin_self(a->slot);
	while (!a->stop) {
		bench_must(kmmu_vm_age(a->vm, GUEST_GPA, a->size, 0, 0, NULL, NULL), "age");
		a->passes++;
		usleep(a->interval_us);
	}
	return NULL;
}

/*
 * Pages per second the vCPUs fault back in while @path aging (-1: none)
 * runs beside them, over @rounds rounds of a zap and a fault-in of every
 * page; the aging passes done meanwhile in *@passes; the vCPUs' time in
 * *@ns.
 */
static double fault_in_rate(struct bench_vm *bv, int path, unsigned int interval_us, int rounds,
			    uint64_t *passes, uint64_t *ns)
{
	struct ager a = { .vm = bv->vm, .slot = bv->nr_vcpus, .size = bv->size,
			  .interval_us = interval_us };
	pthread_t t;
	int i;

	if (path >= 0) {
		bench_must(kmmu_vm_enable_cap(bv->vm, KMMU_CAP_LOCKLESS_AGING, path), "aging path");
		bench_must(-pthread_create(&t, NULL, ager_thread, &a), "aging thread");
	}
	*ns = 0;
	for (i = 0; i < rounds; i++) {
		bench_must(kmmu_vm_zap(bv->vm, GUEST_GPA, bv->size, 0, 0), "zap");
		*ns += bench_vm_run(bv);
	}
	if (path >= 0) {
		a.stop = 1;
		pthread_join(t, NULL);
	}
	*passes = a.passes;
	return (double)rounds * (bv->size / PAGE) / (*ns / 1e9);
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
		.interval_us = 1000,
	};
	uint64_t total, pages, ns[3][MAX_REPS], tdp_ns[MAX_REPS], young, old, passes[3] = {};
	static const char * const pass_name[] = { "locked", "lockless", "fast-only" };
	static const char * const pass_metric[] = {
		"aging_pass_locked", "aging_pass_lockless", "aging_pass_fast_only"
	};
	struct kmmu_mem tables = { 0 };
	double floor_ns, rate[3][MAX_REPS], err[2][MAX_REPS], ratio[2][MAX_REPS];
	static const char * const err_metric[2] = { "age_error_locked", "age_error_lockless" };
	struct bench_results *res;
	static const char * const path_name[] = { "no aging", "locked aging", "lockless aging" };
	static const char * const ratio_metric[] = {
		"fault_in_locked_aging_ratio", "fault_in_lockless_aging_ratio"
	};
	struct kmmu_vm_config cfg;
	struct bench_vm bv;
	int i, path, r, rounds = 1;

	if (bench_parse_args(argc, argv, &args, &p.cm, &p))
		return 2;
	if (bench_begin(&p.cm))
		return 1;
	res = bench_results_new("aging");
	if (!res)
		return 1;
	total = p.cm.bytes_per_vcpu * p.cm.vcpus;
	pages = total / PAGE;
	cfg = (struct kmmu_vm_config){ .spte_format = p.cm.format, .flags = p.flags };
	printf("aging: backend=%s backing=%s vcpus=%d bytes/vcpu=%llu passes=%d%s%s\n",
	       kmmu_backend_name(), kmmu_backing_name(p.cm.backing), p.cm.vcpus,
	       (unsigned long long)p.cm.bytes_per_vcpu, p.reps,
	       p.flags & KMMU_VM_AD_DISABLED ? " A/D off" : "", p.nested ? " nested" : "");
	bench_common_params(res, &p.cm);
	bench_results_param_str(res, "ad", p.flags & KMMU_VM_AD_DISABLED ? "off" : "on");
	/* Every figure of a nested run is a series of its own. */
	if (p.nested)
		bench_results_param_str(res, "nested", "yes");
	floor_ns = bench_floor(res, BENCH_FLOOR_LOCKED_RMW, pages);

	bench_vm_create(&bv, p.cm.backing, total, &cfg);
	bench_vm_setup(&bv, p.cm.vcpus);
	for (i = 0; i < bv.nr_vcpus; i++) {
		bv.vcpus[i].wl.write_percent = 50;
		bv.vcpus[i].wl.value = 0;
	}
	bench_vm_run(&bv);

	/*
	 * Nested: the TDP MMU's lockless pass over the pages as L1 mapped
	 * them, then L1's mappings go and the vCPUs fault them in as L2.
	 */
	if (p.nested) {
		bench_must(kmmu_vm_enable_cap(bv.vm, KMMU_CAP_LOCKLESS_AGING, 1), "aging path");
		timed_passes(&bv, total, KMMU_AGE_FLUSH, p.reps, p.cm.warmup, "tdp lockless", tdp_ns);
		bench_must(kmmu_vm_zap(bv.vm, 0, 0, 0, KMMU_ZAP_ALL), "zap");
		bench_nested_setup(&bv, &tables, "aging");
		bench_vm_run(&bv);
	}

	/* Each timed pass finds every page young: the vCPUs touch all between passes. */
	for (path = 0; path < 3; path++) {
		bench_must(kmmu_vm_enable_cap(bv.vm, KMMU_CAP_LOCKLESS_AGING, path == 1),
			   "aging path");
		timed_passes(&bv, total, KMMU_AGE_FLUSH | (path == 2 ? KMMU_AGE_FAST_ONLY : 0),
			     p.reps, p.cm.warmup, pass_name[path], ns[path]);
	}

	/*
	 * Accuracy: after a pass that clears every A bit, the vCPUs read every
	 * other 4 KiB page; a test-only pass should then find those young and
	 * the rest old.  The error is |young found - pages read| over all pages:
	 * 0 when aging sees each 4 KiB page; a huge leaf is one A bit for all
	 * its pages, so backings with huge pages show up to 0.5 here.
	 */
	for (path = 0; path < 2; path++) {
		uint64_t touched = 0;

		bench_must(kmmu_vm_enable_cap(bv.vm, KMMU_CAP_LOCKLESS_AGING, path), "aging path");
		for (r = 0; r < p.reps; r++) {
			struct kmmu_workload saved[KMMU_LIB_MAX_VCPUS];

			bench_must(kmmu_vm_age(bv.vm, GUEST_GPA, total, 0, KMMU_AGE_FLUSH, NULL, NULL),
				   "age");
			for (i = 0; i < bv.nr_vcpus; i++) {
				struct kmmu_workload *wl = &bv.vcpus[i].wl;

				saved[i] = *wl;
				wl->pattern = KMMU_PATTERN_STRIDE;
				wl->stride = 2 * PAGE;
				wl->write_percent = 0;
				touched = (uint64_t)bv.nr_vcpus * ((wl->size + 2 * PAGE - 1) / (2 * PAGE));
			}
			bench_vm_run(&bv);
			for (i = 0; i < bv.nr_vcpus; i++)
				bv.vcpus[i].wl = saved[i];
			bench_must(kmmu_vm_age(bv.vm, GUEST_GPA, total, 0, KMMU_AGE_TEST_ONLY, &young,
					       &old), "age");
			err[path][r] = (double)(young > touched ? young - touched : touched - young) /
				       pages;
			printf("%-8s accuracy %d/%d: %llu young of %llu touched, %llu old of %llu "
			       "untouched\n", path ? "lockless" : "locked", r + 1, p.reps,
			       (unsigned long long)young, (unsigned long long)touched,
			       (unsigned long long)old, (unsigned long long)(pages - touched));
		}
	}

	/* Each repetition starts with a different path, so none always goes first. */
	for (i = 0; i < bv.nr_vcpus; i++)
		bv.vcpus[i].wl.write_percent = 100;
	/*
	 * Warm-up rounds (-W) are round 0, not counted.  Then each sample
	 * faults every page in rounds worth FAULT_IN_SAMPLE_NS, as many as one
	 * round without aging takes after the warm-up.
	 */
	for (r = -p.cm.warmup; r < p.reps; r++) {
		for (i = 0; i < 3; i++) {
			uint64_t n, t;
			double rt;

			if (r == 0 && i == 0) {
				fault_in_rate(&bv, -1, p.interval_us, 1, &n, &t);
				rounds = t ? (int)(FAULT_IN_SAMPLE_NS / t) + 1 : 1;
				rounds = rounds > FAULT_IN_MAX_ROUNDS ? FAULT_IN_MAX_ROUNDS : rounds;
				printf("fault-in: %d rounds a sample (one took %.1f ms)\n", rounds,
				       t / 1e6);
			}
			path = (r + p.cm.warmup + i) % 3;
			rt = fault_in_rate(&bv, path - 1, p.interval_us, rounds, &n, &t);
			if (r >= 0) {
				rate[path][r] = rt;
				passes[path] += n;
			}
			printf("fault-in %d/%d, %-15s %10.0f pages/s (%llu aging passes "
			       "meanwhile, %.1f ms)\n", r < 0 ? 0 : r + 1, p.reps, path_name[path],
			       rt, (unsigned long long)n, t / 1e6);
		}
	}

	for (path = 0; path < 3; path++)
		bench_add_per_page(res, pass_metric[path], ns[path], p.reps, pages,
				   BENCH_FLOOR_LOCKED_RMW);
	if (p.nested)
		bench_add_per_page(res, "aging_pass_lockless_tdp", tdp_ns, p.reps, pages,
				   BENCH_FLOOR_LOCKED_RMW);
	bench_results_param_int(res, "aging_interval_us", p.interval_us);
	/*
	 * With aging, the figures are each repetition's rate over its own
	 * sample without: the three run back to back, and the ratio leaves out
	 * how fast the host was then, which moves all three alike (on a shared
	 * host, by more than aging does).
	 */
	bench_results_add(res, "fault_in_no_aging", "pages/s", false, rate[0], p.reps, NULL);
	for (path = 1; path < 3; path++) {
		for (r = 0; r < p.reps; r++)
			ratio[path - 1][r] = rate[path][r] / rate[0][r];
		bench_results_add(res, ratio_metric[path - 1], "x no aging", false, ratio[path - 1],
				  p.reps, NULL);
	}
	for (path = 0; path < 2; path++)
		bench_results_add(res, err_metric[path], "fraction", true, err[path], p.reps,
				  NULL);

	printf("\nsummary (median of %d samples, a pass's of %d passes, per 4 KiB page):\n",
	       p.reps, PASSES_PER_SAMPLE);
	for (path = 0; path < 3; path++)
		printf("  aging pass, %-9s     %8.2f ns/4K  (%5.1fx floor)%s\n", pass_name[path],
		       (double)bench_median(ns[path], p.reps) / pages,
		       (double)bench_median(ns[path], p.reps) / pages / floor_ns,
		       p.nested ? ", shadow leaves" : "");
	if (p.nested)
		printf("  aging pass, lockless, TDP %8.2f ns/4K  (%5.1fx floor); shadow lockless "
		       "%.2fx of it\n", (double)bench_median(tdp_ns, p.reps) / pages,
		       (double)bench_median(tdp_ns, p.reps) / pages / floor_ns,
		       (double)bench_median(ns[1], p.reps) / bench_median(tdp_ns, p.reps));
	for (path = 0; path < 3; path++)
		printf("  vCPU fault-in, %-15s %10.0f pages/s  (%.2fx of no aging; %llu passes)\n",
		       path_name[path], bench_median_d(rate[path], p.reps),
		       path ? bench_median_d(ratio[path - 1], p.reps) : 1.0,
		       (unsigned long long)passes[path]);
	for (path = 0; path < 2; path++)
		printf("  aging error, %-8s      %8.3f of the pages (young found vs read)\n",
		       path ? "lockless" : "locked", bench_median_d(err[path], p.reps));
	printf("  floor: %.2f ns/entry\n", floor_ns);

	bench_vm_free(&bv);
	if (p.nested)
		kmmu_mem_free(&tables);
	return bench_results_finish(res, &p.cm);
}
