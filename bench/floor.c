// SPDX-License-Identifier: GPL-2.0
/*
 * floor: the physical floors on this host that every other driver
 * measures in its own run and compares its figures with, all of them
 * side by side: a plain read, a plain read and write, a locked
 * read-modify-write and a compare-and-exchange per 8-byte entry, over as
 * many entries as the guest memory has 4 KiB pages, packed 512 to a 4 KiB
 * page like SPTEs in page tables.  Each is recorded as a floor of the run
 * and as a figure of its own.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_util.h"

#define MAX_REPS	100

struct params {
	struct bench_common cm;
	int reps;
};

static void help(const char *name)
{
	printf("usage: %s [-h] [-v vcpus] [-b bytes] [-s backing] [-r reps] [-F format]\n"
	       "          [-o results.json] [--pressure tool]\n\n", name);
	printf(BENCH_COMMON_HELP);
	printf(" -s: the backing the entries stand for, recorded only (default: anonymous)\n");
	printf("     (-F too is only recorded)\n");
	printf(" -r: samples per floor, each as many passes over the entries as last 5 ms;\n"
	       "     the median is reported (default: %d)\n", BENCH_FLOOR_RUNS);
	printf("\nEntries: one per 4 KiB page of vcpus x bytes.\n");
}

static int parse(int c, const char *arg, void *data)
{
	struct params *p = data;

	if (c == 'r')
		return bench_parse_int(arg, 1, MAX_REPS, &p->reps);
	return -EINVAL;
}

static const struct bench_args args = {
	.name = "floor",
	.opts = "r:",
	.parse = parse,
	.help = help,
};

int main(int argc, char **argv)
{
	struct params p = {
		.cm = {
			.vcpus = 1,
			.bytes_per_vcpu = 1ULL << 30,
			.backing = KMMU_BACKING_ANON,
			.format = KMMU_SPTE_FORMAT_DEFAULT,
		},
		.reps = BENCH_FLOOR_RUNS,
	};
	double samples[MAX_REPS], ns[BENCH_NR_FLOORS];
	struct bench_results *res;
	uint64_t entries;
	int f, r;

	if (bench_parse_args(argc, argv, &args, &p.cm, &p))
		return 2;
	if (bench_begin(&p.cm))
		return 1;
	res = bench_results_new("floor");
	if (!res)
		return 1;
	entries = p.cm.bytes_per_vcpu * p.cm.vcpus / BENCH_PAGE;
	printf("floor: %llu 8-byte entries in %llu 4 KiB pages, %d samples each\n",
	       (unsigned long long)entries, (unsigned long long)(entries + 511) / 512, p.reps);
	bench_common_params(res, &p.cm);
	bench_results_param_int(res, "entries", entries);
	for (f = 0; f < BENCH_NR_FLOORS; f++) {
		ns[f] = bench_floor_measure(f, entries, p.reps, samples);
		printf("floor %d/%d %-10s %-26s %8.2f ns/entry (samples:", f + 1, BENCH_NR_FLOORS,
		       bench_floor_name(f), bench_floor_what(f), ns[f]);
		for (r = 0; r < p.reps; r++)
			printf(" %.2f", samples[r]);
		printf(")\n");
		bench_results_floor(res, bench_floor_name(f), entries, samples, p.reps);
		bench_results_add(res, bench_floor_name(f), "ns/entry", true, samples, p.reps,
				  NULL);
	}
	printf("\nsummary (median of %d samples, per 8-byte entry):\n", p.reps);
	for (f = 0; f < BENCH_NR_FLOORS; f++)
		printf("  %-10s %8.2f ns  (%.1fx read)\n", bench_floor_name(f), ns[f],
		       ns[f] / ns[BENCH_FLOOR_READ]);
	return bench_results_finish(res, &p.cm);
}
