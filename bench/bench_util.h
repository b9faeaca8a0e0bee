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

/* "1g", "512m", "4096": bytes; -EINVAL when it is none of those. */
int bench_parse_size(const char *s, uint64_t *out);
uint64_t bench_median(uint64_t *v, int n);

#endif /* KMMU_BENCH_UTIL_H */
