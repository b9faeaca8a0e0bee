/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What every bench driver shares: the same-run floors its figures are
 * compared with, size parsing, medians.
 */
#ifndef KMMU_BENCH_UTIL_H
#define KMMU_BENCH_UTIL_H

#include <stdbool.h>
#include <stdint.h>

#include "results.h"

#define BENCH_FLOOR_RUNS	5

/*
 * The physical floors, per 8-byte entry, over @entries entries packed 512
 * to a 4 KiB page like SPTEs in page tables: one cmpxchg each (a fault
 * installs one SPTE), or one locked read-modify-write each (a pass that
 * changes every SPTE).  Median of BENCH_FLOOR_RUNS runs, in ns; each run's
 * figure in @samples when not NULL.
 */
double bench_floor_cmpxchg(uint64_t entries, double *samples);
double bench_floor_locked_rmw(uint64_t entries, double *samples);

/* The options every driver takes, with the same letters and checks. */
struct bench_common {
	int vcpus;			/* -v */
	uint64_t bytes_per_vcpu;	/* -b */
	int backing;			/* -s: enum kmmu_backing */
	uint32_t format;		/* -F: KMMU_SPTE_FORMAT_* */
	const char *out;		/* -o: JSON results document to append to */
};

#define BENCH_COMMON_OPTS	"v:b:s:F:o:"
#define BENCH_COMMON_HELP \
	" -v: vCPUs, each on its own range (default: 1)\n" \
	" -b: bytes of guest memory per vCPU, with k/m/g suffixes (default: 1g)\n" \
	" -F: SPTE format: default, ept, npt (default: default, the CPU's)\n" \
	" -o: append the results to this JSON document, created if missing\n" \
	"     (schema: bench/README.md) (default: none)\n"

/* 1 when @c was a common option and is now in @cm, 0 when it is not one, -EINVAL. */
int bench_parse_common(int c, const char *arg, struct bench_common *cm);
/* A decimal in [lo, hi]; -EINVAL otherwise. */
int bench_parse_int(const char *s, int lo, int hi, int *out);

/* "1g", "512m", "4096": bytes; -EINVAL when it is none of those. */
int bench_parse_size(const char *s, uint64_t *out);
/* The common options as parameters of the figures added next. */
void bench_common_params(struct bench_results *r, const struct bench_common *cm);
/* A figure from @n totals in ns over @pages 4 KiB pages each: ns/4K samples. */
void bench_add_per_page(struct bench_results *r, const char *metric, const uint64_t *ns, int n,
			uint64_t pages, const char *floor);
/* Write @r to -o's document, if one was asked for, and free it.  0 or 1 (failed). */
int bench_results_finish(struct bench_results *r, const struct bench_common *cm);

/* The median of @n values; sorts @v. */
uint64_t bench_median(uint64_t *v, int n);
double bench_median_d(double *v, int n);

#endif /* KMMU_BENCH_UTIL_H */
