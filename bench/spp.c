// SPDX-License-Identifier: GPL-2.0
/*
 * spp: what sub-page write permissions (KMMU_CAP_SPP) cost, on an EPT VM.
 *  - SET_ACCESS per 4 KiB page, for requests of 1, 512 and N pages (N the
 *    whole memory, at most KMMU_SUBPAGES_MAX_PAGES): each request takes
 *    write access from mapped pages (their leaves go, TLBs are flushed),
 *    next to the read+write floor (one table entry rewritten);
 *  - a write that a sub-page permission lets through against an ordinary
 *    write, both missing the vCPU's TLB (one page per access over more
 *    pages than it holds), so each walks the tables and the first also
 *    the SPP table; next to the read floor (a walk that only looks);
 *  - the round trip of a refused write (KMMU_EXIT_SPP, then RUN again)
 *    against the cheapest exit there is (a budget of one access).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"

#define PAGE		BENCH_PAGE
#define MAX_REPS	1000
#define EXITS		20000		/* exits per repetition of the round trip */
#define SMALL_CALLS	1024		/* 1-page and 512-page requests per repetition */
#define WRITE_PASSES	4
#define BIG_CALLS	3		/* all-pages requests per repetition */

struct params {
	struct bench_common cm;
	int reps;
};

static void help(const char *name)
{
	printf("usage: %s [-h] [-b bytes] [-r reps] [-o results.json] [--pressure tool]\n\n",
	       name);
	printf(BENCH_COMMON_HELP);
	printf(" -r: repetitions of each figure; the median is reported (default: 5)\n");
	printf("\nThe VM is EPT (SPP is Intel's): -F must be default or ept, -v 1,\n"
	       "-s anonymous.  The largest SET_ACCESS request is the whole memory, at\n"
	       "most %u pages.\n", KMMU_SUBPAGES_MAX_PAGES);
	printf("\nBackend: -B dev|user, or KMMU_BACKEND (default: dev when /dev/kmmu\n"
	       "exists); not hw, whose vCPUs run NPT VMs only.\n");
}

static int parse(int c, const char *arg, void *data)
{
	struct params *p = data;

	if (c == 'r')
		return bench_parse_int(arg, 1, MAX_REPS, &p->reps);
	return -EINVAL;
}

static const char *check(void *data)
{
	struct params *p = data;

	if (p->cm.format == KMMU_SPTE_FORMAT_NPT)
		return "-F npt: sub-page permissions are EPT's";
	if (p->cm.vcpus != 1)
		return "-v: one vCPU";
	if (p->cm.backing != KMMU_BACKING_ANON)
		return "-s: anonymous memory only";
	if (p->cm.bytes_per_vcpu < 2 * 512 * PAGE)
		return "-b: at least 4m (two requests of 512 pages)";
	if (kmmu_backend_hw())
		return "-B hw: hardware vCPUs run NPT VMs, which have no sub-page permissions";
	return NULL;
}

static const struct bench_args args = {
	.name = "spp",
	.opts = "r:",
	.parse = parse,
	.check = check,
	.help = help,
};

static struct kmmu_workload wl_pages(uint64_t gpa, uint64_t pages, uint64_t offset,
				     uint64_t passes)
{
	struct kmmu_workload wl = {
		.gpa = gpa + offset,
		.size = (pages - 1) * PAGE + 8,
		.stride = PAGE,
		.iterations = passes,
		.value = 0x5b5b,
		.pattern = KMMU_PATTERN_STRIDE,
		.write_percent = 100,
	};

	return wl;
}

/* Run @wl to the end; a refused write just goes on.  Exits on a failure. */
static void run_all(struct kmmu_vcpu *vcpu, const struct kmmu_workload *wl)
{
	struct kmmu_run run;

	bench_must(kmmu_vcpu_set_workload(vcpu, wl), "SET_WORKLOAD");
	for (;;) {
		int ret;

		memset(&run, 0, sizeof(run));
		ret = kmmu_vcpu_run(vcpu, &run);
		if (ret == -EINTR)
			continue;
		bench_must(ret, "RUN");
		if (run.exit_reason == KMMU_EXIT_DONE)
			return;
		if (run.exit_reason != KMMU_EXIT_SPP && run.exit_reason != KMMU_EXIT_INTR) {
			fprintf(stderr, "spp: unexpected exit %u\n", run.exit_reason);
			exit(1);
		}
	}
}

static void set_maps(struct kmmu_vm *vm, uint64_t gfn, uint32_t n, uint32_t *maps, uint32_t v)
{
	uint32_t i;

	for (i = 0; i < n; i++)
		maps[i] = v;
	bench_must(kmmu_vm_subpages_set(vm, gfn, n, 0, maps), "SET_ACCESS");
}

/*
 * One repetition of SET_ACCESS in requests of @n pages: @calls requests,
 * each on pages that are mapped writable, taking write access from
 * sub-page 0.  Only the requests are timed; giving access back and
 * mapping the pages again are not.  ns per page.
 */
static double set_access_rep(struct bench_vm *bv, uint32_t n, int calls, uint32_t *maps)
{
	uint64_t gfn0 = BENCH_GUEST_GPA / PAGE, pages = bv->size / PAGE, ns = 0;
	struct kmmu_vcpu *vcpu = bv->vcpus[0].vcpu;
	int c;

	for (c = 0; c < calls; c++) {
		uint64_t first = (uint64_t)c * n % (pages - n + 1), t0;
		struct kmmu_workload wl = wl_pages(BENCH_GUEST_GPA + first * PAGE, n, 0, 1);

		run_all(vcpu, &wl);
		t0 = kmmu_now_ns();
		set_maps(bv->vm, gfn0 + first, n, maps, ~1u);
		ns += kmmu_now_ns() - t0;
		set_maps(bv->vm, gfn0 + first, n, maps, KMMU_SUBPAGE_FULL_ACCESS);
	}
	return (double)ns / ((double)calls * n);
}

/* ns per write of @passes passes over every page, at @offset in each. */
static double write_rep(struct bench_vm *bv, uint64_t offset)
{
	uint64_t pages = bv->size / PAGE, t0, ns;
	struct kmmu_workload warm = wl_pages(BENCH_GUEST_GPA, pages, offset, 1);
	struct kmmu_workload wl = wl_pages(BENCH_GUEST_GPA, pages, offset, WRITE_PASSES);

	/* Not timed: the faults that map the pages, and the SPP table's misses. */
	run_all(bv->vcpus[0].vcpu, &warm);
	t0 = kmmu_now_ns();
	run_all(bv->vcpus[0].vcpu, &wl);
	ns = kmmu_now_ns() - t0;
	return (double)ns / (pages * WRITE_PASSES);
}

/*
 * ns per exit of EXITS exits: refused writes (@spp) to sub-page 0 of one
 * page, or accesses that end a budget of one.
 */
static double exit_rep(struct bench_vm *bv, bool spp)
{
	struct kmmu_vcpu *vcpu = bv->vcpus[0].vcpu;
	struct kmmu_workload wl = {
		.gpa = BENCH_GUEST_GPA,
		.size = 8,
		.iterations = EXITS,
		.value = 1,
		.pattern = KMMU_PATTERN_SEQUENTIAL,
		.write_percent = 100,
	};
	struct kmmu_run run;
	uint64_t t0, n = 0;

	bench_must(kmmu_vcpu_set_workload(vcpu, &wl), "SET_WORKLOAD");
	t0 = kmmu_now_ns();
	for (;;) {
		int ret;

		memset(&run, 0, sizeof(run));
		run.max_accesses = spp ? 0 : 1;
		ret = kmmu_vcpu_run(vcpu, &run);
		if (ret == -EINTR)
			continue;
		bench_must(ret, "RUN");
		if (run.exit_reason == KMMU_EXIT_DONE)
			break;
		n += run.exit_reason == (spp ? KMMU_EXIT_SPP : KMMU_EXIT_BUDGET);
	}
	if (n < EXITS - 1) {
		fprintf(stderr, "spp: %llu exits, expected %d\n", (unsigned long long)n, EXITS);
		exit(1);
	}
	return (double)(kmmu_now_ns() - t0) / n;
}

static void report(struct bench_results *res, const char *label, const char *metric,
		   const char *unit, double *v, int reps, enum bench_floor floor, double floor_ns)
{
	double med;

	/* The document takes a copy of the samples in order; then they may be sorted. */
	bench_add(res, metric, unit, true, v, reps, floor);
	med = bench_median_d(v, reps);
	if (floor_ns > 0)
		printf("  %-34s %9.1f %s (%.1fx floor)\n", label, med, unit, med / floor_ns);
	else
		printf("  %-34s %9.1f %s\n", label, med, unit);
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
	};
	struct kmmu_vm_config cfg = { .spte_format = KMMU_SPTE_FORMAT_EPT };
	/* [0] is the warm-up repetition's. */
	double set1[MAX_REPS + 1], set512[MAX_REPS + 1], setn[MAX_REPS + 1], wspp[MAX_REPS + 1];
	double wplain[MAX_REPS + 1], xspp[MAX_REPS + 1], xbudget[MAX_REPS + 1];
	double floor_rw, floor_rd, big_ns[BIG_CALLS];
	struct bench_results *res;
	uint64_t pages, big;
	struct bench_vm bv;
	uint32_t *maps;
	int r, i;

	if (bench_parse_args(argc, argv, &args, &p.cm, &p))
		return 2;
	if (bench_begin(&p.cm))
		return 1;
	res = bench_results_new("spp");
	if (!res)
		return 1;
	pages = p.cm.bytes_per_vcpu / PAGE;
	big = pages < KMMU_SUBPAGES_MAX_PAGES ? pages : KMMU_SUBPAGES_MAX_PAGES;
	maps = calloc(big, sizeof(*maps));
	if (!maps)
		return 1;
	printf("spp: backend=%s format=ept bytes=%llu reps=%d\n", kmmu_backend_name(),
	       (unsigned long long)p.cm.bytes_per_vcpu, p.reps);
	p.cm.format = KMMU_SPTE_FORMAT_EPT;
	bench_common_params(res, &p.cm);
	floor_rw = bench_floor(res, BENCH_FLOOR_READ_WRITE, pages);
	floor_rd = bench_floor(res, BENCH_FLOOR_READ, pages);

	bench_vm_create(&bv, p.cm.backing, p.cm.bytes_per_vcpu, &cfg);
	bench_must(kmmu_vm_enable_cap(bv.vm, KMMU_CAP_SPP, 1), "KMMU_CAP_SPP");
	bench_vm_setup(&bv, 1);
	kmmu_mem_prefault(&bv.mem);

	/* Repetition 0 warms up (every path, every table) and is not reported. */
	for (r = 0; r <= p.reps; r++) {
		set1[r] = set_access_rep(&bv, 1, SMALL_CALLS, maps);
		set512[r] = set_access_rep(&bv, 512, SMALL_CALLS / 16, maps);
		/* One request a sample: the median of BIG_CALLS of them. */
		for (i = 0; i < BIG_CALLS; i++)
			big_ns[i] = set_access_rep(&bv, big, 1, maps);
		setn[r] = bench_median_d(big_ns, BIG_CALLS);
		/* Every page restricted but for sub-page 1, where the writes go. */
		wplain[r] = write_rep(&bv, 128);
		set_maps(bv.vm, BENCH_GUEST_GPA / PAGE, big, maps, ~1u);
		wspp[r] = write_rep(&bv, 128);
		xspp[r] = exit_rep(&bv, true);
		set_maps(bv.vm, BENCH_GUEST_GPA / PAGE, big, maps, KMMU_SUBPAGE_FULL_ACCESS);
		xbudget[r] = exit_rep(&bv, false);
		printf("%s %d/%d: set %.1f / %.1f / %.1f ns/page; write %.1f plain, %.1f spp ns; "
		       "exit %.0f spp, %.0f budget ns\n", r ? "rep" : "warm-up", r, p.reps,
		       set1[r], set512[r], setn[r], wplain[r], wspp[r], xspp[r], xbudget[r]);
	}
	bench_vm_free(&bv);
	free(maps);

	printf("\nsummary (median of %d):\n", p.reps);
	bench_results_param_int(res, "spp_pages", 1);
	report(res, "SET_ACCESS, 1 page", "set_access", "ns/4K", set1 + 1, p.reps,
	       BENCH_FLOOR_READ_WRITE, floor_rw);
	bench_results_param_int(res, "spp_pages", 512);
	report(res, "SET_ACCESS, 512 pages", "set_access", "ns/4K", set512 + 1, p.reps,
	       BENCH_FLOOR_READ_WRITE, floor_rw);
	bench_results_param_int(res, "spp_pages", big);
	report(res, "SET_ACCESS, all pages", "set_access", "ns/4K", setn + 1, p.reps,
	       BENCH_FLOOR_READ_WRITE, floor_rw);
	bench_results_param_int(res, "spp_pages", pages);
	report(res, "write, ordinary page (TLB miss)", "write_plain", "ns/write", wplain + 1, p.reps,
	       BENCH_FLOOR_READ, floor_rd);
	report(res, "write, SPP page, permitted", "write_spp", "ns/write", wspp + 1, p.reps,
	       BENCH_FLOOR_READ, floor_rd);
	report(res, "exit round trip, budget of 1", "exit_budget", "ns/exit", xbudget + 1, p.reps,
	       BENCH_NR_FLOORS, 0);
	report(res, "exit round trip, refused write", "exit_spp", "ns/exit", xspp + 1, p.reps,
	       BENCH_NR_FLOORS, 0);
	printf("  floors: read+write %.2f, read %.2f ns/entry\n", floor_rw, floor_rd);
	return bench_results_finish(res, &p.cm);
}
