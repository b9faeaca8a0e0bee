// SPDX-License-Identifier: GPL-2.0
/*
 * detect.c on synthetic series: known steps in Gaussian noise, pure noise,
 * the reported medians and directions, and the edges of the interface.
 * Prints TAP; exits 1 when a check fails.
 *
 *	detect_test [SCALE [SEED]]
 *
 * SCALE multiplies the number of random series, SEED changes them.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../detect.h"

#define SAMPLES		5	/* raw samples per commit */
#define NOISE		0.01	/* their relative standard deviation */
#define MAX_N		200
#define MAX_STEPS	3
#define MIN_GAP		10	/* commits between steps, and from the ends */
#define NOISE_N		200	/* commits of a noise-only series */
#define MAX_SHOWN	10	/* misses and false alarms printed */

static unsigned int ntest, nfail;

__attribute__((format(printf, 2, 3)))
static void check(int ok, const char *fmt, ...)
{
	va_list ap;

	ntest++;
	if (!ok)
		nfail++;
	printf("%sok %u - ", ok ? "" : "not ", ntest);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

/* splitmix64: the same series on every run and every machine. */
static uint64_t rng_state = 0x6b6d6d7520646574ULL;

static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static double uniform(void)	/* [0, 1) */
{
	return (double)(rnd() >> 11) * 0x1.0p-53;
}

static size_t below(size_t n)
{
	return (size_t)(uniform() * (double)n);
}

static double gauss(void)	/* Box-Muller, one of the pair */
{
	double u = 1 - uniform(), v = uniform();

	return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static int cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	return (x > y) - (x < y);
}

static double median(const double *v, size_t n)
{
	double tmp[MAX_N];

	memcpy(tmp, v, n * sizeof(*v));
	qsort(tmp, n, sizeof(*tmp), cmp_double);
	return n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}

struct series {
	size_t			n;
	double			level[MAX_N];	/* true level per commit */
	double			raw[MAX_N][SAMPLES];
	double			med[MAX_N];
	struct detect_point	pts[MAX_N];
};

/* Samples around s->level[] with relative noise, and their medians. */
static void sample(struct series *s, double noise)
{
	size_t i, j;

	for (i = 0; i < s->n; i++) {
		for (j = 0; j < SAMPLES; j++)
			s->raw[i][j] = s->level[i] * (1 + noise * gauss());
		s->med[i] = median(s->raw[i], SAMPLES);
		s->pts[i] = (struct detect_point){
			.median = s->med[i],
			.samples = s->raw[i],
			.nsamples = SAMPLES,
		};
	}
}

/* Levels from a list of (first commit, level) pairs, the first at 0. */
static void levels(struct series *s, size_t n, unsigned int k, const size_t *at,
		   const double *lv)
{
	unsigned int j = 0;
	size_t i;

	s->n = n;
	for (i = 0; i < n; i++) {
		if (j + 1 < k && i == at[j + 1])
			j++;
		s->level[i] = lv[j];
	}
}

/*
 * A series of 60..MAX_N commits with nsteps steps of +-size at random
 * positions at least MIN_GAP apart; pos[] gets them in order.
 */
static void random_steps_at(struct series *s, unsigned int nsteps, double size, double noise,
			    size_t *pos)
{
	double level = 10 + uniform() * 1000;
	unsigned int k, at;
	size_t i;

	s->n = 60 + below(MAX_N - 60 + 1);
	for (;;) {
		for (k = 0; k < nsteps; k++)
			pos[k] = MIN_GAP + below(s->n - 2 * MIN_GAP + 1);
		qsort(pos, nsteps, sizeof(*pos), cmp_size);
		for (k = 1; k < nsteps; k++)
			if (pos[k] - pos[k - 1] < MIN_GAP)
				break;
		if (k == nsteps)
			break;
	}
	for (i = 0, at = 0; i < s->n; i++) {
		if (at < nsteps && i == pos[at]) {
			level *= rnd() & 1 ? 1 + size : 1 - size;
			at++;
		}
		s->level[i] = level;
	}
	sample(s, noise);
}

static void random_steps(struct series *s, unsigned int nsteps, double size, size_t *pos)
{
	random_steps_at(s, nsteps, size, NOISE, pos);
}

struct tally {
	unsigned int	series, injected, found, missed, falses, errors;
};

/* Runs detection on s and matches its change points to pos[]. */
static void score(const struct series *s, const size_t *pos, unsigned int k,
		  const struct detect_config *cfg, struct tally *t, const char *what)
{
	struct detect_change cps[MAX_N];
	bool dump = false;
	unsigned int j;
	int r, i;

	t->series++;
	t->injected += k;
	r = detect_changes(s->pts, s->n, cfg, cps, MAX_N);
	if (r < 0) {
		t->errors++;
		t->missed += k;
		return;
	}
	for (j = 0; j < k; j++) {
		for (i = 0; i < r; i++)
			if (cps[i].index == pos[j])
				break;
		if (i < r) {
			t->found++;
			continue;
		}
		if (t->missed++ < MAX_SHOWN)
			printf("# %s: missed step at %zu of %zu\n", what, pos[j], s->n);
		dump = true;
	}
	for (i = 0; i < r; i++) {
		for (j = 0; j < k; j++)
			if (cps[i].index == pos[j])
				break;
		if (j < k)
			continue;
		if (t->falses++ < MAX_SHOWN)
			printf("# %s: false change point at %zu of %zu "
			       "(%+.2f%%, p %.2g, U p %.2g)\n", what, cps[i].index, s->n,
			       100 * cps[i].rel_change, cps[i].pvalue, cps[i].mwu_pvalue);
		dump = true;
	}
	/* DETECT_DUMP=1: the medians of a series that went wrong, to replay. */
	if (dump && getenv("DETECT_DUMP")) {
		size_t x;

		printf("# dump %s n %zu:", what, s->n);
		for (x = 0; x < s->n; x++)
			printf(" %.17g", s->med[x]);
		printf("\n# found:");
		for (i = 0; i < r; i++)
			printf(" %zu", cps[i].index);
		putchar('\n');
	}
}

static struct series s;	/* too big for the stack of a sanitized build */

/* Series with 1 to MAX_STEPS steps of @size at 1% noise, scored into @t. */
static void run_steps(double size, unsigned int scale, struct tally *t, char *what,
		      size_t whatlen)
{
	struct detect_config cfg;
	size_t pos[MAX_STEPS];
	unsigned int i;

	detect_config_default(&cfg);
	snprintf(what, whatlen, "%.0f%% steps", 100 * size);
	for (i = 0; i < 40 * scale; i++) {
		unsigned int k = 1 + (unsigned int)below(MAX_STEPS);

		random_steps(&s, k, size, pos);
		score(&s, pos, k, &cfg, t, what);
	}
}

static void test_steps(unsigned int scale, struct tally *all)
{
	static const double sizes[] = { 0.05, 0.07, 0.10, 0.20 };
	unsigned int z;

	for (z = 0; z < sizeof(sizes) / sizeof(*sizes); z++) {
		struct tally t = { 0 };
		char what[32];

		run_steps(sizes[z], scale, &t, what, sizeof(what));
		check(!t.missed && !t.falses && !t.errors,
		      "%s: %u series, injected %u, found %u, missed %u, false %u",
		      what, t.series, t.injected, t.found, t.missed, t.falses);
		all->series += t.series;
		all->injected += t.injected;
		all->found += t.found;
		all->missed += t.missed;
		all->falses += t.falses;
		all->errors += t.errors;
	}
}

/*
 * The threshold follows the noise: steps of 4 times the samples' noise are
 * found at every noise level, where a fixed 2% would miss the quiet ones
 * (shown with noise_factor 0), and a step of 0.8 noises, significant as it
 * is over many commits, is not reported.
 */
static void test_noise_relative(unsigned int scale)
{
	static const double noises[] = { 0.0025, 0.005, 0.01, 0.02 };
	struct detect_config cfg, fixed;
	size_t pos[MAX_STEPS];
	unsigned int z, i;

	detect_config_default(&cfg);
	fixed = cfg;
	fixed.noise_factor = 0;
	for (z = 0; z < sizeof(noises) / sizeof(*noises); z++) {
		struct tally t = { 0 }, f = { 0 }, small = { 0 };
		char what[48];

		snprintf(what, sizeof(what), "4x steps at %.2f%% noise", 100 * noises[z]);
		for (i = 0; i < 40 * scale; i++) {
			unsigned int k = 1 + (unsigned int)below(MAX_STEPS);

			random_steps_at(&s, k, 4 * noises[z], noises[z], pos);
			score(&s, pos, k, &cfg, &t, what);
			score(&s, pos, k, &fixed, &f, "fixed 2%");
			random_steps_at(&s, 1, 0.8 * noises[z], noises[z], pos);
			score(&s, pos, 1, &cfg, &small, "0.8x step");
		}
		check(!t.missed && !t.falses && !t.errors,
		      "%s: injected %u, found %u, missed %u, false %u", what, t.injected,
		      t.found, t.missed, t.falses);
		check(small.found + small.falses == 0,
		      "0.8x steps at %.2f%% noise: none of %u reported (%u)", 100 * noises[z],
		      small.injected, small.found + small.falses);
		printf("# %s with a fixed 2%% instead (not asserted): found %u of %u\n", what,
		       f.found, f.injected);
		if (z == 0)
			check(f.missed > 0, "a fixed 2%% misses 1%% steps at 0.25%% noise (%u of %u)",
			      f.missed, f.injected);
	}
}

static unsigned int test_noise(unsigned int scale, unsigned int *nseries)
{
	static const double louder[] = { 0.02, 0.03, 0.05 };
	struct detect_config cfg;
	struct tally t = { 0 };
	unsigned int i, z;

	detect_config_default(&cfg);
	for (i = 0; i < 50 * scale; i++) {
		levels(&s, NOISE_N, 1, (size_t[]){ 0 }, (double[]){ 10 + uniform() * 1000 });
		sample(&s, NOISE);
		score(&s, NULL, 0, &cfg, &t, "noise");
	}
	check(!t.falses && !t.errors, "noise: %u series x %d commits, %u change points",
	      t.series, NOISE_N, t.falses);
	*nseries = t.series;

	/* Informational: where min_magnitude stops covering for the noise. */
	for (z = 0; z < sizeof(louder) / sizeof(*louder); z++) {
		struct tally l = { 0 };
		char what[32];

		snprintf(what, sizeof(what), "%.0f%% noise", 100 * louder[z]);
		for (i = 0; i < 50 * scale; i++) {
			levels(&s, NOISE_N, 1, (size_t[]){ 0 }, (double[]){ 100 });
			sample(&s, louder[z]);
			score(&s, NULL, 0, &cfg, &l, what);
		}
		printf("# %s, no step (not asserted): %u change points over %u series x %d "
		       "commits\n", what, l.falses, l.series, NOISE_N);
	}
	return t.falses;
}

/* Informational: how far below the 5% guarantee detection still reaches. */
static void test_small_steps(unsigned int scale)
{
	static const double sizes[] = { 0.02, 0.03, 0.04 };
	unsigned int z;

	for (z = 0; z < sizeof(sizes) / sizeof(*sizes); z++) {
		struct tally t = { 0 };
		char what[32];

		run_steps(sizes[z], scale, &t, what, sizeof(what));
		printf("# %s at 1%% noise (not asserted): injected %u, found %u, missed %u, "
		       "false %u\n", what, t.injected, t.found, t.missed, t.falses);
	}
}

/* Informational: how many commits of a new level it takes to see it. */
static void test_tail(unsigned int scale)
{
	struct detect_config cfg;
	unsigned int k, i;

	detect_config_default(&cfg);
	for (k = 3; k <= 6; k++) {
		struct tally t = { 0 };
		size_t pos;

		for (i = 0; i < 40 * scale; i++) {
			double lv = 10 + uniform() * 1000;

			pos = 100 - k;
			levels(&s, 100, 2, (size_t[]){ 0, pos },
			       (double[]){ lv, lv * (rnd() & 1 ? 1.05 : 0.95) });
			sample(&s, NOISE);
			score(&s, &pos, 1, &cfg, &t, "tail");
		}
		printf("# 5%% step %u commits before the end (not asserted): injected %u, "
		       "found %u, false %u\n", k, t.injected, t.found, t.falses);
	}
}

static double seg_median(const struct series *x, size_t lo, size_t hi)
{
	return median(x->med + lo, hi - lo);
}

/* One step of lv0 -> lv1 at 50 of 100: what is reported about it. */
static void one_step(double lv0, double lv1, const char *name, enum detect_kind lower,
		     enum detect_kind higher)
{
	struct detect_config cfg;
	struct detect_change c[4];
	double old, new;
	int r;

	detect_config_default(&cfg);
	levels(&s, 100, 2, (size_t[]){ 0, 50 }, (double[]){ lv0, lv1 });
	sample(&s, NOISE);
	r = detect_changes(s.pts, s.n, &cfg, c, 4);
	check(r == 1 && c[0].index == 50, "%s: one change point at 50 (%d, at %zu)", name, r,
	      r > 0 ? c[0].index : 0);
	if (r != 1)
		return;
	old = seg_median(&s, 0, 50);
	new = seg_median(&s, 50, 100);
	check(c[0].old_median == old && c[0].new_median == new,
	      "%s: medians %g -> %g are the segments' (%g -> %g)", name, c[0].old_median,
	      c[0].new_median, old, new);
	check(fabs(old - lv0) < 0.01 * fabs(lv0) && fabs(new - lv1) < 0.01 * fabs(lv1),
	      "%s: medians within 1%% of the levels %g -> %g", name, lv0, lv1);
	check(fabs(c[0].rel_change - (lv1 - lv0) / fabs(lv0)) < 0.01,
	      "%s: rel_change %+.4f", name, c[0].rel_change);
	check(c[0].pvalue < cfg.max_pvalue && c[0].mwu_pvalue < cfg.mwu_alpha,
	      "%s: p %.3g, U p %.3g", name, c[0].pvalue, c[0].mwu_pvalue);
	check(detect_kind(&c[0], true) == lower && detect_kind(&c[0], false) == higher,
	      "%s: lower is better: %s, higher is better: %s", name,
	      lower == DETECT_REGRESSION ? "regression" : "improvement",
	      higher == DETECT_REGRESSION ? "regression" : "improvement");
}

static void test_values(void)
{
	struct detect_config cfg;
	struct detect_change c[8];
	int r;

	one_step(100, 110, "up 10%", DETECT_REGRESSION, DETECT_IMPROVEMENT);
	one_step(100, 90, "down 10%", DETECT_IMPROVEMENT, DETECT_REGRESSION);
	one_step(-100, -110, "negative, down 10%", DETECT_IMPROVEMENT, DETECT_REGRESSION);

	/* Two steps: each side's median ends at the neighbouring change. */
	detect_config_default(&cfg);
	levels(&s, 120, 3, (size_t[]){ 0, 40, 80 }, (double[]){ 100, 120, 100 });
	sample(&s, NOISE);
	r = detect_changes(s.pts, s.n, &cfg, c, 8);
	check(r == 2 && c[0].index == 40 && c[1].index == 80,
	      "up and back down: change points at 40 and 80 (%d)", r);
	if (r == 2)
		check(c[0].old_median == seg_median(&s, 0, 40) &&
		      c[0].new_median == seg_median(&s, 40, 80) &&
		      c[1].old_median == seg_median(&s, 40, 80) &&
		      c[1].new_median == seg_median(&s, 80, 120) &&
		      c[0].rel_change > 0 && c[1].rel_change < 0,
		      "up and back down: medians of the segments between change points");

	/* From zero: the relative change is infinite, and passes. */
	levels(&s, 40, 2, (size_t[]){ 0, 20 }, (double[]){ 0, 5 });
	sample(&s, NOISE);
	r = detect_changes(s.pts, s.n, &cfg, c, 8);
	check(r == 1 && c[0].index == 20 && c[0].old_median == 0 &&
	      isinf(c[0].rel_change) && c[0].rel_change > 0 &&
	      detect_kind(&c[0], true) == DETECT_REGRESSION,
	      "from 0 to 5: one change at 20, rel_change +inf (%d)", r);
}

/*
 * The reported p-values against references computed elsewhere: Welch's
 * t-test with mpmath's incomplete beta, and the U test's normal
 * approximation (mid-ranks, tie and continuity corrections).
 */
static void test_pvalues(void)
{
	static const double left[10] = { 99, 100, 101, 102, 98, 99, 100, 101, 102, 98 };
	static const double right[10] = { 104, 107, 102.5, 105.5, 101, 104, 107, 102.5,
					  105.5, 101 };
	const double p_ref = 2.50268067831076730e-4, u_ref = 9.303933139325122e-4;
	struct detect_config cfg;
	struct detect_change c[4];
	struct detect_point p[20];
	int i, r;

	detect_config_default(&cfg);
	cfg.max_pvalue = 0.01;
	cfg.mwu_alpha = 1;
	cfg.noise_factor = 0;	/* a step of 2 noises: the p-values are what counts */
	for (i = 0; i < 20; i++)
		p[i] = (struct detect_point){ .median = i < 10 ? left[i] : right[i - 10] };
	r = detect_changes(p, 20, &cfg, c, 4);
	check(r == 1 && c[0].index == 10 && c[0].old_median == 100 && c[0].new_median == 104,
	      "reference series: one change at 10, 100 -> 104 (%d)", r);
	if (r != 1)
		return;
	check(fabs(c[0].pvalue / p_ref - 1) < 1e-9, "t-test p %.15g, reference %.15g",
	      c[0].pvalue, p_ref);
	check(fabs(c[0].mwu_pvalue / u_ref - 1) < 1e-9, "U test p %.15g, reference %.15g",
	      c[0].mwu_pvalue, u_ref);
}

/* Noise-free levels, one sample per commit given as the median only. */
static size_t bare(struct detect_point *p, size_t n, size_t at, double lv0, double lv1)
{
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = (struct detect_point){ .median = i < at ? lv0 : lv1 };
	return n;
}

static void test_edges(void)
{
	struct detect_config cfg, bad;
	struct detect_change c[8];
	struct detect_point p[100];
	double nan_samples[2] = { 1, NAN };
	size_t pos[3];
	int r;

	detect_config_default(&cfg);
	check(detect_changes(NULL, 0, &cfg, NULL, 0) == 0, "n = 0");
	check(detect_changes(NULL, 0, &cfg, c, 8) == 0, "n = 0 with room");
	bare(p, 1, 1, 1, 1);
	check(detect_changes(p, 1, &cfg, c, 8) == 0, "n = 1");
	bare(p, 5, 2, 1, 2);
	check(detect_changes(p, 5, &cfg, c, 8) == 0, "n = 5 < 2 * min_size: no change");
	bare(p, 100, 100, 7, 7);
	check(detect_changes(p, 100, &cfg, c, 8) == 0, "constant series of 100");
	bare(p, 100, 100, 0, 0);
	check(detect_changes(p, 100, &cfg, c, 8) == 0, "all-zero series of 100");

	/* Without noise the t-test is certain; U needs enough values. */
	levels(&s, 6, 2, (size_t[]){ 0, 3 }, (double[]){ 10, 20 });
	sample(&s, 0);
	r = detect_changes(s.pts, 6, &cfg, c, 8);
	check(r == 1 && c[0].index == 3 && c[0].pvalue == 0 && c[0].rel_change == 1,
	      "n = 6, noise-free step with 5 samples a commit: found at 3 (%d)", r);
	bare(p, 6, 3, 10, 20);
	r = detect_changes(p, 6, &cfg, c, 8);
	check(r == 0, "n = 6, noise-free step, 1 value a commit: U cannot confirm (%d)", r);
	bare(p, 40, 20, 10, 20);
	r = detect_changes(p, 40, &cfg, c, 8);
	check(r == 1 && c[0].index == 20, "n = 40, noise-free step, no samples: at 20 (%d)", r);

	bare(p, 40, 20, 10, 20);
	p[7].median = NAN;
	check(detect_changes(p, 40, &cfg, c, 8) == -EINVAL, "NaN median: -EINVAL");
	p[7].median = INFINITY;
	check(detect_changes(p, 40, &cfg, c, 8) == -EINVAL, "infinite median: -EINVAL");
	p[7].median = 10;
	p[7].samples = nan_samples;
	p[7].nsamples = 2;
	check(detect_changes(p, 40, &cfg, c, 8) == -EINVAL, "NaN sample: -EINVAL");
	p[7].samples = NULL;
	check(detect_changes(p, 40, &cfg, c, 8) == -EINVAL, "samples NULL, nsamples 2: -EINVAL");
	p[7].nsamples = 0;
	check(detect_changes(NULL, 40, &cfg, c, 8) == -EINVAL, "pts NULL: -EINVAL");
	check(detect_changes(p, 40, &cfg, NULL, 8) == -EINVAL, "out NULL, max 8: -EINVAL");
	check(detect_changes(p, 40, NULL, c, 8) == -EINVAL, "config NULL: -EINVAL");
	check(detect_changes(p, 40, &cfg, NULL, 0) == 0, "out NULL, max 0: 0");

#define BAD(field, value) do {							\
		bad = cfg;							\
		bad.field = value;						\
		check(detect_config_check(&bad) == -EINVAL &&			\
		      detect_changes(p, 40, &bad, c, 8) == -EINVAL,		\
		      "config " #field " = " #value ": -EINVAL");		\
	} while (0)
	BAD(max_pvalue, 0);
	BAD(max_pvalue, 1.5);
	BAD(max_pvalue, NAN);
	BAD(min_magnitude, -0.01);
	BAD(min_magnitude, INFINITY);
	BAD(min_magnitude, NAN);
	BAD(mwu_alpha, 0);
	BAD(mwu_alpha, 2);
	BAD(min_size, 1);
	BAD(window, 5);
#undef BAD
	check(detect_config_check(&cfg) == 0, "default config passes its check");

	/* More change points than room: the first ones, nothing past max. */
	levels(&s, 120, 4, (size_t[]){ 0, 30, 60, 90 }, (double[]){ 100, 110, 95, 105 });
	sample(&s, NOISE);
	r = detect_changes(s.pts, s.n, &cfg, c, 8);
	check(r == 3 && c[0].index == 30 && c[1].index == 60 && c[2].index == 90,
	      "three steps: at 30, 60, 90 (%d)", r);
	memset(c, 0xa5, sizeof(c));
	r = detect_changes(s.pts, s.n, &cfg, c, 1);
	check(r == 1 && c[0].index == 30 && c[1].index == (size_t)0xa5a5a5a5a5a5a5a5ULL,
	      "three steps, max 1: writes the first only (%d)", r);
	check(detect_max_changes(s.n, &cfg) >= 3 && detect_max_changes(100, &cfg) == 33,
	      "detect_max_changes");

	/* Same input, same answer. */
	random_steps(&s, 3, 0.05, pos);
	{
		struct detect_change a[8], b[8];
		int ra = detect_changes(s.pts, s.n, &cfg, a, 8);
		int rb = detect_changes(s.pts, s.n, &cfg, b, 8);

		check(ra == rb && ra >= 0 && !memcmp(a, b, (size_t)ra * sizeof(*a)),
		      "deterministic");
	}
}

/* A long series stays linear in n: informational timing. */
static void test_long(void)
{
	enum { N = 20000 };
	static double raw[N][SAMPLES];
	static struct detect_point p[N];
	struct detect_config cfg;
	struct detect_change c[16];
	struct timespec t0, t1;
	size_t i, j;
	int r;

	detect_config_default(&cfg);
	for (i = 0; i < N; i++) {
		double lv = i < N / 2 ? 100 : 93;

		for (j = 0; j < SAMPLES; j++)
			raw[i][j] = lv * (1 + NOISE * gauss());
		p[i] = (struct detect_point){ median(raw[i], SAMPLES), raw[i], SAMPLES };
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = detect_changes(p, N, &cfg, c, 16);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	check(r == 1 && c[0].index == N / 2, "%d commits, one 7%% step: found at %d (%d)",
	      N, N / 2, r);
	printf("# %d commits in %.1f ms\n", N,
	       (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
}

int main(int argc, char **argv)
{
	unsigned int scale = argc > 1 ? (unsigned int)strtoul(argv[1], NULL, 0) : 1;
	struct tally steps = { 0 };
	unsigned int noise_cps, noise_series;

	if (!scale)
		scale = 1;
	if (argc > 2)
		rng_state = strtoull(argv[2], NULL, 0);
	printf("TAP version 13\n");
	test_steps(scale, &steps);
	noise_cps = test_noise(scale, &noise_series);
	test_small_steps(scale);
	test_noise_relative(scale);
	test_tail(scale);
	test_values();
	test_pvalues();
	test_edges();
	test_long();
	printf("# detect: injected %u steps, found %u at the right commit, missed %u, "
	       "false %u; noise-only series: %u change points over %u series x %d commits\n",
	       steps.injected, steps.found, steps.missed, steps.falses, noise_cps,
	       noise_series, NOISE_N);
	printf("1..%u\n", ntest);
	printf("# %u passed, %u failed\n", ntest - nfail, nfail);
	return nfail ? 1 : 0;
}
