// SPDX-License-Identifier: GPL-2.0
/* The same-run floors and small helpers of the bench drivers. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bench_util.h"
#include "kmmu_lib.h"

#define FLOOR_RUNS	BENCH_FLOOR_RUNS

static uint64_t *floor_entries(uint64_t entries, size_t *bytes)
{
	uint64_t *e;

	*bytes = (entries * 8 + 4095) & ~4095ULL;
	e = mmap(NULL, *bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (e == MAP_FAILED)
		return NULL;
	memset(e, 0, *bytes);
	return e;
}

static double floor_run(uint64_t entries, bool cmpxchg, double *samples)
{
	uint64_t ns[FLOOR_RUNS], i, t0, *e;
	size_t bytes;
	int r;

	e = floor_entries(entries, &bytes);
	if (!e)
		return 0;
	for (r = 0; r < FLOOR_RUNS; r++) {
		t0 = kmmu_now_ns();
		for (i = 0; i < entries; i++) {
			if (cmpxchg) {
				uint64_t old = e[i];

				__atomic_compare_exchange_n(&e[i], &old, old + 1, false,
							    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
			} else {
				__atomic_fetch_and(&e[i], ~(1ULL << 8), __ATOMIC_SEQ_CST);
			}
		}
		ns[r] = kmmu_now_ns() - t0;
		if (samples)
			samples[r] = (double)ns[r] / entries;
	}
	munmap(e, bytes);
	return (double)bench_median(ns, FLOOR_RUNS) / entries;
}

double bench_floor_cmpxchg(uint64_t entries, double *samples)
{
	return floor_run(entries, true, samples);
}

double bench_floor_locked_rmw(uint64_t entries, double *samples)
{
	return floor_run(entries, false, samples);
}

void bench_common_params(struct bench_results *r, const struct bench_common *cm)
{
	bench_results_param_int(r, "vcpus", cm->vcpus);
	bench_results_param_int(r, "bytes_per_vcpu", cm->bytes_per_vcpu);
	bench_results_param_str(r, "backing", kmmu_backing_name(cm->backing));
	bench_results_param_str(r, "spte_format", cm->format == KMMU_SPTE_FORMAT_EPT ? "ept" :
				cm->format == KMMU_SPTE_FORMAT_NPT ? "npt" : "default");
}

void bench_add_per_page(struct bench_results *r, const char *metric, const uint64_t *ns, int n,
			uint64_t pages, const char *floor)
{
	double v[1000];
	int i;

	for (i = 0; i < n && i < 1000; i++)
		v[i] = (double)ns[i] / pages;
	bench_results_add(r, metric, "ns/4K", true, v, i, floor);
}

int bench_results_finish(struct bench_results *r, const struct bench_common *cm)
{
	int ret = 0;

	if (r && cm->out) {
		ret = bench_results_write(r, cm->out);
		if (ret)
			fprintf(stderr, "cannot write results to %s: %s\n", cm->out, strerror(-ret));
		else
			printf("results: appended to %s\n", cm->out);
	}
	bench_results_free(r);
	return !!ret;
}

int bench_parse_int(const char *s, int lo, int hi, int *out)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*end || end == s || v < lo || v > hi)
		return -EINVAL;
	*out = v;
	return 0;
}

int bench_parse_common(int c, const char *arg, struct bench_common *cm)
{
	enum kmmu_backing b;

	switch (c) {
	case 'v':
		return bench_parse_int(arg, 1, KMMU_LIB_MAX_VCPUS, &cm->vcpus) ?: 1;
	case 'b':
		if (bench_parse_size(arg, &cm->bytes_per_vcpu) || cm->bytes_per_vcpu % 4096)
			return -EINVAL;
		return 1;
	case 's':
		if (kmmu_backing_parse(arg, &b) || b == KMMU_BACKING_PFNMAP)
			return -EINVAL;
		cm->backing = b;
		return 1;
	case 'o':
		cm->out = arg;
		return 1;
	case 'F':
		if (!strcmp(arg, "ept"))
			cm->format = KMMU_SPTE_FORMAT_EPT;
		else if (!strcmp(arg, "npt"))
			cm->format = KMMU_SPTE_FORMAT_NPT;
		else if (!strcmp(arg, "default"))
			cm->format = KMMU_SPTE_FORMAT_DEFAULT;
		else
			return -EINVAL;
		return 1;
	default:
		return 0;
	}
}

int bench_parse_size(const char *s, uint64_t *out)
{
	char *end;
	uint64_t v = strtoull(s, &end, 0);

	switch (*end) {
	case 'g': case 'G':
		v <<= 10;
		/* fall through */
	case 'm': case 'M':
		v <<= 10;
		/* fall through */
	case 'k': case 'K':
		v <<= 10;
		end++;
		break;
	}
	if (*end || !v)
		return -EINVAL;
	*out = v;
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

uint64_t bench_median(uint64_t *v, int n)
{
	qsort(v, n, sizeof(*v), cmp_u64);
	return v[n / 2];
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double bench_median_d(double *v, int n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return v[n / 2];
}
