// SPDX-License-Identifier: GPL-2.0
/*
 * populate: how fast kmmu faults memory in.  Every vCPU writes one word per
 * 4 KiB page of its own range of a fresh VM, so every access is a TDP
 * fault that installs one 4K SPTE.  Reported per fault, with the backing
 * already faulted in on the host (the MMU's own cost) and without (plus the
 * host's page faults), next to a floor measured in the same run: one
 * cmpxchg per 8-byte entry over as many entries as faults, laid out 512 to
 * a 4 KiB page like SPTEs in page tables.  With --scaling it also runs 1
 * vCPU over the whole range, each repetition back to back with one of V
 * vCPUs over disjoint parts of it, and reports the throughput ratio of
 * each pair: faults take mmu_lock for read only and must not serialize.
 * With --nested it also runs the vCPUs as L2 guests (KMMU_WL_NESTED) through an L1 identity map of 4K leaves, so that each
 * fault is a nested one: L1's tables walked, then a shadow fault that maps
 * the L2 gpa to the host page; reported per fault beside the unnested
 * figure of the same run.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"

#define PAGE		BENCH_PAGE
#define MAX_REPS	1000

struct params {
	struct bench_common cm;
	int reps;
	int prefault;		/* 1 = only prefaulted, 0 = only not, -1 = both */
	bool scaling;
	bool nested;
};

static void help(const char *name)
{
	printf("usage: %s [-h] [-v vcpus] [-b bytes] [-s backing] [-r reps] [-F format]\n"
	       "          [-p yes|no|both] [--scaling] [--nested] [-o results.json]\n"
	       "          [--pressure tool]\n\n",
	       name);
	printf(BENCH_COMMON_HELP);
	printf(" -s: backing: anonymous, anonymous_thp, anonymous_hugetlb_2mb,\n"
	       "     anonymous_hugetlb_1gb, shmem, pfnmap (VM_PFNMAP memory; on dev from\n"
	       "     the kmmu_test module, at most 1020k in all) (default: anonymous)\n");
	printf(" -r: repetitions of each figure; the median is reported (default: 5)\n");
	printf(" -p: backing faulted in on the host before the run: yes, no or both (default: both)\n");
	printf(" --scaling: also run 1 vCPU over vcpus x bytes and report the throughput\n"
	       "     of -v vCPUs relative to it (default: off)\n");
	printf(" --nested: also run the vCPUs as L2 guests through L1's EPT/NPT tables\n"
	       "     (an identity map of 4K leaves), prefaulted; not on -B hw, whose\n"
	       "     vCPUs run their guests unnested\n"
	       "     (default: off)\n");
	printf(BENCH_BACKEND_HELP);
}

#define OPT_SCALING	0x100
#define OPT_NESTED	0x101

static int parse(int c, const char *arg, void *data)
{
	struct params *p = data;

	switch (c) {
	case 'r':
		return bench_parse_int(arg, 1, MAX_REPS, &p->reps);
	case 'p':
		if (!strcmp(arg, "yes"))
			p->prefault = 1;
		else if (!strcmp(arg, "no"))
			p->prefault = 0;
		else if (!strcmp(arg, "both"))
			p->prefault = -1;
		else
			return -EINVAL;
		return 0;
	case OPT_SCALING:
		p->scaling = true;
		return 0;
	case OPT_NESTED:
		p->nested = true;
		return 0;
	default:
		return -EINVAL;
	}
}

static const struct option longopts[] = {
	{ "scaling", no_argument, NULL, OPT_SCALING },
	{ "nested", no_argument, NULL, OPT_NESTED },
	{ NULL, 0, NULL, 0 },
};

static const char *check(void *data)
{
	const struct params *p = data;

	return bench_nested_refusal(p->nested);
}

static const struct bench_args args = {
	.name = "populate",
	.opts = "r:p:",
	.longopts = longopts,
	.parse = parse,
	.check = check,
	.help = help,
	/* The first repetition after one warm-up was 10-35% slower than the rest. */
	.warmup = 2,
};

/* Every page took a walk of L1's tables: the figure is of nested faults. */
static void check_nested_walks(struct bench_vm *bv, uint64_t pages)
{
	uint64_t walks = 0, n;
	int i, fd;

	for (i = 0; i < bv->nr_vcpus; i++) {
		fd = kmmu_vcpu_stats_fd(bv->vcpus[i].vcpu);
		bench_must(fd < 0 ? fd : kmmu_stats_get(fd, "nested_walks", &n), "vCPU stats");
		kmmu_close(fd);
		walks += n;
	}
	if (walks < pages) {
		fprintf(stderr, "populate: %llu nested walks for %llu pages\n",
			(unsigned long long)walks, (unsigned long long)pages);
		exit(1);
	}
}

/*
 * Populate @total bytes with @nvcpus vCPUs on equal disjoint parts, in a
 * fresh VM, as L2 guests when @nested.  Returns the wall time from the
 * first vCPU's start to the last one's end, in ns; exits on a failure.
 */
/*
 * The prefaulted memory, allocated and faulted in once and kept for every
 * prefaulted VM after: prefaulting 1 GiB again took seconds a repetition
 * against 40 ms of faults, and each repetition got other frames, placed
 * otherwise in the host's own tables, which moved the figure by itself.
 */
static struct kmmu_mem prefaulted;
static uint64_t prefaulted_bytes;	/* asked for: .size is rounded up to the backing's page */

static const struct kmmu_mem *prefaulted_mem(const struct params *p, uint64_t total)
{
	if (prefaulted.addr && prefaulted_bytes != total) {
		kmmu_mem_free(&prefaulted);
		memset(&prefaulted, 0, sizeof(prefaulted));
	}
	if (!prefaulted.addr) {
		bench_must(kmmu_mem_alloc(&prefaulted, p->cm.backing, total), "prefaulted memory");
		kmmu_mem_prefault(&prefaulted);
		prefaulted_bytes = total;
	}
	return &prefaulted;
}

static uint64_t populate_once(const struct params *p, int nvcpus, uint64_t total, bool prefault,
			      bool nested)
{
	struct kmmu_vm_config cfg = { .spte_format = p->cm.format };
	struct kmmu_mem tables = { 0 };
	struct kmmu_vm_stats st;
	struct bench_vm bv;
	uint64_t ns;

	if (prefault)
		bench_vm_create_on(&bv, prefaulted_mem(p, total), total, &cfg);
	else
		bench_vm_create(&bv, p->cm.backing, total, &cfg);
	bench_vm_setup(&bv, nvcpus);
	if (nested)
		bench_nested_setup(&bv, &tables, "populate");
	ns = bench_vm_run(&bv);
	bench_vm_stats(&bv, &st);
	/* L2's pages are shadow leaves, L1's own mappings are not made. */
	if (nested && (st.shadow_leaves != total / PAGE || st.pages_4k + st.pages_2m + st.pages_1g)) {
		fprintf(stderr, "populate: %llu shadow leaves and %llu TDP leaves, expected %llu and 0\n",
			st.shadow_leaves, st.pages_4k + st.pages_2m + st.pages_1g,
			(unsigned long long)(total / PAGE));
		exit(1);
	}
	if (!nested && st.pages_4k + st.pages_2m * 512 + st.pages_1g * 512 * 512 != total / PAGE) {
		fprintf(stderr, "populate: mapped %llu 4K + %llu 2M + %llu 1G, expected %llu pages\n",
			st.pages_4k, st.pages_2m, st.pages_1g, (unsigned long long)(total / PAGE));
		exit(1);
	}
	if (nested)
		check_nested_walks(&bv, total / PAGE);
	bench_vm_free(&bv);
	if (nested)
		kmmu_mem_free(&tables);
	return ns;
}

/* One repetition (0: a warm-up, -W, not counted), printed; its wall time in ns. */
static uint64_t rep_once(const struct params *p, const char *label, int rep, int nvcpus,
			 uint64_t total, bool prefault, bool nested)
{
	uint64_t t = populate_once(p, nvcpus, total, prefault, nested), faults = total / PAGE;

	printf("%-28s rep %d/%d: %2d vCPU %9llu faults %9.1f ms %8.1f ns/fault%s\n", label, rep,
	       p->reps, nvcpus, (unsigned long long)faults, t / 1e6, (double)t * nvcpus / faults,
	       rep ? "" : " (warm-up)");
	return t;
}

/*
 * Add the wall times @ns of p->reps repetitions to @res as @metric (ns per
 * fault per vCPU); return their median.
 */
static uint64_t add_figure(const struct params *p, struct bench_results *res, const char *metric,
			   int nvcpus, uint64_t total, bool prefault, bool nested,
			   const uint64_t *ns)
{
	uint64_t sorted[MAX_REPS], faults = total / PAGE;
	double per[MAX_REPS];
	int r;

	for (r = 0; r < p->reps; r++) {
		per[r] = (double)ns[r] * nvcpus / faults;
		sorted[r] = ns[r];
	}
	bench_results_param_int(res, "fault_vcpus", nvcpus);
	bench_results_param_str(res, "prefaulted", prefault ? "yes" : "no");
	/* Only on nested figures, which come last: the others' series stay as they were. */
	if (nested)
		bench_results_param_str(res, "nested", "yes");
	bench_add(res, metric, "ns/fault", true, per, p->reps, BENCH_FLOOR_CMPXCHG);
	return bench_median(sorted, p->reps);
}

/*
 * Run one figure p->reps times, print each, add it to @res as @metric
 * (ns per fault per vCPU), return the median wall time.
 */
static uint64_t figure(const struct params *p, struct bench_results *res, const char *metric,
		       const char *label, int nvcpus, uint64_t total, bool prefault, bool nested)
{
	uint64_t ns[MAX_REPS];
	int r;

	for (r = 0; r < p->cm.warmup; r++)
		rep_once(p, label, 0, nvcpus, total, prefault, nested);
	for (r = 0; r < p->reps; r++)
		ns[r] = rep_once(p, label, r + 1, nvcpus, total, prefault, nested);
	return add_figure(p, res, metric, nvcpus, total, prefault, nested, ns);
}

/*
 * --scaling: all the vCPUs on their parts and one vCPU on the whole, both
 * prefaulted, in repetitions of one run each back to back (in turn first),
 * so that the host's pace at the time moves both alike and the ratio of a
 * repetition's pair leaves it out.
 */
static void scaling_pairs(const struct params *p, uint64_t total, uint64_t *ns_all,
			  uint64_t *ns_one)
{
	static const char * const label[2] = { "prefaulted", "prefaulted, 1 vCPU, all" };
	const int nvcpus[2] = { p->cm.vcpus, 1 };
	uint64_t *ns[2] = { ns_all, ns_one };
	int r, k;

	for (r = 0; r < p->cm.warmup; r++)
		for (k = 0; k < 2; k++)
			rep_once(p, label[k], 0, nvcpus[k], total, true, false);
	for (r = 0; r < p->reps; r++) {
		for (k = 0; k < 2; k++) {
			int which = (r + k) % 2;

			ns[which][r] = rep_once(p, label[which], r + 1, nvcpus[which], total,
						true, false);
		}
	}
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
		.prefault = -1,
		.scaling = false,
		.nested = false,
	};
	uint64_t total, faults, med_pre = 0, med_nopre = 0, med_one = 0, med_nested = 0;
	uint64_t ns_pre[MAX_REPS], ns_one[MAX_REPS];
	double floor_ns, ratio[MAX_REPS];
	struct bench_results *res;
	bool pairs;
	int r;

	if (bench_parse_args(argc, argv, &args, &p.cm, &p))
		return 2;
	if (bench_begin(&p.cm))
		return 1;
	res = bench_results_new("populate");
	if (!res)
		return 1;
	total = p.cm.bytes_per_vcpu * p.cm.vcpus;
	faults = total / PAGE;

	printf("populate: backend=%s format=%s backing=%s vcpus=%d bytes/vcpu=%llu reps=%d\n",
	       kmmu_backend_name(),
	       p.cm.format == KMMU_SPTE_FORMAT_NPT ? "npt" : p.cm.format == KMMU_SPTE_FORMAT_EPT ?
	       "ept" : "default", kmmu_backing_name(p.cm.backing), p.cm.vcpus,
	       (unsigned long long)p.cm.bytes_per_vcpu, p.reps);
	bench_common_params(res, &p.cm);
	floor_ns = bench_floor(res, BENCH_FLOOR_CMPXCHG, faults);

	/* --scaling without prefaulting has no pairs to compare: -p no leaves it out. */
	pairs = p.scaling && p.prefault != 0;
	if (pairs) {
		scaling_pairs(&p, total, ns_pre, ns_one);
		med_pre = add_figure(&p, res, "populate", p.cm.vcpus, total, true, false, ns_pre);
	} else if (p.prefault != 0) {
		med_pre = figure(&p, res, "populate", "prefaulted", p.cm.vcpus, total, true, false);
	}
	if (p.prefault != 1)
		med_nopre = figure(&p, res, "populate", "not prefaulted", p.cm.vcpus, total,
				   false, false);
	if (pairs) {
		med_one = add_figure(&p, res, "populate", 1, total, true, false, ns_one);
		/* Pages per second with all vCPUs over with one, repetition by repetition. */
		for (r = 0; r < p.reps; r++)
			ratio[r] = (double)ns_one[r] / ns_pre[r];
		bench_results_param_int(res, "fault_vcpus", p.cm.vcpus);
		bench_results_add(res, "scaling", "x", false, ratio, p.reps, NULL);
	}
	if (p.nested)
		med_nested = figure(&p, res, "populate", "nested, prefaulted", p.cm.vcpus, total,
				    true, true);

	printf("\nsummary (median of %d):\n", p.reps);
	if (med_pre)
		printf("  populate prefaulted     %2d vCPU: %8.1f ns/fault per vCPU (%.1fx floor)\n",
		       p.cm.vcpus, (double)med_pre * p.cm.vcpus / faults,
		       (double)med_pre * p.cm.vcpus / faults / floor_ns);
	if (med_nopre)
		printf("  populate not prefaulted %2d vCPU: %8.1f ns/fault per vCPU (%.1fx floor)\n",
		       p.cm.vcpus, (double)med_nopre * p.cm.vcpus / faults,
		       (double)med_nopre * p.cm.vcpus / faults / floor_ns);
	if (med_nested)
		printf("  populate nested         %2d vCPU: %8.1f ns/fault per vCPU (%.1fx floor%s)\n",
		       p.cm.vcpus, (double)med_nested * p.cm.vcpus / faults,
		       (double)med_nested * p.cm.vcpus / faults / floor_ns,
		       med_pre ? "" : ", no unnested prefaulted figure to compare");
	if (med_nested && med_pre)
		printf("  nested: %.2fx the time of an unnested prefaulted fault\n",
		       (double)med_nested / med_pre);
	if (med_one && med_pre)
		printf("  scaling: %d vCPUs fault %.2fx as many pages per second as 1 vCPU\n",
		       p.cm.vcpus, bench_median_d(ratio, p.reps));
	printf("  floor: %.2f ns/entry\n", floor_ns);
	if (prefaulted.addr)
		kmmu_mem_free(&prefaulted);
	return bench_results_finish(res, &p.cm);
}
