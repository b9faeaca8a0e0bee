/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What every bench driver shares: the same-run floors its figures are
 * compared with, size parsing, medians.
 */
#ifndef KMMU_BENCH_UTIL_H
#define KMMU_BENCH_UTIL_H

#include <stdbool.h>
#include <stdint.h>

/*
 * The physical floors, per 8-byte entry, over @entries entries packed 512
 * to a 4 KiB page like SPTEs in page tables: one cmpxchg each (a fault
 * installs one SPTE), or one locked read-modify-write each (a pass that
 * changes every SPTE).  Median of five runs, in ns.
 */
double bench_floor_cmpxchg(uint64_t entries);
double bench_floor_locked_rmw(uint64_t entries);

/* The options every driver takes, with the same letters and checks. */
struct bench_common {
	int vcpus;			/* -v */
	uint64_t bytes_per_vcpu;	/* -b */
	int backing;			/* -s: enum kmmu_backing */
	uint32_t format;		/* -F: KMMU_SPTE_FORMAT_* */
};

#define BENCH_COMMON_OPTS	"v:b:s:F:"
#define BENCH_COMMON_HELP \
	" -v: vCPUs, each on its own range (default: 1)\n" \
	" -b: bytes of guest memory per vCPU, with k/m/g suffixes (default: 1g)\n" \
	" -F: SPTE format: default, ept, npt (default: default, the CPU's)\n"

/* 1 when @c was a common option and is now in @cm, 0 when it is not one, -EINVAL. */
int bench_parse_common(int c, const char *arg, struct bench_common *cm);
/* A decimal in [lo, hi]; -EINVAL otherwise. */
int bench_parse_int(const char *s, int lo, int hi, int *out);

/* "1g", "512m", "4096": bytes; -EINVAL when it is none of those. */
int bench_parse_size(const char *s, uint64_t *out);
/* The median of @n values; sorts @v. */
uint64_t bench_median(uint64_t *v, int n);
double bench_median_d(double *v, int n);

#endif /* KMMU_BENCH_UTIL_H */
