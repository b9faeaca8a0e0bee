/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The JSON results document of a bench run (schema: bench/README.md and
 * bench/results.schema.json).  A driver adds its figures, each with the raw
 * samples of every repetition, and the floors they are compared with;
 * bench_results_write() appends them to the document at a path, creating
 * it (with the commit and the host) when it does not exist, so the drivers
 * of one `make bench` fill one document.
 */
#ifndef KMMU_BENCH_RESULTS_H
#define KMMU_BENCH_RESULTS_H

#include <stdbool.h>
#include <stdint.h>

#define BENCH_SCHEMA		"kmmu-bench-results"
#define BENCH_SCHEMA_VERSION	1

struct bench_results;

/* A new set of results of @bench (the driver's name); NULL without memory. */
struct bench_results *bench_results_new(const char *bench);
void bench_results_free(struct bench_results *r);

/* Parameters of the figures added from now on (a copy is taken per figure). */
void bench_results_param_int(struct bench_results *r, const char *key, long long v);
void bench_results_param_str(struct bench_results *r, const char *key, const char *v);

/* A floor measured in this run: @samples ns per entry, over @entries entries. */
void bench_results_floor(struct bench_results *r, const char *metric, uint64_t entries,
			 const double *samples, int n);

/*
 * One figure: @n samples in @unit, and the floor (by metric name, NULL for
 * none) it is compared with.
 */
void bench_results_add(struct bench_results *r, const char *metric, const char *unit,
		       bool lower_is_better, const double *samples, int n, const char *floor);

/* Append to the document at @path (created if missing).  0 or -errno. */
int bench_results_write(struct bench_results *r, const char *path);

#endif /* KMMU_BENCH_RESULTS_H */
