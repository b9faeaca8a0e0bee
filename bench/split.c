// SPDX-License-Identifier: GPL-2.0
/*
 * split: what enabling dirty logging costs when it splits every huge
 * mapping eagerly, and what disabling it costs when it rebuilds them (huge
 * page recovery), on 2M and 1G backings.  Each repetition populates a
 * fresh VM with huge mappings, enables logging (timed: every huge SPTE is
 * split down to 4K), and disables it (timed: the 4K tables are recovered
 * into huge SPTEs in place).  Both are reported per 4 KiB page next to
 * the same-run floors: a split writes each 4K SPTE of the new tables once
 * from the huge one (one plain read and write per 8-byte entry); a
 * recovery reads each 4K SPTE of a table to rebuild the huge one (one
 * plain read per entry).  The huge SPTEs split and recovered, counted by
 * the MMU's statistics, are reported too, and a run where logging is
 * disabled without a recovery fails.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"

#define PAGE		BENCH_PAGE
#define MAX_REPS	100

struct params {
	struct bench_common cm;
	int reps;
	uint32_t mode;
	uint64_t split_chunk;
};

static void help(const char *name)
{
	printf("usage: %s [-h] [-v vcpus] [-b bytes] [-s backing] [-r reps] [-m wrprot|dbit]\n"
	       "          [-e chunk] [-F format] [-o results.json] [--pressure tool]\n\n", name);
	printf(BENCH_COMMON_HELP);
	printf(" -s: backing with huge pages: anonymous_hugetlb_2mb, anonymous_hugetlb_1gb,\n"
	       "     anonymous_thp (default: anonymous_hugetlb_2mb)\n");
	printf(" -r: repetitions, each in a fresh VM; medians are reported (default: 5)\n");
	printf(" -m: dirty logging mode: wrprot or dbit (default: wrprot)\n");
	printf(" -e: eager split chunk size with k/m/g suffixes, not 0 (default: 64m)\n");
	printf(BENCH_BACKEND_HELP);
}

static int parse(int c, const char *arg, void *data)
{
	struct params *p = data;

	switch (c) {
	case 'r':
		return bench_parse_int(arg, 1, MAX_REPS, &p->reps);
	case 'm':
		return bench_parse_log_mode(arg, &p->mode);
	case 'e':
		return bench_parse_size(arg, &p->split_chunk);
	default:
		return -EINVAL;
	}
}

static const char *check(void *data)
{
	struct params *p = data;

	switch (p->cm.backing) {
	case KMMU_BACKING_HUGETLB_2M:
	case KMMU_BACKING_HUGETLB_1G:
	case KMMU_BACKING_ANON_THP:
		return NULL;
	default:
		return "-s: a backing with huge pages: anonymous_hugetlb_2mb, "
		       "anonymous_hugetlb_1gb or anonymous_thp";
	}
}

static const struct bench_args args = {
	.name = "split",
	.opts = "r:m:e:",
	.parse = parse,
	.check = check,
	.help = help,
};

/* One repetition: in ns for the whole slot, and huge SPTEs. */
struct run_result {
	uint64_t enable, disable;
	uint64_t split, recovered;
};

static unsigned long long huge_leaves(const struct kmmu_vm_stats *st)
{
	return st->pages_2m + st->pages_1g;
}

static void one_run(const struct params *p, int rep, struct run_result *r)
{
	struct kmmu_vm_config cfg = { .spte_format = p->cm.format };
	uint64_t total = p->cm.bytes_per_vcpu * p->cm.vcpus;
	struct kmmu_vm_stats before, split, after;
	struct bench_vm bv;
	uint64_t ns;

	bench_vm_create(&bv, p->cm.backing, total, &cfg);
	bench_must(kmmu_vm_enable_cap(bv.vm, KMMU_CAP_DIRTY_LOG_MODE, p->mode), "mode");
	bench_must(kmmu_vm_enable_cap(bv.vm, KMMU_CAP_EAGER_SPLIT_CHUNK_SIZE, p->split_chunk),
		   "chunk");
	bench_vm_setup(&bv, p->cm.vcpus);
	ns = bench_vm_run(&bv);
	bench_vm_stats(&bv, &before);
	if (!huge_leaves(&before)) {
		fprintf(stderr, "split: run %d: populating %s mapped no huge page "
			"(%llu 4K leaves)\n", rep, kmmu_backing_name(p->cm.backing),
			before.pages_4k);
		exit(1);
	}

	r->enable = bench_vm_set_logging(&bv, true);
	bench_vm_stats(&bv, &split);
	r->split = split.splits - before.splits;

	r->disable = bench_vm_set_logging(&bv, false);
	bench_vm_stats(&bv, &after);
	r->recovered = after.recoveries - split.recoveries;

	printf("run %d/%d: populated %llu 2M + %llu 1G leaves in %.1f ms; enable logging "
	       "%.3f ms, %llu huge SPTEs split (now %llu 4K, %llu 2M, %llu 1G); disable "
	       "logging %.3f ms, %llu recovered, %llu zapped (now %llu 4K, %llu 2M, %llu 1G)\n",
	       rep, p->reps, before.pages_2m, before.pages_1g, ns / 1e6, r->enable / 1e6,
	       (unsigned long long)r->split, split.pages_4k, split.pages_2m, split.pages_1g,
	       r->disable / 1e6, (unsigned long long)r->recovered,
	       after.collapsible_zaps - split.collapsible_zaps, after.pages_4k, after.pages_2m,
	       after.pages_1g);
	if (!r->split || huge_leaves(&split)) {
		fprintf(stderr, "split: run %d: enabling logging left %llu huge leaves of %llu "
			"(%llu splits)\n", rep, huge_leaves(&split), huge_leaves(&before),
			(unsigned long long)r->split);
		exit(1);
	}
	if (!r->recovered || !huge_leaves(&after)) {
		fprintf(stderr, "split: run %d: disabling logging recovered no huge page "
			"(%llu recoveries; %llu huge leaves, %llu before logging)\n", rep,
			(unsigned long long)r->recovered, huge_leaves(&after),
			huge_leaves(&before));
		exit(1);
	}
	if (huge_leaves(&after) != huge_leaves(&before))
		printf("run %d/%d: %llu huge leaves after recovery, %llu before logging\n", rep,
		       p->reps, huge_leaves(&after), huge_leaves(&before));
	bench_vm_free(&bv);
}

int main(int argc, char **argv)
{
	struct params p = {
		.cm = {
			.vcpus = 1,
			.bytes_per_vcpu = 1ULL << 30,
			.backing = KMMU_BACKING_HUGETLB_2M,
			.format = KMMU_SPTE_FORMAT_DEFAULT,
		},
		.reps = 5,
		.mode = KMMU_DIRTY_LOG_MODE_WRPROT,
		.split_chunk = 64ULL << 20,
	};
	uint64_t en[MAX_REPS], dis[MAX_REPS], pages;
	double split[MAX_REPS], recovered[MAX_REPS], floor_rw, floor_read;
	struct bench_results *res;
	struct run_result r;
	int i;

	if (bench_parse_args(argc, argv, &args, &p.cm, &p))
		return 2;
	if (bench_begin(&p.cm))
		return 1;
	res = bench_results_new("split");
	if (!res)
		return 1;
	pages = p.cm.bytes_per_vcpu * p.cm.vcpus / PAGE;
	printf("split: backend=%s backing=%s vcpus=%d bytes/vcpu=%llu mode=%s split_chunk=%llu "
	       "reps=%d\n", kmmu_backend_name(), kmmu_backing_name(p.cm.backing), p.cm.vcpus,
	       (unsigned long long)p.cm.bytes_per_vcpu,
	       p.mode == KMMU_DIRTY_LOG_MODE_DBIT ? "dbit" : "wrprot",
	       (unsigned long long)p.split_chunk, p.reps);
	bench_common_params(res, &p.cm);
	bench_results_param_str(res, "mode",
				p.mode == KMMU_DIRTY_LOG_MODE_DBIT ? "dbit" : "wrprot");
	bench_results_param_int(res, "split_chunk", p.split_chunk);
	floor_rw = bench_floor(res, BENCH_FLOOR_READ_WRITE, pages);
	floor_read = bench_floor(res, BENCH_FLOOR_READ, pages);

	/* Warm-up runs (-W) are run 0, not counted. */
	for (i = 0; i < p.cm.warmup; i++)
		one_run(&p, 0, &r);
	for (i = 0; i < p.reps; i++) {
		one_run(&p, i + 1, &r);
		en[i] = r.enable;
		dis[i] = r.disable;
		split[i] = r.split;
		recovered[i] = r.recovered;
	}

	bench_add_per_page(res, "enable_logging", en, p.reps, pages, BENCH_FLOOR_READ_WRITE);
	bench_add_per_page(res, "disable_logging", dis, p.reps, pages, BENCH_FLOOR_READ);
	bench_results_add(res, "huge_pages_split", "SPTEs", false, split, p.reps, NULL);
	bench_results_add(res, "huge_pages_recovered", "SPTEs", false, recovered, p.reps, NULL);

	printf("\nsummary (median of %d, per 4 KiB page of guest memory):\n", p.reps);
	printf("  enable logging (eager split)  %8.2f ns/4K  (%5.1fx floor read_write)\n",
	       (double)bench_median(en, p.reps) / pages,
	       (double)bench_median(en, p.reps) / pages / floor_rw);
	printf("  disable logging (recovery)    %8.2f ns/4K  (%5.1fx floor read)\n",
	       (double)bench_median(dis, p.reps) / pages,
	       (double)bench_median(dis, p.reps) / pages / floor_read);
	printf("  huge SPTEs split %.0f, recovered %.0f\n", bench_median_d(split, p.reps),
	       bench_median_d(recovered, p.reps));
	printf("  floors: read_write %.2f, read %.2f ns/entry\n", floor_rw, floor_read);
	return bench_results_finish(res, &p.cm);
}
